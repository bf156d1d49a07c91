"""Calls between our UserAgent and a real linphonec (liblinphone 5.1) through a real Kamailio.

dave is linphonec (tests/interop/linphone.py: REGISTERs ``sips:dave@example.test`` over TLS,
verifying Kamailio's certificate against our CA *and* by name, SDES-SRTP mandatory, wav files
as its sound card: it plays LINPHONE_TONE Hz and records what it hears). linphone resolves
names itself and this machine has no DNS for example.test, so it reaches Kamailio by IP and
Kamailio presents the ``good-ip`` certificate (SAN example.test and 127.0.0.1). alice is our
softphone (``sips:``, TLS, SRTP mandatory, sending OUR_TONE Hz). Each side must find the
other's tone in what it received (Goertzel). Kamailio relays signalling only.
"""

from __future__ import annotations

import asyncio
import re
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from softphone.media.tone import ToneSource, dominant_frequency, samples
from softphone.ua.call import Call, CallPhase
from softphone.ua.useragent import UserAgent
from tests.conftest import require_peer
from tests.interop.helpers import Recorder, account, heard, settle, states, wait_until
from tests.interop.kamailio import DEFAULT_USERS, KamailioServer
from tests.interop.linphone import LinphoneError, LinphonePeer, find_linphonec
from tests.interop.test_baresip_call import assert_encrypted
from tests.ua.test_registration import WAIT, EventLog

pytestmark = pytest.mark.interop

OUR_TONE = 1000
LINPHONE_TONE = 700
HOLD = 2.0  # seconds of two-way audio before hanging up
LINPHONE_HINT = "apt-get install linphone-cli (or: make test as root)"
CERT = "good-ip"  # Kamailio's certificate names 127.0.0.1 too: linphone checks it by IP


@pytest.fixture
def linphone_factory(tmp_path: Path) -> Iterator[Callable[..., LinphonePeer]]:
    require_peer("linphonec", available=find_linphonec() is not None, hint=LINPHONE_HINT)
    peers: list[LinphonePeer] = []

    def make(server: KamailioServer, user: str = "dave", **options: object) -> LinphonePeer:
        peer = LinphonePeer(
            tmp_path / f"linphone-{user}",
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


def linphone_heard(path: Path) -> tuple[float, float]:
    """(dominant frequency, its share) in the loudest second of linphone's recording."""
    with wave.open(str(path)) as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        raw = w.readframes(w.getnframes())
    assert width == 2, f"{path}: {width * 8}-bit samples"
    data = samples(raw)[::channels]
    assert len(data) > rate, f"linphone recorded only {len(data)} samples at {rate} Hz"
    step = rate // 4
    best = max(
        range(0, len(data) - rate + 1, step),
        key=lambda i: sum(abs(x) for x in data[i : i + rate]),
    )
    return dominant_frequency(data[best : best + rate], range(200, 3600, 20), rate)


def assert_linphone_used_srtp(peer: LinphonePeer, since: int) -> None:
    """linphone's own word (its log): SDES keys in the SDP, SAVP profile, SRTP keys set."""
    log = peer.log_text()[since:]
    assert "a=crypto:" in log and "RTP/SAVP" in log, peer.log_tail()
    assert "Negotiated media encryption is LinphoneMediaEncryptionSRTP" in log, peer.log_tail()
    assert "media_stream_set_srtp_recv_key()" in log, peer.log_tail()
    assert "media_stream_set_srtp_send_key()" in log, peer.log_tail()


async def test_we_call_linphone_over_tls_with_srtp_and_hear_each_other(
    tmp_path: Path,
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    linphone_factory: Callable[..., LinphonePeer],
) -> None:
    server = kamailio_factory(cert=CERT)
    dave = await asyncio.to_thread(linphone_factory, server, tone=LINPHONE_TONE)
    dave_rx = tmp_path / "dave_rx.wav"
    await asyncio.to_thread(dave.record, dave_rx)
    since = dave.log_offset()
    alice_events = EventLog()
    alice = ua_factory(account(server, "alice"), on_event=alice_events)
    await alice.register()

    alice_heard = Recorder()
    call = await alice.call(
        f"sips:dave@{server.domain}", source=ToneSource(OUR_TONE), sink=alice_heard
    )
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await asyncio.to_thread(dave.wait_call_state, "StreamsRunning", since=since)
    await assert_encrypted(alice_events)

    await wait_until(lambda: alice_heard.loud_frames() > 25, "alice hearing dave")
    assert abs(heard(alice_heard) - LINPHONE_TONE) <= 20
    assert call.media is not None
    stats = call.media.statistics()
    assert stats.encrypted and stats.packets_received > 25 and not stats.drops.get("auth")
    await asyncio.sleep(HOLD)

    await call.hangup()
    assert call.phase is CallPhase.ENDED and call.reason == "hung up"
    await asyncio.to_thread(dave.wait_call_state, "Released", since=since)
    assert states(alice_events) == ["calling", "ringing", "established", "ended"]

    freq, share = linphone_heard(dave_rx)
    assert share > 0.3 and abs(freq - OUR_TONE) <= 20, (freq, share)
    assert_linphone_used_srtp(dave, since)
    await settle(server)


async def test_linphone_calls_us_and_we_auto_answer(
    tmp_path: Path,
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    linphone_factory: Callable[..., LinphonePeer],
) -> None:
    server = kamailio_factory(cert=CERT)
    dave = await asyncio.to_thread(linphone_factory, server, tone=LINPHONE_TONE)
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
    await assert_encrypted(alice_events)

    await wait_until(lambda: alice_heard.loud_frames() > 25, "alice hearing dave")
    assert abs(heard(alice_heard) - LINPHONE_TONE) <= 20
    await asyncio.sleep(HOLD)

    await asyncio.to_thread(dave.command, "terminate")
    await asyncio.to_thread(dave.wait_call_state, "Released", since=since)
    await asyncio.wait_for(asyncio.shield(call.ended), WAIT)
    assert call.reason == "the other side hung up"

    freq, share = linphone_heard(dave_rx)
    assert share > 0.3 and abs(freq - OUR_TONE) <= 20, (freq, share)
    assert_linphone_used_srtp(dave, since)


@pytest.mark.parametrize(("cert", "flag"), [("good", "CN-mismatch"), ("unknownca", "not-trusted")])
async def test_linphone_checks_kamailio_certificate(
    cert: str,
    flag: str,
    tmp_path: Path,
    kamailio_factory: Callable[..., KamailioServer],
    linphone_factory: Callable[..., LinphonePeer],
) -> None:
    """The harness really verifies: without 127.0.0.1 in the certificate (``good``) or with
    an untrusted issuer (``unknownca``), linphone refuses the TLS handshake and the REGISTER."""
    server = kamailio_factory(cert=cert)
    with pytest.raises(LinphoneError, match="LinphoneRegistrationFailed"):
        await asyncio.to_thread(linphone_factory, server)
    log = (tmp_path / "linphone-dave" / "linphone.log").read_text(errors="replace")
    assert re.search(rf"depth=\[0\], flags=\[[^]]*{flag}", log), log[-3000:]
    assert server.registered_contacts("dave") == []
