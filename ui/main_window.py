"""The main window: accounts with their registration and registrar certificate, a dialer, a log.

A skeleton that grows with the engine. It learns everything from the
:class:`~ui.bridge.EngineBridge`'s signals and asks :mod:`ui.presenters` what to show; it
never calls into the engine itself. Calls are not in the engine yet: the Call button is
there, disabled, and says so.
"""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QCloseEvent, QColor, QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPlainTextEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from softphone.ua import Event, TrustDecision
from ui.bridge import EngineBridge
from ui.presenters import (
    CALL_DISABLED_TOOLTIP,
    PROTECTIONS,
    AccountPresenter,
    AccountView,
    Protection,
    describe_event,
    wrap_groups,
)

__all__ = ["MainWindow"]

_ACCOUNT, _STATE, _CERTIFICATE = range(3)


class MainWindow(QMainWindow):
    """The phone's window. :attr:`closed` tells the application to shut the engine down."""

    closed = Signal()

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.presenters: dict[str, AccountPresenter] = {}
        self.items: dict[str, QTreeWidgetItem] = {}
        self.setWindowTitle("Softphone")
        self.resize(820, 600)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self._accounts_box(), 1)
        layout.addWidget(self._dialer_box())
        layout.addWidget(self._status_box(), 1)
        self.setCentralWidget(central)
        self.statusBar().showMessage("Ready")

        bridge.dialog_parent = self
        bridge.any_event.connect(self._on_event)
        bridge.registering.connect(self._on_registering)
        bridge.trust_decided.connect(self._on_decided)

    # -- building ----------------------------------------------------------------------------

    def _accounts_box(self) -> QGroupBox:
        box = QGroupBox("Accounts")
        column = QVBoxLayout(box)
        self.accounts = QTreeWidget()
        self.accounts.setHeaderLabels(["Account", "Registration", "Registrar certificate"])
        self.accounts.setRootIsDecorated(False)
        self.accounts.setUniformRowHeights(True)
        header = self.accounts.header()
        header.setSectionResizeMode(_ACCOUNT, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(_STATE, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.accounts.currentItemChanged.connect(lambda *_: self._show_selected())
        column.addWidget(self.accounts, 1)

        details = QFormLayout()
        self.state_label = QLabel("No account. Start with: softphone gui --account FILE")
        self.state_label.setWordWrap(True)
        self.state_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.signalling_label = QLabel("—")
        self.certificate_label = QLabel("—")
        self.certificate_label.setWordWrap(True)
        self.fingerprint_label = QLabel("—")
        self.fingerprint_label.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.fingerprint_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        details.addRow("Status:", self.state_label)
        details.addRow("Call setup:", self.signalling_label)
        details.addRow("Registrar certificate:", self.certificate_label)
        details.addRow("SHA-256:", self.fingerprint_label)
        column.addLayout(details)
        return box

    def _dialer_box(self) -> QGroupBox:
        box = QGroupBox("Call")
        column = QVBoxLayout(box)
        row = QHBoxLayout()
        self.dial = QLineEdit()
        self.dial.setPlaceholderText("sip:bob@example.test")
        self.dial.setClearButtonEnabled(True)
        row.addWidget(self.dial, 1)
        self.protection = QComboBox()
        for protection in PROTECTIONS:
            self.protection.addItem(protection.label, protection)
        self.protection.currentIndexChanged.connect(lambda _: self._show_protection())
        row.addWidget(self.protection)
        self.call_button = QPushButton("Call")
        self.call_button.setEnabled(False)
        self.call_button.setToolTip(CALL_DISABLED_TOOLTIP)
        row.addWidget(self.call_button)
        column.addLayout(row)
        self.protection_label = QLabel()
        self.protection_label.setObjectName("protectionWords")
        column.addWidget(self.protection_label)
        self._show_protection()
        return box

    def _status_box(self) -> QGroupBox:
        box = QGroupBox("Status")
        column = QVBoxLayout(box)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(1000)
        column.addWidget(self.log)
        return box

    # -- accounts ----------------------------------------------------------------------------

    def add_account(self, aor: str) -> AccountPresenter:
        """Add a row for ``aor`` (before its user agent starts, so no event is missed)."""
        if aor in self.presenters:
            return self.presenters[aor]
        presenter = AccountPresenter(aor)
        item = QTreeWidgetItem([aor, "", ""])
        self.accounts.addTopLevelItem(item)
        self.presenters[aor] = presenter
        self.items[aor] = item
        self._show(presenter.view)
        if self.accounts.currentItem() is None:
            self.accounts.setCurrentItem(item)
        return presenter

    def view(self, aor: str) -> AccountView:
        return self.presenters[aor].view

    def _on_registering(self, aor: str) -> None:
        self._show(self.add_account(aor).registering())

    def _on_decided(self, aor: str, decision: object) -> None:
        if aor in self.presenters:
            decision = TrustDecision(decision)
            self._show(self.presenters[aor].decided(decision))
            self._log(f"You chose: {_DECISION_WORDS[decision]}")

    def _on_event(self, aor: str, event: Event) -> None:
        self._log(describe_event(event))
        self._show(self.add_account(aor).apply(event))

    def _show(self, view: AccountView) -> None:
        item = self.items[view.aor]
        item.setText(_STATE, f"● {view.state}")
        item.setForeground(_STATE, QBrush(QColor(view.colour)))
        item.setToolTip(_STATE, view.detail)
        certificate = view.certificate
        if view.fingerprint is not None:
            short = " ".join(view.fingerprint.split()[:2])
            certificate = f"{certificate} · SHA-256 {short} …"
        item.setText(_CERTIFICATE, certificate)
        item.setForeground(_CERTIFICATE, QBrush(QColor(view.certificate_tone.colour)))
        item.setToolTip(_CERTIFICATE, view.fingerprint or view.certificate)
        if self.accounts.currentItem() is item:
            self._show_selected()

    def _show_selected(self) -> None:
        item = self.accounts.currentItem()
        if item is None:
            return
        view = self.presenters[item.text(_ACCOUNT)].view
        state = f"<b style='color:{view.colour}'>{_escape(view.state)}</b>"
        if view.detail:
            state += f" — {_escape(view.detail)}"
        self.state_label.setText(state)
        self.signalling_label.setText(view.signalling or "—")
        self.certificate_label.setText(
            f"<span style='color:{view.certificate_tone.colour}'>{_escape(view.certificate)}</span>"
        )
        self.fingerprint_label.setText(wrap_groups(view.fingerprint) if view.fingerprint else "—")

    # -- dialer and log ----------------------------------------------------------------------

    @property
    def selected_protection(self) -> Protection:
        return Protection(self.protection.currentData())

    def _show_protection(self) -> None:
        self.protection_label.setText(f"Call setup: {self.selected_protection.words}")

    def _log(self, text: str) -> None:
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        self.log.appendPlainText(f"{stamp}  {text}")
        self.statusBar().showMessage(text)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802  # Qt's name
        self.closed.emit()
        super().closeEvent(event)


_DECISION_WORDS = {
    TrustDecision.REJECT: "don't connect",
    TrustDecision.ACCEPT_ONCE: "connect this time",
    TrustDecision.ALWAYS_TRUST: "always trust this certificate",
}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
