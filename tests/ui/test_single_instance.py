"""ui.single_instance over a real QLocalServer socket: a second launch's URI reaches the
running phone's dialer; junk is dropped and the server keeps listening; the tray and the
command line's URI check."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtNetwork import QLocalSocket
from PySide6.QtWidgets import QSystemTrayIcon
from pytestqt.qtbot import QtBot

from ui import app as gui_app
from ui.bridge import EngineBridge
from ui.main_window import MainWindow
from ui.presenters import Protection
from ui.single_instance import InstanceServer, acceptable_uri, hand_off
from ui.tray import Tray, phone_icon


@pytest.fixture
def server(qtbot: QtBot) -> Iterator[InstanceServer]:
    srv = InstanceServer(f"softphone-test-{os.getpid()}")
    assert srv.listen()
    yield srv
    srv.close()


def test_a_second_launch_hands_its_uri_to_the_dialer(qtbot: QtBot, server: InstanceServer) -> None:
    window = MainWindow(EngineBridge())
    qtbot.addWidget(window)
    server.uri_received.connect(window.set_dial_text)
    with qtbot.waitSignal(server.uri_received, timeout=10_000) as got:
        assert hand_off("sips:bob@biloxi.test", server.name)
    assert got.args == ["sips:bob@biloxi.test"]
    assert window.dial.text() == "sips:bob@biloxi.test"
    assert window.selected_protection is Protection.SIPS


def test_junk_is_dropped_and_the_server_keeps_listening(
    qtbot: QtBot, server: InstanceServer
) -> None:
    socket = QLocalSocket()
    socket.connectToServer(server.name)
    assert socket.waitForConnected(2000)
    socket.write(b"http://evil.example/\n")
    socket.waitForBytesWritten(2000)
    qtbot.waitUntil(lambda: bool(server.rejected), timeout=10_000)
    assert "not a sip:" in server.rejected[0]
    with qtbot.waitSignal(server.uri_received, timeout=10_000) as got:
        assert hand_off("sipsec:bob@biloxi.test", server.name)
    assert got.args == ["sipsec:bob@biloxi.test"]


def test_no_running_phone_means_no_hand_off(qtbot: QtBot) -> None:
    assert not hand_off("sip:bob@biloxi.test", f"softphone-nobody-{os.getpid()}", 200)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("sip:bob@biloxi.test", True),
        ("SIPS:bob@biloxi.test", True),
        ("sipsec:bob@biloxi.test", True),
        ("tel:+15550100", True),
        ("https://example.test", False),
        ("sip:bob@biloxi.test\nsip:x@y", False),
        ("sip:" + "a" * 3000, False),
        ("", False),
    ],
)
def test_acceptable_uri(text: str, ok: bool) -> None:
    assert acceptable_uri(text) is ok


def test_main_refuses_a_bad_uri(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert gui_app.main(["https://example.test"]) == 2
    assert "is not a sip:, sips:, sipsec: or tel: URI" in capsys.readouterr().err


def test_tray_notifies(qtbot: QtBot) -> None:
    window = MainWindow(EngineBridge())
    qtbot.addWidget(window)
    tray = Tray(window)  # offscreen has no tray: Tray.create() would say None
    assert (Tray.create(window) is None) == (not QSystemTrayIcon.isSystemTrayAvailable())
    tray.notify("Incoming call", "sips:bob@biloxi.test is calling")
    assert tray.notifications == [("Incoming call", "sips:bob@biloxi.test is calling")]
    assert not phone_icon().isNull()
