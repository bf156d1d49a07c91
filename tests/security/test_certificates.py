"""Certificate facts: fingerprints, RFC 5922 names, AORs, keys, signatures, path building."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from hypothesis import given
from hypothesis import strategies as st

from softphone.security import Identity, IdentityKind, InvalidIdentityError
from softphone.security.certificates import (
    aor_identities,
    build_path,
    describe_key,
    domain_identities,
    fingerprint_groups,
    fingerprint_hex,
    fingerprint_sha256,
    is_self_signed,
    signature_hash_name,
    signed_by,
    summary,
    weak_signature_hash,
)
from tests.security.pki import make_ca, make_intermediate, make_leaf, make_self_signed

ROOT = make_ca("Test Root CA")


def test_fingerprint_forms() -> None:
    cert = make_leaf(ROOT, dns=["example.test"]).cert
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()
    assert fingerprint_sha256(cert) == digest
    assert fingerprint_hex(cert) == ":".join(f"{b:02X}" for b in digest)
    groups = fingerprint_groups(cert)
    assert groups.split() == [digest.hex().upper()[i : i + 4] for i in range(0, 64, 4)]
    assert fingerprint_groups(digest) == groups


@given(st.binary(min_size=32, max_size=32))
def test_fingerprint_groups_round_trip(digest: bytes) -> None:
    assert bytes.fromhex(fingerprint_groups(digest).replace(" ", "")) == digest
    assert bytes.fromhex(fingerprint_hex(digest).replace(":", "")) == digest


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"cn": "Example.TEST"}, ("example.test",)),  # no SAN: the CN counts
        ({"cn": "Example Telephony"}, ()),  # ... only when it is a DNS name
        ({"cn": "example.test", "dns": ["a.test"]}, ("a.test",)),  # a SAN hides the CN
        ({"cn": "example.test", "emails": ["x@example.test"]}, ()),
        (
            {
                "uris": ["sip:b.test", "sip:u@c.test", "sips:d.test", "http://e.test"],
                "dns": ["f.test"],
            },
            ("b.test", "f.test"),
        ),
        ({"uris": ["sip:b.test:5061;transport=tls?x=y"]}, ("b.test",)),
        ({"uris": ["sip:[2001:DB8::1]:5061"]}, ("[2001:db8::1]",)),
        ({"dns": ["*.example.test"]}, ("*.example.test",)),  # shown, never matched
        ({"dns": ["a.test", "A.test."]}, ("a.test",)),  # normalised and de-duplicated
    ],
)
def test_domain_identities(kwargs: dict[str, object], expected: tuple[str, ...]) -> None:
    assert domain_identities(make_leaf(ROOT, **kwargs).cert) == expected  # type: ignore[arg-type]


def test_aor_identities() -> None:
    cert = make_leaf(
        ROOT,
        uris=[
            "sip:bob@Example.test",
            "sips:bob@example.test",
            "sip:al%69ce@example.test;x=1",
            "sip:example.test",
        ],
        dns=["example.test"],
    ).cert
    assert aor_identities(cert) == ("bob@example.test", "alice@example.test")


def test_identity_constructors() -> None:
    assert Identity.domain("Example.TEST.") == Identity(IdentityKind.DOMAIN, "example.test")
    assert Identity.domain("example.test").key == "domain:example.test"
    bob = Identity.aor("sips:bob@EXAMPLE.test:5061;transport=tls")
    assert bob == Identity.aor("bob@example.test") == Identity(IdentityKind.AOR, "bob@example.test")
    assert str(bob) == "sip:bob@example.test"
    assert bob.key == "aor:bob@example.test"
    assert bob.host == "example.test"


@pytest.mark.parametrize("bad", ["", "*.example.test", "exa mple.test", "-x.test", "a..test"])
def test_invalid_domain_identities(bad: str) -> None:
    with pytest.raises(InvalidIdentityError):
        Identity.domain(bad)


@pytest.mark.parametrize("bad", ["example.test", "sip:example.test", "tel:+123", "sip:@x.test"])
def test_invalid_aor_identities(bad: str) -> None:
    with pytest.raises(InvalidIdentityError):
        Identity.aor(bad)


def test_internationalised_domain_is_compared_as_a_label() -> None:
    cert = make_leaf(ROOT, dns=["xn--bcher-kva.test"]).cert
    assert Identity.domain("bücher.test").matches(cert)


@pytest.mark.parametrize(
    ("key_type", "size", "description", "weak"),
    [
        ("rsa", 1024, "RSA 1024", True),
        ("rsa", 2048, "RSA 2048", False),
        ("ec", 224, "EC secp224r1", True),
        ("ec", 256, "EC P-256", False),
        ("ec", 384, "EC P-384", False),
        ("ed25519", 0, "Ed25519", False),
    ],
)
def test_describe_key(key_type: str, size: int, description: str, weak: bool) -> None:
    cert = make_leaf(ROOT, dns=["x.test"], key_type=key_type, key_size=size).cert  # type: ignore[arg-type]
    info = describe_key(cert)
    assert (info.description, info.weak) == (description, weak)


def test_signature_hashes() -> None:
    rsa_root = make_ca("RSA Root", key_type="rsa", key_size=2048, slot=5)
    sha256 = make_leaf(ROOT, dns=["x.test"]).cert
    sha1 = make_leaf(ROOT, dns=["x.test"], signature_hash=hashes.SHA1()).cert
    md5 = make_leaf(rsa_root, dns=["x.test"], signature_hash=hashes.MD5()).cert
    eddsa = make_leaf(make_ca("Ed Root", key_type="ed25519", slot=7), dns=["x.test"]).cert
    assert [signature_hash_name(c) for c in (sha256, sha1, md5, eddsa)] == [
        "sha256",
        "sha1",
        "md5",
        None,
    ]
    assert [weak_signature_hash(c) for c in (sha256, sha1, md5, eddsa)] == [
        False,
        True,
        True,
        False,
    ]
    assert signed_by(sha1, ROOT.cert)  # weak, but genuinely signed
    assert signed_by(md5, rsa_root.cert)
    assert not signed_by(sha256, rsa_root.cert)


def test_self_signed() -> None:
    assert is_self_signed(make_self_signed(dns=["x.test"]).cert)
    assert is_self_signed(ROOT.cert)
    assert not is_self_signed(make_leaf(ROOT, dns=["x.test"]).cert)


def test_summary() -> None:
    leaf = make_leaf(ROOT, cn=None, org="Example Telephony", dns=["x.test"]).cert
    assert summary(leaf.subject) == "Example Telephony"
    assert summary(leaf.issuer) == "Test Root CA"


def test_build_path_uses_presented_intermediates_in_any_order() -> None:
    i1 = make_intermediate(ROOT, "I1", slot=1)
    i2 = make_intermediate(i1, "I2", slot=2)
    leaf = make_leaf(i2, dns=["x.test"])
    unrelated = make_intermediate(ROOT, "Unrelated", slot=3)
    path = build_path([leaf.cert, unrelated.cert, i1.cert, i2.cert], [ROOT.cert])
    assert path.anchored
    assert path.certificates == (leaf.cert, i2.cert, i1.cert, ROOT.cert)


def test_build_path_reports_where_it_breaks() -> None:
    i1 = make_intermediate(ROOT, "I1", slot=1)
    i2 = make_intermediate(i1, "I2", slot=2)
    leaf = make_leaf(i2, dns=["x.test"])
    path = build_path([leaf.cert, i2.cert], [ROOT.cert])  # I1 not sent
    assert not path.anchored
    assert path.broken_at == 1
    assert path.missing_issuer == i1.cert.subject
    assert not path.bad_signature
