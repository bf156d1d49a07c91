"""The security panel draws the safety number's QR code off the event loop (issue 7: the loop
never stalls 20 ms during a call; segno takes ~60 ms here): with a loop running it appears
once the worker thread is done, only if it is still the code to show."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from pytestqt.qtbot import QtBot

from softphone.security.safety import QR_PREFIX
from ui.qr import qr_pixmap
from ui.security_panel import SecurityPanel

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
        await asyncio.sleep(0.3)  # the OTHER code's thread has finished by now too
        ratio = max(1.0, panel.devicePixelRatioF())
        expected = qr_pixmap(PAYLOAD, scale=max(2, round(2 * ratio))).toImage()
        assert panel.qr.pixmap().toImage() == expected

    run_in_qasync(scenario())
