"""S/MIME bodies in SIP (RFC 3261 §23; RFC 8551 message format), sans-I/O.

Bytes and a Content-Type in, bytes and a Content-Type out; no files, no sockets, no clock
(``now`` is an argument wherever validity matters).

- certificate exchange (§23.2): :func:`certs_only` / :func:`parse_certs_only`
  (``application/pkcs7-mime; smime-type=certs-only``);
- signing (§23.3): :func:`sign` → ``multipart/signed`` with a detached SHA-256
  ``application/pkcs7-signature``; :func:`verify_signed` (in :mod:`.smime_verify`, because
  ``cryptography`` can sign CMS but not verify it);
- encryption (§23.3): :func:`encrypt` → ``application/pkcs7-mime; smime-type=enveloped-data``
  (AES-256-CBC, RSA key transport: S/MIME identities need an RSA key); :func:`decrypt`;
- SDP protection as the user setting chooses (:class:`ProtectionMode`): :func:`protect_sdp`
  signs, then encrypts (RFC 8551 §3.6), :func:`open_protected_body` undoes the layers in
  whatever order they came;
- tunnelling (§23.4): :func:`tunnel_copy` builds the ``message/sip`` copy of From, To,
  Call-ID, CSeq, Date and Contact that gets signed with the SDP, and
  :func:`check_tunnelled_headers` compares it with the outer message.

Whether a signer is the person in From is not decided here: pass the signer chain to
:func:`softphone.security.trust.evaluate` with ``Identity.aor(from_aor)``.

Errors (after httpx)::

    SipError
    ├── LocalProtocolError      we were asked for something S/MIME cannot do here
    │                           (an EC recipient certificate, a key that is not the cert's)
    └── RemoteProtocolError
        └── SmimeError          the peer's S/MIME body cannot be accepted; status_code 493
                                (Undecipherable) unless said otherwise, and a precise reason
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7

from softphone.security.certificates import aor_identities, describe_key
from softphone.security.smime_verify import (
    SIGNATURE_TYPES,
    SmimeError,
    VerifiedContent,
    encapsulated_content,
    parse_entity,
    verify_signed,
    verify_signed_data,
)
from softphone.sip.errors import LocalProtocolError, ParseError
from softphone.sip.message import Headers, Request, Response
from softphone.sip.multipart import BodyPart, build_multipart, parse_content_type
from softphone.sip.parser import parse_message

__all__ = [
    "CERTS_ONLY_TYPE",
    "ENVELOPED_DISPOSITION",
    "ENVELOPED_TYPE",
    "SIGNATURE_TYPES",
    "TUNNELLED_HEADERS",
    "OpenedBody",
    "ProtectionMode",
    "SmimeError",
    "VerifiedContent",
    "certs_only",
    "check_tunnelled_headers",
    "decrypt",
    "encrypt",
    "open_protected_body",
    "parse_certs_only",
    "protect_sdp",
    "sign",
    "tunnel_copy",
    "verify_signed",
    "verify_signed_data",
]

CERTS_ONLY_TYPE = "application/pkcs7-mime; smime-type=certs-only; name=smime.p7c"
ENVELOPED_TYPE = "application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m"
#: The Content-Disposition an S/MIME body travels with (RFC 3261 §23.3 example, §20.11):
#: a UAS that cannot process it must fail the request rather than ignore the body.
ENVELOPED_DISPOSITION = "attachment; filename=smime.p7m; handling=required"
#: The headers a §23.4 tunnelled copy carries; proxies may change the others (Via, Route,
#: Record-Route, Max-Forwards, Request-URI, Proxy-Authorization) legitimately.
TUNNELLED_HEADERS = ("From", "To", "Call-ID", "CSeq", "Date", "Contact")

_PKCS7_MIME_TYPES = frozenset({"application/pkcs7-mime", "application/x-pkcs7-mime"})
# Text the MIME canonical form (RFC 8551 §3.1.1) gives CRLF line ends; other content is
# signed as it is.
_TEXT_TYPES = frozenset({"application/sdp", "message/sip", "message/sipfrag"})
_LINE_END_RE = re.compile(rb"\r?\n")
_MAX_LAYERS = 3

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class ProtectionMode(StrEnum):
    """The user setting for SDP in INVITE and 200 (RFC 3261 §23.3)."""

    OFF = "off"
    SIGN = "sign"
    SIGN_AND_ENCRYPT = "sign+encrypt"


# --- certificate exchange (§23.2) -----------------------------------------------------------


def certs_only(certs: Sequence[x509.Certificate]) -> tuple[str, bytes]:
    """``(content_type, body)`` of a certs-only message carrying ``certs`` (RFC 8551 §3.8)."""
    if not certs:
        raise LocalProtocolError("a certs-only body needs at least one certificate")
    return CERTS_ONLY_TYPE, pkcs7.serialize_certificates(list(certs), serialization.Encoding.DER)


def parse_certs_only(body: bytes) -> list[x509.Certificate]:
    """The certificates of a certs-only body, DER or base64 (SmimeError 400 if malformed).

    The set is unordered in DER (a SET OF), so the end-entity certificates, those that issued
    none of the others, come first: ``result[0]`` is the sender's own certificate.
    """
    der = _maybe_base64(body)
    try:
        certs = pkcs7.load_der_pkcs7_certificates(der)
    except ValueError as exc:
        raise SmimeError(f"malformed certs-only body: {exc}", 400) from exc
    if not certs:
        raise SmimeError("certs-only body without a certificate", 400)

    def issued_another(cert: x509.Certificate) -> bool:
        return any(o is not cert and o.issuer == cert.subject != o.subject for o in certs)

    return sorted(certs, key=issued_another)


# --- signing (§23.3) ------------------------------------------------------------------------


def _entity(content: bytes, content_type: str) -> bytes:
    """The MIME entity that gets signed or encrypted, in canonical form (RFC 8551 §3.1.1)."""
    if any(c in content_type for c in "\r\n\0"):
        raise LocalProtocolError("control character in a Content-Type")
    try:
        media, _ = parse_content_type(content_type)
    except ParseError as exc:
        raise LocalProtocolError(f"cannot protect content of type {content_type!r}") from exc
    if media in _TEXT_TYPES or media.startswith("text/"):
        content = _LINE_END_RE.sub(b"\r\n", content)
    return f"Content-Type: {content_type.strip()}\r\n\r\n".encode() + content


def _check_key_pair(cert: x509.Certificate, key: object) -> None:
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise LocalProtocolError(
            f"S/MIME signing needs an RSA or ECDSA key, not {type(key).__name__}"
        )
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, spki) != cert.public_key().public_bytes(der, spki):
        raise LocalProtocolError("the private key does not belong to the certificate")


def sign(
    content: bytes,
    content_type: str,
    cert: x509.Certificate,
    key: SigningKey,
    *,
    extra_certs: Sequence[x509.Certificate] = (),
    rsa_padding: Literal["pkcs1v15", "pss"] = "pkcs1v15",
    signature_encoding: Literal["base64", "binary"] = "base64",
) -> tuple[str, bytes]:
    """Sign ``content`` detached (RFC 8551 §3.5.3); return ``(multipart/signed type, body)``.

    The first part is the canonical entity ``Content-Type: <content_type>`` CRLF CRLF
    ``<content>`` (text line ends turned into CRLF), the second the CMS SignedData (SHA-256,
    signed attributes, ``cert`` and ``extra_certs`` embedded so the peer can build a chain).
    The signature part is base64 by default, like the RFC 3261 §23.4.3 example and what
    openssl reads; ``binary`` is also valid in SIP. ``cryptography`` stamps the signing-time
    attribute from the system clock (it has no parameter for it).
    """
    _check_key_pair(cert, key)
    entity = _entity(content, content_type)
    pad: padding.PSS | padding.PKCS1v15 | None = None
    if isinstance(key, rsa.RSAPrivateKey):
        pad = padding.PKCS1v15()
        if rsa_padding == "pss":
            pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    builder = pkcs7.PKCS7SignatureBuilder().set_data(entity)
    builder = builder.add_signer(cert, key, hashes.SHA256(), rsa_padding=pad)
    for extra in extra_certs:  # after set_data/add_signer: those drop added certificates
        builder = builder.add_certificate(extra)
    options = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]
    der = builder.sign(serialization.Encoding.DER, options)
    signature_headers = Headers([("Content-Type", "application/pkcs7-signature; name=smime.p7s")])
    if signature_encoding == "base64":
        signature_headers.add("Content-Transfer-Encoding", "base64")
        encoded = base64.encodebytes(der).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    else:
        signature_headers.add("Content-Transfer-Encoding", "binary")
        encoded = der
    signature_headers.add(
        "Content-Disposition", "attachment; filename=smime.p7s; handling=required"
    )
    signed_part = BodyPart(Headers([("Content-Type", content_type.strip())]), b"", raw=entity)
    return build_multipart(
        [signed_part, BodyPart(signature_headers, encoded)],
        "signed",
        params={"protocol": "application/pkcs7-signature", "micalg": "sha-256"},
    )


# --- encryption (§23.3) ---------------------------------------------------------------------


def encrypt(
    content: bytes,
    content_type: str,
    recipient_certs: Sequence[x509.Certificate],
    *,
    cipher: Literal["aes256", "aes128"] = "aes256",
) -> tuple[str, bytes]:
    """Envelope ``content`` for ``recipient_certs`` (RFC 8551 §3.3); binary DER body.

    Only RSA recipients are possible (``cryptography``'s PKCS7EnvelopeBuilder does RSA key
    transport only): an EC certificate raises LocalProtocolError saying so. Add your own
    certificate to the recipients to be able to read what you sent.
    """
    if not recipient_certs:
        raise LocalProtocolError("encryption needs at least one recipient certificate")
    for cert in recipient_certs:
        if not isinstance(cert.public_key(), rsa.RSAPublicKey):
            names = aor_identities(cert) or (cert.subject.rfc4514_string() or "this peer",)
            raise LocalProtocolError(
                "S/MIME encryption needs an RSA recipient certificate; the certificate of "
                f"{names[0]} has an {describe_key(cert).description} key, which cannot "
                "receive encrypted S/MIME (ask for an RSA S/MIME certificate, or only sign)"
            )
    algorithm = algorithms.AES256 if cipher == "aes256" else algorithms.AES128
    builder = pkcs7.PKCS7EnvelopeBuilder().set_data(_entity(content, content_type))
    builder = builder.set_content_encryption_algorithm(algorithm)
    for cert in recipient_certs:
        builder = builder.add_recipient(cert)
    der = builder.encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    return ENVELOPED_TYPE, der


def decrypt(body: bytes, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> tuple[str, bytes]:
    """Open an enveloped-data body (DER, or base64); return the inner Content-Type and content.

    Failure of any kind (not for us, altered, unknown algorithm) raises SmimeError 493
    Undecipherable (RFC 3261 §23.2).
    """
    if not isinstance(key, rsa.RSAPrivateKey):
        raise LocalProtocolError("S/MIME decryption needs the RSA key of our S/MIME identity")
    der = _maybe_base64(body)
    try:
        entity = pkcs7.pkcs7_decrypt_der(der, cert, key, [])
    except ValueError as exc:
        if "no recipient" in str(exc).lower():
            raise SmimeError(
                "Undecipherable: the body is not encrypted for our certificate"
            ) from exc
        raise SmimeError(f"Undecipherable: {exc}") from exc
    except UnsupportedAlgorithm as exc:
        raise SmimeError(f"Undecipherable: unsupported encryption algorithm ({exc})") from exc
    return parse_entity(entity)


def _maybe_base64(body: bytes) -> bytes:
    """DER starts with a SEQUENCE tag; anything else is tried as base64 (mail-style bodies)."""
    if body[:1] == b"\x30":
        return body
    try:
        return base64.b64decode(b"".join(body.split()), validate=True)
    except ValueError:
        return body  # let the DER parser say what is wrong


# --- SDP protection -------------------------------------------------------------------------


def protect_sdp(
    sdp: bytes,
    mode: ProtectionMode | str,
    *,
    own_cert: x509.Certificate | None,
    own_key: SigningKey | None,
    peer_cert: x509.Certificate | None = None,
    extra_certs: Sequence[x509.Certificate] = (),
    tunnel: Request | Response | None = None,
) -> tuple[str, bytes]:
    """The body and Content-Type for ``sdp`` under ``mode`` (RFC 3261 §23.3).

    ``sign`` → multipart/signed; ``sign+encrypt`` → the signed body, enveloped for
    ``peer_cert`` (sign first, then encrypt: RFC 8551 §3.6, so the signature is hidden and
    covers the plaintext); ``off`` → plain ``application/sdp``. With ``tunnel`` (the message
    being sent, its Date set) the signed content is a §23.4 ``message/sip`` copy of its
    From/To/Call-ID/CSeq/Date/Contact carrying the SDP.
    """
    mode = ProtectionMode(mode)
    if mode is ProtectionMode.OFF:
        return "application/sdp", sdp
    if own_cert is None or own_key is None:
        raise LocalProtocolError(f"S/MIME mode {mode.value!r} needs our certificate and key")
    content_type, content = "application/sdp", sdp
    if tunnel is not None:
        content_type, content = "message/sip", tunnel_copy(tunnel, "application/sdp", sdp)
    signed_type, signed = sign(content, content_type, own_cert, own_key, extra_certs=extra_certs)
    if mode is ProtectionMode.SIGN:
        return signed_type, signed
    if peer_cert is None:
        raise LocalProtocolError("encrypting needs the peer's certificate (exchange it first)")
    return encrypt(signed, signed_type, [peer_cert])


@dataclass(frozen=True)
class OpenedBody:
    """What :func:`open_protected_body` found: the content and how it was protected.

    ``signer_chain`` is None when nothing was signed; ``tunnelled`` is the §23.4
    ``message/sip`` copy when the signed content was one (its body is :attr:`body`).
    """

    content_type: str
    body: bytes
    signed: bool
    encrypted: bool
    signer_chain: tuple[x509.Certificate, ...] | None = None
    signing_time: dt.datetime | None = None
    tunnelled: Request | Response | None = None

    @property
    def media_type(self) -> str:
        return parse_content_type(self.content_type)[0]

    def meets(self, mode: ProtectionMode | str) -> bool:
        """Whether the body was protected at least as ``mode`` asks."""
        mode = ProtectionMode(mode)
        if mode is ProtectionMode.SIGN:
            return self.signed
        if mode is ProtectionMode.SIGN_AND_ENCRYPT:
            return self.signed and self.encrypted
        return True


def open_protected_body(
    content_type: str,
    body: bytes,
    *,
    own_cert: x509.Certificate | None,
    own_key: rsa.RSAPrivateKey | None,
    now: dt.datetime,
    outer: Request | Response | None = None,
    max_clock_skew: dt.timedelta | None = dt.timedelta(minutes=10),
) -> OpenedBody:
    """Undo the S/MIME layers of a body (enveloped, multipart/signed, opaque signed-data).

    A plain body comes back unchanged with both flags False: whether that is acceptable is
    the caller's policy (:meth:`OpenedBody.meets`). A tunnelled ``message/sip`` is parsed and,
    when ``outer`` (the received message) is given, checked with
    :func:`check_tunnelled_headers`. Any failure raises SmimeError (493).
    """
    signed: VerifiedContent | None = None
    encrypted = False
    for _ in range(_MAX_LAYERS):
        try:
            media, params = parse_content_type(content_type)
        except ParseError as exc:
            raise SmimeError(f"protected body: {exc.reason}") from exc
        smime_type = (params.get("smime-type") or "").lower()
        if media in _PKCS7_MIME_TYPES and smime_type in ("enveloped-data", ""):
            if encrypted:
                raise SmimeError("body encrypted twice")
            if own_cert is None or own_key is None:
                raise SmimeError("Undecipherable: we have no S/MIME key to decrypt with")
            content_type, body = decrypt(body, own_cert, own_key)
            encrypted = True
        elif media in _PKCS7_MIME_TYPES and smime_type == "signed-data":
            signed = _once(signed, _verify_opaque(body, now))
            content_type, body = signed.content_type, signed.body
        elif media in _PKCS7_MIME_TYPES:
            raise SmimeError(f"unsupported smime-type {smime_type!r}", 415)
        elif media == "multipart/signed":
            signed = _once(signed, verify_signed(content_type, body, now=now))
            content_type, body = signed.content_type, signed.body
        else:
            break
    else:
        raise SmimeError("too many nested S/MIME layers")
    tunnelled = None
    if media == "message/sip":
        try:
            tunnelled = parse_message(body)
        except ParseError as exc:
            raise SmimeError(f"malformed tunnelled message/sip: {exc.reason}") from exc
        if outer is not None:
            check_tunnelled_headers(outer, tunnelled, now=now, max_clock_skew=max_clock_skew)
        content_type = tunnelled.headers.get("Content-Type") or "application/sdp"
        body = tunnelled.body
    return OpenedBody(
        content_type.strip(),
        body,
        signed=signed is not None,
        encrypted=encrypted,
        signer_chain=None if signed is None else signed.signer_chain,
        signing_time=None if signed is None else signed.signing_time,
        tunnelled=tunnelled,
    )


def _once(previous: VerifiedContent | None, new: VerifiedContent) -> VerifiedContent:
    if previous is not None:
        raise SmimeError("body signed twice")
    return new


def _verify_opaque(body: bytes, now: dt.datetime) -> VerifiedContent:
    """``application/pkcs7-mime; smime-type=signed-data`` (RFC 8551 §3.5.2)."""
    der = _maybe_base64(body)
    chain, signing_time = verify_signed_data(der, now=now)
    entity = encapsulated_content(der)
    inner_type, inner_body = parse_entity(entity)
    return VerifiedContent(inner_type, inner_body, chain, signing_time, entity)


# --- tunnelling (§23.4) ---------------------------------------------------------------------


def tunnel_copy(message: Request | Response, content_type: str, body: bytes) -> bytes:
    """The ``message/sip`` copy of ``message`` to sign (RFC 3261 §23.4.1.1).

    The start line, Via, :data:`TUNNELLED_HEADERS` that the message has, and ``body`` under
    ``content_type``. The message must carry a Date: the copy's Date is what makes a replayed
    body detectable.
    """
    if message.headers.get("Date") is None:
        raise LocalProtocolError("a tunnelled copy needs a Date header (§23.4.1.1)")
    headers = Headers()
    # The Via is not compared (proxies add theirs) but a message/sip without one does not
    # parse as a SIP message (§8.1.1).
    for name in ("Via", *TUNNELLED_HEADERS):
        for value in message.headers.get_all(name):
            headers.add(name, value)
    headers.add("Content-Type", content_type)
    if isinstance(message, Request):
        return bytes(Request(message.method, message.uri, headers, body, message.version))
    copy = Response(message.status_code, message.reason, headers, body, message.version)
    return bytes(copy)


def check_tunnelled_headers(
    outer: Request | Response,
    tunnelled: Request | Response,
    *,
    now: dt.datetime | None = None,
    max_clock_skew: dt.timedelta | None = dt.timedelta(minutes=10),
) -> None:
    """Compare the signed copy with the message it arrived in (RFC 3261 §23.4.1.1).

    From and To (URI and tag), Call-ID, CSeq, Date and Contact must match; the method or
    status code too. The Request-URI, Via, Route and the like may differ (proxies change
    them). With ``now``, a Date further than ``max_clock_skew`` from it is a replay. Raises
    SmimeError 493 naming the first header that differs.
    """
    try:
        _compare_start_lines(outer, tunnelled)
        for name in ("From", "To"):
            mine = outer.from_ if name == "From" else outer.to
            theirs = tunnelled.from_ if name == "From" else tunnelled.to
            if not mine.uri.equivalent(theirs.uri) or mine.tag != theirs.tag:
                raise SmimeError(f"tunnelled {name} does not match the message's {name}")
        if outer.call_id != tunnelled.call_id:
            raise SmimeError("tunnelled Call-ID does not match the message's Call-ID")
        if outer.cseq != tunnelled.cseq:
            raise SmimeError("tunnelled CSeq does not match the message's CSeq")
        _compare_date(outer, tunnelled, now, max_clock_skew)
        if "Contact" in tunnelled.headers:
            ours, theirs_c = outer.contacts, tunnelled.contacts
            if len(ours) != len(theirs_c) or not all(
                a.uri.equivalent(b.uri) for a, b in zip(ours, theirs_c, strict=True)
            ):
                raise SmimeError("tunnelled Contact does not match the message's Contact")
    except ParseError as exc:
        raise SmimeError(f"cannot compare the tunnelled headers: {exc.reason}") from exc


def _compare_start_lines(outer: Request | Response, tunnelled: Request | Response) -> None:
    if isinstance(outer, Request):
        if not isinstance(tunnelled, Request) or tunnelled.method != outer.method:
            raise SmimeError("tunnelled message is not the same request method")
    elif not isinstance(tunnelled, Response) or tunnelled.status_code != outer.status_code:
        raise SmimeError("tunnelled message is not the same response status")


def _compare_date(
    outer: Request | Response,
    tunnelled: Request | Response,
    now: dt.datetime | None,
    max_clock_skew: dt.timedelta | None,
) -> None:
    tunnelled_date = tunnelled.headers.get("Date")
    if tunnelled_date is None:
        raise SmimeError("tunnelled copy lacks the Date header")
    outer_date = outer.headers.get("Date")
    signed_at = _parse_date(tunnelled_date)
    if outer_date is None or _parse_date(outer_date) != signed_at:
        raise SmimeError("tunnelled Date does not match the message's Date")
    if now is not None and max_clock_skew is not None and abs(now - signed_at) > max_clock_skew:
        raise SmimeError("tunnelled Date is too far from now (a replayed message?)")


def _parse_date(value: str) -> dt.datetime:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError) as exc:
        raise SmimeError(f"malformed Date {value[:40]!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed
