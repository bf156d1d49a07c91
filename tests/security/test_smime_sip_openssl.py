"""S/MIME SIP messages against the real ``openssl cms``: bodies of the INVITEs we build open
there, and bodies openssl makes, put in a SIP message, get the right verdict here (tampered,
wrong recipient, expired signer included). openssl checks against ``-attime NOW``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from softphone.security.ledger import Seen, TrustLedger
from softphone.security.smime_sip import (
    Verdict,
    protect_message,
    undecipherable_response,
    verify_message,
)
from softphone.sip.message import Request
from softphone.sip.parser import parse_message
from tests.conftest import require_peer
from tests.security.pki import NOW, Issued
from tests.security.test_smime_openssl import (
    CA,
    ENTITY,
    SDP,
    OpenSSL,
    _as_mime,
    _identity,
    _split_mime,
)
from tests.security.test_smime_sip import invite, rsa_key


@pytest.fixture(autouse=True)
def _openssl_present() -> None:
    require_peer("openssl")


@pytest.fixture(scope="module")
def alice() -> Issued:
    return _identity("alice@example.test")


@pytest.fixture(scope="module")
def bob() -> Issued:
    return _identity("bob@example.test")


@pytest.fixture(scope="module")
def eve() -> Issued:
    return _identity("eve@example.test")


@pytest.fixture
def ossl(tmp_path: Path) -> OpenSSL:
    return OpenSSL(tmp_path)


def _ledger(*people: tuple[str, Issued]) -> TrustLedger:
    ledger = TrustLedger()
    for aor, person in people:
        ledger.observe(aor, person.cert, Seen.SMIME, NOW)
    return ledger


def _sip_with_body(content_type: str, body: bytes) -> Request:
    message = invite()
    message.headers.set("Content-Type", content_type)
    message.body = body
    parsed = parse_message(bytes(message))
    assert isinstance(parsed, Request)
    return parsed


# --- ours, opened by openssl --------------------------------------------------------------------


def test_our_signed_tunnelled_invite_verifies_in_openssl(ossl: OpenSSL, alice: Issued) -> None:
    sent = protect_message(
        invite(), SDP, "sign", own_cert=alice.cert, own_key=rsa_key(alice), now=NOW
    )
    wire = parse_message(bytes(sent))
    ossl.verify(
        ossl.write("signed.eml", _as_mime(wire.headers.get("Content-Type") or "", wire.body))
    )
    verified = ossl.read("verified.out")
    # The signed entity is the §23.4 message/sip copy carrying the SDP.
    assert verified.startswith(b"Content-Type: message/sip\r\n\r\nINVITE sip:bob@example.test")
    assert b"Call-ID: a84b4c76e66710@pc33.example.test\r\n" in verified
    assert b"Date: Sun, 01 Jun 2025 12:00:00 GMT\r\n" in verified
    assert verified.endswith(SDP)


def test_our_signed_and_encrypted_invite_opens_in_openssl(
    ossl: OpenSSL, alice: Issued, bob: Issued
) -> None:
    cert, key = ossl.identity("bob", bob)
    sent = protect_message(
        invite(),
        SDP,
        "sign+encrypt",
        own_cert=alice.cert,
        own_key=rsa_key(alice),
        peer_cert=bob.cert,
        now=NOW,
    )
    ossl.write("env.der", parse_message(bytes(sent)).body)
    ossl.run("cms", "-decrypt", "-inform", "DER", "-in", "env.der", "-recip", cert, "-inkey", key,
             "-out", "signed.eml")  # fmt: skip
    ossl.verify("signed.eml")
    assert ossl.read("verified.out").endswith(SDP)


def test_our_493_certs_only_reads_in_openssl(ossl: OpenSSL, bob: Issued) -> None:
    response = undecipherable_response(invite(), [bob.cert, CA.cert], to_tag="x1")
    ossl.write("certs.p7c", parse_message(bytes(response)).body)
    printed = ossl.run("pkcs7", "-inform", "DER", "-in", "certs.p7c", "-print_certs").stdout
    assert printed.count(b"-----BEGIN CERTIFICATE-----") == 2
    assert bob.cert.public_bytes(serialization.Encoding.PEM).strip() in printed.replace(b"\r", b"")


# --- openssl's, judged here -----------------------------------------------------------------------


def _openssl_signed(ossl: OpenSSL, signer: Issued) -> tuple[str, bytes]:
    cert, key = ossl.identity("signer", signer)
    ossl.write("entity", ENTITY)
    ossl.run("cms", "-sign", "-binary", "-md", "sha256", "-in", "entity", "-signer", cert,
             "-inkey", key, "-outform", "SMIME", "-out", "signed.eml")  # fmt: skip
    return _split_mime(ossl.read("signed.eml"))


def test_openssl_signed_sdp_in_an_invite_is_ok(ossl: OpenSSL, alice: Issued) -> None:
    message = _sip_with_body(*_openssl_signed(ossl, alice))
    ledger = _ledger(("sip:alice@example.test", alice))
    verdict = verify_message(message, now=NOW, ledger=ledger, required="sign")
    assert verdict.verdict is Verdict.OK, verdict.reason
    assert verdict.sdp == SDP and verdict.signer == alice.cert and not verdict.tunnelled
    # Without the ledger, only a CA the user configured can vouch for Alice.
    assert verify_message(message, now=NOW).verdict is Verdict.UNKNOWN_SIGNER
    assert verify_message(message, now=NOW, anchors=[CA.cert]).ok


def test_openssl_signed_sdp_tampered_is_a_bad_signature(ossl: OpenSSL, alice: Issued) -> None:
    content_type, body = _openssl_signed(ossl, alice)
    tampered = _sip_with_body(content_type, body.replace(b"198.51.100.7", b"203.0.113.66", 1))
    verdict = verify_message(tampered, now=NOW, ledger=_ledger(("sip:alice@example.test", alice)))
    assert verdict.verdict is Verdict.BAD_SIGNATURE and verdict.status_code == 493


def test_openssl_signed_by_someone_else_than_from(ossl: OpenSSL, eve: Issued) -> None:
    message = _sip_with_body(*_openssl_signed(ossl, eve))  # From is Alice
    verdict = verify_message(message, now=NOW, ledger=_ledger(("sip:eve@example.test", eve)))
    assert verdict.verdict is Verdict.SIGNER_NOT_FROM


def test_openssl_signed_by_an_expired_signer(ossl: OpenSSL) -> None:
    old = _identity("alice@example.test", not_after=NOW - dt.timedelta(days=1))
    message = _sip_with_body(*_openssl_signed(ossl, old))
    verdict = verify_message(message, now=NOW, ledger=_ledger(("sip:alice@example.test", old)))
    assert verdict.verdict is Verdict.EXPIRED_SIGNER


def test_openssl_sign_then_encrypt_opens_here(ossl: OpenSSL, alice: Issued, bob: Issued) -> None:
    _openssl_signed(ossl, alice)  # leaves signed.eml, a whole MIME entity
    bob_cert, _ = ossl.identity("bob", bob)
    ossl.run("cms", "-encrypt", "-aes256", "-binary", "-in", "signed.eml", "-outform", "DER",
             "-out", "env.der", bob_cert)  # fmt: skip
    message = _sip_with_body(
        "application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m", ossl.read("env.der")
    )
    verdict = verify_message(
        message,
        now=NOW,
        own_cert=bob.cert,
        own_key=rsa_key(bob),
        required="sign+encrypt",
        ledger=_ledger(("sip:alice@example.test", alice)),
    )
    assert verdict.ok, verdict.reason
    assert verdict.sdp == SDP and verdict.signed and verdict.encrypted


def test_openssl_envelope_for_another_recipient_is_undecipherable(
    ossl: OpenSSL, bob: Issued, eve: Issued
) -> None:
    eve_cert, _ = ossl.identity("eve", eve)
    ossl.write("entity", ENTITY)
    ossl.run("cms", "-encrypt", "-aes256", "-binary", "-in", "entity", "-outform", "DER",
             "-out", "env.der", eve_cert)  # fmt: skip
    message = _sip_with_body(
        "application/pkcs7-mime; smime-type=enveloped-data", ossl.read("env.der")
    )
    verdict = verify_message(message, now=NOW, own_cert=bob.cert, own_key=rsa_key(bob))
    assert verdict.verdict is Verdict.DECRYPTION_FAILED and verdict.status_code == 493
    answer = undecipherable_response(message, [bob.cert])
    assert answer.status_code == 493 and answer.body  # carries Bob's certificate


def test_openssl_encrypted_only_meets_an_encrypt_free_setting_only(
    ossl: OpenSSL, bob: Issued
) -> None:
    bob_cert, _ = ossl.identity("bob", bob)
    ossl.write("entity", ENTITY)
    ossl.run("cms", "-encrypt", "-aes128", "-binary", "-in", "entity", "-outform", "DER",
             "-out", "env.der", bob_cert)  # fmt: skip
    message = _sip_with_body(
        "application/pkcs7-mime; smime-type=enveloped-data", ossl.read("env.der")
    )
    opened = verify_message(message, now=NOW, own_cert=bob.cert, own_key=rsa_key(bob))
    assert opened.ok and opened.encrypted and not opened.signed and opened.sdp == SDP
    demanding = verify_message(
        message, now=NOW, own_cert=bob.cert, own_key=rsa_key(bob), required="sign"
    )
    assert demanding.verdict is Verdict.NOT_PROTECTED
