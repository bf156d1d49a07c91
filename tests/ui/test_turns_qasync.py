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

from softphone.ua import Event, next_turn
from softphone.ua.events import Unregistered
from tests.ua.test_turns import busy, order_of
from ui.bridge import EngineBridge

Run = Callable[[Coroutine[Any, Any, None]], None]
TRIALS = 5
ALICE = "sips:alice@atlanta.test"


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


def test_engine_events_reach_the_widgets_a_turn_apart(run_in_qasync: Run) -> None:
    """The bridge hands engine events to the widgets one per turn, TURN apart: a task a timer
    woke while the widgets took the first event runs before the second. With the events
    chained by call_soon it ran after all of them (what a ticking clock saw as one long
    stall at call set-up)."""
    bridge = EngineBridge()
    orders: list[list[str]] = []

    def slow_widgets(_aor: str, event: Event) -> None:
        busy(0.004)  # widgets taking 4 ms over each event
        orders[-1].append(getattr(event, "reason", ""))

    bridge.any_event.connect(slow_widgets)

    async def scenario() -> None:
        for _ in range(TRIALS):
            orders.append([])

            async def woken() -> None:
                await asyncio.sleep(0.002)
                orders[-1].append("woken")

            task = asyncio.ensure_future(woken())
            await asyncio.sleep(0)  # its sleep has begun
            for reason in ("first", "second", "third"):
                bridge.on_event(ALICE, Unregistered(ALICE, reason))
            await task
            await bridge.settled()

    run_in_qasync(scenario())
    between = sum(order == ["first", "woken", "second", "third"] for order in orders)
    assert between >= TRIALS - 1, orders
