"""SRTP and SRTCP protection (RFC 3711, RFC 7714) over libsrtp through pylibsrtp.

An SDES call (RFC 4568) gives each direction its own master key and salt: ``a=crypto`` in our
SDP keys what *we send*, the peer's keys what *we receive* (RFC 4568 §6.1). So one
:class:`SrtpContext` holds two libsrtp sessions: an outbound one (any SSRC we send) and an
inbound one (any SSRC the peer sends; libsrtp keeps a replay window per SSRC).

Nothing here raises on a bad packet. :meth:`SrtpContext.unprotect` returns either the clear
packet or a :class:`DropReason`, and counts every drop, so that a forged, replayed or truncated
datagram costs the receive loop one counter increment and nothing else.

Suites: the four profiles pylibsrtp 1.0 exposes, plus AES_256_CM_HMAC_SHA1_80/_32 (RFC 6188),
which libsrtp runs but has no *profile* for (it is not a DTLS-SRTP profile): its crypto policy is
written field by field into libsrtp's ``srtp_crypto_policy_t`` (six ints, the layout of libsrtp
2.x; checked by size at import, and the suites are left out if it differs) and the 46-octet
master key handed over directly. The result is checked against libsrtp's own known answer
(``srtp_validate_aes_256``) in tests/media/test_srtp.py. See :data:`SUPPORTED_SUITES`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

from pylibsrtp import Error as _SrtpError
from pylibsrtp import Policy, Session
from pylibsrtp._binding import ffi as _ffi

from softphone.sdp.crypto import SrtpSuite

__all__ = [
    "SUPPORTED_SUITES",
    "DropReason",
    "PacketProtection",
    "PlainContext",
    "SrtpContext",
    "UnsupportedSuiteError",
]


class DropReason(StrEnum):
    """Why an incoming datagram was dropped (every drop is counted under one of these)."""

    AUTH_FAILED = "auth-failed"  # bad authentication tag: forged, corrupted or wrong key
    REPLAY = "replay"  # index already seen or older than the replay window (RFC 3711 §3.3.2)
    TRUNCATED = "truncated"  # too short to hold a header, SRTCP index and tag
    TOO_LONG = "too-long"  # bigger than libsrtp's buffer
    MALFORMED = "malformed"  # not RTP/RTCP version 2, bad lengths, padding or CSRC count
    UNEXPECTED_SOURCE = "unexpected-source"  # not from the address we latched to / were told
    UNKNOWN_PAYLOAD_TYPE = "unknown-payload-type"  # not a payload type of this session
    NOT_RECEIVING = "not-receiving"  # we asked not to be sent media (hold, a=sendonly)
    DUPLICATE = "duplicate"  # jitter buffer: the same sequence number twice
    LATE = "late"  # jitter buffer: arrived after its play-out time
    SRTP_ERROR = "srtp-error"  # any other libsrtp failure


#: Suites with a libsrtp profile here, and the profile constant.
_PROFILES: dict[SrtpSuite, int] = {
    SrtpSuite.AES_CM_128_HMAC_SHA1_80: Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    SrtpSuite.AES_CM_128_HMAC_SHA1_32: Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    SrtpSuite.AEAD_AES_128_GCM: Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    SrtpSuite.AEAD_AES_256_GCM: Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}

#: libsrtp's srtp_crypto_policy_t fields for the RFC 6188 suites without a profile:
#: (cipher_type SRTP_AES_ICM_256 = 5, cipher_key_len 32 + 14, auth_type SRTP_HMAC_SHA1 = 3,
#: auth_key_len 20, auth_tag_len, sec_serv_conf_and_auth = 3).
_CRYPTO_POLICIES: dict[SrtpSuite, tuple[int, int, int, int, int, int]] = {}
if _ffi.sizeof("srtp_crypto_policy_t") == 6 * _ffi.sizeof("int"):
    _CRYPTO_POLICIES = {
        SrtpSuite.AES_256_CM_HMAC_SHA1_80: (5, 46, 3, 20, 10, 3),
        SrtpSuite.AES_256_CM_HMAC_SHA1_32: (5, 46, 3, 20, 4, 3),
    }

SUPPORTED_SUITES: frozenset[SrtpSuite] = frozenset(_PROFILES) | frozenset(_CRYPTO_POLICIES)

# libsrtp's error strings (pylibsrtp.ERRORS) mapped to our reasons.
_REASONS = {
    "authentication failure": DropReason.AUTH_FAILED,
    "replay check failed (bad index)": DropReason.REPLAY,
    "replay check failed (index too old)": DropReason.REPLAY,
    "packet index is too old to consider": DropReason.REPLAY,
    # libsrtp's srtp_err_status_bad_param: what a packet shorter than its header or
    # shorter than the SRTCP trailer gets.
    "unsupported parameter": DropReason.TRUNCATED,
}

_RTP_HEADER = 12
_RTCP_HEADER = 8


class UnsupportedSuiteError(ValueError):
    """The negotiated suite has no libsrtp profile here (negotiation should not offer it)."""


class PacketProtection(Protocol):
    """What the RTP loop needs from SRTP, or from nothing at all (:class:`PlainContext`)."""

    @property
    def drops(self) -> Counter[DropReason]: ...

    def protect(self, packet: bytes) -> bytes: ...

    def protect_rtcp(self, packet: bytes) -> bytes: ...

    def unprotect(self, packet: bytes) -> bytes | DropReason: ...

    def unprotect_rtcp(self, packet: bytes) -> bytes | DropReason: ...


def _profile(suite: SrtpSuite) -> int:
    try:
        return _PROFILES[suite]
    except KeyError:
        raise UnsupportedSuiteError(
            f"{suite.wire_name} is not supported by this libsrtp build"
        ) from None


def _session(suite: SrtpSuite, key_salt: bytes, ssrc_type: int) -> Session:
    if len(key_salt) != suite.key_salt_length:
        raise ValueError(
            f"{suite.wire_name} needs {suite.key_salt_length} octets of key and salt, "
            f"got {len(key_salt)}"
        )
    fields = _CRYPTO_POLICIES.get(suite)
    if fields is None:
        policy = Policy(key=key_salt, ssrc_type=ssrc_type, srtp_profile=_profile(suite))
        return Session(policy)
    # Any profile, then its crypto policies overwritten for RTP and RTCP (see the module
    # docstring); the key buffer must live as long as the session.
    policy = Policy(ssrc_type=ssrc_type, srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
    native = policy._policy  # pylibsrtp has no API for RFC 6188 suites
    for part in (native.rtp, native.rtcp):
        ints = _ffi.cast("int *", _ffi.addressof(part))
        for i, value in enumerate(fields):
            ints[i] = value
    key = _ffi.new("unsigned char[]", key_salt)
    native.key = key
    session = Session(policy)
    session._softphone_key = key  # type: ignore[attr-defined]  # keep the buffer alive
    return session


class SrtpContext:
    """Both directions of one SRTP stream pair.

    ``key_salt_tx`` is ``master key || master salt`` of what we send (our ``a=crypto``),
    ``key_salt_rx`` of what we receive (the peer's). They must differ: RFC 4568 §6.1 keys each
    direction separately, and a two-time pad would follow if both sides used one key."""

    def __init__(self, suite: SrtpSuite, key_salt_tx: bytes, key_salt_rx: bytes) -> None:
        self.suite = suite
        self._tx = _session(suite, key_salt_tx, Policy.SSRC_ANY_OUTBOUND)
        self._rx = _session(suite, key_salt_rx, Policy.SSRC_ANY_INBOUND)
        self._drops: Counter[DropReason] = Counter()

    def __repr__(self) -> str:
        return f"SrtpContext({self.suite.wire_name}, drops={dict(self._drops)!r})"

    @property
    def drops(self) -> Counter[DropReason]:
        return self._drops

    def protect(self, packet: bytes) -> bytes:
        """SRTP-protect one RTP packet we built; a failure here is our bug, so it raises."""
        return bytes(self._tx.protect(packet))

    def protect_rtcp(self, packet: bytes) -> bytes:
        return bytes(self._tx.protect_rtcp(packet))

    def unprotect(self, packet: bytes) -> bytes | DropReason:
        """The clear RTP packet, or why it was dropped (and counted)."""
        if len(packet) < _RTP_HEADER:
            return self._drop(DropReason.TRUNCATED)
        return self._run(self._rx.unprotect, packet)

    def unprotect_rtcp(self, packet: bytes) -> bytes | DropReason:
        """The clear RTCP compound packet, or why it was dropped (and counted)."""
        if len(packet) < _RTCP_HEADER:
            return self._drop(DropReason.TRUNCATED)
        return self._run(self._rx.unprotect_rtcp, packet)

    def _run(self, func: Callable[[bytes], bytes], packet: bytes) -> bytes | DropReason:
        try:
            return bytes(func(packet))
        except _SrtpError as exc:
            return self._drop(_REASONS.get(str(exc), DropReason.SRTP_ERROR))
        except ValueError:  # pylibsrtp: "packet is too long" for its 1500-octet buffer
            return self._drop(DropReason.TOO_LONG)

    def _drop(self, reason: DropReason) -> DropReason:
        self._drops[reason] += 1
        return reason


class PlainContext:
    """No protection: plain RTP/RTCP (``RTP/AVP``, "Audio not encrypted")."""

    suite: SrtpSuite | None = None

    def __init__(self) -> None:
        self._drops: Counter[DropReason] = Counter()

    @property
    def drops(self) -> Counter[DropReason]:
        return self._drops

    def protect(self, packet: bytes) -> bytes:
        return packet

    def protect_rtcp(self, packet: bytes) -> bytes:
        return packet

    def unprotect(self, packet: bytes) -> bytes | DropReason:
        if len(packet) < _RTP_HEADER:
            self._drops[DropReason.TRUNCATED] += 1
            return DropReason.TRUNCATED
        return packet

    def unprotect_rtcp(self, packet: bytes) -> bytes | DropReason:
        if len(packet) < _RTCP_HEADER:
            self._drops[DropReason.TRUNCATED] += 1
            return DropReason.TRUNCATED
        return packet
