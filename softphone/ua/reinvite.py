"""Re-INVITE, hold, resume and DTMF of a call: RFC 3261 §14, RFC 3264 §8, RFC 4733.

A :class:`~softphone.ua.call.Call` modifies its session (hold, resume, new keys) with a
re-INVITE in the dialog (RFC 3261 §14, offer/answer of RFC 3264 §8). The call gets these
methods from :class:`ReinviteMixin` (kept apart so that call.py stays readable). Rules:

* §14.1 glare: a re-INVITE received while ours is pending gets 491; when ours gets 491 we try
  again after a random delay: 2.1-4 s if we own the dialog's Call-ID (we placed the call),
  0-2 s if not, in 10 ms units (:func:`glare_delay`).
* §14.2: a re-INVITE received while an INVITE server transaction of ours is still pending
  (or our offer in a 2xx waits for its answer in the ACK) gets 500 with a Retry-After chosen
  at random between 0 and 10 s (:func:`retry_after`).
* Downgrade (issue 4, UX.md "a silent downgrade"): once the audio is encrypted, an offer or
  answer without SRTP ends the call under the ``mandatory`` policy, with these words
  (:data:`DOWNGRADE_OFFER`, :data:`DOWNGRADE_ANSWER`), and is reported as a
  :class:`~softphone.ua.events.MediaDowngraded` event under ``optional``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from softphone.media.dtmf import DTMF_DIGITS
from softphone.sdp.crypto import CryptoAttribute
from softphone.sdp.direction import Direction
from softphone.sdp.errors import NegotiationError, SdpParseError
from softphone.sdp.offer_answer import (
    Offer,
    build_answer,
    build_offer,
    has_srtp,
    next_origin,
    peer_direction,
    process_answer,
)
from softphone.sdp.policy import LocalMedia, Negotiated, SrtpPolicy
from softphone.sdp.session import Origin, SessionDescription, parse_sdp
from softphone.sip.errors import LocalProtocolError
from softphone.sip.headers import NameAddr
from softphone.sip.message import Request, Response
from softphone.ua.callstate import (
    ACK_TIMEOUT,
    ALLOW,
    USER_AGENT,
    CallDirection,
    CallError,
    CallPhase,
    ended_reason,
    quoted_safe,
)
from softphone.ua.events import CallHeld, DtmfReceived, Event, MediaDowngraded

if TYPE_CHECKING:
    from softphone.media.rtp_session import MediaSession
    from softphone.sip.dialog import Dialog
    from softphone.sip.headers import Via
    from softphone.sip.transaction import ServerTransaction
    from softphone.ua.call import CallHost, _Media

__all__ = [
    "DOWNGRADED_ANSWER",
    "DOWNGRADED_OFFER",
    "DOWNGRADE_ANSWER",
    "DOWNGRADE_OFFER",
    "GLARE_ATTEMPTS",
    "IncomingReinvite",
    "OutgoingReinvite",
    "ReinviteMixin",
    "glare_delay",
    "retry_after",
]

#: Call-ending reasons under the mandatory policy (shown to the person, sent in Reason).
DOWNGRADE_OFFER = "the other side tried to turn off encryption (re-INVITE without SRTP)"
DOWNGRADE_ANSWER = "the other side tried to turn off encryption (answer without SRTP)"
#: What the MediaDowngraded event says under the optional policy (the call goes on).
DOWNGRADED_OFFER = "the other side turned off encryption (re-INVITE without SRTP)"
DOWNGRADED_ANSWER = "the other side turned off encryption (answer without SRTP)"
#: How many times hold()/resume() send their re-INVITE when each one meets glare (491).
GLARE_ATTEMPTS = 4

log = logging.getLogger(__name__)
_rng = random.SystemRandom()


def glare_delay(owns_call_id: bool, rng: random.Random = _rng) -> float:
    """RFC 3261 §14.1: seconds to wait after a 491 before sending the re-INVITE again."""
    if owns_call_id:
        return rng.randint(210, 400) / 100
    return rng.randint(0, 200) / 100


def retry_after(rng: random.Random = _rng) -> int:
    """RFC 3261 §14.2: the Retry-After of a 500 to a re-INVITE that overlaps another."""
    return rng.randint(0, 10)


@dataclass
class OutgoingReinvite:
    """Our re-INVITE in progress: the request, our offer, and the final response to come."""

    request: Request
    offer: Offer
    final: asyncio.Future[Response] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    ack: Request | None = None  # the ACK of its 2xx, sent again for a retransmitted 2xx


@dataclass
class IncomingReinvite:
    """A re-INVITE without SDP that we answered with an offer in the 2xx (RFC 3261 §14.2,
    RFC 3264 §5): its answer comes in the ACK."""

    request: Request
    offer: Offer
    timer: asyncio.TimerHandle | None = None


class ReinviteMixin:
    """Hold, resume, DTMF and re-INVITEs both ways, for :class:`~softphone.ua.call.Call`.

    The call provides the attributes and methods declared under ``TYPE_CHECKING`` below and
    calls :meth:`_init_reinvite` from its constructor."""

    if TYPE_CHECKING:
        _host: CallHost
        direction: CallDirection
        phase: CallPhase
        reason: str
        call_id: str
        over_tls: bool
        dialog: Dialog | None
        media: MediaSession | None
        negotiated: Negotiated | None
        ended: asyncio.Future[Any]
        _media_setup: _Media | None

        @property
        def _policy(self) -> SrtpPolicy: ...

        async def _bye(self, reason: str, *, reason_header: str | None = None) -> None: ...

        def _spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...

        def _new_via(self) -> Via: ...

        def _announce_media(self, negotiated: Negotiated) -> None: ...

        def _emit(self, event: Event) -> None: ...

        def _protect(self, message: Request | Response, sdp: bytes) -> None: ...

        def _sdp_in(self, message: Request | Response) -> bytes: ...

    def _init_reinvite(self) -> None:
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
            self._protect(request, bytes(offer.sdp))  # RFC 3261 §23.3 when the call uses it
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
            answer = parse_sdp(self._sdp_in(response))
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
            offer = parse_sdp(self._sdp_in(request))
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
            answer = parse_sdp(self._sdp_in(ack))
        except SdpParseError as exc:
            self._spawn(self._bye(f"media refused: {exc.reason}", reason_header=exc.reason))
            return
        self._spawn(self._quiet_answer(pending.offer, answer))

    async def _quiet_answer(self, offer: Offer, answer: SessionDescription) -> None:
        await self._take_answer(offer, answer, sent=offer.sdp)

    def _refuse_change(self, request: Request, tx: ServerTransaction, code: int, why: str) -> None:
        response = self._in_dialog_response(request, code)
        response.headers.add("Warning", f'399 softphone "{quoted_safe(why)}"')
        self._host.respond(tx, response)

    def _in_dialog_response(self, request: Request, code: int, *, body: bytes = b"") -> Response:
        response = Response.for_request(request, code)
        if 200 <= code < 300:
            response.headers.add("Contact", str(NameAddr(self._host.contact_uri())))
            response.headers.add("Allow", ALLOW)
        if body:
            response.headers.add("Content-Type", "application/sdp")
            response.body = body
            self._protect(response, body)
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
