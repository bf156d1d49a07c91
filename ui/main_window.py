"""The main window: accounts with their registration and registrar certificate, a dialer, a log.

It learns everything from the :class:`~ui.bridge.EngineBridge`'s signals and asks
:mod:`ui.presenters` / :mod:`ui.call_presenters` what to show; it never calls into the engine
itself. The dialer takes ``sip:``, ``sips:``, ``sipsec:``, ``tel:`` or a bare ``user@domain``
with the protection chosen explicitly (the typed scheme preselects it; the choice rewrites
the scheme) and emits :attr:`MainWindow.dial_requested`; :class:`ui.calls.CallManager`
places the call and reports failures back in words (:meth:`MainWindow.show_dial_error`).
Below: the call history and the status log, as tabs (Ctrl+Tab).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QBrush, QCloseEvent, QColor, QFontDatabase, QKeySequence
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
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from softphone.ua import Event, TrustDecision
from ui.bridge import EngineBridge
from ui.call_presenters import (
    DialError,
    describe_call_event,
    parse_dial,
    rewrite_scheme,
    typed_protection,
)
from ui.contacts_view import ContactsView
from ui.history_view import HistoryView
from ui.presenters import (
    PROTECTIONS,
    AccountPresenter,
    AccountView,
    Protection,
    describe_event,
    wrap_groups,
)
from ui.warming import polish_and_paint

__all__ = ["MainWindow"]

_ACCOUNT, _STATE, _CERTIFICATE = range(3)


class MainWindow(QMainWindow):
    """The phone's window. :attr:`closed` tells the application to shut the engine down."""

    closed = Signal()
    settings_requested = Signal()
    dial_requested = Signal(str, str, object)  # (account AOR, URI for UserAgent.call, Protection)

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.presenters: dict[str, AccountPresenter] = {}
        self.items: dict[str, QTreeWidgetItem] = {}
        self._shown: dict[str, AccountView] = {}  # what each row shows (_show)
        self.setWindowTitle("Softphone")
        self.resize(820, 600)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self._accounts_box())
        layout.addWidget(self._dialer_box())
        self.tabs = QTabWidget()
        self.history_view = HistoryView()
        self.history_problem = QLabel()
        self.history_problem.setWordWrap(True)
        self.history_problem.setVisible(False)
        history_page = QWidget()
        history_column = QVBoxLayout(history_page)
        history_column.setContentsMargins(0, 0, 0, 0)
        history_column.addWidget(self.history_problem)
        history_column.addWidget(self.history_view)
        self.tabs.addTab(history_page, "&History")
        self.contacts_view = ContactsView()
        self.tabs.addTab(self.contacts_view, "C&ontacts")
        #: The account whose contacts changed since the pane last showed them (None: none).
        self._contacts_stale: str | None = None
        self._contacts_timer = QTimer(self)  # a child: it goes with the window
        self._contacts_timer.setSingleShot(True)
        self._contacts_timer.setInterval(0)
        self._contacts_timer.timeout.connect(self._refresh_stale_contacts)
        self.contacts_view.installEventFilter(self)
        self.tabs.addTab(self._status_box(), "Status &log")
        layout.addWidget(self.tabs, 1)
        #: Whether :meth:`warm_hidden_tabs` has done every hidden tab (and is doing it).
        self.warmed = False
        self._warming = False
        self.setCentralWidget(central)
        menu = self.menuBar().addMenu("&Phone")
        settings = QAction("&Settings…", self)
        settings.setShortcut(QKeySequence("Ctrl+,"))
        settings.triggered.connect(self.settings_requested)
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Quit))
        quit_action.triggered.connect(self.close)
        menu.addAction(settings)
        menu.addAction(quit_action)
        self.settings_action = settings
        self.statusBar().showMessage("Ready")

        bridge.dialog_parent = self
        bridge.any_event.connect(self._on_event)
        bridge.registering.connect(self._on_registering)
        bridge.trust_decided.connect(self._on_decided)
        bridge.sips_fallback_offered.connect(self.offer_sips_fallback)

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
        self.accounts.setMaximumHeight(110)
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
        who = QLabel("&Who:")
        self.dial = QLineEdit()
        self.dial.setPlaceholderText("sip:bob@example.test")
        self.dial.setClearButtonEnabled(True)
        self.dial.setToolTip("sip:, sips:, sipsec:, tel: or just user@domain")
        who.setBuddy(self.dial)
        row.addWidget(who)
        row.addWidget(self.dial, 1)
        how = QLabel("&Protection:")
        self.protection = QComboBox()
        for protection in PROTECTIONS:
            self.protection.addItem(protection.label, protection)
        how.setBuddy(self.protection)
        self.protection.currentIndexChanged.connect(lambda _: self._protection_chosen())
        row.addWidget(how)
        row.addWidget(self.protection)
        self.call_button = QPushButton("&Call")
        self.call_button.clicked.connect(self._dial)
        self.dial.returnPressed.connect(self._dial)
        self.dial.textEdited.connect(self._typed)
        row.addWidget(self.call_button)
        column.addLayout(row)
        self.protection_label = QLabel()
        self.protection_label.setObjectName("protectionWords")
        self.protection_label.setWordWrap(True)
        column.addWidget(self.protection_label)
        self.dial_error = QLabel()
        self.dial_error.setObjectName("dialError")
        self.dial_error.setWordWrap(True)
        self.dial_error.setStyleSheet("color: #b22222;")
        self.dial_error.setVisible(False)
        column.addWidget(self.dial_error)
        # A sipsec call the path could not carry: sips: to the same address, only if the
        # person says so, with what it gives away in the button's neighbourhood (UX.md).
        self.fallback_words = QLabel()
        self.fallback_words.setObjectName("fallbackWords")
        self.fallback_words.setWordWrap(True)
        self.fallback_button = QPushButton("Call with &SIPS instead")
        self.fallback_button.clicked.connect(self._fall_back)
        fallback_row = QHBoxLayout()
        fallback_row.addWidget(self.fallback_words, 1)
        fallback_row.addWidget(self.fallback_button, 0, Qt.AlignmentFlag.AlignTop)
        column.addLayout(fallback_row)
        self._fallback: tuple[str, str] | None = None  # (aor, sips: URI) on offer
        self._hide_fallback()
        self._show_protection()
        self._update_call_button()
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
        self._update_call_button()
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
        self._log(describe_call_event(event) or describe_event(event))
        self._show(self.add_account(aor).apply(event))
        if getattr(event, "name", "") in ("peer_identity", "registered"):
            self.refresh_contacts_soon(aor)

    def refresh_contacts_soon(self, aor: str) -> None:
        """:meth:`refresh_contacts` for ``aor``, not in this callback: on the next turn of
        the loop when the contacts pane is on screen (several events in a turn: one
        refresh), else when it comes on screen. Reading the ledger and rebuilding the pane
        costs 5-6 ms; at call set-up, in the callback that delivers an engine event, it
        added to the loop's longest stalls (issue 7: never 20 ms)."""
        self._contacts_stale = aor
        if self.contacts_view.isVisible():
            self._contacts_timer.start()

    def warm_hidden_tabs(self, idle: Callable[[], bool] = lambda: True) -> None:
        """What the first showing of a tab would otherwise do mid-call, done while the phone
        is idle (the call manager asks, after start-up): the contacts read in, every widget
        of the hidden tabs polished (style, fonts), laid out, and painted once where nobody
        sees it; one tab per turn of the loop, and none once ``idle()`` is False (a call
        began: the rest waits for the next idle time). The contacts tab first brought to
        the front took 28-47 ms before (issue 7: 20 ms)."""
        if self.warmed or self._warming or not idle():
            return
        self._warming = True
        if self._contacts_stale is not None or self.contacts_view.ledger is None:
            self.refresh_contacts(self._contacts_stale)
        pages = [self.tabs.widget(i) for i in range(self.tabs.count())]
        QTimer.singleShot(1, self, functools.partial(self._warm_next, pages, idle))

    def _warm_next(self, pages: list[QWidget], idle: Callable[[], bool]) -> None:
        if not pages or not idle():
            self.warmed, self._warming = not pages, False
            return
        page, rest = pages[0], pages[1:]
        QTimer.singleShot(1, self, functools.partial(self._warm_next, rest, idle))
        if page is self.tabs.currentWidget():
            return  # on screen: Qt has done it
        polish_and_paint(page)

    def _refresh_stale_contacts(self) -> None:
        if self._contacts_stale is not None:
            self.refresh_contacts(self._contacts_stale)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802  # Qt's name
        # Shown (its tab chosen, or the window shown with it in front): before it is painted.
        if watched is self.contacts_view and event.type() == QEvent.Type.Show:
            self._refresh_stale_contacts()
        return super().eventFilter(watched, event)

    def refresh_contacts(self, aor: str | None = None) -> None:
        """Show the trust ledger of ``aor``'s user agent (default: the selected account),
        now."""
        self._contacts_stale = None
        self._contacts_timer.stop()
        aor = aor or self.selected_aor()
        if aor is None:
            return
        ledger, identity, problem, path = self.bridge.contacts(aor)
        pins = self.bridge.pin_store_path(aor)
        self.contacts_view.show_ledger(ledger, identity, problem, path, pins_path=pins)

    def _show(self, view: AccountView) -> None:
        if self._shown.get(view.aor) == view:
            return  # most engine events (a call's) change nothing of the account: 0.3 ms
        self._shown[view.aor] = view
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

    def _typed(self, text: str) -> None:
        """The typed scheme preselects the protection (sip: plain, sips: hop, sipsec: e2e)."""
        self._clear_dial_error()
        wanted = typed_protection(text)
        if wanted is not None and wanted is not self.selected_protection:
            self.protection.blockSignals(True)
            self.protection.setCurrentIndex(PROTECTIONS.index(wanted))
            self.protection.blockSignals(False)
            self._show_protection()

    def _protection_chosen(self) -> None:
        """The chosen protection rewrites a typed scheme, so the two never disagree."""
        self._show_protection()
        text = self.dial.text()
        rewritten = rewrite_scheme(text, self.selected_protection)
        if rewritten != text:
            self.dial.setText(rewritten)

    def selected_aor(self) -> str | None:
        """The account to call from: the selected one, else the first."""
        item = self.accounts.currentItem() or self.accounts.topLevelItem(0)
        return None if item is None else item.text(_ACCOUNT)

    def _update_call_button(self) -> None:
        has_account = self.accounts.topLevelItemCount() > 0
        self.call_button.setEnabled(has_account)
        self.call_button.setToolTip(
            "Call (Enter in the address field)"
            if has_account
            else "Add an account first: softphone gui --account FILE"
        )

    def _dial(self) -> None:
        aor = self.selected_aor()
        if aor is None:
            self.show_dial_error(
                "No account to call from: start with softphone gui --account FILE."
            )
            return
        domain = aor.split("@", 1)[1].split(";", 1)[0] if "@" in aor else None
        try:
            target = parse_dial(self.dial.text(), self.selected_protection, domain)
        except DialError as exc:
            self.show_dial_error(str(exc))
            return
        self._clear_dial_error()
        self._log(f"Calling {target.uri} from {aor} ({target.protection.label})")
        self.dial_requested.emit(aor, target.uri, target.protection)

    def show_dial_error(self, text: str) -> None:
        """Say in words why a call could not be placed (the dialer keeps its text)."""
        self.dial_error.setText(text)
        self.dial_error.setVisible(True)
        self._log(f"Call failed: {text}")

    def _clear_dial_error(self) -> None:
        self.dial_error.clear()
        self.dial_error.setVisible(False)
        self._hide_fallback()

    def offer_sips_fallback(self, aor: str, uri: str, reason: str) -> None:
        """After a ``sipsec:`` call the path could not carry (``reason``): offer the same
        address as ``sips:``, saying what that gives away; nothing happens unless the person
        presses the button (draft-gurbani-sip-sipsec-01 §6.6; never a silent downgrade)."""
        if not uri.lower().startswith("sipsec:"):
            return
        target = "sips:" + uri.split(":", 1)[1]
        self._fallback = (aor, target)
        self.fallback_words.setText(
            f"You can call {target} instead: {Protection.SIPS.words.lower()}. That call "
            "would not be end to end."
        )
        for widget in (self.fallback_words, self.fallback_button):
            widget.setVisible(True)
        self.fallback_button.setFocus()

    def _hide_fallback(self) -> None:
        self._fallback = None
        self.fallback_words.clear()
        for widget in (self.fallback_words, self.fallback_button):
            widget.setVisible(False)

    def _fall_back(self) -> None:
        if self._fallback is None:
            return
        aor, target = self._fallback
        self.dial.setText(target)
        self._typed(target)
        self._clear_dial_error()
        self._log(f"Calling {target} from {aor} ({Protection.SIPS.label}), as you chose")
        self.dial_requested.emit(aor, target, Protection.SIPS)

    def set_dial_text(self, text: str) -> None:
        """Put ``text`` (a URI from the command line or another instance) in the dialer."""
        self.dial.setText(text)
        self._typed(text)
        self.dial.setFocus()

    def show_history(self, entries: Iterable[Any], problem: str = "") -> None:
        self.history_view.show_entries(entries)
        self.history_problem.setText(problem)
        self.history_problem.setVisible(bool(problem))

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
