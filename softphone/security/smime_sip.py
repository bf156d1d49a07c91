"""S/MIME on SIP messages (RFC 3261 §23): put protected bodies on requests and responses,
judge the bodies received, and answer 493 Undecipherable. Sans-I/O: ``now`` is an argument.

:mod:`.smime` turns bytes into bytes; this module works on
:class:`~softphone.sip.message.Request` / :class:`~softphone.sip.message.Response` objects:

- :func:`attach_certs_only` — §23.2 certificate exchange: our certificate as
  ``application/pkcs7-mime; smime-type=certs-only`` (in OPTIONS, and in 493);
  :func:`certificates_in` collects the certificates a received message carries (certs-only
  bodies and S/MIME signers), for :meth:`TrustLedger.observe`;
- :func:`protect_message` — §23.3 signed (``multipart/signed``, detached SHA-256
  ``application/pkcs7-signature``), encrypted (``application/pkcs7-mime;
  smime-type=enveloped-data``, AES-256) or signed-then-encrypted SDP, with the §23.4
  ``message/sip`` tunnelled copy of From/To/Call-ID/CSeq/Date/Contact inside the signature;
- :func:`verify_message` — opens whatever came and returns a :class:`BodyVerdict`: the SDP,
  the signer certificate, and one :class:`Verdict`; never an exception for a peer's bad body
  (the caller answers 493 or ends the call with an alert: never silent acceptance);
- :func:`undecipherable_response` — §23.2: "a UAS that receives a request containing an
  S/MIME body it cannot decrypt ... SHOULD respond with 493 (Undecipherable)" and include its
  certificate in a certs-only body so the UAC can encrypt for it next time.

Who the signer is: the signer certificate must name the sender's AOR (RFC 3261 §23.3: "the
identity of the sender is the subjectAltName of the certificate"): From for a request, To for
a response (the UAS answers), and be *known*: the
certificate the trust ledger holds for that AOR, a pinned one (``PinReason`` of any kind for
``Identity.aor``), or one that chains to a configured CA (the TLS extended key usages are not
asked of an S/MIME certificate). Otherwise the verdict is UNKNOWN_SIGNER (first contact: the
UA may ask the person, TOFU) or CHANGED_SIGNER (the ledger or a pin knows another one).
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from softphone.security.certificates import Identity, InvalidIdentityError, fingerprint_sha256
from softphone.security.ledger import TrustLedger
from softphone.security.pins import PinState, PinStore
from softphone.security.smime import (
    ENVELOPED_DISPOSITION,
    ProtectionMode,
    SigningKey,
    SmimeError,
    certs_only,
    open_protected_body,
    parse_certs_only,
    protect_sdp,
)
from softphone.security.trust import Problem, Purpose, evaluate
from softphone.sip.errors import ParseError
from softphone.sip.message import Request, Response
from softphone.sip.multipart import parse_content_type, parse_multipart

__all__ = [
    "CERTS_ONLY_DISPOSITION",
    "BodyVerdict",
    "Verdict",
    "attach_certs_only",
    "certificates_in",
    "protect_message",
    "undecipherable_response",
    "verify_message",
]

#: A certs-only body can be ignored by a UA that does no S/MIME (RFC 3261 §20.11 handling).
CERTS_ONLY_DISPOSITION: Final = "attachment; filename=smime.p7c; handling=optional"
_SIGNED_DISPOSITION: Final = "attachment; filename=smime.p7s; handling=required"

Message = Request | Response


class Verdict(StrEnum):
    """What a received body is worth."""

    OK = "ok"  # as protected as required; signer (if any) known and named in From
    NOT_PROTECTED = "not-protected"  # less protection than the setting requires
    BAD_SIGNATURE = "bad-signature"  # the content was altered, or the signature forged
    UNKNOWN_SIGNER = "unknown-signer"  # no certificate, or one nothing vouches for
    CHANGED_SIGNER = "changed-signer"  # the ledger/pins know another certificate for From
    #: the signer's certificate names someone other than the sender (From of a request,
    #: To of a response)
    SIGNER_NOT_FROM = "signer-not-from"
    EXPIRED_SIGNER = "expired-signer"  # outside its validity at ``now``
    DECRYPTION_FAILED = "decryption-failed"  # not for us, altered, or no key
    HEADERS_MISMATCH = "headers-mismatch"  # §23.4 tunnelled copy differs from the message
    MALFORMED = "malformed"  # not S/MIME we can parse


@dataclass(frozen=True)
class BodyVerdict:
    """The result of :func:`verify_message`.

    ``sdp`` is the session description when the (opened) content is ``application/sdp``;
    ``signer`` the signer's certificate (also for UNKNOWN/CHANGED/NOT_FROM, so the UA can show
    its fingerprint and safety number); ``status_code`` is what to answer a request with when
    the verdict is not OK (493, or 415 for a type we do not support).
    """

    verdict: Verdict
    reason: str
    content_type: str | None = None
    body: bytes | None = None
    signer: x509.Certificate | None = None
    signer_chain: tuple[x509.Certificate, ...] = ()
    signed: bool = False
    encrypted: bool = False
    tunnelled: bool = False
    status_code: int | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK

    @property
    def sdp(self) -> bytes | None:
        if self.body is None or self.content_type is None:
            return None
        try:
            media = parse_content_type(self.content_type)[0]
        except ParseError:
            return None
        return self.body if media == "application/sdp" else None


# --- sending ----------------------------------------------------------------------------------


def attach_certs_only(
    message: Message,
    certs: Sequence[x509.Certificate],
    *,
    disposition: str = CERTS_ONLY_DISPOSITION,
) -> Message:
    """Make ``message``'s body our certs-only body (§23.2), ``certs[0]`` our own certificate."""
    content_type, body = certs_only(certs)
    message.headers.set("Content-Type", content_type)
    message.headers.set("Content-Disposition", disposition)
    message.body = body
    return message


def protect_message(
    message: Message,
    sdp: bytes,
    mode: ProtectionMode | str,
    *,
    own_cert: x509.Certificate | None,
    own_key: SigningKey | None,
    peer_cert: x509.Certificate | None = None,
    extra_certs: Sequence[x509.Certificate] = (),
    now: dt.datetime | None = None,
    tunnel: bool = True,
) -> Message:
    """Put ``sdp`` on ``message`` protected as ``mode`` says (§23.3).

    With ``tunnel`` (and a signing mode) the signed content is the §23.4 ``message/sip`` copy
    of the message's From/To/Call-ID/CSeq/Date/Contact; the message then needs a Date, which
    is set from ``now`` when missing. Sets Content-Type and Content-Disposition
    (``handling=required`` for protected bodies: a UA that cannot process them must fail
    the request, not ignore the body, §23.3).
    """
    mode = ProtectionMode(mode)
    if mode is not ProtectionMode.OFF and tunnel and message.headers.get("Date") is None:
        if now is None:
            raise ValueError("a tunnelled copy needs a Date header or now")
        message.headers.set("Date", email.utils.format_datetime(now.astimezone(dt.UTC), True))
    content_type, body = protect_sdp(
        sdp,
        mode,
        own_cert=own_cert,
        own_key=own_key,
        peer_cert=peer_cert,
        extra_certs=extra_certs,
        tunnel=message if tunnel and mode is not ProtectionMode.OFF else None,
    )
    message.headers.set("Content-Type", content_type)
    if mode is ProtectionMode.SIGN:
        message.headers.set("Content-Disposition", _SIGNED_DISPOSITION)
    elif mode is ProtectionMode.SIGN_AND_ENCRYPT:
        message.headers.set("Content-Disposition", ENVELOPED_DISPOSITION)
    else:
        message.headers.remove("Content-Disposition")
    message.body = body
    return message


def undecipherable_response(
    request: Request,
    own_certs: Sequence[x509.Certificate],
    *,
    to_tag: str | None = None,
) -> Response:
    """493 Undecipherable to ``request`` carrying our certs-only body (RFC 3261 §23.2).

    The reason phrase is the RFC's; why decryption failed is not sent (it helps nobody but
    someone probing), the caller logs it.
    """
    response = Response.for_request(request, 493, to_tag=to_tag)
    if own_certs:
        attach_certs_only(response, own_certs)
    return response


# --- receiving --------------------------------------------------------------------------------


def certificates_in(message: Message) -> list[x509.Certificate]:
    """The certificates a received certs-only body carries (the sender's own first), whether
    the body is the certs-only body itself or one part of a multipart/mixed. Malformed
    certs-only bodies are skipped: this is for collecting, :func:`verify_message` judges."""
    content_type = message.headers.get("Content-Type")
    if content_type is None or not message.body:
        return []
    candidates: list[tuple[str, bytes]] = [(content_type, message.body)]
    try:
        if parse_content_type(content_type)[0] == "multipart/mixed":
            candidates = [
                (p.headers.get("Content-Type") or "text/plain", p.body)
                for p in parse_multipart(message.body, content_type)
            ]
    except ParseError:
        return []
    found: list[x509.Certificate] = []
    for part_type, body in candidates:
        try:
            media, params = parse_content_type(part_type)
        except ParseError:
            continue
        if (
            media in ("application/pkcs7-mime", "application/x-pkcs7-mime")
            and (params.get("smime-type") or "").lower() == "certs-only"
        ):
            try:
                found.extend(parse_certs_only(body))
            except SmimeError:
                continue
    return found


def verify_message(
    message: Message,
    *,
    now: dt.datetime,
    own_cert: x509.Certificate | None = None,
    own_key: rsa.RSAPrivateKey | None = None,
    required: ProtectionMode | str = ProtectionMode.OFF,
    ledger: TrustLedger | None = None,
    pins: PinStore | None = None,
    anchors: Sequence[x509.Certificate] = (),
) -> BodyVerdict:
    """Open and judge the body of a received request or response (RFC 3261 §23.3, §23.4).

    ``required`` is the user's setting for this contact: a body with less protection is
    NOT_PROTECTED. A signed body's signer must be the sender (From of a request, To of a
    response) and be known (see the module
    docstring); a tunnelled ``message/sip`` must match the outer headers (and its Date be
    within 10 minutes of ``now``). Nothing here changes the ledger: on UNKNOWN_SIGNER or
    CHANGED_SIGNER the UA asks the person, then calls :meth:`TrustLedger.observe`.
    """
    content_type = message.headers.get("Content-Type")
    if content_type is None or not message.body:
        return _judge_plain(None, b"", ProtectionMode(required))
    try:
        opened = open_protected_body(
            content_type, message.body, own_cert=own_cert, own_key=own_key, now=now, outer=message
        )
    except SmimeError as exc:
        return _failure(exc)
    if not opened.signed and not opened.encrypted:
        return _judge_plain(opened.content_type, opened.body, ProtectionMode(required))
    verdict = BodyVerdict(
        Verdict.OK,
        "protected as required",
        opened.content_type,
        opened.body,
        None if opened.signer_chain is None else opened.signer_chain[0],
        opened.signer_chain or (),
        opened.signed,
        opened.encrypted,
        opened.tunnelled is not None,
    )
    if not opened.meets(required):
        return _with(
            verdict,
            Verdict.NOT_PROTECTED,
            f"the body is {_protection(opened.signed, opened.encrypted)}; the setting for "
            f"this contact is {ProtectionMode(required).value}",
        )
    if verdict.signer is None:
        return verdict  # encrypted only, and the setting allows it
    return _judge_signer(message, verdict, now, ledger=ledger, pins=pins, anchors=anchors)


def _protection(signed: bool, encrypted: bool) -> str:
    if signed and encrypted:
        return "signed and encrypted"
    return "signed" if signed else "encrypted" if encrypted else "not protected"


def _judge_plain(content_type: str | None, body: bytes, required: ProtectionMode) -> BodyVerdict:
    if required is ProtectionMode.OFF:
        return BodyVerdict(Verdict.OK, "no S/MIME protection asked for", content_type, body)
    return BodyVerdict(
        Verdict.NOT_PROTECTED,
        f"the body is not protected; the setting for this contact is {required.value}",
        content_type,
        body,
        status_code=493,
    )


def _with(verdict: BodyVerdict, kind: Verdict, reason: str) -> BodyVerdict:
    return BodyVerdict(
        kind,
        reason,
        verdict.content_type,
        verdict.body,
        verdict.signer,
        verdict.signer_chain,
        verdict.signed,
        verdict.encrypted,
        verdict.tunnelled,
        status_code=None if kind is Verdict.OK else 493,
    )


#: SmimeError reasons → verdicts, first match wins (the reasons are smime/smime_verify's).
_REASONS: Final[tuple[tuple[str, Verdict], ...]] = (
    ("undecipherable", Verdict.DECRYPTION_FAILED),
    ("signer certificate expired", Verdict.EXPIRED_SIGNER),
    ("signer certificate is not yet valid", Verdict.EXPIRED_SIGNER),
    ("signer certificate not included", Verdict.UNKNOWN_SIGNER),
    ("tunnelled", Verdict.HEADERS_MISMATCH),
    ("signature does not match", Verdict.BAD_SIGNATURE),
    ("bad signature", Verdict.BAD_SIGNATURE),
    ("signature algorithm", Verdict.BAD_SIGNATURE),
)


def _failure(exc: SmimeError) -> BodyVerdict:
    reason = exc.reason
    lowered = reason.lower()
    kind = next((v for text, v in _REASONS if text in lowered), Verdict.MALFORMED)
    return BodyVerdict(kind, reason, status_code=exc.status_code)


def _judge_signer(
    message: Message,
    verdict: BodyVerdict,
    now: dt.datetime,
    *,
    ledger: TrustLedger | None,
    pins: PinStore | None,
    anchors: Sequence[x509.Certificate],
) -> BodyVerdict:
    """The signer must be the sender and be known (RFC 3261 §23.3: "the identity of the sender
    is the subjectAltName of the certificate"). The sender of a request is its From; the
    sender of a response is the UAS, named in To (From still names the caller)."""
    signer = verdict.signer
    assert signer is not None
    header, role = ("From", "sender") if isinstance(message, Request) else ("To", "answering")
    try:
        sender_uri = message.from_.uri if isinstance(message, Request) else message.to.uri
        identity = Identity.aor(getattr(sender_uri, "aor", str(sender_uri)))
    except (ParseError, InvalidIdentityError, ValueError) as exc:
        return _with(verdict, Verdict.SIGNER_NOT_FROM, f"the {header} header names nobody: {exc}")
    if not identity.matches(signer):
        names = ", ".join(identity.names_in(signer)) or "no SIP address"
        return _with(
            verdict,
            Verdict.SIGNER_NOT_FROM,
            f"signed by a certificate for {names}, not for the {role} {identity}",
        )
    fingerprint = fingerprint_sha256(signer)
    contact = ledger.get(str(identity)) if ledger is not None else None
    pin_state = pins.state(identity, fingerprint) if pins is not None else PinState.NONE
    if contact is not None and contact.current == fingerprint and not contact.change_pending:
        return verdict
    if pin_state is PinState.MATCHES:
        return verdict
    if (contact is not None and contact.current is not None) or pin_state is PinState.CHANGED:
        return _with(
            verdict,
            Verdict.CHANGED_SIGNER,
            f"{identity} signed with a different certificate from the one known for them",
        )
    if anchors and _vouched_by_ca(verdict.signer_chain, identity, now, anchors):
        return verdict
    return _with(
        verdict, Verdict.UNKNOWN_SIGNER, f"nothing vouches for the certificate of {identity} yet"
    )


def _vouched_by_ca(
    chain: Sequence[x509.Certificate],
    identity: Identity,
    now: dt.datetime,
    anchors: Sequence[x509.Certificate],
) -> bool:
    """The chain reaches a configured CA and has no problem but TLS usage (RFC 8550 §4.4)."""
    report = evaluate(chain, identity, now=now, anchors=anchors, purpose=Purpose.CLIENT)
    return report.anchored and all(f.problem is Problem.BAD_KEY_USAGE for f in report.findings)
