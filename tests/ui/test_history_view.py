"""The history list touches only the rows that changed (issue 7: the history is shown again at
each event of a call, and rebuilding every row took 24 ms of the event loop with 100 calls in
the history, 73-106 ms with 500), and always shows what a full rebuild would."""

from __future__ import annotations

import dataclasses

from pytestqt.qtbot import QtBot

from softphone.ua import HistoryEntry
from tests.ui.screens import history_entries
from ui.call_presenters import history_row
from ui.history_view import HistoryView


def _history(n: int) -> list[HistoryEntry]:
    base = history_entries()
    return [dataclasses.replace(base[i % len(base)], call_id=f"c{i}") for i in range(n)]


def _rows(view: HistoryView) -> list[list[str]]:
    return [
        [view.topLevelItem(i).text(c) for c in range(view.columnCount())]
        for i in range(view.topLevelItemCount())
    ]


def _expected(entries: list[HistoryEntry]) -> list[list[str]]:
    rows = []
    for entry in entries:
        row = history_row(entry)
        protection = row.protection if row.protection == "—" else f"● {row.protection}"
        rows.append([row.direction, row.peer, row.start, row.duration, row.outcome, protection])
    return rows


def _view(qtbot: QtBot, entries: list[HistoryEntry]) -> HistoryView:
    view = HistoryView()
    qtbot.addWidget(view)
    view.show_entries(entries)
    assert _rows(view) == _expected(entries)
    return view


def test_a_changed_call_changes_its_row_only(qtbot: QtBot) -> None:
    entries = _history(30)
    view = _view(qtbot, entries)
    items = [view.topLevelItem(i) for i in range(30)]
    entries[0] = dataclasses.replace(entries[0], outcome="answered; ended: connection lost")
    view.show_entries(entries)
    assert _rows(view) == _expected(entries)
    assert [view.topLevelItem(i) for i in range(30)] == items  # the same rows, one refilled


def test_a_new_call_comes_on_top_and_the_oldest_goes(qtbot: QtBot) -> None:
    entries = _history(30)
    view = _view(qtbot, entries)
    items = [view.topLevelItem(i) for i in range(29)]
    fresh = dataclasses.replace(entries[1], call_id="new", outcome="in progress")
    entries = [fresh, *entries[:29]]  # the history keeps at most 30 here
    view.show_entries(entries)
    assert _rows(view) == _expected(entries)
    assert [view.topLevelItem(i) for i in range(1, 30)] == items


def test_the_same_entries_again_touch_nothing_and_a_new_order_is_shown(qtbot: QtBot) -> None:
    entries = _history(12)
    view = _view(qtbot, entries)
    items = [view.topLevelItem(i) for i in range(12)]
    view.show_entries(list(entries))
    assert [view.topLevelItem(i) for i in range(12)] == items
    reordered = list(reversed(entries))  # a history file loaded again, say
    view.show_entries(reordered)
    assert _rows(view) == _expected(reordered)
    view.show_entries([])
    assert view.topLevelItemCount() == 0


def test_a_protection_learnt_later_gets_its_colour_and_loses_it_when_gone(qtbot: QtBot) -> None:
    entries = [dataclasses.replace(_history(1)[0], signalling="", audio="")]
    view = _view(qtbot, entries)
    assert view.topLevelItem(0).text(5) == "—"
    known = dataclasses.replace(_history(1)[0], call_id=entries[0].call_id)
    view.show_entries([known])
    assert _rows(view) == _expected([known])
    assert view.topLevelItem(0).foreground(5).style().name != "NoBrush"
    view.show_entries(entries)
    assert view.topLevelItem(0).foreground(5).style().name == "NoBrush"
