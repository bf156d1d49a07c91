"""Nothing in the call window is drawn cut off: with every line of a sipsec call's security
panel and the safety number's QR code, at the window's own size, and in a window too low for
it, where the panel scrolls instead.

At stop 13 the last detail line of the audio row ("Keys travelled: inside the sipsec tunnel")
was cut in half in both phones of the journey: the QR code under the safety number took
100 px the 760 px window did not have, and Qt squeezed the word-wrapped labels below the
height their text needs. :func:`tests.ui.shots.cut_labels` finds such labels."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QApplication, QLabel, QVBoxLayout, QWidget
from pytestqt.qtbot import QtBot

from tests.ui.screens import ALICE, SAFETY_QR, SIPSEC_BOB, FakeCall, sipsec_call_events
from tests.ui.shots import cut_labels
from ui.bridge import EngineBridge
from ui.call_window import CallWindow
from ui.calls import CallManager
from ui.presenters import Protection


def _sipsec_window(qtbot: QtBot) -> tuple[CallWindow, Any]:
    """Bob's window of the journey: a sipsec call whose certificate a person accepted (the
    longest identity words), audio end to end, the safety number and its QR code."""
    bridge = EngineBridge()
    manager = CallManager(bridge, None, runner=lambda coro: coro.close())
    for event in sipsec_call_events("c-fit", "claimed"):
        bridge.on_event(ALICE, event)
    bridge.call_started.emit(ALICE, FakeCall("c-fit", peer=SIPSEC_BOB), Protection.SIPSEC)
    window = manager.windows["c-fit"]
    qtbot.addWidget(window)
    window.security.show_qr(SAFETY_QR)  # no loop running: drawn at once
    return window, manager


def _settle(qtbot: QtBot, window: CallWindow) -> None:
    window.show()
    qtbot.waitExposed(window)
    window.finish_painting()
    QApplication.processEvents()


def test_a_sipsec_call_window_shows_every_line_at_its_own_size(qtbot: QtBot) -> None:
    window, _manager = _sipsec_window(qtbot)
    _settle(qtbot, window)
    panel = window.security
    assert "Keys travelled: inside the sipsec tunnel" in panel.audio.details.text()
    assert panel.qr.isVisible() and panel.safety_number.isVisible()
    assert cut_labels(window) == []
    # ...and all of it without scrolling.
    assert not window.security_scroll.verticalScrollBar().isVisible()


def test_a_window_too_low_for_the_panel_scrolls_it_instead_of_cutting_lines(
    qtbot: QtBot,
) -> None:
    window, _manager = _sipsec_window(qtbot)
    window.resize(620, 520)
    _settle(qtbot, window)
    assert cut_labels(window) == []
    scroll = window.security_scroll
    bar = scroll.verticalScrollBar()
    assert bar.isVisible() and bar.maximum() > 0
    button = window.security.compare_button
    scroll.ensureWidgetVisible(button)
    QApplication.processEvents()
    assert bar.value() > 0
    viewport = scroll.viewport().rect()
    top_left = button.mapTo(scroll.viewport(), button.rect().topLeft())
    bottom_right = button.mapTo(scroll.viewport(), button.rect().bottomRight())
    assert viewport.contains(top_left) and viewport.contains(bottom_right)


def test_a_label_whose_text_just_grew_is_measured_after_its_layout(qtbot: QtBot) -> None:
    """A text that arrives from a worker (a contact's details, a safety number) lands in a
    label that keeps its old size until Qt runs the layout request the new text posted; it is
    never drawn at the old size. :func:`cut_labels` must not call that cut (the demo journey
    failed once in CI on the contacts shot taken in that turn), and a label too small after
    its layout is still found."""
    window = QWidget()
    qtbot.addWidget(window)
    column = QVBoxLayout(window)
    grown = QLabel("short")
    grown.setWordWrap(True)
    column.addWidget(grown)
    column.addStretch()
    window.resize(300, 400)
    window.show()
    qtbot.waitExposed(window)
    grown.setText("a text that needs several lines at this width " * 4)
    assert cut_labels(window) == []
    assert grown.height() >= grown.heightForWidth(grown.width())

    squeezed = QLabel("a text that needs several lines at this width " * 4)
    squeezed.setWordWrap(True)
    squeezed.setParent(window)
    squeezed.setGeometry(0, 0, 300, 14)  # no layout will ever make room
    squeezed.show()
    assert len(cut_labels(window)) == 1
