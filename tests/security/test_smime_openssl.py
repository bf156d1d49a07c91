"""Interop with the real ``openssl cms``: what we produce opens there, and the reverse.

Each test writes PEM files and bodies to ``tmp_path`` and runs the openssl binary. openssl
checks certificates against the real clock, so every verification passes ``-attime`` with the
test PKI's ``NOW``.
"""

from __future__ import annotations

import datetime as dt
import email
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from softphone.security.smime import (
    ENVELOPED_TYPE,
    ProtectionMode,
    SmimeError,
    certs_only,
    decrypt,
    encrypt,
    open_protected_body,
    parse_certs_only,
    protect_sdp,
    sign,
    verify_signed,
)
from tests.conftest import require_peer
from tests.security.pki import NOW, Issued, make_ca, make_leaf, new_key

SDP = (
    b"v=0\r\no=bob 2808844564 2808844564 IN IP4 198.51.100.7\r\ns=-\r\n"
    b"c=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 3456 RTP/SAVP 0 8\r\n"
)
ENTITY = b"Content-Type: application/sdp\r\n\r\n" + SDP
USAGE = frozenset({"digital_signature", "key_encipherment"})
EKU = (ExtendedKeyUsageOID.EMAIL_PROTECTION,)

CA = make_ca("S/MIME Interop Root", key_type="rsa", key_size=2048, slot=7)


def _identity(
    aor: str, *, key_type: str = "rsa", not_after: dt.datetime = NOW + dt.timedelta(days=60)
) -> Issued:
    key = new_key("rsa", 3072) if key_type == "rsa" else new_key("ec", 256)
    return make_leaf(
        CA, uris=[f"sip:{aor}"], key=key, key_usage=USAGE, eku=EKU, not_after=not_after
    )


def rsa_key(issued: Issued) -> rsa.RSAPrivateKey:
    assert isinstance(issued.key, rsa.RSAPrivateKey)
    return issued.key


def signing_key(issued: Issued) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    assert isinstance(issued.key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return issued.key


@pytest.fixture(scope="module")
def alice() -> Issued:
    return _identity("alice@example.test")


@pytest.fixture(scope="module")
def bob() -> Issued:
    return _identity("bob@example.test")


@pytest.fixture(scope="module")
def eve() -> Issued:
    return _identity("eve@example.test")


@pytest.fixture(autouse=True)
def _openssl_present() -> None:
    require_peer("openssl")


class OpenSSL:
    """Runs ``openssl cms`` in one temporary directory holding the PEM files it needs."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        (directory / "ca.pem").write_bytes(CA.cert.public_bytes(serialization.Encoding.PEM))

    def identity(self, name: str, issued: Issued) -> tuple[str, str]:
        cert, key = self.dir / f"{name}.pem", self.dir / f"{name}.key"
        cert.write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(
            issued.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return str(cert), str(key)

    def write(self, name: str, data: bytes) -> str:
        (self.dir / name).write_bytes(data)
        return str(self.dir / name)

    def read(self, name: str) -> bytes:
        return (self.dir / name).read_bytes()

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(
            ["openssl", *args], cwd=self.dir, capture_output=True, timeout=30, check=False
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"openssl {' '.join(args)} failed: {result.stderr.decode(errors='replace')}"
            )
        return result

    def verify(
        self, mime_file: str, *extra: str, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        return self.run(
            "cms", "-verify", "-inform", "SMIME", "-in", mime_file, "-CAfile", "ca.pem",
            "-attime", str(int(NOW.timestamp())), "-out", "verified.out", *extra, check=check,
        )  # fmt: skip


@pytest.fixture
def ossl(tmp_path: Path) -> OpenSSL:
    return OpenSSL(tmp_path)


def _as_mime(content_type: str, body: bytes) -> bytes:
    """Our body as a MIME message openssl can read with ``-inform SMIME``: the SIP message's
    Content-Type as the header, then the body byte for byte."""
    return f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n".encode() + body


def _split_mime(message: bytes) -> tuple[str, bytes]:
    """openssl's S/MIME output → (Content-Type value, body bytes exactly as written)."""
    parsed = email.message_from_bytes(message)
    content_type = " ".join(str(parsed["Content-Type"]).split())
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, body = message.partition(separator)
        if found and b"\n\n" not in head and b"\r\n\r\n" not in head:
            return content_type, body
    raise AssertionError("no end of headers in openssl output")


# --- what we produce, opened by openssl ------------------------------------------------------


@pytest.mark.parametrize("key_type", ["rsa", "ec"])
def test_our_signature_verifies_in_openssl(ossl: OpenSSL, key_type: str, alice: Issued) -> None:
    signer = alice if key_type == "rsa" else _identity("carol@example.test", key_type="ec")
    content_type, body = sign(SDP, "application/sdp", signer.cert, signing_key(signer))
    ossl.verify(ossl.write("signed.eml", _as_mime(content_type, body)))
    assert ossl.read("verified.out") == ENTITY
    # (No -binary here: openssl's S/MIME reader in binary mode rejoins the lines of a part
    # with bare LF. The DER test below hands openssl our exact bytes.)


def test_our_binary_signature_part_verifies_in_openssl_as_der(ossl: OpenSSL, alice: Issued) -> None:
    content_type, body = sign(
        SDP, "application/sdp", alice.cert, rsa_key(alice), signature_encoding="binary"
    )
    from softphone.sip.multipart import parse_multipart

    signed, signature = parse_multipart(body, content_type)
    ossl.write("content", signed.raw)
    ossl.write("sig.der", signature.body)
    ossl.run(
        "cms", "-verify", "-binary", "-inform", "DER", "-in", "sig.der", "-content", "content",
        "-CAfile", "ca.pem", "-attime", str(int(NOW.timestamp())), "-out", "verified.out",
    )  # fmt: skip
    assert ossl.read("verified.out") == ENTITY


def test_openssl_rejects_our_signature_over_tampered_content(ossl: OpenSSL, alice: Issued) -> None:
    content_type, body = sign(SDP, "application/sdp", alice.cert, rsa_key(alice))
    tampered = body.replace(b"3456", b"3458", 1)
    result = ossl.verify(ossl.write("signed.eml", _as_mime(content_type, tampered)), check=False)
    assert result.returncode != 0
    assert (
        b"digest failure" in result.stderr.lower()
        or b"verification failure" in result.stderr.lower()
    )


def test_our_envelope_decrypts_in_openssl(ossl: OpenSSL, bob: Issued) -> None:
    cert, key = ossl.identity("bob", bob)
    content_type, body = encrypt(SDP, "application/sdp", [bob.cert])
    assert content_type == ENVELOPED_TYPE
    ossl.write("env.der", body)
    ossl.run("cms", "-decrypt", "-inform", "DER", "-in", "env.der", "-recip", cert, "-inkey", key,
             "-out", "plain.out")  # fmt: skip
    assert ossl.read("plain.out") == ENTITY


def test_our_sign_and_encrypt_opens_in_openssl(ossl: OpenSSL, alice: Issued, bob: Issued) -> None:
    cert, key = ossl.identity("bob", bob)
    _, body = protect_sdp(
        SDP,
        ProtectionMode.SIGN_AND_ENCRYPT,
        own_cert=alice.cert,
        own_key=rsa_key(alice),
        peer_cert=bob.cert,
    )
    ossl.write("env.der", body)
    ossl.run("cms", "-decrypt", "-inform", "DER", "-in", "env.der", "-recip", cert, "-inkey", key,
             "-out", "signed.eml")  # fmt: skip
    # The decrypted entity is itself a MIME multipart/signed that openssl reads and verifies.
    ossl.verify("signed.eml")
    assert ossl.read("verified.out") == ENTITY


def test_openssl_reads_our_certs_only(ossl: OpenSSL, alice: Issued) -> None:
    _, body = certs_only([alice.cert, CA.cert])
    ossl.write("certs.p7c", body)
    printed = ossl.run("pkcs7", "-inform", "DER", "-in", "certs.p7c", "-print_certs").stdout
    assert printed.count(b"-----BEGIN CERTIFICATE-----") == 2
    assert b"S/MIME Interop Root" in printed


def test_openssl_rejects_our_expired_signer_too(ossl: OpenSSL) -> None:
    old = _identity("old@example.test", not_after=NOW - dt.timedelta(days=1))
    content_type, body = sign(SDP, "application/sdp", old.cert, rsa_key(old))
    result = ossl.verify(ossl.write("signed.eml", _as_mime(content_type, body)), check=False)
    assert result.returncode != 0 and b"expired" in result.stderr
    with pytest.raises(SmimeError, match="signer certificate expired"):
        verify_signed(content_type, body, now=NOW)


# --- what openssl produces, opened by us ------------------------------------------------------


def _openssl_sign(ossl: OpenSSL, signer: Issued, *flags: str) -> tuple[str, bytes]:
    cert, key = ossl.identity("signer", signer)
    ossl.write("entity", ENTITY)
    ossl.run("cms", "-sign", "-md", "sha256", "-in", "entity", "-signer", cert, "-inkey", key,
             "-outform", "SMIME", "-out", "signed.eml", *flags)  # fmt: skip
    return _split_mime(ossl.read("signed.eml"))


@pytest.mark.parametrize(
    ("key_type", "flags"),
    [("rsa", ("-binary",)), ("rsa", ("-crlfeol",)), ("ec", ("-binary",)),
     ("rsa", ("-binary", "-keyopt", "rsa_padding_mode:pss"))],
)  # fmt: skip
def test_openssl_signature_verifies_here(
    ossl: OpenSSL, alice: Issued, key_type: str, flags: tuple[str, ...]
) -> None:
    signer = alice if key_type == "rsa" else _identity("carol@example.test", key_type="ec")
    content_type, body = _openssl_sign(ossl, signer, *flags)
    assert content_type.startswith("multipart/signed")
    verified = verify_signed(content_type, body, now=NOW)
    assert verified.body == SDP
    assert verified.media_type == "application/sdp"
    assert verified.signer == signer.cert
    assert verified.signing_time is not None


def test_openssl_signature_over_tampered_sdp_is_rejected(ossl: OpenSSL, alice: Issued) -> None:
    content_type, body = _openssl_sign(ossl, alice, "-binary")
    assert verify_signed(content_type, body, now=NOW).body == SDP  # the untouched body is fine
    tampered = body.replace(b"198.51.100.7", b"203.0.113.66", 1)
    with pytest.raises(SmimeError) as caught:
        verify_signed(content_type, tampered, now=NOW)
    assert caught.value.status_code == 493
    assert "signature does not match the content" in caught.value.reason


def test_openssl_signature_by_expired_signer_is_rejected(ossl: OpenSSL) -> None:
    old = _identity("old@example.test", not_after=NOW - dt.timedelta(days=1))
    content_type, body = _openssl_sign(ossl, old, "-binary")
    with pytest.raises(SmimeError, match="signer certificate expired"):
        verify_signed(content_type, body, now=NOW)


def test_openssl_signature_without_certificate_is_rejected(ossl: OpenSSL, alice: Issued) -> None:
    content_type, body = _openssl_sign(ossl, alice, "-binary", "-nocerts")
    with pytest.raises(SmimeError, match="signer certificate not included"):
        verify_signed(content_type, body, now=NOW)


def test_openssl_opaque_signed_data_opens_here(ossl: OpenSSL, alice: Issued) -> None:
    cert, key = ossl.identity("signer", alice)
    ossl.write("entity", ENTITY)
    ossl.run("cms", "-sign", "-nodetach", "-binary", "-md", "sha256", "-in", "entity",
             "-signer", cert, "-inkey", key, "-outform", "DER", "-out", "opaque.der")  # fmt: skip
    opened = open_protected_body(
        "application/pkcs7-mime; smime-type=signed-data; name=smime.p7m",
        ossl.read("opaque.der"),
        own_cert=None,
        own_key=None,
        now=NOW,
    )
    assert opened.body == SDP and opened.signed and opened.signer_chain is not None
    assert opened.signer_chain[0] == alice.cert


def test_openssl_envelope_decrypts_here(ossl: OpenSSL, bob: Issued) -> None:
    cert, _ = ossl.identity("bob", bob)
    ossl.write("entity", ENTITY)
    ossl.run("cms", "-encrypt", "-aes256", "-binary", "-in", "entity", "-outform", "DER",
             "-out", "env.der", cert)  # fmt: skip
    assert decrypt(ossl.read("env.der"), bob.cert, rsa_key(bob)) == ("application/sdp", SDP)


def test_openssl_envelope_for_another_recipient_is_493(
    ossl: OpenSSL, bob: Issued, eve: Issued
) -> None:
    eve_cert, _ = ossl.identity("eve", eve)
    ossl.write("entity", ENTITY)
    ossl.run("cms", "-encrypt", "-aes256", "-binary", "-in", "entity", "-outform", "DER",
             "-out", "env.der", eve_cert)  # fmt: skip
    with pytest.raises(SmimeError) as caught:
        decrypt(ossl.read("env.der"), bob.cert, rsa_key(bob))
    assert caught.value.status_code == 493
    assert "not encrypted for our certificate" in caught.value.reason
    with pytest.raises(SmimeError) as caught:
        open_protected_body(
            ENVELOPED_TYPE, ossl.read("env.der"), own_cert=bob.cert, own_key=rsa_key(bob), now=NOW
        )
    assert caught.value.status_code == 493


def test_openssl_sign_then_encrypt_opens_here(ossl: OpenSSL, alice: Issued, bob: Issued) -> None:
    _openssl_sign(ossl, alice, "-binary")  # leaves signed.eml: a whole MIME entity
    bob_cert, _ = ossl.identity("bob", bob)
    ossl.run("cms", "-encrypt", "-aes256", "-binary", "-in", "signed.eml", "-outform", "DER",
             "-out", "env.der", bob_cert)  # fmt: skip
    opened = open_protected_body(
        "application/pkcs7-mime; smime-type=enveloped-data",
        ossl.read("env.der"),
        own_cert=bob.cert,
        own_key=rsa_key(bob),
        now=NOW,
    )
    assert opened.body == SDP
    assert opened.signed and opened.encrypted and opened.meets("sign+encrypt")
    assert opened.signer_chain is not None and opened.signer_chain[0] == alice.cert


def test_openssl_certs_only_parses_here(ossl: OpenSSL, alice: Issued) -> None:
    ossl.identity("alice", alice)
    ossl.run("crl2pkcs7", "-nocrl", "-certfile", "ca.pem", "-certfile", "alice.pem",
             "-outform", "DER", "-out", "certs.p7c")  # fmt: skip
    certs = parse_certs_only(ossl.read("certs.p7c"))
    assert certs[0] == alice.cert and certs[1:] == [CA.cert]
    assert all(isinstance(c, x509.Certificate) for c in certs)
