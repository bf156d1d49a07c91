"""S/MIME bodies in calls (RFC 3261 §23), per the account's ``smime`` setting and the
contact's own (issue 6: "sign, sign+encrypt, or off, per contact or account").

Which setting applies (:meth:`SmimeSupport.for_call`): what *we send* follows the contact's
preference in the trust ledger (``softphone contacts smime AOR ...``, :attr:`Contact.smime
<softphone.security.ledger.Contact.smime>`) when it has one, else the account's; what we
*require* of the peer's bodies is the stricter of the two
(:func:`~softphone.security.ledger.required_mode`): a per-contact ``off`` never weakens an
account that requires S/MIME, a per-contact ``sign`` makes an account's ``off`` strict for
that contact.

``"sign"`` or ``"sign+encrypt"``: the SDP of our INVITE and of our 200 goes out signed
(``multipart/signed``, SHA-256) or signed then encrypted (``application/pkcs7-mime;
smime-type=enveloped-data``) to the peer's certificate (§23.3), with the §23.4 tunnelled copy
of From/To/Call-ID/CSeq/Date/Contact inside the signature. Re-INVITEs (hold, resume) are
protected the same way: the SDES key they repeat must not travel in clear to the proxies.

Where the peer's certificate comes from (§23.2): the trust ledger (every certificate a contact
showed: sipsec, S/MIME signers, certs-only bodies); else an OPTIONS carrying our certs-only
body, whose 200 carries theirs (:meth:`SmimeSupport.fetch_certificate`); else we sign only and
say so (:class:`~softphone.ua.events.SmimeStatus`), and a peer that wants encryption answers
493 with its certificate: we learn it (asking the person when it is new) and send the INVITE
once more, encrypted (:meth:`SmimeSupport.learn`).

Every S/MIME body received is judged by :func:`~softphone.security.smime_sip.verify_message`
against our setting: a bad signature, an unknown signer the person refuses, a changed signer,
a body that is not protected enough or cannot be decrypted → 493 with our certs-only body (a
request) or the call ends with the reason (a response). Never silent acceptance. A signer
accepted is recorded in the ledger (``Seen.SMIME``) and announced in a
:class:`~softphone.ua.events.PeerIdentity` (``via="smime"``).

The words (UX.md): SDES keys in S/MIME-encrypted SDP both ways → "Audio encrypted end to end";
a DTLS fingerprint in signed SDP both ways → the same; signed-only SDES → the hop words
(a signature stops swapping, not reading).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509

from softphone.sdp.errors import SdpParseError
from softphone.sdp.policy import Keying
from softphone.security.certificates import (
    Identity,
    InvalidIdentityError,
    fingerprint_hex,
    fingerprint_sha256,
)
from softphone.security.ledger import LedgerError, Seen, required_mode, sending_mode
from softphone.security.pins import PinStore, PinStoreError
from softphone.security.safety import SafetyNumber, memoised_safety_number
from softphone.security.smime import ProtectionMode, SmimeError
from softphone.security.smime_sip import (
    BodyVerdict,
    Verdict,
    attach_certs_only,
    certificates_in,
    protect_message,
    undecipherable_response,
    verify_message,
)
from softphone.security.trust import Purpose
from softphone.sip.message import Request, Response
from softphone.storage import load_pin_store
from softphone.ua.callstate import CallError, CallPhase, ended_reason
from softphone.ua.events import Event, PeerIdentity, SmimeStatus, TrustRequired
from softphone.ua.trustledger import identity_state_of, safety_number_in_slices

if TYPE_CHECKING:
    from softphone.sdp.policy import Negotiated
    from softphone.security.identity import IdentityMaterial
    from softphone.sip.digest import AuthHeader
    from softphone.sip.transaction import ServerTransaction
    from softphone.ua.call import CallHost, _Media
    from softphone.ua.useragent import UserAgent

__all__ = [
    "CallSmime",
    "Opened",
    "SmimeCallMixin",
    "SmimeSupport",
    "peer_aor_of",
    "protection_words",
]

log = logging.getLogger(__name__)

#: How long an OPTIONS asking for the peer's certificate may take before we sign only.
FETCH_TIMEOUT = 5.0

Message = Request | Response


def protection_words(signed: bool, encrypted: bool) -> str:
    if signed and encrypted:
        return "signed+encrypted"
    return "signed" if signed else "encrypted" if encrypted else "not protected"


def peer_aor_of(uri: str) -> str | None:
    """``sip:user@host`` of a peer URI, None when it names no user (no S/MIME identity)."""
    try:
        return str(Identity.aor(uri))
    except (InvalidIdentityError, ValueError):
        return None


@dataclass
class CallSmime:
    """What one call does with S/MIME: the mode we send with, the peer's certificate to
    encrypt to, and how the last bodies each way were protected."""

    mode: ProtectionMode
    peer_aor: str
    peer_cert: x509.Certificate | None = None
    #: What a body from the peer must have (the stricter of the account's and the contact's
    #: settings; a 493 may make us send encrypted, it does not make us ask more of the peer).
    required: ProtectionMode = ProtectionMode.OFF
    retried: bool = False  # the INVITE was sent again after a 493 (§23.2): once only
    announced: bool = False  # PeerIdentity (via smime) emitted for this call
    sent: str = "not protected"
    received: str = "not protected"

    @property
    def sending_mode(self) -> ProtectionMode:
        """Sign+encrypt needs the peer's certificate; without it we sign only."""
        if self.mode is ProtectionMode.SIGN_AND_ENCRYPT and self.peer_cert is None:
            return ProtectionMode.SIGN
        return self.mode

    def end_to_end_audio(self, keying: Keying) -> bool:
        """UX.md: SDES keys in encrypted SDP both ways, or DTLS fingerprints in signed SDP
        both ways, reach no server: "Audio encrypted end to end"."""
        if keying is Keying.SDES:
            return self.sent == self.received == "signed+encrypted"
        if keying is Keying.DTLS_SRTP:
            return self.sent.startswith("signed") and self.received.startswith("signed")
        return False


@dataclass(frozen=True)
class Opened:
    """An S/MIME body judged: ``ok`` with the SDP, or the reason and the status to answer."""

    ok: bool
    sdp: bytes | None
    verdict: BodyVerdict
    reason: str
    status_code: int = 493


class SmimeSupport:
    """The user agent's S/MIME for calls (module docstring)."""

    def __init__(self, ua: UserAgent) -> None:
        self._ua = ua

    @property
    def mode(self) -> ProtectionMode:
        return ProtectionMode(str(self._ua.account.smime))

    @property
    def enabled(self) -> bool:
        return self.mode is not ProtectionMode.OFF

    def _identity(self) -> IdentityMaterial:
        return self._ua._sipsec_identity()

    @staticmethod
    def _now() -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    # -- a call's setting ---------------------------------------------------------------------

    def for_call(self, peer_uri: str, *, incoming_body: bool = False) -> CallSmime | None:
        """The S/MIME state of a new call to or from ``peer_uri`` (None: S/MIME is off for
        this peer and, ``incoming_body``, the INVITE carries no S/MIME body either).

        We send as the contact's ledger preference says, else as the account says; we require
        of the peer's bodies the stricter of the two (a contact set to ``off`` never weakens
        an account that requires S/MIME; module docstring). ``CallError`` when S/MIME applies
        but the address names nobody or we have no identity to sign with."""
        account = self.mode
        aor = peer_aor_of(peer_uri)
        preference = None if aor is None else self._ua.ledger.smime_preference(aor)
        mode = sending_mode(account, preference)
        required = required_mode(account, preference)
        active = mode is not ProtectionMode.OFF or required is not ProtectionMode.OFF
        if not active and not incoming_body:
            return None
        if aor is None:
            raise CallError(f"S/MIME needs the other side's address with a user: {peer_uri}")
        if mode is not ProtectionMode.OFF:
            self._identity()  # no identity: say so now, before anything is sent
        return CallSmime(mode, aor, self._ua.ledger.current_certificate(aor), required=required)

    # -- sending ------------------------------------------------------------------------------

    def protect(self, message: Message, sdp: bytes, state: CallSmime) -> None:
        """Put ``sdp`` on ``message`` protected as the call's mode allows (§23.3)."""
        mode = state.sending_mode
        if mode is ProtectionMode.OFF:
            return  # our setting is off: the message keeps its plain SDP
        identity = self._identity()
        for name in ("Date", "Content-Disposition"):  # a copy of an earlier message's
            message.headers.remove(name)
        try:
            protect_message(
                message,
                sdp,
                mode,
                own_cert=identity.cert,
                own_key=identity.key,
                peer_cert=state.peer_cert if mode is ProtectionMode.SIGN_AND_ENCRYPT else None,
                extra_certs=identity.chain,
                now=self._now(),
            )
        except (SmimeError, ValueError) as exc:
            raise CallError(f"could not protect the call setup with S/MIME: {exc}") from exc
        state.sent = protection_words(True, mode is ProtectionMode.SIGN_AND_ENCRYPT)

    def attach_certs(self, message: Message) -> None:
        """Our certificate as a certs-only body (§23.2: in OPTIONS and in 493)."""
        identity = self._identity()
        attach_certs_only(message, (identity.cert, *identity.chain))

    def undecipherable(self, request: Request, to_tag: str) -> Response:
        """493 Undecipherable with our certs-only body (§23.2)."""
        try:
            identity = self._identity()
            certs: tuple[x509.Certificate, ...] = (identity.cert, *identity.chain)
        except CallError:
            certs = ()
        return undecipherable_response(request, certs, to_tag=to_tag)

    async def fetch_certificate(self, target: str, state: CallSmime) -> None:
        """§23.2: an OPTIONS to ``target`` carrying our certs-only body; the certificate its
        200 carries becomes ``state.peer_cert`` (the person decides when it is new)."""
        try:
            response = await self._ua.options(target, timeout=FETCH_TIMEOUT, observe=False)
        except (CallError, TimeoutError) as exc:
            log.info("no certificate from %s by OPTIONS: %s", target, exc)
            return
        if 200 <= response.status_code < 300:
            await self.learn(response, state, call_id="", encrypt=False)

    def observe_certificates(
        self, message: Message, aor: str | None = None
    ) -> x509.Certificate | None:
        """Record a certs-only body's certificate for the AOR it names (From, or ``aor``): the
        first certificate, when it is for that AOR. Returns it."""
        if aor is None:
            try:
                aor = peer_aor_of(str(message.from_.uri))
            except ValueError:
                return None
        certs = certificates_in(message)
        if aor is None or not certs:
            return None
        with contextlib.suppress(InvalidIdentityError):
            if not Identity.aor(aor).matches(certs[0]):
                log.info("a certs-only body from %s names someone else: ignored", aor)
                return None
        self._ua.ledger.observe(aor, certs[0], Seen.SMIME)
        return certs[0]

    # -- receiving ----------------------------------------------------------------------------

    def _pins(self) -> PinStore | None:
        try:
            return load_pin_store(self._ua.gate.pin_store_path)
        except (OSError, PinStoreError) as exc:
            log.warning("the pin store is unreadable: %s", exc)
            return None

    def _judge(self, message: Message, state: CallSmime) -> BodyVerdict:
        try:
            identity: IdentityMaterial | None = self._identity()
        except CallError:
            identity = None  # no key: an encrypted body cannot be opened (493)
        self._ua.ledger.pin_verified(state.peer_aor)
        try:
            ledger = self._ua.ledger.load()
        except (OSError, LedgerError) as exc:
            log.warning("the trust ledger is unreadable: %s", exc)
            ledger = None
        return verify_message(
            message,
            now=self._now(),
            own_cert=None if identity is None else identity.cert,
            own_key=None if identity is None else identity.key,
            required=state.required,
            ledger=ledger,
            pins=self._pins(),
            anchors=self._ua.gate.anchors,
        )

    def open_known(self, message: Message, state: CallSmime, *, call_id: str) -> Opened:
        """Judge an in-dialog body (re-INVITE, its answer): the signer must already be
        known, nobody is asked (§23.3)."""
        verdict = self._judge(message, state)
        if not verdict.ok:
            if verdict.verdict is Verdict.CHANGED_SIGNER and verdict.signer is not None:
                self._loud_change(verdict, state)
            return Opened(False, None, verdict, verdict.reason, verdict.status_code or 493)
        return self._accepted(verdict, state, call_id)

    async def open(self, message: Message, state: CallSmime, *, call_id: str) -> Opened:
        """Judge the body of ``message`` from the call's peer (§23.3); asks the person about
        a signer seen for the first time (TOFU, through the TrustGate); records a signer
        accepted in the ledger and emits PeerIdentity (via ``smime``)."""
        verdict = self._judge(message, state)
        if verdict.verdict is Verdict.UNKNOWN_SIGNER and verdict.signer is not None:
            accepted, why = await self._ask(verdict, state, call_id)
            if not accepted:
                return Opened(False, None, verdict, why, 493)
        elif verdict.verdict is Verdict.CHANGED_SIGNER and verdict.signer is not None:
            self._loud_change(verdict, state)
            return Opened(False, None, verdict, verdict.reason, 493)
        elif not verdict.ok:
            return Opened(False, None, verdict, verdict.reason, verdict.status_code or 493)
        return self._accepted(verdict, state, call_id)

    def _accepted(self, verdict: BodyVerdict, state: CallSmime, call_id: str) -> Opened:
        if verdict.sdp is None:
            return Opened(False, None, verdict, "the protected body is not SDP", 415)
        state.received = protection_words(verdict.signed, verdict.encrypted)
        if verdict.signer is not None:
            observation = self._ua.ledger.observe(state.peer_aor, verdict.signer, Seen.SMIME)
            if observation is not None and observation.must_block:
                self._loud_change(verdict, state)
                return Opened(False, None, verdict, "the signer's certificate changed", 493)
            state.peer_cert = state.peer_cert or verdict.signer
            if not state.announced:
                state.announced = True
                self._announce(verdict.signer, state, call_id)
        self._ua._emit(SmimeStatus(call_id, "received", state.received, verdict.reason))
        return Opened(True, verdict.sdp, verdict, verdict.reason)

    async def learn(
        self, response: Response, state: CallSmime, *, call_id: str, encrypt: bool = True
    ) -> bool:
        """A 493 to our INVITE (§23.2), or the 200 to our OPTIONS: take the certificate its
        certs-only body carries, asking the person when it is new; True when we may send the
        INVITE (again) encrypted to it (``encrypt``: from now on, whatever our setting)."""
        certs = certificates_in(response)
        if not certs:
            return False
        cert = certs[0]
        with contextlib.suppress(InvalidIdentityError):
            if not Identity.aor(state.peer_aor).matches(cert):
                return False
        known = self._ua.ledger.current_certificate(state.peer_aor)
        if known is None or fingerprint_sha256(known) != fingerprint_sha256(cert):
            verdict = BodyVerdict(
                Verdict.UNKNOWN_SIGNER, "", signer=cert, signer_chain=tuple(certs)
            )
            accepted, _ = await self._ask(verdict, state, call_id)
            if not accepted:
                return False
            observation = self._ua.ledger.observe(state.peer_aor, cert, Seen.SMIME)
            if observation is not None and observation.must_block:
                return False
        state.peer_cert = cert
        if encrypt:
            state.mode = ProtectionMode.SIGN_AND_ENCRYPT
        return True

    async def _ask(self, verdict: BodyVerdict, state: CallSmime, call_id: str) -> tuple[bool, str]:
        """A certificate nothing vouches for yet: the person decides (TrustGate)."""
        assert verdict.signer is not None
        chain = verdict.signer_chain or (verdict.signer,)
        result, report = await self._ua.gate.check_identity(
            chain,
            Identity.aor(state.peer_aor),
            Purpose.CLIENT,
            lambda: None,
            waiting_for=f"S/MIME call with {state.peer_aor}",
        )
        if not result.accepted:
            return False, f"the certificate of {state.peer_aor} was not accepted"
        del report
        return True, ""

    def _loud_change(self, verdict: BodyVerdict, state: CallSmime) -> None:
        """UX.md "changed": loud, distinct, and it blocks until answered. The new certificate
        goes into the ledger (the contact is then "changed" there, and blocked if a person had
        verified the old one) so that ``softphone contacts`` and the GUI can show and answer
        it; the message that brought it is refused all the same."""
        assert verdict.signer is not None
        self._ua.ledger.observe(state.peer_aor, verdict.signer, Seen.SMIME)
        self._ua._emit(
            TrustRequired(
                waiting_for=f"S/MIME call with {state.peer_aor}",
                identity=state.peer_aor,
                problems=(),
                fingerprint=fingerprint_hex(fingerprint_sha256(verdict.signer)),
                chain_subjects=(verdict.signer.subject.rfc4514_string(),),
                changed=True,
                overridable=False,
            )
        )

    def _announce(self, signer: x509.Certificate, state: CallSmime, call_id: str) -> None:
        """The signer's identity and the safety number (``PeerIdentity``): at once when the
        number is memoised, else once worked out on the loop in slices (issue 7: 20 ms)."""
        identity = self._identity()
        known: SafetyNumber | None = None
        with contextlib.suppress(ValueError, InvalidIdentityError):
            known = memoised_safety_number(identity.cert, identity.aor, signer, state.peer_aor)
        if known is not None:
            self._emit_identity(signer, state, call_id, str(known))
            return

        async def later() -> None:
            number = await safety_number_in_slices(
                identity.cert, identity.aor, signer, state.peer_aor
            )
            self._emit_identity(signer, state, call_id, number)

        task = asyncio.ensure_future(later())
        self._ua._call_tasks.add(task)
        task.add_done_callback(self._ua._call_tasks.discard)

    def _emit_identity(
        self, signer: x509.Certificate, state: CallSmime, call_id: str, number: str | None
    ) -> None:
        ledger_state = identity_state_of(self._ua.ledger.state(state.peer_aor))
        self._ua._emit(
            PeerIdentity(
                call_id=call_id,
                tunnel_id="",
                peer_aor=state.peer_aor,
                fingerprint=fingerprint_hex(fingerprint_sha256(signer)),
                identity_state=ledger_state,
                safety_number=number,
                ledger_state=ledger_state,
                via="smime",
            )
        )


class SmimeCallMixin:
    """The S/MIME steps of :class:`~softphone.ua.call.Call` (RFC 3261 §23): the protected
    INVITE received, the 2xx to ours opened, the 493 that teaches a certificate, our SDP
    protected, in-dialog bodies opened, and the words for who can listen."""

    if TYPE_CHECKING:
        _host: CallHost
        _request: Request | None
        _server_tx: ServerTransaction | None
        _local_tag: str
        _cancelled: bool
        _media_setup: _Media | None
        call_id: str
        phase: CallPhase
        smime: CallSmime | None

        def _end(
            self, reason: str, status_code: int | None = None, *, announce: bool = True
        ) -> None: ...

        def _refuse(self, code: int, why: str) -> None: ...

        def start_incoming(
            self,
            request: Request,
            tx: ServerTransaction,
            transport: str,
            local: tuple[str, int],
            *,
            offer_body: bytes | None = None,
        ) -> bool: ...

        def _release_media(self) -> None: ...

        def _next_invite(self) -> Request: ...

        def _send_invite(self, invite: Request, auth: list[AuthHeader]) -> None: ...

        def _preemptive(self, invite: Request) -> list[AuthHeader]: ...

        async def _bye(self, reason: str, *, reason_header: str | None = None) -> None: ...

        def _take_first_answer(self, body: bytes) -> None: ...

        def _emit(self, event: Event) -> None: ...

    async def start_incoming_protected(
        self,
        request: Request,
        tx: ServerTransaction,
        transport: str,
        local: tuple[str, int],
        smime: CallSmime,
    ) -> bool:
        """An INVITE whose body is (or must be) S/MIME (RFC 3261 §23.3): judged first; a body
        we cannot accept gets 493 with our certs-only body (§23.2) and no call rings. Then as
        :meth:`start_incoming` with the opened SDP."""
        self._request, self._server_tx = request, tx
        self.call_id = request.call_id
        self.smime = smime
        support = self._smime_support
        assert support is not None
        opened = await support.open(request, smime, call_id=self.call_id)
        if self.phase is CallPhase.ENDED:
            return False  # cancelled while the person was asked
        if not opened.ok or opened.sdp is None:
            log.info("refusing an INVITE's S/MIME body: %s", opened.reason)
            if opened.status_code == 493:
                self._host.respond(tx, support.undecipherable(request, self._local_tag))
                self._end(f"refused (493): {opened.reason}", 493)
            else:
                self._refuse(opened.status_code, opened.reason)
            return False
        return self.start_incoming(request, tx, transport, local, offer_body=opened.sdp)

    async def _retry_encrypted(self, response: Response) -> None:
        """493 Undecipherable to our INVITE (RFC 3261 §23.2): take the certificate its
        certs-only body carries (the person decides if it is new), then send the INVITE once
        more, signed and encrypted to it. Otherwise the call ends with the reason."""
        smime, support, setup = self.smime, self._smime_support, self._media_setup
        assert smime is not None and setup is not None and setup.offer is not None
        learnt = support is not None and await support.learn(response, smime, call_id=self.call_id)
        if self.phase is CallPhase.ENDED:
            return
        if not learnt or self._cancelled:
            self._release_media()
            self._end(ended_reason(response), 493)
            return
        try:
            invite = self._next_invite()
        except CallError as exc:
            self._release_media()
            self._end(exc.reason, 493)
            return
        self._send_invite(invite, self._preemptive(invite))

    async def _open_answer(self, response: Response) -> None:
        """The 2xx to our protected INVITE: its S/MIME body judged (§23.3) before its SDP is
        used; a failure ends the call with the reason (an alert, never silence)."""
        smime, support = self.smime, self._smime_support
        assert smime is not None
        if support is None:
            await self._bye("S/MIME is not available for this call")
            return
        opened = await support.open(response, smime, call_id=self.call_id)
        if not opened.ok or opened.sdp is None:
            reason = f"the answer's S/MIME protection failed: {opened.reason}"
            await self._bye(reason, reason_header=reason)
            return
        self._take_first_answer(opened.sdp)

    @property
    def _smime_support(self) -> SmimeSupport | None:
        return getattr(self._host, "smime", None)

    def _protect(self, message: Request | Response, sdp: bytes) -> None:
        """Our SDP on ``message`` as the call's S/MIME setting says (nothing when off)."""
        smime, support = self.smime, self._smime_support
        if smime is None or support is None:
            return
        support.protect(message, sdp, smime)
        detail = ""
        if smime.mode.value == "sign+encrypt" and smime.peer_cert is None:
            detail = f"no certificate of {smime.peer_aor} is known: signed only, not encrypted"
        self._emit(SmimeStatus(self.call_id, "sent", smime.sent, detail))

    def _sdp_in(self, message: Request | Response) -> bytes:
        """The SDP of an in-dialog message: its S/MIME body opened when the call uses S/MIME
        (the signer must be the one already known); ``SdpParseError`` (493) if it fails."""
        smime, support = self.smime, self._smime_support
        if smime is None or support is None:
            return message.body
        opened = support.open_known(message, smime, call_id=self.call_id)
        if not opened.ok or opened.sdp is None:
            raise SdpParseError(f"S/MIME: {opened.reason}", opened.status_code)
        return opened.sdp

    def _audio_end_to_end(self, negotiated: Negotiated) -> bool:
        """UX.md: keys inside the sipsec tunnel, or in S/MIME-protected SDP both ways."""
        if self._host.end_to_end:
            return True
        return self.smime is not None and self.smime.end_to_end_audio(negotiated.keying)
