"""DTLS-SRTP in SDP: ``a=fingerprint`` (RFC 8122 §5, formerly RFC 4572) and ``a=setup``
(RFC 4145 §4), with the role rules of RFC 5763 §5.

A fingerprint binds the DTLS handshake to the signalling: the certificate the peer presents in
DTLS must hash to one of the fingerprints in its SDP, or the media is refused (fail closed, as
aiortc's ``RTCDtlsTransport`` does). Comparison is constant-time.

Hash functions: ``sha-1`` … ``sha-512`` are supported. ``md5`` and ``md2`` are recognised only to
be refused (RFC 8122 §5 forbids them for new certificates); any other token is unknown and
refused as well, since a fingerprint we cannot compute cannot protect anything.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from softphone.sdp.errors import SdpParseError

__all__ = [
    "SUPPORTED_HASH_FUNCTIONS",
    "DtlsRole",
    "Fingerprint",
    "SetupRole",
    "parse_fingerprint",
    "parse_setup",
    "verify_certificate",
]

#: RFC 8122 hash-func token -> (hashlib name, digest length in octets).
SUPPORTED_HASH_FUNCTIONS: dict[str, tuple[str, int]] = {
    "sha-1": ("sha1", 20),
    "sha-224": ("sha224", 28),
    "sha-256": ("sha256", 32),
    "sha-384": ("sha384", 48),
    "sha-512": ("sha512", 64),
}
_KNOWN_LENGTHS = {
    **{name: length for name, (_, length) in SUPPORTED_HASH_FUNCTIONS.items()},
    "md5": 16,
    "md2": 16,
}
_MAX_DIGEST = 64


@dataclass(frozen=True, eq=False, repr=True)
class Fingerprint:
    """``a=fingerprint:<hash-func> <hex:hex:...>``; ``hash_function`` lower-cased (the
    token is case-insensitive, RFC 8122 §5)."""

    hash_function: str
    digest: bytes

    @property
    def supported(self) -> bool:
        return self.hash_function in SUPPORTED_HASH_FUNCTIONS

    @classmethod
    def of_certificate(cls, der: bytes, hash_function: str = "sha-256") -> Fingerprint:
        """The fingerprint of a DER certificate (RFC 8122 §5: hash of the DER form)."""
        algorithm, _ = SUPPORTED_HASH_FUNCTIONS[hash_function]
        return cls(hash_function, hashlib.new(algorithm, der).digest())

    def matches(self, der: bytes) -> bool:
        """Does the DER certificate hash to this fingerprint? Unsupported hash: ``False``."""
        if not self.supported:
            return False
        algorithm, _ = SUPPORTED_HASH_FUNCTIONS[self.hash_function]
        return hmac.compare_digest(hashlib.new(algorithm, der).digest(), self.digest)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Fingerprint):
            return NotImplemented
        # compare_digest on the digests: equal lengths or not, no early exit on a prefix.
        return self.hash_function == other.hash_function and hmac.compare_digest(
            self.digest, other.digest
        )

    def __hash__(self) -> int:
        return hash((self.hash_function, self.digest))

    def __str__(self) -> str:
        # RFC 8122 §5: fingerprint = 2UHEX *(":" 2UHEX), upper-case hex.
        return f"{self.hash_function} {self.digest.hex(':').upper()}"


def parse_fingerprint(value: str) -> Fingerprint:
    """Parse the value of ``a=fingerprint``; :class:`SdpParseError` when malformed or when the
    digest length does not fit a known hash function."""
    fields = value.split()
    if len(fields) != 2:
        raise SdpParseError("malformed fingerprint attribute")
    hash_function, hex_text = fields[0].lower(), fields[1]
    if not hash_function.isascii() or not hash_function.replace("-", "").isalnum():
        raise SdpParseError("malformed fingerprint hash function")
    pairs = hex_text.split(":")
    if len(pairs) > _MAX_DIGEST or any(
        len(p) != 2 or not all(c in "0123456789abcdefABCDEF" for c in p) for p in pairs
    ):
        # Lower-case hex is accepted (several stacks send it) although RFC 8122 says UHEX.
        raise SdpParseError("malformed fingerprint")
    digest = bytes.fromhex("".join(pairs))
    expected = _KNOWN_LENGTHS.get(hash_function)
    if expected is not None and len(digest) != expected:
        raise SdpParseError(f"{hash_function} fingerprint must be {expected} octets")
    return Fingerprint(hash_function, digest)


def verify_certificate(fingerprints: Iterable[Fingerprint], der: bytes) -> bool:
    """RFC 8122 §5 / RFC 5763 §6.6: the peer's certificate must match one of its fingerprints
    with a hash function we support. No fingerprint, or none usable: ``False`` (fail closed).

    Every candidate is checked, so the time taken does not say which one matched."""
    result = False
    for fingerprint in fingerprints:
        result |= fingerprint.matches(der)
    return result


class SetupRole(Enum):
    """``a=setup`` (RFC 4145 §4): who opens the connection, here who is the DTLS client."""

    ACTIVE = "active"
    PASSIVE = "passive"
    ACTPASS = "actpass"
    HOLDCONN = "holdconn"

    def answer(self) -> SetupRole:
        """Our role when answering an offer with this role (RFC 5763 §5: the answerer picks
        active or passive; it SHOULD be active for an actpass offer, saving a round trip)."""
        if self is SetupRole.ACTIVE:
            return SetupRole.PASSIVE
        if self is SetupRole.HOLDCONN:
            return SetupRole.HOLDCONN
        return SetupRole.ACTIVE


class DtlsRole(Enum):
    """Our side of the DTLS handshake (RFC 5763 §5: ``active`` is the client)."""

    CLIENT = "client"
    SERVER = "server"

    @classmethod
    def for_setup(cls, ours: SetupRole) -> DtlsRole:
        if ours is SetupRole.ACTIVE:
            return cls.CLIENT
        if ours is SetupRole.PASSIVE:
            return cls.SERVER
        raise ValueError(f"setup role {ours.value} does not decide a DTLS role")


def parse_setup(value: str) -> SetupRole:
    """Parse the value of ``a=setup``; :class:`SdpParseError` for anything but the four roles."""
    try:
        return SetupRole(value.strip().lower())
    except ValueError:
        raise SdpParseError(f"unknown setup role: {value.strip()!r}") from None
