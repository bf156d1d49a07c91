"""Calls: the INVITE client and server of RFC 3261 §13-15 over the registration's flow.

A :class:`Call` is one INVITE dialog, made by :meth:`UserAgent.call
<softphone.ua.useragent.UserAgent.call>` (outgoing) or by an INVITE arriving on the flow
(incoming, RFC 5626 §3: the registrar sends requests to us back over the flow we registered
on). Its phases are :class:`CallPhase`: ``calling`` → ``ringing`` → ``established`` → ``ended``
(``ended`` carries a reason in words and, when a response ended it, the status code).

Outgoing (UAC, RFC 3261 §13.2)::

    INVITE (SDP offer) ─► 100 / 180 (ringing) / 183 ─► 2xx ─► ACK (§13.2.2.4) ─► media
                      └─► 401/407: answered once by Digest; the challenge is cached, so the
                          next INVITE carries credentials pre-emptively (no extra round trip)
                      └─► 486/600 "busy", 603 "declined", 404 "not found", 487 "cancelled"...
    hangup() before the answer: CANCEL (§9.1, sent once a provisional came) → 487
    hangup() after: BYE (§15.1.1)

Incoming (UAS, RFC 3261 §13.3): the offer is answered first, *before* ringing: an offer we
cannot accept (SRTP mandatory and the peer offers RTP/AVP only) is refused with 488 and no
call ever rings. Then 180, :meth:`Call.answer` (or the UA's auto-answer) → 2xx with the SDP
answer → ACK → media. :meth:`Call.reject` sends 486/603/...; a CANCEL ends it with 487.

Media protection (UX.md): SDES keys (``a=crypto``) are only ever put in SDP that goes over TLS
on our hop (``build_offer``/``build_answer`` refuse otherwise). With the ``mandatory`` SRTP
policy (the default) a call whose signalling is not TLS is refused outright, an answer without
SRTP ends the call (BYE with the reason) and an offer without SRTP gets 488: no fallback to
RTP/AVP, ever. :class:`~softphone.ua.events.MediaStarted` says in UX.md's words who can
listen: over ``sips:``/TLS hops, "Audio encrypted; every server on the way holds the key".

A call ends cleanly on the peer's BYE, on our hangup, on a flow that dies (nothing can be
sent any more: ended "connection lost"), and on a media timeout (BYE best effort).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, cast

from softphone.media.dtls import DtlsCertificate, DtlsEndpoint, DtlsError
from softphone.media.dtmf import DTMF_DIGITS
from softphone.media.rtp_session import DtmfReceived as MediaDtmf
from softphone.media.rtp_session import MediaEvent, MediaSession, MediaTimeout, ReservedPorts
from softphone.media.rtp_session import reserve_ports as _reserve_ports
from softphone.media.tone import AudioSink, FrameSource
from softphone.sdp.crypto import CryptoAttribute
from softphone.sdp.direction import Direction
from softphone.sdp.errors import NegotiationError, SdpParseError
from softphone.sdp.offer_answer import (
    Offer,
    build_answer,
    build_offer,
    has_srtp,
    new_origin,
    next_origin,
    peer_direction,
    process_answer,
)
from softphone.sdp.policy import Keying, LocalMedia, Negotiated, SrtpPolicy
from softphone.sdp.session import Origin, SessionDescription, parse_sdp
from softphone.sip.dialog import Dialog, DialogId, new_call_id, new_tag
from softphone.sip.digest import (
    AuthenticationFailedError,
    AuthHeader,
    DigestClient,
    NoUsableChallengeError,
)
from softphone.sip.errors import LocalProtocolError, ParseError, RemoteProtocolError
from softphone.sip.headers import NameAddr, Via
from softphone.sip.message import Headers, Request, Response
from softphone.sip.transaction_layer import make_cancel, new_branch
from softphone.sip.uri import SipURI, parse_uri
from softphone.ua.events import (
    CallHeld,
    CallState,
    DtmfReceived,
    Event,
    MediaDowngraded,
    MediaStarted,
)
from softphone.ua.reinvite import (
    DOWNGRADE_ANSWER,
    DOWNGRADE_OFFER,
    DOWNGRADED_ANSWER,
    DOWNGRADED_OFFER,
    GLARE_ATTEMPTS,
    IncomingReinvite,
    OutgoingReinvite,
    glare_delay,
    retry_after,
)

if TYPE_CHECKING:
    from softphone.sip.transaction import ServerTransaction

__all__ = [
    "ALLOW",
    "AUDIO_WORDS",
    "Call",
    "CallDirection",
    "CallError",
    "CallHost",
    "CallPhase",
    "audio_protection",
    "ended_reason",
    "signalling_protection",
]

log = logging.getLogger(__name__)

#: Methods a call understands (Allow in INVITEs and their answers).
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS"
USER_AGENT = "softphone/0.1"
#: How long an answered incoming call waits for the ACK (RFC 3261 §13.3.1.4: 64*T1).
ACK_TIMEOUT = 32.0
#: Seconds the DTLS-SRTP handshake may take (with retransmissions) before the call ends.
DTLS_HANDSHAKE_TIMEOUT = 10.0
#: Seconds of silence from the peer that end an established call.
MEDIA_TIMEOUT = 30.0

#: UX.md "Who can listen to the audio (media)?", by how the keys travelled.
AUDIO_WORDS = {
    "none": "Audio not encrypted",
    "sdes-hops": "Audio encrypted; every server on the way holds the key",
    "dtls-hops": (
        "Audio encrypted; a server on the way could still intercept by swapping fingerprints"
    ),
    "end-to-end": "Audio encrypted end to end",
}
_SIGNALLING_WORDS = {
    True: "Encrypted to each server; servers on the way can read it",
    False: "Call setup not encrypted",
}
#: UX.md: signalling inside a sipsec tunnel (draft-gurbani-sip-sipsec §6.4).
END_TO_END_SIGNALLING = "Encrypted end to end; servers only see that a call was set up"


class CallError(Exception):
    """A call could not be placed at all (not registered, refused by policy); ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CallPhase(enum.Enum):
    CALLING = "calling"  # INVITE sent (outgoing) / received and being looked at (incoming)
    RINGING = "ringing"  # 180 received (outgoing) / sent (incoming)
    ESTABLISHED = "established"  # 2xx and ACK: media flows
    ENDED = "ended"


class CallDirection(enum.Enum):
    OUTGOING = "outgoing"
    INCOMING = "incoming"


def audio_protection(keying: Keying, *, end_to_end: bool = False) -> str:
    """UX.md's words for who can listen, by how the keys travelled: over ``sips:`` hops, or
    (``end_to_end``) inside a sipsec tunnel, where no server on the way sees SDP."""
    if end_to_end and keying is not Keying.NONE:
        return AUDIO_WORDS["end-to-end"]
    if keying is Keying.SDES:
        return AUDIO_WORDS["sdes-hops"]
    if keying is Keying.DTLS_SRTP:
        return AUDIO_WORDS["dtls-hops"]
    return AUDIO_WORDS["none"]


def signalling_protection(over_tls: bool, *, end_to_end: bool = False) -> str:
    """UX.md's words for who can read the call setup on a TLS or a plain hop, or inside a
    sipsec tunnel (``end_to_end``)."""
    if end_to_end:
        return END_TO_END_SIGNALLING
    return _SIGNALLING_WORDS[over_tls]


_REASONS = {
    486: "busy",
    600: "busy",
    603: "declined",
    404: "not found",
    604: "not found",
    480: "unavailable",
    408: "no answer",
    487: "cancelled",
}


def ended_reason(response: Response) -> str:
    """The reason in words for a final non-2xx response to our INVITE (RFC 3261 §21)."""
    code = response.status_code
    known = _REASONS.get(code)
    if known is not None:
        return known
    if code in (488, 606):
        warning = response.headers.get("Warning")
        detail = f": {warning}" if warning else ""
        return f"the other phone cannot accept our media ({code} {response.reason}{detail})"
    return f"failed ({code} {response.reason})"


class CallHost(Protocol):
    """What a call needs from its user agent (the UA implements it; tests fake it)."""

    @property
    def account_aor(self) -> SipURI: ...

    def call_digest(self) -> DigestClient: ...

    def flow_info(self) -> tuple[str, tuple[str, int]] | None:
        """(transport "TLS"/"TCP"/"UDP", our local address) of the live flow, or None."""
        ...

    def contact_uri(self) -> SipURI: ...

    def start_invite(
        self,
        request: Request,
        on_response: Callable[[Response], None],
        on_failure: Callable[[str], None],
    ) -> None: ...

    async def transact(self, request: Request) -> Response:
        """A non-INVITE request through a client transaction; raises CallError."""
        ...

    def send_direct(self, message: Request) -> None:
        """An ACK for a 2xx: no transaction (§17.1.1.3)."""
        ...

    def respond(self, tx: ServerTransaction, response: Response) -> None: ...

    def emit(self, event: CallState | MediaStarted) -> None: ...

    def forget(self, call: Call) -> None: ...

    @property
    def end_to_end(self) -> bool:
        """True when this call's signalling runs inside a sipsec tunnel (nested TLS between
        the two phones): no proxy reads the SDP, so the words for signalling and audio say
        "end to end". False for the registration flow (``sips:`` hops)."""
        ...


@dataclass
class _Media:
    """What the call needs to start audio; the offer (UAC) or the answer's result (UAS)."""

    ports: ReservedPorts
    local: LocalMedia
    offer: Offer | None = None
    negotiated: Negotiated | None = None
    #: DTLS-SRTP (RFC 5763 §5): a fresh self-signed certificate per call, in a=fingerprint.
    dtls_certificate: DtlsCertificate | None = None


class Call:
    """One call (see the module docstring). Built by the user agent, never by hand."""

    def __init__(
        self,
        host: CallHost,
        direction: CallDirection,
        peer: str,
        *,
        source: FrameSource | None = None,
        sink: AudioSink | None = None,
        media_timeout: float = MEDIA_TIMEOUT,
    ) -> None:
        self._host = host
        self.direction = direction
        self.peer = peer
        self.source = source
        self.sink = sink
        self.media_timeout = media_timeout
        self.phase = CallPhase.CALLING
        self.reason = ""
        self.status_code: int | None = None
        self.call_id = ""
        self.dialog: Dialog | None = None
        self.media: MediaSession | None = None
        self.negotiated: Negotiated | None = None
        self.over_tls = False
        #: INVITEs sent for this call and how many were challenged (401/407): a second call
        #: after a challenge sends one INVITE and gets no challenge (pre-emptive credentials).
        self.invites_sent = 0
        self.challenges = 0
        self.ended = asyncio.get_running_loop().create_future()
        self._media_setup: _Media | None = None
        self._invite: Request | None = None  # our current INVITE (UAC)
        self._ack: Request | None = None
        self._provisional = False
        self._cancel_pending = False
        self._cancelled = False
        self._request: Request | None = None  # the INVITE we received (UAS)
        self._server_tx: ServerTransaction | None = None
        self._answer_sdp = b""
        self._local_tag = new_tag()
        self._ack_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._phase_changed = asyncio.Event()
        #: Hold (RFC 3264 §8.4): by our re-INVITE, and by the peer's offer or answer.
        self.held_by_us = False
        self.held_by_peer = False
        #: Called with each digit the peer sends (RFC 4733), besides the DtmfReceived event.
        self.on_dtmf: Callable[[str], None] | None = None
        self._local_sdp: SessionDescription | None = None  # last SDP we sent, for re-offers
        self._origin: Origin | None = None  # its o= line; the version grows with each SDP
        self._reinvite_out: OutgoingReinvite | None = None
        self._reinvite_in: IncomingReinvite | None = None
        self._no_reinvite = asyncio.Event()  # §14.1: one INVITE transaction at a time
        self._no_reinvite.set()

    def __repr__(self) -> str:
        return f"<Call {self.direction.value} {self.peer} {self.phase.value}>"

    # -- public API -----------------------------------------------------------------------

    @property
    def dialog_id(self) -> DialogId | None:
        return None if self.dialog is None else self.dialog.id

    @property
    def server_transaction(self) -> ServerTransaction | None:
        """The INVITE server transaction of an incoming call (a CANCEL refers to it)."""
        return self._server_tx

    async def wait_for(self, phase: CallPhase, timeout: float | None = None) -> None:
        """Wait until the call reaches ``phase`` (or ended): ``CallError`` if it ended
        before reaching it."""
        order = list(CallPhase)
        async with asyncio.timeout(timeout):
            while order.index(self.phase) < order.index(phase):
                self._phase_changed.clear()
                await self._phase_changed.wait()
        if self.phase is CallPhase.ENDED and phase is not CallPhase.ENDED:
            raise CallError(f"the call ended: {self.reason}")

    async def answer(self) -> None:
        """Answer an incoming call: 2xx with our SDP answer (RFC 3261 §13.3.1.4)."""
        if self.direction is not CallDirection.INCOMING:
            raise CallError("only an incoming call is answered")
        if self.phase is not CallPhase.RINGING:
            raise CallError(f"cannot answer a call that is {self.phase.value}")
        assert self._request is not None and self._server_tx is not None
        setup = self._media_setup
        assert setup is not None and setup.offer is None and self.dialog is not None
        answer_sdp = self._answer_sdp
        response = self._response(200, body=answer_sdp)
        self.dialog.confirm()
        self._host.respond(self._server_tx, response)
        loop = asyncio.get_running_loop()
        self._ack_timer = loop.call_later(ACK_TIMEOUT, self._no_ack)

    def reject(self, code: int = 486, reason: str | None = None) -> None:
        """Refuse an incoming call that has not been answered: 486 busy, 603 decline..."""
        if self.direction is not CallDirection.INCOMING or self.phase not in (
            CallPhase.CALLING,
            CallPhase.RINGING,
        ):
            raise CallError("only an unanswered incoming call is rejected")
        if not 300 <= code <= 699:
            raise ValueError("a rejection is a 3xx-6xx status code")
        assert self._server_tx is not None
        self._host.respond(self._server_tx, self._response(code, reason))
        words = _REASONS.get(code, f"rejected ({code})")
        self._end(f"{words} (by us)" if code in (486, 600, 603) else words, code)

    async def hangup(self) -> None:
        """End the call: CANCEL before the answer (outgoing), 603 (incoming, unanswered),
        BYE once established. Returns when the call has ended."""
        if self.phase is CallPhase.ENDED:
            return
        if self.direction is CallDirection.INCOMING and self.phase is not CallPhase.ESTABLISHED:
            if self.dialog is not None and self.dialog.state.value == "confirmed":
                await self._bye("hung up")  # 2xx sent, ACK not yet in: BYE is allowed
            else:
                self.reject(603)
            return
        if self.phase is CallPhase.ESTABLISHED:
            await self._bye("hung up")
            return
        self._cancelled = True
        if self._provisional:
            self._send_cancel()
        else:
            self._cancel_pending = True  # §9.1: not before a provisional response came
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ACK_TIMEOUT):
                await asyncio.shield(self.ended)
        if not self.ended.done():
            self._end("cancelled (no answer to the CANCEL)")

    @property
    def held(self) -> bool:
        """On hold by either side: no audio flows from us."""
        return self.held_by_us or self.held_by_peer

    async def hold(self) -> None:
        """Put the other side on hold (RFC 3264 §8.4, RFC 6337 §5.3): a re-INVITE in the
        dialog whose offer says ``a=sendonly`` (``a=inactive`` if they hold us too), the same
        session with its version incremented; the peer answers ``recvonly``/``inactive``. We
        then send no RTP (RTCP goes on) and the peer should send none: :class:`CallHeld`
        ``by="us"``. The SRTP policy is kept and so is our SDES key in use (RFC 4568
        §7.1.4: re-offered unchanged; a peer answering with a new key of its own re-keys the
        media: new SRTP contexts, the call goes on). ``CallError`` when
        the call is not established or the peer refuses (the call then goes on unchanged);
        an answer that drops SRTP ends the call under the mandatory policy."""
        await self._modify(hold=True)

    async def resume(self) -> None:
        """Take the other side off hold: a re-INVITE with ``a=sendrecv`` (RFC 6337 §5.3);
        audio flows again in both directions unless they still hold us."""
        await self._modify(hold=False)

    def send_dtmf(self, digits: str, duration: float = 0.1) -> None:
        """Send DTMF as RFC 4733 telephone-events (§2.5.1) with the payload type the peer
        negotiated, one digit after the other. ``CallError`` if the call has no audio, is on
        hold, the peer did not offer telephone-event, a digit is not ``0-9 * # A-D`` or the
        duration is not between 40 ms and 5 s; nothing is sent then."""
        media, negotiated = self.media, self.negotiated
        if self.phase is not CallPhase.ESTABLISHED or media is None or negotiated is None:
            raise CallError("DTMF needs a call with audio")
        if negotiated.telephone_event is None:
            raise CallError(
                "the other phone did not offer telephone-event (RFC 4733): it cannot get DTMF"
            )
        bad = [d for d in digits if d.upper() not in DTMF_DIGITS]
        if not digits or bad:
            raise CallError(f"not DTMF digits (0-9 * # A-D): {digits!r}")
        if not 0.04 <= duration <= 5.0:
            raise CallError(f"a DTMF digit lasts 40 ms to 5 s, not {duration} s")
        if self.held:
            raise CallError("the call is on hold: DTMF cannot be sent")
        media.send_dtmf(digits.upper(), duration)

    # -- outgoing -------------------------------------------------------------------------

    def start_outgoing(self, target: SipURI) -> None:
        """Build and send the INVITE with the SDP offer (RFC 3261 §13.2.1)."""
        info = self._host.flow_info()
        if info is None:
            raise CallError("not connected to the registrar: no flow to call over")
        transport, local = info
        self.over_tls = transport == "TLS"
        policy = self._outgoing_policy()
        ports = _reserve_ports(local[0])
        try:
            certificate = DtlsCertificate.generate()
            local_media = LocalMedia(
                address=local[0],
                port=ports.rtp_port,
                srtp=policy,
                dtls_fingerprints=(certificate.fingerprint(),),
                prefer_dtls=self._keying is Keying.DTLS_SRTP,
            )
            offer = build_offer(
                local_media, signalling_protected=self.over_tls, origin=new_origin()
            )
        except BaseException:
            ports.close()
            raise
        self._media_setup = _Media(ports, local_media, offer=offer, dtls_certificate=certificate)
        self._sent_sdp(offer.sdp)
        aor = self._host.account_aor
        self.call_id = new_call_id()
        headers = Headers()
        headers.add("Via", str(self._via(transport, local)))
        headers.add("Max-Forwards", "70")
        headers.add("From", str(NameAddr(aor, params={"tag": self._local_tag})))
        headers.add("To", str(NameAddr(target)))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", "1 INVITE")
        headers.add("Contact", str(NameAddr(self._host.contact_uri())))
        headers.add("Allow", ALLOW)
        headers.add("User-Agent", USER_AGENT)
        headers.add("Content-Type", "application/sdp")
        invite = Request("INVITE", target, headers, bytes(offer.sdp))
        self._send_invite(invite, self._preemptive(invite))
        self._emit_state()

    def _outgoing_policy(self) -> SrtpPolicy:
        """Our media policy; with ``optional`` SRTP and no TLS, plain RTP (no keys in clear
        SDP); with ``mandatory`` and no TLS, no call at all."""
        policy = self._policy
        if not self.over_tls and policy is not SrtpPolicy.OFF:
            if policy is SrtpPolicy.MANDATORY:
                raise CallError(
                    "SRTP is mandatory but the connection to the server is not TLS: the keys "
                    "would travel in clear text, so the call is not placed"
                )
            policy = SrtpPolicy.OFF
        return policy

    @property
    def _policy(self) -> SrtpPolicy:
        return getattr(self._host, "srtp_policy", SrtpPolicy.MANDATORY)

    @property
    def _keying(self) -> Keying:
        """How our offers key SRTP: the account's ``keying`` (SDES by default). As answerer
        we accept whichever keying the offer has (softphone.media.dtls, offer policy)."""
        value = getattr(self._host, "media_keying", None)
        if value is None:  # the UA's host has no such property yet: read its account
            account = getattr(getattr(self._host, "_ua", None), "account", None)
            value = getattr(account, "keying", "sdes")
        return Keying.DTLS_SRTP if str(value) == Keying.DTLS_SRTP.value else Keying.SDES

    def _preemptive(self, invite: Request) -> list[AuthHeader]:
        """Credentials from the cached proxy challenge (RFC 3261 §22.3): no 407 round trip."""
        digest = self._host.call_digest()
        return digest.authorize("INVITE", str(invite.uri))

    def _send_invite(self, invite: Request, auth: list[AuthHeader]) -> None:
        for header in auth:
            invite.headers.add(header.name, header.value)
        self._invite = invite
        self._provisional = False
        self.invites_sent += 1
        self._host.start_invite(invite, self._on_response, self._on_failure)

    def _on_failure(self, reason: str) -> None:
        if self.phase is not CallPhase.ENDED and self.dialog is None:
            self._end(reason)

    def _on_response(self, response: Response) -> None:
        """Every response to our INVITE (provisional, 2xx incl. retransmissions, final)."""
        code = response.status_code
        if code < 200:
            self._provisional = True
            if self._cancel_pending:
                self._cancel_pending = False
                self._send_cancel()
            if code in (180, 183) and self.phase is CallPhase.CALLING:
                self._set_phase(CallPhase.RINGING)
            return
        if code < 300:
            self._on_2xx(response)
            return
        if code in (401, 407) and not self._cancelled and self._retry_with_credentials(response):
            return
        if self.phase is not CallPhase.ENDED:
            self._release_media()
            self._end(ended_reason(response), code)

    def _retry_with_credentials(self, response: Response) -> bool:
        assert self._invite is not None
        code = response.status_code
        self.challenges += 1
        challenge = "WWW-Authenticate" if code == 401 else "Proxy-Authenticate"
        answer = "Authorization" if code == 401 else "Proxy-Authorization"
        try:
            auth = self._host.call_digest().handle_challenge(
                code,
                response.headers.get_all(challenge),
                "INVITE",
                str(self._invite.uri),
                sent=self._invite.headers.get_all(answer),
            )
        except AuthenticationFailedError as exc:
            self._release_media()
            self._end(f"the server did not accept our password (realm {exc.realm})", code)
            return True
        except (NoUsableChallengeError, ParseError) as exc:
            self._release_media()
            self._end(f"the server asked for a login we cannot answer ({exc})", code)
            return True
        old = self._invite
        headers = Headers()
        for name, value in old.headers:
            if name in ("Via", "CSeq", "Authorization", "Proxy-Authorization"):
                continue
            headers.add(name, value)
        top = old.top_via
        via = top.copy(params={**top.params, "branch": new_branch()})
        headers.prepend("Via", str(via))
        headers.add("CSeq", f"{old.cseq.seq + 1} INVITE")
        self._send_invite(Request("INVITE", old.uri, headers, old.body), auth)
        return True

    def _on_2xx(self, response: Response) -> None:
        assert self._invite is not None
        if self.dialog is not None:
            if DialogId.of_incoming_response(response) == self.dialog.id and self._ack:
                self._host.send_direct(self._ack)  # a retransmitted 2xx: ACK again
            else:
                self._ack_and_bye_fork(response)
            return
        dialog = Dialog.from_uac(self._invite, response, over_tls=self.over_tls)
        self.dialog = dialog
        self._ack = dialog.create_ack(response, via=self._new_via())
        self._host.send_direct(self._ack)
        if self._cancelled:
            self._spawn(self._bye("cancelled"))  # the answer crossed our CANCEL
            return
        setup = self._media_setup
        assert setup is not None and setup.offer is not None
        try:
            answer = parse_sdp(response.body)
            negotiated = process_answer(setup.offer, answer)
        except (NegotiationError, SdpParseError) as exc:
            self._spawn(self._bye(f"media refused: {exc.reason}", reason_header=exc.reason))
            return
        setup.negotiated = negotiated
        self._spawn(self._start_media())

    def _ack_and_bye_fork(self, response: Response) -> None:
        """A 2xx from a second fork (§13.2.2.4): ACK it, then BYE it."""
        assert self._invite is not None
        fork = Dialog.from_uac(self._invite, response, over_tls=self.over_tls)
        self._host.send_direct(fork.create_ack(response, via=self._new_via()))
        bye = fork.create_request("BYE", via=self._new_via())
        self._spawn(self._quiet_transact(bye))

    def _send_cancel(self) -> None:
        assert self._invite is not None
        self._spawn(self._quiet_transact(make_cancel(self._invite)))

    async def _quiet_transact(self, request: Request) -> None:
        with contextlib.suppress(CallError):
            await self._host.transact(request)

    # -- incoming -------------------------------------------------------------------------

    def start_incoming(
        self, request: Request, tx: ServerTransaction, transport: str, local: tuple[str, int]
    ) -> bool:
        """Look at an INVITE that reached us (RFC 3261 §13.3.1): answer the offer first
        (488 and no call if it cannot be accepted), then ring (180). False if refused."""
        self._request, self._server_tx = request, tx
        self.call_id = request.call_id
        self.over_tls = transport == "TLS"
        try:
            self.dialog = Dialog.from_uas(
                request,
                self._local_tag,
                NameAddr(self._host.contact_uri()),
                early=True,
                over_tls=self.over_tls,
            )
        except RemoteProtocolError as exc:
            self._refuse(exc.status_code, exc.reason)
            return False
        if not request.body:
            # An INVITE without an offer wants ours in the 2xx and its answer in the ACK.
            self._refuse(488, "an offer in the INVITE is needed")
            return False
        ports = _reserve_ports(local[0])
        policy = self._policy
        if not self.over_tls and policy is SrtpPolicy.OPTIONAL:
            policy = SrtpPolicy.OFF  # keys never go into SDP over a plain hop
        certificate = DtlsCertificate.generate()
        local_media = LocalMedia(
            address=local[0],
            port=ports.rtp_port,
            srtp=policy,
            dtls_fingerprints=(certificate.fingerprint(),),
        )
        try:
            offer = parse_sdp(request.body)
            answer = build_answer(
                local_media, offer, signalling_protected=self.over_tls, origin=new_origin()
            )
        except (NegotiationError, SdpParseError) as exc:
            ports.close()
            self._refuse(exc.status_code, exc.reason)
            return False
        except LocalProtocolError as exc:
            ports.close()
            self._refuse(488, str(exc))
            return False
        self._media_setup = _Media(
            ports, local_media, negotiated=answer.negotiated, dtls_certificate=certificate
        )
        self._answer_sdp = bytes(answer.sdp)
        self._sent_sdp(answer.sdp)
        self._emit_state()
        self._host.respond(tx, self._response(180))
        self._set_phase(CallPhase.RINGING)
        return True

    def _refuse(self, code: int, why: str) -> None:
        assert self._server_tx is not None
        response = self._response(code)
        response.headers.add("Warning", f'399 softphone "{_quoted_safe(why)}"')
        response.headers.add("Reason", f'SIP;cause={code};text="{_quoted_safe(why)}"')
        self._host.respond(self._server_tx, response)
        self._end(f"refused ({code}): {why}", code)

    def _response(self, code: int, reason: str | None = None, *, body: bytes = b"") -> Response:
        assert self._request is not None
        response = Response.for_request(self._request, code, reason, to_tag=self._local_tag)
        if 100 < code < 300:
            # §12.1.1: a dialog-creating response copies every Record-Route, in order, so
            # the proxies that asked stay on the path of in-dialog requests (ACK, BYE).
            for line in self._request.headers.get_lines("Record-Route"):
                response.headers.add("Record-Route", line)
            response.headers.add("Contact", str(NameAddr(self._host.contact_uri())))
            response.headers.add("Allow", ALLOW)
        if body:
            response.headers.add("Content-Type", "application/sdp")
            response.body = body
        return response

    def receive_ack(self, ack: Request) -> None:
        """The ACK for our 2xx (§13.3.1.4): media starts; or the ACK of a 2xx to a re-INVITE,
        which carries the answer when our 2xx carried the offer (§14.2)."""
        pending = self._reinvite_in
        if pending is not None and ack.cseq.seq == pending.request.cseq.seq:
            self._ack_of_reinvite(pending, ack)
            return
        if self._request is not None and ack.cseq.seq != self._request.cseq.seq:
            return  # the ACK of an earlier re-INVITE's 2xx: nothing more to do
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        if self.phase is CallPhase.RINGING and self.dialog is not None:
            self._spawn(self._start_media())

    def receive_cancel(self) -> None:
        """The caller cancelled before we answered (§9.2): 487 to the INVITE."""
        if self.phase in (CallPhase.CALLING, CallPhase.RINGING) and (
            self.dialog is None or self.dialog.state.value == "early"
        ):
            assert self._server_tx is not None
            self._host.respond(self._server_tx, self._response(487))
            self._release_media()
            self._end("cancelled by the caller", 487)

    def _no_ack(self) -> None:
        self._ack_timer = None
        if self.phase is not CallPhase.ENDED and self.media is None:
            self._spawn(self._bye("no ACK for our answer"))

    # -- re-INVITE: hold, resume, new keys (RFC 3261 §14, RFC 3264 §8) ----------------------

    async def _modify(self, *, hold: bool) -> None:
        """Our re-INVITE, sent again after the §14.1 delay when it meets glare (491)."""
        for _ in range(GLARE_ATTEMPTS):
            await self._wait_no_reinvite()
            code = await self._reinvite(hold=hold)
            if code != 491:
                return
            await asyncio.sleep(glare_delay(self.direction is CallDirection.OUTGOING))
        raise CallError("the other side kept changing the call at the same time (491)")

    async def _wait_no_reinvite(self) -> None:
        """§14.1: no new INVITE while another INVITE transaction is in progress either way."""
        while True:
            if self.phase is not CallPhase.ESTABLISHED or self.media is None:
                raise CallError(f"the call is {self.phase.value}: it cannot be changed now")
            if self._reinvite_out is None and self._reinvite_in is None:
                return
            self._no_reinvite.clear()
            async with asyncio.timeout(ACK_TIMEOUT * 2):
                await self._no_reinvite.wait()

    async def _reinvite(self, *, hold: bool) -> int:
        """One re-INVITE exchange; the final status code (the session changed on 2xx)."""
        setup, dialog, current = self._media_setup, self.dialog, self.negotiated
        assert setup is not None and dialog is not None and current is not None
        assert self._local_sdp is not None and self._origin is not None
        local = setup.local.hold(inactive=self.held_by_peer) if hold else setup.local.resume()
        local = _suite_in_use_first(local, current)
        try:
            offer = build_offer(
                local,
                signalling_protected=self.over_tls,
                origin=next_origin(self._origin),
                previous_sdp=self._local_sdp,
                media_index=current.media_index,
                keep_keys=_our_keys(current),
            )
            request = dialog.create_request(
                "INVITE",
                via=self._new_via(),
                headers=[("Allow", ALLOW), ("User-Agent", USER_AGENT)],
                body=bytes(offer.sdp),
                content_type="application/sdp",
            )
        except LocalProtocolError as exc:
            raise CallError(f"cannot change the call: {exc}") from exc
        self._origin = offer.sdp.origin
        pending = OutgoingReinvite(request, offer)
        self._reinvite_out = pending
        self._host.start_invite(
            request,
            lambda r: self._on_reinvite_response(pending, r),
            lambda why: self._on_reinvite_failure(pending, why),
        )
        try:
            ended = asyncio.shield(self.ended)
            await asyncio.wait({pending.final, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._reinvite_out = None
            self._no_reinvite.set()
        if not pending.final.done() or pending.final.exception() is not None:
            why = self.reason if self.phase is CallPhase.ENDED else "no answer"
            raise CallError(f"the call could not be changed: {why}")
        response = pending.final.result()
        code = response.status_code
        if code == 491:
            return code
        if code in (408, 481):  # §12.2.1.2: the dialog is gone
            await self._bye(f"the other side lost the call ({code} {response.reason})")
            raise CallError(f"the call ended: {self.reason}")
        if code >= 300:  # §14.1: the session stays as it was
            raise CallError(f"the other side refused the change ({ended_reason(response)})")
        try:
            answer = parse_sdp(response.body)
        except SdpParseError as exc:
            await self._bye(f"media refused: {exc.reason}", reason_header=exc.reason)
            raise CallError(f"the call ended: {self.reason}") from exc
        if not await self._take_answer(offer, answer, sent=offer.sdp):
            raise CallError(f"the call ended: {self.reason}")
        self._set_held_by_us(hold)
        return code

    def _on_reinvite_response(self, pending: OutgoingReinvite, response: Response) -> None:
        code = response.status_code
        if code < 200:
            return
        dialog = self.dialog
        if dialog is not None and dialog.state.value != "terminated":
            with contextlib.suppress(LocalProtocolError):
                dialog.receive_response(response)  # §12.2.1.2: new target; 481/408 end it
        if code < 300 and dialog is not None:
            if pending.ack is None:
                with contextlib.suppress(LocalProtocolError, CallError):
                    pending.ack = dialog.create_ack(response, via=self._new_via())
            if pending.ack is not None:
                self._host.send_direct(pending.ack)  # again for a retransmitted 2xx
        if not pending.final.done():
            pending.final.set_result(response)

    def _on_reinvite_failure(self, pending: OutgoingReinvite, reason: str) -> None:
        if not pending.final.done():
            pending.final.set_exception(CallError(reason))
            pending.final.exception()  # read: the waiter may be gone already
        if self.phase is not CallPhase.ENDED:  # §14.1 / Timer B: the dialog is in doubt
            self._spawn(self._bye(f"no answer to our re-INVITE ({reason})"))

    async def _take_answer(
        self, offer: Offer, answer: SessionDescription, *, sent: SessionDescription
    ) -> bool:
        """Apply the answer to our re-offer; False if the call ended over it (BYE sent)."""
        current = self.negotiated
        assert current is not None
        downgrade = current.encrypted and not has_srtp(answer, offer.media_index)
        try:
            negotiated = process_answer(offer, answer, previous=self._previous())
        except NegotiationError as exc:
            reason = DOWNGRADE_ANSWER if downgrade else f"media refused: {exc.reason}"
            await self._bye(reason, reason_header=reason)
            return False
        self._local_sdp = sent
        self._apply(negotiated, peer_direction(answer, offer.media_index))
        if downgrade and not negotiated.encrypted:
            self._emit(MediaDowngraded(self.call_id, DOWNGRADED_ANSWER))
        return True

    def receive_reinvite(self, request: Request, tx: ServerTransaction) -> None:
        """A re-INVITE from the peer (RFC 3261 §14.2): hold, resume, new address or keys.

        491 while ours is pending (§14.1 glare); 500 with Retry-After while another INVITE
        is still being answered or the call is not up yet. With an offer: 200 with the answer
        (our direction mirrors theirs: ``sendonly`` → ``recvonly``, RFC 3264 §6.1) and the
        media follows; an offer we cannot accept gets 488 and the call goes on unchanged —
        except one without SRTP on an encrypted call under the mandatory policy: 488, then
        BYE with the downgrade reason. Without an offer: our offer in the 200, the answer
        comes in the ACK (:meth:`receive_ack`)."""
        if self._reinvite_out is not None:
            self._host.respond(tx, self._in_dialog_response(request, 491))
            return
        current, setup = self.negotiated, self._media_setup
        if (
            self._reinvite_in is not None
            or self.phase is not CallPhase.ESTABLISHED
            or current is None
            or setup is None
            or self._local_sdp is None
            or self._origin is None
        ):
            response = self._in_dialog_response(request, 500)
            response.headers.add("Retry-After", str(retry_after()))
            self._host.respond(tx, response)
            return
        local = setup.local.hold() if self.held_by_us else setup.local.resume()
        origin = next_origin(self._origin)
        if not request.body:
            reoffer = _suite_in_use_first(local, current)
            self._offer_in_2xx(request, tx, reoffer, origin, current.media_index)
            return
        try:
            offer = parse_sdp(request.body)
        except SdpParseError as exc:
            self._refuse_change(request, tx, exc.status_code, exc.reason)
            return
        downgrade = current.encrypted and not has_srtp(offer)
        if downgrade and self._policy is SrtpPolicy.MANDATORY:
            self._refuse_change(request, tx, 488, "SRTP is required")
            self._spawn(self._bye(DOWNGRADE_OFFER, reason_header=DOWNGRADE_OFFER))
            return
        try:
            answer = build_answer(
                local,
                offer,
                signalling_protected=self.over_tls,
                origin=origin,
                previous=self._previous(),
            )
            direction = peer_direction(offer, answer.negotiated.media_index)
        except (NegotiationError, SdpParseError) as exc:
            self._refuse_change(request, tx, exc.status_code, exc.reason)
            return
        except LocalProtocolError as exc:
            self._refuse_change(request, tx, 488, str(exc))
            return
        self._host.respond(tx, self._in_dialog_response(request, 200, body=bytes(answer.sdp)))
        self._sent_sdp(answer.sdp)
        self._local_sdp = answer.sdp
        self._apply(answer.negotiated, direction)
        if current.encrypted and not answer.negotiated.encrypted:
            self._emit(MediaDowngraded(self.call_id, DOWNGRADED_OFFER))

    def _offer_in_2xx(
        self,
        request: Request,
        tx: ServerTransaction,
        local: LocalMedia,
        origin: Origin,
        media_index: int,
    ) -> None:
        """§14.2: a re-INVITE without SDP: our offer in the 200, its answer in the ACK."""
        try:
            offer = build_offer(
                local,
                signalling_protected=self.over_tls,
                origin=origin,
                previous_sdp=self._local_sdp,
                media_index=media_index,
                keep_keys=() if self.negotiated is None else _our_keys(self.negotiated),
            )
        except LocalProtocolError as exc:
            self._refuse_change(request, tx, 488, str(exc))
            return
        self._origin = offer.sdp.origin
        self._host.respond(tx, self._in_dialog_response(request, 200, body=bytes(offer.sdp)))
        pending = IncomingReinvite(request, offer)
        pending.timer = asyncio.get_running_loop().call_later(
            ACK_TIMEOUT, lambda: self._spawn(self._bye("no ACK for our answer to a re-INVITE"))
        )
        self._reinvite_in = pending

    def _ack_of_reinvite(self, pending: IncomingReinvite, ack: Request) -> None:
        self._reinvite_in = None
        self._no_reinvite.set()
        if pending.timer is not None:
            pending.timer.cancel()
        if not ack.body:
            self._spawn(self._bye("media refused: no answer in the ACK", reason_header="no SDP"))
            return
        try:
            answer = parse_sdp(ack.body)
        except SdpParseError as exc:
            self._spawn(self._bye(f"media refused: {exc.reason}", reason_header=exc.reason))
            return
        self._spawn(self._quiet_answer(pending.offer, answer))

    async def _quiet_answer(self, offer: Offer, answer: SessionDescription) -> None:
        await self._take_answer(offer, answer, sent=offer.sdp)

    def _refuse_change(self, request: Request, tx: ServerTransaction, code: int, why: str) -> None:
        response = self._in_dialog_response(request, code)
        response.headers.add("Warning", f'399 softphone "{_quoted_safe(why)}"')
        self._host.respond(tx, response)

    def _in_dialog_response(self, request: Request, code: int, *, body: bytes = b"") -> Response:
        response = Response.for_request(request, code)
        if 200 <= code < 300:
            response.headers.add("Contact", str(NameAddr(self._host.contact_uri())))
            response.headers.add("Allow", ALLOW)
        if body:
            response.headers.add("Content-Type", "application/sdp")
            response.body = body
        return response

    def _previous(self) -> Negotiated | None:
        """What an offer or answer is checked against: under the mandatory policy the
        current session, so dropping SRTP is refused (policy.py: once encrypted, always);
        under optional nothing, so the call may go on in clear (and says so)."""
        return self.negotiated if self._policy is SrtpPolicy.MANDATORY else None

    def _apply(self, negotiated: Negotiated, peer: Direction) -> None:
        """A new offer/answer took effect: media follows (direction, address, keys)."""
        setup = self._media_setup
        assert setup is not None
        old = self.negotiated
        setup.negotiated = self.negotiated = negotiated
        if self.media is not None:
            self.media.update(self._media_view(negotiated))
        self._set_held_by_peer(not peer.receives)
        if old is not None and (old.keying, old.suite) != (negotiated.keying, negotiated.suite):
            self._announce_media(negotiated)

    def _media_view(self, negotiated: Negotiated) -> Negotiated:
        """What the media session runs: while we hold, we send nothing (no music on hold)."""
        if not self.held_by_us or not negotiated.direction.sends:
            return negotiated
        return replace(negotiated, direction=negotiated.direction.without_send())

    def _set_held_by_us(self, held: bool) -> None:
        if held == self.held_by_us:
            return
        self.held_by_us = held
        if self.media is not None and self.negotiated is not None:
            self.media.update(self._media_view(self.negotiated))
        self._emit(CallHeld(self.call_id, "us", held))

    def _set_held_by_peer(self, held: bool) -> None:
        if held != self.held_by_peer:
            self.held_by_peer = held
            self._emit(CallHeld(self.call_id, "peer", held))

    def _drop_reinvites(self) -> None:
        pending_in, self._reinvite_in = self._reinvite_in, None
        if pending_in is not None and pending_in.timer is not None:
            pending_in.timer.cancel()
        self._no_reinvite.set()

    def _sent_sdp(self, sdp: SessionDescription) -> None:
        self._origin = sdp.origin
        if self._local_sdp is None:
            self._local_sdp = sdp

    def _dtmf_received(self, digit: str) -> None:
        if digit not in DTMF_DIGITS:
            return
        self._emit(DtmfReceived(self.call_id, digit))
        if self.on_dtmf is not None:
            try:
                self.on_dtmf(digit)
            except Exception:  # a broken listener must not break the call
                log.exception("on_dtmf failed")

    def _emit(self, event: Event) -> None:
        # CallHost.emit is typed for the first two events; the UA's emits any Event.
        emit = cast("Callable[[Event], None]", self._host.emit)
        emit(event)

    # -- both ------------------------------------------------------------------------------

    def receive_bye(self, bye: Request, tx: ServerTransaction) -> None:
        """The peer hung up (§15.1.2): 200 and end."""
        response = Response.for_request(bye, 200)
        self._host.respond(tx, response)
        if self.dialog is not None:
            self.dialog.terminate()
        self._spawn(self._finish("the other side hung up"))

    def flow_lost(self, reason: str) -> None:
        """The flow under the call died: nothing can reach the peer any more."""
        if self.phase is not CallPhase.ENDED:
            self._spawn(self._finish(f"connection lost ({reason})"))

    async def _start_media(self) -> None:
        setup = self._media_setup
        if setup is None or setup.negotiated is None or self.phase is CallPhase.ENDED:
            return
        negotiated = setup.negotiated
        dtls = None
        if negotiated.keying is Keying.DTLS_SRTP:
            # RFC 5763 §5: our role from the answer; the peer's certificate must match the
            # a=fingerprint of its SDP, or no media at all (fail closed).
            assert negotiated.dtls_role is not None and setup.dtls_certificate is not None
            dtls = DtlsEndpoint(
                negotiated.dtls_role,
                setup.dtls_certificate,
                negotiated.remote_fingerprints,
                handshake_timeout=DTLS_HANDSHAKE_TIMEOUT,
            )
        session = MediaSession(
            negotiated,
            ports=setup.ports,
            source=self.source,
            sink=self.sink,
            on_event=self._on_media_event,
            media_timeout=self.media_timeout,
            dtls=dtls,
        )
        self.media, self.negotiated = session, negotiated
        await session.start()
        self._set_phase(CallPhase.ESTABLISHED)
        if dtls is not None:
            try:
                await session.wait_secured()
            except DtlsError as exc:
                await self._bye(exc.reason, reason_header=exc.reason)
                return
            if self.ended.done() or self.media is not session:
                return
        self._announce_media(negotiated)

    def _announce_media(self, negotiated: Negotiated) -> None:
        """MediaStarted: when audio starts, and again when a re-INVITE changed its keying."""
        suite = negotiated.suite
        if suite is None and self.media is not None:  # DTLS-SRTP: the profile DTLS chose
            suite = getattr(self.media.protection, "suite", None)
        self._host.emit(
            MediaStarted(
                call_id=self.call_id,
                codec=negotiated.codec.encoding_name,
                encrypted=negotiated.encrypted,
                srtp_suite=None if suite is None else suite.wire_name,
                keying=negotiated.keying.value,
                audio=audio_protection(negotiated.keying, end_to_end=self._host.end_to_end),
                signalling=signalling_protection(self.over_tls, end_to_end=self._host.end_to_end),
            )
        )

    def _on_media_event(self, event: MediaEvent) -> None:
        if isinstance(event, MediaDtmf):
            self._dtmf_received(event.digit)
        elif isinstance(event, MediaTimeout) and self.phase is CallPhase.ESTABLISHED:
            if self.held_by_peer:
                return  # RFC 6337 §5.3: a phone that holds us may send nothing at all
            self._spawn(self._bye(f"no audio from the other side for {event.silent_for:.0f} s"))

    async def _bye(self, reason: str, *, reason_header: str | None = None) -> None:
        """BYE (best effort: a dead flow or no answer still ends the call here)."""
        if self.phase is CallPhase.ENDED:
            return
        dialog = self.dialog
        if dialog is not None and dialog.state.value != "terminated":
            extra = []
            if reason_header:
                extra.append(("Reason", f'SIP;cause=488;text="{_quoted_safe(reason_header)}"'))
            try:
                bye = dialog.create_request("BYE", via=self._new_via(), headers=extra)
            except (LocalProtocolError, CallError):
                bye = None
            dialog.terminate()
            if bye is not None:
                with contextlib.suppress(CallError):
                    await self._host.transact(bye)
        await self._finish(reason)

    async def _finish(self, reason: str) -> None:
        if self.phase is CallPhase.ENDED:
            return
        media, self.media = self.media, None
        self._end(reason)
        if media is not None:
            await media.stop()
        else:
            self._release_media()

    def _release_media(self) -> None:
        setup = self._media_setup
        if setup is not None and self.media is None:
            setup.ports.close()

    def _end(self, reason: str, status_code: int | None = None, *, announce: bool = True) -> None:
        if self.phase is CallPhase.ENDED:
            return
        if self._ack_timer is not None:
            self._ack_timer.cancel()
        self._drop_reinvites()
        self.reason, self.status_code = reason, status_code
        if self.media is not None:
            media, self.media = self.media, None
            self._spawn(media.stop())
        self._set_phase(CallPhase.ENDED, announce=announce)
        if not self.ended.done():
            self.ended.set_result(reason)
        self._host.forget(self)

    def _set_phase(self, phase: CallPhase, *, announce: bool = True) -> None:
        self.phase = phase
        self._phase_changed.set()
        if announce:
            self._emit_state()

    def _emit_state(self) -> None:
        self._host.emit(
            CallState(
                call_id=self.call_id,
                direction=self.direction.value,
                peer=self.peer,
                state=self.phase.value,
                reason=self.reason,
                status_code=self.status_code,
            )
        )

    def _via(self, transport: str, local: tuple[str, int]) -> Via:
        host = local[0]
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        # RFC 3581 rport: answers come back over the flow, whatever our address looks like.
        return Via(transport, host, local[1], {"branch": new_branch(), "rport": None})

    def _new_via(self) -> Via:
        info = self._host.flow_info()
        if info is None:
            raise CallError("the connection is gone")
        return self._via(*info)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task failed", exc_info=task.exception())


def _suite_in_use_first(local: LocalMedia, negotiated: Negotiated) -> LocalMedia:
    """A re-offer lists the SRTP suite in use first (tag 1), then the others: a peer that
    takes the first line (baresip 1.0 keeps its suite and key whatever we offer) then
    answers the suite it really uses."""
    suite = negotiated.suite
    if suite is None or suite not in local.suites:
        return local
    return replace(local, suites=(suite, *(s for s in local.suites if s is not suite)))


def _our_keys(negotiated: Negotiated) -> tuple[CryptoAttribute, ...]:
    """The SDES key we send with, kept in re-offers (hold/resume do not re-key)."""
    return () if negotiated.local_crypto is None else (negotiated.local_crypto,)


def _quoted_safe(text: str) -> str:
    """Text for a quoted-string: no quotes, backslashes or line breaks."""
    return "".join(c for c in text if c not in '"\\\r\n\0')[:200]


def parse_target(text: str, aor: SipURI) -> SipURI:
    """What the person typed as a SIP URI: ``bob`` → ``sips:bob@<our domain>``, a full
    ``sip:``/``sips:`` URI as it is. ``CallError`` for anything else."""
    text = text.strip()
    if ":" not in text.split("@", 1)[0]:
        text = f"{aor.scheme}:{text}" if "@" in text else f"{aor.scheme}:{text}@{aor.host}"
    try:
        uri = parse_uri(text)
    except ParseError as exc:
        raise CallError(f"not an address we can call: {exc.reason}") from exc
    if not isinstance(uri, SipURI):
        raise CallError("only sip: and sips: addresses can be called")
    return uri
