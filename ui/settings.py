"""The settings dialog (a skeleton that grows with the engine): the account, where its password
lives (the OS keyring, never the file), the CA file, the identity certificate, and the
policies: media encryption (SRTP mandatory / optional / off, SDES or DTLS-SRTP keying), what to
do with an incoming sipsec tunnel (draft-gurbani-sip-sipsec-01), S/MIME (RFC 3261 §23).

"Save" writes the account file (``save_account``: atomic, 0600) and the password to the
keyring (``set_password``); every failure is said in words in the dialog, which stays open.
Audio devices with a test tone are not in the engine's façade yet: that tab says so.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from softphone.ua import Account, AccountError, SecretsError, save_account, set_password
from softphone.ua.account import MediaKeying, SipsecAccept, SmimeMode

__all__ = ["SettingsDialog"]

_SRTP_WORDS = {
    "mandatory": "Required: no call without encrypted audio",
    "optional": "Preferred: unencrypted audio is allowed, and said so",
    "off": "Off: audio is never encrypted",
}
_SIPSEC_WORDS = {
    "ask": "Ask me for each end-to-end call",
    "accept": "Accept end-to-end calls",
    "reject": "Refuse end-to-end calls",
}
_SMIME_WORDS = {
    "off": "Off",
    "sign": "Sign my call setup",
    "sign+encrypt": "Sign and encrypt my call setup (keys end to end)",
}
_KEYING_WORDS = {
    "sdes": "SDES (keys in the call setup)",
    "dtls-srtp": "DTLS-SRTP (keys agreed between the phones)",
}


def _combo(values: list[Enum], words: dict[str, str], current: Enum) -> QComboBox:
    combo = QComboBox()
    for value in values:
        # The value's text, not the member: Qt turns a StrEnum into a plain str anyway.
        combo.addItem(words.get(str(value.value), str(value.value)), str(value.value))
    combo.setCurrentIndex(values.index(current))
    return combo


class SettingsDialog(QDialog):
    """Edit ``account`` (loaded from ``path``); :attr:`saved` carries the new Account."""

    saved = Signal(object)

    def __init__(self, account: Account, path: Path | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.account = account
        self.path = path
        self.setWindowTitle("Settings")
        self.resize(640, 420)
        column = QVBoxLayout(self)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._account_tab(), "&Account")
        self.tabs.addTab(self._security_tab(), "&Security")
        self.tabs.addTab(self._audio_tab(), "A&udio")
        column.addWidget(self.tabs, 1)
        self.message = QLabel()
        self.message.setWordWrap(True)
        column.addWidget(self.message)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Close
        )
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        if path is None:
            self.save_button.setEnabled(False)
            self.save_button.setToolTip("This account was not loaded from a file")
        column.addWidget(buttons)

    def _account_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        aor = QLabel(self.account.aor)
        aor.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Address:", aor)
        form.addRow("Registrar:", QLabel(self.account.registrar or "(from the address's domain)"))
        form.addRow("File:", QLabel(str(self.path) if self.path else "(not from a file)"))
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("unchanged")
        self.password.setToolTip("Stored in the system keyring, never in the account file")
        form.addRow("&Password:", self.password)
        self.ca_file = QLineEdit(str(self.account.ca_file or ""))
        self.ca_file.setPlaceholderText("the system's authorities only")
        browse = QPushButton("&Browse…")
        browse.clicked.connect(self._browse_ca)
        row = QHBoxLayout()
        row.addWidget(self.ca_file, 1)
        row.addWidget(browse)
        form.addRow("&CA file:", row)
        identity = str(self.account.identity) if self.account.identity else "none"
        self.identity_label = QLabel(identity)
        self.identity_label.setWordWrap(True)
        self.identity_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Identity certificate:", self.identity_label)
        export = QPushButton("E&xport identity…")
        export.setEnabled(False)
        export.setToolTip(
            "Not in the GUI yet: use 'softphone cert show' / 'softphone cert export' "
            "(the fingerprint is shown there)"
        )
        form.addRow("", export)
        return page

    def _security_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        srtp_type = type(self.account.srtp)
        self.srtp = _combo(list(srtp_type), _SRTP_WORDS, self.account.srtp)
        form.addRow("&Encrypted audio (SRTP):", self.srtp)
        self.keying = _combo(list(MediaKeying), _KEYING_WORDS, self.account.keying)
        form.addRow("&Key exchange:", self.keying)
        self.sipsec = _combo(list(SipsecAccept), _SIPSEC_WORDS, self.account.sipsec_accept)
        form.addRow("E&nd-to-end (sipsec) calls:", self.sipsec)
        self.smime = _combo(list(SmimeMode), _SMIME_WORDS, self.account.smime)
        form.addRow("S/&MIME:", self.smime)
        return page

    def _audio_tab(self) -> QWidget:
        page = QWidget()
        column = QVBoxLayout(page)
        note = QLabel(
            "Audio devices, the test tone and the level meter are not reachable from the "
            "GUI yet: the engine's façade does not offer device selection."
        )
        note.setWordWrap(True)
        column.addWidget(note)
        tone = QPushButton("Play a &test tone")
        tone.setEnabled(False)
        tone.setToolTip("Not in this version of the engine yet")
        column.addWidget(tone)
        column.addStretch(1)
        return page

    def _browse_ca(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self, "CA file", "", "Certificates (*.pem *.crt);;All files (*)"
        )
        if name:
            self.ca_file.setText(name)

    def edited(self) -> Account:
        """The account with the dialog's values (raises AccountError when invalid)."""
        ca = self.ca_file.text().strip()
        return dataclasses.replace(
            self.account,
            ca_file=Path(ca) if ca else None,
            srtp=type(self.account.srtp)(self.srtp.currentData()),
            keying=MediaKeying(self.keying.currentData()),
            sipsec_accept=SipsecAccept(self.sipsec.currentData()),
            smime=SmimeMode(self.smime.currentData()),
        )

    def save(self) -> None:
        ca = self.ca_file.text().strip()
        if ca and not Path(ca).is_file():
            self.say(f"The CA file {ca} does not exist.", error=True)
            return
        try:
            account = self.edited()
        except AccountError as exc:
            self.say(str(exc), error=True)
            return
        if self.password.text():
            try:
                set_password(account.aor, self.password.text())
            except (SecretsError, ValueError) as exc:
                self.say(f"The password was not saved: {exc}", error=True)
                return
            self.password.clear()
        if self.path is not None:
            try:
                save_account(self.path, account)
            except OSError as exc:
                self.say(f"The account file could not be written: {exc.strerror}", error=True)
                return
        self.account = account
        self.say("Saved. Changes apply from the next registration.")
        self.saved.emit(account)

    def say(self, text: str, *, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #b22222;" if error else "")
