"""The interpreter's switch interval for a process whose event loop shares the GIL with
threads that run Python: the media thread (softphone.media.thread) and, in the desktop phone,
the worker threads of QR codes. (Safety numbers are no longer among them: even at 1 ms, a
worker's pure-Python rounds took half the GIL from the loop, so they now run on the loop in
slices, :func:`softphone.ua.turns.run_in_slices`.)

A thread that wants the GIL waits up to the switch interval (Python's default: 5 ms) while
another runs Python. Measured here: with the media thread beside a window's thread busy in
Python, 38 of 100 packets sent in 2 s at 5 ms, 100 of 100 at 1 ms
(``benchmarks/bench_audio.py``); a 2 ms loop callback with a few socket calls beside a worker
computing safety numbers took up to 27 ms at 5 ms, 7-9 ms at 1 ms (``benchmarks/bench_gil.py``).
"""

from __future__ import annotations

import sys

__all__ = ["SWITCH_INTERVAL", "hand_over_the_gil_promptly"]

#: The switch interval once anything runs Python beside an event loop.
SWITCH_INTERVAL = 0.001


def hand_over_the_gil_promptly() -> None:
    """Lower the interpreter's switch interval to :data:`SWITCH_INTERVAL` (never raise it)."""
    if sys.getswitchinterval() > SWITCH_INTERVAL:
        sys.setswitchinterval(SWITCH_INTERVAL)
