"""Ended calls are let go, and a call is never left going on without a window.

Before stop 14 the call manager kept every call of the phone's life: its window (~150 widgets),
presenter and the engine's ``Call``; and closing the window of a call still going on hid it
with no way left to hang up. Now closing a live call's window asks "Hang up?" (window-modal,
answered later, never a nested event loop), and an ended call whose windows are closed is
released: the windows deleted on the Qt thread, late events dropped."""

from __future__ import annotations

import pytest
import shiboken6
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from softphone.ua.events import CallState, MediaStarted
from tests.ui.screens import ALICE, BOB, FakeCall
from tests.ui.test_call_screens import Harness
from ui import calls as calls_module
from ui.call_window import CallWindow
from ui.presenters import Protection


def _established(h: Harness, call_id: str) -> tuple[CallWindow, FakeCall]:
    call = FakeCall(call_id)
    h.start(call, Protection.SIPS)
    h.feed(CallState(call_id, "outgoing", BOB, "established"))
    window = h.manager.windows[call_id]
    window.finish_painting()
    return window, call


def _ended(h: Harness, call_id: str) -> None:
    h.feed(CallState(call_id, "outgoing", BOB, "ended", "the other side hung up"))


def _held(h: Harness, call_id: str) -> list[str]:
    """What the manager still holds of ``call_id``."""
    m = h.manager
    stores = {"window": m.windows, "incoming": m.incoming, "presenter": m.presenters}
    stores |= {"call": m.calls, "aor": m.aors, "early": m._early}
    return [name for name, store in stores.items() if call_id in store]


def _answer(window: CallWindow, button_text: str) -> None:
    box = window.hang_up_question
    assert box is not None and box.isVisible()
    (button,) = [b for b in box.buttons() if b.text().replace("&", "") == button_text]
    button.click()


def test_an_ended_call_is_let_go_when_its_window_is_closed(qtbot: QtBot) -> None:
    h = Harness(qtbot)
    window, _call = _established(h, "c1")
    _ended(h, "c1")
    assert window.isVisible() and _held(h, "c1")  # still there to be read after the call
    window.close()  # no question: the call has ended
    assert window.hang_up_question is None
    assert _held(h, "c1") == []
    qtbot.waitUntil(lambda: not shiboken6.isValid(window), timeout=2000)  # deleted
    # A late event of the call is dropped, not kept as the early event of a call to come.
    h.feed(MediaStarted("c1", "opus", True, "", "sdes", "", ""))
    h.feed(CallState("c1", "outgoing", BOB, "ended"))
    assert _held(h, "c1") == []


def test_a_window_closed_before_the_end_lets_the_call_go_when_it_ends(qtbot: QtBot) -> None:
    h = Harness(qtbot)
    window, call = _established(h, "c2")
    window.close()
    _answer(window, "Hang up")
    assert call.actions == ["hangup"] and not window.isVisible()
    assert _held(h, "c2")  # until the engine says the call has ended
    _ended(h, "c2")
    assert _held(h, "c2") == []


def test_closing_a_live_call_asks_and_keep_the_call_keeps_it(qtbot: QtBot) -> None:
    h = Harness(qtbot)
    window, call = _established(h, "c3")
    window.close()
    box = window.hang_up_question
    assert box is not None and box.icon() is QMessageBox.Icon.Question
    assert BOB in box.text() and "hangs it up" in box.informativeText()
    window.close()  # asked again while asking: the same question
    assert window.hang_up_question is box
    _answer(window, "Keep the call")
    QApplication.processEvents()
    assert window.isVisible() and call.actions == [] and window.hang_up_question is None
    assert "window" in _held(h, "c3")


def test_a_call_that_ends_while_hang_up_is_asked_closes_the_window(qtbot: QtBot) -> None:
    h = Harness(qtbot)
    window, call = _established(h, "c4")
    window.close()
    box = window.hang_up_question
    assert box is not None
    _ended(h, "c4")  # the other side hung up meanwhile
    assert window.hang_up_question is None and not box.isVisible()
    assert not window.isVisible() and call.actions == []
    assert _held(h, "c4") == []


def test_a_missed_or_declined_incoming_call_is_let_go_at_its_end(qtbot: QtBot) -> None:
    h = Harness(qtbot)
    for call_id in ("in-missed", "in-declined"):
        call = FakeCall(call_id, peer=BOB, incoming=True)
        h.feed(CallState(call_id, "incoming", BOB, "ringing"))
        h.bridge.incoming_call.emit(ALICE, call)
        dialog = h.manager.incoming[call_id]
        if call_id == "in-declined":
            dialog.decline_button.click()
            assert call.actions == ["reject 603"]
        h.feed(CallState(call_id, "incoming", BOB, "ended", "cancelled"))
        if call_id == "in-missed":  # it says so until the person closes it
            assert dialog.isVisible() and _held(h, call_id)
            assert dialog.decline_button.text() == "&Close"
            dialog.decline_button.click()
            assert call.actions == []
        assert _held(h, call_id) == []
        qtbot.waitUntil(lambda d=dialog: not shiboken6.isValid(d), timeout=2000)


def test_many_calls_leave_nothing_behind(qtbot: QtBot, monkeypatch: pytest.MonkeyPatch) -> None:
    """A day of calls: each one answered, ended, its window closed. The manager holds none
    of them, and remembers only the last RELEASED_KEPT ids to drop late events."""
    monkeypatch.setattr(calls_module, "RELEASED_KEPT", 8)
    h = Harness(qtbot)
    calls = 8 + 12
    for n in range(calls):
        window, _call = _established(h, f"day-{n}")
        _ended(h, f"day-{n}")
        window.close()
    m = h.manager
    assert not (m.windows or m.presenters or m.calls or m.aors or m.incoming or m._early)
    assert len(m._released) == 8 and "day-0" not in m._released
    assert f"day-{calls - 1}" in m._released


def test_a_closing_phone_closes_live_calls_without_asking(qtbot: QtBot) -> None:
    """...and the windows of ended calls, which are let go while close_all goes through
    them (the demo's close segfaulted when that changed the dict being walked)."""
    h = Harness(qtbot)
    ended, _ = _established(h, "c-ended")
    _ended(h, "c-ended")
    window, call = _established(h, "c5")
    h.manager.close_all()
    assert not window.isVisible() and window.hang_up_question is None
    assert call.actions == []  # the phone's own shutdown ends its calls (ui.app)
    assert _held(h, "c-ended") == [] and not ended.isVisible()


def test_the_sip_trace_of_a_let_go_call_stays_while_it_is_open(qtbot: QtBot) -> None:
    h = Harness(qtbot)
    window, _call = _established(h, "c6")
    window.trace_button.click()
    ladder = h.manager.ladders["c6"]
    assert ladder.isVisible()
    _ended(h, "c6")
    window.close()
    assert _held(h, "c6") == [] and h.manager.ladders["c6"] is ladder  # still being read
    ladder.close()
    other, _ = _established(h, "c7")
    other.trace_button.click()  # the next ladder opened lets the closed one go
    assert set(h.manager.ladders) == {"c7"}
    qtbot.waitUntil(lambda: not shiboken6.isValid(ladder), timeout=2000)


# --- the dialled call's window: bound in the dialling turn, shown in a later one -------------


def test_a_dialled_calls_window_is_bound_at_once_and_shown_in_a_later_turn(
    qtbot: QtBot,
) -> None:
    """Issue 7: the dialling task's last step binds the window; its show() (~3 ms) comes in
    a turn of its own."""
    h = Harness(qtbot)
    h.bridge.call_started.emit(ALICE, FakeCall("c-later"), Protection.SIPS)
    window = h.manager.windows["c-later"]
    assert window.windowTitle() == f"Call with {BOB}" and not window.isVisible()
    qtbot.waitUntil(window.isVisible, timeout=2000)


def test_an_answered_calls_window_is_bound_at_once_and_shown_in_a_later_turn(
    qtbot: QtBot,
) -> None:
    """The same for the callee: the click on Accept also starts the answer, and a call
    answered with no click (auto-answer) opens its window in the answer's event, beside the
    engine's work on the ACK and the media (issue 7: the loop never stalls 20 ms)."""
    h = Harness(qtbot)
    clicked = FakeCall("c-accepted", peer=BOB, incoming=True)
    h.feed(CallState("c-accepted", "incoming", BOB, "ringing"))
    h.bridge.incoming_call.emit(ALICE, clicked)
    h.manager.incoming["c-accepted"].accept_button.click()
    auto = "c-auto"
    h.feed(CallState(auto, "incoming", BOB, "established"))
    windows = [h.manager.windows["c-accepted"], h.manager.windows[auto]]
    assert clicked.actions == ["answer"]
    for window in windows:
        assert window.windowTitle() == f"Call with {BOB}" and not window.isVisible()
    qtbot.waitUntil(lambda: all(w.isVisible() for w in windows), timeout=2000)
    assert windows[1].phase_label.text() == "In call"


def test_a_dialled_call_that_ends_before_its_window_shows_still_shows_how_it_ended(
    qtbot: QtBot,
) -> None:
    """A call refused at once (486 a few ms after the INVITE) ends before the later turn: its
    window must not be let go as a window nobody looks at; the person sees why it ended."""
    h = Harness(qtbot)
    h.bridge.call_started.emit(ALICE, FakeCall("c-busy"), Protection.SIPS)
    h.feed(CallState("c-busy", "outgoing", BOB, "ended", "busy here"))
    window = h.manager.windows["c-busy"]
    qtbot.waitUntil(window.isVisible, timeout=2000)
    assert window.phase_label.text() == "Call ended: busy here"
    window.close()
    assert _held(h, "c-busy") == []


def test_a_phone_closing_before_the_later_turn_shows_no_window(qtbot: QtBot) -> None:
    h = Harness(qtbot)
    h.bridge.call_started.emit(ALICE, FakeCall("c-closing"), Protection.SIPS)
    window = h.manager.windows["c-closing"]
    h.manager.close_all()
    qtbot.wait(50)
    assert not shiboken6.isValid(window) or not window.isVisible()
