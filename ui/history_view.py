"""The call history list: direction, peer, start, duration, how it ended, and the protection
summary (the weakest of UX.md's three answers, in words and colour) of each call, newest
first, from :class:`softphone.ua.CallHistory`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem, QWidget

from ui.call_presenters import history_row

__all__ = ["HistoryView"]

COLUMNS = ("Direction", "Who", "Started", "Length", "How it ended", "Protection")


class HistoryView(QTreeWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(list(COLUMNS))
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setAccessibleName("Call history")
        header = self.header()
        for column in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)

    def show_entries(self, entries: Iterable[Any]) -> None:
        """Show ``HistoryEntry`` items (newest first, as the history keeps them)."""
        self.clear()
        for entry in entries:
            row = history_row(entry)
            item = QTreeWidgetItem(
                [row.direction, row.peer, row.start, row.duration, row.outcome, row.protection]
            )
            if row.protection != "—":
                item.setText(5, f"● {row.protection}")
                item.setForeground(5, QBrush(QColor(row.level.colour)))
            item.setToolTip(4, row.outcome)
            self.addTopLevelItem(item)
