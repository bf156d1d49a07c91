"""A small test PKI: trust anchors, intermediates and leaves built with ``cryptography``.

Every knob a certificate test needs is an argument: SANs (DNS names and URIs), CN, validity
dates, key type and size, signature hash, key usage, extended key usage and basic constraints.
Keys are cached per (type, size) because RSA generation dominates test time; certificates are
cheap and always fresh.

    ca = make_ca("Test Root")
    leaf = make_leaf(ca, dns=["example.test"])
    chain = [leaf.cert]            # what a TLS server presents
    anchors = [ca.cert]            # what the client trusts
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "NOW",
    "Issued",
    "KeyType",
    "PrivateKey",
    "make_ca",
    "make_intermediate",
    "make_leaf",
    "make_self_signed",
    "new_key",
]

#: The "now" every test evaluates at unless it says otherwise.
NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)

KeyType = Literal["rsa", "ec", "ed25519"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

_CURVES: dict[int, ec.EllipticCurve] = {
    192: ec.SECP192R1(),
    224: ec.SECP224R1(),
    256: ec.SECP256R1(),
    384: ec.SECP384R1(),
    521: ec.SECP521R1(),
}

#: Key usage of a leaf that signs TLS handshakes (RFC 5280 §4.2.1.3).
TLS_LEAF_USAGE = frozenset({"digital_signature", "key_encipherment"})
CA_USAGE = frozenset({"key_cert_sign", "crl_sign"})
_USAGE_FLAGS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKey


def new_key(key_type: KeyType = "ec", size: int = 256) -> PrivateKey:
    """A fresh private key (not cached): use for certificates that must differ in their key."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=size)
    if key_type == "ec":
        return ec.generate_private_key(_CURVES[size])
    return ed25519.Ed25519PrivateKey.generate()


@functools.cache
def _cached_key(key_type: KeyType, size: int, slot: int) -> PrivateKey:
    return new_key(key_type, size)


def _key_usage(flags: frozenset[str]) -> x509.KeyUsage:
    unknown = flags - set(_USAGE_FLAGS)
    if unknown:
        raise ValueError(f"unknown key usage {sorted(unknown)}")
    values = {name: name in flags for name in _USAGE_FLAGS}
    return x509.KeyUsage(**values, encipher_only=False, decipher_only=False)


def _name(cn: str | None, org: str | None) -> x509.Name:
    attributes = []
    if org is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if cn is not None:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attributes)


def _build(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public_key: PrivateKey,
    signer: PrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    signature_hash: hashes.HashAlgorithm | None,
    extensions: Sequence[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    if isinstance(signer, ed25519.Ed25519PrivateKey):
        return builder.sign(signer, None)
    if isinstance(signature_hash, hashes.SHA1 | hashes.MD5):
        return _resign_weak(builder.sign(signer, hashes.SHA256()), signer, signature_hash)
    # Any other hash cryptography signs with; a wrong one fails loudly here.
    return builder.sign(signer, signature_hash or hashes.SHA256())  # type: ignore[arg-type]


def _resign_weak(
    cert: x509.Certificate,
    signer: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    weak: hashes.SHA1 | hashes.MD5,
) -> x509.Certificate:
    """Re-sign ``cert`` with SHA-1 or MD5, which ``CertificateBuilder.sign`` refuses to do.

    The TBS part is re-encoded with asn1crypto under the weak algorithm identifier and signed
    with the raw key, so the result is a genuine weakly-signed certificate.
    """
    if isinstance(signer, ec.EllipticCurvePrivateKey):
        if isinstance(weak, hashes.MD5):
            raise ValueError("ECDSA with MD5 does not exist")
        algorithm = "sha1_ecdsa"
    else:
        algorithm = "sha1_rsa" if isinstance(weak, hashes.SHA1) else "md5_rsa"
    parsed = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    tbs = parsed["tbs_certificate"]
    tbs["signature"] = {"algorithm": algorithm}
    tbs_der = tbs.dump(force=True)
    if isinstance(signer, ec.EllipticCurvePrivateKey):
        signature = signer.sign(tbs_der, ec.ECDSA(weak))
    else:
        signature = signer.sign(tbs_der, padding.PKCS1v15(), weak)
    weak_cert = asn1_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": {"algorithm": algorithm},
            "signature_value": signature,
        }
    )
    return x509.load_der_x509_certificate(weak_cert.dump())


def make_ca(
    cn: str = "Test Root CA",
    *,
    key_type: KeyType = "ec",
    key_size: int = 256,
    not_before: dt.datetime = NOW - dt.timedelta(days=3650),
    not_after: dt.datetime = NOW + dt.timedelta(days=3650),
    signature_hash: hashes.HashAlgorithm | None = None,
    path_length: int | None = None,
    slot: int = 0,
) -> Issued:
    """A self-signed root CA (basicConstraints CA, keyCertSign). ``slot`` picks another key."""
    key = _cached_key(key_type, key_size, 100 + slot)
    name = _name(cn, "Test PKI")
    cert = _build(
        subject=name,
        issuer=name,
        public_key=key,
        signer=key,
        not_before=not_before,
        not_after=not_after,
        signature_hash=signature_hash,
        extensions=[
            (x509.BasicConstraints(ca=True, path_length=path_length), True),
            (_key_usage(CA_USAGE), True),
            (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
        ],
    )
    return Issued(cert, key)


def make_intermediate(
    issuer: Issued,
    cn: str = "Test Intermediate CA",
    *,
    key_type: KeyType = "ec",
    key_size: int = 256,
    not_before: dt.datetime = NOW - dt.timedelta(days=1000),
    not_after: dt.datetime = NOW + dt.timedelta(days=1000),
    signature_hash: hashes.HashAlgorithm | None = None,
    ca: bool | None = True,
    key_usage: frozenset[str] | None = CA_USAGE,
    path_length: int | None = None,
    slot: int = 0,
) -> Issued:
    """A CA certificate issued by ``issuer``; ``ca=False``/``None`` builds a broken one."""
    key = _cached_key(key_type, key_size, 200 + slot)
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
        (_aki(issuer), False),
    ]
    if ca is not None:
        extensions.append(
            (x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), True)
        )
    if key_usage is not None:
        extensions.append((_key_usage(key_usage), True))
    cert = _build(
        subject=_name(cn, "Test PKI"),
        issuer=issuer.cert.subject,
        public_key=key,
        signer=issuer.key,
        not_before=not_before,
        not_after=not_after,
        signature_hash=signature_hash,
        extensions=extensions,
    )
    return Issued(cert, key)


def _aki(issuer: Issued) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key())


def make_leaf(
    issuer: Issued,
    *,
    cn: str | None = None,
    org: str | None = "Example Telephony",
    dns: Sequence[str] = (),
    uris: Sequence[str] = (),
    emails: Sequence[str] = (),
    san: bool | None = None,
    key_type: KeyType = "ec",
    key_size: int = 256,
    key: PrivateKey | None = None,
    not_before: dt.datetime = NOW - dt.timedelta(days=30),
    not_after: dt.datetime = NOW + dt.timedelta(days=60),
    signature_hash: hashes.HashAlgorithm | None = None,
    key_usage: frozenset[str] | None = TLS_LEAF_USAGE,
    eku: Sequence[x509.ObjectIdentifier] | None = (
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ),
    ca: bool | None = False,
) -> Issued:
    """An end-entity certificate issued by ``issuer``.

    The subjectAltName extension is added when any of ``dns``/``uris``/``emails`` is given (or
    ``san=True``, which adds an empty-of-names-we-read extension holding only ``emails``).
    """
    key = key or _cached_key(key_type, key_size, 300)
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.UniformResourceIdentifier(u) for u in uris]
    names += [x509.RFC822Name(e) for e in emails]
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
        (_aki(issuer), False),
    ]
    if san if san is not None else bool(names):
        extensions.append((x509.SubjectAlternativeName(names), cn is None and org is None))
    if ca is not None:
        extensions.append((x509.BasicConstraints(ca=ca, path_length=None), True))
    if key_usage is not None:
        extensions.append((_key_usage(key_usage), True))
    if eku is not None:
        extensions.append((x509.ExtendedKeyUsage(list(eku)), False))
    cert = _build(
        subject=_name(cn, org),
        issuer=issuer.cert.subject,
        public_key=key,
        signer=issuer.key,
        not_before=not_before,
        not_after=not_after,
        signature_hash=signature_hash,
        extensions=extensions,
    )
    return Issued(cert, key)


def make_self_signed(
    *,
    cn: str | None = None,
    dns: Sequence[str] = (),
    uris: Sequence[str] = (),
    key_type: KeyType = "ec",
    key_size: int = 256,
    not_before: dt.datetime = NOW - dt.timedelta(days=30),
    not_after: dt.datetime = NOW + dt.timedelta(days=365),
    signature_hash: hashes.HashAlgorithm | None = None,
    key: PrivateKey | None = None,
) -> Issued:
    """A self-signed end-entity certificate, as a home Asterisk box would make."""
    key = key or _cached_key(key_type, key_size, 400)
    name = _name(cn, "Self")
    extensions: list[tuple[x509.ExtensionType, bool]] = []
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.UniformResourceIdentifier(u) for u in uris]
    if names:
        extensions.append((x509.SubjectAlternativeName(names), False))
    cert = _build(
        subject=name,
        issuer=name,
        public_key=key,
        signer=key,
        not_before=not_before,
        not_after=not_after,
        signature_hash=signature_hash,
        extensions=extensions,
    )
    return Issued(cert, key)
