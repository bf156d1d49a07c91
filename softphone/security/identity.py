"""The user's own identity: a certificate naming their AOR and the private key behind it.

Sans-I/O like the rest of :mod:`softphone.security`: the time is an argument, bytes go in and
out; :mod:`softphone.identity_store` keeps the files and the keyring entry.

One RSA-3072 key for everything
-------------------------------
``softphone cert new`` makes **one** RSA-3072 key and one self-signed certificate that serves
TLS (client and server: the outer hop and the end-to-end sipsec tunnel), DTLS fingerprints and
S/MIME. S/MIME enveloping in ``cryptography`` supports RSA recipients only, so the S/MIME key
has to be RSA; using the same key for TLS means a person has exactly one certificate, one
SHA-256 fingerprint and one safety number per contact, and "We compared it" covers sipsec,
S/MIME and DTLS at once. That is the simplest thing to explain and to verify.

The price: an ECDSA P-256 TLS key would make handshakes a little cheaper (RSA-3072 signing is
about a millisecond, far below one round trip), and the key is used both to sign (TLS
handshakes, S/MIME signatures) and to decrypt (S/MIME enveloped data, RSA key transport).
Mixing the two uses of one RSA key is safe with the padding modes used here (PKCS#1 v1.5 and
PSS signatures, PKCS#1 v1.5/OAEP encryption, no TLS RSA key exchange: TLS 1.3 only signs), and
it is what most personal S/MIME certificates do. 3072 bits is NIST's size for security beyond
2030 (SP 800-57: 128-bit strength).

Errors::

    SecurityError
    └── IdentityError                   this module's errors; messages are for the person
        ├── KeyDecryptionError          wrong passphrase, or a key that is not encrypted
        └── ImportRefusedError          a PKCS#12 that cannot be the user's identity
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from softphone.security.certificates import (
    Identity,
    InvalidIdentityError,
    SecurityError,
    aor_identities,
    describe_key,
    weak_signature_hash,
)

__all__ = [
    "DEFAULT_DAYS",
    "IDENTITY_RSA_BITS",
    "IdentityError",
    "IdentityMaterial",
    "ImportRefusedError",
    "ImportedIdentity",
    "KeyChoice",
    "KeyDecryptionError",
    "check_aor",
    "encrypt_private_key",
    "identity_aor",
    "import_pkcs12",
    "key_matches",
    "load_private_key",
    "new_identity",
    "normalise_aor",
]

#: RSA size for new identities (NIST SP 800-57: 3072 bits ≈ 128-bit security).
IDENTITY_RSA_BITS: Final = 3072

#: Five years. The safety number depends on the public key and the AOR only, so renewing the
#: certificate with the same key (``new_identity(..., private_key=old_key)``) keeps every
#: "We compared it"; a short lifetime would only make people renew more often.
DEFAULT_DAYS: Final = 5 * 365

#: Backdating of notBefore, so that a peer whose clock is a little behind accepts a new cert.
_CLOCK_SKEW: Final = dt.timedelta(hours=1)

#: Longest CN an X.509 Name may carry (RFC 5280 ub-common-name).
_MAX_CN: Final = 64

KeyChoice = Literal["rsa3072", "rsa4096"]
_KEY_BITS: Final[dict[str, int]] = {"rsa3072": 3072, "rsa4096": 4096}


class IdentityError(SecurityError):
    """Base class of the errors of this module; messages are meant for the person."""


class KeyDecryptionError(IdentityError):
    """The private key could not be decrypted (wrong passphrase, damaged or plaintext file)."""


class ImportRefusedError(IdentityError, ValueError):
    """A PKCS#12 file that cannot become the user's identity; the message says why."""


@dataclass(frozen=True)
class IdentityMaterial:
    """A certificate, its private key and the CA certificates above it (empty if self-signed).

    ``repr`` never shows the key.
    """

    cert: x509.Certificate
    key: rsa.RSAPrivateKey = field(repr=False)
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def aor(self) -> str:
        return identity_aor(self.cert)


@dataclass(frozen=True)
class ImportedIdentity(IdentityMaterial):
    """What :func:`import_pkcs12` accepted, with what the person should still be told."""

    warnings: tuple[str, ...] = ()


def normalise_aor(aor: str) -> str:
    """``sip:user@host`` with the host in lower case, from a ``sip:``/``sips:`` URI or a bare
    ``user@host``; raises :class:`~softphone.security.InvalidIdentityError` otherwise."""
    return str(Identity.aor(aor))


def identity_aor(cert: x509.Certificate) -> str:
    """The AOR a user certificate names (its first subjectAltName ``sip:``/``sips:`` URI with a
    user part, RFC 3261 §23.2), as ``sip:user@host``; :class:`IdentityError` if there is none."""
    aors = aor_identities(cert)
    if not aors:
        raise IdentityError(
            "this certificate names no SIP address (no subjectAltName URI sip:user@domain)"
        )
    return f"sip:{aors[0]}"


def _generate_key(choice: KeyChoice) -> rsa.RSAPrivateKey:
    try:
        bits = _KEY_BITS[choice]
    except KeyError:
        raise ValueError(f"unknown key choice {choice!r}; use one of {sorted(_KEY_BITS)}") from None
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def new_identity(
    aor: str,
    *,
    now: dt.datetime,
    key: KeyChoice = "rsa3072",
    days: int = DEFAULT_DAYS,
    private_key: rsa.RSAPrivateKey | None = None,
) -> IdentityMaterial:
    """A self-signed identity certificate for ``aor`` valid from ``now`` for ``days`` days.

    - subject CN = the AOR (``sip:alice@example.test``; cosmetic, peers read the SAN);
    - subjectAltName URI ``sip:user@domain`` (RFC 3261 §23.2, what sipsec and S/MIME match);
    - keyUsage digitalSignature + keyEncipherment (critical; RFC 8550 §4.4.2 for S/MIME, RFC
      5280 §4.2.1.3), extendedKeyUsage clientAuth + serverAuth + emailProtection;
    - basicConstraints CA=false (critical), subject and authority key identifiers.

    ``private_key`` re-issues a certificate for an existing key (renewal keeps the safety
    number); otherwise a new key is made according to ``key``.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if days < 1:
        raise ValueError("an identity must be valid for at least one day")
    canonical = check_aor(aor)
    if private_key is None:
        private_key = _generate_key(key)
    elif private_key.key_size < IDENTITY_RSA_BITS:
        raise IdentityError(
            f"an identity key must have at least {IDENTITY_RSA_BITS} bits, "
            f"not {private_key.key_size}"
        )
    public_key = private_key.public_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, canonical[:_MAX_CN])])
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [
                    ExtendedKeyUsageOID.CLIENT_AUTH,
                    ExtendedKeyUsageOID.SERVER_AUTH,
                    ExtendedKeyUsageOID.EMAIL_PROTECTION,
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(canonical)]),
            critical=False,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    cert = builder.sign(private_key, hashes.SHA256())
    return IdentityMaterial(cert, private_key)


# --- private key files --------------------------------------------------------------------


def encrypt_private_key(key: rsa.RSAPrivateKey, passphrase: bytes) -> bytes:
    """PEM ``ENCRYPTED PRIVATE KEY``: PKCS#8 under ``passphrase`` (RFC 5958; PBES2 with the
    best algorithms ``cryptography`` offers). An empty passphrase is refused: it would be a
    plaintext key in disguise."""
    if not passphrase:
        raise ValueError("a private key is never written without a passphrase")
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )


def load_private_key(pem: bytes, passphrase: bytes) -> rsa.RSAPrivateKey:
    """The RSA key in an encrypted PKCS#8 PEM; :class:`KeyDecryptionError` if the passphrase
    is wrong, the file is damaged, the key is stored unencrypted or is not RSA."""
    if b"ENCRYPTED PRIVATE KEY" not in pem:
        raise KeyDecryptionError("the private key file is not encrypted: refusing to use it")
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except (ValueError, TypeError) as exc:
        raise KeyDecryptionError(
            "could not decrypt the private key (wrong passphrase in the keyring, or a damaged file)"
        ) from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyDecryptionError(f"the private key is {type(key).__name__}, not RSA")
    return key


def key_matches(cert: x509.Certificate, key: rsa.RSAPrivateKey) -> bool:
    """Whether ``key`` is the private half of ``cert``'s public key."""
    return cert.public_key() == key.public_key()


# --- PKCS#12 from a CA --------------------------------------------------------------------


def import_pkcs12(
    data: bytes,
    password: bytes | None,
    *,
    now: dt.datetime | None = None,
) -> ImportedIdentity:
    """Accept a PKCS#12 (``.p12``/``.pfx``) issued by a CA as the user's identity.

    Refused (:class:`ImportRefusedError`, which says why): a file that cannot be read with
    ``password``; no certificate or no key; a key that is not the certificate's; a certificate
    with no ``sip:user@domain`` subjectAltName URI; a key that is not RSA (S/MIME enveloping
    supports RSA recipients only, so nobody could send this identity encrypted key material);
    RSA below 2048 bits. What is worth saying but not refusing (expired at ``now``, SHA-1
    signature, key usage that excludes TLS or S/MIME, several AORs) is in ``warnings``.
    """
    try:
        bundle = pkcs12.load_pkcs12(data, password)
    except (ValueError, TypeError) as exc:
        raise ImportRefusedError(
            "could not read the PKCS#12 file: wrong password, or not a PKCS#12 file"
        ) from exc
    if bundle.key is None:
        raise ImportRefusedError("the PKCS#12 file holds no private key")
    if bundle.cert is None:
        raise ImportRefusedError("the PKCS#12 file holds no certificate for its private key")
    cert = bundle.cert.certificate
    key = bundle.key
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ImportRefusedError(
            f"the key is {describe_key(cert).description}, not RSA: S/MIME enveloping "
            "(cryptography's pkcs7) supports RSA recipients only, so nobody could send you "
            "encrypted S/MIME; ask your CA for an RSA certificate (3072 bits)"
        )
    if cert.public_key() != key.public_key():
        raise ImportRefusedError("the private key does not belong to the certificate")
    if key.key_size < 2048:
        raise ImportRefusedError(f"the RSA key has only {key.key_size} bits (at least 2048)")
    aors = aor_identities(cert)
    if not aors:
        raise ImportRefusedError(
            "the certificate names no SIP address: it needs a subjectAltName URI sip:user@domain"
        )
    chain = tuple(c.certificate for c in bundle.additional_certs)
    return ImportedIdentity(cert, key, chain, warnings=tuple(_warnings(cert, key, aors, now)))


def _warnings(
    cert: x509.Certificate, key: rsa.RSAPrivateKey, aors: Sequence[str], now: dt.datetime | None
) -> list[str]:
    found: list[str] = []
    if len(aors) > 1:
        found.append(f"the certificate names several addresses; using sip:{aors[0]}")
    if key.key_size < IDENTITY_RSA_BITS:
        found.append(f"RSA {key.key_size}: new identities use {IDENTITY_RSA_BITS} bits")
    if weak_signature_hash(cert):
        found.append("the CA signed the certificate with a weak hash (SHA-1/MD5)")
    if now is not None:
        if now < cert.not_valid_before_utc:
            found.append(f"not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
        elif now > cert.not_valid_after_utc:
            found.append(f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        pass
    else:
        if not usage.digital_signature:
            found.append("key usage lacks digitalSignature: TLS and S/MIME signing will fail")
        if not usage.key_encipherment:
            found.append("key usage lacks keyEncipherment: S/MIME decryption will be refused")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        pass
    else:
        wanted = {
            ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
            ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
        }
        for oid, label in wanted.items():
            if oid not in eku and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku:
                found.append(f"extended key usage lacks {label}")
    return found


def check_aor(aor: str) -> str:
    """:func:`normalise_aor` with the error re-raised as :class:`IdentityError`."""
    try:
        return normalise_aor(aor)
    except InvalidIdentityError as exc:
        raise IdentityError(
            f"not a SIP address of record: {aor!r} (e.g. sip:alice@example.com)"
        ) from exc
