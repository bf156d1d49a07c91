"""DTLS-SRTP calls (RFC 5763/5764) through a real Kamailio over TLS: between two of our
UserAgents, with a real baresip (``dtls_srtp``) and with a real linphonec (``dtls``).

Each side sends its own tone and must find the other's in what it received (Goertzel), so
audio is proven both ways; ``keying`` must be ``dtls-srtp`` and the words those of UX.md
("a server on the way could still intercept by swapping fingerprints"). A certificate that
does not match the SDP fingerprint ends the call with the interception reason (fail closed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import softphone.ua.call as call_module
from softphone.media.dtls import DtlsCertificate, DtlsEndpoint
from softphone.media.tone import ToneSource
from softphone.sdp.fingerprint import DtlsRole
from softphone.ua.account import MediaKeying
from softphone.ua.call import AUDIO_WORDS, Call, CallPhase
from softphone.ua.events import MediaStarted
from softphone.ua.useragent import UserAgent
from tests.conftest import require_peer
from tests.interop.baresip import BaresipPeer, find_baresip, find_module_dir
from tests.interop.helpers import Recorder, account, heard, settle, states, wait_until
from tests.interop.kamailio import DEFAULT_USERS, KamailioServer
from tests.interop.linphone import LinphonePeer, find_linphonec
from tests.interop.test_baresip_call import (
    BARESIP_HINT,
    BARESIP_TONE,
    HOLD,
    OUR_TONE,
    baresip_heard,
)
from tests.interop.test_linphone_call import CERT as LINPHONE_CERT
from tests.interop.test_linphone_call import LINPHONE_HINT, LINPHONE_TONE, linphone_heard
from tests.ua.test_registration import WAIT, EventLog

pytestmark = pytest.mark.interop

DTLS_SUITES = {
    "AEAD_AES_256_GCM",
    "AEAD_AES_128_GCM",
    "AES_CM_128_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_32",
}
INTERCEPTED = (
    "the media certificate does not match the fingerprint in the call setup — "
    "someone may be intercepting"
)


@pytest.fixture
def dtls_baresip(tmp_path: Path) -> Iterator[Callable[..., BaresipPeer]]:
    """baresip peers keyed by DTLS-SRTP (``mediaenc=dtls_srtp``), stopped after the test."""
    require_peer("baresip", available=find_baresip() is not None, hint=BARESIP_HINT)
    require_peer("baresip-core", available=find_module_dir() is not None, hint=BARESIP_HINT)
    peers: list[BaresipPeer] = []

    def make(server: KamailioServer, user: str = "carol", **options: Any) -> BaresipPeer:
        options.setdefault("mediaenc", "dtls_srtp")
        peer = BaresipPeer(
            tmp_path / f"baresip-{user}", server, user=user, password=DEFAULT_USERS[user], **options
        )
        peers.append(peer)
        peer.start()
        return peer

    try:
        yield make
    finally:
        for peer in peers:
            peer.stop()


async def assert_dtls(events: EventLog) -> MediaStarted:
    started = await events.wait_for("media_started")
    assert isinstance(started, MediaStarted)
    assert started.encrypted and started.keying == "dtls-srtp", started
    assert started.srtp_suite in DTLS_SUITES, started
    assert started.audio == AUDIO_WORDS["dtls-hops"]
    assert "swapping fingerprints" in started.audio
    return started


async def dtls_pair(
    server: KamailioServer, ua_factory: Callable[..., UserAgent], bob_takes: Callable[[Call], None]
) -> tuple[UserAgent, EventLog, UserAgent, EventLog]:
    alice_events, bob_events = EventLog(), EventLog()
    alice = ua_factory(
        account(server, "alice", keying=MediaKeying.DTLS_SRTP), on_event=alice_events
    )
    bob = ua_factory(
        account(server, "bob"),  # SDES for its own offers; accepts a DTLS-SRTP offer
        on_event=bob_events,
        password=DEFAULT_USERS["bob"],
        auto_answer=True,
        on_incoming_call=bob_takes,
    )
    await asyncio.gather(alice.register(), bob.register())
    return alice, alice_events, bob, bob_events


async def test_two_softphones_call_with_dtls_srtp_and_hear_each_other(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory()
    bob_heard = Recorder()
    incoming: list[Call] = []

    def bob_takes(call: Call) -> None:
        call.source, call.sink = ToneSource(440), bob_heard
        incoming.append(call)

    alice, alice_events, _bob, bob_events = await dtls_pair(server, ua_factory, bob_takes)
    alice_heard = Recorder()
    call = await alice.call(f"sips:bob@{server.domain}", source=ToneSource(1000), sink=alice_heard)
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    assert len(incoming) == 1
    bob_call = incoming[0]
    await bob_call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)

    alice_started = await assert_dtls(alice_events)
    bob_started = await assert_dtls(bob_events)
    assert alice_started.srtp_suite == bob_started.srtp_suite
    assert call.negotiated is not None and call.negotiated.proto == "UDP/TLS/RTP/SAVP"
    # RFC 5763 §5: alice offered actpass, bob answered active: bob is the DTLS client
    assert call.negotiated.dtls_role is DtlsRole.SERVER
    assert bob_call.negotiated is not None and bob_call.negotiated.dtls_role is DtlsRole.CLIENT

    await wait_until(lambda: alice_heard.loud_frames() > 25, "alice hearing bob")
    await wait_until(lambda: bob_heard.loud_frames() > 25, "bob hearing alice")
    assert abs(heard(alice_heard) - 440) <= 20
    assert abs(heard(bob_heard) - 1000) <= 20
    assert call.media is not None
    stats = call.media.statistics()
    assert stats.keying == "dtls-srtp" and stats.suite == alice_started.srtp_suite
    assert stats.packets_received > 25 and not stats.drops.get("auth-failed")

    await call.hangup()
    await asyncio.wait_for(asyncio.shield(bob_call.ended), WAIT)
    assert bob_call.reason == "the other side hung up"
    assert states(alice_events) == ["calling", "ringing", "established", "ended"]
    await settle(server)


async def test_a_certificate_swapped_on_the_way_ends_the_call_closed(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bob's DTLS presents a certificate other than the one his SDP names (what a man in the
    middle who cannot rewrite the SDP would do): alice refuses the media and ends the call."""
    server = kamailio_factory()
    mallory = DtlsCertificate.generate()

    def endpoint(role: DtlsRole, certificate: DtlsCertificate, *args: Any, **kw: Any) -> Any:
        if role is DtlsRole.CLIENT:  # bob (the answerer) is the client
            certificate = mallory
        return DtlsEndpoint(role, certificate, *args, **kw)

    monkeypatch.setattr(call_module, "DtlsEndpoint", endpoint)
    bob_heard = Recorder()
    incoming: list[Call] = []

    def bob_takes(call: Call) -> None:
        call.source, call.sink = ToneSource(440), bob_heard
        incoming.append(call)

    alice, alice_events, _bob, _ = await dtls_pair(server, ua_factory, bob_takes)
    alice_heard = Recorder()
    call = await alice.call(f"sips:bob@{server.domain}", source=ToneSource(1000), sink=alice_heard)
    await asyncio.wait_for(asyncio.shield(call.ended), WAIT)
    assert call.reason == INTERCEPTED
    assert not any(isinstance(e, MediaStarted) for e in alice_events.events)
    assert alice_heard.loud_frames() == 0 and bob_heard.loud_frames() == 0
    assert len(incoming) == 1
    await asyncio.wait_for(asyncio.shield(incoming[0].ended), WAIT)  # BYE reached bob


def assert_baresip_used_dtls(peer: BaresipPeer) -> None:
    """baresip's own word (its -s trace): a DTLS-SRTP SDP and its dtls_srtp module keyed."""
    log = peer.log_text()
    assert "UDP/TLS/RTP/SAVP" in log and "a=fingerprint:" in log, peer.log_tail()
    assert "a=crypto:" not in log, peer.log_tail()


async def test_we_call_baresip_with_dtls_srtp_and_hear_each_other(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    dtls_baresip: Callable[..., BaresipPeer],
) -> None:
    server = kamailio_factory()
    carol = await asyncio.to_thread(dtls_baresip, server, tone=BARESIP_TONE, mediaenc="dtls_srtp")
    alice_events = EventLog()
    alice = ua_factory(
        account(server, "alice", keying=MediaKeying.DTLS_SRTP), on_event=alice_events
    )
    await alice.register()
    alice_heard = Recorder()
    call = await alice.call(
        f"sips:carol@{server.domain}", source=ToneSource(OUR_TONE), sink=alice_heard
    )
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await asyncio.to_thread(carol.wait_event, "CALL_ESTABLISHED")
    await assert_dtls(alice_events)

    await wait_until(lambda: alice_heard.loud_frames() > 25, "alice hearing carol")
    assert abs(heard(alice_heard) - BARESIP_TONE) <= 20
    await asyncio.sleep(HOLD)
    await call.hangup()
    assert call.reason == "hung up"
    await asyncio.to_thread(carol.wait_event, "CALL_CLOSED")
    freq, share = baresip_heard(carol)
    assert share > 0.3 and abs(freq - OUR_TONE) <= 20, (freq, share)
    assert_baresip_used_dtls(carol)
    await settle(server)


async def test_baresip_calls_us_with_dtls_srtp_and_we_answer(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    dtls_baresip: Callable[..., BaresipPeer],
) -> None:
    server = kamailio_factory()
    carol = await asyncio.to_thread(dtls_baresip, server, tone=BARESIP_TONE, mediaenc="dtls_srtp")
    alice_events = EventLog()
    alice_heard = Recorder()
    incoming: list[Call] = []

    def alice_takes(c: Call) -> None:
        c.source, c.sink = ToneSource(OUR_TONE), alice_heard
        incoming.append(c)

    alice = ua_factory(
        account(server, "alice"),  # SDES for its own offers: answers DTLS-SRTP all the same
        on_event=alice_events,
        auto_answer=True,
        on_incoming_call=alice_takes,
    )
    await alice.register()
    await asyncio.to_thread(carol.dial, f"sip:alice@{server.domain}")
    await asyncio.to_thread(carol.wait_event, "CALL_ESTABLISHED")
    assert len(incoming) == 1
    call = incoming[0]
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await assert_dtls(alice_events)

    await wait_until(lambda: alice_heard.loud_frames() > 25, "alice hearing carol")
    assert abs(heard(alice_heard) - BARESIP_TONE) <= 20
    await asyncio.sleep(HOLD)
    await asyncio.to_thread(carol.hangup)
    await asyncio.to_thread(carol.wait_event, "CALL_CLOSED")
    await asyncio.wait_for(asyncio.shield(call.ended), WAIT)
    freq, share = baresip_heard(carol)
    assert share > 0.3 and abs(freq - OUR_TONE) <= 20, (freq, share)
    assert_baresip_used_dtls(carol)


@pytest.fixture
def dtls_linphone(tmp_path: Path) -> Iterator[Callable[..., LinphonePeer]]:
    """linphonec peers keyed by DTLS-SRTP (``media_encryption=dtls``, mandatory)."""
    require_peer("linphonec", available=find_linphonec() is not None, hint=LINPHONE_HINT)
    peers: list[LinphonePeer] = []

    def make(server: KamailioServer, user: str = "dave", **options: Any) -> LinphonePeer:
        options.setdefault("media_encryption", "dtls")
        peer = LinphonePeer(
            tmp_path / f"linphone-{user}",
            server,
            user=user,
            password=DEFAULT_USERS[user],
            **options,
        )
        peers.append(peer)
        peer.start()
        return peer

    try:
        yield make
    finally:
        for peer in peers:
            peer.stop()


def assert_linphone_used_dtls(peer: LinphonePeer, since: int) -> None:
    """linphone's own word (its log): a DTLS-SRTP SDP and DTLS as the negotiated encryption."""
    log = peer.log_text()[since:]
    assert "UDP/TLS/RTP/SAVP" in log and "a=fingerprint:" in log, peer.log_tail()
    assert "Negotiated media encryption is LinphoneMediaEncryptionDTLS" in log, peer.log_tail()


async def test_linphone_calls_us_with_dtls_srtp_and_we_answer(
    tmp_path: Path,
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    dtls_linphone: Callable[..., LinphonePeer],
) -> None:
    server = kamailio_factory(cert=LINPHONE_CERT)
    dave = await asyncio.to_thread(dtls_linphone, server, tone=LINPHONE_TONE)
    dave_rx = tmp_path / "dave_rx.wav"
    await asyncio.to_thread(dave.record, dave_rx)
    since = dave.log_offset()
    alice_events = EventLog()
    alice_heard = Recorder()
    incoming: list[Call] = []

    def alice_takes(c: Call) -> None:
        c.source, c.sink = ToneSource(OUR_TONE), alice_heard
        incoming.append(c)

    alice = ua_factory(
        account(server, "alice"),
        on_event=alice_events,
        auto_answer=True,
        on_incoming_call=alice_takes,
    )
    await alice.register()
    await asyncio.to_thread(dave.command, f"call sips:alice@{server.domain}")
    await asyncio.to_thread(dave.wait_call_state, "StreamsRunning", since=since)
    assert len(incoming) == 1
    call = incoming[0]
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await assert_dtls(alice_events)

    await wait_until(lambda: alice_heard.loud_frames() > 25, "alice hearing dave")
    assert abs(heard(alice_heard) - LINPHONE_TONE) <= 20
    await asyncio.sleep(HOLD)
    await asyncio.to_thread(dave.command, "terminate")
    await asyncio.to_thread(dave.wait_call_state, "Released", since=since)
    await asyncio.wait_for(asyncio.shield(call.ended), WAIT)
    freq, share = linphone_heard(dave_rx)
    assert share > 0.3 and abs(freq - OUR_TONE) <= 20, (freq, share)
    assert_linphone_used_dtls(dave, since)


async def test_we_call_linphone_with_dtls_srtp_and_hear_each_other(
    tmp_path: Path,
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    dtls_linphone: Callable[..., LinphonePeer],
) -> None:
    server = kamailio_factory(cert=LINPHONE_CERT)
    dave = await asyncio.to_thread(dtls_linphone, server, tone=LINPHONE_TONE)
    dave_rx = tmp_path / "dave_rx.wav"
    await asyncio.to_thread(dave.record, dave_rx)
    since = dave.log_offset()
    alice_events = EventLog()
    alice = ua_factory(
        account(server, "alice", keying=MediaKeying.DTLS_SRTP), on_event=alice_events
    )
    await alice.register()
    alice_heard = Recorder()
    call = await alice.call(
        f"sips:dave@{server.domain}", source=ToneSource(OUR_TONE), sink=alice_heard
    )
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await asyncio.to_thread(dave.wait_call_state, "StreamsRunning", since=since)
    await assert_dtls(alice_events)

    await wait_until(lambda: alice_heard.loud_frames() > 25, "alice hearing dave")
    assert abs(heard(alice_heard) - LINPHONE_TONE) <= 20
    await asyncio.sleep(HOLD)
    await call.hangup()
    await asyncio.to_thread(dave.wait_call_state, "Released", since=since)
    freq, share = linphone_heard(dave_rx)
    assert share > 0.3 and abs(freq - OUR_TONE) <= 20, (freq, share)
    assert_linphone_used_dtls(dave, since)
    await settle(server)
