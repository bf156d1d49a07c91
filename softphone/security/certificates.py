"""Facts about X.509 certificates that trust decisions are built from.

Pure functions over :class:`cryptography.x509.Certificate`: fingerprints in the three forms
people and files need, names (RFC 5922 §7.1 SIP domain identities, AORs of user certificates
for sipsec/S-MIME per RFC 3261 §23), key strength, signature hashes, and a certification path
built by hand (RFC 5280 §6.1 in the small) for the cases ``cryptography``'s verifier refuses
outright. Nothing here decides whether to trust: :mod:`softphone.security.trust` does.

The error tree is drawn in :mod:`softphone.security`.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

__all__ = [
    "MIN_EC_BITS",
    "MIN_RSA_BITS",
    "CertificationPath",
    "Identity",
    "IdentityKind",
    "InvalidIdentityError",
    "KeyInfo",
    "SecurityError",
    "aor_identities",
    "build_path",
    "common_names",
    "describe_key",
    "domain_identities",
    "fingerprint_groups",
    "fingerprint_hex",
    "fingerprint_sha256",
    "is_self_signed",
    "signature_hash_name",
    "signed_by",
    "subject_alt_dns",
    "subject_alt_uris",
    "summary",
    "weak_signature_hash",
]

#: Below these sizes a key is weak (NIST SP 800-57: 112-bit security needs RSA 2048, P-224+;
#: we ask for P-256 because that is the smallest curve TLS 1.3 offers).
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256

_WEAK_HASHES = frozenset({"sha1", "md5", "md2", "md4"})


class SecurityError(Exception):
    """Base class of every error :mod:`softphone.security` raises on purpose."""


class InvalidIdentityError(SecurityError, ValueError):
    """An identity that cannot be matched safely (empty, wildcard, no host...)."""


# --- fingerprints -------------------------------------------------------------------------


def fingerprint_sha256(cert: x509.Certificate) -> bytes:
    """SHA-256 over the DER encoding: what pins store and what RFC 4572 ``a=fingerprint`` uses."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()


def fingerprint_hex(cert: x509.Certificate | bytes) -> str:
    """``AB:12:...`` (upper-case, colon separated), the form OpenSSL and SDP print."""
    digest = cert if isinstance(cert, bytes) else fingerprint_sha256(cert)
    return ":".join(f"{b:02X}" for b in digest)


def fingerprint_groups(cert: x509.Certificate | bytes) -> str:
    """``AB12 CD34 ...``: groups of four hex digits, easier to read aloud and compare by eye."""
    digest = cert if isinstance(cert, bytes) else fingerprint_sha256(cert)
    text = digest.hex().upper()
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


# --- names --------------------------------------------------------------------------------


def _attribute_strings(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    values = []
    for attribute in name.get_attributes_for_oid(oid):
        value = attribute.value
        values.append(value if isinstance(value, str) else value.decode("utf-8", "replace"))
    return values


def common_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The subject's CN attributes, in order."""
    return tuple(_attribute_strings(cert.subject, NameOID.COMMON_NAME))


def summary(name: x509.Name) -> str:
    """A short human label for a subject or issuer: its CN, else its O, else the RFC 4514 text."""
    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        values = _attribute_strings(name, oid)
        if values:
            return values[0]
    return name.rfc4514_string() or "(no name)"


def _san(cert: x509.Certificate) -> x509.SubjectAlternativeName | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def subject_alt_uris(cert: x509.Certificate) -> tuple[str, ...]:
    """subjectAltName URI values (RFC 5280 §4.2.1.6), in certificate order."""
    san = _san(cert)
    return tuple(san.get_values_for_type(x509.UniformResourceIdentifier)) if san else ()


def subject_alt_dns(cert: x509.Certificate) -> tuple[str, ...]:
    """subjectAltName dNSName values, in certificate order."""
    san = _san(cert)
    return tuple(san.get_values_for_type(x509.DNSName)) if san else ()


# RFC 1035 §2.3.1 labels, plus "_" which real certificates contain; at least one dot is not
# required (a lab domain may be a single label).
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def _normalise_host(host: str) -> str:
    """Lower-case, without a trailing dot, IDNA-encoded: RFC 5922 §7.2 compares case-blind."""
    host = host.strip().rstrip(".").lower()
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return host
    return host


def _is_dns_name(host: str) -> bool:
    return bool(host) and len(host) <= 253 and all(_DNS_LABEL.match(p) for p in host.split("."))


def _is_ip_reference(host: str) -> bool:
    bracketed = host.startswith("[") and host.endswith("]")
    return bracketed or bool(re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", host))


@dataclass(frozen=True)
class _SipUri:
    scheme: str
    user: str | None
    host: str


def _parse_sip_uri(text: str) -> _SipUri | None:
    """The scheme, user and host of a ``sip:``/``sips:`` URI (RFC 3261 §19.1.1), else None.

    Parameters, headers, the password and the port are dropped: none of them is part of an
    identity. Percent escapes in the user part are decoded (§19.1.4 treats them as equal).
    """
    scheme, sep, rest = text.strip().partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in {"sip", "sips"}:
        return None
    rest = rest.split(";", 1)[0].split("?", 1)[0]
    user: str | None = None
    if "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        user = urllib.parse.unquote(userinfo.split(":", 1)[0])
        if not user:
            return None
    if rest.startswith("["):
        host = rest[: rest.find("]") + 1] if "]" in rest else ""
    else:
        host = rest.split(":", 1)[0]
    host = _normalise_host(host)
    if not host:
        return None
    return _SipUri(scheme, user, host)


def domain_identities(cert: x509.Certificate) -> tuple[str, ...]:
    """The SIP domain identities of ``cert`` per RFC 5922 §7.1, lower-cased, in order.

    - subjectAltName URIs of scheme ``sip`` without a user part give their host part; a
      ``sip:`` URI with a user part and every other scheme (``sips`` included: §7.1 accepts
      only ``sip``) give nothing;
    - subjectAltName dNSNames are identities as they are;
    - the subject CN counts only when the certificate has no subjectAltName at all, and only
      when it is a DNS name (§7.1 allows it for backward compatibility).

    Wildcard names are returned verbatim so that a report can show them; :func:`Identity.matches`
    never lets them match (§7.2).
    """
    san = _san(cert)
    if san is None:
        return tuple(
            dict.fromkeys(
                h
                for h in (_normalise_host(cn) for cn in common_names(cert))
                if _is_dns_name(h) or h.startswith("*.")
            )
        )
    found: list[str] = []
    for value in san.get_values_for_type(x509.UniformResourceIdentifier):
        uri = _parse_sip_uri(value)
        if uri is not None and uri.scheme == "sip" and uri.user is None:
            found.append(uri.host)
    found += [_normalise_host(d) for d in san.get_values_for_type(x509.DNSName)]
    return tuple(dict.fromkeys(h for h in found if h))


def aor_identities(cert: x509.Certificate) -> tuple[str, ...]:
    """The addresses of record a user certificate names: ``user@host`` for each subjectAltName
    ``sip:``/``sips:`` URI with a user part (RFC 3261 §23.2: the AOR is in subjectAltName).

    ``sips:bob@example.test`` and ``sip:bob@example.test`` name the same AOR, so the scheme is
    dropped; the host is lower-cased, the user part keeps its case (§19.1.4).
    """
    found = []
    for value in subject_alt_uris(cert):
        uri = _parse_sip_uri(value)
        if uri is not None and uri.user is not None:
            found.append(f"{uri.user}@{uri.host}")
    return tuple(dict.fromkeys(found))


class IdentityKind(StrEnum):
    """What the certificate must name: a SIP domain (RFC 5922) or a user's AOR (sipsec)."""

    DOMAIN = "domain"
    AOR = "aor"


@dataclass(frozen=True)
class Identity:
    """The identity a certificate is checked against, normalised.

    For a server this is the domain of the URI that was *resolved* (RFC 5922 §4, §7.3: the
    domain of ``sip:alice@example.test`` is ``example.test`` even when SRV points at
    ``sip1.provider.test``). For a sipsec peer it is the dialled AOR, ``bob@example.test``.
    Build with :meth:`domain` or :meth:`aor`.
    """

    kind: IdentityKind
    value: str

    @classmethod
    def domain(cls, name: str) -> Identity:
        host = _normalise_host(name)
        if "*" in host or not (_is_dns_name(host) or _is_ip_reference(host)):
            raise InvalidIdentityError(f"not a SIP domain: {name!r}")
        return cls(IdentityKind.DOMAIN, host)

    @classmethod
    def aor(cls, address: str) -> Identity:
        """From ``sip:bob@example.test``, ``sips:bob@example.test`` or ``bob@example.test``."""
        text = address if ":" in address.split("@", 1)[0] else f"sip:{address}"
        uri = _parse_sip_uri(text)
        if uri is None or uri.user is None or "*" in uri.host:
            raise InvalidIdentityError(f"not an address of record: {address!r}")
        return cls(IdentityKind.AOR, f"{uri.user}@{uri.host}")

    @property
    def key(self) -> str:
        """A stable string for the pin store: ``domain:example.test``, ``aor:bob@example.test``."""
        return f"{self.kind.value}:{self.value}"

    @property
    def host(self) -> str:
        return self.value.rpartition("@")[2]

    def names_in(self, cert: x509.Certificate) -> tuple[str, ...]:
        """The names of this identity's kind that ``cert`` carries."""
        if self.kind is IdentityKind.DOMAIN:
            return domain_identities(cert)
        return aor_identities(cert)

    def matches(self, cert: x509.Certificate) -> bool:
        """Whether ``cert`` names this identity; wildcards never match (RFC 5922 §7.2)."""
        return any(n == self.value and "*" not in n for n in self.names_in(cert))

    def __str__(self) -> str:
        return self.value if self.kind is IdentityKind.DOMAIN else f"sip:{self.value}"


# --- keys and signatures ------------------------------------------------------------------


@dataclass(frozen=True)
class KeyInfo:
    """A public key as people name it: ``RSA 2048``, ``EC P-256``, ``Ed25519``."""

    algorithm: str
    bits: int
    description: str
    weak: bool


_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def describe_key(cert: x509.Certificate) -> KeyInfo:
    """The subject public key and whether it is too small (RSA < 2048, EC < 256 bits, DSA)."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        bits = key.key_size
        return KeyInfo("RSA", bits, f"RSA {bits}", bits < MIN_RSA_BITS)
    if isinstance(key, ec.EllipticCurvePublicKey):
        bits = key.curve.key_size
        curve = _CURVE_NAMES.get(key.curve.name, key.curve.name)
        return KeyInfo("EC", bits, f"EC {curve}", bits < MIN_EC_BITS)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return KeyInfo("Ed25519", 256, "Ed25519", False)
    if isinstance(key, ed448.Ed448PublicKey):
        return KeyInfo("Ed448", 456, "Ed448", False)
    if isinstance(key, dsa.DSAPublicKey):
        # TLS 1.3 has no DSA and no browser trusts it any more: weak whatever its size.
        return KeyInfo("DSA", key.key_size, f"DSA {key.key_size}", True)
    return KeyInfo(type(key).__name__, 0, type(key).__name__, True)


def signature_hash_name(cert: x509.Certificate) -> str | None:
    """The hash under the issuer's signature (``sha256``, ``sha1``...); None for EdDSA."""
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return cert.signature_algorithm_oid.dotted_string
    return None if algorithm is None else algorithm.name


def weak_signature_hash(cert: x509.Certificate) -> bool:
    """SHA-1 and MD5 signatures can be forged (SHAttered, Flame): RFC 9155 deprecates them."""
    return (signature_hash_name(cert) or "") in _WEAK_HASHES


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` names and signed ``cert``.

    Done by hand rather than with ``verify_directly_issued_by`` because that refuses SHA-1
    and MD5 signatures, and a chain must still be built to tell the user that its signature
    is weak rather than that it is forged.
    """
    if cert.issuer != issuer.subject:
        return False
    key = issuer.public_key()
    data, signature = cert.tbs_certificate_bytes, cert.signature
    try:
        algorithm = cert.signature_hash_algorithm
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            params = cert.signature_algorithm_parameters
            pad = params if isinstance(params, padding.PSS) else padding.PKCS1v15()
            key.verify(signature, data, pad, algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            if cert.signature_algorithm_oid not in (
                SignatureAlgorithmOID.ED25519,
                SignatureAlgorithmOID.ED448,
            ):
                return False
            key.verify(signature, data)
        elif isinstance(key, dsa.DSAPublicKey) and isinstance(algorithm, hashes.HashAlgorithm):
            key.verify(signature, data, algorithm)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def is_self_signed(cert: x509.Certificate) -> bool:
    """Subject equals issuer and the certificate's own key verifies its signature."""
    return cert.subject == cert.issuer and signed_by(cert, cert)


# --- certification path -------------------------------------------------------------------


@dataclass(frozen=True)
class CertificationPath:
    """A path from the presented leaf towards a trust anchor (RFC 5280 §6.1, built by hand).

    ``certificates`` starts with the leaf; when ``anchored`` its last element is the trust
    anchor (taken from the anchors even when the peer did not send it). When not anchored,
    ``broken_at`` is the index of the last certificate reached and ``missing_issuer`` the name
    its issuer goes by (None when it is self-signed); ``bad_signature`` says the issuer the
    certificate names (by subject and authority key identifier) is at hand and its key does
    not verify the signature: the certificate was altered.
    """

    certificates: tuple[x509.Certificate, ...]
    anchored: bool
    broken_at: int | None = None
    missing_issuer: x509.Name | None = None
    bad_signature: bool = False


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def build_path(
    presented: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate]
) -> CertificationPath:
    """Follow issuers from ``presented[0]`` through the other presented certificates to one
    of ``anchors``, using each presented certificate at most once (so loops end).

    A certificate that is itself among the anchors ends the path there: a user who put a
    server's own certificate in the CA file has said to trust exactly that certificate.
    """
    anchor_ders = {_der(a) for a in anchors}
    remaining = list(presented[1:])
    path = [presented[0]]
    while True:
        current = path[-1]
        if _der(current) in anchor_ders:
            return CertificationPath(tuple(path), anchored=True)
        anchor = next((a for a in anchors if signed_by(current, a)), None)
        if anchor is not None:
            return CertificationPath((*path, anchor), anchored=True)
        issuer = next((c for c in remaining if signed_by(current, c)), None)
        if issuer is not None and issuer.subject != current.subject:
            remaining.remove(issuer)
            path.append(issuer)
            continue
        index = len(path) - 1
        if is_self_signed(current):
            return CertificationPath(tuple(path), anchored=False, broken_at=index)
        # A namesake holding the very key the certificate says signed it (its authority key
        # identifier), whose signature still fails, means tampering; a namesake with another
        # key is merely some other CA of the same name.
        claimed = _authority_key_id(current)
        tampered = claimed is not None and any(
            _subject_key_id(c) == claimed
            for c in (*anchors, *remaining)
            if c.subject == current.issuer
        )
        return CertificationPath(
            tuple(path),
            anchored=False,
            broken_at=index,
            missing_issuer=current.issuer,
            bad_signature=tampered,
        )


def _authority_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    return aki.key_identifier


def _subject_key_id(cert: x509.Certificate) -> bytes:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
