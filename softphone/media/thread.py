"""A thread of its own for the 20 ms media loops (the desktop phone's choice).

A :class:`~softphone.media.rtp_session.MediaSession` given a :class:`MediaThread` runs its
sockets, its 20 ms loop (read, encode, protect, send; receive, unprotect, jitter buffer,
decode, play) and its DTLS handshake on that thread's asyncio loop, not on the loop that
created it. Why: in the GUI the caller's loop is the Qt thread's (qasync), and everything a
person does — a trust dialog painted, a window shown — runs there. On one loop, a 25 ms
paint delays the next RTP packet by 25 ms, and an encode that the machine pre-empts stalls
the window. With the media on its own loop each waits for neither (what baresip and
linphone do with their media threads).

What crosses between the threads, and how:

* ``start()``, ``stop()``, ``wait_secured()`` are awaited from the caller's loop and run on
  the media loop (:meth:`MediaThread.run`: cancelling the caller cancels the media side).
* ``update()``, ``statistics()``, ``drops`` run on the media loop while the caller waits
  (:meth:`MediaThread.call`: at most one media tick, a millisecond or so), so a re-INVITE's
  new keys never land in the middle of a packet.
* Events (statistics, DTMF, media timeout, latching) are handed to the caller's loop with
  ``call_soon_threadsafe``, in order.
* ``muted``, ``sent_dbfs``, ``received_dbfs`` are single attribute reads and writes
  (atomic under the GIL); DTMF digits go through a ``deque`` (``append`` is thread safe).

One media thread serves every session of the process (:func:`shared_media_thread`): a daemon
thread that lives until the process exits, so that a user agent's close, a test's loop or a
window's lifetime never strands a session half-closed.

The GIL: the media thread takes it back after every encode, send and receive, and a thread that
wants it waits up to the interpreter's switch interval (5 ms by default) while another runs
Python. With the window's thread busy in Python, that starved the media thread: 38 of 100
packets sent in 2 s in one run here. Starting the media thread lowers the interval to
:data:`softphone.gil.SWITCH_INTERVAL` (1 ms: 100 of 100, jitter 1.8 ms instead of 6.8 ms;
``benchmarks/bench_audio.py``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from softphone.gil import SWITCH_INTERVAL, hand_over_the_gil_promptly

__all__ = ["SWITCH_INTERVAL", "MediaThread", "shared_media_thread"]

T = TypeVar("T")

#: How long :meth:`MediaThread.call` waits for the media loop before giving up. The loop only
#: runs short media ticks: a wait this long means it is wedged, and the caller gets an error
#: instead of a frozen window.
CALL_TIMEOUT = 5.0


class MediaThread:
    """A daemon thread running an asyncio loop for media sessions (see the module text)."""

    def __init__(self, name: str = "softphone-media") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The media loop (the thread is started on first use)."""
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        hand_over_the_gil_promptly()
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name=self.name, daemon=True)
        thread.start()
        ready.wait()
        self._loop, self._thread = loop, thread

    def on_media_thread(self) -> bool:
        """Whether the caller runs on the media loop's thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the media loop from any loop (directly when already there)."""
        if self.on_media_thread():
            return await coro
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return await asyncio.wrap_future(future)

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on the media loop; the caller's thread waits for its result (or
        its exception). Directly when already on the media thread."""
        if self.on_media_thread():
            return function(*args)
        result: concurrent.futures.Future[T] = concurrent.futures.Future()

        def step() -> None:
            if not result.set_running_or_notify_cancel():
                return
            try:
                result.set_result(function(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
                result.set_exception(exc)

        self.loop.call_soon_threadsafe(step)
        return result.result(CALL_TIMEOUT)


_SHARED = MediaThread()


def shared_media_thread() -> MediaThread:
    """The process's media thread (started when the first session uses it)."""
    return _SHARED
