"""The contacts view: the trust ledger's contacts with their verified state, and the details of
one (every certificate, the history, the safety number in digits and as a QR code, and the
contact's own S/MIME setting).

Words and colour together (UX.md: never colour alone): the state column reads "● verified",
"● changed"…; the details repeat the word in a badge and say what it means. All wording comes
from :mod:`ui.contacts_presenters`.

Issue 7 ("the event loop never stalls more than 20 ms during a call"): details are made only
for the contact shown, when it is shown, and the two slow parts are kept off the loop's
callbacks when an asyncio loop (qasync) is running: the safety number (an iterated hash, 12 ms
per new key, worked out on the loop a millisecond at a time,
:func:`softphone.ua.safety_number_in_slices`) and the QR code (segno, in a worker thread,
:func:`ui.qr.qr_pixmap_async`). A
result is shown only if the same contact and number are still shown when it arrives; both are
kept, so the refresh after every engine event redraws nothing. With no running loop (a
picture, a test without qasync) they are made at once.

The S/MIME setting (issue 6, RFC 3261 §23.3) is saved as ``softphone contacts smime`` saves
it (:func:`softphone.ua.contacts.save_contact_smime`: the ledger re-read, set, written
atomically), in a worker thread too (it fsyncs); a save that fails says why in words and the
combo box goes back to the stored value.

Everything else ``softphone contacts`` can do is here too (issue 7), through the same ledger
steps (:mod:`softphone.ua.contacts`: the file re-read, changed, written atomically, the pins
brought in line as the CLI does; in a worker thread when a loop runs): "We compared the safety
number" beside the number (UX.md "Safety number"); "Accept the new certificate…" only for a
*changed* contact, in a red frame, behind a loud confirmation whose accept button works only
once the person ticks that they compared the new number (as the trust dialog's changed
variant, ui/trust_dialog.py); "Add a certificate…" (a PEM file and the AOR, judged as
``softphone contacts add`` judges it) and "Export the ledger…" (JSON, 0600, atomic) on the
toolbar; "Forget this contact…" with a confirmation naming the contact. The file choosers and
confirmations are attributes (``ask_certificate_file``, ``ask_contact_aor``,
``ask_export_path``, ``confirm_accept_change``, ``confirm_forget``) that tests replace. What
happened, or why not, is said in words under the toolbar (:attr:`ContactsView.notice`) and the
list is shown again from the file as saved.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final, TypeVar

import shiboken6
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontDatabase,
    QPixmap,
    QResizeEvent,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStyle,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from softphone.ua import Contact, TrustLedger, running_loop, safety_number_in_slices
from softphone.ua.contacts import (
    CONTACT_ERRORS,
    LedgerError,
    Observation,
    ProtectionMode,
    accept_contact_change,
    add_contact_certificate,
    export_contacts,
    forget_contact,
    save_contact_smime,
    verify_contact,
)
from ui.contacts_presenters import (
    ACCEPT_BUTTON,
    ADD_BUTTON,
    EXPORT_BUTTON,
    FORGET_BUTTON,
    NOT_CHANGEABLE,
    SMIME_CHOICES,
    VERIFY_BUTTON,
    AcceptChangeWords,
    CertificateView,
    ContactDetails,
    ContactRow,
    ForgetWords,
    SafetyView,
    accept_change_words,
    added_words,
    contact_actions,
    contact_rows,
    contact_safety,
    contact_summary,
    forget_words,
    not_done_words,
    safety_key,
    smime_explanation,
    smime_index,
    verify_hint,
    with_safety,
)
from ui.qr import qr_pixmap, qr_pixmap_async
from ui.security_panel import badge_style

__all__ = ["AcceptChangeDialog", "ContactsView"]

log = logging.getLogger(__name__)

_AOR, _STATE, _FINGERPRINT = range(3)

_WORKING: Final = "Working out the safety number…"
_QR_KEPT: Final = 16  # QR pixmaps kept (payload, scale): a refresh redraws none of them
_ERROR_STYLE: Final = "color: #b22222;"
_LOUD_FRAME: Final = (
    "QFrame#changeBox { border: 2px solid #b3261e; border-radius: 4px; background: #fdecea; }"
    " QFrame#changeBox QLabel { color: #7a1712; border: none; background: transparent; }"
)
_LOUD_BANNER: Final = (
    "QFrame#banner { background: #b3261e; border-radius: 4px; }"
    " QFrame#banner QLabel { color: white; }"
)

_TIPS: Final = {
    "addCertificate": "Record a certificate someone gave you (a PEM file)",
    "exportLedger": "Save every contact and its history as JSON, for an audit",
    "verifyContact": "Mark this certificate verified: you compared the safety number",
    "acceptChangeButton": "Go on with the new certificate without verifying it",
    "forgetContact": "Remove this contact and everything known about it",
}

SafetyKey = tuple[str, str, bytes, bytes]
T = TypeVar("T")


def _label(text: str = "", *, selectable: bool = True, mono: bool = False) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if mono:
        label.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    return label


class AcceptChangeDialog(QDialog):
    """The loud confirmation before going on with a changed certificate: a red banner and a
    critical icon (the trust dialog's changed variant), the new certificate's SHA-256, and an
    accept button that stays disabled until the person ticks that they compared the new
    safety number. "Not now" is the default and focused button: Enter and Escape accept
    nothing."""

    def __init__(self, words: AcceptChangeWords, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(words.title.replace("&", ""))
        self.setMinimumWidth(560)
        column = QVBoxLayout(self)
        banner = QFrame()
        banner.setObjectName("banner")
        banner.setStyleSheet(_LOUD_BANNER)
        row = QHBoxLayout(banner)
        row.setContentsMargins(12, 12, 12, 12)
        icon = QLabel()
        critical = QStyle.StandardPixmap.SP_MessageBoxCritical
        icon.setPixmap(self.style().standardIcon(critical).pixmap(40, 40))
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        row.addWidget(icon)
        words_column = QVBoxLayout()
        title = _label(words.title, selectable=False)
        font = QFont(title.font())
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        title.setFont(font)
        words_column.addWidget(title)
        self.consequence = _label(words.consequence)
        words_column.addWidget(self.consequence)
        row.addLayout(words_column, 1)
        column.addWidget(banner)
        column.addWidget(_label(words.meaning))
        form = QFormLayout()
        form.addRow("New certificate (SHA-256):", _label(words.fingerprint, mono=True))
        column.addLayout(form)
        self.promise = QCheckBox(words.promise)
        self.promise.setObjectName("comparedPromise")
        column.addWidget(self.promise)
        self.accept_button = QPushButton(words.accept)
        self.accept_button.setObjectName("acceptChange")
        self.accept_button.setEnabled(False)
        self.accept_button.setAutoDefault(False)
        self.cancel_button = QPushButton(words.cancel)
        self.cancel_button.setDefault(True)
        self.cancel_button.setAutoDefault(True)
        self.promise.toggled.connect(self.accept_button.setEnabled)
        self.accept_button.clicked.connect(self._accept_if_promised)
        self.cancel_button.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        # The accept button apart on the left, the default on the right where a hurried
        # click lands (as the trust dialog).
        buttons.addWidget(self.accept_button)
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        column.addLayout(buttons)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802  # Qt's name
        super().showEvent(event)
        self.cancel_button.setFocus(Qt.FocusReason.ActiveWindowFocusReason)

    def _accept_if_promised(self) -> None:
        if self.promise.isChecked():  # belt and braces: the button is disabled otherwise
            self.accept()


#: Narrower than this, the details go under the list: beside it they were ~350 px wide in the
#: demo's split window, narrower than the S/MIME row and the certificate boxes, and scrolled
#: sideways with every sentence cut at the edge.
SIDE_BY_SIDE_WIDTH = 760


class ContactsView(QWidget):
    """List on the left, details on the right (under it when narrow: :data:`SIDE_BY_SIDE_WIDTH`);
    :meth:`show_ledger` fills it."""

    #: The AOR whose S/MIME setting was saved (the ledger file holds it now).
    smime_saved = Signal(str)
    #: The ledger file was changed from here (verify, accept, add, forget: the AOR; export:
    #: ""); the list already shows the file as saved.
    ledger_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ledger: TrustLedger | None = None
        self.ledger_path: Path | None = None
        self.own_identity: Any = None
        self.rows: list[ContactRow] = []
        self.details: ContactDetails | None = None
        #: The certificates the boxes under the details show (rebuilt only when they change:
        #: ~12 new widgets to polish, lay out and paint at each refresh otherwise).
        self._boxes_of: tuple[CertificateView, ...] | None = None
        self._shown_key: SafetyKey | None = None  # the safety number the details wait for
        self._safety: dict[SafetyKey, SafetyView | None] = {}
        self._qr_wanted: tuple[bytes, int] | None = None
        self._qr_kept: dict[tuple[bytes, int], QPixmap] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._saving = False
        self.pins_path: Path | None = None
        # File choosers and confirmations: replaced by tests (as ui/settings.py does).
        self.ask_certificate_file: Callable[[], Path | None] = self._ask_certificate_file
        self.ask_contact_aor: Callable[[str], str | None] = self._ask_contact_aor
        self.ask_export_path: Callable[[], Path | None] = self._ask_export_path
        self.confirm_accept_change: Callable[[AcceptChangeWords], bool] = self._confirm_accept
        self.confirm_forget: Callable[[ForgetWords], bool] = self._confirm_forget

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.problem = _label()
        self.problem.setStyleSheet(_ERROR_STYLE)
        self.problem.setVisible(False)
        layout.addWidget(self.problem)
        toolbar = QHBoxLayout()
        self.add_button = QPushButton(ADD_BUTTON)
        self.add_button.setObjectName("addCertificate")
        self.add_button.clicked.connect(self.add_certificate)
        self.export_button = QPushButton(EXPORT_BUTTON)
        self.export_button.setObjectName("exportLedger")
        self.export_button.clicked.connect(self.export)
        toolbar.addWidget(self.add_button)
        toolbar.addWidget(self.export_button)
        toolbar.addStretch(1)
        layout.addLayout(toolbar)
        self.notice = _label()
        self.notice.setObjectName("contactsNotice")
        self.notice.setVisible(False)
        layout.addWidget(self.notice)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        self.list = QTreeWidget()
        self.list.setHeaderLabels(["Contact", "Who is it", "Certificate (SHA-256)"])
        self.list.setRootIsDecorated(False)
        self.list.setUniformRowHeights(True)
        self.list.setAccessibleName("Contacts")
        header = self.list.header()
        header.setSectionResizeMode(_AOR, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(_STATE, QHeaderView.ResizeMode.ResizeToContents)
        self.list.currentItemChanged.connect(lambda *_: self._show_selected())
        splitter.addWidget(self.list)

        self.scroller = QScrollArea()
        self.scroller.setWidgetResizable(True)
        self.panel = QWidget()
        self.panel_layout = QVBoxLayout(self.panel)
        self.scroller.setWidget(self.panel)
        splitter.addWidget(self.scroller)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([400, 600])
        self.splitter = splitter
        layout.addWidget(splitter, 1)

        self.title = _label()
        font = QFont(self.title.font())
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        self.title.setFont(font)
        self.badge = QLabel()
        self.badge.setObjectName("contactState")
        self.state_words = _label()
        state_row = QHBoxLayout()
        state_row.addWidget(self.badge, 0, Qt.AlignmentFlag.AlignTop)
        state_row.addWidget(self.state_words, 1)

        # The changed state's answer: loud, apart, behind a confirmation (AcceptChangeDialog).
        self.change_box = QFrame()
        self.change_box.setObjectName("changeBox")
        self.change_box.setStyleSheet(_LOUD_FRAME)
        change_row = QHBoxLayout(self.change_box)
        self.change_words = _label(
            "Compare the NEW safety number with this person before going on. If it matches, "
            "\u201cWe compared the safety number\u201d below marks it verified; to go on "
            "without that:",
            selectable=False,
        )
        self.accept_button = QPushButton(ACCEPT_BUTTON)
        self.accept_button.setObjectName("acceptChangeButton")
        self.accept_button.clicked.connect(self.accept_change)
        change_row.addWidget(self.change_words, 1)
        change_row.addWidget(self.accept_button, 0, Qt.AlignmentFlag.AlignVCenter)

        # The contact's own S/MIME setting (RFC 3261 §23.3): a label that names it (Alt+M),
        # the choice in words, what it does, and why a save failed.
        self.smime_label = QLabel("S/&MIME for calls with this contact:")
        self.smime = QComboBox()
        self.smime.setObjectName("contactSmime")
        self.smime.setAccessibleName("S/MIME for calls with this contact")
        for words, _ in SMIME_CHOICES:
            self.smime.addItem(words)
        self.smime.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.smime_label.setBuddy(self.smime)
        self.smime.activated.connect(self._smime_chosen)
        smime_row = QHBoxLayout()
        smime_row.addWidget(self.smime_label)
        smime_row.addWidget(self.smime)
        smime_row.addStretch(1)
        self.smime_words = _label(selectable=False)
        self.smime_error = _label()
        self.smime_error.setObjectName("contactSmimeError")
        self.smime_error.setStyleSheet(_ERROR_STYLE)

        self.safety_title = QLabel("<b>Safety number</b> with this contact's current certificate")
        self.safety_number = _label(mono=True)
        big = QFont(self.safety_number.font())
        big.setPointSizeF(big.pointSizeF() * 1.2)
        self.safety_number.setFont(big)
        self.qr = QLabel()
        self.qr.setObjectName("contactQr")
        self.qr.setAccessibleName("Safety number as a QR code")
        safety_row = QHBoxLayout()
        safety_row.addWidget(self.safety_number, 1, Qt.AlignmentFlag.AlignTop)
        safety_row.addWidget(self.qr, 0, Qt.AlignmentFlag.AlignTop)
        self.verify_button = QPushButton(VERIFY_BUTTON)
        self.verify_button.setObjectName("verifyContact")
        self.verify_button.clicked.connect(self.verify)
        self.verify_hint = _label(selectable=False)
        verify_row = QHBoxLayout()
        verify_row.addWidget(self.verify_button, 0, Qt.AlignmentFlag.AlignTop)
        verify_row.addWidget(self.verify_hint, 1)
        self.forget_button = QPushButton(FORGET_BUTTON)
        self.forget_button.setObjectName("forgetContact")
        self.forget_button.clicked.connect(self.forget)
        forget_row = QHBoxLayout()
        forget_row.addWidget(self.forget_button)
        forget_row.addStretch(1)
        self.certificates = QVBoxLayout()
        self.history_title = QLabel("<b>History</b>")
        self.history = _label(mono=True)
        self.empty = _label("No contact yet: the certificates of the people you call "
                            "end to end are kept here.", selectable=False)  # fmt: skip
        for widget in (self.empty, self.title):
            self.panel_layout.addWidget(widget)
        self.panel_layout.addLayout(state_row)
        self.panel_layout.addWidget(self.change_box)
        self.panel_layout.addLayout(smime_row)
        self.panel_layout.addWidget(self.smime_words)
        self.panel_layout.addWidget(self.smime_error)
        self.panel_layout.addWidget(self.safety_title)
        self.panel_layout.addLayout(safety_row)
        self.panel_layout.addLayout(verify_row)
        self.panel_layout.addLayout(self.certificates)
        self.panel_layout.addWidget(self.history_title)
        self.panel_layout.addWidget(self.history)
        self.panel_layout.addLayout(forget_row)
        self.panel_layout.addStretch(1)
        self._show_details(None)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802  # Qt's name
        wanted = (
            Qt.Orientation.Horizontal
            if event.size().width() >= SIDE_BY_SIDE_WIDTH
            else Qt.Orientation.Vertical
        )
        if self.splitter.orientation() is not wanted:
            self.splitter.setOrientation(wanted)
            # The list as high as a few contacts need; the details take the rest.
            horizontal = wanted is Qt.Orientation.Horizontal
            self.splitter.setSizes([400, 600] if horizontal else [150, 450])
        super().resizeEvent(event)

    # -- filling ---------------------------------------------------------------------------

    def show_ledger(
        self,
        ledger: TrustLedger | None,
        own_identity: Any = None,
        problem: str = "",
        ledger_path: Path | None = None,
        *,
        pins_path: Path | None = None,
    ) -> None:
        """Show the contacts of ``ledger`` (``None``: none); ``own_identity`` (``.cert``,
        ``.aor``) adds safety numbers; ``problem`` says why the ledger could not be read;
        ``ledger_path`` is the file the S/MIME setting and every other change are saved to
        (``None``: shown, not changeable); ``pins_path`` the pin store that verify, accept
        and forget bring in line (``None``: left to the user agent, which does it before it
        judges a sipsec peer). Only the selected contact's details are made."""
        selected = self.selected_aor()
        self.ledger, self.own_identity, self.ledger_path = ledger, own_identity, ledger_path
        if pins_path is not None:
            self.pins_path = pins_path
        self.problem.setText(problem)
        self.problem.setVisible(bool(problem))
        rows = [] if ledger is None else contact_rows(ledger)
        if rows == self.rows and self.list.topLevelItemCount() == len(rows):
            self._show_selected()  # the same list: its items and selection stay as they are
            return
        self.rows = rows
        self.list.blockSignals(True)  # one _show_selected below, not one per row
        try:
            self.list.clear()
            for row in self.rows:
                item = QTreeWidgetItem([row.aor, f"● {row.label}", row.fingerprint])
                item.setForeground(_STATE, QBrush(QColor(row.level.colour)))
                item.setToolTip(_STATE, row.words)
                font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
                item.setFont(_FINGERPRINT, font)
                self.list.addTopLevelItem(item)
                if row.aor == selected:
                    self.list.setCurrentItem(item)
            first = self.list.topLevelItem(0)
            if self.list.currentItem() is None and first is not None:
                self.list.setCurrentItem(first)
        finally:
            self.list.blockSignals(False)
        self._show_selected()

    def selected_aor(self) -> str | None:
        item = self.list.currentItem()
        return None if item is None else item.text(_AOR)

    def select(self, aor: str) -> None:
        for i in range(self.list.topLevelItemCount()):
            item = self.list.topLevelItem(i)
            if item is not None and item.text(_AOR) == aor:
                self.list.setCurrentItem(item)

    async def settled(self) -> None:
        """Wait until every safety number, QR code and save under way has finished (tests;
        a window closing)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _alive(self) -> bool:
        return shiboken6.isValid(self)

    def _show_selected(self) -> None:
        aor = self.selected_aor()
        contact = None if aor is None or self.ledger is None else self.ledger.get(aor)
        if contact is None:
            self._show_details(None)
            return
        details = contact_summary(contact)
        key = safety_key(contact, self.own_identity)
        if key is None:
            self._show_details(details)
        elif key in self._safety:
            self._show_details(with_safety(details, self._safety[key]))
        elif running_loop() is None:
            self._safety[key] = contact_safety(contact, self.own_identity)
            self._show_details(with_safety(details, self._safety[key]))
        else:
            self._show_details(details, waiting_for=key)
            self._spawn(self._work_out_safety(key, contact, self.own_identity))

    async def _work_out_safety(self, key: SafetyKey, contact: Contact, own: Any) -> None:
        try:
            current = contact.current_record
            if own is not None and current is not None:  # the halves, memoised, in slices
                await safety_number_in_slices(own.cert, own.aor, current.certificate, contact.aor)
            safety = contact_safety(contact, own)  # from the memo: no hashing
        except Exception:  # a bug, not a bad key (contact_safety answers None for that)
            log.exception("the safety number with %s could not be worked out", contact.aor)
            safety = None
        else:
            self._safety[key] = safety
        if self._alive() and self._shown_key == key and self.details is not None:
            self._show_details(with_safety(self.details, safety))

    def _show_details(
        self, details: ContactDetails | None, *, waiting_for: SafetyKey | None = None
    ) -> None:
        previous = None if self.details is None else self.details.row.aor
        self.details = details
        self._shown_key = waiting_for
        has = details is not None
        shown: tuple[QWidget, ...] = (
            *(self.title, self.badge, self.state_words, self.history_title, self.history),
            *(self.smime_label, self.smime, self.smime_words),
        )
        for widget in shown:
            widget.setVisible(has)
        if details is None or details.row.aor != previous:
            self.smime_error.setVisible(False)  # it spoke of another contact
        self._show_actions()
        self.empty.setVisible(not has)
        certificates = None if details is None else details.certificates
        if certificates != self._boxes_of:
            self._boxes_of = None
            while self.certificates.count():
                taken = self.certificates.takeAt(0)
                old = None if taken is None else taken.widget()
                if old is not None:
                    old.hide()  # at once: deleteLater waits for the event loop
                    old.deleteLater()
        has_number = details is not None and details.safety_number is not None
        for widget in (self.safety_title, self.safety_number):
            widget.setVisible(has_number or waiting_for is not None)
        if details is None or details.qr_payload is None:
            self._qr_wanted = None
            self.qr.setVisible(False)
        if details is None:
            return
        row = details.row
        self.title.setText(row.aor)
        self.badge.setText(row.label.upper())
        if self.badge.styleSheet() != badge_style(row.level):  # a new sheet re-polishes
            self.badge.setStyleSheet(badge_style(row.level))
        self.state_words.setText(row.words)
        self._show_smime(details.smime)
        if waiting_for is not None:
            self.safety_number.setText(_WORKING)
        elif details.safety_number is not None and details.qr_payload is not None:
            groups = details.safety_number.split()
            self.safety_number.setText(
                "\n".join(" ".join(groups[i : i + 4]) for i in range(0, len(groups), 4))
            )
            self._show_qr(details.qr_payload)
        if details.certificates != self._boxes_of:
            self._add_boxes(details.certificates)
        self.history.setText("\n".join(details.history) or "—")

    def _add_boxes(self, certificates: tuple[CertificateView, ...]) -> None:
        self._boxes_of = certificates
        for certificate in certificates:
            box = QGroupBox(certificate.title)
            form = QFormLayout(box)
            form.addRow("SHA-256:", _label(certificate.fingerprint, mono=True))
            form.addRow("Issued to:", _label(certificate.subject))
            form.addRow("Issued by:", _label(certificate.issuer))
            form.addRow("Valid:", _label(certificate.valid))
            form.addRow("Seen:", _label(certificate.seen))
            if certificate.verified:
                form.addRow("Verified:", _label(certificate.verified))
            self.certificates.addWidget(box)

    # -- the QR code -----------------------------------------------------------------------

    def _show_qr(self, payload: bytes) -> None:
        ratio = max(1.0, self.devicePixelRatioF())
        wanted = (payload, max(2, round(2 * ratio)))
        self._qr_wanted = wanted
        kept = self._qr_kept.get(wanted)
        if kept is not None:
            self._put_qr(kept, ratio)
            return
        self.qr.setVisible(False)  # until drawn: never the code of another number
        if running_loop() is None:
            try:
                pixmap = qr_pixmap(payload, scale=wanted[1])
            except ValueError as exc:
                log.warning("the QR code of a safety number could not be drawn: %s", exc)
                return
            self._keep_qr(wanted, pixmap)
            self._put_qr(pixmap, ratio)
            return
        self._spawn(self._draw_qr(wanted, ratio))

    async def _draw_qr(self, wanted: tuple[bytes, int], ratio: float) -> None:
        payload, scale = wanted
        try:
            pixmap = await qr_pixmap_async(payload, scale=scale)
        except Exception:  # segno or Qt refusing: the digits are still shown
            log.exception("the QR code of a safety number could not be drawn")
            if self._alive() and self._qr_wanted == wanted:
                self.qr.setVisible(False)
            return
        self._keep_qr(wanted, pixmap)
        if self._alive() and self._qr_wanted == wanted:
            self._put_qr(pixmap, ratio)

    def _keep_qr(self, wanted: tuple[bytes, int], pixmap: QPixmap) -> None:
        self._qr_kept[wanted] = pixmap
        while len(self._qr_kept) > _QR_KEPT:
            del self._qr_kept[next(iter(self._qr_kept))]

    def _put_qr(self, pixmap: QPixmap, ratio: float) -> None:
        shown = QPixmap(pixmap)  # the kept one keeps its own ratio
        shown.setDevicePixelRatio(ratio)
        self.qr.setPixmap(shown)
        self.qr.setVisible(True)

    # -- the S/MIME setting ----------------------------------------------------------------

    def _show_smime(self, preference: ProtectionMode | None) -> None:
        self.smime.setCurrentIndex(smime_index(preference))
        self.smime_words.setText(smime_explanation(preference))
        if self.ledger_path is None:
            self.smime.setEnabled(False)
            self.smime.setToolTip("This account's trust ledger is not known here: the setting "
                                  "can be changed with 'softphone contacts smime'.")  # fmt: skip
        else:
            self.smime.setEnabled(not self._saving)
            self.smime.setToolTip(
                "What your call setup to this contact carries, and what theirs must carry"
            )

    def _smime_chosen(self, index: int) -> None:
        details, path = self.details, self.ledger_path
        if details is None or self._saving or not 0 <= index < len(SMIME_CHOICES):
            return
        preference = SMIME_CHOICES[index][1]
        if preference is details.smime:
            return
        if path is None:  # the combo box is disabled then; a stray signal changes nothing
            self._show_smime(details.smime)
            return
        aor = details.row.aor
        self.smime_error.setVisible(False)
        if running_loop() is None:
            try:
                ledger = save_contact_smime(path, aor, preference)
            except (LedgerError, OSError) as exc:
                self._smime_not_saved(aor, exc)
            else:
                self._smime_saved(aor, ledger)
            return
        self._saving = True
        self.smime.setEnabled(False)
        self._spawn(self._save_smime(path, aor, preference))

    async def _save_smime(self, path: Path, aor: str, preference: ProtectionMode | None) -> None:
        try:
            ledger = await asyncio.to_thread(save_contact_smime, path, aor, preference)
        except (LedgerError, OSError) as exc:
            outcome: TrustLedger | Exception = exc
        else:
            outcome = ledger
        finally:
            self._saving = False
        if not self._alive():
            return
        if isinstance(outcome, TrustLedger):
            self._smime_saved(aor, outcome)
        else:
            self._smime_not_saved(aor, outcome)

    def _smime_saved(self, aor: str, ledger: TrustLedger) -> None:
        """The file holds the new setting: show the ledger as saved (it was re-read, so it
        may hold what another program wrote meanwhile), the same contact still selected."""
        self.show_ledger(ledger, self.own_identity, "", self.ledger_path)
        self.smime_saved.emit(aor)

    def _smime_not_saved(self, aor: str, exc: Exception) -> None:
        stored = None
        contact = None if self.ledger is None else self.ledger.get(aor)
        if contact is not None:
            stored = contact.smime
        words = SMIME_CHOICES[smime_index(stored)][0]
        self.smime_error.setText(
            f"The S/MIME setting for {aor} was not saved: {exc}. It stays \u201c{words}\u201d."
        )
        self.smime_error.setVisible(True)
        if self.details is not None:
            self._show_smime(self.details.smime)  # back to what the file holds

    # -- verify, accept a change, add, export, forget (as ``softphone contacts``) ------------

    def _show_actions(self) -> None:
        """Which actions the shown contact offers (hidden when not), and whether they can be
        used now (a ledger file known, no change under way)."""
        details = self.details
        offered = contact_actions(details)
        self.verify_button.setVisible(offered.verify)
        self.verify_hint.setVisible(offered.verify)
        if details is not None:
            self.verify_hint.setText(verify_hint(details.row.aor))
        self.change_box.setVisible(offered.accept_change)
        self.forget_button.setVisible(offered.forget)
        usable = self.ledger_path is not None and not self._saving
        buttons = (
            *(self.verify_button, self.accept_button, self.forget_button),
            *(self.add_button, self.export_button),
        )
        for button in buttons:
            button.setEnabled(usable)
            button.setToolTip(
                NOT_CHANGEABLE if self.ledger_path is None else _TIPS.get(button.objectName(), "")
            )
        self.export_button.setEnabled(usable and self.ledger is not None)

    def _say(self, text: str, *, warning: bool = False) -> None:
        self.notice.setText(text)
        self.notice.setStyleSheet(_ERROR_STYLE if warning else "")
        self.notice.setVisible(bool(text))

    def verify(self) -> None:
        """ "We compared the safety number": the certificate whose number is shown is
        verified (refused if it is no longer the current one)."""
        details, path = self.details, self.ledger_path
        if details is None or path is None or not contact_actions(details).verify:
            return
        aor, fingerprint, pins = details.row.aor, details.current, self.pins_path
        assert fingerprint is not None  # contact_actions offers verify only with one
        self._change(
            "verify",
            aor,
            lambda: verify_contact(path, aor, fingerprint, pins_path=pins),
            lambda _: f"{aor} is verified: you compared the safety number.",
        )

    def accept_change(self) -> None:
        """Go on with the changed certificate shown, after the loud confirmation."""
        details, path = self.details, self.ledger_path
        if details is None or path is None or not contact_actions(details).accept_change:
            return
        if not self.confirm_accept_change(accept_change_words(details)):
            self._say(f"Nothing accepted: calls with {details.row.aor} still wait.")
            return
        aor, fingerprint, pins = details.row.aor, details.current, self.pins_path
        assert fingerprint is not None
        self._change(
            "accept",
            aor,
            lambda: accept_contact_change(path, aor, fingerprint, pins_path=pins),
            lambda _: (
                f"{aor}: the new certificate is accepted, not verified. Compare the safety "
                "number to verify it."
            ),
        )

    def add_certificate(self) -> None:
        """A certificate received by hand: a PEM file, then whose it is."""
        path = self.ledger_path
        if path is None:
            return
        cert_path = self.ask_certificate_file()
        if cert_path is None:
            return
        aor = self.ask_contact_aor(self.selected_aor() or "sip:")
        if aor is None or not aor.strip():
            return
        aor = aor.strip()

        def done(outcome: tuple[TrustLedger, Observation]) -> tuple[str, bool]:
            return added_words(outcome[1])

        self._change("add", aor, lambda: add_contact_certificate(path, aor, cert_path), done)

    def export(self) -> None:
        """The ledger as JSON for an audit, to a file the person chooses."""
        path = self.ledger_path
        if path is None:
            return
        out = self.ask_export_path()
        if out is None:
            return

        def done(ledger: TrustLedger) -> str:
            n = "1 contact" if len(ledger) == 1 else f"{len(ledger)} contacts"
            return f"Exported {n} and their history to {out} (readable by you only)."

        self._change("export", "", lambda: export_contacts(path, out), done)

    def forget(self) -> None:
        """Remove the shown contact, once the confirmation naming it is accepted."""
        details, path = self.details, self.ledger_path
        if details is None or path is None:
            return
        aor, pins = details.row.aor, self.pins_path
        if not self.confirm_forget(forget_words(details)):
            self._say(f"Nothing forgotten: {aor} is kept.")
            return
        self._change(
            "forget",
            aor,
            lambda: forget_contact(path, aor, pins_path=pins),
            lambda _: f"Forgot {aor}.",
        )

    def _change(
        self,
        action: str,
        aor: str,
        work: Callable[[], T],
        words: Callable[[T], str | tuple[str, bool]],
    ) -> None:
        """Run ``work`` (re-read, change, atomic save) at once, or in a worker thread when a
        loop runs (it fsyncs); then show the ledger as saved and say what happened."""
        if self._saving:
            return
        self._say("")
        if running_loop() is None:
            try:
                result = work()
            except CONTACT_ERRORS as exc:
                self._say(not_done_words(action, aor, exc), warning=True)
            else:
                self._changed(aor, result, words(result))
            return
        self._saving = True
        self._show_actions()
        self._spawn(self._change_off_loop(action, aor, work, words))

    async def _change_off_loop(
        self,
        action: str,
        aor: str,
        work: Callable[[], T],
        words: Callable[[T], str | tuple[str, bool]],
    ) -> None:
        try:
            result = await asyncio.to_thread(work)
        except CONTACT_ERRORS as exc:
            failed: BaseException | None = exc
        else:
            failed = None
        finally:
            self._saving = False
        if not self._alive():
            return
        if failed is not None:
            self._show_actions()
            self._say(not_done_words(action, aor, failed), warning=True)
            return
        self._changed(aor, result, words(result))

    def _changed(self, aor: str, result: object, said: str | tuple[str, bool]) -> None:
        ledger, added = result if isinstance(result, tuple) else (result, None)
        assert isinstance(ledger, TrustLedger)
        text, warning = (said, False) if isinstance(said, str) else said
        self.show_ledger(ledger, self.own_identity, "", self.ledger_path)
        if isinstance(added, Observation):
            self.select(added.aor)  # the contact just added (its AOR as the ledger keeps it)
        self._say(text, warning=warning)
        self.ledger_changed.emit(aor)

    # -- the default choosers and confirmations (tests replace them) ---------------------

    def _ask_certificate_file(self) -> Path | None:
        name, _ = QFileDialog.getOpenFileName(
            self,
            "Add a certificate received by hand",
            "",
            "PEM certificate (*.pem *.crt *.cer);;All files (*)",
        )
        return Path(name) if name else None

    def _ask_contact_aor(self, suggested: str) -> str | None:
        aor, ok = QInputDialog.getText(
            self,
            "Add a certificate received by hand",
            "Whose certificate is it? Their address (for example sip:bob@example.com):",
            text=suggested,
        )
        return aor if ok else None

    def _ask_export_path(self) -> Path | None:
        name, _ = QFileDialog.getSaveFileName(
            self, "Export the trust ledger", "contacts-export.json", "JSON (*.json)"
        )
        return Path(name) if name else None

    def _confirm_accept(self, words: AcceptChangeWords) -> bool:
        return AcceptChangeDialog(words, self).exec() == QDialog.DialogCode.Accepted.value

    def _confirm_forget(self, words: ForgetWords) -> bool:
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle(words.title)
        box.setText(words.title)
        box.setInformativeText(words.text)
        forget = box.addButton(words.accept, QMessageBox.ButtonRole.DestructiveRole)
        keep = box.addButton(words.cancel, QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(keep)
        box.setEscapeButton(keep)
        box.exec()
        return box.clickedButton() is forget
