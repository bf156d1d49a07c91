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

With the account's ``smime`` setting (RFC 3261 §23) the SDP of the INVITE, the 200 and the
re-INVITEs travels signed or signed and encrypted (:mod:`softphone.ua.smime_call`).

A call ends cleanly on the peer's BYE, on our hangup, on a flow that dies (nothing can be
sent any more: ended "connection lost"), and on a media timeout (BYE best effort).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from softphone.media.dtls import DtlsCertificate, DtlsEndpoint, DtlsError
from softphone.media.rtp_session import DtmfReceived as MediaDtmf
from softphone.media.rtp_session import MediaEvent, MediaSession, MediaTimeout, ReservedPorts
from softphone.media.rtp_session import reserve_ports as _reserve_ports
from softphone.media.thread import MediaThread
from softphone.media.tone import AudioSink, FrameSource
from softphone.sdp.errors import NegotiationError, SdpParseError
from softphone.sdp.offer_answer import (
    Offer,
    build_answer,
    build_offer,
    new_origin,
    process_answer,
)
from softphone.sdp.policy import Keying, LocalMedia, Negotiated, SrtpPolicy
from softphone.sdp.session import parse_sdp
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
from softphone.sip.uri import SipURI
from softphone.ua.callstate import (
    ACK_TIMEOUT,
    ALLOW,
    AUDIO_WORDS,
    END_TO_END_SIGNALLING,
    REASONS,
    USER_AGENT,
    CallDirection,
    CallError,
    CallPhase,
    audio_protection,
    ended_reason,
    parse_target,
    quoted_safe,
    signalling_protection,
)
from softphone.ua.events import CallMuted, CallState, Event, MediaStarted
from softphone.ua.reinvite import ReinviteMixin
from softphone.ua.smime_call import SmimeCallMixin
from softphone.ua.sound import CallSound, CallSoundMixin

if TYPE_CHECKING:
    from softphone.sip.transaction import ServerTransaction
    from softphone.ua.smime_call import CallSmime

__all__ = [
    "ALLOW",
    "AUDIO_WORDS",
    "END_TO_END_SIGNALLING",
    "Call",
    "CallDirection",
    "CallError",
    "CallHost",
    "CallPhase",
    "audio_protection",
    "ended_reason",
    "parse_target",
    "signalling_protection",
]

log = logging.getLogger(__name__)

#: Seconds the DTLS-SRTP handshake may take (with retransmissions) before the call ends.
DTLS_HANDSHAKE_TIMEOUT = 10.0
#: Seconds of silence from the peer that end an established call.
MEDIA_TIMEOUT = 30.0


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

    def emit(self, event: Event) -> None: ...

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


class Call(ReinviteMixin, SmimeCallMixin, CallSoundMixin):
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
        media_thread: MediaThread | None = None,
    ) -> None:
        self._host = host
        #: Where the call's media session runs (softphone.media.thread); ``None``: this loop.
        self.media_thread = media_thread
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
        self._init_reinvite()
        #: RFC 3261 §23 S/MIME for this call (softphone.ua.smime_call), None when off.
        self.smime: CallSmime | None = None
        self._sound: CallSound | None = None  # softphone.ua.sound
        self._muted = False  # kept across media restarts (re-INVITE, media start)

    def __repr__(self) -> str:
        return f"<Call {self.direction.value} {self.peer} {self.phase.value}>"

    @property
    def end_to_end(self) -> bool:
        """Whether this call runs inside a sipsec tunnel (see :attr:`CallHost.end_to_end`)."""
        return self._host.end_to_end

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
        self._protect(response, answer_sdp)
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
        words = REASONS.get(code, f"rejected ({code})")
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

    # -- outgoing -------------------------------------------------------------------------

    def start_outgoing(self, target: SipURI, *, smime: CallSmime | None = None) -> None:
        """Build and send the INVITE with the SDP offer (RFC 3261 §13.2.1), protected with
        S/MIME (§23.3) when ``smime`` says so."""
        self.smime = smime
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
        self._protect(invite, bytes(offer.sdp))
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
        value = getattr(self._host, "media_keying", "sdes")
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
        if (
            code == 493
            and self.smime is not None
            and not self.smime.retried
            and not self._cancelled
        ):
            self.smime.retried = True  # §23.2: learn the certificate, send once more
            self._spawn(self._retry_encrypted(response))
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
        try:
            invite = self._next_invite()
        except CallError as exc:
            self._release_media()
            self._end(exc.reason, code)
            return True
        self._send_invite(invite, auth)
        return True

    def _next_invite(self) -> Request:
        """The INVITE sent again (after a challenge or a 493): same dialog identifiers, a new
        branch and the next CSeq (RFC 3261 §8.1.3.5, §22.2)."""
        old = self._invite
        assert old is not None
        headers = Headers()
        for name, value in old.headers:
            if name in ("Via", "CSeq", "Authorization", "Proxy-Authorization"):
                continue
            headers.add(name, value)
        top = old.top_via
        via = top.copy(params={**top.params, "branch": new_branch()})
        headers.prepend("Via", str(via))
        headers.add("CSeq", f"{old.cseq.seq + 1} INVITE")
        invite = Request("INVITE", old.uri, headers, old.body)
        setup = self._media_setup
        if self.smime is not None and setup is not None and setup.offer is not None:
            self._protect(invite, bytes(setup.offer.sdp))  # §23.4: the copy names this CSeq
        return invite

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
        if self.smime is not None:
            self._spawn(self._open_answer(response))
            return
        self._take_first_answer(response.body)

    def _take_first_answer(self, body: bytes) -> None:
        setup = self._media_setup
        assert setup is not None and setup.offer is not None
        try:
            answer = parse_sdp(body)
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

    def start_refused(self, request: Request, tx: ServerTransaction, code: int, why: str) -> None:
        """Refuse an INVITE before looking at its offer (``code`` with ``why`` in Warning)."""
        self._request, self._server_tx = request, tx
        self.call_id = request.call_id
        self._refuse(code, why)

    def start_incoming(
        self,
        request: Request,
        tx: ServerTransaction,
        transport: str,
        local: tuple[str, int],
        *,
        offer_body: bytes | None = None,
    ) -> bool:
        """Look at an INVITE that reached us (RFC 3261 §13.3.1): answer the offer first
        (488 and no call if it cannot be accepted), then ring (180). False if refused.
        ``offer_body``: the SDP opened from an S/MIME body (:meth:`start_incoming_protected`)."""
        body = request.body if offer_body is None else offer_body
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
        if not body:
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
            offer = parse_sdp(body)
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
        response.headers.add("Warning", f'399 softphone "{quoted_safe(why)}"')
        response.headers.add("Reason", f'SIP;cause={code};text="{quoted_safe(why)}"')
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

    def _emit(self, event: Event) -> None:
        self._host.emit(event)

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
        if not await self._open_sound():
            return
        session = MediaSession(
            negotiated,
            ports=setup.ports,
            source=self.source,
            sink=self.sink,
            on_event=self._on_media_event,
            media_timeout=self.media_timeout,
            dtls=dtls,
            thread=self.media_thread,
        )
        session.muted = self._muted
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
                audio=audio_protection(
                    negotiated.keying, end_to_end=self._audio_end_to_end(negotiated)
                ),
                signalling=signalling_protection(self.over_tls, end_to_end=self._host.end_to_end),
            )
        )

    @property
    def muted(self) -> bool:
        """Whether our microphone is muted (silence is sent; see :meth:`set_muted`)."""
        return self._muted

    def set_muted(self, muted: bool) -> None:
        """Mute or unmute our microphone. RTP keeps flowing with silent frames (RFC 3550
        §5.1: continuous timestamps, so the peer's jitter buffer and media timeout stay
        sane); a local action, no re-INVITE (unlike hold, RFC 3264 §8.4). Emits
        :class:`~softphone.ua.events.CallMuted` when the state changes."""
        if muted == self._muted:
            return
        self._muted = muted
        if self.media is not None:
            self.media.muted = muted
        self._host.emit(CallMuted(call_id=self.call_id, muted=muted))

    def levels(self) -> tuple[float, float]:
        """(sent, received) RMS of the last 20 ms frame in dBFS; ``-inf`` for silence or
        when no media runs. Cheap: read off the media session, safe to poll at 10 Hz."""
        media = self.media
        if media is None:
            return (-math.inf, -math.inf)
        return (media.sent_dbfs, media.received_dbfs)

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
                extra.append(("Reason", f'SIP;cause=488;text="{quoted_safe(reason_header)}"'))
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
        self._close_sound()
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
