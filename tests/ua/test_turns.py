"""next_turn (softphone/ua/turns.py): work a timer woke runs between the two halves of a step
split by it, which a zero sleep does not give (issue 7). The same under qasync in
tests/ui/test_turns_qasync.py. run_in_slices: steps of work on the loop, a turn between
slices."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Generator

import pytest

from softphone.gil import SWITCH_INTERVAL
from softphone.ua import hand_over_the_gil_promptly, next_turn, turns
from softphone.ua.turns import run_in_slices, running_loop


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


# -- run_in_slices ------------------------------------------------------------------------------


def counted_steps(count: int, log: list[str], seconds: float = 0.0) -> Generator[None, None, int]:
    """``count`` steps (each busy ``seconds``), logged; returns ``count``."""
    for i in range(count):
        busy(seconds)
        log.append(f"step {i}")
        if i < count - 1:
            yield
    return count


async def test_run_in_slices_gives_a_turn_between_slices_and_returns_the_result() -> None:
    log: list[str] = []

    async def woken_by_a_timer() -> None:
        await asyncio.sleep(0.002)
        log.append("woken")

    async def work() -> int:
        # 12 steps of 1 ms each, a slice of 3 ms: the timer's task runs before the end.
        return await run_in_slices(counted_steps(12, log, 0.001), slice_seconds=0.003)

    _, result = await asyncio.gather(woken_by_a_timer(), work())
    assert result == 12
    assert "woken" in log and log.index("woken") < log.index("step 11"), log


async def test_run_in_slices_takes_a_turn_only_when_a_slice_is_used_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken: list[int] = []
    log: list[str] = []
    real_next_turn = turns.next_turn

    async def counting_turn() -> None:
        taken.append(len(log))
        await real_next_turn()

    monkeypatch.setattr(turns, "next_turn", counting_turn)
    assert await run_in_slices(counted_steps(4, log), slice_seconds=0) == 4
    assert taken == [1, 2, 3]  # after every step but the last
    taken.clear()
    log.clear()
    assert await run_in_slices(counted_steps(4, log), slice_seconds=60) == 4
    assert taken == []  # all in one slice


async def test_run_in_slices_passes_a_steps_error_on() -> None:
    def failing() -> Generator[None, None, int]:
        yield
        raise ValueError("not an AOR")

    with pytest.raises(ValueError, match="not an AOR"):
        await run_in_slices(failing(), slice_seconds=0)


def test_running_loop_is_the_loop_inside_it_and_none_outside() -> None:
    assert running_loop() is None

    async def inside() -> asyncio.AbstractEventLoop | None:
        return running_loop()

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(inside()) is loop
    finally:
        loop.close()
