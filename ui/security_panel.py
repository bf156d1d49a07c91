"""The in-call security panel: UX.md's three questions, each in words, a colour and a text
label (never colour alone, never a bare padlock), under a summary that is the weakest answer.

It shows what :class:`~ui.call_presenters.SecurityPanelModel` decided: the peer certificate's
fingerprint in hex groups, the safety number in groups of five with a "We compared it"
button, and the media details (SRTP suite, key exchange, where the keys travelled).
"""

from __future__ import annotations

import asyncio
import logging

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QFontDatabase, QPixmap
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLayout,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from softphone.ua import running_loop
from ui.call_presenters import Level, SecurityPanelModel, SecurityRow

log = logging.getLogger(__name__)

#: Seconds between asking for the safety number's QR code and drawing it in a worker thread.
#: segno's 10-15 ms of pure Python there hold the GIL against the loop half the time (at the
#: 1 ms switch interval), so a callback beside it runs twice as long. Asked for by the
#: ``PeerIdentity`` of a ``sipsec:`` call, it was drawn in the busiest turns of the set-up,
#: 0.05-0.1 s before the 200 OK (issue 7, ``benchmarks/bench_gui.py``); a second later the
#: call is talking or ringing, and the loop is idle between the ticks of its clock.
QR_DELAY = 1.0


def set_style(widget: QWidget, sheet: str) -> None:
    """``widget.setStyleSheet(sheet)`` only when it changes: each call re-parses and
    re-polishes the widget (~0.1-0.3 ms here), and a panel refreshed at every engine event
    would pay it a dozen times a refresh (issue 7: the loop never stalls 20 ms)."""
    if widget.styleSheet() != sheet:
        widget.setStyleSheet(sheet)


__all__ = ["SecurityPanel", "badge_style", "set_style"]


def badge_style(level: Level) -> str:
    """White bold text on the level's colour (the colours are dark enough for it)."""
    return (
        f"QLabel {{ background: {level.colour}; color: white; font-weight: bold;"
        " padding: 2px 6px; border-radius: 3px; }"
    )


class _Row:
    def __init__(self, grid: QGridLayout, row: int) -> None:
        self.title = QLabel()
        self.title.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.badge = QLabel()
        self.badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.badge.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Maximum)
        self.words = QLabel()
        self.words.setWordWrap(True)
        self.words.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        grid.addWidget(self.title, row, 0)
        grid.addWidget(self.badge, row, 1, Qt.AlignmentFlag.AlignTop)
        grid.addWidget(self.words, row, 2)
        grid.addWidget(self.details, row + 1, 2)
        self.shown: SecurityRow | None = None

    def show(self, model: SecurityRow) -> None:
        if model == self.shown:
            return
        self.shown = model
        self.title.setText(f"<b>{model.title}</b>")
        self.badge.setText(model.label)
        set_style(self.badge, badge_style(model.level))
        self.words.setText(model.words)
        set_style(self.words, f"color: {model.colour};")
        self.details.setText("\n".join(model.details))
        self.details.setVisible(bool(model.details))


def _box(*parts: QWidget | QLayout) -> QWidget:
    """A margin-less column of ``parts``, to show or hide together."""
    box = QWidget()
    column = QVBoxLayout(box)
    column.setContentsMargins(0, 0, 0, 0)
    for part in parts:
        if isinstance(part, QLayout):
            column.addLayout(part)
        else:
            column.addWidget(part)
    return box


class SecurityPanel(QGroupBox):
    """The panel; :attr:`compared` fires when the person presses "We compared it"."""

    compared = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Security of this call", parent)
        column = self._column = QVBoxLayout(self)

        summary_row = QVBoxLayout()
        self.summary_badge = QLabel()
        self.summary_badge.setObjectName("summaryBadge")
        font = QFont(self.summary_badge.font())
        font.setPointSizeF(font.pointSizeF() * 1.2)
        self.summary_badge.setFont(font)
        self.summary_words = QLabel()
        self.summary_words.setWordWrap(True)
        self.summary_badge.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Maximum)
        self.summary_words.setStyleSheet("font-weight: bold;")
        summary_row.addWidget(self.summary_badge, 0, Qt.AlignmentFlag.AlignTop)
        summary_row.addWidget(self.summary_words, 1)
        column.addLayout(summary_row)

        grid = QGridLayout()
        grid.setColumnStretch(2, 1)
        grid.setHorizontalSpacing(10)
        self.signalling = _Row(grid, 0)
        self.identity = _Row(grid, 2)
        self.audio = _Row(grid, 4)
        column.addLayout(grid)

        fixed = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.fingerprint_title = QLabel("<b>Their certificate (SHA-256)</b>")
        self.fingerprint = QLabel()
        self.fingerprint.setFont(fixed)
        self.fingerprint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # Each group in a box of its own, shown or hidden as one: one show event, not five.
        self.fingerprint_box = _box(self.fingerprint_title, self.fingerprint)

        self.safety_title = QLabel(
            "<b>Safety number</b> — read it aloud to each other; it must be the same on both phones"
        )
        self.safety_title.setWordWrap(True)
        self.safety_number = QLabel()
        big = QFont(fixed)
        big.setPointSizeF(fixed.pointSizeF() * 1.3)
        self.safety_number.setFont(big)
        self.safety_number.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.compare_button = QPushButton("&We compared it")
        self.compare_button.setToolTip(
            "Mark this contact verified: you read the safety number to each other and it "
            "was the same"
        )
        self.compare_button.clicked.connect(self.compared)
        self.compare_status = QLabel()
        self.compare_status.setWordWrap(True)
        self.compare_status.setVisible(False)  # shown with a text: an empty one takes room
        self.qr = QLabel()
        self.qr.setObjectName("safetyQr")
        self.qr.setAccessibleName("Safety number as a QR code")
        self.qr.setToolTip("The safety number as a QR code: the other phone can scan it")
        self.qr.setVisible(False)
        self.qr_payload: bytes | None = None
        self._qr_task: asyncio.Future[QPixmap | None] | None = None
        #: How long after it is asked for the QR code is drawn: :data:`QR_DELAY`.
        self.qr_delay = QR_DELAY
        self.safety_box = _box(self.safety_title, self.safety_number)
        self.safety_box.layout().addWidget(self.compare_button, 0, Qt.AlignmentFlag.AlignLeft)
        # The QR code beside the certificate and the number rather than below the title: the
        # panel then needs no more height with it than without (at stop 13 it took 100 px
        # more and the call window cut its last lines off).
        numbers = QVBoxLayout()
        numbers.addWidget(self.fingerprint_box)
        numbers.addWidget(self.safety_box)
        numbers.addStretch(1)
        beside = QHBoxLayout()
        beside.addLayout(numbers, 1)
        beside.addWidget(self.qr, 0, Qt.AlignmentFlag.AlignTop)
        column.addLayout(beside)
        column.addWidget(self.compare_status)
        column.addStretch(1)
        self.model: SecurityPanelModel | None = None
        self._ledger_missing = ""
        #: How many times :meth:`show_model` changed the widgets (tests: an unchanged model
        #: must not touch them).
        self.updates = 0

    def show_model(self, model: SecurityPanelModel, *, ledger_missing: str = "") -> None:
        """Show ``model``; ``ledger_missing`` (why verification cannot be recorded) disables
        "We compared it" with that tooltip.

        Only what changed is touched, and in one layout pass: the call window refreshes at
        every engine event, and each child shown while the panel is visible would otherwise
        lay the whole panel out there and then (5 ms when the fingerprint and safety number
        appear; issue 7: the loop never stalls 20 ms). The same model again costs nothing."""
        if model == self.model and ledger_missing == self._ledger_missing:
            return
        self._ledger_missing = ledger_missing
        self.updates += 1
        layout = self._column
        layout.setEnabled(False)  # no layout pass per child shown or hidden...
        try:
            self._show_model(model, ledger_missing)
        finally:
            layout.setEnabled(True)
            layout.invalidate()  # ...one for all, posted: Qt runs it before the next paint

    def _show_model(self, model: SecurityPanelModel, ledger_missing: str) -> None:
        self.model = model
        weakest = model.weakest
        self.summary_badge.setText(model.summary)
        set_style(self.summary_badge, badge_style(weakest.level))
        self.summary_words.setText(model.summary_words)
        self.signalling.show(model.signalling)
        self.identity.show(model.identity)
        self.audio.show(model.audio)
        self.fingerprint_box.setVisible(model.fingerprint is not None)
        self.fingerprint.setText(model.fingerprint or "")
        has_number = model.safety_number is not None
        self.safety_box.setVisible(has_number)
        self.qr.setVisible(has_number and self.qr_payload is not None)
        self.safety_number.setText(model.safety_number or "")
        if ledger_missing:
            self.compare_button.setEnabled(False)
            self.compare_button.setToolTip(ledger_missing)
        else:
            self.compare_button.setEnabled(model.can_mark_verified)
            self.compare_button.setToolTip(
                "Mark this contact verified: you read the safety number to each other "
                "and it was the same"
                if model.can_mark_verified
                else "Already verified"
            )
        if model.corrected:
            self._set_status_text(f"Note: {model.corrected}")

    def show_qr(self, payload: bytes | None) -> None:
        """Show the safety number's QR code (:mod:`ui.qr`); ``None`` hides it. With an
        event loop running (the phone), segno draws it in a worker thread :attr:`qr_delay`
        after it is asked for, and it appears when ready if this payload is still the one to
        show; without one (a bare widget), at once."""
        self.qr_payload = payload
        if payload is None:
            self.qr.clear()
            self.qr.setVisible(False)
            return
        # Two device pixels per module at 100%, drawn at the screen's scale (no blurry zoom).
        ratio = max(1.0, self.devicePixelRatioF())
        scale = max(2, round(2 * ratio))
        if running_loop() is None:
            from ui.qr import qr_pixmap

            self._set_qr(qr_pixmap(payload, scale=scale), ratio)
            return
        task = asyncio.ensure_future(self._draw_qr(payload, scale))
        self._qr_task = task  # kept: a task nobody holds may be collected

        def drawn(done: asyncio.Future[QPixmap | None]) -> None:
            if done.cancelled():
                return
            try:
                pixmap = done.result()
                if pixmap is None or self.qr_payload != payload:
                    return  # another number (or none) is shown by now
                self._set_qr(pixmap, ratio)
            except RuntimeError:  # the panel was closed and deleted meanwhile
                return
            except ValueError as exc:
                log.warning("the safety number's QR code could not be drawn: %s", exc)
                self.qr.setVisible(False)

        task.add_done_callback(drawn)

    async def _draw_qr(self, payload: bytes, scale: int) -> QPixmap | None:
        """The QR code of ``payload`` after :attr:`qr_delay`, or ``None`` when another one
        (or none) is to be shown by then."""
        from ui.qr import qr_pixmap_async

        await asyncio.sleep(self.qr_delay)
        if self.qr_payload != payload:
            return None
        return await qr_pixmap_async(payload, scale=scale)

    def _set_qr(self, pixmap: QPixmap, ratio: float) -> None:
        pixmap.setDevicePixelRatio(ratio)
        self.qr.setPixmap(pixmap)
        self.qr.setVisible(self.safety_number.isVisibleTo(self))

    def set_status(self, text: str, level: Level | None = None) -> None:
        self._set_status_text(text)
        set_style(self.compare_status, f"color: {level.colour};" if level else "")

    def _set_status_text(self, text: str) -> None:
        self.compare_status.setText(text)
        self.compare_status.setVisible(bool(text))
