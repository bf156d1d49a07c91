"""The SIP trace as a ladder: one column per party (You first), one arrow per message, coloured
by who could read it (plain / TLS to the hop / sipsec tunnel) and always labelled in words too.
Clicking an arrow (or moving with Up/Down) shows the raw message beside it, with Digest
credentials and SDES keys redacted (:func:`ui.call_presenters.redact_raw`).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFontDatabase,
    QFontMetrics,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QPolygonF,
)
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QScrollArea, QSplitter, QVBoxLayout, QWidget

from ui.call_presenters import LadderModel

__all__ = ["LadderView", "LadderWindow"]

_TOP = 34
_ROW = 50  # label (18) + arrow + marker (18)
_COLUMN = 180
_MARGIN = 16


class LadderView(QWidget):
    """The drawing; :attr:`selected` fires with the arrow index."""

    selected = Signal(int)

    def __init__(self, model: LadderModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.current = -1
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAccessibleName("SIP message ladder (Up/Down to move, the raw message beside)")
        self.setAutoFillBackground(True)
        palette = self.palette()
        palette.setColor(QPalette.ColorRole.Window, QColor("white"))
        self.setPalette(palette)
        self.updateGeometry()

    def sizeHint(self) -> QSize:  # noqa: N802  # Qt's name
        width = _MARGIN * 2 + max(1, len(self.model.parties)) * _COLUMN
        return QSize(width, _TOP + _ROW * len(self.model.arrows) + 8)

    def minimumSizeHint(self) -> QSize:  # noqa: N802  # Qt's name
        return self.sizeHint()

    def changed(self) -> None:
        """The model grew: resize and repaint."""
        self.setMinimumSize(self.sizeHint())
        self.updateGeometry()
        self.update()

    def _x(self, column: int) -> float:
        return _MARGIN + _COLUMN * column + _COLUMN / 2

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802  # Qt's name
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        metrics = QFontMetrics(self.font())
        height = self.height()
        painter.setPen(QPen(QColor("black")))
        for i, party in enumerate(self.model.parties):
            x = self._x(i)
            name = metrics.elidedText(party, Qt.TextElideMode.ElideMiddle, _COLUMN - 10)
            painter.drawText(
                QRectF(x - _COLUMN / 2, 4, _COLUMN, _TOP - 8), Qt.AlignmentFlag.AlignCenter, name
            )
            painter.setPen(QPen(QColor("#999"), 1, Qt.PenStyle.DashLine))
            painter.drawLine(QPointF(x, _TOP), QPointF(x, height))
            painter.setPen(QPen(QColor("black")))
        for arrow in self.model.arrows:
            top = _TOP + _ROW * arrow.index
            y = top + 24
            if arrow.index == self.current:
                painter.fillRect(QRectF(0, top + 1, self.width(), _ROW - 2), QColor("#dde8ff"))
            colour = QColor(arrow.colour)
            x1, x2 = self._x(arrow.source), self._x(arrow.target)
            pen = QPen(colour, 2.5 if arrow.level.value >= 2 else 2)
            if arrow.level.value == 0:
                pen.setStyle(Qt.PenStyle.DashLine)  # not encrypted: dashed, not only red
            painter.setPen(pen)
            painter.drawLine(QPointF(x1, y), QPointF(x2, y))
            direction = 1 if x2 > x1 else -1
            head = QPolygonF(
                [
                    QPointF(x2, y),
                    QPointF(x2 - 10 * direction, y - 5),
                    QPointF(x2 - 10 * direction, y + 5),
                ]
            )
            painter.setBrush(colour)
            painter.drawPolygon(head)
            left = min(x1, x2)
            span = abs(x2 - x1)
            painter.setPen(QPen(QColor("black")))
            painter.drawText(
                QRectF(left, top + 2, span, 18),
                Qt.AlignmentFlag.AlignCenter,
                metrics.elidedText(arrow.label, Qt.TextElideMode.ElideRight, int(span) - 4),
            )
            painter.setPen(QPen(colour))
            painter.drawText(
                QRectF(left, y + 4, span, 18),
                Qt.AlignmentFlag.AlignCenter,
                metrics.elidedText(f"[{arrow.marker}]", Qt.TextElideMode.ElideRight, int(span) - 4),
            )
        painter.end()

    def select(self, index: int) -> None:
        if not self.model.arrows:
            return
        self.current = max(0, min(index, len(self.model.arrows) - 1))
        self.update()
        self.selected.emit(self.current)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802  # Qt's name
        index = int((event.position().y() - _TOP) // _ROW)
        if 0 <= index < len(self.model.arrows):
            self.select(index)
        self.setFocus()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802  # Qt's name
        if event.key() == Qt.Key.Key_Down:
            self.select(self.current + 1)
        elif event.key() == Qt.Key.Key_Up:
            self.select(self.current - 1 if self.current > 0 else 0)
        elif event.key() == Qt.Key.Key_Home:
            self.select(0)
        elif event.key() == Qt.Key.Key_End:
            self.select(len(self.model.arrows) - 1)
        else:
            super().keyPressEvent(event)


class LadderWindow(QWidget):
    """The ladder of one call and the selected raw message."""

    def __init__(
        self,
        model: LadderModel,
        *,
        title: str = "SIP trace",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.model = model
        self.setWindowTitle(title)
        self.resize(1000, 560)
        column = QVBoxLayout(self)
        legend = QLabel(
            "Each arrow is one SIP message. Colour and the words under it say who could read "
            "it: <span style='color:#b22222'>[not encrypted]</span> (dashed) — anyone on the "
            "path; <span style='color:#9a4a00'>[TLS to this hop]</span> — that server and "
            "every one after; <span style='color:#17651a'>[sipsec tunnel]</span> — only the "
            "other phone."
        )
        legend.setWordWrap(True)
        column.addWidget(legend)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        self.view = LadderView(model)
        scroll = QScrollArea()
        scroll.setWidget(self.view)
        scroll.setWidgetResizable(True)
        splitter.addWidget(scroll)
        self.raw = QPlainTextEdit()
        self.raw.setReadOnly(True)
        self.raw.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)  # SIP lines as they are
        self.raw.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.raw.setPlaceholderText("Click a message (or use Up/Down) to see it here.")
        self.raw.setAccessibleName("Raw SIP message (credentials and keys redacted)")
        splitter.addWidget(self.raw)
        splitter.setSizes([680, 320])
        column.addWidget(splitter, 1)
        self.view.selected.connect(self._show)
        self.view.setFocus()

    def add(self, entry: Any) -> None:
        """A new ``TraceEntry`` (ignored if it belongs to another call)."""
        if self.model.add(entry) is not None:
            self.view.changed()

    def _show(self, index: int) -> None:
        self.raw.setPlainText(self.model.arrows[index].raw.replace("\r\n", "\n"))
