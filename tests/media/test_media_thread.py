"""Media on its own thread (softphone.media.thread): what the desktop phone runs.

Two kinds of test. (1) The behaviour suites of :class:`MediaSession` (audio both ways with every
codec and suite, strangers dropped, latching, DTMF, timeouts, hold, DTLS-SRTP, and the socket
life-cycle races) run again with every session on the process's media thread: imported here,
they run under this module's autouse fixture, which gives each ``MediaSession`` the thread,
and with the life-cycle checks looking at the media loop (its tasks, its errors) as well as
the caller's. (2) What the thread is for: the caller's loop can stall (a window painted, a
dialog built) and the 20 ms loop goes on sending and playing; events still arrive on the
caller's loop, in order; a re-INVITE's update lands between two media ticks.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest

import tests.media.test_session_lifecycle as lifecycle
from softphone.media.rtp_session import MediaEvent, MediaSession, MediaStatistics, reserve_ports
from softphone.media.thread import SWITCH_INTERVAL, MediaThread, shared_media_thread
from softphone.media.tone import ToneSource
from softphone.sdp.crypto import SrtpSuite
from softphone.sdp.direction import Direction
from tests.interop.helpers import Recorder, heard
from tests.media.test_dtls_session import (
    test_a_certificate_not_in_the_sdp_fails_closed_and_nothing_is_sent as test_dtls_fails_closed_on_the_media_thread,  # noqa: E501
)
from tests.media.test_dtls_session import (
    test_dtls_keys_srtp_and_audio_flows_both_ways as test_dtls_on_the_media_thread,
)
from tests.media.test_session import CODECS, HOST, negotiated_pair, wait_for
from tests.media.test_session import (
    test_media_timeout_and_hold as test_timeout_and_hold_on_the_media_thread,
)
from tests.media.test_session import (
    test_plain_rtp_stranger_dropped_before_any_latch_and_dtmf as test_plain_and_dtmf_on_the_media_thread,  # noqa: E501
)
from tests.media.test_session import (
    test_srtp_audio_both_ways_and_strangers_dropped as test_srtp_audio_on_the_media_thread,
)
from tests.media.test_session import (
    test_srtp_latches_to_an_authenticated_source_behind_nat as test_latching_on_the_media_thread,
)
from tests.media.test_session_lifecycle import (
    test_a_call_ended_during_the_dtls_handshake_closes_its_socket as test_dtls_end_on_the_media_thread,  # noqa: E501
)
from tests.media.test_session_lifecycle import (
    test_stop_before_start_closes_the_reservation_and_start_then_does_nothing as test_stop_first_on_the_media_thread,  # noqa: E501
)
from tests.media.test_session_lifecycle import (
    test_stop_during_start_wins_and_closes_every_socket as test_stop_during_start_on_the_media_thread,  # noqa: E501
)

__all__ = [
    "test_dtls_end_on_the_media_thread",
    "test_dtls_fails_closed_on_the_media_thread",
    "test_dtls_on_the_media_thread",
    "test_latching_on_the_media_thread",
    "test_plain_and_dtmf_on_the_media_thread",
    "test_srtp_audio_on_the_media_thread",
    "test_stop_during_start_on_the_media_thread",
    "test_stop_first_on_the_media_thread",
    "test_timeout_and_hold_on_the_media_thread",
]

THREAD = shared_media_thread()


@pytest.fixture(autouse=True)
def _sessions_on_the_media_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every MediaSession built in a test of this module runs on the media thread; the
    life-cycle suite's task census includes the media loop's tasks."""
    original = MediaSession.__init__

    def init(self: MediaSession, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("thread", THREAD)
        original(self, *args, **kwargs)

    monkeypatch.setattr(MediaSession, "__init__", init)

    def session_tasks() -> list[asyncio.Task[Any]]:
        def on_media_loop() -> list[asyncio.Task[Any]]:
            return [t for t in asyncio.all_tasks() if t.get_name() == "media-session"]

        here = [t for t in asyncio.all_tasks() if t.get_name() == "media-session"]
        return here + THREAD.call(on_media_loop)

    monkeypatch.setattr(lifecycle, "session_tasks", session_tasks)
    yield


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[str]]:
    """As the life-cycle suite's fixture, on the caller's loop and the media loop."""
    errors: list[str] = []

    def record(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        errors.append(f"{context.get('message')}: {context.get('exception')!r}")

    loops = [asyncio.get_running_loop(), THREAD.loop]
    previous = [loop.get_exception_handler() for loop in loops]
    for loop in loops:
        loop.set_exception_handler(record)
    yield errors
    for loop, handler in zip(loops, previous, strict=True):
        loop.set_exception_handler(handler)


def pair(
    *, events_a: list[MediaEvent] | None = None, stats_interval: float = 1.0
) -> tuple[MediaSession, MediaSession, Recorder, Recorder]:
    a_ports, b_ports = reserve_ports(HOST), reserve_ports(HOST)
    neg_a, neg_b, _, _ = negotiated_pair(
        CODECS["opus"], a_ports, b_ports, suite=SrtpSuite.AES_CM_128_HMAC_SHA1_80
    )
    rec_a, rec_b = Recorder(), Recorder()
    a = MediaSession(
        neg_a,
        ports=a_ports,
        source=ToneSource(1000),
        sink=rec_a,
        on_event=None if events_a is None else events_a.append,
        stats_interval=stats_interval,
    )
    b = MediaSession(neg_b, ports=b_ports, source=ToneSource(440), sink=rec_b)
    return a, b, rec_a, rec_b


async def test_a_stalled_caller_loop_does_not_stall_the_media() -> None:
    """The caller's loop blocked for 400 ms (a window painting, a dialog built): the media
    thread goes on sending and playing, about 20 frames; on one loop it would send none."""
    a, b, rec_a, rec_b = pair()
    try:
        await a.start()
        await b.start()
        await wait_for(lambda: rec_b.loud_frames() > 10 and rec_a.loud_frames() > 10, "audio")
        sent, played = a.packets_sent, len(rec_a.frames)
        time.sleep(0.4)  # the point: this loop does nothing for 400 ms
        assert a.packets_sent - sent >= 8
        assert len(rec_a.frames) - played >= 8
        assert heard(rec_b) == 1000
        assert heard(rec_a) == 440
    finally:
        await a.stop()
        await b.stop()


async def test_the_20ms_loop_runs_on_the_media_thread_and_events_come_back_here() -> None:
    """The session's task lives on the media loop, not this one; its events (statistics,
    every 50 ms here) are delivered on this loop's thread, in the order they were made."""
    seen: list[tuple[MediaEvent, threading.Thread]] = []

    class Events(list[MediaEvent]):
        def append(self, event: MediaEvent) -> None:
            seen.append((event, threading.current_thread()))
            super().append(event)

    events = Events()
    a, b, _, _ = pair(events_a=events, stats_interval=0.05)
    try:
        await a.start()
        await b.start()
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "media-session"]
        on_media = THREAD.call(
            lambda: [t for t in asyncio.all_tasks() if t.get_name() == "media-session"]
        )
        assert len(on_media) >= 2
        await wait_for(lambda: len(events) >= 5, "statistics events")
    finally:
        await a.stop()
        await b.stop()
    assert {thread for _, thread in seen} == {threading.current_thread()}
    sent = [e.packets_sent for e in events if isinstance(e, MediaStatistics)]
    assert sent == sorted(sent) and sent[-1] > sent[0]


async def test_hold_from_the_caller_lands_between_ticks() -> None:
    """``update()`` (a re-INVITE's hold) runs on the media loop: once it returns, nothing is
    sent any more, and resuming sends again."""
    a, b, _, rec_b = pair()
    try:
        await a.start()
        await b.start()
        await wait_for(lambda: rec_b.loud_frames() > 5, "audio")
        held = replace(a.negotiated, direction=Direction.RECVONLY)
        a.update(held)
        sent = a.packets_sent
        await asyncio.sleep(0.2)
        assert a.packets_sent == sent
        a.update(replace(held, direction=Direction.SENDRECV))
        await wait_for(lambda: a.packets_sent > sent + 3, "sending again after resume")
    finally:
        await a.stop()
        await b.stop()


def test_starting_a_media_thread_bounds_the_gil_hand_over_to_1_ms() -> None:
    """With the default 5 ms switch interval a window's thread busy in Python starved the
    media thread (38 of 100 packets in 2 s here; benchmarks/bench_audio.py measures both)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    thread = MediaThread("test-switch")
    try:
        thread.call(lambda: None)  # started
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
    finally:
        thread.loop.call_soon_threadsafe(thread.loop.stop)
        sys.setswitchinterval(previous)


async def test_an_error_in_a_call_to_the_media_thread_reaches_the_caller() -> None:
    thread = MediaThread("test-media")

    def boom() -> None:
        raise ValueError("from the media loop")

    with pytest.raises(ValueError, match="from the media loop"):
        thread.call(boom)
    assert thread.call(threading.current_thread).name == "test-media"

    async def where() -> str:
        return threading.current_thread().name

    assert await thread.run(where()) == "test-media"
    thread.loop.call_soon_threadsafe(thread.loop.stop)
