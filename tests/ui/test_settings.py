"""ui.settings: the policies saved to a real account file (atomic, 0600) and the password to
the keyring (an in-memory backend), and each failure said in words with the dialog open."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from softphone.ua import Account, IdentityStore, get_password, load_account, save_account
from softphone.ua.account import SipsecAccept, SmimeMode
from tests.keyrings import InMemoryKeyring
from ui.settings import SettingsDialog

AOR = "sips:alice@atlanta.test"


def account_file(tmp_path: Path) -> Path:
    path = tmp_path / "alice.toml"
    save_account(path, Account(aor=AOR, registrar="sips:atlanta.test"))
    return path


def test_policies_and_password_are_saved(
    qtbot: QtBot, tmp_path: Path, memory_keyring: InMemoryKeyring
) -> None:
    path = account_file(tmp_path)
    dialog = SettingsDialog(load_account(path), path, identity_store=IdentityStore(tmp_path))
    qtbot.addWidget(dialog)
    dialog.srtp.setCurrentIndex(dialog.srtp.findData("optional"))
    dialog.sipsec.setCurrentIndex(dialog.sipsec.findData("reject"))
    dialog.smime.setCurrentIndex(dialog.smime.findData("sign"))
    dialog.password.setText("alice-secret-1")
    with qtbot.waitSignal(dialog.saved):
        dialog.save()
    again = load_account(path)
    assert again.srtp.value == "optional"
    assert again.sipsec_accept is SipsecAccept.REJECT and again.smime is SmimeMode.SIGN
    assert "alice-secret-1" not in path.read_text()  # never in the file
    assert get_password(again) == "alice-secret-1"
    assert (path.stat().st_mode & 0o777) == 0o600
    assert dialog.password.text() == ""
    assert dialog.message.text().startswith("Saved.")


def test_failures_are_said_and_nothing_is_written(
    qtbot: QtBot, tmp_path: Path, fail_keyring: object
) -> None:
    path = account_file(tmp_path)
    before = path.read_bytes()
    dialog = SettingsDialog(load_account(path), path, identity_store=IdentityStore(tmp_path))
    qtbot.addWidget(dialog)
    dialog.ca_file.setText(str(tmp_path / "missing.pem"))
    with qtbot.assertNotEmitted(dialog.saved):
        dialog.save()
    assert "does not exist" in dialog.message.text()
    dialog.ca_file.setText("")
    dialog.password.setText("x")
    with qtbot.assertNotEmitted(dialog.saved):
        dialog.save()
    assert dialog.message.text().startswith("The password was not saved:")
    assert path.read_bytes() == before


def test_without_a_file_save_is_disabled_with_a_reason(qtbot: QtBot) -> None:
    dialog = SettingsDialog(Account(aor=AOR), None)
    qtbot.addWidget(dialog)
    assert not dialog.save_button.isEnabled()
    assert dialog.save_button.toolTip() == "This account was not loaded from a file"
