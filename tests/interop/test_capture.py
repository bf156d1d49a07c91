"""A capture of a real call proves what the call window claims: SIP in TLS, media in SRTP.

Two softphone UserAgents call each other through a real Kamailio over TLS (as in
test_kamailio_call.py) while the real dumpcap records ``lo``: the signalling port from before
registration, the two media ports once the call is up. tshark reads the files back
(tests/interop/capture.py). Then:

1. no plaintext SIP or SDP in any TCP payload on the signalling port, and every byte of each
   direction of each connection is a TLS record (RFC 8446 §5.1);
2. each direction of the RTP stream authenticates and decrypts as SRTP (pylibsrtp, RFC 3711)
   with the master key the sender put in its ``a=crypto`` (RFC 4568 §6.1), and decodes to the
   sender's tone; the same payloads undecrypted do not; the other direction's key does not
   authenticate them;
3. controls, so that the checks above can fail: a plain-RTP call (the caller's policy
   ``optional``, the callee's ``off``) fails the SRTP check and its payloads decode to the
   tone as they are; SIP sent in clear over TCP is caught by the plaintext check.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from softphone.media.tone import ToneSource
from softphone.sdp.crypto import SrtpSuite
from softphone.sdp.policy import Keying, Negotiated, SrtpPolicy
from softphone.ua.call import Call, CallPhase
from softphone.ua.useragent import UserAgent
from tests.conftest import require_peer
from tests.interop.capture import (
    CAPTURE_HINT,
    Capture,
    CapturedPacket,
    check_srtp,
    find_capture_tools,
    plaintext_sip,
    stream_bytes,
    tls_record_types,
)
from tests.interop.helpers import Recorder, account, wait_until
from tests.interop.kamailio import KamailioServer
from tests.interop.test_kamailio_call import registered_pair
from tests.ua.test_registration import WAIT

pytestmark = pytest.mark.interop

ALICE_TONE, BOB_TONE = 1000, 440
#: Media frames each side must hear while the RTP capture runs (about 2 s at 50 per second).
HEARD_DURING_CAPTURE = 100


def require_capture() -> None:
    require_peer("tshark", available=find_capture_tools() is not None, hint=CAPTURE_HINT)


@dataclass
class CapturedCall:
    sip: list[CapturedPacket]
    rtp: list[CapturedPacket]
    alice_port: int
    bob_port: int
    negotiated: Negotiated  # alice's view

    def datagrams(self, src: int, dst: int) -> list[bytes]:
        return [
            p.payload
            for p in self.rtp
            if p.transport == "udp" and p.src_port == src and p.dst_port == dst
        ]


async def capture_call(
    server: KamailioServer,
    ua_factory: Callable[..., UserAgent],
    tmp_path: Path,
    *,
    alice_srtp: SrtpPolicy | None = None,
    bob_account: dict[str, Any] | None = None,
) -> CapturedCall:
    """alice calls bob through Kamailio under capture; each sends a tone for ~2 s."""
    incoming: list[Call] = []
    alice_heard, bob_heard = Recorder(), Recorder()

    def bob_takes(call: Call) -> None:
        call.source, call.sink = ToneSource(BOB_TONE), bob_heard
        incoming.append(call)

    sip = Capture(tmp_path / "sip.pcapng", f"tcp port {server.tls_port}")
    await asyncio.to_thread(sip.start)
    try:
        alice, _, _bob, _ = await registered_pair(
            server,
            ua_factory,
            bob_options={"auto_answer": True, "on_incoming_call": bob_takes},
            bob_account=bob_account,
        )
        if alice_srtp is not None:
            alice.account = account(server, "alice", srtp=alice_srtp)
        call = await alice.call("bob", source=ToneSource(ALICE_TONE), sink=alice_heard)
        await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
        await wait_until(lambda: len(incoming) == 1, "bob's call")
        bob_call = incoming[0]
        await bob_call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
        await wait_until(lambda: call.media is not None and bob_call.media is not None, "media")
        assert call.media is not None and bob_call.media is not None
        assert call.negotiated is not None
        alice_port, bob_port = call.media.local_port, bob_call.media.local_port
        rtp = Capture(tmp_path / "rtp.pcapng", f"udp port {alice_port} and udp port {bob_port}")
        await asyncio.to_thread(rtp.start)
        try:
            a0, b0 = len(alice_heard.frames), len(bob_heard.frames)
            await wait_until(
                lambda: (
                    len(alice_heard.frames) - a0 > HEARD_DURING_CAPTURE
                    and len(bob_heard.frames) - b0 > HEARD_DURING_CAPTURE
                ),
                "two seconds of audio both ways",
            )
        finally:
            await asyncio.to_thread(rtp.stop)
        negotiated = call.negotiated
        await call.hangup()
        await asyncio.wait_for(asyncio.shield(bob_call.ended), WAIT)
    finally:
        await asyncio.to_thread(sip.stop)
    return CapturedCall(
        sip=await asyncio.to_thread(sip.packets),
        rtp=await asyncio.to_thread(rtp.packets),
        alice_port=alice_port,
        bob_port=bob_port,
        negotiated=negotiated,
    )


def assert_signalling_is_tls_only(captured: CapturedCall, tls_port: int) -> None:
    assert captured.sip, "nothing captured on the signalling port"
    assert all(p.transport == "tcp" for p in captured.sip)
    assert plaintext_sip(captured.sip) == []
    directions = {(p.src_port, p.dst_port) for p in captured.sip if p.payload}
    # alice's and bob's connections, both ways: each is TLS from its first byte to its last.
    assert len(directions) >= 4, directions
    application_data = 0
    for src, dst in directions:
        assert tls_port in (src, dst)
        types = tls_record_types(stream_bytes(captured.sip, src, dst))
        assert 22 in types and set(types) <= {20, 21, 22, 23}, (src, dst, types)
        application_data += types.count(23)
    assert application_data >= 8  # REGISTERs, INVITE, 407, ACK, 100/180/200, BYE ...


async def test_sips_call_shows_tls_signalling_and_srtp_media_on_the_wire(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    tmp_path: Path,
) -> None:
    require_capture()
    server = kamailio_factory()
    captured = await capture_call(server, ua_factory, tmp_path)

    assert_signalling_is_tls_only(captured, server.tls_port)

    negotiated = captured.negotiated
    assert negotiated.keying is Keying.SDES
    assert negotiated.suite is not None
    assert negotiated.local_crypto is not None and negotiated.remote_crypto is not None
    alice_key = negotiated.local_crypto.key.key_salt  # keys what alice sends
    bob_key = negotiated.remote_crypto.key.key_salt  # keys what bob sends
    to_bob = captured.datagrams(captured.alice_port, captured.bob_port)
    to_alice = captured.datagrams(captured.bob_port, captured.alice_port)

    alice_stream = check_srtp(to_bob, negotiated.suite, alice_key, negotiated.codec)
    alice_stream.assert_srtp(ALICE_TONE)
    bob_stream = check_srtp(to_alice, negotiated.suite, bob_key, negotiated.codec)
    bob_stream.assert_srtp(BOB_TONE)
    # SRTCP, when it rides on the RTP port (rtcp-mux), authenticates too.
    for stream in (alice_stream, bob_stream):
        assert stream.rtcp_authenticated == stream.rtcp_packets

    # The other direction's key authenticates nothing: the check depends on the right key.
    wrong = check_srtp(to_bob, negotiated.suite, bob_key, negotiated.codec)
    assert wrong.authenticated == 0 and wrong.rtp_packets == alice_stream.rtp_packets
    with pytest.raises(AssertionError, match="packets authenticate"):
        wrong.assert_srtp(ALICE_TONE)


async def test_plain_rtp_call_fails_the_srtp_check(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    tmp_path: Path,
) -> None:
    """The control: the same capture and checks on a call whose media is plain RTP/AVP."""
    require_capture()
    server = kamailio_factory()
    captured = await capture_call(
        server,
        ua_factory,
        tmp_path,
        alice_srtp=SrtpPolicy.OPTIONAL,
        bob_account={"srtp": SrtpPolicy.OFF},
    )
    assert_signalling_is_tls_only(captured, server.tls_port)  # still SIPS
    negotiated = captured.negotiated
    assert negotiated.keying is Keying.NONE
    to_bob = captured.datagrams(captured.alice_port, captured.bob_port)
    suite = SrtpSuite.AES_CM_128_HMAC_SHA1_80
    verdict = check_srtp(to_bob, suite, os.urandom(suite.key_salt_length), negotiated.codec)
    assert verdict.rtp_packets >= 20
    assert verdict.authenticated == 0
    assert verdict.plain_tone == ALICE_TONE and verdict.plain_share > 0.9
    with pytest.raises(AssertionError, match="plain RTP"):
        verdict.assert_srtp(ALICE_TONE)


async def test_sip_in_clear_over_tcp_is_caught(tmp_path: Path) -> None:
    """The control for the signalling check: SIP written to a plain TCP socket on lo."""
    require_capture()
    received = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        writer.write(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        received.set()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    capture = Capture(tmp_path / "plain.pcapng", f"tcp port {port}")
    await asyncio.to_thread(capture.start)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"INVITE sip:bob@example.test SIP/2.0\r\nContent-Type: application/sdp\r\n\r\n"
            b"v=0\r\nm=audio 4000 RTP/SAVP 0\r\n"
            b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAAAAAAAAAAAAAAAAAAAAAA\r\n"
        )
        await writer.drain()
        await asyncio.wait_for(received.wait(), WAIT)
        await reader.read()
        writer.close()
    finally:
        await asyncio.to_thread(capture.stop)
        server.close()
    packets = await asyncio.to_thread(capture.packets)
    markers = {marker for _, marker in plaintext_sip(packets)}
    assert {b"INVITE sip", b"SIP/2.0 ", b"m=audio", b"a=crypto", b"inline:"} <= markers
    client = next(p for p in packets if p.payload and p.dst_port == port)
    with pytest.raises(ValueError, match="not a TLS record"):
        tls_record_types(stream_bytes(packets, client.src_port, port))
