"""Two MediaSessions keyed by DTLS-SRTP over real UDP sockets on loopback: the handshake runs
on the RTP socket, audio flows both ways once keyed, a wrong fingerprint ends with no media at
all, a silent peer hits the handshake bound, and strangers' DTLS, STUN and garbage are dropped
and counted (RFC 5763/5764, RFC 7983)."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace

import pytest

from softphone.media.dtls import (
    DtlsCertificate,
    DtlsEndpoint,
    DtlsError,
    DtlsState,
    FingerprintMismatchError,
)
from softphone.media.rtp_session import (
    MediaEvent,
    MediaSecurityFailed,
    MediaSession,
    ReservedPorts,
    reserve_ports,
)
from softphone.media.tone import ToneSource
from softphone.sdp.codecs import PayloadFormat
from softphone.sdp.crypto import SrtpSuite
from softphone.sdp.direction import Direction
from softphone.sdp.fingerprint import DtlsRole, Fingerprint, SetupRole
from softphone.sdp.policy import Keying, Negotiated
from tests.interop.helpers import Recorder, heard
from tests.media.test_session import HOST, wait_for

PCMU = PayloadFormat(0, "PCMU", 8000)


def negotiated(theirs: ReservedPorts, fingerprint: Fingerprint, role: DtlsRole) -> Negotiated:
    return Negotiated(
        media_index=0,
        proto="UDP/TLS/RTP/SAVP",
        codec=PCMU,
        codecs=(PCMU,),
        telephone_event=None,
        remote_rtp=(HOST, theirs.rtp_port),
        remote_rtcp=(HOST, theirs.rtp_port),
        rtcp_mux=True,
        direction=Direction.SENDRECV,
        keying=Keying.DTLS_SRTP,
        local_setup=SetupRole.ACTIVE if role is DtlsRole.CLIENT else SetupRole.PASSIVE,
        dtls_role=role,
        remote_fingerprints=(fingerprint,),
    )


def sessions(
    *, b_presents: DtlsCertificate | None = None, timeout: float = 10.0
) -> tuple[MediaSession, MediaSession, Recorder, Recorder, list[MediaEvent]]:
    a_ports, b_ports = reserve_ports(HOST), reserve_ports(HOST)
    a_cert, b_cert = DtlsCertificate.generate(), DtlsCertificate.generate()
    b_real = b_presents or b_cert
    rec_a, rec_b = Recorder(), Recorder()
    events_a: list[MediaEvent] = []
    a = MediaSession(
        negotiated(b_ports, b_cert.fingerprint(), DtlsRole.CLIENT),
        ports=a_ports,
        source=ToneSource(1000),
        sink=rec_a,
        on_event=events_a.append,
        dtls=DtlsEndpoint(
            DtlsRole.CLIENT, a_cert, (b_cert.fingerprint(),), handshake_timeout=timeout
        ),
    )
    b = MediaSession(
        negotiated(a_ports, a_cert.fingerprint(), DtlsRole.SERVER),
        ports=b_ports,
        source=ToneSource(600),
        sink=rec_b,
        dtls=DtlsEndpoint(DtlsRole.SERVER, b_real, (a_cert.fingerprint(),)),
    )
    return a, b, rec_a, rec_b, events_a


async def test_dtls_keys_srtp_and_audio_flows_both_ways() -> None:
    a, b, rec_a, rec_b, _ = sessions()
    await b.start()
    await a.start()
    try:
        keys_a = await asyncio.wait_for(a.wait_secured(), 15)
        keys_b = await asyncio.wait_for(b.wait_secured(), 15)
        assert keys_a is not None and keys_b is not None
        assert keys_a.suite is keys_b.suite is SrtpSuite.AEAD_AES_256_GCM
        await wait_for(lambda: rec_a.loud_frames() > 20 and rec_b.loud_frames() > 20, "audio")
        assert abs(heard(rec_a) - 600) <= 20 and abs(heard(rec_b) - 1000) <= 20
        stats = a.statistics()
        assert stats.encrypted and stats.keying == "dtls-srtp"
        assert stats.suite == "AEAD_AES_256_GCM"
        assert not stats.drops.get("auth-failed")
    finally:
        await a.stop()
        await b.stop()


async def test_a_certificate_not_in_the_sdp_fails_closed_and_nothing_is_sent() -> None:
    mallory = DtlsCertificate.generate()
    a, b, _, _, events_a = sessions(b_presents=mallory)
    await b.start()
    await a.start()
    try:
        with pytest.raises(FingerprintMismatchError) as caught:
            await asyncio.wait_for(a.wait_secured(), 15)
        assert "someone may be intercepting" in caught.value.reason
        assert any(isinstance(e, MediaSecurityFailed) for e in events_a)
        await asyncio.sleep(0.3)
        assert a.packets_sent == 0 and b.packets_sent == 0  # not one RTP packet
        assert not a.keyed
    finally:
        await a.stop()
        await b.stop()


async def test_a_peer_that_never_answers_hits_the_handshake_bound() -> None:
    silent = reserve_ports(HOST)  # bound but nobody reads it
    a_cert, b_cert = DtlsCertificate.generate(), DtlsCertificate.generate()
    events: list[MediaEvent] = []
    a = MediaSession(
        negotiated(silent, b_cert.fingerprint(), DtlsRole.CLIENT),
        ports=reserve_ports(HOST),
        on_event=events.append,
        dtls=DtlsEndpoint(DtlsRole.CLIENT, a_cert, (b_cert.fingerprint(),), handshake_timeout=2.5),
    )
    await a.start()
    try:
        with pytest.raises(DtlsError, match=r"did not finish within 2\.5 s"):
            await asyncio.wait_for(a.wait_secured(), 15)
        # the ClientHello went out more than once (OpenSSL's 1 s retransmission timer)
        hellos = 0
        silent.rtp.setblocking(False)
        while True:
            try:
                silent.rtp.recv(2048)
            except BlockingIOError:
                break
            hellos += 1
        assert hellos >= 2
        assert isinstance(events[-1], MediaSecurityFailed)
    finally:
        await a.stop()
        silent.close()


async def test_strangers_dtls_stun_and_garbage_are_dropped_and_counted() -> None:
    a, b, rec_a, _, _ = sessions()
    await b.start()
    await a.start()
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind((HOST, 0))
    try:
        keys = await asyncio.wait_for(a.wait_secured(), 15)
        await asyncio.wait_for(b.wait_secured(), 15)
        assert a.dtls is not None and a.dtls.state is DtlsState.CONNECTED
        hello = DtlsEndpoint(DtlsRole.CLIENT, DtlsCertificate.generate(), ()).start(0.0)
        target = (HOST, a.local_port)
        for datagram in hello:
            stranger.sendto(datagram, target)  # a stranger's DTLS
        stranger.sendto(b"\x00\x01\x00\x00" + bytes(16), target)  # STUN binding request
        stranger.sendto(b"\xff garbage", target)
        await wait_for(
            lambda: a.statistics().drops.get("unexpected-source", 0) >= len(hello),
            "the stranger's DTLS dropped",
        )
        await wait_for(lambda: a.statistics().drops.get("stun", 0) >= 1, "STUN dropped")
        await wait_for(lambda: a.statistics().drops.get("malformed", 0) >= 1, "garbage")
        assert a.dtls.keys is keys and a.dtls.state is DtlsState.CONNECTED
        before = rec_a.loud_frames()
        await wait_for(lambda: rec_a.loud_frames() > before + 10, "audio goes on")
        # a forged record "from the peer's address" after the handshake changes nothing
        forged = bytes([23, 0xFE, 0xFD, 0, 1]) + bytes(6) + (20).to_bytes(2, "big") + bytes(20)
        a.receive_dtls(forged, 0.0)
        assert a.statistics().drops.get("dtls-after-handshake") == 1
        assert a.dtls.keys is keys
    finally:
        stranger.close()
        await a.stop()
        await b.stop()


async def test_a_dtls_endpoint_needs_a_dtls_negotiation() -> None:
    ports = reserve_ports(HOST)
    cert = DtlsCertificate.generate()
    sdes = replace(negotiated(ports, cert.fingerprint(), DtlsRole.CLIENT), keying=Keying.NONE)
    with pytest.raises(ValueError, match="not keyed by DTLS-SRTP"):
        MediaSession(sdes, ports=ports, dtls=DtlsEndpoint(DtlsRole.CLIENT, cert, ()))
    ports.close()
