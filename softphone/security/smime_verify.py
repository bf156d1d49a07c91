"""Verifying S/MIME signatures (RFC 8551 §3.5, RFC 5652 §5), sans-I/O.

``cryptography`` signs CMS but has no public API to verify it, so the ``SignedData`` is
parsed here with ``asn1crypto`` and every check is done by hand with ``cryptography``'s
primitives (RFC 5652 §5.4, §5.6):

1. exactly one ``SignerInfo``; its signer certificate is found among the certificates the
   message carries, by issuerAndSerialNumber or subjectKeyIdentifier;
2. the digest algorithm is SHA-256, SHA-384 or SHA-512 (SHA-1 and MD5 are refused);
3. with signed attributes: the content-type attribute names the encapsulated content type and
   the message-digest attribute equals the hash of the exact signed bytes; the signature is
   checked over the DER of the attributes re-tagged as a SET OF (§5.4), as received;
   without signed attributes the signature covers the content itself;
4. RSA PKCS #1 v1.5, RSASSA-PSS and ECDSA signatures;
5. the signer certificate is valid at ``now`` and its key usage allows signing.

Whether the signer is who the From header claims is *not* decided here: the caller passes
:attr:`VerifiedContent.signer_chain` to :func:`softphone.security.trust.evaluate` with
``Identity.aor(from_aor)``. Every failure raises :class:`SmimeError` with status 493
(RFC 3261 §21.4.27: "Undecipherable") and a reason that says what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import re
from dataclasses import dataclass

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from softphone.sip.errors import ParseError, RemoteProtocolError
from softphone.sip.message import Headers
from softphone.sip.multipart import parse_content_type, parse_multipart
from softphone.sip.parser import parse_headers

__all__ = [
    "SIGNATURE_TYPES",
    "SmimeError",
    "VerifiedContent",
    "encapsulated_content",
    "parse_entity",
    "verify_signed",
    "verify_signed_data",
]

#: Content types of the signature part of multipart/signed (RFC 8551 §3.5.3; openssl still
#: writes the pre-standard ``x-`` form).
SIGNATURE_TYPES = frozenset({"application/pkcs7-signature", "application/x-pkcs7-signature"})

_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_ENTITY_END_RE = re.compile(rb"\r?\n\r?\n")
_IDENTITY_ENCODINGS = frozenset({"binary", "8bit", "7bit"})


class SmimeError(RemoteProtocolError):
    """An S/MIME body we cannot accept: bad signature, unknown signer, failed decryption.

    ``status_code`` is 493 Undecipherable (RFC 3261 §21.4.27) unless said otherwise; the
    ``reason`` is precise ("signature does not match the content") so that the log and the
    alert shown to the user can tell a tampered body from a missing certificate.
    """

    def __init__(self, reason: str, status_code: int = 493) -> None:
        super().__init__(reason, status_code)


@dataclass(frozen=True)
class VerifiedContent:
    """The result of a signature that verified.

    ``content_type`` is the Content-Type value of the signed MIME entity (with parameters)
    and ``body`` its content (transfer encoding removed). ``signer_chain`` starts with the
    signer's certificate, followed by the other certificates the message carried: give it
    to ``trust.evaluate``. ``signing_time`` is the signer's claim (a signed attribute), not
    a proof; None when the signature had no signed attributes.
    """

    content_type: str
    body: bytes
    signer_chain: tuple[x509.Certificate, ...]
    signing_time: dt.datetime | None
    signed_entity: bytes  # the exact bytes the signature covers

    @property
    def media_type(self) -> str:
        """Lower-case ``type/subtype`` of :attr:`content_type`."""
        return parse_content_type(self.content_type)[0]

    @property
    def signer(self) -> x509.Certificate:
        return self.signer_chain[0]


def parse_entity(entity: bytes) -> tuple[str, bytes]:
    """Split a MIME entity (RFC 2045 §2.4) into its Content-Type value and decoded content.

    Used for the signed part of multipart/signed and for decrypted content. A missing
    Content-Type is ``text/plain`` (RFC 2045 §5.2); ``base64`` is decoded, ``binary``,
    ``8bit`` and ``7bit`` are taken as they are; any other transfer encoding is refused.
    """
    if entity[:2] == b"\r\n" or entity[:1] == b"\n":
        headers, content = Headers(), entity[2 if entity[:1] == b"\r" else 1 :]
    else:
        end = _ENTITY_END_RE.search(entity)
        if end is None:
            raise SmimeError("protected MIME entity has no empty line after its headers")
        try:
            text = entity[: end.start()].decode("utf-8").replace("\r\n", "\n")
            headers = parse_headers(text)
        except (UnicodeDecodeError, ParseError) as exc:
            raise SmimeError(f"malformed headers in the protected MIME entity: {exc}") from exc
        content = entity[end.end() :]
    content_type = headers.get("Content-Type") or "text/plain"
    try:
        parse_content_type(content_type)
    except ParseError as exc:
        raise SmimeError(f"protected MIME entity: {exc}") from exc
    encoding = (headers.get("Content-Transfer-Encoding") or "binary").strip().lower()
    if encoding == "base64":
        content = _b64decode(content, "protected content")
    elif encoding not in _IDENTITY_ENCODINGS:
        raise SmimeError(f"unsupported Content-Transfer-Encoding {encoding!r}")
    return content_type.strip(), content


def _b64decode(data: bytes, what: str) -> bytes:
    try:
        return base64.b64decode(b"".join(data.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SmimeError(f"{what} is not valid base64") from exc


def verify_signed(content_type: str, body: bytes, *, now: dt.datetime) -> VerifiedContent:
    """Verify a ``multipart/signed`` body (RFC 1847 §2.1, RFC 8551 §3.5.3) at ``now``.

    The first part is taken byte-exact, as received (never re-serialised); the second must
    be ``application/pkcs7-signature`` holding a detached CMS SignedData, binary DER (SIP
    carries binary bodies, RFC 3261 §23.3) or base64 (what openssl and mail agents write).
    Raises :class:`SmimeError` (493) on any failure.
    """
    try:
        media, params = parse_content_type(content_type)
        if media != "multipart/signed":
            raise SmimeError(f"not a multipart/signed body: {media}", 415)
        protocol = (params.get("protocol") or "").lower()
        if protocol not in SIGNATURE_TYPES:
            raise SmimeError(f"multipart/signed with unsupported protocol {protocol!r}", 415)
        parts = parse_multipart(body, content_type)
    except ParseError as exc:
        raise SmimeError(f"malformed multipart/signed body: {exc.reason}") from exc
    if len(parts) != 2:
        raise SmimeError(f"multipart/signed needs exactly 2 parts, not {len(parts)}")
    signed, signature_part = parts
    if signature_part.content_type not in SIGNATURE_TYPES:
        raise SmimeError(f"second part is {signature_part.content_type}, not a signature")
    signature = signature_part.body
    encoding = (signature_part.headers.get("Content-Transfer-Encoding") or "").strip().lower()
    if encoding == "base64" or (not encoding and signature[:1] != b"\x30"):
        signature = _b64decode(signature, "the signature part")
    elif encoding and encoding not in _IDENTITY_ENCODINGS:
        raise SmimeError(f"unsupported Content-Transfer-Encoding {encoding!r} of the signature")
    signed_entity = signed.raw
    chain, signing_time = verify_signed_data(signature, now=now, detached_content=signed_entity)
    inner_type, inner_body = parse_entity(signed_entity)
    return VerifiedContent(inner_type, inner_body, chain, signing_time, signed_entity)


def verify_signed_data(
    der: bytes, *, now: dt.datetime, detached_content: bytes | None = None
) -> tuple[tuple[x509.Certificate, ...], dt.datetime | None]:
    """Verify a CMS ContentInfo holding SignedData (RFC 5652 §5); return the signer chain
    (signer first) and the claimed signing time.

    ``detached_content`` is the signed content of a detached signature; when None the content
    must be encapsulated (``application/pkcs7-mime; smime-type=signed-data``) and is read
    with :func:`encapsulated_content`.
    """
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    signed_data = _load_signed_data(der)
    encap = signed_data["encap_content_info"]
    content_type_oid = encap["content_type"].dotted
    embedded = encap["content"].native if encap["content"] else None
    if detached_content is None:
        if embedded is None:
            raise SmimeError("signature without content (detached) where content was expected")
        content = bytes(embedded)
    else:
        if embedded is not None:
            raise SmimeError("multipart/signed carries a signature with embedded content")
        content = detached_content
    signer_infos = signed_data["signer_infos"]
    if len(signer_infos) != 1:
        raise SmimeError(f"expected one signer, the signature names {len(signer_infos)}")
    signer_info = signer_infos[0]
    certificates = _certificates(signed_data)
    signer = _find_signer(signer_info["sid"], certificates)
    hash_cls = _digest_algorithm(signer_info)
    signing_time = _check_signed_attributes(signer_info, hash_cls, content, content_type_oid)
    signed_attrs = signer_info["signed_attrs"]
    covered = content if not signed_attrs else signed_attrs.untag().dump()
    _check_signature(signer_info, signer, hash_cls, covered)
    _check_signer_certificate(signer, now)
    others = tuple(c for c in certificates if c != signer)
    return (signer, *others), signing_time


def encapsulated_content(der: bytes) -> bytes:
    """The content embedded in a SignedData (opaque signing, RFC 8551 §3.5.2), unverified."""
    embedded = _load_signed_data(der)["encap_content_info"]["content"]
    if not embedded:
        raise SmimeError("signed-data body without embedded content")
    return bytes(embedded.native)


def _load_signed_data(der: bytes) -> cms.SignedData:
    try:
        info = cms.ContentInfo.load(der)
        if info["content_type"].native != "signed_data":
            raise SmimeError(f"CMS content is {info['content_type'].native}, not signed data")
        signed_data = info["content"]
        # Touch every field now so that a malformed structure fails here, not later.
        signed_data.native  # noqa: B018
    except SmimeError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise SmimeError(f"malformed CMS signature: {exc}") from exc
    assert isinstance(signed_data, cms.SignedData)
    return signed_data


def _certificates(signed_data: cms.SignedData) -> list[x509.Certificate]:
    found: list[x509.Certificate] = []
    for choice in signed_data["certificates"] or []:
        if choice.name != "certificate":
            continue  # attribute certificates and the like identify nobody
        try:
            found.append(x509.load_der_x509_certificate(choice.chosen.dump()))
        except ValueError as exc:
            raise SmimeError(f"malformed certificate in the signature: {exc}") from exc
    return found


def _find_signer(sid: cms.SignerIdentifier, certs: list[x509.Certificate]) -> x509.Certificate:
    """RFC 5652 §5.3: the signer is named by issuer and serial number or by key identifier."""
    for cert in certs:
        parsed = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            if (
                parsed.serial_number == wanted["serial_number"].native
                and parsed.issuer == wanted["issuer"]
            ):
                return cert
        elif sid.name == "subject_key_identifier" and _subject_key_id(cert) == sid.chosen.native:
            return cert
    raise SmimeError("signer certificate not included in the signature")


def _subject_key_id(cert: x509.Certificate) -> bytes:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def _digest_algorithm(
    signer_info: cms.SignerInfo,
) -> type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]:
    name = signer_info["digest_algorithm"]["algorithm"].native
    hash_cls = _HASHES.get(name)
    if hash_cls is None:
        raise SmimeError(f"digest algorithm {name} is not accepted (SHA-256 or better)")
    return hash_cls


def _check_signed_attributes(
    signer_info: cms.SignerInfo,
    hash_cls: type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512],
    content: bytes,
    content_type_oid: str,
) -> dt.datetime | None:
    """RFC 5652 §5.3, §11: content-type and message-digest attributes, one value each."""
    attrs = signer_info["signed_attrs"]
    if not attrs:
        return None
    values: dict[str, list[object]] = {}
    for attr in attrs:
        name = attr["type"].dotted
        if name in values:
            raise SmimeError(f"signed attribute {attr['type'].native} appears twice")
        values[name] = list(attr["values"])
    content_types = values.get("1.2.840.113549.1.9.3")
    digests = values.get("1.2.840.113549.1.9.4")
    if content_types is None or digests is None:
        raise SmimeError("signed attributes lack content-type or message-digest")
    if len(content_types) != 1 or len(digests) != 1:
        raise SmimeError("content-type and message-digest attributes need one value each")
    declared = content_types[0]
    if not isinstance(declared, cms.ContentType) or declared.dotted != content_type_oid:
        raise SmimeError("content-type attribute does not match the signed content type")
    digest = digests[0]
    hasher = hashes.Hash(hash_cls())
    hasher.update(content)
    expected = hasher.finalize()
    if not isinstance(digest, cms.OctetString) or not hmac.compare_digest(
        bytes(digest.native), expected
    ):
        raise SmimeError("signature does not match the content (message digest differs)")
    times = values.get("1.2.840.113549.1.9.5")
    if not times:
        return None
    if len(times) != 1:
        raise SmimeError("signing-time attribute needs one value")
    claimed = getattr(times[0], "native", None)
    if not isinstance(claimed, dt.datetime):
        raise SmimeError("malformed signing-time attribute")
    return claimed.astimezone(dt.UTC)


def _check_signature(
    signer_info: cms.SignerInfo,
    signer: x509.Certificate,
    hash_cls: type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512],
    covered: bytes,
) -> None:
    algorithm = signer_info["signature_algorithm"]
    signature = bytes(signer_info["signature"].native)
    key = signer.public_key()
    try:
        kind = algorithm.signature_algo
    except ValueError as exc:
        raise SmimeError(
            f"unsupported signature algorithm {algorithm['algorithm'].dotted}"
        ) from exc
    try:
        if kind == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, covered, padding.PKCS1v15(), _signature_hash(algorithm, hash_cls))
        elif kind == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
            pss, pss_hash = _pss_parameters(algorithm)
            key.verify(signature, covered, pss, pss_hash)
        elif kind == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, covered, ec.ECDSA(_signature_hash(algorithm, hash_cls)))
        else:
            raise SmimeError(f"signature algorithm {kind} does not fit the signer's key")
    except InvalidSignature:
        raise SmimeError("signature does not match the content (bad signature)") from None
    except (UnsupportedAlgorithm, ValueError, TypeError) as exc:
        raise SmimeError(f"signature cannot be checked: {exc}") from exc


def _signature_hash(
    algorithm: object, default: type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]
) -> hashes.HashAlgorithm:
    """The hash of ``sha256WithRSAEncryption`` and the like; plain ``rsaEncryption`` (what
    openssl writes) and plain ``ecdsa`` use the SignerInfo's digest algorithm."""
    try:
        name = algorithm.hash_algo  # type: ignore[attr-defined]
    except ValueError:
        return default()
    hash_cls = _HASHES.get(name)
    if hash_cls is None:
        raise SmimeError(f"signature hash {name} is not accepted (SHA-256 or better)")
    return hash_cls()


def _pss_parameters(algorithm: object) -> tuple[padding.PSS, hashes.HashAlgorithm]:
    params = algorithm["parameters"]  # type: ignore[index]
    hash_name = params["hash_algorithm"]["algorithm"].native
    mgf = params["mask_gen_algorithm"]
    mgf_hash_name = mgf["parameters"]["algorithm"].native
    hash_cls, mgf_cls = _HASHES.get(hash_name), _HASHES.get(mgf_hash_name)
    if hash_cls is None or mgf_cls is None or mgf["algorithm"].native != "mgf1":
        raise SmimeError(f"RSASSA-PSS with {hash_name}/{mgf_hash_name} is not accepted")
    pss = padding.PSS(mgf=padding.MGF1(mgf_cls()), salt_length=int(params["salt_length"].native))
    return pss, hash_cls()


def _check_signer_certificate(signer: x509.Certificate, now: dt.datetime) -> None:
    if now < signer.not_valid_before_utc:
        raise SmimeError("signer certificate is not yet valid")
    if now > signer.not_valid_after_utc:
        raise SmimeError("signer certificate expired")
    try:
        usage = signer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    # RFC 8550 §4.4.2: a signing certificate with key usage needs digitalSignature or
    # nonRepudiation.
    if not (usage.digital_signature or usage.content_commitment):
        raise SmimeError("signer certificate's key usage does not allow signing")
