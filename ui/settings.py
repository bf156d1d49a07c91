"""The settings dialog (a skeleton that grows with the engine): the account, where its password
lives (the OS keyring, never the file), the CA file, the identity certificate, and the
policies: media encryption (SRTP mandatory / optional / off, SDES or DTLS-SRTP keying), what to
do with an incoming sipsec tunnel (draft-gurbani-sip-sipsec-01), S/MIME (RFC 3261 §23).

"Save" writes the account file (``save_account``: atomic, 0600) and the password to the
keyring (``set_password``); every failure is said in words in the dialog, which stays open.

The Identity tab shows the user's identity certificate (AOR, SHA-256 fingerprint in groups,
key) and creates (RSA-3072 in a worker thread), imports (PKCS#12; the password opens the file
once and is not kept) or exports (public PEM only) it through ``softphone.ua`` (RFC 3261
§23.2). The Audio tab lists the sound cards, plays a 1 s test tone on the chosen output and
shows the live level of the chosen input while the tab is shown (the device is closed when
the tab is left or the dialog closes). "Save" writes the chosen microphone and speaker to the
account (``input_device``/``output_device``, "default" for the system default); calls read
them when they open the sound card, so a change applies from the next call on and a call in
progress keeps its devices. A saved device that is not plugged in now is shown as "not
connected: <name>" and kept as it is, never silently replaced by another.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Coroutine
from enum import Enum
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QHideEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from softphone.ua import (
    IDENTITY_ERRORS,
    Account,
    AccountError,
    AudioDeviceError,
    DeviceChoices,
    IdentityStore,
    IdentitySummary,
    InputMeter,
    SecretsError,
    create_identity,
    current_identity,
    export_identity_certificate,
    import_identity,
    play_test_tone,
    running_loop,
    save_account,
    scan_devices,
    set_password,
)
from softphone.ua.account import MediaKeying, SipsecAccept, SmimeMode
from softphone.ua.sound import device_spec, match_device
from ui.call_window import level_bar, set_level

log = logging.getLogger(__name__)

#: Schedules a coroutine (``asyncio.ensure_future`` under qasync).
Runner = Callable[[Coroutine[Any, Any, Any]], Any]

__all__ = ["SettingsDialog"]

#: Item data role marking the "not connected: <name>" entry of a device list.
_MISSING_ROLE = Qt.ItemDataRole.UserRole + 1
_DEVICES_NOTE = (
    "Calls use the microphone and speaker saved here from the next call on; a call in "
    "progress keeps its devices."
)

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

    def __init__(
        self,
        account: Account,
        path: Path | None,
        parent: QWidget | None = None,
        *,
        identity_store: IdentityStore | None = None,
        runner: Runner | None = None,
    ) -> None:
        super().__init__(parent)
        self.account = account
        self.path = path
        self.identity_store = identity_store or IdentityStore.default()
        self.runner: Runner = runner or asyncio.ensure_future
        #: The coroutines started from this dialog (tests await them).
        self.pending: list[Any] = []
        self.meter: InputMeter | None = None
        self.devices: DeviceChoices | None = None
        self.identity: IdentitySummary | None = None
        # Replaceable questions (tests answer them without a modal dialog).
        self.ask_aor: Callable[[str], str | None] = self._ask_aor
        self.confirm_replace: Callable[[str], bool] = self._confirm_replace
        self.ask_pkcs12: Callable[[], tuple[Path, str] | None] = self._ask_pkcs12
        self.ask_export_path: Callable[[], Path | None] = self._ask_export_path
        self.setWindowTitle("Settings")
        self.resize(640, 420)
        column = QVBoxLayout(self)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._account_tab(), "&Account")
        self.tabs.addTab(self._security_tab(), "&Security")
        self.tabs.addTab(self._identity_tab(), "&Identity")
        self.audio_page = self._audio_tab()
        self.tabs.addTab(self.audio_page, "A&udio")
        self.tabs.currentChanged.connect(self._tab_changed)
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
        self.show_identity()

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
        form.addRow("TLS certificate file:", self.identity_label)
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

    # -- identity ------------------------------------------------------------------------------

    def _identity_tab(self) -> QWidget:
        page = QWidget()
        column = QVBoxLayout(page)
        intro = QLabel(
            "Your identity certificate: what the other phone checks on an end-to-end call and "
            "what signs your S/MIME call setup. People compare its fingerprint to trust it."
        )
        intro.setWordWrap(True)
        column.addWidget(intro)
        form = QFormLayout()
        self.id_aor = QLabel()
        self.id_fingerprint = QLabel()
        self.id_fingerprint.setWordWrap(True)
        self.id_fingerprint.setAccessibleName("SHA-256 fingerprint")
        self.id_key = QLabel()
        self.id_valid = QLabel()
        self.id_issuer = QLabel()
        for label in (self.id_aor, self.id_fingerprint, self.id_key, self.id_valid, self.id_issuer):
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.id_fingerprint.font()
        font.setFamily("monospace")
        self.id_fingerprint.setFont(font)
        form.addRow("Address:", self.id_aor)
        form.addRow("SHA-256 fingerprint:", self.id_fingerprint)
        form.addRow("Key:", self.id_key)
        form.addRow("Valid:", self.id_valid)
        form.addRow("Issued by:", self.id_issuer)
        column.addLayout(form)
        row = QHBoxLayout()
        self.create_button = QPushButton("C&reate identity…")
        self.create_button.setToolTip("A new RSA-3072 key and a self-signed certificate")
        self.create_button.clicked.connect(self.create_identity)
        self.import_button = QPushButton("Im&port PKCS#12…")
        self.import_button.setToolTip("A certificate and key from a CA (.p12 / .pfx)")
        self.import_button.clicked.connect(self.import_identity)
        self.export_button = QPushButton("E&xport certificate…")
        self.export_button.setToolTip("The public certificate as PEM (never the private key)")
        self.export_button.clicked.connect(self.export_identity)
        for button in (self.create_button, self.import_button, self.export_button):
            row.addWidget(button)
        row.addStretch(1)
        column.addLayout(row)
        self.identity_status = QLabel()
        self.identity_status.setWordWrap(True)
        column.addWidget(self.identity_status)
        column.addStretch(1)
        return page

    def show_identity(self, summary: IdentitySummary | None = None) -> None:
        """Show ``summary``, or read the stored identity's certificate (no keyring needed)."""
        self.identity = summary
        if summary is None:
            try:
                self.identity = current_identity(self.identity_store)
            except IDENTITY_ERRORS as exc:
                self._identity_rows("(unreadable)", "", "", "", "")
                self.identity_status.setText(f"The stored identity cannot be read: {exc}")
                self.export_button.setEnabled(False)
                return
        shown = self.identity
        if shown is None:
            self._identity_rows("No identity yet", "", "", "", "")
            self.identity_status.setText(
                "Create one, or import the one your CA gave you, to make end-to-end calls "
                "and sign with S/MIME."
            )
            self.export_button.setEnabled(False)
            self.export_button.setToolTip("No identity to export yet")
            return
        key = shown.key + ("  (WEAK: too short)" if shown.weak_key else "")
        end = f"{shown.valid_until:%Y-%m-%d}" + ("  (EXPIRED)" if shown.expired else "")
        self._identity_rows(
            shown.aor or "(none: the certificate names no sip: address)",
            shown.fingerprint,
            key,
            f"{shown.valid_from:%Y-%m-%d} to {end}",
            shown.issuer,
        )
        self.identity_status.setText("\n".join(f"Note: {w}" for w in shown.warnings))
        self.export_button.setEnabled(True)
        self.export_button.setToolTip("The public certificate as PEM (never the private key)")

    def _identity_rows(self, aor: str, fingerprint: str, key: str, valid: str, issuer: str) -> None:
        self.id_aor.setText(aor)
        self.id_fingerprint.setText(fingerprint)
        self.id_key.setText(key)
        self.id_valid.setText(valid)
        self.id_issuer.setText(issuer)

    def _ask_aor(self, suggested: str) -> str | None:
        text, ok = QInputDialog.getText(
            self, "Create identity", "Your SIP address (sip:user@domain):", text=suggested
        )
        return text.strip() if ok and text.strip() else None

    def _confirm_replace(self, what: str) -> bool:
        answer = QMessageBox.warning(
            self,
            "Replace your identity?",
            f"You already have an identity ({what}). Replacing it changes every safety "
            "number: everyone who verified you must compare again.",
            QMessageBox.StandardButton.Cancel | QMessageBox.StandardButton.Yes,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _ask_pkcs12(self) -> tuple[Path, str] | None:
        name, _ = QFileDialog.getOpenFileName(
            self, "Import identity", "", "PKCS#12 (*.p12 *.pfx);;All files (*)"
        )
        if not name:
            return None
        password, ok = QInputDialog.getText(
            self,
            "Import identity",
            f"Password of {Path(name).name} (used once, not stored):",
            QLineEdit.EchoMode.Password,
        )
        return (Path(name), password) if ok else None

    def _ask_export_path(self) -> Path | None:
        name, _ = QFileDialog.getSaveFileName(
            self, "Export certificate", "identity.pem", "PEM certificate (*.pem)"
        )
        return Path(name) if name else None

    def _may_replace(self) -> bool | None:
        """False: keep; True: replace; None: nothing stored."""
        if self.identity is None and not self.identity_store.exists():
            return None
        what = self.identity.aor if self.identity and self.identity.aor else "stored"
        return bool(self.confirm_replace(what))

    def create_identity(self) -> None:
        aor = self.ask_aor(self.account.aor)
        if aor is None:
            return
        replace = self._may_replace()
        if replace is False:
            return
        self.say("Generating an RSA-3072 key… (this takes a moment)")
        self._identity_busy(True)
        self._start(
            "create the identity",
            create_identity(self.identity_store, aor, replace=bool(replace)),
        )

    def import_identity(self) -> None:
        asked = self.ask_pkcs12()
        if asked is None:
            return
        replace = self._may_replace()
        if replace is False:
            return
        path, password = asked
        self.say(f"Importing {path.name}…")
        self._identity_busy(True)
        self._start(
            "import the identity",
            import_identity(self.identity_store, path, password, replace=bool(replace)),
        )

    def _start(self, what: str, job: Coroutine[Any, Any, IdentitySummary]) -> None:
        async def guarded() -> None:
            try:
                summary = await job
            except IDENTITY_ERRORS as exc:
                self.say(f"Could not {what}: {exc}", error=True)
            except Exception as exc:
                log.exception("could not %s", what)
                self.say(f"Could not {what}: an internal error ({type(exc).__name__})", error=True)
            else:
                self.show_identity(summary)
                self.say(f"Done: your identity is now {summary.aor}.")
            finally:
                self._identity_busy(False)

        self.pending.append(self.runner(guarded()))

    def _identity_busy(self, busy: bool) -> None:
        self.create_button.setEnabled(not busy)
        self.import_button.setEnabled(not busy)

    def export_identity(self) -> None:
        path = self.ask_export_path()
        if path is None:
            return
        try:
            export_identity_certificate(self.identity_store, path)
        except IDENTITY_ERRORS as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.say(f"Could not export the certificate to {path}: {reason}", error=True)
            return
        self.say(f"Wrote your public certificate to {path}.")

    # -- audio ---------------------------------------------------------------------------------

    def _audio_tab(self) -> QWidget:
        page = QWidget()
        column = QVBoxLayout(page)
        self.audio_problem = QLabel("Looking for sound devices…")
        self.audio_problem.setWordWrap(True)
        column.addWidget(self.audio_problem)
        form = QFormLayout()
        self.input_combo = QComboBox()
        self.output_combo = QComboBox()
        form.addRow("&Microphone:", self.input_combo)
        form.addRow("Spea&ker:", self.output_combo)
        self.input_level, value = level_bar("Microphone")
        meter_row = QHBoxLayout()
        meter_row.addWidget(self.input_level, 1)
        meter_row.addWidget(value)
        form.addRow("Microphone level:", meter_row)
        column.addLayout(form)
        self.devices_note = QLabel(_DEVICES_NOTE)
        self.devices_note.setWordWrap(True)
        column.addWidget(self.devices_note)
        self.tone_button = QPushButton("Play a &test tone")
        self.tone_button.setToolTip("One second of a 440 Hz tone on the chosen speaker")
        self.tone_button.clicked.connect(self.play_tone)
        self.tone_button.setEnabled(False)
        row = QHBoxLayout()
        row.addWidget(self.tone_button)
        row.addStretch(1)
        column.addLayout(row)
        column.addStretch(1)
        self.input_combo.currentIndexChanged.connect(self._input_changed)
        self.meter_poll = QTimer(self)
        self.meter_poll.setInterval(100)
        self.meter_poll.timeout.connect(self.poll_meter)
        return page

    def _tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.audio_page:
            self.open_audio()
        else:
            self.stop_meter()

    def open_audio(self) -> None:
        """The Audio tab is shown: list the devices (once) and open the chosen input."""

        async def scan_then_meter() -> None:
            if self.devices is None:
                self.show_devices(await scan_devices(fresh=True))
            await self._start_meter()

        self.pending.append(self.runner(scan_then_meter()))

    def show_devices(self, choices: DeviceChoices) -> None:
        """List ``choices`` with the account's saved devices selected (the system default
        when it names none; "not connected: <name>" when the device is not there now)."""
        self.devices = choices
        self.input_combo.blockSignals(True)
        for combo, found, saved, kind in (
            (self.input_combo, choices.inputs, self.account.input_device, "input"),
            (self.output_combo, choices.outputs, self.account.output_device, "output"),
        ):
            combo.clear()
            if found:
                combo.addItem("System default", "default")
            for device in found:
                combo.addItem(f"{device.name} ({device.host_api})", device.name)
            if saved is None or device_spec(saved) is None:
                continue  # the system default: the first item
            match = match_device(saved, found, "input" if kind == "input" else "output")
            if match is not None:
                combo.setCurrentIndex(max(0, combo.findData(match.name)))
                continue
            combo.addItem(f"not connected: {saved.strip()}", saved)
            combo.setItemData(combo.count() - 1, True, _MISSING_ROLE)
            combo.setCurrentIndex(combo.count() - 1)
        self.input_combo.blockSignals(False)
        self.audio_problem.setText(f"Sound devices: {choices.problem}." if choices.problem else "")
        self.audio_problem.setVisible(bool(choices.problem))
        self.tone_button.setEnabled(bool(choices.outputs))
        if not choices.outputs:
            self.tone_button.setToolTip("No speaker to play it on")
        self.input_combo.setEnabled(bool(choices.inputs))
        self.output_combo.setEnabled(bool(choices.outputs))

    @staticmethod
    def _not_connected(combo: QComboBox) -> bool:
        return combo.currentIndex() >= 0 and bool(combo.currentData(_MISSING_ROLE))

    async def _start_meter(self) -> None:
        device = self.input_combo.currentData()
        if device is None or self.tabs.currentWidget() is not self.audio_page:
            return
        await self._stop_meter()
        if self._not_connected(self.input_combo):
            self.input_level.setFormat("not connected")
            return
        meter = InputMeter(str(device))
        self.meter = meter
        try:
            await meter.start()
        except AudioDeviceError as exc:
            self.meter = None
            self.input_level.setFormat("not available")
            self.say(f"The microphone could not be opened: {exc}", error=True)
            return
        if self.meter is not meter or self.tabs.currentWidget() is not self.audio_page:
            await meter.stop()  # the tab was left while the device was opening
            return
        self.meter_poll.start()

    async def _stop_meter(self) -> None:
        meter, self.meter = self.meter, None
        self.meter_poll.stop()
        set_level(self.input_level, float("-inf"))
        if meter is not None:
            await meter.stop()

    def stop_meter(self) -> None:
        """Close the input device (leaving the tab, closing the dialog)."""
        if self.meter is None:
            self.meter_poll.stop()
            return
        if running_loop() is None:  # the dialog outlived its event loop: close the device now
            meter, self.meter = self.meter, None
            self.meter_poll.stop()
            set_level(self.input_level, float("-inf"))
            meter.close_now()
            return
        self.pending.append(self.runner(self._stop_meter()))

    def _input_changed(self) -> None:
        if self.tabs.currentWidget() is self.audio_page:
            self.pending.append(self.runner(self._start_meter()))

    def poll_meter(self) -> None:
        if self.meter is not None:
            set_level(self.input_level, self.meter.level_dbfs)

    def play_tone(self) -> None:
        output = str(self.output_combo.currentData() or "default")
        if self._not_connected(self.output_combo):
            self.say(
                f"That speaker is not connected ({output}): plug it in, or choose another.",
                error=True,
            )
            return

        async def tone() -> None:
            self.tone_button.setEnabled(False)
            self.say(f"Playing a test tone on {self.output_combo.currentText()}…")
            try:
                await play_test_tone(output, seconds=1.0)
            except AudioDeviceError as exc:
                self.say(f"The test tone could not be played: {exc}", error=True)
            else:
                self.say("Test tone played.")
            finally:
                self.tone_button.setEnabled(True)

        self.pending.append(self.runner(tone()))

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
            input_device=self._chosen(self.input_combo, self.account.input_device),
            output_device=self._chosen(self.output_combo, self.account.output_device),
            ca_file=Path(ca) if ca else None,
            srtp=type(self.account.srtp)(self.srtp.currentData()),
            keying=MediaKeying(self.keying.currentData()),
            sipsec_accept=SipsecAccept(self.sipsec.currentData()),
            smime=SmimeMode(self.smime.currentData()),
        )

    @staticmethod
    def _chosen(combo: QComboBox, saved: str | None) -> str | None:
        """The device spec chosen in ``combo``; ``saved`` while the list was never shown (or
        PortAudio found nothing), so opening Settings without the Audio tab changes nothing."""
        data = combo.currentData() if combo.count() else None
        return saved if data is None else str(data)

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
        self.say(
            "Saved. Sound devices apply from the next call; other account changes when the "
            "phone starts again."
        )
        self.saved.emit(account)

    def say(self, text: str, *, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #b22222;" if error else "")

    # -- the input device is closed whenever the dialog goes away ------------------------------

    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802  # Qt's name
        self.stop_meter()
        super().hideEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802  # Qt's name
        self.stop_meter()
        super().closeEvent(event)
