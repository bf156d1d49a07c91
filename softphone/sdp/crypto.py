"""SDES: the ``a=crypto`` attribute of RFC 4568 (SDP Security Descriptions for media streams).

::

    a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]
    a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4

``key-params`` (§9.2) are ``inline:<base64(master key || master salt)>[|<lifetime>][|<MKI>:<len>]``,
possibly several separated by ``;`` (then each needs an MKI, §6.1).

Suites and their key/salt lengths in octets:

=========================  =====  ====  ==================
suite                      key    salt  defined in
=========================  =====  ====  ==================
AES_CM_128_HMAC_SHA1_80    16     14    RFC 4568 §6.2.1
AES_CM_128_HMAC_SHA1_32    16     14    RFC 4568 §6.2.2
AES_192_CM_HMAC_SHA1_80/32 24     14    RFC 6188 §7.1
AES_256_CM_HMAC_SHA1_80/32 32     14    RFC 6188 §7.1
AEAD_AES_128_GCM           16     12    RFC 7714 §12
AEAD_AES_256_GCM           32     12    RFC 7714 §12
=========================  =====  ====  ==================

Keys are secrets: :class:`KeyParams` and :class:`CryptoAttribute` never show them in ``repr``
(logs and tracebacks print reprs); only ``str()`` — the wire form — contains them. Fresh keys
come from :func:`secrets.token_bytes` (the OS CSPRNG); tests inject their own source.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from softphone.sdp.errors import SdpParseError

__all__ = [
    "CryptoAttribute",
    "KeyParams",
    "SrtpSuite",
    "generate_crypto",
    "parse_crypto",
]

_MAX_TAG = 999_999_999  # tag = 1*9DIGIT (RFC 4568 §9.1)
_MAX_LIFETIME_POWER = 48  # SRTP's packet index is 48 bits (RFC 3711 §9.2)
_MAX_MKI_LENGTH = 128  # RFC 4568 §9.2: mki-length 1..128 octets
_MAX_KEY_PARAMS = 16  # a bound of our own: real offers carry one


class SrtpSuite(Enum):
    """The crypto-suites we recognise, with the lengths the key-params must decode to."""

    AES_CM_128_HMAC_SHA1_80 = ("AES_CM_128_HMAC_SHA1_80", 16, 14)
    AES_CM_128_HMAC_SHA1_32 = ("AES_CM_128_HMAC_SHA1_32", 16, 14)
    AES_192_CM_HMAC_SHA1_80 = ("AES_192_CM_HMAC_SHA1_80", 24, 14)
    AES_192_CM_HMAC_SHA1_32 = ("AES_192_CM_HMAC_SHA1_32", 24, 14)
    AES_256_CM_HMAC_SHA1_80 = ("AES_256_CM_HMAC_SHA1_80", 32, 14)
    AES_256_CM_HMAC_SHA1_32 = ("AES_256_CM_HMAC_SHA1_32", 32, 14)
    AEAD_AES_128_GCM = ("AEAD_AES_128_GCM", 16, 12)
    AEAD_AES_256_GCM = ("AEAD_AES_256_GCM", 32, 12)

    def __init__(self, wire_name: str, key_length: int, salt_length: int) -> None:
        self.wire_name = wire_name
        self.key_length = key_length
        self.salt_length = salt_length

    @property
    def key_salt_length(self) -> int:
        return self.key_length + self.salt_length

    @classmethod
    def from_name(cls, name: str) -> SrtpSuite | None:
        """The suite called ``name`` (case-sensitive, RFC 4568 §9.1), ``None`` if unknown."""
        return _SUITES_BY_NAME.get(name)


_SUITES_BY_NAME = {suite.wire_name: suite for suite in SrtpSuite}

#: Session parameters we can honour. Any other one makes the line unusable (RFC 4568 §6.3:
#: "an unknown session parameter ... MUST NOT be accepted"), and the three that switch off
#: encryption or authentication are refused on purpose: they are a downgrade in disguise.
ACCEPTABLE_SESSION_PARAMS = frozenset({"WSH"})
WEAKENING_SESSION_PARAMS = frozenset(
    {"UNENCRYPTED_SRTP", "UNENCRYPTED_SRTCP", "UNAUTHENTICATED_SRTP"}
)


@dataclass(frozen=True, repr=False)
class KeyParams:
    """One ``inline:`` key-param (RFC 4568 §6.1, §9.2): master key, salt, lifetime, MKI."""

    key: bytes
    salt: bytes
    #: 2**n form is kept as n in ``lifetime_power`` so that it serialises back the same way.
    lifetime: int | None = None
    lifetime_power: int | None = None
    mki_value: int | None = None
    mki_length: int | None = None

    @property
    def key_salt(self) -> bytes:
        """``key || salt``, the order in which pylibsrtp / libsrtp take them."""
        return self.key + self.salt

    def __str__(self) -> str:
        encoded = base64.b64encode(self.key + self.salt).decode("ascii")
        text = f"inline:{encoded}"
        if self.lifetime_power is not None:
            text += f"|2^{self.lifetime_power}"
        elif self.lifetime is not None:
            text += f"|{self.lifetime}"
        if self.mki_value is not None:
            text += f"|{self.mki_value}:{self.mki_length}"
        return text

    def __repr__(self) -> str:
        # Never the key: reprs end up in logs, tracebacks and test reports.
        return (
            f"KeyParams(key=<{len(self.key)} bytes>, salt=<{len(self.salt)} bytes>, "
            f"lifetime={self.lifetime!r}, mki_value={self.mki_value!r}, "
            f"mki_length={self.mki_length!r})"
        )


@dataclass(frozen=True, repr=False)
class CryptoAttribute:
    """The value of one ``a=crypto`` line (RFC 4568 §4)."""

    tag: int
    suite_name: str
    key_params: tuple[KeyParams, ...]
    session_params: tuple[str, ...] = field(default=())

    @property
    def suite(self) -> SrtpSuite | None:
        return SrtpSuite.from_name(self.suite_name)

    @property
    def key(self) -> KeyParams:
        """The first (usually the only) key-param."""
        return self.key_params[0]

    @property
    def unusable_reason(self) -> str | None:
        """Why we cannot use this line for media, or ``None`` if we can (RFC 4568 §6.3, §7.1)."""
        if self.suite is None:
            return f"unsupported crypto suite {self.suite_name}"
        for param in self.session_params:
            name = param.partition("=")[0]
            if name in WEAKENING_SESSION_PARAMS:
                return f"session parameter {name} switches SRTP protection off"
            if name not in ACCEPTABLE_SESSION_PARAMS:
                return f"unsupported session parameter {name}"
        # libsrtp as wrapped by pylibsrtp has no MKI support, so neither have we.
        if len(self.key_params) != 1 or self.key.mki_value is not None:
            return "MKI is not supported"
        return None

    def __str__(self) -> str:
        text = f"{self.tag} {self.suite_name} " + ";".join(str(k) for k in self.key_params)
        return " ".join((text, *self.session_params))

    def __repr__(self) -> str:
        return (
            f"CryptoAttribute(tag={self.tag}, suite_name={self.suite_name!r}, "
            f"key_params={list(self.key_params)!r}, session_params={self.session_params!r})"
        )


def _decode_key_salt(text: str) -> bytes:
    if not text.isascii():
        raise SdpParseError("crypto key is not base64")
    # RFC 4568 §9.2 writes key-salt as 1*(base64); several phones drop the "=" padding of
    # 46-octet keys, so padding is restored before a strict decode.
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise SdpParseError("crypto key is not base64") from None


def _parse_digits(text: str, what: str) -> int:
    if not text or len(text) > 20 or not (text.isascii() and text.isdigit()):
        raise SdpParseError(f"invalid {what} in crypto attribute")
    return int(text)


def _parse_key_param(text: str, suite: SrtpSuite | None) -> KeyParams:
    method, sep, info = text.partition(":")
    if not sep or method != "inline":
        # RFC 4568 §9.2 defines only "inline" for SRTP.
        raise SdpParseError("crypto key method is not inline")
    fields = info.split("|")
    if len(fields) > 3 or not fields[0]:
        raise SdpParseError("malformed crypto key-params")
    key_salt = _decode_key_salt(fields[0])
    lifetime = lifetime_power = mki_value = mki_length = None
    for extra in fields[1:]:
        if ":" in extra:
            if mki_value is not None:
                raise SdpParseError("crypto key-params with two MKIs")
            value_text, _, length_text = extra.partition(":")
            mki_value = _parse_digits(value_text, "MKI value")
            mki_length = _parse_digits(length_text, "MKI length")
            if not 1 <= mki_length <= _MAX_MKI_LENGTH or mki_value >= 256**mki_length:
                raise SdpParseError("crypto MKI out of range")
        else:
            if lifetime is not None or mki_value is not None:
                raise SdpParseError("malformed crypto lifetime")
            if extra.startswith("2^"):
                lifetime_power = _parse_digits(extra[2:], "lifetime")
                if not 1 <= lifetime_power <= _MAX_LIFETIME_POWER:
                    raise SdpParseError("crypto lifetime out of range")
                lifetime = 2**lifetime_power
            else:
                lifetime = _parse_digits(extra, "lifetime")
                if not 1 <= lifetime <= 2**_MAX_LIFETIME_POWER:
                    raise SdpParseError("crypto lifetime out of range")
    if suite is None:
        # Unknown suite: the split between key and salt is unknown; keep it all as the key.
        key, salt = key_salt, b""
    else:
        if len(key_salt) != suite.key_salt_length:
            raise SdpParseError(
                f"{suite.wire_name} needs a {suite.key_salt_length}-octet key and salt, "
                f"got {len(key_salt)}"
            )
        key, salt = key_salt[: suite.key_length], key_salt[suite.key_length :]
    return KeyParams(key, salt, lifetime, lifetime_power, mki_value, mki_length)


def parse_crypto(value: str) -> CryptoAttribute:
    """Parse the value of an ``a=crypto`` attribute (RFC 4568 §9.1 grammar).

    Raises :class:`SdpParseError` on a malformed line or on a key whose length does not fit the
    suite (RFC 4568 §6.2: such a line MUST be rejected). An unknown suite parses; its
    :attr:`CryptoAttribute.unusable_reason` says why negotiation skips it."""
    fields = value.split()
    if len(fields) < 3:
        raise SdpParseError("malformed crypto attribute")
    tag_text, suite_name, key_text, *session_params = fields
    tag = _parse_digits(tag_text, "tag")
    if len(tag_text) > 9 or not 0 <= tag <= _MAX_TAG:
        raise SdpParseError("crypto tag out of range")
    if not suite_name.isascii() or not suite_name.replace("_", "").isalnum():
        raise SdpParseError("malformed crypto suite")
    suite = SrtpSuite.from_name(suite_name)
    pieces = key_text.split(";")
    if len(pieces) > _MAX_KEY_PARAMS:
        raise SdpParseError("too many crypto key-params")
    key_params = tuple(_parse_key_param(piece, suite) for piece in pieces)
    if len(key_params) > 1 and any(k.mki_value is None for k in key_params):
        raise SdpParseError("several crypto key-params need an MKI each (RFC 4568 §6.1)")
    return CryptoAttribute(tag, suite_name, key_params, tuple(session_params))


def generate_crypto(
    tag: int,
    suite: SrtpSuite,
    *,
    token_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> CryptoAttribute:
    """A fresh ``a=crypto`` line: new master key and salt from the OS CSPRNG (RFC 4568 §6.1
    requires them to be random and never reused across streams)."""
    if not 0 <= tag <= _MAX_TAG:
        raise ValueError(f"crypto tag out of range: {tag}")
    key_salt = token_bytes(suite.key_salt_length)
    if len(key_salt) != suite.key_salt_length:
        raise ValueError("token_bytes returned the wrong number of bytes")
    key_params = KeyParams(key_salt[: suite.key_length], key_salt[suite.key_length :])
    return CryptoAttribute(tag, suite.wire_name, (key_params,))
