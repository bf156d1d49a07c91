"""Settings → Identity: the identity shown, created (RSA-3072 off the event loop), imported
from a real PKCS#12 file (the password never stored) and exported (public PEM only), each
through the real IdentityStore in a temporary folder with an in-memory keyring, on a qasync
loop as in the application."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from pytestqt.qtbot import QtBot

from softphone.security.certificates import fingerprint_groups
from softphone.security.identity import new_identity
from softphone.ua import Account, IdentityStore
from tests.keyrings import InMemoryKeyring
from ui.settings import SettingsDialog

AOR = "sips:alice@atlanta.test"
Run = Callable[[Coroutine[Any, Any, None]], None]


def dialog_for(qtbot: QtBot, store: IdentityStore) -> SettingsDialog:
    dialog = SettingsDialog(Account(aor=AOR), None, identity_store=store)
    qtbot.addWidget(dialog)
    dialog.tabs.setCurrentIndex(2)
    return dialog


async def settle(dialog: SettingsDialog) -> None:
    while dialog.pending:
        await asyncio.wait_for(asyncio.shield(dialog.pending.pop(0)), 60)


def test_create_identity_runs_off_the_loop_and_shows_the_fingerprint(
    qtbot: QtBot, tmp_path: Path, memory_keyring: InMemoryKeyring, run_in_qasync: Run
) -> None:
    store = IdentityStore(tmp_path / "identity")
    dialog = dialog_for(qtbot, store)
    assert dialog.id_aor.text() == "No identity yet"
    assert not dialog.export_button.isEnabled()
    asked: list[str] = []
    dialog.ask_aor = lambda suggested: asked.append(suggested) or suggested

    async def scenario() -> None:
        dialog.create_identity()
        assert not dialog.create_button.isEnabled()  # one generation at a time
        job = dialog.pending[0]
        ticks = 0
        while not job.done():  # the loop keeps running while RSA-3072 is generated
            ticks += 1
            await asyncio.sleep(0.01)
        await settle(dialog)
        assert ticks >= 3

    run_in_qasync(scenario())
    assert asked == [AOR]  # prefilled from the account
    cert = store.load_certificate()
    assert dialog.id_aor.text() == "sip:alice@atlanta.test"
    assert dialog.id_fingerprint.text() == fingerprint_groups(cert)
    assert dialog.id_key.text() == "RSA 3072"
    assert dialog.id_issuer.text() == "self-signed"
    assert dialog.create_button.isEnabled() and dialog.export_button.isEnabled()
    assert dialog.message.text() == "Done: your identity is now sip:alice@atlanta.test."
    assert memory_keyring.get_password("softphone-identity", "sip:alice@atlanta.test")

    # Replacing asks first; "no" changes nothing.
    dialog.confirm_replace = lambda what: False
    dialog.create_identity()
    assert dialog.pending == [] and store.load_certificate() == cert


@functools.cache
def rsa3072() -> rsa.RSAPrivateKey:
    """One identity-sized key for the tests that do not test generation itself."""
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def make_p12(tmp_path: Path, password: bytes) -> tuple[Path, x509.Certificate]:
    key = rsa3072()
    material = new_identity("sip:alice@atlanta.test", now=dt.datetime.now(dt.UTC), private_key=key)
    data = pkcs12.serialize_key_and_certificates(
        b"alice",
        material.key,
        material.cert,
        None,
        serialization.BestAvailableEncryption(password),
    )
    path = tmp_path / "alice.p12"
    path.write_bytes(data)
    return path, material.cert


def test_import_pkcs12_wrong_password_is_said_then_the_right_one_imports(
    qtbot: QtBot, tmp_path: Path, memory_keyring: InMemoryKeyring, run_in_qasync: Run
) -> None:
    store = IdentityStore(tmp_path / "identity")
    p12, cert = make_p12(tmp_path, b"p12-secret")
    dialog = dialog_for(qtbot, store)
    dialog.ask_pkcs12 = lambda: (p12, "wrong")
    dialog.import_identity()
    run_in_qasync(settle(dialog))
    assert dialog.message.text().startswith("Could not import the identity: could not read")
    assert "wrong password" in dialog.message.text()
    assert not store.exists() and dialog.import_button.isEnabled()

    dialog.ask_pkcs12 = lambda: (p12, "p12-secret")
    dialog.import_identity()
    run_in_qasync(settle(dialog))
    assert store.load_certificate() == cert
    assert dialog.id_fingerprint.text() == fingerprint_groups(cert)
    stored = list(memory_keyring.store.values())
    assert "p12-secret" not in stored  # the import password is never kept
    assert b"p12-secret" not in b"".join(p.read_bytes() for p in store.directory.iterdir())


def test_export_writes_the_public_certificate_only(
    qtbot: QtBot, tmp_path: Path, memory_keyring: InMemoryKeyring
) -> None:
    store = IdentityStore(tmp_path / "identity")
    key = rsa3072()
    material = new_identity("sip:alice@atlanta.test", now=dt.datetime.now(dt.UTC), private_key=key)
    store.save(material)
    dialog = dialog_for(qtbot, store)
    assert dialog.id_aor.text() == "sip:alice@atlanta.test"
    (tmp_path / "a-file").write_text("")
    dialog.ask_export_path = lambda: tmp_path / "a-file" / "alice.pem"
    dialog.export_identity()
    assert "Could not export the certificate" in dialog.message.text()  # not a folder
    out = tmp_path / "alice.pem"
    dialog.ask_export_path = lambda: out
    dialog.export_identity()
    pem = out.read_bytes()
    assert x509.load_pem_x509_certificate(pem) == material.cert
    assert b"PRIVATE KEY" not in pem
    assert dialog.message.text() == f"Wrote your public certificate to {out}."


def test_an_unreadable_identity_is_said_in_words(qtbot: QtBot, tmp_path: Path) -> None:
    store = IdentityStore(tmp_path)
    (tmp_path / "cert.pem").write_text("not a certificate")
    dialog = dialog_for(qtbot, store)
    assert dialog.id_aor.text() == "(unreadable)"
    assert dialog.identity_status.text().startswith("The stored identity cannot be read:")
    assert not dialog.export_button.isEnabled()
