"""Calls between our UserAgent and a real baresip (Debian 1.0) through a real Kamailio over TLS.

carol is baresip (tests/interop/baresip.py: REGISTERs ``sip:carol@example.test;transport=tls``
through Kamailio's TLS port, SDES-SRTP mandatory, microphone = ``ausine`` at BARESIP_TONE Hz,
received audio dumped to a wav by ``sndfile``); alice is our softphone (``sips:``, TLS, SRTP
mandatory, sending OUR_TONE Hz). Each side must find the other's tone in what it received
(Goertzel). Kamailio relays signalling only; media flows directly on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from softphone.media.tone import ToneSource, dominant_frequency, samples
from softphone.ua.call import Call, CallPhase
from softphone.ua.events import MediaStarted
from softphone.ua.useragent import UserAgent
from tests.conftest import require_peer
from tests.interop.baresip import BaresipPeer, find_baresip, find_module_dir
from tests.interop.helpers import Recorder, account, heard, settle, states, wait_until
from tests.interop.kamailio import DEFAULT_USERS, KamailioServer
from tests.ua.test_registration import WAIT, EventLog

pytestmark = pytest.mark.interop

OUR_TONE = 1000
BARESIP_TONE = 600
HOLD = 2.0  # seconds of two-way audio before hanging up
BARESIP_HINT = "apt-get install baresip baresip-core (or: make test as root)"
SRTP_SUITES = {
    "AEAD_AES_256_GCM",
    "AEAD_AES_128_GCM",
    "AES_CM_128_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_32",
}


@pytest.fixture
def baresip_factory(tmp_path: Path) -> Iterator[Callable[..., BaresipPeer]]:
    require_peer("baresip", available=find_baresip() is not None, hint=BARESIP_HINT)
    require_peer("baresip-core", available=find_module_dir() is not None, hint=BARESIP_HINT)
    peers: list[BaresipPeer] = []

    def make(server: KamailioServer, user: str = "carol", **options: object) -> BaresipPeer:
        peer = BaresipPeer(
            tmp_path / f"baresip-{user}",
            server,
            user=user,
            password=DEFAULT_USERS[user],
            **options,  # type: ignore[arg-type]
        )
        peers.append(peer)
        peer.start()
        return peer

    try:
        yield make
    finally:
        for peer in peers:
            peer.stop()


def baresip_heard(peer: BaresipPeer) -> tuple[float, float]:
    pcm, rate = BaresipPeer.read_mono(peer.received_wav())
    data = samples(pcm)
    # skip the first half second (jitter buffer, SRTP start), look at up to 1 s after it
    data = data[rate // 2 : rate // 2 + rate]
    assert len(data) > rate // 4, f"baresip received only {len(samples(pcm))} samples"
    return dominant_frequency(data, range(200, 3600, 20), rate)


def assert_baresip_used_srtp(peer: BaresipPeer) -> None:
    """baresip's own word (its log, -s trace): SDES keys in the SDP and its srtp module on."""
    log = peer.log_text()
    assert "a=crypto:" in log and "RTP/SAVP" in log, peer.log_tail()
    assert "srtp: audio: SRTP is Enabled" in log, peer.log_tail()


async def assert_encrypted(events: EventLog) -> None:
    started = await events.wait_for("media_started")
    assert isinstance(started, MediaStarted)
    assert started.encrypted and started.keying == "sdes", started
    assert started.srtp_suite in SRTP_SUITES


async def test_we_call_baresip_over_tls_with_srtp_and_hear_each_other(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    baresip_factory: Callable[..., BaresipPeer],
) -> None:
    server = kamailio_factory()
    carol = await asyncio.to_thread(baresip_factory, server, tone=BARESIP_TONE)
    alice_events = EventLog()
    alice = ua_factory(account(server, "alice"), on_event=alice_events)
    await alice.register()

    alice_heard = Recorder()
    call = await alice.call(
        f"sips:carol@{server.domain}", source=ToneSource(OUR_TONE), sink=alice_heard
    )
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await asyncio.to_thread(carol.wait_event, "CALL_ESTABLISHED")
    await assert_encrypted(alice_events)

    await wait_until(lambda: alice_heard.loud_frames() > 25, "alice hearing carol")
    assert abs(heard(alice_heard) - BARESIP_TONE) <= 20
    assert call.media is not None
    stats = call.media.statistics()
    assert stats.encrypted and stats.packets_received > 25 and not stats.drops.get("auth")
    await asyncio.sleep(HOLD)

    await call.hangup()
    assert call.phase is CallPhase.ENDED and call.reason == "hung up"
    await asyncio.to_thread(carol.wait_event, "CALL_CLOSED")
    assert states(alice_events) == ["calling", "ringing", "established", "ended"]

    freq, share = baresip_heard(carol)
    assert share > 0.3 and abs(freq - OUR_TONE) <= 20, (freq, share)
    assert_baresip_used_srtp(carol)
    await settle(server)


async def test_baresip_calls_us_and_we_auto_answer(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    baresip_factory: Callable[..., BaresipPeer],
) -> None:
    server = kamailio_factory()
    carol = await asyncio.to_thread(baresip_factory, server, tone=BARESIP_TONE)
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

    await asyncio.to_thread(carol.dial, f"sip:alice@{server.domain}")
    await asyncio.to_thread(carol.wait_event, "CALL_ESTABLISHED")
    assert len(incoming) == 1
    call = incoming[0]
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await assert_encrypted(alice_events)

    await wait_until(lambda: alice_heard.loud_frames() > 25, "alice hearing carol")
    assert abs(heard(alice_heard) - BARESIP_TONE) <= 20
    await asyncio.sleep(HOLD)

    await asyncio.to_thread(carol.hangup)
    await asyncio.to_thread(carol.wait_event, "CALL_CLOSED")
    await asyncio.wait_for(asyncio.shield(call.ended), WAIT)
    assert call.reason == "the other side hung up"

    freq, share = baresip_heard(carol)
    assert share > 0.3 and abs(freq - OUR_TONE) <= 20, (freq, share)
    assert_baresip_used_srtp(carol)
