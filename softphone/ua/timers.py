"""The clock for a sans-I/O transaction layer (RFC 3261 §17 timers, driven by ``now``).

:class:`~softphone.sip.transaction_layer.TransactionLayer` reads no clock: it says when its next
timer is due (``next_deadline``) and fires what is due when handed ``now``. One loop here gives
it the event loop's clock, for the registration flow's layer and for each sipsec tunnel's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from softphone.sip.transaction_layer import TransactionLayer

__all__ = ["run_transaction_timers"]


async def run_transaction_timers(
    layer: TransactionLayer, wake: asyncio.Event, on_due: Callable[[float], None]
) -> None:
    """Sleep until ``layer``'s next deadline (or until ``wake`` is set: a new transaction may
    have an earlier one), then call ``on_due(now)``, which runs ``layer.handle_timer(now)``'s
    actions. Runs until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        wake.clear()
        deadline = layer.next_deadline()
        delay = None if deadline is None else max(0.0, deadline - loop.time())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await wake.wait()
        now = loop.time()
        deadline = layer.next_deadline()
        if deadline is not None and deadline <= now:
            on_due(now)
