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
        # Columns sized to the rows on the screen, not to every row of the history: each row
        # added or changed re-measures them (Qt's default: the first 1000 rows).
        header.setResizeContentsPrecision(0)
        #: The entries shown, in order (``show_entries`` touches only what changed).
        self._shown: list[Any] = []

    def show_entries(self, entries: Iterable[Any]) -> None:
        """Show ``HistoryEntry`` items (newest first, as the history keeps them).

        Only what changed is touched: the history calls this at each event of a call that
        changes its entry (begun, answered, its protection, ended), and rebuilding every row
        took 24 ms of the event loop with 100 calls in the history and 73 ms with 500 (issue 7:
        the loop never stalls 20 ms). Entries are immutable; one that is the same object as
        the one shown keeps its row."""
        wanted = list(entries)
        if [id(e) for e in wanted] == [id(e) for e in self._shown]:
            return
        old_ids = [e.call_id for e in self._shown]
        new_ids = [e.call_id for e in wanted]
        kept = set(old_ids) & set(new_ids)
        if [c for c in old_ids if c in kept] != [c for c in new_ids if c in kept]:
            self._rebuild(wanted)  # the order of the calls changed (a history reloaded)
            return
        items = {c: self.topLevelItem(i) for i, c in enumerate(old_ids)}
        for call_id in old_ids:
            if call_id not in kept:
                self.takeTopLevelItem(self.indexOfTopLevelItem(items[call_id]))
        before = {e.call_id: e for e in self._shown}
        for index, entry in enumerate(wanted):
            item = items.get(entry.call_id) if entry.call_id in kept else None
            if item is None:
                self.insertTopLevelItem(index, self._item(entry))
            elif before[entry.call_id] is not entry:
                _fill(item, entry)
        self._shown = wanted

    def _rebuild(self, entries: list[Any]) -> None:
        self.clear()
        self.addTopLevelItems([self._item(entry) for entry in entries])
        self._shown = entries

    @staticmethod
    def _item(entry: Any) -> QTreeWidgetItem:
        item = QTreeWidgetItem()
        _fill(item, entry)
        return item


def _fill(item: QTreeWidgetItem, entry: Any) -> None:
    row = history_row(entry)
    for column, text in enumerate(
        (row.direction, row.peer, row.start, row.duration, row.outcome, row.protection)
    ):
        item.setText(column, text)
    if row.protection != "—":
        item.setText(5, f"● {row.protection}")
        item.setForeground(5, QBrush(QColor(row.level.colour)))
    else:
        item.setForeground(5, QBrush())
    item.setToolTip(4, row.outcome)
