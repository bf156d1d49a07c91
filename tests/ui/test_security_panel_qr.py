"""The security panel draws the safety number's QR code off the event loop (issue 7: the loop
never stalls 20 ms during a call; segno takes 10-15 ms here): with a loop running it is drawn
in a worker thread a while (QR_DELAY) after it is asked for, out of the call set-up's busiest
turns, and appears only if it is still the code to show."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

import ui.qr
from softphone.security.safety import QR_PREFIX
from ui.qr import qr_pixmap
from ui.security_panel import QR_DELAY, SecurityPanel

PAYLOAD = QR_PREFIX + b"1:" + b"A" * 128
OTHER = QR_PREFIX + b"1:" + b"B" * 128


def _panel(qtbot: QtBot) -> SecurityPanel:
    panel = SecurityPanel()
    qtbot.addWidget(panel)
    panel.safety_number.setVisible(True)
    panel.show()
    return panel


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while not condition():
            await asyncio.sleep(0.01)


def test_without_a_loop_the_code_is_drawn_at_once(qtbot: QtBot) -> None:
    panel = _panel(qtbot)
    panel.show_qr(PAYLOAD)
    assert not panel.qr.pixmap().isNull()
    panel.show_qr(None)
    assert panel.qr.pixmap().isNull() and not panel.qr.isVisible()


def test_with_a_loop_the_code_arrives_from_a_worker_thread(
    qtbot: QtBot, run_in_qasync: Callable[[Coroutine[Any, Any, None]], None]
) -> None:
    panel = _panel(qtbot)

    async def scenario() -> None:
        panel.show_qr(PAYLOAD)
        assert panel.qr.pixmap().isNull()  # not drawn on the loop: it is on its way
        await _until(lambda: not panel.qr.pixmap().isNull())
        ratio = max(1.0, panel.devicePixelRatioF())
        expected = qr_pixmap(PAYLOAD, scale=max(2, round(2 * ratio))).toImage()
        assert panel.qr.pixmap().toImage() == expected

    run_in_qasync(scenario())


def test_a_code_overtaken_before_it_is_drawn_is_not_shown(
    qtbot: QtBot, run_in_qasync: Callable[[Coroutine[Any, Any, None]], None]
) -> None:
    panel = _panel(qtbot)

    async def scenario() -> None:
        panel.show_qr(PAYLOAD)
        first = panel._qr_task
        panel.show_qr(None)  # the call ended, say, while the first code was being drawn
        assert first is not None
        await asyncio.wait_for(asyncio.shield(first), 30)
        await asyncio.sleep(0)
        assert panel.qr.pixmap().isNull() and not panel.qr.isVisible()
        panel.show_qr(OTHER)
        panel.show_qr(PAYLOAD)  # two in a row: only the last one is shown
        last = panel._qr_task
        assert last is not None
        await _until(lambda: not panel.qr.pixmap().isNull())
        await asyncio.sleep(0.3)  # nothing else comes (OTHER was overtaken while it waited)
        ratio = max(1.0, panel.devicePixelRatioF())
        expected = qr_pixmap(PAYLOAD, scale=max(2, round(2 * ratio))).toImage()
        assert panel.qr.pixmap().toImage() == expected

    run_in_qasync(scenario())


def test_the_code_is_drawn_a_while_after_it_is_asked_for_and_only_the_last_one(
    qtbot: QtBot,
    run_in_qasync: Callable[[Coroutine[Any, Any, None]], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Asked for at a call's set-up (the PeerIdentity of a sipsec call comes just before its
    200 OK), the code is not drawn in those turns: segno's pure Python in a worker thread
    holds the GIL against the loop half the time. A code overtaken while it waits is never
    drawn at all."""
    drawn: list[tuple[float, bytes]] = []
    real_qr_png = ui.qr.qr_png

    def qr_png(payload: bytes, **kwargs: Any) -> bytes:
        drawn.append((time.monotonic(), payload))
        return real_qr_png(payload, **kwargs)

    monkeypatch.setattr(ui.qr, "qr_png", qr_png)
    monkeypatch.setattr(ui.qr, "_DRAWN", OrderedDict())  # none drawn lately
    panel = _panel(qtbot)
    assert panel.qr_delay == QR_DELAY >= 0.5

    async def scenario() -> None:
        asked = time.monotonic()
        panel.show_qr(OTHER)
        panel.show_qr(PAYLOAD)
        await _until(lambda: not panel.qr.pixmap().isNull())
        assert [payload for _, payload in drawn] == [PAYLOAD]
        assert drawn[0][0] - asked >= QR_DELAY

    run_in_qasync(scenario())


def test_a_code_drawn_lately_is_not_drawn_again(
    qtbot: QtBot,
    run_in_qasync: Callable[[Coroutine[Any, Any, None]], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both ends of a call show the same code: the demo's two phones (one process) ask for it
    together, and segno draws it once, in one worker, not twice side by side holding the GIL
    against the loop (issue 7). A caller that goes away meanwhile leaves it to the other."""
    drawn: list[tuple[bytes, str]] = []
    real_qr_png = ui.qr.qr_png

    def qr_png(payload: bytes, **kwargs: Any) -> bytes:
        drawn.append((payload, threading.current_thread().name))
        time.sleep(0.05)  # still being drawn when the others ask
        return real_qr_png(payload, **kwargs)

    monkeypatch.setattr(ui.qr, "qr_png", qr_png)
    monkeypatch.setattr(ui.qr, "_DRAWN", OrderedDict())
    panels = [_panel(qtbot), _panel(qtbot), _panel(qtbot)]
    for panel in panels:
        panel.qr_delay = 0.0

    async def scenario() -> None:
        for panel in panels:
            panel.show_qr(PAYLOAD)
        await asyncio.sleep(0.01)
        gone = panels.pop()._qr_task
        assert gone is not None
        gone.cancel()  # its window closed while the code was being drawn
        await _until(lambda: all(not p.qr.pixmap().isNull() for p in panels))
        assert [payload for payload, _ in drawn] == [PAYLOAD]
        assert drawn[0][1].startswith("qr")  # the one drawing worker, not the loop's thread
        panels[0].show_qr(None)
        panels[0].show_qr(PAYLOAD)
        assert panels[0].qr.pixmap().isNull()
        await _until(lambda: not panels[0].qr.pixmap().isNull())
        assert [payload for payload, _ in drawn] == [PAYLOAD]  # drawn lately: not again
        ratio = max(1.0, panels[0].devicePixelRatioF())
        expected = qr_pixmap(PAYLOAD, scale=max(2, round(2 * ratio))).toImage()
        assert all(p.qr.pixmap().toImage() == expected for p in panels)

    run_in_qasync(scenario())


def test_the_drawing_worker_is_running_before_the_first_code_is_asked_for() -> None:
    """Starting a thread makes the caller wait until it runs (milliseconds on a loaded
    machine): the first code is asked for on the loop, mid-call, so the worker was started
    at start-up (when ui.qr is imported)."""
    assert any(thread.name.startswith("qr") for thread in threading.enumerate())
