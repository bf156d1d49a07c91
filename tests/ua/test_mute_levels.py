"""Mute and audio levels through the call API: Call.set_muted / Call.muted / Call.levels.

The call is the fake-host call of test_hold.py, sending a 1000 Hz tone; the other phone's
audio is a real MediaSession on loopback keyed from the same SDES exchange, recording what it
plays. While muted the peer must hear silence (Goertzel finds no 1000 Hz) yet RTP keeps
flowing (RFC 3550 §5.1); unmuted, the tone comes back.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator

import pytest

from softphone.media.rtp_session import MediaSession, level_dbfs
from softphone.media.tone import ToneSource, goertzel_power, samples
from softphone.sip.dialog import Dialog
from softphone.sip.headers import NameAddr
from softphone.sip.uri import parse_uri
from softphone.ua.call import Call, CallPhase
from softphone.ua.events import CallMuted, event_from_json
from tests.interop.helpers import Recorder
from tests.ua.test_call import FakeHost, answer_to, outgoing
from tests.ua.test_hold import BOB_CONTACT, Peer
from tests.ua.test_registration import WAIT


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer()
    yield p
    p.close()


async def established_with_tone(host: FakeHost, peer: Peer) -> Call:
    call = outgoing(host)
    call.source = ToneSource(1000, -12.0)
    invite = host.invites[0]
    ok = answer_to(invite, 200, body=peer.answer(invite.body), Contact=BOB_CONTACT)
    ok.headers.add("Content-Type", "application/sdp")
    peer.dialog = Dialog.from_uas(invite, "bobtag", NameAddr(parse_uri(BOB_CONTACT[1:-1])))
    assert host.on_response is not None
    host.on_response(ok)
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    return call


async def wait_for(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.02)


def tone_power(frames: list[bytes]) -> float:
    pcm = b"".join(frames)
    return goertzel_power(samples(pcm), 1000)


async def record(recorder: Recorder, count: int) -> list[bytes]:
    """The next ``count`` frames the peer plays (after a settling gap for the jitter buffer)."""
    start = len(recorder.frames) + 15
    await wait_for(lambda: len(recorder.frames) >= start + count)
    return recorder.frames[start : start + count]


async def test_muted_peer_hears_silence_rtp_keeps_flowing_and_unmute_resumes(
    peer: Peer,
) -> None:
    host = FakeHost()
    call = await established_with_tone(host, peer)
    recorder = Recorder()
    assert peer.negotiated is not None
    media = MediaSession(peer.negotiated, ports=peer.ports, sink=recorder)
    await media.start()
    try:
        assert call.muted is False
        before = await record(recorder, 20)
        loud = tone_power(before)
        assert loud > 1000  # the tone arrives (-12 dBFS: ~1e6)

        call.set_muted(True)
        assert call.muted is True
        assert call.media is not None and call.media.muted
        sent_before = call.media.packets_sent
        during = await record(recorder, 20)
        assert tone_power(during) < loud / 1000
        assert call.media.packets_sent > sent_before + 10  # RTP still flows, silent
        assert media.statistics().packets_received > 0
        assert call.levels()[0] == -math.inf  # what we send is silence

        call.set_muted(False)
        after = await record(recorder, 20)
        assert tone_power(after) > loud / 10

        muted_events = [e for e in host.events if isinstance(e, CallMuted)]
        assert [e.muted for e in muted_events] == [True, False]
        assert all(e.call_id == call.call_id for e in muted_events)
        assert event_from_json(muted_events[0].to_json()) == muted_events[0]
    finally:
        await media.stop()
        await call.hangup()


async def test_levels_report_sent_and_played_dbfs(peer: Peer) -> None:
    host = FakeHost()
    call = await established_with_tone(host, peer)
    assert peer.negotiated is not None
    media = MediaSession(peer.negotiated, ports=peer.ports, source=ToneSource(440, -20.0))
    await media.start()
    try:
        # A sine at L dBFS peak has an RMS of L - 3.01 dB; the codec's start-up ramp passes.
        await wait_for(lambda: abs(call.levels()[1] - (-20 - 3.01)) < 4.0)  # opus: ~-3 dB
        sent, _ = call.levels()
        assert sent == pytest.approx(-12 - 3.01, abs=0.5)
    finally:
        await media.stop()
        await call.hangup()
    assert call.levels() == (-math.inf, -math.inf)  # no media, no level


def test_level_dbfs_of_frames() -> None:
    assert level_dbfs(b"") == -math.inf
    assert level_dbfs(bytes(1920)) == -math.inf
    assert level_dbfs(ToneSource(1000, -6.0).read()) == pytest.approx(-9.03, abs=0.1)
    full_square = (b"\x00\x80" + b"\xff\x7f") * 480  # -32768, 32767
    assert level_dbfs(full_square) == pytest.approx(0.0, abs=0.01)


async def test_set_muted_before_media_applies_when_it_starts(peer: Peer) -> None:
    host = FakeHost()
    call = outgoing(host)
    call.set_muted(True)
    invite = host.invites[0]
    ok = answer_to(invite, 200, body=peer.answer(invite.body), Contact=BOB_CONTACT)
    ok.headers.add("Content-Type", "application/sdp")
    assert host.on_response is not None
    host.on_response(ok)
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    try:
        assert call.media is not None and call.media.muted
        call.set_muted(True)  # no change, no second event
        assert len([e for e in host.events if isinstance(e, CallMuted)]) == 1
    finally:
        await call.hangup()
