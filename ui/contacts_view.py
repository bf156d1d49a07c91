"""The contacts view: the trust ledger's contacts with their verified state, and the details of
one (every certificate, the history, the safety number in digits and as a QR code, and the
contact's own S/MIME setting).

Words and colour together (UX.md: never colour alone): the state column reads "● verified",
"● changed"…; the details repeat the word in a badge and say what it means. All wording comes
from :mod:`ui.contacts_presenters`.

Issue 7 ("the event loop never stalls more than 20 ms during a call"): details are made only
for the contact shown, when it is shown, and the two slow parts run in worker threads when an
asyncio loop (qasync) is running: the safety number (an iterated hash, 12 ms per new key,
``asyncio.to_thread``) and the QR code (segno, ~60 ms, :func:`ui.qr.qr_pixmap_async`). A
result is shown only if the same contact and number are still shown when it arrives; both are
kept, so the refresh after every engine event redraws nothing. With no running loop (a
picture, a test without qasync) they are made at once.

The S/MIME setting (issue 6, RFC 3261 §23.3) is saved as ``softphone contacts smime`` saves
it (:func:`softphone.ua.contacts.save_contact_smime`: the ledger re-read, set, written
atomically), in a worker thread too (it fsyncs); a save that fails says why in words and the
combo box goes back to the stored value.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Final

import shiboken6
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontDatabase, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from softphone.ua import Contact, TrustLedger
from softphone.ua.contacts import LedgerError, ProtectionMode, save_contact_smime
from ui.contacts_presenters import (
    SMIME_CHOICES,
    ContactDetails,
    ContactRow,
    SafetyView,
    contact_rows,
    contact_safety,
    contact_summary,
    safety_key,
    smime_explanation,
    smime_index,
    with_safety,
)
from ui.qr import qr_pixmap, qr_pixmap_async
from ui.security_panel import badge_style

__all__ = ["ContactsView"]

log = logging.getLogger(__name__)

_AOR, _STATE, _FINGERPRINT = range(3)

_WORKING: Final = "Working out the safety number…"
_QR_KEPT: Final = 16  # QR pixmaps kept (payload, scale): a refresh redraws none of them
_ERROR_STYLE: Final = "color: #b22222;"

SafetyKey = tuple[str, str, bytes, bytes]


def _label(text: str = "", *, selectable: bool = True, mono: bool = False) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if mono:
        label.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    return label


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio loop running now (qasync's, in the app), or ``None`` (then work is done
    at once: nothing would ever run a task)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class ContactsView(QWidget):
    """List on the left, details on the right; :meth:`show_ledger` fills it."""

    #: The AOR whose S/MIME setting was saved (the ledger file holds it now).
    smime_saved = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ledger: TrustLedger | None = None
        self.ledger_path: Path | None = None
        self.own_identity: Any = None
        self.rows: list[ContactRow] = []
        self.details: ContactDetails | None = None
        self._shown_key: SafetyKey | None = None  # the safety number the details wait for
        self._safety: dict[SafetyKey, SafetyView | None] = {}
        self._qr_wanted: tuple[bytes, int] | None = None
        self._qr_kept: dict[tuple[bytes, int], QPixmap] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._saving = False

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.problem = _label()
        self.problem.setStyleSheet(_ERROR_STYLE)
        self.problem.setVisible(False)
        layout.addWidget(self.problem)
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
        self.certificates = QVBoxLayout()
        self.history_title = QLabel("<b>History</b>")
        self.history = _label(mono=True)
        self.empty = _label("No contact yet: the certificates of the people you call "
                            "end to end are kept here.", selectable=False)  # fmt: skip
        for widget in (self.empty, self.title):
            self.panel_layout.addWidget(widget)
        self.panel_layout.addLayout(state_row)
        self.panel_layout.addLayout(smime_row)
        self.panel_layout.addWidget(self.smime_words)
        self.panel_layout.addWidget(self.smime_error)
        self.panel_layout.addWidget(self.safety_title)
        self.panel_layout.addLayout(safety_row)
        self.panel_layout.addLayout(self.certificates)
        self.panel_layout.addWidget(self.history_title)
        self.panel_layout.addWidget(self.history)
        self.panel_layout.addStretch(1)
        self._show_details(None)

    # -- filling ---------------------------------------------------------------------------

    def show_ledger(
        self,
        ledger: TrustLedger | None,
        own_identity: Any = None,
        problem: str = "",
        ledger_path: Path | None = None,
    ) -> None:
        """Show the contacts of ``ledger`` (``None``: none); ``own_identity`` (``.cert``,
        ``.aor``) adds safety numbers; ``problem`` says why the ledger could not be read;
        ``ledger_path`` is the file the S/MIME setting is saved to (``None``: the setting is
        shown, not changeable). Only the selected contact's details are made."""
        selected = self.selected_aor()
        self.ledger, self.own_identity, self.ledger_path = ledger, own_identity, ledger_path
        self.problem.setText(problem)
        self.problem.setVisible(bool(problem))
        self.rows = [] if ledger is None else contact_rows(ledger)
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
        elif _running_loop() is None:
            self._safety[key] = contact_safety(contact, self.own_identity)
            self._show_details(with_safety(details, self._safety[key]))
        else:
            self._show_details(details, waiting_for=key)
            self._spawn(self._work_out_safety(key, contact, self.own_identity))

    async def _work_out_safety(self, key: SafetyKey, contact: Contact, own: Any) -> None:
        try:
            safety = await asyncio.to_thread(contact_safety, contact, own)
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
        self.empty.setVisible(not has)
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
        for certificate in details.certificates:
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
        self.history.setText("\n".join(details.history) or "—")

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
        if _running_loop() is None:
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
        if _running_loop() is None:
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
