"""The main window: the skeleton's widgets, the bridge's signals reaching them, and the whole
GUI registering against our own registrar with a self-signed certificate.

The end-to-end test runs the real thing: :class:`ui.app.Phone` (window, bridge, UserAgent)
inside a ``qasync.QEventLoop`` on pytest-qt's QApplication, against
:func:`softphone.server.registrar.running_registrar` on 127.0.0.1. The test clicks "Connect
this time" in the dialog the engine's question opened, as a person would. Every wait is
bounded (:data:`WAIT`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QGroupBox
from pytestqt.qtbot import QtBot

from softphone.server.config import RegistrarConfig
from softphone.server.registrar import running_registrar
from softphone.ua import (
    Account,
    ConnectionLost,
    Registered,
    ResolveEntry,
    Transport,
    TrustDecision,
    TrustProblem,
    TrustRequired,
)
from tests.transport import certs
from ui import app as gui_app
from ui.app import Phone
from ui.bridge import EngineBridge
from ui.main_window import MainWindow
from ui.presenters import Protection
from ui.trust_dialog import TrustDialog

SHOTS = Path(os.environ.get("SOFTPHONE_UI_SHOTS", "/tmp"))
DOMAIN = "example.test"
USER = "alice"
PASSWORD = "alice-secret-1"
AOR = f"sips:{USER}@{DOMAIN}"
FP_HEX = ":".join(f"{b:02X}" for b in range(32, 64))
WAIT = 20.0


@pytest.fixture
def window(qtbot: QtBot) -> MainWindow:
    bridge = EngineBridge()
    win = MainWindow(bridge)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win


def test_skeleton(window: MainWindow) -> None:
    assert window.windowTitle() == "Softphone"
    assert window.call_button.text() == "&Call"
    assert not window.call_button.isEnabled()  # no account to call from: it says so
    assert window.call_button.toolTip() == "Add an account first: softphone gui --account FILE"
    window.add_account(AOR)
    assert window.call_button.isEnabled()
    assert window.dial.placeholderText() == "sip:bob@example.test"
    labels = [window.protection.itemText(i) for i in range(window.protection.count())]
    assert labels == ["End to end (sipsec)", "Hop by hop (sips:)", "Plain (sip:)"]
    assert window.selected_protection is Protection.SIPSEC
    assert "Encrypted end to end" in window.protection_label.text()
    window.protection.setCurrentIndex(2)
    assert window.protection_label.text() == "Call setup: Call setup not encrypted"


def test_bridge_signals_update_the_window(qtbot: QtBot, window: MainWindow) -> None:
    bridge = window.bridge
    window.add_account(AOR)
    item = window.items[AOR]
    assert item.text(1) == "● Not registered"

    with qtbot.waitSignal(bridge.trust_required) as seen:
        bridge.on_event(
            AOR,
            TrustRequired(
                waiting_for=f"registration to {DOMAIN}",
                identity=DOMAIN,
                problems=(TrustProblem("self-signed", 0, "No authority you trust vouches."),),
                fingerprint=FP_HEX,
                chain_subjects=(DOMAIN,),
                changed=False,
                overridable=True,
            ),
        )
    assert seen.args is not None and seen.args[0] == AOR
    assert item.text(1) == "● Waiting for you"
    assert "Not trusted" in item.text(2)

    bridge.trust_decided.emit(AOR, TrustDecision.ACCEPT_ONCE)
    with qtbot.waitSignal(bridge.registered):
        bridge.on_event(
            AOR, Registered(AOR, 3600, f"sips:{DOMAIN}", FP_HEX, Transport.TLS, "SHA-256")
        )
    assert item.text(1) == "● Registered"
    assert item.foreground(1).color().name() == "#228b22"  # forestgreen, beside the words
    assert "Accepted by you this time only" in item.text(2)
    assert window.fingerprint_label.text() == (
        "2021 2223 2425 2627 2829 2A2B 2C2D 2E2F\n3031 3233 3435 3637 3839 3A3B 3C3D 3E3F"
    )
    assert "Encrypted to each server" in window.signalling_label.text()
    assert "Registered sips:alice@example.test" in window.log.toPlainText()
    assert "You chose: connect this time" in window.log.toPlainText()

    with qtbot.waitSignal(bridge.connection_lost):
        bridge.on_event(AOR, ConnectionLost(AOR, "127.0.0.1:5061", Transport.TLS, "EOF"))
    assert item.text(1) == "● Connection lost; reconnecting"
    assert window.statusBar().currentMessage() == "Connection to 127.0.0.1:5061 lost: EOF"


def test_a_calls_events_leave_the_account_row_as_it_is(qtbot: QtBot, window: MainWindow) -> None:
    """Each engine event went through the account's row and details (0.3 ms a time, some
    twenty times in a sipsec call's set-up with both demo phones on one loop: issue 7). A
    call's events change nothing of the account: the row is not written again."""
    from softphone.ua.events import CallState

    bridge = window.bridge
    window.add_account(AOR)
    bridge.on_event(AOR, Registered(AOR, 3600, f"sips:{DOMAIN}", FP_HEX, Transport.TLS, "SHA-256"))
    qtbot.waitUntil(lambda: window.items[AOR].text(1) == "● Registered")
    written: list[str] = []
    real = window.state_label.setText
    window.state_label.setText = lambda text: (written.append(text), real(text))  # type: ignore[method-assign]
    lines = window.log.blockCount()
    for state in ("calling", "established", "ended"):
        bridge.on_event(AOR, CallState("c-1", "outgoing", "sips:bob@example.test", state))
    qtbot.waitUntil(lambda: window.log.blockCount() == lines + 3)  # all three delivered
    assert written == []
    bridge.on_event(AOR, ConnectionLost(AOR, "127.0.0.1:5061", Transport.TLS, "EOF"))
    qtbot.waitUntil(lambda: written != [])
    assert "Connection lost" in written[-1]


def _warm_window(qtbot: QtBot, tmp_path: Path) -> tuple[MainWindow, Any]:
    from types import SimpleNamespace

    from softphone.contacts import save_ledger
    from softphone.ua.trustledger import LedgerKeeper
    from tests.ui.screens import ALICE, sample_ledger
    from ui.calls import CallManager

    ledger, own = sample_ledger()
    save_ledger(tmp_path / "contacts.json", ledger)
    bridge = EngineBridge()
    keeper = LedgerKeeper(tmp_path / "contacts.json", tmp_path / "pins.json")
    bridge.user_agents[ALICE] = SimpleNamespace(ledger=keeper, identity=own)  # type: ignore[assignment]
    win = MainWindow(bridge)
    qtbot.addWidget(win)
    win.add_account(ALICE)
    manager = CallManager(bridge, win, runner=lambda coro: coro.close())
    win.show()
    qtbot.waitExposed(win)
    return win, manager


def test_hidden_tabs_are_warmed_while_the_phone_is_idle(qtbot: QtBot, tmp_path: Path) -> None:
    """Issue 7: the contacts tab first brought to the front (a person does it mid-call, as
    the demo does) read the ledger and polished, laid out and painted its widgets for the
    first time: 28-47 ms on the loop. The call manager has the window do it at idle, after
    it built the spare call window (0.5 s after start-up)."""
    win, manager = _warm_window(qtbot, tmp_path)
    view = win.contacts_view
    assert not view.isVisible() and view.ledger is None and not win.warmed
    qtbot.waitUntil(lambda: win.warmed, timeout=5000)
    assert manager.spare is not None
    assert not view.isVisible() and view.ledger is not None and len(view.rows) == 5
    assert view.title.text() == view.rows[0].aor  # the details built while hidden...
    boxes = view.findChildren(QGroupBox)
    polished = Qt.WidgetAttribute.WA_WState_Polished
    assert boxes and all(box.testAttribute(polished) for box in boxes)  # ...and polished
    win.tabs.setCurrentWidget(view)
    assert view.isVisible() and view.selected_aor() == view.rows[0].aor


def test_warming_stops_when_a_call_begins_and_resumes_at_the_next_idle_time(
    qtbot: QtBot, tmp_path: Path
) -> None:
    """Warming is work done ahead: a call that begins meanwhile stops it (it measured 24 ms
    in one turn, inside a call, when it ran on a timer of its own)."""
    from softphone.ua.events import CallState
    from tests.ui.screens import ALICE, BOB

    win, manager = _warm_window(qtbot, tmp_path)
    manager.bridge.on_event(ALICE, CallState("c-warm", "incoming", BOB, "ringing"))
    qtbot.wait(1200)  # past the spare's timer
    assert not win.warmed and not win._warming
    manager.bridge.on_event(ALICE, CallState("c-warm", "incoming", BOB, "ended", "cancelled"))
    qtbot.waitUntil(lambda: win.warmed, timeout=5000)


def test_warming_stops_between_two_tabs_when_the_phone_stops_being_idle(
    qtbot: QtBot, tmp_path: Path
) -> None:
    win, manager = _warm_window(qtbot, tmp_path)
    manager.close_all()  # no warming of the manager's own in this test
    asked: list[bool] = []

    def idle() -> bool:  # idle for the start and the first tab, then a call begins
        asked.append(len(asked) < 2)
        return asked[-1]

    win.warm_hidden_tabs(idle)
    qtbot.waitUntil(lambda: not win._warming, timeout=2000)
    assert asked == [True, True, False] and not win.warmed  # left undone
    win.warm_hidden_tabs()
    qtbot.waitUntil(lambda: win.warmed, timeout=2000)


def test_closing_the_window_says_so(qtbot: QtBot, window: MainWindow) -> None:
    with qtbot.waitSignal(window.closed):
        window.close()


def test_main_refuses_a_missing_account_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gui_app.main(["--account", str(tmp_path / "nope.toml")]) == 2
    assert "softphone gui:" in capsys.readouterr().err
    assert gui_app.main(["--bogus"]) == 2


# --- end to end with the real engine --------------------------------------------------------


def registrar_config() -> RegistrarConfig:
    identity = certs.self_signed(DOMAIN)
    return RegistrarConfig(
        domain=DOMAIN,
        users={USER: PASSWORD},
        certificate_chain=identity.chain,
        private_key=identity.key,
    )


def account(port: int) -> Account:
    return Account(
        aor=AOR,
        registrar=f"sips:{DOMAIN}:{port}",
        resolve=(ResolveEntry(DOMAIN, port, "127.0.0.1"),),
    )


def first(signal: Any) -> asyncio.Future[tuple[Any, ...]]:
    """A future for the next emission of ``signal`` (its arguments)."""
    future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()

    def fire(*args: Any) -> None:
        if not future.done():
            future.set_result(args)

    signal.connect(fire)
    return future


def test_gui_registers_after_connect_this_time(
    run_in_qasync: Callable[[Coroutine[Any, Any, None]], None], tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with running_registrar(registrar_config()) as registrar:
            phone = Phone()
            phone.window.show()
            try:
                shown = first(phone.bridge.trust_dialog_shown)
                registered = first(phone.bridge.registered)
                phone.add_account(
                    account(registrar.tls_port),
                    pin_store_path=tmp_path / "pins.json",
                    password=PASSWORD,
                    anchors=(),
                )
                _, dialog = await asyncio.wait_for(shown, WAIT)
                assert isinstance(dialog, TrustDialog)
                assert dialog.isVisible()
                assert dialog.reject_button.isDefault()
                assert "self-signed" in dialog.headline_label.text()
                assert phone.window.view(AOR).state == "Waiting for you"
                assert not registered.done()  # nothing is registered before the answer
                phone.window.grab().save(str(SHOTS / "ui-main-window-asking.png"))

                QTest.mouseClick(dialog.once_button, Qt.MouseButton.LeftButton)
                _, event = await asyncio.wait_for(registered, WAIT)
                assert isinstance(event, Registered)
                view = phone.window.view(AOR)
                assert view.state == "Registered"
                assert view.certificate == "Accepted by you this time only (not trusted)"
                assert phone.window.items[AOR].text(1) == "● Registered"
                assert view.fingerprint is not None and event.registrar_fingerprint is not None
                assert (
                    view.fingerprint.split()
                    == [  # the registrar's SHA-256, in groups of 4
                        event.registrar_fingerprint.replace(":", "")[i : i + 4]
                        for i in range(0, 64, 4)
                    ]
                )
                assert "Registered" in phone.window.state_label.text()
                assert not (tmp_path / "pins.json").exists()  # "this time" pins nothing
                phone.window.grab().save(str(SHOTS / "ui-main-window.png"))
            finally:
                await phone.close()

    run_in_qasync(scenario())


def test_closing_while_asking_dismisses_the_dialog(
    run_in_qasync: Callable[[Coroutine[Any, Any, None]], None], tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with running_registrar(registrar_config()) as registrar:
            phone = Phone()
            phone.window.show()
            shown = first(phone.bridge.trust_dialog_shown)
            decided = first(phone.bridge.trust_decided)
            phone.add_account(
                account(registrar.tls_port),
                pin_store_path=tmp_path / "pins.json",
                password=PASSWORD,
                anchors=(),
            )
            _, dialog = await asyncio.wait_for(shown, WAIT)
            closed = first(dialog.finished)
            await phone.close()
            await asyncio.wait_for(closed, WAIT)  # the dialog went away (and is deleted later)
            assert phone.bridge.open_dialogs == {}
            assert not decided.done()  # nobody answered: nothing was decided for the person

    run_in_qasync(scenario())


def test_the_desktop_phone_hands_over_the_gil_promptly(
    run_in_qasync: Callable[[Coroutine[Any, Any, None]], None], tmp_path: Path
) -> None:
    """Issue 7: worker threads run Python beside the phone's loop from the first call on
    (safety numbers, QR codes), before any media thread lowers the switch interval; at
    Python's 5 ms each hand-back of the GIL can cost the loop 5 ms."""
    import sys

    from softphone.gil import SWITCH_INTERVAL

    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    try:
        phone = Phone(history_path=tmp_path / "history.json")
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
        run_in_qasync(phone.close())
    finally:
        sys.setswitchinterval(previous)
