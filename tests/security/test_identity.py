"""The user's identity: new self-signed certificates, encrypted keys, PKCS#12 import."""

from __future__ import annotations

import datetime as dt
import functools
import ssl
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from softphone.security.certificates import Identity, is_self_signed
from softphone.security.identity import (
    DEFAULT_DAYS,
    IdentityError,
    ImportRefusedError,
    KeyDecryptionError,
    encrypt_private_key,
    identity_aor,
    import_pkcs12,
    key_matches,
    load_private_key,
    new_identity,
)
from softphone.security.safety import local_half
from softphone.security.trust import Problem, Purpose, evaluate
from tests.security.pki import NOW, make_ca, make_leaf, make_self_signed

AOR = "sip:alice@example.test"
P12_PASSWORD = b"correct horse"


@functools.cache
def rsa3072(slot: int = 0) -> rsa.RSAPrivateKey:
    """RSA-3072 keys are slow to make: one per slot for the whole module."""
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


_T = TypeVar("_T", bound=x509.ExtensionType)


def _ext(cert: x509.Certificate, kind: type[_T]) -> x509.Extension[_T]:
    return cert.extensions.get_extension_for_class(kind)


# --- new_identity -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alice() -> x509.Certificate:
    return new_identity("sips:alice@EXAMPLE.test", now=NOW, private_key=rsa3072()).cert


def test_new_identity_names_the_aor(alice: x509.Certificate) -> None:
    san = _ext(alice, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [AOR]
    assert alice.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == AOR
    assert alice.subject == alice.issuer
    assert identity_aor(alice) == AOR
    assert Identity.aor(AOR).matches(alice)


def test_new_identity_is_a_self_signed_end_entity(alice: x509.Certificate) -> None:
    assert is_self_signed(alice)
    assert isinstance(alice.signature_hash_algorithm, hashes.SHA256)
    constraints = _ext(alice, x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    ski = _ext(alice, x509.SubjectKeyIdentifier).value
    aki = _ext(alice, x509.AuthorityKeyIdentifier).value
    assert ski.digest == aki.key_identifier
    assert ski == x509.SubjectKeyIdentifier.from_public_key(alice.public_key())


def test_new_identity_key_usage_covers_tls_and_smime(alice: x509.Certificate) -> None:
    usage = _ext(alice, x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature and usage.value.key_encipherment
    assert not usage.value.key_cert_sign and not usage.value.key_agreement
    eku = _ext(alice, x509.ExtendedKeyUsage).value
    assert set(eku) == {
        ExtendedKeyUsageOID.CLIENT_AUTH,
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.EMAIL_PROTECTION,
    }


def test_new_identity_key_and_validity(alice: x509.Certificate) -> None:
    key = alice.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072
    assert alice.not_valid_before_utc == NOW - dt.timedelta(hours=1)
    assert alice.not_valid_after_utc == NOW + dt.timedelta(days=DEFAULT_DAYS)
    short = new_identity(AOR, now=NOW, days=30, private_key=rsa3072()).cert
    assert short.not_valid_after_utc == NOW + dt.timedelta(days=30)


def test_new_identity_generates_a_fresh_rsa3072_key_by_default() -> None:
    material = new_identity(AOR, now=NOW)
    assert material.key.key_size == 3072
    assert key_matches(material.cert, material.key)
    assert material.aor == AOR
    assert "key=" not in repr(material)


def test_peers_see_only_that_it_is_self_signed(alice: x509.Certificate) -> None:
    """The trust layer finds nothing wrong but the missing CA: name, usage and key are fine."""
    for purpose in (Purpose.CLIENT, Purpose.SERVER):
        report = evaluate([alice], Identity.aor("bob@x.test"), now=NOW, purpose=purpose)
        assert Problem.NAME_MISMATCH in report.problems
        report = evaluate([alice], Identity.aor(AOR), now=NOW, purpose=purpose)
        assert set(report.problems) <= {Problem.SELF_SIGNED, Problem.UNKNOWN_CA}, report.problems


def test_the_identity_does_smime_both_ways() -> None:
    material = new_identity(AOR, now=NOW, private_key=rsa3072())
    enveloped = (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x")
        .add_recipient(material.cert)
        .encrypt(serialization.Encoding.DER, [])
    )
    clear = pkcs7.pkcs7_decrypt_der(enveloped, material.cert, material.key, [])
    assert clear == b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x"
    signed = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(b"hello")
        .add_signer(material.cert, material.key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature])
    )
    assert signed


def test_renewal_with_the_same_key_keeps_the_safety_number(alice: x509.Certificate) -> None:
    later = NOW + dt.timedelta(days=1000)
    renewed = new_identity(AOR, now=later, private_key=rsa3072()).cert
    assert renewed.serial_number != alice.serial_number
    assert local_half(renewed, AOR) == local_half(alice, AOR)
    other = new_identity(AOR, now=NOW, private_key=rsa3072(1)).cert
    assert local_half(other, AOR) != local_half(alice, AOR)


def test_long_aor_gets_a_truncated_cn_but_a_full_san() -> None:
    aor = "sip:" + "a" * 70 + "@example.test"
    cert = new_identity(aor, now=NOW, private_key=rsa3072()).cert
    assert len(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value) == 64
    assert identity_aor(cert) == aor


@pytest.mark.parametrize("bad", ["alice", "sip:example.test", "tel:+15551234", ""])
def test_new_identity_refuses_what_is_not_an_aor(bad: str) -> None:
    with pytest.raises(IdentityError, match="not a SIP address"):
        new_identity(bad, now=NOW, private_key=rsa3072())


def test_new_identity_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="timezone"):
        new_identity(AOR, now=NOW.replace(tzinfo=None), private_key=rsa3072())
    with pytest.raises(ValueError, match="one day"):
        new_identity(AOR, now=NOW, days=0, private_key=rsa3072())
    with pytest.raises(ValueError, match="unknown key choice"):
        new_identity(AOR, now=NOW, key="dsa1024")  # type: ignore[arg-type]
    small = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(IdentityError, match="3072"):
        new_identity(AOR, now=NOW, private_key=small)


def test_identity_aor_needs_a_sip_uri() -> None:
    cert = make_self_signed(cn="alice", dns=["example.test"]).cert
    with pytest.raises(IdentityError, match="no SIP address"):
        identity_aor(cert)


# --- private key files --------------------------------------------------------------------


def test_private_key_round_trip_is_encrypted_pkcs8() -> None:
    pem = encrypt_private_key(rsa3072(), b"s3cret")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert b"BEGIN PRIVATE KEY" not in pem and b"BEGIN RSA PRIVATE KEY" not in pem
    key = load_private_key(pem, b"s3cret")
    assert key.private_numbers() == rsa3072().private_numbers()


def test_wrong_passphrase_is_a_key_decryption_error() -> None:
    pem = encrypt_private_key(rsa3072(), b"s3cret")
    with pytest.raises(KeyDecryptionError, match="could not decrypt"):
        load_private_key(pem, b"guess")


def test_plaintext_key_is_refused_both_ways() -> None:
    with pytest.raises(ValueError, match="passphrase"):
        encrypt_private_key(rsa3072(), b"")
    plain = rsa3072().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(KeyDecryptionError, match="not encrypted"):
        load_private_key(plain, b"anything")


def test_non_rsa_key_file_is_refused() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(KeyDecryptionError, match="not RSA"):
        load_private_key(pem, b"pw")


# --- PKCS#12 ------------------------------------------------------------------------------


def _p12(
    cert: x509.Certificate | None,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None,
    cas: list[x509.Certificate] | None = None,
    password: bytes = P12_PASSWORD,
) -> bytes:
    return pkcs12.serialize_key_and_certificates(
        b"alice",
        key,
        cert,
        cas,
        serialization.BestAvailableEncryption(password),
    )


def _ca_issued(**kwargs: object) -> tuple[x509.Certificate, x509.Certificate]:
    ca = make_ca(key_type="rsa", key_size=2048)
    options: dict[str, object] = {"uris": [AOR], "key": rsa3072()}
    options.update(kwargs)
    leaf = make_leaf(
        ca,
        eku=(ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION),
        **options,  # type: ignore[arg-type]
    )
    return leaf.cert, ca.cert


def test_import_a_ca_issued_identity() -> None:
    leaf, ca = _ca_issued()
    imported = import_pkcs12(_p12(leaf, rsa3072(), [ca]), P12_PASSWORD, now=NOW)
    assert imported.cert == leaf
    assert imported.chain == (ca,)
    assert imported.aor == AOR
    assert imported.warnings == ()
    assert key_matches(imported.cert, imported.key)


def test_import_warns_about_what_it_accepts() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf, ca = _ca_issued(
        key=key,
        uris=[AOR, "sip:alice@example.org"],
        not_after=NOW - dt.timedelta(days=1),
        key_usage=frozenset({"digital_signature"}),
    )
    imported = import_pkcs12(_p12(leaf, key, [ca]), P12_PASSWORD, now=NOW)
    text = "\n".join(imported.warnings)
    assert "several addresses" in text
    assert "RSA 2048" in text
    assert "expired" in text
    assert "keyEncipherment" in text
    assert imported.aor == AOR


def test_import_wrong_password() -> None:
    leaf, ca = _ca_issued()
    with pytest.raises(ImportRefusedError, match="wrong password"):
        import_pkcs12(_p12(leaf, rsa3072(), [ca]), b"nope")
    with pytest.raises(ImportRefusedError, match="not a PKCS#12"):
        import_pkcs12(b"garbage", None)


def test_import_refuses_a_file_without_key_or_certificate() -> None:
    leaf, ca = _ca_issued()
    with pytest.raises(ImportRefusedError, match="no private key"):
        import_pkcs12(_p12(leaf, None, [ca]), P12_PASSWORD)
    with pytest.raises(ImportRefusedError, match="no certificate"):
        import_pkcs12(_p12(None, rsa3072(), [ca]), P12_PASSWORD)


def test_import_refuses_an_ec_identity_and_says_why() -> None:
    ca = make_ca(key_type="rsa", key_size=2048)
    leaf = make_leaf(ca, uris=[AOR], key_type="ec")
    with pytest.raises(ImportRefusedError, match="RSA recipients only"):
        import_pkcs12(_p12(leaf.cert, leaf.key, [ca.cert]), P12_PASSWORD)  # type: ignore[arg-type]


def test_import_refuses_a_key_of_another_certificate(monkeypatch: pytest.MonkeyPatch) -> None:
    # cryptography will not build such a file, so hand import_pkcs12 what a foreign tool could.
    leaf, ca = _ca_issued()
    bundle = pkcs12.PKCS12KeyAndCertificates(
        rsa3072(1), pkcs12.PKCS12Certificate(leaf, None), [pkcs12.PKCS12Certificate(ca, None)]
    )
    monkeypatch.setattr(pkcs12, "load_pkcs12", lambda data, password: bundle)
    with pytest.raises(ImportRefusedError, match="does not belong"):
        import_pkcs12(b"mismatched", P12_PASSWORD)


def test_import_refuses_a_certificate_without_sip_uri() -> None:
    leaf, ca = _ca_issued(uris=[], dns=["alice.example.test"])
    with pytest.raises(ImportRefusedError, match="sip:user@domain"):
        import_pkcs12(_p12(leaf, rsa3072(), [ca]), P12_PASSWORD)


def test_import_refuses_a_weak_rsa_key() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    leaf, ca = _ca_issued(key=weak)
    with pytest.raises(ImportRefusedError, match="1024 bits"):
        import_pkcs12(_p12(leaf, weak, [ca]), P12_PASSWORD)


def test_imported_key_signs_like_the_certificate_says() -> None:
    leaf, ca = _ca_issued()
    imported = import_pkcs12(_p12(leaf, rsa3072(), [ca]), P12_PASSWORD)
    signature = imported.key.sign(b"m", padding.PKCS1v15(), hashes.SHA256())
    public = imported.cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, b"m", padding.PKCS1v15(), hashes.SHA256())


def test_the_identity_does_tls13_as_server_and_as_client(tmp_path: Path) -> None:
    """Both ends present a `cert new` identity (mutual TLS, as the sipsec tunnel does)."""
    files = {}
    for name, slot in (("alice", 0), ("bob", 1)):
        material = new_identity(f"sip:{name}@example.test", now=NOW, private_key=rsa3072(slot))
        cert_file, key_file = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
        cert_file.write_bytes(material.cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(encrypt_private_key(material.key, b"pw"))
        files[name] = (cert_file, key_file, material.cert)

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    server_ctx.load_cert_chain(files["alice"][0], files["alice"][1], password=b"pw")
    server_ctx.verify_mode = ssl.CERT_OPTIONAL
    server_ctx.load_verify_locations(files["bob"][0])
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE  # trust is the trust layer's job, not this test's
    client_ctx.load_cert_chain(files["bob"][0], files["bob"][1], password=b"pw")

    bios = [ssl.MemoryBIO() for _ in range(4)]
    server = server_ctx.wrap_bio(bios[0], bios[1], server_side=True)
    client = client_ctx.wrap_bio(bios[2], bios[3])
    done = {"server": False, "client": False}
    for _ in range(10):
        for name, end in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        bios[0].write(bios[3].read())
        bios[2].write(bios[1].read())
        if all(done.values()):
            break
    client.write(b"ping")  # TLS 1.3 servers ask for the client certificate post-Finished
    bios[0].write(bios[3].read())
    assert server.read() == b"ping"
    assert client.version() == "TLSv1.3"
    served = x509.load_der_x509_certificate(client.getpeercert(binary_form=True))
    assert served == files["alice"][2]
    presented = server.getpeercert(binary_form=True)
    assert presented is not None
    assert x509.load_der_x509_certificate(presented) == files["bob"][2]
