"""A turn of the event loop between long steps (issue 7: the desktop phone's loop never stalls
20 ms).

A step that yields with ``asyncio.sleep(0)`` is back before work that a timer woke in the
meantime: that work (a task whose sleep ended, the window's clock) wakes through a second
callback, which the loop schedules behind the zero sleep's continuation. Under qasync every
callback is a Qt timer and the same holds. So two long halves split by ``sleep(0)`` still
delay such work by both halves (measured: a task ticking every 5 ms was 15 ms late behind two
8 ms halves split by ``sleep(0)``, 8 ms late with :func:`next_turn`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator
from typing import TypeVar

__all__ = ["SLICE", "TURN", "next_turn", "run_in_slices", "running_loop"]

_T = TypeVar("_T")

#: How long :func:`next_turn` waits: any delay puts the continuation behind the wake-ups
#: that are already due.
TURN = 0.001


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio loop running now (qasync's, in the desktop phone), or ``None`` (a bare
    widget in a test, a script: then work is done at once, since nothing would run it later)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def next_turn() -> None:
    """Let everything already due on the loop run, timer wake-ups included, then go on."""
    await asyncio.sleep(TURN)


#: How long :func:`run_in_slices` works before it gives the loop a turn.
SLICE = 0.001


async def run_in_slices(steps: Generator[None, None, _T], *, slice_seconds: float = SLICE) -> _T:
    """Run ``steps`` on the loop, at most ``slice_seconds`` of them (and one step) at a time
    with a turn (:func:`next_turn`) in between; their result.

    For CPU work in pure Python that the loop waits for, such as a safety number's 5200
    rounds of SHA-512. In a worker thread it holds the GIL against the loop: the interpreter
    hands it over each switch interval (1 ms, :mod:`softphone.gil`), so a callback that
    needs 7 ms of the loop's thread took 17-19 ms beside it (``benchmarks/bench_gui.py``,
    issue 7: the loop never stalls 20 ms). In slices, nothing else waits more than a slice.
    """
    deadline = time.perf_counter() + slice_seconds
    while True:
        try:
            next(steps)
        except StopIteration as finished:
            return finished.value  # type: ignore[no-any-return]
        if time.perf_counter() >= deadline:
            await next_turn()
            deadline = time.perf_counter() + slice_seconds
