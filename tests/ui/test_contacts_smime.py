"""The contacts view, issue 7: the per-contact S/MIME setting is reachable from the GUI and
saved to the real ledger file (as ``softphone contacts smime`` saves it); details are made
only for the contact shown; the safety number and its QR code are made off the event loop
(qasync running), and a result for a contact no longer shown is not shown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase, QImage, QPixmap
from PySide6.QtWidgets import QApplication

import ui.contacts_view as contacts_view
from softphone.contacts import load_ledger, save_ledger
from softphone.security.ledger import EventKind
from softphone.security.smime import ProtectionMode
from tests.ui import contacts_screens
from tests.ui.screens import sample_ledger
from tests.ui.shots import check_at_200_percent
from ui.contacts_presenters import SMIME_CHOICES, contact_safety, smime_index
from ui.contacts_view import ContactsView
from ui.qr import qr_pixmap

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
BOB = "sip:bob@biloxi.test"
CAROL = "sip:carol@chicago.test"
WORDS = ["Use the account's setting", "Off", "Sign", "Sign and encrypt"]

Run = Callable[[Coroutine[Any, Any, None]], None]


def _view(qtbot: Any, path: Path | None, select: str = BOB) -> tuple[ContactsView, Any]:
    ledger, own = sample_ledger()
    if path is not None and not path.exists():
        save_ledger(path, ledger)
    view = ContactsView()
    qtbot.addWidget(view)
    view.show_ledger(ledger, own, "", path)
    view.select(select)
    return view, own


def _image(pixmap: QPixmap) -> QImage:
    return pixmap.toImage().convertToFormat(QImage.Format.Format_RGB32)


async def _until(check: Callable[[], bool], what: str) -> None:
    for _ in range(3000):  # the run_in_qasync fixture's own timeout bounds it too
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


# --- the S/MIME setting -------------------------------------------------------------------------


def test_smime_choice_in_words_saved_to_the_ledger_file_and_shown_again(
    qtbot: Any, tmp_path: Path
) -> None:
    path = tmp_path / "trust" / "contacts.json"
    view, own = _view(qtbot, path)
    combo = view.smime
    assert [combo.itemText(i) for i in range(combo.count())] == WORDS
    assert [words for words, _ in SMIME_CHOICES] == WORDS
    assert view.smime_label.buddy() is combo and "&M" in view.smime_label.text()
    assert combo.isEnabled() and combo.focusPolicy() & Qt.FocusPolicy.TabFocus
    assert combo.currentText() == "Use the account's setting"
    assert "follow the account" in view.smime_words.text()

    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Down)  # the keyboard alone: "Off"
    assert load_ledger(path).contact(BOB).smime is ProtectionMode.OFF
    assert combo.currentText() == "Off"
    assert "without S/MIME" in view.smime_words.text()

    with qtbot.waitSignal(view.smime_saved) as saved:
        combo.setCurrentIndex(3)
        combo.activated.emit(3)
    assert saved.args == [BOB]
    contact = load_ledger(path).contact(BOB)  # from disk, as the next call reads it
    assert contact.smime is ProtectionMode.SIGN_AND_ENCRYPT
    assert [h.detail for h in contact.history if h.kind is EventKind.SMIME_PREFERENCE] == [
        "account -> off",
        "off -> sign+encrypt",
    ]
    assert "off → sign and encrypt" in view.history.text()
    assert not view.smime_error.isVisibleTo(view)
    assert {p.name for p in path.parent.iterdir()} == {"contacts.json"}  # no temporary left

    again = ContactsView()  # the window reopened: the saved value is shown
    qtbot.addWidget(again)
    again.show_ledger(load_ledger(path), own, "", path)
    again.select(BOB)
    assert again.smime.currentText() == "Sign and encrypt"
    again.select(CAROL)
    assert again.smime.currentText() == "Use the account's setting"

    again.select(BOB)
    again.smime.setCurrentIndex(0)
    again.smime.activated.emit(0)  # back to the account's setting
    assert load_ledger(path).contact(BOB).smime is None


def test_setting_for_a_contact_changes_nothing_else(qtbot: Any, tmp_path: Path) -> None:
    path = tmp_path / "contacts.json"
    view, _ = _view(qtbot, path)
    before = load_ledger(path)
    view.smime.activated.emit(smime_index(ProtectionMode.SIGN))
    after = load_ledger(path)
    for contact in before:
        if contact.aor != BOB:
            assert after.contact(contact.aor).to_json() == contact.to_json()
    assert after.contact(BOB).current == before.contact(BOB).current
    assert after.state(BOB) is before.state(BOB)


@pytest.mark.parametrize("breakage", ["corrupt", "not-a-directory"])
def test_a_failed_save_says_why_and_keeps_the_stored_value(
    qtbot: Any, tmp_path: Path, breakage: str
) -> None:
    if breakage == "corrupt":
        path = tmp_path / "contacts.json"
        view, _ = _view(qtbot, path)
        path.write_bytes(b"{not json")  # broken by another program since the view was filled
        reason = "could not be read"
    else:
        (tmp_path / "file").write_text("a file, not a directory")
        path = tmp_path / "file" / "contacts.json"
        view, _ = _view(qtbot, None)
        view.show_ledger(view.ledger, view.own_identity, "", path)
        reason = "Not a directory"
    view.smime.setCurrentIndex(2)
    view.smime.activated.emit(2)
    error = view.smime_error.text()
    assert view.smime_error.isVisibleTo(view), error
    assert error.startswith(f"The S/MIME setting for {BOB} was not saved: ")
    assert reason in error and error.endswith("It stays “Use the account's setting”.")
    assert view.smime.currentText() == "Use the account's setting" and view.smime.isEnabled()
    if breakage == "corrupt":
        kept = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
        assert len(kept) == 1 and str(kept[0]) in error  # where the broken file went
    view.select(CAROL)  # another contact: the error spoke of Bob
    assert not view.smime_error.isVisibleTo(view)
    assert view.title.text() == CAROL


def test_without_a_ledger_file_the_setting_is_shown_not_changeable(qtbot: Any) -> None:
    view, _ = _view(qtbot, None)
    assert view.smime.isVisibleTo(view) and not view.smime.isEnabled()
    assert "softphone contacts smime" in view.smime.toolTip()
    view.smime.activated.emit(2)  # a stray signal changes nothing
    assert view.smime.currentText() == "Use the account's setting"


# --- details only for the contact shown --------------------------------------------------------


def test_details_are_made_only_for_the_selected_contact_and_kept(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    numbers: list[str] = []
    drawn: list[bytes] = []
    summary, safety = contacts_view.contact_summary, contacts_view.contact_safety

    def counted_summary(contact: Any) -> Any:
        made.append(contact.aor)
        return summary(contact)

    def counted_safety(contact: Any, own: Any) -> Any:
        numbers.append(contact.aor)
        return safety(contact, own)

    def counted_qr(payload: bytes, *, scale: int = 4) -> QPixmap:
        drawn.append(payload)
        return qr_pixmap(payload, scale=scale)

    monkeypatch.setattr(contacts_view, "contact_summary", counted_summary)
    monkeypatch.setattr(contacts_view, "contact_safety", counted_safety)
    monkeypatch.setattr(contacts_view, "qr_pixmap", counted_qr)
    ledger, own = sample_ledger()
    view = ContactsView()
    qtbot.addWidget(view)
    view.show_ledger(ledger, own)
    assert len(view.rows) == 5
    first = view.selected_aor()
    assert made == [first] and numbers == [first] and len(drawn) == 1

    view.show_ledger(ledger, own)  # the refresh after every engine event
    assert made == [first, first] and numbers == [first] and len(drawn) == 1  # nothing redrawn

    view.select(BOB)
    assert made[-1] == BOB and numbers == [first, BOB] and len(drawn) == 2
    view.select(first or "")
    assert numbers == [first, BOB] and len(drawn) == 2  # worked out before: kept


# --- off the event loop (qasync running) -------------------------------------------------------


def test_safety_number_and_qr_arrive_from_worker_threads(qtbot: Any, run_in_qasync: Run) -> None:
    ledger, own = sample_ledger()
    view = ContactsView()
    qtbot.addWidget(view)
    expected = contact_safety(ledger.contact(BOB), own)
    assert expected is not None

    async def scenario() -> None:
        view.show_ledger(ledger, own)
        view.select(BOB)
        assert view.title.text() == BOB  # the cheap part at once
        assert view.safety_number.text() == "Working out the safety number…"
        assert not view.qr.isVisibleTo(view)
        await view.settled()
        assert view.safety_number.text().split() == expected.number.split()
        assert view.qr.isVisibleTo(view) and not view.qr.pixmap().isNull()
        scale = max(2, round(2 * max(1.0, view.devicePixelRatioF())))
        assert _image(view.qr.pixmap()) == _image(qr_pixmap(expected.qr_payload, scale=scale))

    run_in_qasync(scenario())


def test_a_stale_qr_is_not_shown(
    qtbot: Any, run_in_qasync: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger, own = sample_ledger()
    bob, carol = (contact_safety(ledger.contact(aor), own) for aor in (BOB, CAROL))
    assert bob is not None and carol is not None
    gate = asyncio.Event()
    real = contacts_view.qr_pixmap_async

    async def slow_for_bob(payload: bytes, *, scale: int = 4) -> QPixmap:
        if payload == bob.qr_payload:
            await gate.wait()  # Bob's code arrives only after Carol is shown
        return await real(payload, scale=scale)

    monkeypatch.setattr(contacts_view, "qr_pixmap_async", slow_for_bob)
    view = ContactsView()
    qtbot.addWidget(view)

    async def scenario() -> None:
        view.show_ledger(ledger, own)
        view.select(BOB)
        await _until(lambda: view.details is not None and view.details.qr_payload is not None,
                     "Bob's number")  # fmt: skip
        assert not view.qr.isVisibleTo(view)  # Bob's QR code held back
        view.select(CAROL)
        await _until(lambda: view.qr.isVisibleTo(view), "Carol's QR code")
        carol_image = _image(view.qr.pixmap())
        gate.set()
        await view.settled()
        assert view.title.text() == CAROL
        assert view.safety_number.text().split() == carol.number.split()
        assert _image(view.qr.pixmap()) == carol_image  # Bob's late code was not put there
        view.select(BOB)  # Bob's code was kept when it arrived: shown at once now
        assert view.qr.isVisibleTo(view)
        assert _image(view.qr.pixmap()) != carol_image

    run_in_qasync(scenario())


def test_a_stale_safety_number_is_not_shown(
    qtbot: Any, run_in_qasync: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger, own = sample_ledger()
    slow = {BOB}
    real = contacts_view.safety_number_in_slices
    release = asyncio.Event()
    held_back: list[str] = []

    async def held(own_cert: Any, own_aor: str, cert: Any, aor: str) -> str | None:
        if aor in slow:  # Bob's number is still being worked out when Carol is shown
            held_back.append(aor)
            await release.wait()
        return await real(own_cert, own_aor, cert, aor)

    monkeypatch.setattr(contacts_view, "safety_number_in_slices", held)
    view = ContactsView()
    qtbot.addWidget(view)

    async def scenario() -> None:
        view.show_ledger(ledger, own)
        view.select(BOB)
        view.select(CAROL)
        await _until(lambda: view.qr.isVisibleTo(view), "Carol's number and QR code")
        carol_number = view.safety_number.text()
        release.set()
        await view.settled()
        assert view.title.text() == CAROL and view.safety_number.text() == carol_number
        assert held_back == [BOB]

    run_in_qasync(scenario())


def test_a_qr_that_cannot_be_drawn_is_hidden_digits_stay(
    qtbot: Any, run_in_qasync: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(payload: bytes, *, scale: int = 4) -> QPixmap:
        await asyncio.sleep(0)
        raise ValueError("the QR code could not be drawn")

    monkeypatch.setattr(contacts_view, "qr_pixmap_async", broken)
    ledger, own = sample_ledger()
    view = ContactsView()
    qtbot.addWidget(view)

    async def scenario() -> None:
        view.show_ledger(ledger, own)
        view.select(BOB)
        await view.settled()
        assert not view.qr.isVisibleTo(view)
        assert view.safety_number.isVisibleTo(view)
        assert len(view.safety_number.text().split()) == 12

    run_in_qasync(scenario())


def test_smime_saved_from_a_worker_thread(qtbot: Any, run_in_qasync: Run, tmp_path: Path) -> None:
    path = tmp_path / "contacts.json"
    view, _ = _view(qtbot, path)
    saved: list[str] = []
    view.smime_saved.connect(saved.append)

    async def scenario() -> None:
        view.smime.setCurrentIndex(2)
        view.smime.activated.emit(2)
        assert not view.smime.isEnabled()  # one save at a time
        await view.settled()
        assert saved == [BOB] and view.smime.isEnabled()
        assert view.smime.currentText() == "Sign"
        assert load_ledger(path).contact(BOB).smime is ProtectionMode.SIGN
        path.write_bytes(b"[]")
        view.smime.setCurrentIndex(3)
        view.smime.activated.emit(3)
        await view.settled()
        assert "was not saved" in view.smime_error.text() and view.smime_error.isVisibleTo(view)
        assert view.smime.currentText() == "Sign" and view.smime.isEnabled()

    run_in_qasync(scenario())


# --- screenshots -------------------------------------------------------------------------------


def test_screenshots_of_the_smime_setting_at_100_and_200_percent(qapp: QApplication) -> None:
    # The ledger actions' screens (verify, changed, accept, add, export) are made here too.
    assert "DejaVu Sans" in QFontDatabase.families()  # else the shots show boxes
    SHOTS.mkdir(parents=True, exist_ok=True)
    one = contacts_screens.build(SHOTS, "")
    assert [path.stem for path in one] == list(contacts_screens.NAMES)
    check_at_200_percent("tests.ui.contacts_screens", one)


def test_main_window_gives_the_view_the_account_ledger_file(qtbot: Any, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from softphone.ua.trustledger import LedgerKeeper
    from ui.bridge import EngineBridge
    from ui.main_window import MainWindow

    path = tmp_path / "trust" / "contacts.json"
    ledger, own = sample_ledger()
    save_ledger(path, ledger)
    bridge = EngineBridge()
    account = "sip:alice@atlanta.test"
    keeper = LedgerKeeper(path, tmp_path / "trust" / "pins.json")
    bridge.user_agents[account] = SimpleNamespace(ledger=keeper, identity=own)  # type: ignore[assignment]
    window = MainWindow(bridge)
    qtbot.addWidget(window)
    window.refresh_contacts(account)
    view = window.contacts_view
    assert view.ledger_path == path and len(view.rows) == 5
    assert view.pins_path == tmp_path / "trust" / "pins.json"  # verify/forget keep pins in step
    view.select(BOB)
    view.smime.activated.emit(smime_index(ProtectionMode.SIGN))
    assert keeper.smime_preference(BOB) is ProtectionMode.SIGN  # what the next call reads
