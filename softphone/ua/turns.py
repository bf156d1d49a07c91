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

__all__ = ["TURN", "next_turn"]

#: How long :func:`next_turn` waits: any delay puts the continuation behind the wake-ups
#: that are already due.
TURN = 0.001


async def next_turn() -> None:
    """Let everything already due on the loop run, timer wake-ups included, then go on."""
    await asyncio.sleep(TURN)
