"""RFC 4568 a=crypto: parsing, suites and key lengths, generation, keys kept out of repr."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from softphone.sdp import CryptoAttribute, SdpParseError, SrtpSuite, generate_crypto, parse_crypto
from softphone.sdp.crypto import KeyParams

# RFC 4568 §4's example line (key "PS1u..." is 40 base64 characters = 30 octets).
RFC_EXAMPLE = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4"
RFC_KEY_SALT = base64.b64decode("PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR")


def test_rfc_4568_example() -> None:
    crypto = parse_crypto(RFC_EXAMPLE)
    assert crypto.tag == 1
    assert crypto.suite is SrtpSuite.AES_CM_128_HMAC_SHA1_80
    key = crypto.key
    assert key.key == RFC_KEY_SALT[:16]
    assert key.salt == RFC_KEY_SALT[16:]
    assert key.key_salt == RFC_KEY_SALT
    assert (key.lifetime, key.lifetime_power) == (2**20, 20)
    assert (key.mki_value, key.mki_length) == (1, 4)
    assert str(crypto) == RFC_EXAMPLE
    assert crypto.unusable_reason == "MKI is not supported"


@pytest.mark.parametrize(
    ("suite", "key_length", "salt_length"),
    [
        (SrtpSuite.AES_CM_128_HMAC_SHA1_80, 16, 14),
        (SrtpSuite.AES_CM_128_HMAC_SHA1_32, 16, 14),
        (SrtpSuite.AES_192_CM_HMAC_SHA1_80, 24, 14),
        (SrtpSuite.AES_256_CM_HMAC_SHA1_80, 32, 14),
        (SrtpSuite.AES_256_CM_HMAC_SHA1_32, 32, 14),
        (SrtpSuite.AEAD_AES_128_GCM, 16, 12),
        (SrtpSuite.AEAD_AES_256_GCM, 32, 12),
    ],
)
def test_suite_lengths_and_generation(suite: SrtpSuite, key_length: int, salt_length: int) -> None:
    assert (suite.key_length, suite.salt_length) == (key_length, salt_length)
    source = bytes(range(key_length + salt_length))
    crypto = generate_crypto(7, suite, token_bytes=lambda n: source[:n])
    assert crypto.key.key == source[:key_length]
    assert crypto.key.salt == source[key_length:]
    assert crypto.unusable_reason is None
    assert parse_crypto(str(crypto)).key.key_salt == source
    # one byte short or long is refused (RFC 4568 §6.2)
    for wrong in (source[:-1], source + b"\x00"):
        text = f"1 {suite.wire_name} inline:{base64.b64encode(wrong).decode()}"
        with pytest.raises(SdpParseError, match=f"needs a {len(source)}-octet key and salt"):
            parse_crypto(text)


def test_generated_keys_come_from_the_csprng_and_differ() -> None:
    a = generate_crypto(1, SrtpSuite.AES_CM_128_HMAC_SHA1_80)
    b = generate_crypto(1, SrtpSuite.AES_CM_128_HMAC_SHA1_80)
    assert a.key.key_salt != b.key.key_salt
    assert len(a.key.key_salt) == 30


def test_keys_never_in_repr() -> None:
    crypto = generate_crypto(1, SrtpSuite.AEAD_AES_256_GCM, token_bytes=lambda n: b"\xab" * n)
    encoded = base64.b64encode(b"\xab" * 44).decode()
    assert encoded in str(crypto)  # the wire form has it...
    for text in (repr(crypto), repr(crypto.key), repr([crypto]), f"{crypto.key!r}"):
        assert encoded not in text  # ...the repr does not
        assert "abab" not in text and "\\xab" not in text
    assert repr(crypto.key) == (
        "KeyParams(key=<32 bytes>, salt=<12 bytes>, lifetime=None, mki_value=None, mki_length=None)"
    )


def test_unpadded_base64_is_accepted_and_padding_restored() -> None:
    key = bytes(44)
    padded = base64.b64encode(key).decode()
    assert padded.endswith("=")
    crypto = parse_crypto(f"3 AEAD_AES_256_GCM inline:{padded.rstrip('=')}")
    assert crypto.key.key_salt == key
    assert str(crypto) == f"3 AEAD_AES_256_GCM inline:{padded}"


def test_decimal_lifetime_and_session_params() -> None:
    key = base64.b64encode(bytes(30)).decode()
    crypto = parse_crypto(f"2 AES_CM_128_HMAC_SHA1_32 inline:{key}|1048576 WSH=64")
    assert crypto.key.lifetime == 1048576 and crypto.key.lifetime_power is None
    assert crypto.session_params == ("WSH=64",)
    assert crypto.unusable_reason is None
    assert str(crypto) == f"2 AES_CM_128_HMAC_SHA1_32 inline:{key}|1048576 WSH=64"


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ("UNENCRYPTED_SRTP", "session parameter UNENCRYPTED_SRTP switches SRTP protection off"),
        (
            "UNAUTHENTICATED_SRTP",
            "session parameter UNAUTHENTICATED_SRTP switches SRTP protection off",
        ),
        ("UNENCRYPTED_SRTCP", "session parameter UNENCRYPTED_SRTCP switches SRTP protection off"),
        ("KDR=24", "unsupported session parameter KDR"),
        ("FEC_ORDER=FEC_SRTP", "unsupported session parameter FEC_ORDER"),
    ],
)
def test_unusable_session_params(params: str, reason: str) -> None:
    key = base64.b64encode(bytes(30)).decode()
    assert (
        parse_crypto(f"1 AES_CM_128_HMAC_SHA1_80 inline:{key} {params}").unusable_reason == reason
    )


def test_unknown_suite_parses_but_is_unusable() -> None:
    crypto = parse_crypto("1 F8_128_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(30)).decode())
    assert crypto.suite is None
    assert crypto.unusable_reason == "unsupported crypto suite F8_128_HMAC_SHA1_80"


K30 = base64.b64encode(bytes(30)).decode()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1 AES_CM_128_HMAC_SHA1_80", "malformed crypto attribute"),
        (f"x AES_CM_128_HMAC_SHA1_80 inline:{K30}", "invalid tag in crypto attribute"),
        (f"1234567890 AES_CM_128_HMAC_SHA1_80 inline:{K30}", "crypto tag out of range"),
        (f"1 AES-CM inline:{K30}", "malformed crypto suite"),
        (f"1 AES_CM_128_HMAC_SHA1_80 uri:{K30}", "crypto key method is not inline"),
        (f"1 AES_CM_128_HMAC_SHA1_80 {K30}", "crypto key method is not inline"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:", "malformed crypto key-params"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:!!!!", "crypto key is not base64"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:é", "crypto key is not base64"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|2^49", "crypto lifetime out of range"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|2^0", "crypto lifetime out of range"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|0", "crypto lifetime out of range"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|2^x", "invalid lifetime in crypto attribute"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|1:0", "crypto MKI out of range"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|1:129", "crypto MKI out of range"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|256:1", "crypto MKI out of range"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|1:1|2:1", "crypto key-params with two MKIs"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|1:1|2^20", "malformed crypto lifetime"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|2^20|2^20", "malformed crypto lifetime"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|2^20|1:1|x", "malformed crypto key-params"),
        (
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30};inline:{K30}",
            "several crypto key-params need an MKI each (RFC 4568 §6.1)",
        ),
    ],
)
def test_malformed_crypto(value: str, reason: str) -> None:
    with pytest.raises(SdpParseError) as info:
        parse_crypto(value)
    assert info.value.reason == reason


def test_several_key_params_with_mki() -> None:
    value = f"1 AES_CM_128_HMAC_SHA1_80 inline:{K30}|2^20|1:4;inline:{K30}|2^20|2:4"
    crypto = parse_crypto(value)
    assert [k.mki_value for k in crypto.key_params] == [1, 2]
    assert str(crypto) == value
    assert crypto.unusable_reason == "MKI is not supported"


def test_generate_crypto_rejects_a_bad_random_source() -> None:
    with pytest.raises(ValueError, match="wrong number of bytes"):
        generate_crypto(1, SrtpSuite.AES_CM_128_HMAC_SHA1_80, token_bytes=lambda n: b"")


@given(
    st.integers(0, 999_999_999),
    st.sampled_from(list(SrtpSuite)),
    st.binary(min_size=46, max_size=46),
    st.none() | st.integers(1, 48),
)
def test_crypto_round_trip(tag: int, suite: SrtpSuite, material: bytes, power: int | None) -> None:
    key = KeyParams(
        material[: suite.key_length],
        material[suite.key_length : suite.key_salt_length],
        None if power is None else 2**power,
        power,
    )
    crypto = CryptoAttribute(tag, suite.wire_name, (key,))
    parsed = parse_crypto(str(crypto))
    assert parsed == crypto
    assert str(parsed) == str(crypto)
