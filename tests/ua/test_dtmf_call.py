"""DTMF through the call API (RFC 4733): Call.send_dtmf and DtmfReceived events.

The call is the fake-host call of test_hold.py; the other phone's audio is a real
MediaSession on loopback keyed from the same SDES exchange, so the digits really travel as
SRTP telephone-event packets both ways.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from softphone.media.rtp_session import DtmfReceived as MediaDtmf
from softphone.media.rtp_session import MediaEvent, MediaSession
from softphone.ua.call import Call, CallError, CallPhase
from softphone.ua.events import DtmfReceived, event_from_json
from tests.ua.test_call import FakeHost
from tests.ua.test_hold import Peer, established
from tests.ua.test_registration import WAIT


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer()
    yield p
    p.close()


async def peer_media(peer: Peer, heard: list[str]) -> MediaSession:
    assert peer.negotiated is not None

    def on_event(event: MediaEvent) -> None:
        if isinstance(event, MediaDtmf):
            heard.append(event.digit)

    session = MediaSession(peer.negotiated, ports=peer.ports, on_event=on_event)
    await session.start()
    return session


async def wait_for(condition: object, what: str) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_digits_sent_arrive_as_telephone_events(peer: Peer) -> None:
    host = FakeHost()
    call = await established(host, peer)
    heard: list[str] = []
    media = await peer_media(peer, heard)
    try:
        assert call.negotiated is not None and call.negotiated.telephone_event is not None
        call.send_dtmf("1#", duration=0.1)
        await wait_for(lambda: len(heard) >= 2, "the peer hearing both digits")
        await asyncio.sleep(0.2)
        assert heard == ["1", "#"]  # once each, in order, though each end is sent 3 times
    finally:
        await media.stop()
        await call.hangup()


async def test_digits_received_become_events_and_the_callback(peer: Peer) -> None:
    host = FakeHost()
    call = await established(host, peer)
    pressed: list[str] = []
    call.on_dtmf = pressed.append
    media = await peer_media(peer, [])
    try:
        media.send_dtmf("5*")
        await wait_for(lambda: len(pressed) >= 2, "two digits from the peer")
        events = [e for e in host.events if isinstance(e, DtmfReceived)]
        assert [e.digit for e in events] == ["5", "*"] == pressed
        assert all(e.call_id == call.call_id for e in events)
        assert event_from_json(events[0].to_json()) == events[0]
    finally:
        await media.stop()
        await call.hangup()


async def test_a_broken_callback_does_not_break_the_call(peer: Peer) -> None:
    host = FakeHost()
    call = await established(host, peer)

    def broken(digit: str) -> None:
        raise RuntimeError("listener bug")

    call.on_dtmf = broken
    media = await peer_media(peer, [])
    try:
        media.send_dtmf("9")
        await wait_for(lambda: any(isinstance(e, DtmfReceived) for e in host.events), "the digit")
        assert call.phase is CallPhase.ESTABLISHED
    finally:
        await media.stop()
        await call.hangup()


@pytest.mark.parametrize(
    ("digits", "duration", "words"),
    [("12x", 0.1, "not DTMF digits"), ("", 0.1, "not DTMF digits"), ("1", 0.01, "40 ms")],
)
async def test_bad_input_is_refused_and_nothing_is_sent(
    peer: Peer, digits: str, duration: float, words: str
) -> None:
    host = FakeHost()
    call = await established(host, peer)
    with pytest.raises(CallError, match=words):
        call.send_dtmf(digits, duration)
    assert call.media is not None and not call.media._dtmf_queue
    await call.hangup()


async def test_no_telephone_event_no_dtmf() -> None:
    peer = Peer(telephone_event=False)
    try:
        host = FakeHost()
        call = await established(host, peer)
        assert call.negotiated is not None and call.negotiated.telephone_event is None
        with pytest.raises(CallError, match="telephone-event"):
            call.send_dtmf("1")
        await call.hangup()
    finally:
        peer.close()


async def test_no_dtmf_before_the_call_is_up() -> None:
    host = FakeHost()
    from tests.ua.test_call import outgoing

    call: Call = outgoing(host)
    with pytest.raises(CallError, match="call with audio"):
        call.send_dtmf("1")
    call._release_media()


@pytest.mark.parametrize("bad", ["x", "12", "", "#*"])
def test_dtmf_event_validated(bad: str) -> None:
    with pytest.raises(ValueError):
        DtmfReceived("c1", bad)
