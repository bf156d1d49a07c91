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
import sys

__all__ = ["SWITCH_INTERVAL", "TURN", "hand_over_the_gil_promptly", "next_turn"]

#: How long :func:`next_turn` waits: any delay puts the continuation behind the wake-ups
#: that are already due.
TURN = 0.001


async def next_turn() -> None:
    """Let everything already due on the loop run, timer wake-ups included, then go on."""
    await asyncio.sleep(TURN)


#: The interpreter's switch interval for a process whose event loop shares the GIL with
#: threads that run Python (the media thread sets the same when it starts:
#: softphone.media.thread).
SWITCH_INTERVAL = 0.001


def hand_over_the_gil_promptly() -> None:
    """Lower the interpreter's switch interval to :data:`SWITCH_INTERVAL` (never raise it).

    A thread that wants the GIL waits up to the switch interval (Python's default: 5 ms)
    while another runs Python. The desktop phone's loop shares it with worker threads from
    the first call on (safety numbers: 5200 SHA-512 rounds in a Python loop, QR codes, the
    history writer), before any media thread has lowered it: measured here, a 2 ms loop
    callback with a few socket calls took up to 17-24 ms beside one such worker at 5 ms,
    6.3-6.6 ms at 1 ms."""
    if sys.getswitchinterval() > SWITCH_INTERVAL:
        sys.setswitchinterval(SWITCH_INTERVAL)
