"""next_turn under qasync, as the desktop phone runs it (every callback a Qt timer): work a
timer woke runs between the two halves of a step split by it; a zero sleep does not give that
(tests/ua/test_turns.py has the same on plain asyncio, where the order is exact).

Under qasync the woken task's own wake-up is a zero Qt timer stamped when its sleep's timer
fires; a VM pause of over 1 ms (TURN) just before that stamps it behind the step's second half.
So next_turn is asked to win 4 of 5 times here; sleep(0) never can."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from softphone.ua import next_turn
from tests.ua.test_turns import order_of

Run = Callable[[Coroutine[Any, Any, None]], None]
TRIALS = 5


def test_next_turn_under_qasync(run_in_qasync: Run) -> None:
    seen: dict[str, list[list[str]]] = {"next_turn": [], "sleep(0)": []}

    async def scenario() -> None:
        for _ in range(TRIALS):
            seen["next_turn"].append(await order_of(next_turn))
            seen["sleep(0)"].append(await order_of(lambda: asyncio.sleep(0)))

    run_in_qasync(scenario())
    woken_first = sum(order == ["woken", "second half"] for order in seen["next_turn"])
    assert woken_first >= TRIALS - 1, seen
    assert all(order == ["second half", "woken"] for order in seen["sleep(0)"]), seen
