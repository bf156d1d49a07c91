"""softphone.ua.call without a network: a fake host records what a Call sends.

The end-to-end calls through a real Kamailio are in tests/interop/test_kamailio_call.py; here
each rule is checked on its own: no a=crypto over a plain hop, no call at all with mandatory
SRTP over a plain hop, 407 answered once and the cached challenge used pre-emptively, 488 for
an offer without SRTP (and no ringing), Record-Route copied into the dialog-creating
responses, a BYE with a Reason for an answer without SRTP, the reasons in words.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from softphone.sdp.offer_answer import build_offer, new_origin
from softphone.sdp.policy import Keying, LocalMedia, SrtpPolicy
from softphone.sip.digest import DigestClient
from softphone.sip.headers import NameAddr
from softphone.sip.message import Headers, Request, Response
from softphone.sip.transaction import InviteServerTransaction, ServerTransaction
from softphone.sip.uri import SipURI, parse_uri
from softphone.ua.call import (
    AUDIO_WORDS,
    Call,
    CallDirection,
    CallError,
    CallPhase,
    audio_protection,
    ended_reason,
    parse_target,
    signalling_protection,
)
from softphone.ua.events import CallState, MediaStarted, event_from_json

AOR = SipURI("sips", user="alice", host="example.test")
LOCAL = ("127.0.0.1", 40000)


class FakeHost:
    """A CallHost that sends nothing: every message is recorded."""

    def __init__(
        self,
        transport: str = "TLS",
        srtp: SrtpPolicy = SrtpPolicy.MANDATORY,
        *,
        end_to_end: bool = False,
    ) -> None:
        self.transport = transport
        self.end_to_end = end_to_end
        self.srtp_policy = srtp
        self.digest = DigestClient("alice", "alice-secret-1")
        self.invites: list[Request] = []
        self.on_response: Callable[[Response], None] | None = None
        self.requests: list[Request] = []
        self.direct: list[Request] = []
        self.responses: list[Response] = []
        self.events: list[CallState | MediaStarted] = []
        self.forgotten: list[Call] = []

    @property
    def account_aor(self) -> SipURI:
        return AOR

    def call_digest(self) -> DigestClient:
        return self.digest

    def flow_info(self) -> tuple[str, tuple[str, int]] | None:
        return (self.transport, LOCAL)

    def contact_uri(self) -> SipURI:
        return SipURI("sips", user="alice", host=LOCAL[0], port=LOCAL[1])

    def start_invite(
        self,
        request: Request,
        on_response: Callable[[Response], None],
        on_failure: Callable[[str], None],
    ) -> None:
        self.invites.append(request)
        self.on_response = on_response

    async def transact(self, request: Request) -> Response:
        self.requests.append(request)
        return Response.for_request(request, 200)

    def send_direct(self, message: Request) -> None:
        self.direct.append(message)

    def respond(self, tx: ServerTransaction, response: Response) -> None:
        self.responses.append(response)

    def emit(self, event: CallState | MediaStarted) -> None:
        self.events.append(event)

    def forget(self, call: Call) -> None:
        self.forgotten.append(call)


def outgoing(host: FakeHost) -> Call:
    call = Call(host, CallDirection.OUTGOING, "sips:bob@example.test")  # type: ignore[arg-type]
    call.start_outgoing(SipURI("sips", user="bob", host="example.test"))
    return call


def answer_to(request: Request, code: int, *, body: bytes = b"", **headers: str) -> Response:
    response = Response.for_request(request, code, to_tag="bobtag", body=body)
    for name, value in headers.items():
        response.headers.add(name.replace("_", "-"), value)
    return response


def challenge(nonce: str = "abc123") -> str:
    return f'Digest realm="example.test", nonce="{nonce}", qop="auth", algorithm=MD5'


def incoming_invite(*, srtp: SrtpPolicy, record_route: bool = False) -> Request:
    offer_media = LocalMedia("127.0.0.1", 50000, srtp=srtp)
    offer = build_offer(offer_media, signalling_protected=True, origin=new_origin())
    headers = Headers()
    headers.add("Via", "SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bKproxy1")
    headers.add("Via", "SIP/2.0/TLS 127.0.0.1:40001;branch=z9hG4bKbob1;received=127.0.0.1")
    if record_route:
        headers.add("Record-Route", "<sip:127.0.0.1:5061;transport=tls;lr;ftag=bobtag>")
    headers.add("Max-Forwards", "69")
    headers.add("From", "<sips:bob@example.test>;tag=bobtag")
    headers.add("To", "<sips:alice@example.test>")
    headers.add("Call-ID", "call-1")
    headers.add("CSeq", "7 INVITE")
    headers.add("Contact", "<sips:bob@127.0.0.1:40001>")
    headers.add("Content-Type", "application/sdp")
    return Request("INVITE", parse_uri("sips:alice@127.0.0.1:40000"), headers, bytes(offer.sdp))


def incoming(host: FakeHost, request: Request) -> tuple[Call, bool]:
    call = Call(host, CallDirection.INCOMING, str(request.from_.uri))  # type: ignore[arg-type]
    tx = InviteServerTransaction(request, 0.0, reliable=True)
    return call, call.start_incoming(request, tx, host.transport, LOCAL)


# -- words ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (486, "busy"),
        (600, "busy"),
        (603, "declined"),
        (404, "not found"),
        (480, "unavailable"),
        (487, "cancelled"),
        (408, "no answer"),
        (500, "failed (500 Server Internal Error)"),
    ],
)
def test_ended_reason_in_words(code: int, words: str) -> None:
    request = incoming_invite(srtp=SrtpPolicy.MANDATORY)
    assert ended_reason(Response.for_request(request, code)) == words


def test_488_reason_carries_the_warning() -> None:
    response = Response.for_request(incoming_invite(srtp=SrtpPolicy.OFF), 488)
    response.headers.add("Warning", '399 bob "SRTP required"')
    reason = ended_reason(response)
    assert reason.startswith("the other phone cannot accept our media (488")
    assert "SRTP required" in reason


def test_protection_words_are_ux_md_words() -> None:
    assert audio_protection(Keying.SDES) == (
        "Audio encrypted; every server on the way holds the key"
    )
    assert audio_protection(Keying.NONE) == "Audio not encrypted"
    assert audio_protection(Keying.DTLS_SRTP) == AUDIO_WORDS["dtls-hops"]
    hop_words = [audio_protection(k) for k in Keying] + [signalling_protection(True)]
    assert not any("end to end" in w for w in hop_words)  # never for a sips: call
    assert signalling_protection(True).startswith("Encrypted to each server")
    assert signalling_protection(False) == "Call setup not encrypted"


def test_protection_words_inside_a_sipsec_tunnel() -> None:
    assert audio_protection(Keying.SDES, end_to_end=True) == "Audio encrypted end to end"
    assert audio_protection(Keying.DTLS_SRTP, end_to_end=True) == "Audio encrypted end to end"
    assert audio_protection(Keying.NONE, end_to_end=True) == "Audio not encrypted"
    assert signalling_protection(True, end_to_end=True) == (
        "Encrypted end to end; servers only see that a call was set up"
    )


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("bob", "sips:bob@example.test"),
        ("bob@other.test", "sips:bob@other.test"),
        ("sip:carol@example.test;transport=tcp", "sip:carol@example.test;transport=tcp"),
        (" sips:dave@example.test ", "sips:dave@example.test"),
    ],
)
def test_parse_target(typed: str, expected: str) -> None:
    assert str(parse_target(typed, AOR)) == expected


def test_parse_target_refuses_non_sip() -> None:
    with pytest.raises(CallError):
        parse_target("tel:+15551234", AOR)
    with pytest.raises(CallError):
        parse_target("sip:", AOR)


# -- events -----------------------------------------------------------------------------------


def test_call_events_round_trip_through_json() -> None:
    state = CallState("c1", "outgoing", "sips:bob@example.test", "ended", "busy", 486)
    assert event_from_json(state.to_json()) == state
    started = MediaStarted(
        "c1", "opus", True, "AEAD_AES_256_GCM", "sdes", AUDIO_WORDS["sdes-hops"], "x"
    )
    assert started.to_json()["event"] == "media_started"
    assert event_from_json(started.to_json()) == started


@pytest.mark.parametrize(
    "bad",
    [
        {"state": "talking"},
        {"direction": "sideways"},
        {"status_code": 42},
    ],
)
def test_call_state_validated(bad: dict[str, Any]) -> None:
    values: dict[str, Any] = {
        "call_id": "c1",
        "direction": "incoming",
        "peer": "sips:bob@example.test",
        "state": "ringing",
    }
    with pytest.raises(ValueError):
        CallState(**{**values, **bad})


def test_media_started_cannot_claim_encryption_it_lacks() -> None:
    with pytest.raises(ValueError):
        MediaStarted("c1", "PCMU", False, None, "none", AUDIO_WORDS["sdes-hops"], "x")
    with pytest.raises(ValueError):
        MediaStarted("c1", "PCMU", True, None, "none", "Audio not encrypted", "x")


# -- outgoing ---------------------------------------------------------------------------------


async def test_invite_over_tls_offers_srtp_with_keys() -> None:
    host = FakeHost()
    call = outgoing(host)
    (invite,) = host.invites
    sdp = invite.body.decode()
    assert "m=audio" in sdp and "RTP/SAVP" in sdp and "a=crypto:" in sdp
    via = invite.top_via
    assert via.transport == "TLS" and "rport" in via.params and via.branch
    assert invite.contacts[0].uri.host == "127.0.0.1"  # type: ignore[union-attr]
    assert invite.from_.tag and invite.to.tag is None
    assert invite.headers.get("Proxy-Authorization") is None  # nothing cached yet
    assert [e.state for e in host.events if isinstance(e, CallState)] == ["calling"]
    call._release_media()


async def test_mandatory_srtp_over_a_plain_hop_places_no_call() -> None:
    host = FakeHost(transport="TCP")
    with pytest.raises(CallError, match="not TLS"):
        outgoing(host)
    assert host.invites == []


async def test_optional_srtp_over_a_plain_hop_sends_no_keys() -> None:
    host = FakeHost(transport="TCP", srtp=SrtpPolicy.OPTIONAL)
    call = outgoing(host)
    sdp = host.invites[0].body.decode()
    assert "a=crypto" not in sdp and "RTP/AVP" in sdp
    call._release_media()


async def test_407_answered_once_then_credentials_sent_preemptively() -> None:
    host = FakeHost()
    call = outgoing(host)
    first = host.invites[0]
    assert host.on_response is not None
    host.on_response(answer_to(first, 100))
    host.on_response(answer_to(first, 407, Proxy_Authenticate=challenge()))
    assert len(host.invites) == 2 and call.challenges == 1
    retry = host.invites[1]
    assert retry.cseq.seq == first.cseq.seq + 1
    assert retry.top_via.branch != first.top_via.branch
    assert retry.call_id == first.call_id and retry.from_.tag == first.from_.tag
    assert 'realm="example.test"' in (retry.headers.get("Proxy-Authorization") or "")
    host.on_response(answer_to(retry, 486))
    assert call.reason == "busy"

    second = outgoing(host)  # the next call carries credentials from the cached challenge
    assert host.invites[-1].headers.get("Proxy-Authorization") is not None
    assert second.invites_sent == 1
    second._release_media()


async def test_a_rechallenge_of_fresh_credentials_means_a_wrong_password() -> None:
    host = FakeHost()
    call = outgoing(host)
    assert host.on_response is not None
    host.on_response(answer_to(host.invites[0], 407, Proxy_Authenticate=challenge()))
    retry = host.invites[1]
    host.on_response(answer_to(retry, 407, Proxy_Authenticate=challenge()))
    assert call.phase is CallPhase.ENDED and "password" in call.reason
    assert len(host.invites) == 2  # no loop


async def test_busy_ends_the_call_with_the_reason() -> None:
    host = FakeHost()
    call = outgoing(host)
    assert host.on_response is not None
    host.on_response(answer_to(host.invites[0], 180))
    assert call.phase is CallPhase.RINGING
    host.on_response(answer_to(host.invites[0], 486))
    assert call.phase is CallPhase.ENDED and call.reason == "busy" and call.status_code == 486
    assert await asyncio.wait_for(call.ended, 1) == "busy"
    assert host.forgotten == [call]
    ended = host.events[-1]
    assert isinstance(ended, CallState) and ended.state == "ended" and ended.status_code == 486


async def test_answer_without_srtp_under_mandatory_is_acked_then_byed() -> None:
    host = FakeHost()
    call = outgoing(host)
    invite = host.invites[0]
    # A peer answering our RTP/SAVP offer with plain RTP/AVP and no a=crypto.
    plain = LocalMedia("127.0.0.1", 50002, srtp=SrtpPolicy.OFF)
    body = bytes(build_offer(plain, signalling_protected=False, origin=new_origin()).sdp)
    ok = answer_to(invite, 200, body=body, Contact="<sips:bob@127.0.0.1:40001>")
    ok.headers.add("Content-Type", "application/sdp")
    assert host.on_response is not None
    host.on_response(ok)
    assert [m.method for m in host.direct] == ["ACK"]
    await asyncio.wait_for(call.ended, 2)
    (bye,) = host.requests
    assert bye.method == "BYE" and "cause=488" in (bye.headers.get("Reason") or "")
    assert call.media is None and call.reason.startswith("media refused")
    assert not any(isinstance(e, MediaStarted) for e in host.events)


async def test_cancel_waits_for_a_provisional_then_goes() -> None:
    host = FakeHost()
    call = outgoing(host)
    invite = host.invites[0]
    hangup = asyncio.ensure_future(call.hangup())
    await asyncio.sleep(0)
    assert host.requests == []  # §9.1: no CANCEL before a provisional response
    assert host.on_response is not None
    host.on_response(answer_to(invite, 100))
    await asyncio.sleep(0.01)
    (cancel,) = host.requests
    assert cancel.method == "CANCEL" and cancel.top_via.branch == invite.top_via.branch
    host.on_response(answer_to(invite, 487))
    await asyncio.wait_for(hangup, 1)
    assert call.reason == "cancelled" and call.status_code == 487


# -- incoming ---------------------------------------------------------------------------------


async def test_offer_without_srtp_under_mandatory_gets_488_and_never_rings() -> None:
    host = FakeHost()
    call, ringing = incoming(host, incoming_invite(srtp=SrtpPolicy.OFF))
    assert not ringing
    (response,) = host.responses
    assert response.status_code == 488
    assert "SRTP" in (response.headers.get("Warning") or "")
    assert response.to.tag  # a final response to an INVITE carries our tag
    assert call.phase is CallPhase.ENDED and call.status_code == 488
    assert [e.state for e in host.events if isinstance(e, CallState)] == ["ended"]


async def test_incoming_rings_and_answers_with_record_route_and_keys() -> None:
    host = FakeHost()
    request = incoming_invite(srtp=SrtpPolicy.MANDATORY, record_route=True)
    call, ringing = incoming(host, request)
    assert ringing and call.phase is CallPhase.RINGING
    (ring,) = host.responses
    assert ring.status_code == 180 and ring.to.tag
    assert ring.headers.get_all("Record-Route") == request.headers.get_all("Record-Route")
    await call.answer()
    ok = host.responses[-1]
    assert ok.status_code == 200 and ok.to.tag == ring.to.tag
    assert ok.headers.get_all("Record-Route") == request.headers.get_all("Record-Route")
    assert isinstance(ok.contacts[0], NameAddr)
    assert b"a=crypto:" in ok.body and b"RTP/SAVP" in ok.body
    assert call.dialog is not None and call.dialog.secure
    call._release_media()
    call._end("test over")


async def test_reject_busy_and_hangup_before_answer_declines() -> None:
    host = FakeHost()
    busy, _ = incoming(host, incoming_invite(srtp=SrtpPolicy.MANDATORY))
    busy.reject(486)
    assert host.responses[-1].status_code == 486 and busy.phase is CallPhase.ENDED
    host2 = FakeHost()
    other, _ = incoming(host2, incoming_invite(srtp=SrtpPolicy.MANDATORY))
    await other.hangup()
    assert host2.responses[-1].status_code == 603


async def test_cancel_from_the_caller_sends_487() -> None:
    host = FakeHost()
    call, _ = incoming(host, incoming_invite(srtp=SrtpPolicy.MANDATORY))
    call.receive_cancel()
    assert host.responses[-1].status_code == 487
    assert call.reason == "cancelled by the caller"
