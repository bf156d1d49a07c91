"""SRTP context: known answers (libsrtp srtp_validate*), round trips, typed drops."""

from __future__ import annotations

import struct

import pytest

from softphone.media.srtp import (
    SUPPORTED_SUITES,
    DropReason,
    PlainContext,
    SrtpContext,
    UnsupportedSuiteError,
)
from softphone.sdp.crypto import SrtpSuite

# ../shared/vectors/srtp_vectors.md: libsrtp test/srtp_driver.c srtp_validate / _gcm.
CM_KEY = bytes.fromhex("e1f97a0d3e018be0d64fa32c06de41390ec675ad498afeebb6960b3aabe6")
GCM_KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0fa0a1a2a3a4a5a6a7a8a9aaab")
RTP_IN = bytes.fromhex("800f1234decafbadcafebabe") + b"\xab" * 16
RTCP_IN = bytes.fromhex("81c8000bcafebabe") + b"\xab" * 16

VECTORS = [
    pytest.param(
        SrtpSuite.AES_CM_128_HMAC_SHA1_80,
        CM_KEY,
        "800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb",
        "81c8000bcafebabe7128035be487b9bdbef89041f977a5a880000001993e08cd54d6c1230798",
        id="AES_CM_128_HMAC_SHA1_80",
    ),
    pytest.param(
        SrtpSuite.AEAD_AES_128_GCM,
        GCM_KEY,
        "800f1234decafbadcafebabec5002ede04cfdd2eb91159e0880aa06ed2976826f796b201df3131a127e8a392",
        "81c8000bcafebabec98b8b5df0392a55852b6c21ac8e7025c52c6fbea2b3b446ea31123ba88ce61e80000001",
        id="AEAD_AES_128_GCM",
    ),
    # libsrtp test/srtp_driver.c srtp_validate_aes_256 (AES-CM-256/HMAC-SHA-1-80, RFC 6188):
    # an RTP vector only (libsrtp publishes no SRTCP one for this key).
    pytest.param(
        SrtpSuite.AES_256_CM_HMAC_SHA1_80,
        bytes.fromhex(
            "f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6"
            "3b04803de51ee7c96423ab5b78d2"
        ),
        "800f1234decafbadcafebabef1d9de17ff251ff1aa007774b0b4b40da08d9d9a5b3a55d8873b",
        None,
        id="AES_256_CM_HMAC_SHA1_80",
    ),
]


SUPPORTED = [s for s in SrtpSuite if s in SUPPORTED_SUITES]  # enum order: stable test ids


def _other_key(suite: SrtpSuite, fill: int) -> bytes:
    return bytes([fill]) * suite.key_salt_length


def _rtp(seq: int, payload: bytes = b"\x11" * 160, ssrc: int = 0x1234) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + payload


def _rtcp_rr(ssrc: int = 0x1234) -> bytes:
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)


def test_supported_suites_of_this_libsrtp_build() -> None:
    assert {
        SrtpSuite.AES_CM_128_HMAC_SHA1_80,
        SrtpSuite.AES_CM_128_HMAC_SHA1_32,
        SrtpSuite.AES_256_CM_HMAC_SHA1_80,  # RFC 6188: crypto policy set field by field
        SrtpSuite.AES_256_CM_HMAC_SHA1_32,
        SrtpSuite.AEAD_AES_128_GCM,
        SrtpSuite.AEAD_AES_256_GCM,
    } == SUPPORTED_SUITES


@pytest.mark.parametrize(("suite", "key", "srtp", "srtcp"), VECTORS)
def test_known_answer(suite: SrtpSuite, key: bytes, srtp: str, srtcp: str | None) -> None:
    sender = SrtpContext(suite, key, _other_key(suite, 1))
    assert sender.protect(RTP_IN).hex() == srtp
    receiver = SrtpContext(suite, _other_key(suite, 2), key)
    assert receiver.unprotect(bytes.fromhex(srtp)) == RTP_IN
    if srtcp is not None:
        assert sender.protect_rtcp(RTCP_IN).hex() == srtcp
        assert receiver.unprotect_rtcp(bytes.fromhex(srtcp)) == RTCP_IN


def _pair(suite: SrtpSuite) -> tuple[SrtpContext, SrtpContext]:
    a_key, b_key = _other_key(suite, 0xA5), _other_key(suite, 0x5A)
    return SrtpContext(suite, a_key, b_key), SrtpContext(suite, b_key, a_key)


@pytest.mark.parametrize("suite", SUPPORTED)
def test_round_trip_both_directions(suite: SrtpSuite) -> None:
    alice, bob = _pair(suite)
    tags = {
        SrtpSuite.AES_CM_128_HMAC_SHA1_80: 10,
        SrtpSuite.AES_CM_128_HMAC_SHA1_32: 4,
        SrtpSuite.AES_256_CM_HMAC_SHA1_80: 10,
        SrtpSuite.AES_256_CM_HMAC_SHA1_32: 4,
        SrtpSuite.AEAD_AES_128_GCM: 16,
        SrtpSuite.AEAD_AES_256_GCM: 16,
    }
    for seq in range(5):
        packet = _rtp(seq)
        protected = alice.protect(packet)
        assert len(protected) == len(packet) + tags[suite]
        assert protected[12:] != packet[12:]  # encrypted
        assert bob.unprotect(protected) == packet
        reply = _rtp(seq, ssrc=0x9999)
        assert alice.unprotect(bob.protect(reply)) == reply
    assert bob.unprotect_rtcp(alice.protect_rtcp(_rtcp_rr())) == _rtcp_rr()
    assert not alice.drops
    assert not bob.drops


@pytest.mark.parametrize("suite", SUPPORTED)
def test_bad_packets_are_dropped_and_counted(suite: SrtpSuite) -> None:
    alice, bob = _pair(suite)
    good = alice.protect(_rtp(1))
    tampered = bytearray(alice.protect(_rtp(2)))
    tampered[-1] ^= 0x01
    assert bob.unprotect(bytes(tampered)) is DropReason.AUTH_FAILED
    flipped = bytearray(alice.protect(_rtp(3)))
    flipped[20] ^= 0x80  # a payload bit
    assert bob.unprotect(bytes(flipped)) is DropReason.AUTH_FAILED
    assert bob.unprotect(good) == _rtp(1)
    assert bob.unprotect(good) is DropReason.REPLAY
    assert bob.unprotect(good[:8]) is DropReason.TRUNCATED
    assert bob.unprotect(b"") is DropReason.TRUNCATED
    garbage = b"\x80\x00" + bytes(range(200))
    assert isinstance(bob.unprotect(garbage), DropReason)
    # SRTCP: truncated trailer, tampered, replayed
    srtcp = alice.protect_rtcp(_rtcp_rr())
    assert bob.unprotect_rtcp(srtcp[:-4]) in (DropReason.AUTH_FAILED, DropReason.TRUNCATED)
    assert bob.unprotect_rtcp(srtcp[:6]) is DropReason.TRUNCATED
    assert bob.unprotect_rtcp(srtcp[:9]) in (DropReason.TRUNCATED, DropReason.AUTH_FAILED)
    assert bob.unprotect_rtcp(srtcp) == _rtcp_rr()
    assert bob.unprotect_rtcp(srtcp) is DropReason.REPLAY
    assert bob.unprotect(b"\x80" * 1600) is DropReason.TOO_LONG
    drops = bob.drops
    assert drops[DropReason.AUTH_FAILED] >= 2
    assert drops[DropReason.REPLAY] == 2
    assert drops[DropReason.TRUNCATED] >= 3
    assert drops[DropReason.TOO_LONG] == 1
    assert sum(drops.values()) == 11


def test_wrong_key_is_auth_failure_not_exception() -> None:
    suite = SrtpSuite.AES_CM_128_HMAC_SHA1_80
    alice = SrtpContext(suite, _other_key(suite, 1), _other_key(suite, 2))
    eve = SrtpContext(suite, _other_key(suite, 3), _other_key(suite, 4))
    assert eve.unprotect(alice.protect(_rtp(7))) is DropReason.AUTH_FAILED


@pytest.mark.parametrize("suite", [s for s in SrtpSuite if s not in SUPPORTED_SUITES])
def test_unsupported_suite(suite: SrtpSuite) -> None:
    with pytest.raises(UnsupportedSuiteError):
        SrtpContext(suite, _other_key(suite, 1), _other_key(suite, 2))


def test_key_length_checked() -> None:
    with pytest.raises(ValueError, match="30 octets"):
        SrtpContext(SrtpSuite.AES_CM_128_HMAC_SHA1_80, b"\x01" * 29, b"\x02" * 30)


def test_repr_has_no_key() -> None:
    ctx = SrtpContext(SrtpSuite.AES_CM_128_HMAC_SHA1_80, CM_KEY, b"\x02" * 30)
    assert CM_KEY.hex() not in repr(ctx)
    assert "e1f97a" not in repr(ctx)


def test_plain_context_passes_through_and_counts_runts() -> None:
    plain = PlainContext()
    assert plain.unprotect(_rtp(1)) == _rtp(1)
    assert plain.protect(b"x" * 20) == b"x" * 20
    assert plain.unprotect(b"short") is DropReason.TRUNCATED
    assert plain.unprotect_rtcp(b"abc") is DropReason.TRUNCATED
    assert plain.drops[DropReason.TRUNCATED] == 2
