"""a=fingerprint / a=setup (RFC 8122, RFC 4145, RFC 5763), codecs and direction tables."""

from __future__ import annotations

import hashlib

import pytest

from softphone.sdp import (
    G722,
    OPUS,
    PCMU,
    Direction,
    DtlsRole,
    Fingerprint,
    PayloadFormat,
    RtpMap,
    SdpParseError,
    SetupRole,
    parse_fingerprint,
    verify_certificate,
)
from softphone.sdp.codecs import (
    format_events,
    parse_fmtp_parameters,
    parse_ptime,
    parse_rtpmap,
    parse_telephone_events,
)
from softphone.sdp.fingerprint import parse_setup

CERT = b"0\x82\x01\x00fake DER certificate"
OTHER_CERT = b"0\x82\x01\x00another certificate"


def test_fingerprint_of_certificate_and_wire_form() -> None:
    fp = Fingerprint.of_certificate(CERT)
    digest = hashlib.sha256(CERT).digest()
    assert fp == Fingerprint("sha-256", digest)
    assert str(fp) == "sha-256 " + ":".join(f"{b:02X}" for b in digest)
    assert parse_fingerprint(str(fp)) == fp
    # upper-case hash name and lower-case hex, as some stacks send them
    assert parse_fingerprint("SHA-256 " + digest.hex(":")) == fp


def test_verify_certificate_fails_closed() -> None:
    good = Fingerprint.of_certificate(CERT, "sha-384")
    bogus = Fingerprint("sha-256", bytes(32))
    assert verify_certificate([good], CERT)
    assert verify_certificate([bogus, good], CERT)
    assert not verify_certificate([bogus], CERT)  # a bogus fingerprint is a mismatch
    assert not verify_certificate([good], OTHER_CERT)
    assert not verify_certificate([], CERT)  # nothing to check against: refuse
    md5 = Fingerprint("md5", hashlib.md5(CERT).digest())
    assert not md5.supported
    assert not verify_certificate([md5], CERT)  # we cannot trust what we must not compute


def test_fingerprint_equality_needs_the_same_hash_function() -> None:
    digest = bytes(range(20))
    assert Fingerprint("sha-1", digest) != Fingerprint("sha-224", digest + bytes(8))
    assert Fingerprint("sha-1", digest) != Fingerprint("sha-1", bytes(20))
    assert Fingerprint("sha-1", digest) == Fingerprint("sha-1", bytes(range(20)))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("sha-256", "malformed fingerprint attribute"),
        ("sha-256 AB:CD extra", "malformed fingerprint attribute"),
        ("sha_256! AB", "malformed fingerprint hash function"),
        ("sha-256 ABCD", "malformed fingerprint"),
        ("sha-256 AB:C", "malformed fingerprint"),
        ("sha-256 AB::CD", "malformed fingerprint"),
        ("sha-256 GG:00", "malformed fingerprint"),
        ("sha-256 AB:CD", "sha-256 fingerprint must be 32 octets"),
        ("sha-1 " + ":".join(["00"] * 32), "sha-1 fingerprint must be 20 octets"),
        ("md5 00:11", "md5 fingerprint must be 16 octets"),
    ],
)
def test_malformed_fingerprints(value: str, reason: str) -> None:
    with pytest.raises(SdpParseError) as info:
        parse_fingerprint(value)
    assert info.value.reason == reason


def test_unknown_hash_function_parses_as_unsupported() -> None:
    fp = parse_fingerprint("sha3-256 " + ":".join(["AA"] * 32))
    assert fp.hash_function == "sha3-256" and not fp.supported


@pytest.mark.parametrize(
    ("offer", "answer", "our_role"),
    [
        (SetupRole.ACTPASS, SetupRole.ACTIVE, DtlsRole.CLIENT),  # RFC 5763 §5: SHOULD be active
        (SetupRole.ACTIVE, SetupRole.PASSIVE, DtlsRole.SERVER),
        (SetupRole.PASSIVE, SetupRole.ACTIVE, DtlsRole.CLIENT),
    ],
)
def test_setup_answer_roles(offer: SetupRole, answer: SetupRole, our_role: DtlsRole) -> None:
    assert offer.answer() is answer
    assert DtlsRole.for_setup(answer) is our_role


def test_setup_parsing() -> None:
    assert parse_setup("ActPass") is SetupRole.ACTPASS
    assert SetupRole.HOLDCONN.answer() is SetupRole.HOLDCONN
    with pytest.raises(SdpParseError, match="unknown setup role: 'both'"):
        parse_setup("both")
    with pytest.raises(ValueError, match="does not decide"):
        DtlsRole.for_setup(SetupRole.ACTPASS)


# -- codecs -----------------------------------------------------------------------------


def test_rtpmap_parsing() -> None:
    assert parse_rtpmap("96 opus/48000/2") == RtpMap(96, "opus", 48000, 2)
    assert parse_rtpmap("9 G722/8000") == RtpMap(9, "G722", 8000, None)
    assert str(RtpMap(96, "opus", 48000, 2)) == "96 opus/48000/2"


def test_codec_matching_is_case_insensitive_and_checks_clock_and_channels() -> None:
    assert OPUS.matches(PayloadFormat(111, "OPUS", 48000, 2))
    assert not OPUS.matches(PayloadFormat(111, "opus", 48000, 1))
    assert not PCMU.matches(PayloadFormat(0, "PCMU", 16000))
    assert G722.matches(PayloadFormat(9, "g722", 8000))


@pytest.mark.parametrize(
    ("text", "events"),
    [
        ("0-15", set(range(16))),
        ("0-16", set(range(17))),
        ("", set(range(16))),  # RFC 4733 §7.1.1 default
        ("0-11,13,66-67", {*range(12), 13, 66, 67}),
        (" 5 ", {5}),
    ],
)
def test_telephone_events(text: str, events: set[int]) -> None:
    assert parse_telephone_events(text) == events


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("16-0", "telephone-event range reversed: '16-0'"),
        ("0-256", "telephone-event out of range: 256"),
        ("a-b", "invalid telephone-event: 'a'"),
        ("0,,1", "invalid telephone-event: ''"),
    ],
)
def test_malformed_telephone_events(text: str, reason: str) -> None:
    with pytest.raises(SdpParseError) as info:
        parse_telephone_events(text)
    assert info.value.reason == reason


def test_format_events() -> None:
    assert format_events(frozenset(range(17))) == "0-16"
    assert format_events(frozenset({0, 1, 2, 5, 7, 8})) == "0-2,5,7-8"


def test_fmtp_parameters_and_ptime() -> None:
    assert parse_fmtp_parameters("stereo=1; sprop-stereo=1;useInbandFEC=1") == {
        "stereo": "1",
        "sprop-stereo": "1",
        "useinbandfec": "1",
    }
    assert parse_ptime("20") == 20
    assert parse_ptime("20.0") == 20
    with pytest.raises(SdpParseError, match="packet time out of range: 0"):
        parse_ptime("0")
    with pytest.raises(SdpParseError, match="invalid packet time"):
        parse_ptime("20.x")


# -- direction --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "local", "answer"),
    [
        # RFC 3264 §6.1 table, we want sendrecv
        (Direction.SENDRECV, Direction.SENDRECV, Direction.SENDRECV),
        (Direction.SENDONLY, Direction.SENDRECV, Direction.RECVONLY),
        (Direction.RECVONLY, Direction.SENDRECV, Direction.SENDONLY),
        (Direction.INACTIVE, Direction.SENDRECV, Direction.INACTIVE),
        # we hold
        (Direction.SENDRECV, Direction.SENDONLY, Direction.SENDONLY),
        (Direction.SENDONLY, Direction.SENDONLY, Direction.INACTIVE),
        (Direction.RECVONLY, Direction.SENDONLY, Direction.SENDONLY),
        (Direction.SENDRECV, Direction.INACTIVE, Direction.INACTIVE),
    ],
)
def test_direction_answer_table(offered: Direction, local: Direction, answer: Direction) -> None:
    assert offered.answer(local) is answer


def test_direction_helpers() -> None:
    assert Direction.SENDRECV.answer() is Direction.SENDRECV
    assert Direction.SENDONLY.reversed() is Direction.RECVONLY
    assert Direction.SENDRECV.without_receive() is Direction.SENDONLY
    assert Direction.RECVONLY.without_receive() is Direction.INACTIVE
