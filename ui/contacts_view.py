"""The contacts view: the trust ledger's contacts with their verified state, and the details of
one (every certificate, the history, the safety number in digits and as a QR code).

Words and colour together (UX.md: never colour alone): the state column reads "● verified",
"● changed"…; the details repeat the word in a badge and say what it means. All wording comes
from :mod:`ui.contacts_presenters`.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontDatabase
from PySide6.QtWidgets import (
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

from softphone.ua import TrustLedger
from ui.contacts_presenters import ContactDetails, ContactRow, contact_details, contact_rows
from ui.security_panel import badge_style

__all__ = ["ContactsView"]

_AOR, _STATE, _FINGERPRINT = range(3)


def _label(text: str = "", *, selectable: bool = True, mono: bool = False) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if mono:
        label.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    return label


class ContactsView(QWidget):
    """List on the left, details on the right; :meth:`show_ledger` fills it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ledger: TrustLedger | None = None
        self.own_identity: Any = None
        self.rows: list[ContactRow] = []
        self.details: ContactDetails | None = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.problem = _label()
        self.problem.setStyleSheet("color: #b22222;")
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
        self.panel_layout.addWidget(self.safety_title)
        self.panel_layout.addLayout(safety_row)
        self.panel_layout.addLayout(self.certificates)
        self.panel_layout.addWidget(self.history_title)
        self.panel_layout.addWidget(self.history)
        self.panel_layout.addStretch(1)
        self._show_details(None)

    # -- filling ---------------------------------------------------------------------------

    def show_ledger(
        self, ledger: TrustLedger | None, own_identity: Any = None, problem: str = ""
    ) -> None:
        """Show the contacts of ``ledger`` (``None``: none); ``own_identity`` (``.cert``,
        ``.aor``) adds safety numbers; ``problem`` says why the ledger could not be read."""
        selected = self.selected_aor()
        self.ledger, self.own_identity = ledger, own_identity
        self.problem.setText(problem)
        self.problem.setVisible(bool(problem))
        self.rows = [] if ledger is None else contact_rows(ledger)
        self.list.clear()
        for row in self.rows:
            item = QTreeWidgetItem([row.aor, f"● {row.label}", row.fingerprint])
            item.setForeground(_STATE, QBrush(QColor(row.level.colour)))
            item.setToolTip(_STATE, row.words)
            item.setFont(_FINGERPRINT, QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
            self.list.addTopLevelItem(item)
            if row.aor == selected:
                self.list.setCurrentItem(item)
        first = self.list.topLevelItem(0)
        if self.list.currentItem() is None and first is not None:
            self.list.setCurrentItem(first)
        self._show_selected()

    def selected_aor(self) -> str | None:
        item = self.list.currentItem()
        return None if item is None else item.text(_AOR)

    def select(self, aor: str) -> None:
        for i in range(self.list.topLevelItemCount()):
            item = self.list.topLevelItem(i)
            if item is not None and item.text(_AOR) == aor:
                self.list.setCurrentItem(item)

    def _show_selected(self) -> None:
        aor = self.selected_aor()
        contact = None if aor is None or self.ledger is None else self.ledger.get(aor)
        self._show_details(None if contact is None else contact_details(contact, self.own_identity))

    def _show_details(self, details: ContactDetails | None) -> None:
        self.details = details
        has = details is not None
        for widget in (self.title, self.badge, self.state_words, self.history_title, self.history):
            widget.setVisible(has)
        self.empty.setVisible(not has)
        while self.certificates.count():
            taken = self.certificates.takeAt(0)
            old = None if taken is None else taken.widget()
            if old is not None:
                old.hide()  # at once: deleteLater waits for the event loop
                old.deleteLater()
        has_number = has and details is not None and details.safety_number is not None
        for widget in (self.safety_title, self.safety_number, self.qr):
            widget.setVisible(has_number)
        if details is None:
            return
        row = details.row
        self.title.setText(row.aor)
        self.badge.setText(row.label.upper())
        self.badge.setStyleSheet(badge_style(row.level))
        self.state_words.setText(row.words)
        if details.safety_number is not None and details.qr_payload is not None:
            groups = details.safety_number.split()
            self.safety_number.setText(
                "\n".join(" ".join(groups[i : i + 4]) for i in range(0, len(groups), 4))
            )
            from ui.qr import qr_pixmap

            ratio = max(1.0, self.devicePixelRatioF())
            pixmap = qr_pixmap(details.qr_payload, scale=max(2, round(2 * ratio)))
            pixmap.setDevicePixelRatio(ratio)
            self.qr.setPixmap(pixmap)
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
