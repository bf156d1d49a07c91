"""next_turn (softphone/ua/turns.py): work a timer woke runs between the two halves of a step
split by it, which a zero sleep does not give (issue 7). The same under qasync in
tests/ui/test_turns_qasync.py."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

import pytest

from softphone.gil import SWITCH_INTERVAL
from softphone.ua import hand_over_the_gil_promptly, next_turn


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def order_of(split: Callable[[], Awaitable[None]]) -> list[str]:
    """A task sleeps 2 ms; a step busy for 6 ms (the sleep ends meanwhile) is split by
    ``split`` before its second half: who ran first after the split?"""
    order: list[str] = []

    async def woken_by_a_timer() -> None:
        await asyncio.sleep(0.002)
        order.append("woken")

    async def long_step() -> None:
        busy(0.006)
        await split()
        order.append("second half")

    await asyncio.gather(woken_by_a_timer(), long_step())
    return order


async def test_next_turn_lets_work_a_timer_woke_run_first() -> None:
    assert await order_of(next_turn) == ["woken", "second half"]


async def test_a_zero_sleep_does_not_which_is_why_next_turn_exists() -> None:
    assert await order_of(lambda: asyncio.sleep(0)) == ["second half", "woken"]


def test_hand_over_the_gil_promptly_lowers_the_switch_interval_and_never_raises_it() -> None:
    previous = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)  # Python's default
        hand_over_the_gil_promptly()
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
        sys.setswitchinterval(SWITCH_INTERVAL / 2)  # lower already: left as it is
        hand_over_the_gil_promptly()
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL / 2)
    finally:
        sys.setswitchinterval(previous)
