"""Safety numbers: libsignal's algorithm, our known answers, symmetry, sensitivity, QR codes."""

from __future__ import annotations

import hashlib
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from softphone.security import safety
from softphone.security.certificates import InvalidIdentityError
from softphone.security.safety import (
    HALF_DIGEST_BYTES,
    ITERATIONS,
    QR_PREFIX,
    ROUNDS_PER_STEP,
    SAFETY_NUMBER_VERSION,
    SafetyNumberFormatError,
    compare_scanned,
    digits_of,
    format_groups,
    iterated_digest,
    iterated_digest_steps,
    local_half,
    local_half_steps,
    parse_qr_payload,
    safety_number,
    safety_number_qr_payload,
    safety_number_steps,
)
from tests.security.pki import make_ca, make_leaf, make_self_signed

# Fixed P-256 keys, so that the known answers below never change.
ALICE_PEM = b"""-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgX5eAVcGzsa3hCJ2/
xa7QH9TAoQ0WkwN/AFGtdgp4KoehRANCAATzjOhD1gioB4zNBPSjsCfsa670megY
r0szp7vT/6qalyEuckCyx6fWXuyWeGYT97QNvDYi4quDaf/dBqbXmHfJ
-----END PRIVATE KEY-----
"""
BOB_PEM = b"""-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSsUSjUDu/VoZd5lf
LZxXrrjfnrpioH3/VdcB9dUfx/ShRANCAASoXoJg/RHni7DJIFkXZL/MFDLlJUSc
C2/aCiZe/th3jon3Dv1RDJ1ornNVs3kEIOw43BMfkqcOgZmSt1j1fTvE
-----END PRIVATE KEY-----
"""
MALLORY_PEM = b"""-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgtaDx9kUHC5jObOod
QdwIGKVspqZ/DotK++I2jA2hqMyhRANCAAQ6Jyc5QzjPgxEioGxr2dT7AxFOpuH5
1D00IS4v0d5KwidESv2a7auzDac84u2mtn8nDi32GjjN8EIYWxdJQA5l
-----END PRIVATE KEY-----
"""

ALICE_AOR = "sip:alice@example.test"
BOB_AOR = "sip:bob@example.test"

# Our known answers for the keys above (version 1).
ALICE_HALF = "780872567909256562787566088623"
ALICE_DIGEST = "bb5018aa47895e2559cf7eb57ae468faa088fd36a8d660d3ec1f607e7dafd1cf"
BOB_HALF = "299110044898829494310986147434"
BOB_DIGEST = "2cf9dc5e77a15a003fe0db3d7951edf69b745d9785bed26525e5204bc56a0260"
ALICE_BOB_GROUPS = "29911 00448 98829 49431 09861 47434 78087 25679 09256 56278 75660 88623"

# libsignal's published vector (NumericFingerprintGeneratorTest, signalapp/libsignal):
# Curve25519 identity keys in their 33-byte serialisation, phone numbers as identifiers,
# hash version 0, 5200 iterations.
SIGNAL_ALICE_KEY = bytes.fromhex(
    "0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868"
)
SIGNAL_BOB_KEY = bytes.fromhex("05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b")
SIGNAL_DISPLAYABLE = "300354477692869396892869876765458257569162576843440918079131"
SIGNAL_ALICE_SCANNABLE = "1e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df"
SIGNAL_BOB_SCANNABLE = "d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d"


def _key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


ALICE = _key(ALICE_PEM)
BOB = _key(BOB_PEM)
MALLORY = _key(MALLORY_PEM)


# --- the algorithm ------------------------------------------------------------------------


def test_iterated_digest_reproduces_libsignal_vector() -> None:
    alice = iterated_digest(SIGNAL_ALICE_KEY, b"+14152222222", version=0)
    bob = iterated_digest(SIGNAL_BOB_KEY, b"+14153333333", version=0)
    assert alice[:32].hex() == SIGNAL_ALICE_SCANNABLE
    assert bob[:32].hex() == SIGNAL_BOB_SCANNABLE
    assert "".join(sorted([digits_of(alice), digits_of(bob)])) == SIGNAL_DISPLAYABLE


def test_iterated_digest_matches_a_plain_restatement() -> None:
    key, ident = b"\x01" * 40, b"sip:x@y"
    h = b"\x00\x01" + key + ident
    for _ in range(ITERATIONS):
        h = hashlib.sha512(h + key).digest()
    assert iterated_digest(key, ident, version=1) == h
    assert iterated_digest(key, ident, version=2) != h
    assert iterated_digest(key, ident, version=1, iterations=ITERATIONS - 1) != h


@pytest.mark.parametrize("rounds", [1, 7, 64, ITERATIONS - 1, ITERATIONS, ITERATIONS + 1])
def test_iterated_digest_in_steps_is_the_same_digest(rounds: int) -> None:
    """The phone works the digest out in steps on its loop (issue 7): the steps yield between
    every ``rounds`` rounds, and end with the very bytes of the one-go digest."""
    key, ident = b"\x02" * 91, b"sip:bob@biloxi.test"
    steps = iterated_digest_steps(key, ident, version=1, rounds=rounds)
    yields = 0
    while True:
        try:
            next(steps)
        except StopIteration as finished:
            digest = finished.value
            break
        yields += 1
    assert digest == iterated_digest(key, ident, version=1)
    assert yields == -(-ITERATIONS // rounds) - 1  # between the steps, never after the last


def test_iterated_digest_steps_refuse_a_bad_version_or_step_at_the_first_step() -> None:
    with pytest.raises(ValueError, match="16-bit"):
        next(iterated_digest_steps(b"k", b"i", version=-1))
    with pytest.raises(ValueError, match="positive"):
        next(iterated_digest_steps(b"k", b"i", version=1, rounds=0))


def test_halves_and_numbers_in_steps_equal_the_plain_ones_and_are_memoised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(safety, "_HALVES", {})  # nothing memoised: both halves are worked out
    steps = safety_number_steps(ALICE.public_key(), ALICE_AOR, BOB.public_key(), BOB_AOR)
    count = 0
    with pytest.raises(StopIteration) as finished:
        while True:
            next(steps)
            count += 1
    assert str(finished.value.value) == ALICE_BOB_GROUPS
    assert count == 2 * (-(-ITERATIONS // ROUNDS_PER_STEP) - 1)
    # Memoised now: no step at all, the same half as local_half.
    again = local_half_steps(BOB.public_key(), "sips:bob@example.test")
    with pytest.raises(StopIteration) as at_once:
        next(again)
    assert at_once.value.value == local_half(BOB.public_key(), BOB_AOR)
    assert at_once.value.value.digits == BOB_HALF


def test_iterated_digest_rejects_a_version_beyond_16_bits() -> None:
    with pytest.raises(ValueError, match="16-bit"):
        iterated_digest(b"k", b"i", version=0x10000)


def test_digits_of_takes_five_byte_chunks_mod_100000() -> None:
    digest = bytes(range(30))
    expected = "".join(
        f"{int.from_bytes(digest[i : i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5)
    )
    assert digits_of(digest) == expected
    assert digits_of(b"\xff" * 30) == "27775" * 6  # (2**40 - 1) % 100000: not capped at 65535
    assert digits_of(b"\x00" * 30) == "0" * 30  # zero-padded
    with pytest.raises(ValueError):
        digits_of(b"\x00" * 29)


def test_format_groups() -> None:
    assert format_groups("1234567890") == "12345 67890"
    assert format_groups("123456", size=3) == "123 456"


# --- known answers ------------------------------------------------------------------------


def test_local_half_known_answer() -> None:
    half = local_half(ALICE.public_key(), ALICE_AOR)
    assert half.digits == ALICE_HALF
    assert half.digest.hex() == ALICE_DIGEST
    assert half.aor == ALICE_AOR
    assert half.groups == ("78087", "25679", "09256", "56278", "75660", "88623")
    assert str(half) == "78087 25679 09256 56278 75660 88623"
    assert local_half(BOB.public_key(), BOB_AOR).digits == BOB_HALF


def test_local_half_hashes_spki_and_the_aor() -> None:
    spki = ALICE.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = iterated_digest(spki, ALICE_AOR.encode(), version=SAFETY_NUMBER_VERSION)
    assert local_half(ALICE.public_key(), ALICE_AOR).digest == digest[:HALF_DIGEST_BYTES]


def test_safety_number_known_answer() -> None:
    number = safety_number(ALICE.public_key(), ALICE_AOR, BOB.public_key(), BOB_AOR)
    assert number.digits == BOB_HALF + ALICE_HALF  # ascending order of the halves
    assert " ".join(number.groups) == ALICE_BOB_GROUPS == str(number)
    assert len(number.groups) == 12
    assert all(re.fullmatch(r"\d{5}", g) for g in number.groups)
    assert number.version == SAFETY_NUMBER_VERSION
    assert number.lines() == (
        "29911 00448 98829 49431",
        "09861 47434 78087 25679",
        "09256 56278 75660 88623",
    )
    assert [h.digits for h in number.halves] == [BOB_HALF, ALICE_HALF]


# --- properties ---------------------------------------------------------------------------


def test_the_same_on_both_phones() -> None:
    alice_view = safety_number(ALICE.public_key(), ALICE_AOR, BOB.public_key(), BOB_AOR)
    bob_view = safety_number(BOB.public_key(), BOB_AOR, ALICE.public_key(), ALICE_AOR)
    assert alice_view == bob_view
    assert safety_number_qr_payload(
        ALICE.public_key(), ALICE_AOR, BOB.public_key(), BOB_AOR
    ) == safety_number_qr_payload(BOB.public_key(), BOB_AOR, ALICE.public_key(), ALICE_AOR)


@pytest.mark.parametrize(
    ("alice_key", "alice_aor", "bob_key", "bob_aor"),
    [
        (MALLORY, ALICE_AOR, BOB, BOB_AOR),  # Alice's key replaced
        (ALICE, ALICE_AOR, MALLORY, BOB_AOR),  # Bob's key replaced
        (ALICE, "sip:alice@example.org", BOB, BOB_AOR),  # another AOR, same key
        (ALICE, ALICE_AOR, BOB, "sip:bobby@example.test"),
        (ALICE, "sip:Alice@example.test", BOB, BOB_AOR),  # the user part keeps its case
    ],
)
def test_changes_when_a_key_or_an_aor_changes(
    alice_key: ec.EllipticCurvePrivateKey,
    alice_aor: str,
    bob_key: ec.EllipticCurvePrivateKey,
    bob_aor: str,
) -> None:
    genuine = safety_number(ALICE.public_key(), ALICE_AOR, BOB.public_key(), BOB_AOR)
    other = safety_number(alice_key.public_key(), alice_aor, bob_key.public_key(), bob_aor)
    assert other.digits != genuine.digits
    assert other.qr_payload() != genuine.qr_payload()


def test_a_man_in_the_middle_gives_each_side_a_different_number() -> None:
    alice_sees = safety_number(ALICE.public_key(), ALICE_AOR, MALLORY.public_key(), BOB_AOR)
    bob_sees = safety_number(BOB.public_key(), BOB_AOR, MALLORY.public_key(), ALICE_AOR)
    assert alice_sees.digits != bob_sees.digits
    assert not compare_scanned(
        bob_sees.qr_payload(), ALICE.public_key(), ALICE_AOR, MALLORY.public_key(), BOB_AOR
    )


@pytest.mark.parametrize(
    "form",
    [
        "sip:alice@example.test",
        "sips:alice@example.test",
        "SIP:alice@EXAMPLE.test",
        "alice@example.test",
        "sips:alice@example.test;transport=tls",
        "sip:alice@example.test:5061",
        "sip:%61lice@example.test",
    ],
)
def test_identifier_is_the_normalised_aor(form: str) -> None:
    assert local_half(ALICE.public_key(), form).digits == ALICE_HALF
    assert local_half(ALICE.public_key(), form).aor == ALICE_AOR


@pytest.mark.parametrize(
    "bad", ["", "alice", "sip:example.test", "tel:+15551234", "sip:alice@*.example.test"]
)
def test_not_an_aor_is_refused(bad: str) -> None:
    with pytest.raises(InvalidIdentityError):
        local_half(ALICE.public_key(), bad)


def test_certificate_and_bare_key_agree_and_renewal_keeps_the_number() -> None:
    first = make_self_signed(uris=[ALICE_AOR], key=ALICE).cert
    ca = make_ca()
    from_ca = make_leaf(ca, uris=[ALICE_AOR], key=ALICE).cert
    assert first != from_ca
    assert local_half(first, ALICE_AOR) == local_half(ALICE.public_key(), ALICE_AOR)
    assert local_half(from_ca, ALICE_AOR) == local_half(first, ALICE_AOR)


def test_rsa_keys_work_too() -> None:
    ca = make_ca(key_type="rsa", key_size=2048)
    bob_rsa = make_leaf(ca, uris=[BOB_AOR], key_type="rsa", key_size=2048).cert
    number = safety_number(ALICE.public_key(), ALICE_AOR, bob_rsa, BOB_AOR)
    assert len(number.digits) == 60
    assert number == safety_number(bob_rsa, BOB_AOR, ALICE.public_key(), ALICE_AOR)


# --- QR codes -----------------------------------------------------------------------------


def test_qr_payload_layout() -> None:
    payload = safety_number_qr_payload(ALICE.public_key(), ALICE_AOR, BOB.public_key(), BOB_AOR)
    assert payload == b"SOFTPHONE-SN:1:" + (BOB_DIGEST + ALICE_DIGEST).upper().encode()
    assert payload.startswith(QR_PREFIX)
    assert len(payload) == 143
    # Only QR alphanumeric-mode characters: scanners give it back byte for byte.
    assert re.fullmatch(rb"[0-9A-Z $%*+\-./:]+", payload)
    version, low, high = parse_qr_payload(payload)
    assert (version, low.hex(), high.hex()) == (1, BOB_DIGEST, ALICE_DIGEST)


def test_scanning_the_other_phone_verifies() -> None:
    on_bobs_screen = safety_number_qr_payload(
        BOB.public_key(), BOB_AOR, ALICE.public_key(), ALICE_AOR
    )
    assert compare_scanned(on_bobs_screen, ALICE.public_key(), ALICE_AOR, BOB.public_key(), BOB_AOR)
    assert compare_scanned(
        on_bobs_screen + b"\n", ALICE.public_key(), ALICE_AOR, BOB.public_key(), BOB_AOR
    )


def test_scanning_a_different_number_fails_closed() -> None:
    other = safety_number_qr_payload(MALLORY.public_key(), ALICE_AOR, BOB.public_key(), BOB_AOR)
    assert not compare_scanned(other, ALICE.public_key(), ALICE_AOR, BOB.public_key(), BOB_AOR)
    genuine = bytearray(
        safety_number_qr_payload(ALICE.public_key(), ALICE_AOR, BOB.public_key(), BOB_AOR)
    )
    genuine[-1] = ord("0") if genuine[-1] != ord("0") else ord("1")  # one hex digit off
    assert not compare_scanned(
        bytes(genuine), ALICE.public_key(), ALICE_AOR, BOB.public_key(), BOB_AOR
    )


def test_halves_swapped_in_the_code_do_not_match() -> None:
    _, low, high = parse_qr_payload(
        safety_number_qr_payload(ALICE.public_key(), ALICE_AOR, BOB.public_key(), BOB_AOR)
    )
    swapped = b"SOFTPHONE-SN:1:" + (high + low).hex().upper().encode()
    assert not compare_scanned(swapped, ALICE.public_key(), ALICE_AOR, BOB.public_key(), BOB_AOR)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"https://example.test/",
        b"SOFTPHONE-SN:1:" + b"AB" * 63,  # too short
        b"SOFTPHONE-SN:1:" + b"ab" * 64,  # lower-case hex is not what we write
        b"SOFTPHONE-SN::" + b"AB" * 64,
        b"SOFTPHONE-SN:1:" + b"AB" * 65,
        b"softphone-sn:1:" + b"AB" * 64,
    ],
)
def test_not_a_safety_number_is_an_error_not_a_mismatch(payload: bytes) -> None:
    with pytest.raises(SafetyNumberFormatError):
        compare_scanned(payload, ALICE.public_key(), ALICE_AOR, BOB.public_key(), BOB_AOR)


def test_another_version_says_so() -> None:
    payload = b"SOFTPHONE-SN:2:" + b"AB" * 64
    with pytest.raises(SafetyNumberFormatError, match="version 2"):
        compare_scanned(payload, ALICE.public_key(), ALICE_AOR, BOB.public_key(), BOB_AOR)
