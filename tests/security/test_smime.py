"""S/MIME bodies (RFC 3261 §23, RFC 8551): certs-only, signing, enveloping, tunnelling.

Identities are RSA-3072 (S/MIME encryption needs RSA) generated once per module; every
tampering case checks the precise reason, so that a test cannot pass for the wrong cause.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID

from softphone.security import Identity, Purpose, evaluate
from softphone.security.smime import (
    CERTS_ONLY_TYPE,
    ENVELOPED_TYPE,
    OpenedBody,
    ProtectionMode,
    SmimeError,
    certs_only,
    check_tunnelled_headers,
    decrypt,
    encrypt,
    open_protected_body,
    parse_certs_only,
    protect_sdp,
    sign,
    tunnel_copy,
    verify_signed,
)
from softphone.security.smime_verify import parse_entity, verify_signed_data
from softphone.sip.errors import LocalProtocolError, RemoteProtocolError
from softphone.sip.message import Headers, Request, Response
from softphone.sip.multipart import parse_content_type, parse_multipart
from softphone.sip.uri import parse_uri
from tests.security.pki import NOW, Issued, make_ca, make_leaf, new_key

SDP = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\n"
    b"c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/SAVP 0\r\n"
    b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n"
)
SMIME_USAGE = frozenset({"digital_signature", "key_encipherment"})
EMAIL = (ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.CLIENT_AUTH)
DATE = "Sun, 01 Jun 2025 12:00:00 GMT"

CA = make_ca("S/MIME Test Root")


def _identity(
    aor: str,
    key_type: str = "rsa",
    *,
    not_after: dt.datetime = NOW + dt.timedelta(days=60),
    key_usage: frozenset[str] = SMIME_USAGE,
) -> Issued:
    key = new_key("rsa", 3072) if key_type == "rsa" else new_key("ec", 256)
    return make_leaf(
        CA, uris=[f"sip:{aor}"], key=key, eku=EMAIL, not_after=not_after, key_usage=key_usage
    )


@pytest.fixture(scope="module")
def alice() -> Issued:
    return _identity("alice@example.test")


@pytest.fixture(scope="module")
def bob() -> Issued:
    return _identity("bob@example.test")


@pytest.fixture(scope="module")
def eve() -> Issued:
    return _identity("eve@example.test")


def rsa_key(issued: Issued) -> rsa.RSAPrivateKey:
    assert isinstance(issued.key, rsa.RSAPrivateKey)
    return issued.key


def signing_key(issued: Issued) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    assert isinstance(issued.key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return issued.key


# --- helpers that take a signed body apart ---------------------------------------------------


def _signature_der(content_type: str, body: bytes) -> bytes:
    part = parse_multipart(body, content_type)[1]
    return base64.b64decode(b"".join(part.body.split()))


def _replace_signature(content_type: str, body: bytes, der: bytes) -> bytes:
    old = parse_multipart(body, content_type)[1].body
    new = base64.encodebytes(der).replace(b"\n", b"\r\n").rstrip()
    assert body.count(old) == 1
    return body.replace(old, new)


def _edit_cms(content_type: str, body: bytes, edit: Callable[[cms.SignedData], None]) -> bytes:
    info = cms.ContentInfo.load(_signature_der(content_type, body))
    edit(info["content"])
    return _replace_signature(content_type, body, info.dump(force=True))


# --- certs-only (§23.2) ----------------------------------------------------------------------


def test_certs_only_round_trip(alice: Issued) -> None:
    content_type, body = certs_only([alice.cert, CA.cert])
    assert content_type == CERTS_ONLY_TYPE
    assert parse_content_type(content_type)[1]["smime-type"] == "certs-only"
    assert parse_certs_only(body) == [alice.cert, CA.cert]
    assert parse_certs_only(base64.encodebytes(body)) == [alice.cert, CA.cert]


def test_certs_only_refuses_nothing_and_garbage() -> None:
    with pytest.raises(LocalProtocolError):
        certs_only([])
    with pytest.raises(SmimeError) as caught:
        parse_certs_only(b"\x30\x03\x02\x01\x00")
    assert caught.value.status_code == 400
    assert isinstance(caught.value, RemoteProtocolError)


# --- signing ----------------------------------------------------------------------------------


def test_sign_and_verify_round_trip(alice: Issued) -> None:
    content_type, body = sign(
        SDP, "application/sdp", alice.cert, rsa_key(alice), extra_certs=[CA.cert]
    )
    media, params = parse_content_type(content_type)
    assert media == "multipart/signed"
    assert params["protocol"] == "application/pkcs7-signature"
    assert params["micalg"] == "sha-256"
    first = parse_multipart(body, content_type)[0]
    assert first.raw == b"Content-Type: application/sdp\r\n\r\n" + SDP
    verified = verify_signed(content_type, body, now=NOW)
    assert verified.media_type == "application/sdp"
    assert verified.body == SDP
    assert verified.signer == alice.cert
    assert verified.signer_chain == (alice.cert, CA.cert)
    assert verified.signing_time is not None
    # The digest algorithm really is SHA-256 (micalg is only a hint).
    signer_info = cms.ContentInfo.load(_signature_der(content_type, body))["content"][
        "signer_infos"
    ][0]
    assert signer_info["digest_algorithm"]["algorithm"].native == "sha256"


def test_signer_chain_feeds_trust_evaluation(alice: Issued) -> None:
    content_type, body = sign(SDP, "application/sdp", alice.cert, rsa_key(alice))
    verified = verify_signed(content_type, body, now=NOW)
    ok = evaluate(
        verified.signer_chain,
        Identity.aor("sip:alice@example.test"),
        now=NOW,
        anchors=[CA.cert],
        purpose=Purpose.CLIENT,
    )
    assert ok.acceptable, ok.messages
    impostor = evaluate(
        verified.signer_chain,
        Identity.aor("sip:bob@example.test"),
        now=NOW,
        anchors=[CA.cert],
        purpose=Purpose.CLIENT,
    )
    assert not impostor.acceptable


def test_ecdsa_signer_verifies() -> None:
    signer = _identity("carol@example.test", key_type="ec")
    content_type, body = sign(SDP, "application/sdp", signer.cert, signing_key(signer))
    verified = verify_signed(content_type, body, now=NOW)
    assert verified.body == SDP
    assert verified.signer == signer.cert


def test_rsa_pss_signer_verifies(alice: Issued) -> None:
    content_type, body = sign(SDP, "application/sdp", alice.cert, rsa_key(alice), rsa_padding="pss")
    signer_info = cms.ContentInfo.load(_signature_der(content_type, body))["content"][
        "signer_infos"
    ][0]
    assert signer_info["signature_algorithm"].signature_algo == "rsassa_pss"
    assert verify_signed(content_type, body, now=NOW).body == SDP


def test_binary_signature_part_verifies(alice: Issued) -> None:
    content_type, body = sign(
        SDP,
        "application/sdp",
        alice.cert,
        rsa_key(alice),
        signature_encoding="binary",
    )
    part = parse_multipart(body, content_type)[1]
    assert part.headers.get("Content-Transfer-Encoding") == "binary"
    assert part.body[:1] == b"\x30"
    assert verify_signed(content_type, body, now=NOW).body == SDP


def test_lf_only_content_is_canonicalised(alice: Issued) -> None:
    lf_sdp = SDP.replace(b"\r\n", b"\n")
    content_type, body = sign(lf_sdp, "application/sdp", alice.cert, rsa_key(alice))
    verified = verify_signed(content_type, body, now=NOW)
    assert verified.body == SDP
    assert re.search(rb"(?<!\r)\n", verified.signed_entity) is None


def test_binary_content_is_not_canonicalised(alice: Issued) -> None:
    data = b"\x00\n\x01\r\n\x02\n"
    content_type, body = sign(data, "application/octet-stream", alice.cert, rsa_key(alice))
    assert verify_signed(content_type, body, now=NOW).body == data


def test_sign_refuses_a_key_that_is_not_the_certificates(alice: Issued, bob: Issued) -> None:
    with pytest.raises(LocalProtocolError, match="does not belong"):
        sign(SDP, "application/sdp", alice.cert, rsa_key(bob))
    ed = new_key("ed25519")
    with pytest.raises(LocalProtocolError, match="RSA or ECDSA"):
        sign(SDP, "application/sdp", alice.cert, ed)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        sign(SDP, "application/sdp\r\nX-Evil: 1", alice.cert, rsa_key(alice))


# --- verification failures: each with its own reason ----------------------------------------


@pytest.fixture(scope="module")
def signed(alice: Issued) -> tuple[str, bytes]:
    return sign(SDP, "application/sdp", alice.cert, rsa_key(alice))


def _rejects(content_type: str, body: bytes, reason: str, now: dt.datetime = NOW) -> SmimeError:
    with pytest.raises(SmimeError) as caught:
        verify_signed(content_type, body, now=now)
    assert reason in caught.value.reason
    assert caught.value.status_code == 493
    return caught.value


def test_tampered_sdp_byte_is_rejected(signed: tuple[str, bytes]) -> None:
    content_type, body = signed
    tampered = body.replace(b"49170", b"49172", 1)
    assert tampered != body
    _rejects(content_type, tampered, "signature does not match the content")


def test_tampered_header_of_signed_part_is_rejected(signed: tuple[str, bytes]) -> None:
    content_type, body = signed
    tampered = body.replace(b"Content-Type: application/sdp", b"Content-Type: application/SDP")
    _rejects(content_type, tampered, "signature does not match the content")


def test_tampered_signature_is_rejected(signed: tuple[str, bytes]) -> None:
    content_type, body = signed

    def flip(signed_data: cms.SignedData) -> None:
        signer_info = signed_data["signer_infos"][0]
        value = bytearray(signer_info["signature"].native)
        value[10] ^= 0x01
        signer_info["signature"] = bytes(value)

    _rejects(content_type, _edit_cms(content_type, body, flip), "bad signature")


def test_tampered_signed_attribute_is_rejected(signed: tuple[str, bytes]) -> None:
    content_type, body = signed

    def later(signed_data: cms.SignedData) -> None:
        for attr in signed_data["signer_infos"][0]["signed_attrs"]:
            if attr["type"].native == "signing_time":
                attr["values"] = [cms.Time({"utc_time": NOW})]

    _rejects(content_type, _edit_cms(content_type, body, later), "bad signature")


def test_signer_certificate_not_included(signed: tuple[str, bytes]) -> None:
    content_type, body = signed

    def strip(signed_data: cms.SignedData) -> None:
        signed_data["certificates"] = cms.CertificateSet([])

    _rejects(content_type, _edit_cms(content_type, body, strip), "signer certificate not included")


def test_signer_named_by_another_certificate(alice: Issued, bob: Issued) -> None:
    # A signature whose SignerInfo names alice but carries only bob's certificate.
    content_type, body = sign(SDP, "application/sdp", alice.cert, rsa_key(alice))
    bob_der = bob.cert.public_bytes(serialization.Encoding.DER)

    def swap(signed_data: cms.SignedData) -> None:
        signed_data["certificates"] = cms.CertificateSet(
            [cms.CertificateChoices({"certificate": cms.Certificate.load(bob_der)})]
        )

    _rejects(content_type, _edit_cms(content_type, body, swap), "signer certificate not included")


def test_expired_and_not_yet_valid_signer() -> None:
    old = _identity("old@example.test", not_after=NOW - dt.timedelta(days=1))
    content_type, body = sign(SDP, "application/sdp", old.cert, rsa_key(old))
    _rejects(content_type, body, "signer certificate expired")
    # The same body verifies at a time the certificate was valid: only the date is wrong.
    assert verify_signed(content_type, body, now=NOW - dt.timedelta(days=2)).body == SDP
    _rejects(content_type, body, "not yet valid", now=NOW - dt.timedelta(days=365))


def test_signer_whose_key_usage_forbids_signing() -> None:
    encrypt_only = _identity("enc@example.test", key_usage=frozenset({"key_encipherment"}))
    content_type, body = sign(SDP, "application/sdp", encrypt_only.cert, rsa_key(encrypt_only))
    _rejects(content_type, body, "key usage")


def test_weak_digest_is_refused(alice: Issued) -> None:
    entity = b"Content-Type: application/sdp\r\n\r\n" + SDP
    der = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(entity)
        .add_signer(alice.cert, rsa_key(alice), hashes.SHA224())
        .sign(
            serialization.Encoding.DER,
            [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
        )
    )
    with pytest.raises(SmimeError, match="sha224 is not accepted"):
        verify_signed_data(der, now=NOW, detached_content=entity)


def test_signature_without_attributes_covers_the_content(alice: Issued) -> None:
    entity = b"Content-Type: application/sdp\r\n\r\n" + SDP
    der = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(entity)
        .add_signer(alice.cert, rsa_key(alice), hashes.SHA256())
        .sign(
            serialization.Encoding.DER,
            [
                pkcs7.PKCS7Options.DetachedSignature,
                pkcs7.PKCS7Options.Binary,
                pkcs7.PKCS7Options.NoAttributes,
            ],
        )
    )
    chain, signing_time = verify_signed_data(der, now=NOW, detached_content=entity)
    assert chain[0] == alice.cert and signing_time is None
    with pytest.raises(SmimeError, match="bad signature"):
        verify_signed_data(der, now=NOW, detached_content=entity + b" ")


def test_embedded_content_in_multipart_signed_is_refused(alice: Issued) -> None:
    entity = b"Content-Type: application/sdp\r\n\r\n" + SDP
    der = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(entity)
        .add_signer(alice.cert, rsa_key(alice), hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )
    with pytest.raises(SmimeError, match="embedded content"):
        verify_signed_data(der, now=NOW, detached_content=entity)
    # ... but it is exactly the opaque form (smime-type=signed-data).
    opened = open_protected_body(
        "application/pkcs7-mime; smime-type=signed-data; name=smime.p7m",
        der,
        own_cert=None,
        own_key=None,
        now=NOW,
    )
    assert opened.signed and not opened.encrypted and opened.body == SDP


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda ct, b: (ct.replace("application/pkcs7-signature", "text/plain"), b), "protocol"),
        (lambda ct, b: (ct.replace("multipart/signed", "multipart/mixed"), b), "not a multipart"),
        (lambda ct, b: (re.sub(r";boundary=[^;]*", "", ct), b), "malformed multipart"),
        (lambda ct, b: (ct, b[: b.rfind(b"--", 0, len(b) - 4)]), "malformed multipart"),
        (lambda ct, b: (ct, b.replace(b"MII", b"!!!", 1)), "not valid base64"),
        (lambda ct, b: (ct, re.sub(rb"\r\nMII[^-]*", b"\r\nAAAA\r\n", b)), "malformed CMS"),
    ],
)
def test_malformed_signed_bodies(
    signed: tuple[str, bytes],
    mutate: Callable[[str, bytes], tuple[str, bytes]],
    reason: str,
) -> None:
    content_type, body = mutate(*signed)
    with pytest.raises(SmimeError) as caught:
        verify_signed(content_type, body, now=NOW)
    assert reason in caught.value.reason


def test_parse_entity_decodes_base64_and_refuses_unknown_encodings() -> None:
    entity = (
        b"Content-Type: application/sdp\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(SDP)
    )
    assert parse_entity(entity) == ("application/sdp", SDP)
    assert parse_entity(b"\r\nhello") == ("text/plain", b"hello")
    with pytest.raises(SmimeError, match="Content-Transfer-Encoding"):
        parse_entity(b"Content-Transfer-Encoding: x-uuencode\r\n\r\nx")
    with pytest.raises(SmimeError, match="no empty line"):
        parse_entity(b"Content-Type: application/sdp")


# --- encryption ------------------------------------------------------------------------------


def test_encrypt_and_decrypt_round_trip(bob: Issued) -> None:
    content_type, body = encrypt(SDP, "application/sdp", [bob.cert])
    assert content_type == ENVELOPED_TYPE
    assert parse_content_type(content_type)[1]["smime-type"] == "enveloped-data"
    assert SDP[:20] not in body
    algorithm = cms.ContentInfo.load(body)["content"]["encrypted_content_info"][
        "content_encryption_algorithm"
    ]
    assert algorithm["algorithm"].native == "aes256_cbc"
    assert decrypt(body, bob.cert, rsa_key(bob)) == ("application/sdp", SDP)
    assert decrypt(base64.encodebytes(body), bob.cert, rsa_key(bob))[1] == SDP


def test_aes128_and_several_recipients(alice: Issued, bob: Issued) -> None:
    _, body = encrypt(SDP, "application/sdp", [alice.cert, bob.cert], cipher="aes128")
    assert decrypt(body, alice.cert, rsa_key(alice))[1] == SDP
    assert decrypt(body, bob.cert, rsa_key(bob))[1] == SDP


def test_wrong_recipient_is_undecipherable(bob: Issued, eve: Issued) -> None:
    _, body = encrypt(SDP, "application/sdp", [bob.cert])
    with pytest.raises(SmimeError) as caught:
        decrypt(body, eve.cert, rsa_key(eve))
    assert caught.value.status_code == 493
    assert "not encrypted for our certificate" in caught.value.reason


def test_garbled_envelope_is_undecipherable(bob: Issued) -> None:
    _, body = encrypt(SDP, "application/sdp", [bob.cert])
    for garbled in (body[:-40], b"\x30\x03\x02\x01\x00", b"not even der"):
        with pytest.raises(SmimeError) as caught:
            decrypt(garbled, bob.cert, rsa_key(bob))
        assert caught.value.status_code == 493


def test_non_rsa_recipient_is_a_clear_local_error() -> None:
    ec_peer = _identity("ecpeer@example.test", key_type="ec")
    with pytest.raises(LocalProtocolError, match="needs an RSA recipient certificate") as caught:
        encrypt(SDP, "application/sdp", [ec_peer.cert])
    assert "ecpeer@example.test has an EC P-256 key" in str(caught.value)
    with pytest.raises(LocalProtocolError, match="RSA key"):
        decrypt(b"\x30\x00", ec_peer.cert, ec_peer.key)  # type: ignore[arg-type]


# --- protect_sdp / open_protected_body -------------------------------------------------------


def _open(content_type: str, body: bytes, me: Issued, outer: Request | None = None) -> OpenedBody:
    return open_protected_body(
        content_type, body, own_cert=me.cert, own_key=rsa_key(me), now=NOW, outer=outer
    )


@pytest.mark.parametrize(
    ("mode", "signed_flag", "encrypted_flag"),
    [
        (ProtectionMode.OFF, False, False),
        (ProtectionMode.SIGN, True, False),
        (ProtectionMode.SIGN_AND_ENCRYPT, True, True),
    ],
)
def test_each_mode_round_trips(
    alice: Issued, bob: Issued, mode: ProtectionMode, signed_flag: bool, encrypted_flag: bool
) -> None:
    content_type, body = protect_sdp(
        SDP,
        mode,
        own_cert=alice.cert,
        own_key=rsa_key(alice),
        peer_cert=bob.cert,
    )
    if mode is ProtectionMode.SIGN_AND_ENCRYPT:
        assert content_type == ENVELOPED_TYPE
        # Sign, then encrypt (RFC 8551 §3.6): the decrypted entity is the multipart/signed.
        inner_type, _ = decrypt(body, bob.cert, rsa_key(bob))
        assert parse_content_type(inner_type)[0] == "multipart/signed"
    opened = _open(content_type, body, bob)
    assert opened.body == SDP
    assert opened.media_type == "application/sdp"
    assert (opened.signed, opened.encrypted) == (signed_flag, encrypted_flag)
    assert opened.meets(mode)
    if signed_flag:
        assert opened.signer_chain is not None and opened.signer_chain[0] == alice.cert
    else:
        assert opened.signer_chain is None


def test_mode_requirements(alice: Issued, bob: Issued) -> None:
    _, plain = protect_sdp(SDP, "off", own_cert=None, own_key=None)
    opened = _open("application/sdp", plain, bob)
    assert not opened.meets("sign") and opened.meets("off")
    content_type, body = encrypt(SDP, "application/sdp", [bob.cert])  # encrypted, unsigned
    opened = _open(content_type, body, bob)
    assert opened.encrypted and not opened.signed
    assert not opened.meets(ProtectionMode.SIGN_AND_ENCRYPT)
    with pytest.raises(LocalProtocolError, match="peer's certificate"):
        protect_sdp(SDP, "sign+encrypt", own_cert=alice.cert, own_key=rsa_key(alice))
    with pytest.raises(LocalProtocolError):
        protect_sdp(SDP, "sign", own_cert=None, own_key=None)
    with pytest.raises(ValueError):
        protect_sdp(SDP, "encrypt-only", own_cert=None, own_key=None)


def test_sign_and_encrypt_for_someone_else_is_493(alice: Issued, bob: Issued, eve: Issued) -> None:
    content_type, body = protect_sdp(
        SDP,
        "sign+encrypt",
        own_cert=alice.cert,
        own_key=rsa_key(alice),
        peer_cert=bob.cert,
    )
    with pytest.raises(SmimeError) as caught:
        _open(content_type, body, eve)
    assert caught.value.status_code == 493
    with pytest.raises(SmimeError, match="no S/MIME key"):
        open_protected_body(content_type, body, own_cert=None, own_key=None, now=NOW)


def test_tampered_signed_body_inside_envelope_is_rejected(alice: Issued, bob: Issued) -> None:
    signed_type, signed_body = sign(SDP, "application/sdp", alice.cert, rsa_key(alice))
    tampered = signed_body.replace(b"192.0.2.10", b"203.0.113.9", 1)
    content_type, body = encrypt(tampered, signed_type, [bob.cert])
    with pytest.raises(SmimeError, match="signature does not match the content"):
        _open(content_type, body, bob)


def test_nested_layers_are_bounded(alice: Issued, bob: Issued) -> None:
    signed_type, signed_body = sign(SDP, "application/sdp", alice.cert, rsa_key(alice))
    twice_type, twice = sign(signed_body, signed_type, alice.cert, rsa_key(alice))
    with pytest.raises(SmimeError, match="signed twice"):
        _open(twice_type, twice, bob)
    enc_type, enc = encrypt(SDP, "application/sdp", [bob.cert])
    enc2_type, enc2 = encrypt(enc, enc_type, [bob.cert])
    with pytest.raises(SmimeError, match="encrypted twice"):
        _open(enc2_type, enc2, bob)
    with pytest.raises(SmimeError) as caught:
        _open("application/pkcs7-mime; smime-type=compressed-data", b"\x30\x00", bob)
    assert caught.value.status_code == 415


# --- §23.4 tunnelling -------------------------------------------------------------------------


def _invite(**overrides: str) -> Request:
    fields = {
        "Via": "SIP/2.0/TLS 192.0.2.10:5061;branch=z9hG4bK776asdhds",
        "Max-Forwards": "70",
        "To": "Bob <sip:bob@example.test>",
        "From": "Alice <sip:alice@example.test>;tag=1928301774",
        "Call-ID": "a84b4c76e66710@pc33.example.test",
        "CSeq": "314159 INVITE",
        "Date": DATE,
        "Contact": "<sip:alice@192.0.2.10;transport=tls>",
    }
    fields.update(overrides)
    headers = Headers([(k, v) for k, v in fields.items() if v])
    return Request("INVITE", parse_uri("sip:bob@example.test"), headers)


def _protected_invite(alice: Issued, bob: Issued, mode: str = "sign+encrypt") -> Request:
    invite = _invite()
    content_type, body = protect_sdp(
        SDP,
        mode,
        own_cert=alice.cert,
        own_key=rsa_key(alice),
        peer_cert=bob.cert,
        tunnel=invite,
    )
    invite.headers.set("Content-Type", content_type)
    invite.body = body
    return invite


def test_tunnel_copy_carries_the_protected_headers() -> None:
    copy = tunnel_copy(_invite(), "application/sdp", SDP)
    assert copy.startswith(b"INVITE sip:bob@example.test SIP/2.0\r\n")
    assert b"Max-Forwards" not in copy and copy.count(b"Via:") == 1
    for name in (b"From:", b"To:", b"Call-ID:", b"CSeq:", b"Date:", b"Contact:"):
        assert name in copy
    assert copy.endswith(b"\r\n\r\n" + SDP)
    with pytest.raises(LocalProtocolError, match="Date"):
        tunnel_copy(_invite(Date=""), "application/sdp", SDP)


@pytest.mark.parametrize("mode", ["sign", "sign+encrypt"])
def test_tunnelled_headers_that_match_are_accepted(alice: Issued, bob: Issued, mode: str) -> None:
    invite = _protected_invite(alice, bob, mode)
    # A proxy on the way may retarget and add Via/Record-Route: not an integrity violation.
    invite.uri = parse_uri("sip:bob@192.0.2.20:5061;transport=tls")
    invite.headers.prepend("Via", "SIP/2.0/TLS proxy.example.test;branch=z9hG4bKproxy1")
    invite.headers.add("Record-Route", "<sip:proxy.example.test;lr>")
    opened = _open(invite.headers.get("Content-Type") or "", invite.body, bob, outer=invite)
    assert opened.body == SDP
    assert opened.signed
    assert opened.tunnelled is not None and opened.tunnelled.call_id == invite.call_id


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("From", "Mallory <sip:mallory@example.test>;tag=1928301774"),
        ("From", "Alice <sip:alice@example.test>;tag=other"),
        ("To", "Bob <sip:carol@example.test>"),
        ("Call-ID", "replayed@pc33.example.test"),
        ("CSeq", "314160 INVITE"),
        ("Date", "Sun, 01 Jun 2025 12:00:05 GMT"),
        ("Contact", "<sip:mallory@203.0.113.9>"),
    ],
)
def test_tunnelled_header_mismatch_names_the_header(
    alice: Issued, bob: Issued, header: str, value: str
) -> None:
    invite = _protected_invite(alice, bob)
    invite.headers.set(header, value)
    with pytest.raises(SmimeError) as caught:
        _open(invite.headers.get("Content-Type") or "", invite.body, bob, outer=invite)
    assert caught.value.status_code == 493
    assert f"tunnelled {header} does not match" in caught.value.reason


def test_tunnelled_date_far_from_now_is_a_replay(alice: Issued, bob: Issued) -> None:
    invite = _protected_invite(alice, bob, "sign")
    with pytest.raises(SmimeError, match="too far from now"):
        open_protected_body(
            invite.headers.get("Content-Type") or "",
            invite.body,
            own_cert=bob.cert,
            own_key=rsa_key(bob),
            now=NOW + dt.timedelta(hours=1),
            outer=invite,
        )


def test_tunnelled_response_must_keep_its_status(alice: Issued) -> None:
    headers = _invite().headers.copy()
    headers.set("To", "Bob <sip:bob@example.test>;tag=8321234356")
    ok = Response(200, "OK", headers)
    copy = tunnel_copy(ok, "application/sdp", SDP)
    from softphone.sip.parser import parse_message

    tunnelled = parse_message(copy)
    check_tunnelled_headers(ok, tunnelled, now=NOW)
    ringing = Response(180, "Ringing", headers.copy())
    with pytest.raises(SmimeError, match="same response status"):
        check_tunnelled_headers(ringing, tunnelled)
    with pytest.raises(SmimeError, match="same request method"):
        check_tunnelled_headers(_invite(), tunnelled)


def test_certificates_are_distinct(alice: Issued, bob: Issued, eve: Issued) -> None:
    # The fixtures must not share a key (pki caches keys per slot): guard the other tests.
    keys = {
        c.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        for c in (alice.cert, bob.cert, eve.cert)
    }
    assert len(keys) == 3
    assert isinstance(alice.cert, x509.Certificate)
