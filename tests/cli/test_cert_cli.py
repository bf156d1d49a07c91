"""``softphone cert``: new, import, export, show, against a temporary directory and an
in-memory keyring (never the machine's own, never ``keyrings.alt``)."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import itertools
import re
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from keyring.backend import KeyringBackend
from keyring.backends import fail

from softphone import security
from softphone.cert_cli import main
from softphone.identity_store import (
    IDENTITY_SERVICE,
    IdentityStore,
    NoIdentityError,
    PassphraseNotFoundError,
)
from softphone.security.certificates import fingerprint_groups
from softphone.security.identity import IdentityError, encrypt_private_key, new_identity
from softphone.security.safety import local_half
from tests.keyrings import InMemoryKeyring, PlaintextKeyring, install
from tests.security.pki import make_ca, make_leaf

AOR = "sip:alice@example.test"
P12_PASSWORD = "correct horse"


@functools.cache
def _cached_rsa3072(slot: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


@pytest.fixture
def fast_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """``cert new`` with keys made once per module: a fresh key per call, but not slowly."""
    slots = itertools.count()
    monkeypatch.setattr(
        security.identity, "_generate_key", lambda choice: _cached_rsa3072(next(slots))
    )


@pytest.fixture
def id_dir(tmp_path: Path) -> Path:
    return tmp_path / "identity"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _new(id_dir: Path, *extra: str, aor: str = AOR) -> int:
    return main(["new", "--aor", aor, "--dir", str(id_dir), *extra])


# --- cert new -----------------------------------------------------------------------------


def test_new_writes_an_encrypted_key_and_a_public_certificate(
    id_dir: Path, memory_keyring: InMemoryKeyring, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _new(id_dir) == 0  # a real RSA-3072 key, once
    key_pem = (id_dir / "key.pem").read_bytes()
    assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in key_pem
    assert b"BEGIN PRIVATE KEY" not in key_pem and b"BEGIN RSA PRIVATE KEY" not in key_pem
    assert _mode(id_dir / "key.pem") == 0o600
    assert _mode(id_dir / "cert.pem") == 0o644
    assert _mode(id_dir) == 0o700
    assert not list(id_dir.glob(".*.tmp"))  # atomic writes left nothing behind

    passphrase = memory_keyring.store[(IDENTITY_SERVICE, AOR)]
    assert len(base64.b64decode(passphrase, validate=True)) == 32
    with pytest.raises(ValueError):
        serialization.load_pem_private_key(key_pem, password=b"wrong")
    key = serialization.load_pem_private_key(key_pem, password=passphrase.encode())
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 3072

    material = IdentityStore(id_dir).load()
    assert material.cert.public_key() == key.public_key()
    assert material.aor == AOR
    out = capsys.readouterr().out
    assert fingerprint_groups(material.cert) in out
    assert str(local_half(material.cert, AOR)) in out


def test_new_refuses_to_replace_an_identity_without_force(
    id_dir: Path,
    memory_keyring: InMemoryKeyring,
    fast_keys: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _new(id_dir) == 0
    before = (id_dir / "cert.pem").read_bytes()
    assert _new(id_dir) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err and AOR in err
    assert (id_dir / "cert.pem").read_bytes() == before

    assert _new(id_dir, "--force") == 0
    assert (id_dir / "cert.pem").read_bytes() != before
    IdentityStore(id_dir).load()  # the reused passphrase opens the new key


def test_new_for_another_aor_forgets_the_old_passphrase(
    id_dir: Path, memory_keyring: InMemoryKeyring, fast_keys: None
) -> None:
    assert _new(id_dir) == 0
    assert _new(id_dir, "--force", aor="sips:Bob@Example.TEST") == 0
    assert set(memory_keyring.store) == {(IDENTITY_SERVICE, "sip:Bob@example.test")}
    assert IdentityStore(id_dir).load().aor == "sip:Bob@example.test"


@pytest.mark.parametrize("backend", [fail.Keyring(), PlaintextKeyring()])
def test_new_without_a_secure_keyring_writes_nothing(
    backend: KeyringBackend,
    id_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    fast_keys: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    install(monkeypatch, backend)
    assert _new(id_dir) == 1
    assert "No secure password store" in capsys.readouterr().err
    assert not id_dir.exists() or not any(id_dir.iterdir())


def test_new_refuses_a_bad_aor(
    id_dir: Path,
    memory_keyring: InMemoryKeyring,
    fast_keys: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _new(id_dir, aor="alice") == 1
    assert "not a SIP address" in capsys.readouterr().err
    assert not (id_dir / "key.pem").exists()


def test_new_needs_an_aor(id_dir: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["new", "--dir", str(id_dir)])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main([])


# --- cert show / export -------------------------------------------------------------------


def test_show_prints_the_fingerprint_and_the_half(
    id_dir: Path,
    memory_keyring: InMemoryKeyring,
    fast_keys: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _new(id_dir) == 0
    capsys.readouterr()
    install(monkeypatch, fail.Keyring())  # show reads only the public certificate
    assert main(["show", "--dir", str(id_dir)]) == 0
    out = capsys.readouterr().out
    cert = IdentityStore(id_dir).load_certificate()
    assert f"SHA-256:     {fingerprint_groups(cert)}" in out
    half = re.search(r"Your half of the safety number: ((?:\d{5} ){5}\d{5})\n", out)
    assert half is not None
    assert half.group(1) == str(local_half(cert, AOR))
    assert f"Address:     {AOR}" in out
    assert "Key:         RSA 3072" in out
    assert "Issuer:      self-signed" in out
    assert "CN=sip:alice@example.test" in out
    assert "EXPIRED" not in out


def test_show_says_when_expired(
    id_dir: Path, memory_keyring: InMemoryKeyring, capsys: pytest.CaptureFixture[str]
) -> None:
    old = new_identity(
        AOR, now=dt.datetime(2001, 1, 1, tzinfo=dt.UTC), days=30, private_key=_cached_rsa3072(0)
    )
    IdentityStore(id_dir).save(old)
    assert main(["show", "--dir", str(id_dir)]) == 0
    assert "(EXPIRED)" in capsys.readouterr().out


def test_show_and_export_without_identity(id_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--dir", str(id_dir)]) == 1
    assert "No identity" in capsys.readouterr().err
    assert main(["export", "--dir", str(id_dir)]) == 1
    assert "softphone cert new" in capsys.readouterr().err


def test_export_writes_the_public_certificate(
    id_dir: Path,
    tmp_path: Path,
    memory_keyring: InMemoryKeyring,
    fast_keys: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _new(id_dir) == 0
    capsys.readouterr()
    cert_pem = (id_dir / "cert.pem").read_bytes()

    assert main(["export", "--dir", str(id_dir)]) == 0
    assert capsys.readouterr().out.encode() == cert_pem

    out = tmp_path / "alice.pem"
    assert main(["export", "--dir", str(id_dir), "--out", str(out)]) == 0
    assert out.read_bytes() == cert_pem
    assert b"PRIVATE" not in out.read_bytes()
    assert _mode(out) == 0o644


# --- cert import --------------------------------------------------------------------------


def _write_p12(
    tmp_path: Path, *, key_type: str = "rsa", password: str = P12_PASSWORD
) -> tuple[Path, x509.Certificate, x509.Certificate]:
    ca = make_ca("Example CA", key_type="rsa", key_size=2048)
    if key_type == "rsa":
        leaf = make_leaf(ca, uris=[AOR], key=_cached_rsa3072(0))
    else:
        leaf = make_leaf(ca, uris=[AOR], key_type="ec")
    data = pkcs12.serialize_key_and_certificates(
        b"alice",
        leaf.key,
        leaf.cert,
        [ca.cert],
        serialization.BestAvailableEncryption(password.encode()),
    )
    path = tmp_path / "alice.p12"
    path.write_bytes(data)
    return path, leaf.cert, ca.cert


def test_import_a_pkcs12(
    id_dir: Path,
    tmp_path: Path,
    memory_keyring: InMemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    p12, leaf, ca = _write_p12(tmp_path)
    monkeypatch.setenv("P12_PW", P12_PASSWORD)
    assert main(["import", str(p12), "--password-env", "P12_PW", "--dir", str(id_dir)]) == 0
    out = capsys.readouterr()
    assert "Imported the identity of sip:alice@example.test" in out.out
    assert fingerprint_groups(leaf) in out.out
    assert "Issuer:      Example CA" in out.out
    assert "emailProtection" in out.err  # a warning, not a refusal

    assert b"ENCRYPTED PRIVATE KEY" in (id_dir / "key.pem").read_bytes()
    assert _mode(id_dir / "key.pem") == 0o600
    material = IdentityStore(id_dir).load()
    assert material.cert == leaf
    assert material.chain == (ca,)

    assert main(["export", "--chain", "--dir", str(id_dir)]) == 0
    exported = x509.load_pem_x509_certificates(capsys.readouterr().out.encode())
    assert exported == [leaf, ca]


def test_import_errors(
    id_dir: Path,
    tmp_path: Path,
    memory_keyring: InMemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    p12, _, _ = _write_p12(tmp_path)
    argv = ["import", str(p12), "--password-env", "P12_PW", "--dir", str(id_dir)]
    monkeypatch.delenv("P12_PW", raising=False)
    assert main(argv) == 1
    assert "P12_PW is not set" in capsys.readouterr().err
    monkeypatch.setenv("P12_PW", "wrong")
    assert main(argv) == 1
    assert "wrong password" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "missing.p12"), "--dir", str(id_dir)]) == 1
    assert not id_dir.exists() or not any(id_dir.iterdir())
    assert memory_keyring.store == {}


def test_import_refuses_an_ec_identity(
    id_dir: Path,
    tmp_path: Path,
    memory_keyring: InMemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    p12, _, _ = _write_p12(tmp_path, key_type="ec")
    monkeypatch.setenv("P12_PW", P12_PASSWORD)
    assert main(["import", str(p12), "--password-env", "P12_PW", "--dir", str(id_dir)]) == 1
    assert "RSA recipients only" in capsys.readouterr().err
    assert not (id_dir / "key.pem").exists()


def test_import_over_an_identity_needs_force(
    id_dir: Path,
    tmp_path: Path,
    memory_keyring: InMemoryKeyring,
    fast_keys: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _new(id_dir) == 0
    p12, leaf, _ = _write_p12(tmp_path)
    monkeypatch.setenv("P12_PW", P12_PASSWORD)
    argv = ["import", str(p12), "--password-env", "P12_PW", "--dir", str(id_dir)]
    assert main(argv) == 1
    assert "already exists" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0
    assert IdentityStore(id_dir).load().cert == leaf


# --- the store's failure modes ------------------------------------------------------------


def test_lost_passphrase_is_explained(
    id_dir: Path, memory_keyring: InMemoryKeyring, fast_keys: None
) -> None:
    assert _new(id_dir) == 0
    memory_keyring.store.clear()
    with pytest.raises(PassphraseNotFoundError, match=IDENTITY_SERVICE):
        IdentityStore(id_dir).load()


def test_key_of_another_identity_is_detected(
    id_dir: Path, memory_keyring: InMemoryKeyring, fast_keys: None
) -> None:
    assert _new(id_dir) == 0
    passphrase = memory_keyring.store[(IDENTITY_SERVICE, AOR)].encode()
    (id_dir / "key.pem").write_bytes(encrypt_private_key(_cached_rsa3072(99), passphrase))
    with pytest.raises(IdentityError, match="does not belong"):
        IdentityStore(id_dir).load()


def test_empty_store(id_dir: Path) -> None:
    store = IdentityStore(id_dir)
    assert not store.exists()
    with pytest.raises(NoIdentityError):
        store.load()
    assert store.load_chain() == ()
