"""Hold, resume and every other re-INVITE (RFC 3261 §14, RFC 3264 §8, RFC 6337) on one Call.

The host is the recording fake of test_call.py; the other phone is played by the SDP layer
(its offers and answers built with softphone.sdp, its requests with a real Dialog); the call's
media is a real MediaSession on loopback, so "no RTP while held" is read off its counters.
The same rules with two real user agents through a real Kamailio are in
tests/interop/test_kamailio_hold.py.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import replace

import pytest

import softphone.ua.reinvite as reinvite_module
from softphone.media.rtp_session import ReservedPorts, reserve_ports
from softphone.sdp.codecs import Codec
from softphone.sdp.direction import Direction
from softphone.sdp.offer_answer import Offer, build_answer, build_offer, new_origin, next_origin
from softphone.sdp.policy import LocalMedia, Negotiated, SrtpPolicy
from softphone.sdp.session import SessionDescription, parse_sdp
from softphone.sip.dialog import Dialog
from softphone.sip.headers import NameAddr
from softphone.sip.message import Request, Response
from softphone.sip.transaction import InviteServerTransaction
from softphone.sip.uri import parse_uri
from softphone.ua.call import Call, CallError, CallPhase
from softphone.ua.events import CallHeld, MediaDowngraded, MediaStarted
from softphone.ua.reinvite import (
    DOWNGRADE_ANSWER,
    DOWNGRADE_OFFER,
    glare_delay,
    retry_after,
)
from tests.ua.test_call import FakeHost, answer_to, outgoing
from tests.ua.test_registration import WAIT

BOB_CONTACT = "<sips:bob@127.0.0.1:40001>"


class Peer:
    """The other phone, as SDP and a dialog: answers and offers like a real one would."""

    def __init__(self, srtp: SrtpPolicy = SrtpPolicy.MANDATORY, telephone_event: bool = True):
        self.ports: ReservedPorts = reserve_ports("127.0.0.1")
        self.local = LocalMedia(
            "127.0.0.1", self.ports.rtp_port, srtp=srtp, telephone_event=telephone_event
        )
        self.sdp: SessionDescription | None = None
        self.negotiated: Negotiated | None = None
        self.dialog: Dialog | None = None

    def close(self) -> None:
        self.ports.close()

    def answer(
        self, body: bytes, *, local: LocalMedia | None = None, keep_encryption: bool = True
    ) -> bytes:
        origin = new_origin() if self.sdp is None else next_origin(self.sdp.origin)
        answer = build_answer(
            local or self.local,
            parse_sdp(body),
            signalling_protected=True,
            origin=origin,
            previous=self.negotiated if keep_encryption else None,
        )
        self.sdp, self.negotiated = answer.sdp, answer.negotiated
        return bytes(answer.sdp)

    def offer(self, local: LocalMedia | None = None) -> Offer:
        assert self.sdp is not None
        offer = build_offer(
            local or self.local,
            signalling_protected=True,
            origin=next_origin(self.sdp.origin),
            previous_sdp=self.sdp,
        )
        self.sdp = offer.sdp
        return offer

    def reinvite(self, body: bytes = b"") -> Request:
        assert self.dialog is not None
        return self.dialog.create_request(
            "INVITE",
            body=body,
            content_type="application/sdp" if body else None,
            headers=[("Via", "SIP/2.0/TLS 127.0.0.1:40001;branch=z9hG4bK" + new_origin().sess_id)],
        )


async def established(host: FakeHost, peer: Peer) -> Call:
    """An outgoing call answered by ``peer``: ACKed, media running."""
    call = outgoing(host)
    invite = host.invites[0]
    ok = answer_to(invite, 200, body=peer.answer(invite.body), Contact=BOB_CONTACT)
    ok.headers.add("Content-Type", "application/sdp")
    peer.dialog = Dialog.from_uas(invite, "bobtag", NameAddr(parse_uri(BOB_CONTACT[1:-1])))
    assert host.on_response is not None
    host.on_response(ok)
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    return call


def ok_for(request: Request, body: bytes) -> Response:
    response = answer_to(request, 200, body=body, Contact=BOB_CONTACT)
    response.headers.add("Content-Type", "application/sdp")
    return response


async def next_invite(host: FakeHost, count: int) -> Request:
    async with asyncio.timeout(WAIT):
        while len(host.invites) < count:
            await asyncio.sleep(0.005)
    return host.invites[count - 1]


def deliver(call: Call, request: Request) -> InviteServerTransaction:
    """What the UA does with an in-dialog INVITE: the dialog checks it, the call answers."""
    assert call.dialog is not None
    call.dialog.receive_request(request)
    tx = InviteServerTransaction(request, 0.0, reliable=True)
    call.receive_reinvite(request, tx)
    return tx


def held_events(host: FakeHost) -> list[tuple[str, bool]]:
    return [(e.by, e.held) for e in host.events if isinstance(e, CallHeld)]


def audio_of(body: bytes) -> str:
    return next(line for line in body.decode().splitlines() if line.startswith("m=audio"))


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer()
    yield p
    p.close()


async def hang_up(call: Call) -> None:
    await call.hangup()
    assert call.phase is CallPhase.ENDED


# -- hold and resume, ours --------------------------------------------------------------------


async def test_hold_sends_sendonly_same_session_next_version_same_key(peer: Peer) -> None:
    host = FakeHost()
    call = await established(host, peer)
    first = parse_sdp(host.invites[0].body)
    hold = asyncio.ensure_future(call.hold())
    reinvite = await next_invite(host, 2)
    sdp = parse_sdp(reinvite.body)
    assert sdp.origin.sess_id == first.origin.sess_id
    assert sdp.origin.sess_version == first.origin.sess_version + 1  # RFC 3264 §8
    assert sdp.media[0].direction(sdp) is Direction.SENDONLY
    assert sdp.media[0].proto == "RTP/SAVP" and sdp.media[0].crypto()  # policy kept
    # RFC 4568 §7.1.4: the key in use is offered again (no re-keying on hold), the suites
    # not in use get fresh keys.
    assert call.negotiated is not None and call.negotiated.local_crypto is not None
    in_use = call.negotiated.local_crypto
    keys = {c.suite: c.key.key_salt for c in sdp.media[0].crypto()}
    assert keys[in_use.suite] == in_use.key.key_salt
    assert sdp.media[0].crypto()[0].suite is in_use.suite  # the suite in use first (baresip)
    old_keys = {c.suite: c.key.key_salt for c in first.media[0].crypto()}
    assert all(keys[s] != old_keys[s] for s in keys if s is not in_use.suite)
    # In the dialog: same Call-ID and tags, next CSeq, to the peer's Contact.
    assert reinvite.call_id == host.invites[0].call_id
    assert reinvite.to.tag == "bobtag" and reinvite.from_.tag == host.invites[0].from_.tag
    assert call.dialog is not None and reinvite.cseq.seq == call.dialog.local_seq
    assert str(reinvite.uri) == BOB_CONTACT[1:-1]

    assert host.on_response is not None
    host.on_response(ok_for(reinvite, peer.answer(reinvite.body)))
    await asyncio.wait_for(hold, WAIT)
    assert peer.negotiated is not None and peer.negotiated.direction is Direction.RECVONLY
    ack = host.direct[-1]
    assert ack.method == "ACK" and ack.cseq.seq == reinvite.cseq.seq
    assert call.held_by_us and not call.held_by_peer and call.held
    assert held_events(host) == [("us", True)]
    assert call.phase is CallPhase.ESTABLISHED
    media = call.media
    assert media is not None and not media.negotiated.direction.sends
    sent = media.packets_sent
    await asyncio.sleep(0.3)
    assert media.packets_sent == sent  # no RTP while we hold

    resume = asyncio.ensure_future(call.resume())
    again = await next_invite(host, 3)
    sdp = parse_sdp(again.body)
    assert sdp.origin.sess_version == first.origin.sess_version + 2
    assert sdp.media[0].direction(sdp) is Direction.SENDRECV
    host.on_response(ok_for(again, peer.answer(again.body)))
    await asyncio.wait_for(resume, WAIT)
    assert not call.held and held_events(host) == [("us", True), ("us", False)]
    async with asyncio.timeout(WAIT):
        while media.packets_sent == sent:
            await asyncio.sleep(0.02)
    await hang_up(call)


async def test_hold_refused_leaves_the_call_as_it_was(peer: Peer) -> None:
    host = FakeHost()
    call = await established(host, peer)
    hold = asyncio.ensure_future(call.hold())
    reinvite = await next_invite(host, 2)
    assert host.on_response is not None
    host.on_response(answer_to(reinvite, 488))
    with pytest.raises(CallError, match="refused"):
        await asyncio.wait_for(hold, WAIT)
    assert call.phase is CallPhase.ESTABLISHED and not call.held
    assert host.direct[-1].cseq.seq != reinvite.cseq.seq  # no ACK of ours for a non-2xx
    # The next offer still moves the version on (the refused one was sent).
    second = asyncio.ensure_future(call.hold())
    next_one = await next_invite(host, 3)
    assert (
        parse_sdp(next_one.body).origin.sess_version
        == parse_sdp(reinvite.body).origin.sess_version + 1
    )
    host.on_response(ok_for(next_one, peer.answer(next_one.body)))
    await asyncio.wait_for(second, WAIT)
    assert call.held_by_us
    await hang_up(call)


async def test_hold_before_the_call_is_up_is_refused() -> None:
    host = FakeHost()
    call = outgoing(host)
    with pytest.raises(CallError, match="calling"):
        await call.hold()
    assert len(host.invites) == 1
    call._release_media()


# -- re-INVITEs from the peer -------------------------------------------------------------------


async def test_peer_hold_and_resume_are_mirrored(peer: Peer) -> None:
    host = FakeHost()
    call = await established(host, peer)
    request = peer.reinvite(bytes(peer.offer(peer.local.hold()).sdp))
    deliver(call, request)
    ok = host.responses[-1]
    assert ok.status_code == 200 and ok.cseq.seq == request.cseq.seq
    assert ok.headers.get("Contact") and ok.headers.get("Content-Type") == "application/sdp"
    answer = parse_sdp(ok.body)
    assert answer.media[0].direction(answer) is Direction.RECVONLY
    assert answer.media[0].crypto()  # still SRTP
    assert call.held_by_peer and held_events(host) == [("peer", True)]
    assert call.media is not None and not call.media.negotiated.direction.sends
    first_version = answer.origin.sess_version

    deliver(call, peer.reinvite(bytes(peer.offer(peer.local.resume()).sdp)))
    answer = parse_sdp(host.responses[-1].body)
    assert answer.media[0].direction(answer) is Direction.SENDRECV
    assert answer.origin.sess_version == first_version + 1
    assert not call.held and held_events(host) == [("peer", True), ("peer", False)]
    await hang_up(call)


async def test_both_hold_is_inactive(peer: Peer) -> None:
    host = FakeHost()
    call = await established(host, peer)
    deliver(call, peer.reinvite(bytes(peer.offer(peer.local.hold()).sdp)))
    hold = asyncio.ensure_future(call.hold())
    reinvite = await next_invite(host, 2)
    sdp = parse_sdp(reinvite.body)
    assert sdp.media[0].direction(sdp) is Direction.INACTIVE  # RFC 6337 §5.3
    assert host.on_response is not None
    host.on_response(ok_for(reinvite, peer.answer(reinvite.body, local=peer.local.hold())))
    await asyncio.wait_for(hold, WAIT)
    assert call.held_by_us and call.held_by_peer
    await hang_up(call)


async def test_reinvite_without_sdp_gets_our_offer_and_the_ack_answers(peer: Peer) -> None:
    host = FakeHost()
    call = await established(host, peer)
    request = peer.reinvite()
    deliver(call, request)
    ok = host.responses[-1]
    assert ok.status_code == 200 and ok.body  # RFC 3261 §14.2: the offer in the 200
    offer = parse_sdp(ok.body)
    assert offer.media[0].direction(offer) is Direction.SENDRECV and offer.media[0].crypto()
    # A second re-INVITE before the ACK: 500 with Retry-After (§14.2).
    deliver(call, peer.reinvite(bytes(peer.offer(peer.local.hold()).sdp)))
    busy = host.responses[-1]
    assert busy.status_code == 500
    assert 0 <= int(busy.headers.get("Retry-After") or "-1") <= 10
    old_protection = call.media.protection if call.media else None
    answer_body = peer.answer(ok.body, local=peer.local.hold())
    assert peer.dialog is not None
    call.receive_ack(peer.dialog.create_ack(ok, body=answer_body, content_type="application/sdp"))
    async with asyncio.timeout(WAIT):
        while not call.held_by_peer:
            await asyncio.sleep(0.01)
    assert call.media is not None and call.media.protection is not old_protection  # re-keyed
    assert call.phase is CallPhase.ESTABLISHED
    await hang_up(call)


async def test_ack_without_the_answer_ends_the_call(peer: Peer) -> None:
    host = FakeHost()
    call = await established(host, peer)
    deliver(call, peer.reinvite())
    assert peer.dialog is not None
    call.receive_ack(peer.dialog.create_ack(host.responses[-1]))
    await asyncio.wait_for(asyncio.shield(call.ended), WAIT)
    assert "no answer in the ACK" in call.reason
    assert host.requests[-1].method == "BYE"


async def test_peer_rekey_rekeys_media_and_keeps_the_call(peer: Peer) -> None:
    host = FakeHost()
    call = await established(host, peer)
    assert call.media is not None
    before = call.media.protection
    deliver(call, peer.reinvite(bytes(peer.offer().sdp)))  # same direction, fresh keys
    assert host.responses[-1].status_code == 200
    assert call.media is not None and call.media.protection is not before
    assert call.phase is CallPhase.ESTABLISHED and not call.held
    assert held_events(host) == []
    await hang_up(call)


async def test_unacceptable_reoffer_gets_488_and_the_call_goes_on(peer: Peer) -> None:
    host = FakeHost()
    call = await established(host, peer)
    gsm_only = replace(peer.local, codecs=(Codec("GSM", 8000, static_pt=3),))
    deliver(call, peer.reinvite(bytes(peer.offer(gsm_only).sdp)))
    refused = host.responses[-1]
    assert refused.status_code == 488 and "codec" in (refused.headers.get("Warning") or "")
    assert call.phase is CallPhase.ESTABLISHED
    await hang_up(call)


# -- glare (RFC 3261 §14.1) ---------------------------------------------------------------------


async def test_glare_491_both_ways_and_retry(peer: Peer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reinvite_module, "glare_delay", lambda owner: 0.01)
    host = FakeHost()
    call = await established(host, peer)
    hold = asyncio.ensure_future(call.hold())
    ours = await next_invite(host, 2)
    # Theirs crosses ours: 491 to theirs...
    deliver(call, peer.reinvite(bytes(peer.offer(peer.local.hold()).sdp)))
    assert host.responses[-1].status_code == 491
    assert not call.held_by_peer
    # ...and 491 to ours: sent again after the delay, with a new CSeq.
    assert host.on_response is not None
    host.on_response(answer_to(ours, 491))
    retry = await next_invite(host, 3)
    assert retry.cseq.seq > ours.cseq.seq
    host.on_response(ok_for(retry, peer.answer(retry.body)))
    await asyncio.wait_for(hold, WAIT)
    assert call.held_by_us
    await hang_up(call)


def test_glare_delays_follow_14_1() -> None:
    rng = random.Random(4)
    owner = [glare_delay(True, rng) for _ in range(500)]
    other = [glare_delay(False, rng) for _ in range(500)]
    assert min(owner) >= 2.1 and max(owner) <= 4.0
    assert min(other) >= 0.0 and max(other) <= 2.0
    assert all(abs(round(d * 100) - d * 100) < 1e-6 for d in owner + other)  # 10 ms units
    assert {retry_after(rng) for _ in range(500)} == set(range(11))


# -- downgrade is never silent ------------------------------------------------------------------


async def test_reinvite_without_srtp_under_mandatory_ends_the_call(peer: Peer) -> None:
    host = FakeHost()
    call = await established(host, peer)
    deliver(call, peer.reinvite(bytes(peer.offer(replace(peer.local, srtp=SrtpPolicy.OFF)).sdp)))
    refused = host.responses[-1]
    assert refused.status_code == 488
    await asyncio.wait_for(asyncio.shield(call.ended), WAIT)
    assert call.reason == DOWNGRADE_OFFER
    assert call.reason == "the other side tried to turn off encryption (re-INVITE without SRTP)"
    bye = host.requests[-1]
    assert bye.method == "BYE" and "turn off encryption" in (bye.headers.get("Reason") or "")
    assert call.media is None


async def test_reinvite_without_srtp_under_optional_goes_on_and_says_so() -> None:
    peer = Peer(srtp=SrtpPolicy.OPTIONAL)
    try:
        host = FakeHost(srtp=SrtpPolicy.OPTIONAL)
        call = await established(host, peer)
        assert call.negotiated is not None and call.negotiated.encrypted
        offer = peer.offer(replace(peer.local, srtp=SrtpPolicy.OFF))
        deliver(call, peer.reinvite(bytes(offer.sdp)))
        assert host.responses[-1].status_code == 200
        assert call.phase is CallPhase.ESTABLISHED
        assert call.negotiated is not None and not call.negotiated.encrypted
        downgraded = [e for e in host.events if isinstance(e, MediaDowngraded)]
        assert len(downgraded) == 1 and "turned off encryption" in downgraded[0].reason
        assert downgraded[0].audio == "Audio not encrypted"
        started = [e for e in host.events if isinstance(e, MediaStarted)]
        assert started[-1].encrypted is False and started[-1].audio == "Audio not encrypted"
        await hang_up(call)
    finally:
        peer.close()


async def test_answer_dropping_srtp_under_mandatory_ends_the_call(peer: Peer) -> None:
    host = FakeHost()
    call = await established(host, peer)
    hold = asyncio.ensure_future(call.hold())
    reinvite = await next_invite(host, 2)
    # An answer on the offer's RTP/SAVP line without a=crypto.
    body = peer.answer(reinvite.body).decode()
    body = "".join(line + "\r\n" for line in body.splitlines() if not line.startswith("a=crypto"))
    assert host.on_response is not None
    host.on_response(ok_for(reinvite, body.encode()))
    with pytest.raises(CallError, match="turn off encryption"):
        await asyncio.wait_for(hold, WAIT)
    assert call.phase is CallPhase.ENDED and call.reason == DOWNGRADE_ANSWER
    assert host.direct[-1].method == "ACK"  # the 2xx is ACKed, then the BYE
    assert host.requests[-1].method == "BYE"
