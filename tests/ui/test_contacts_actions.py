"""The contacts view, issue 7: everything ``softphone contacts`` can do is reachable from it.

Verify ("We compared the safety number"), accept a changed certificate (loud, behind a
confirmation that can be declined), add a certificate received by hand, export, forget (with
a confirmation naming the contact). Real ledger and pin files in ``tmp_path``, real
certificates from :mod:`tests.security.pki`; each action leaves the files as the CLI leaves a
copy of the same ledger.
"""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives import serialization
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog

from softphone.contacts import load_ledger
from softphone.contacts_cli import main as cli
from softphone.security.certificates import Identity, fingerprint_hex
from softphone.security.ledger import ContactState, EventKind, Means, Seen
from softphone.security.pins import PinReason
from softphone.storage import load_pin_store
from tests.security.pki import Issued, make_self_signed, new_key
from tests.ui.screens import OwnIdentity
from ui.contacts_presenters import AcceptChangeWords, ForgetWords, accept_change_words
from ui.contacts_view import AcceptChangeDialog, ContactsView

BOB = "sip:bob@example.test"
CAROL = "sip:carol@example.test"
QR = ("--means", "qr")

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(scope="module")
def bob1() -> Issued:
    return make_self_signed(cn="bob", uris=[BOB], key=new_key())


@pytest.fixture(scope="module")
def bob2() -> Issued:
    return make_self_signed(cn="bob", uris=[BOB], key=new_key())


@pytest.fixture(scope="module")
def own() -> OwnIdentity:
    me = make_self_signed(cn="alice", uris=["sip:alice@example.test"], key=new_key())
    return OwnIdentity(me.cert, "sip:alice@example.test")


class Files:
    """A ledger and a pin store, changed by the CLI or by the view."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ledger = root / "trust" / "contacts.json"
        self.pins = root / "trust" / "pins.json"

    def cli(self, *args: str) -> int:
        return cli([*args, "--ledger", str(self.ledger), "--pins", str(self.pins)])

    def pem(self, name: str, issued: Issued) -> Path:
        path = self.root / f"{name}.pem"
        path.write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def copy(self, name: str) -> Files:
        """The same files in another directory (for the CLI to change)."""
        twin = Files(self.root / name)
        shutil.copytree(self.ledger.parent, twin.ledger.parent)
        return twin

    def view(self, qtbot: Any, own: OwnIdentity | None, select: str = BOB) -> ContactsView:
        view = ContactsView()
        qtbot.addWidget(view)
        view.show_ledger(load_ledger(self.ledger), own, "", self.ledger, pins_path=self.pins)
        view.select(select)
        return view

    def pins_of(self, aor: str) -> list[tuple[bytes, PinReason]]:
        if not self.pins.exists():
            return []
        return [(p.sha256, p.reason) for p in load_pin_store(self.pins).pins_for(Identity.aor(aor))]


@pytest.fixture
def files(tmp_path: Path, bob1: Issued) -> Files:
    made = Files(tmp_path / "gui")
    made.root.mkdir()
    assert made.cli("add", BOB, "--cert", str(made.pem("bob1", bob1))) == 0
    return made


def _answer(asked: list[T], answer: bool) -> Callable[[T], bool]:
    """A confirmation that notes what it was asked and answers ``answer``."""

    def confirm(question: T) -> bool:
        asked.append(question)
        return answer

    return confirm


def _fp(issued: Issued) -> bytes:
    return bytes.fromhex(fingerprint_hex(issued.cert).replace(":", ""))


def _shape(files: Files, aor: str) -> tuple[Any, ...]:
    """What an action leaves of a contact, times left out (the CLI ran a moment apart)."""
    contact = load_ledger(files.ledger).get(aor)
    if contact is None:
        return (None, files.pins_of(aor))
    records = [(r.fingerprint, r.verified_by, sorted(r.seen_via)) for r in contact.certificates]
    history = [(h.kind, h.fingerprint, h.detail) for h in contact.history]
    return (contact.state, contact.blocked, records, history, files.pins_of(aor))


# --- verify ------------------------------------------------------------------------------------


def test_we_compared_the_safety_number_verifies_as_the_cli_does(
    qtbot: Any, files: Files, own: OwnIdentity, bob1: Issued
) -> None:
    twin = files.copy("cli")
    view = files.view(qtbot, own)
    button = view.verify_button
    assert button.isVisibleTo(view) and button.isEnabled()
    assert button.text() == "We compared the safety &number"
    assert "read these digits aloud with sip:bob@example.test" in view.verify_hint.text()
    assert len(view.safety_number.text().split()) == 12  # the number it vouches for is shown
    assert not view.change_box.isVisibleTo(view)  # nothing changed: no accept button

    button.setFocus()
    qtbot.keyClick(button, Qt.Key.Key_Space)  # the keyboard alone

    contact = load_ledger(files.ledger).contact(BOB)
    assert contact.state is ContactState.VERIFIED and contact.verified_by is Means.SAFETY_NUMBER
    assert files.pins_of(BOB) == [(_fp(bob1), PinReason.VERIFIED_SAFETY_NUMBER)]
    fp = fingerprint_hex(bob1.cert)
    assert twin.cli("verify", BOB, "--fingerprint", fp, "--means", "safety-number") == 0
    assert _shape(files, BOB) == _shape(twin, BOB)
    assert view.notice.text() == f"{BOB} is verified: you compared the safety number."
    assert view.badge.text() == "VERIFIED" and not view.verify_button.isVisibleTo(view)


def test_verify_refuses_when_the_certificate_changed_since_it_was_shown(
    qtbot: Any, files: Files, own: OwnIdentity, bob2: Issued
) -> None:
    view = files.view(qtbot, own)  # shows bob1's safety number
    assert files.cli("add", BOB, "--cert", str(files.pem("bob2", bob2))) == 0  # meanwhile
    before = files.ledger.read_bytes()
    view.verify_button.click()
    assert files.ledger.read_bytes() == before  # the new certificate is NOT marked verified
    assert view.notice.text().startswith(f"{BOB} was not marked verified: ")
    assert "is no longer the certificate of" in view.notice.text()
    assert "b22222" in view.notice.styleSheet()


def test_no_verify_button_without_a_safety_number(qtbot: Any, files: Files) -> None:
    view = ContactsView()
    qtbot.addWidget(view)
    view.show_ledger(load_ledger(files.ledger), None, "", files.ledger)  # no identity of ours
    view.select(BOB)
    assert not view.verify_button.isVisibleTo(view)
    view.verify()  # a stray call changes nothing
    assert load_ledger(files.ledger).contact(BOB).state is ContactState.CLAIMED


# --- accept a changed certificate ---------------------------------------------------------------


@pytest.fixture
def changed(files: Files, bob1: Issued, bob2: Issued) -> Files:
    fp1 = fingerprint_hex(bob1.cert)
    assert files.cli("verify", BOB, "--fingerprint", fp1, "--means", "qr") == 0
    assert files.cli("add", BOB, "--cert", str(files.pem("bob2", bob2))) == 0
    assert load_ledger(files.ledger).contact(BOB).blocked
    return files


def test_accept_change_asks_loudly_and_can_be_declined(
    qtbot: Any, changed: Files, own: OwnIdentity
) -> None:
    view = changed.view(qtbot, own)
    assert view.change_box.isVisibleTo(view) and view.accept_button.isVisibleTo(view)
    assert "&" in view.accept_button.text() and view.badge.text() == "CHANGED"
    asked: list[AcceptChangeWords] = []
    view.confirm_accept_change = _answer(asked, False)  # "Not now"
    before = changed.ledger.read_bytes(), changed.pins.read_bytes()
    view.accept_button.click()
    assert (changed.ledger.read_bytes(), changed.pins.read_bytes()) == before
    assert view.notice.text() == f"Nothing accepted: calls with {BOB} still wait."
    (words,) = asked
    assert words.aor == BOB and "compared the NEW safety number" in words.consequence
    assert "not marked verified" in words.meaning and BOB in words.promise


def test_accept_change_accepts_as_the_cli_does(
    qtbot: Any, changed: Files, own: OwnIdentity, bob2: Issued
) -> None:
    twin = changed.copy("cli")
    view = changed.view(qtbot, own)
    view.confirm_accept_change = lambda words: True
    with qtbot.waitSignal(view.ledger_changed) as done:
        view.accept_button.click()
    assert done.args == [BOB]
    contact = load_ledger(changed.ledger).contact(BOB)
    assert not contact.blocked and contact.state is not ContactState.CHANGED
    assert contact.history[-1].kind is EventKind.CHANGE_ACCEPTED
    assert changed.pins_of(BOB) == []  # the old verified pin is gone, as with the CLI
    assert twin.cli("accept-change", BOB, "--fingerprint", fingerprint_hex(bob2.cert)) == 0
    assert _shape(changed, BOB) == _shape(twin, BOB)
    assert "accepted, not verified" in view.notice.text()
    assert not view.change_box.isVisibleTo(view)  # answered: the list is shown again


def test_the_accept_dialog_is_hard_to_click_through(qtbot: Any, changed: Files) -> None:
    view = changed.view(qtbot, None)
    assert view.details is not None
    dialog = AcceptChangeDialog(accept_change_words(view.details))
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.cancel_button.isDefault() and not dialog.accept_button.isEnabled()
    assert dialog.cancel_button.hasFocus() or not dialog.isActiveWindow()
    dialog.accept_button.click()  # disabled: nothing
    assert dialog.result() != QDialog.DialogCode.Accepted.value and dialog.isVisible()
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    assert dialog.result() == QDialog.DialogCode.Rejected.value

    again = AcceptChangeDialog(accept_change_words(view.details))
    qtbot.addWidget(again)
    again.show()
    again.promise.setChecked(True)  # "I have compared the new safety number with ..."
    assert again.accept_button.isEnabled()
    again.accept_button.click()
    assert again.result() == QDialog.DialogCode.Accepted.value


# --- add a certificate received by hand ---------------------------------------------------------


def test_add_a_certificate_as_the_cli_does(
    qtbot: Any, files: Files, own: OwnIdentity, tmp_path: Path
) -> None:
    carol = make_self_signed(cn="carol", uris=[CAROL], key=new_key())
    pem = files.pem("carol", carol)
    twin = files.copy("cli")
    view = files.view(qtbot, own)
    suggested: list[str] = []
    view.ask_certificate_file = lambda: pem

    def whose(default: str) -> str:
        suggested.append(default)
        return "sips:carol@Example.TEST"

    view.ask_contact_aor = whose
    view.add_button.click()
    assert suggested == [BOB]  # the contact shown is offered
    contact = load_ledger(files.ledger).contact(CAROL)
    assert contact.current_record is not None
    assert contact.current_record.seen_via == {Seen.MANUAL}
    assert view.selected_aor() == CAROL and view.title.text() == CAROL
    assert view.notice.text().startswith("Added the certificate ") and CAROL in view.notice.text()
    assert twin.cli("add", "sips:carol@Example.TEST", "--cert", str(pem)) == 0
    assert _shape(files, CAROL) == _shape(twin, CAROL)


def test_adding_another_certificate_for_a_verified_contact_is_a_warning(
    qtbot: Any, files: Files, own: OwnIdentity, bob1: Issued, bob2: Issued
) -> None:
    assert (
        files.cli("verify", BOB, "--fingerprint", fingerprint_hex(bob1.cert), "--means", "qr") == 0
    )
    view = files.view(qtbot, own)
    view.ask_certificate_file = lambda: files.pem("bob2", bob2)
    view.ask_contact_aor = lambda default: default
    view.add_button.click()
    contact = load_ledger(files.ledger).contact(BOB)
    assert contact.state is ContactState.CHANGED and contact.blocked
    assert view.notice.text().startswith(f"Warning: {BOB} had another certificate")
    assert "compare the safety number" in view.notice.text()
    assert "b22222" in view.notice.styleSheet()
    assert view.change_box.isVisibleTo(view)  # the answer is offered at once


@pytest.mark.parametrize(
    ("content", "aor", "words"),
    [
        (b"not a certificate", BOB, "holds no readable PEM certificate"),
        (None, BOB, "No such file or directory"),
        ("pem", "not an address", "not an address of record"),
    ],
)
def test_add_failures_are_said_in_words_and_change_nothing(
    qtbot: Any,
    files: Files,
    own: OwnIdentity,
    bob2: Issued,
    content: bytes | str | None,
    aor: str,
    words: str,
) -> None:
    cert = files.root / "given.pem"
    if content == "pem":
        cert = files.pem("given", bob2)
    elif isinstance(content, bytes):
        cert.write_bytes(content)
    view = files.view(qtbot, own)
    view.ask_certificate_file = lambda: cert
    view.ask_contact_aor = lambda default: aor
    before = files.ledger.read_bytes()
    view.add_button.click()
    assert files.ledger.read_bytes() == before
    assert view.notice.text().startswith("The certificate was not added: ")
    assert words in view.notice.text()
    view.ask_contact_aor = lambda default: pytest.fail("asked for an AOR with no file chosen")
    view.ask_certificate_file = lambda: None  # the chooser cancelled: nothing at all
    view.add_button.click()
    assert files.ledger.read_bytes() == before


# --- export ------------------------------------------------------------------------------------


def test_export_writes_the_json_as_the_cli_does(
    qtbot: Any, files: Files, own: OwnIdentity, tmp_path: Path
) -> None:
    twin = files.copy("cli")
    view = files.view(qtbot, own)
    out = tmp_path / "audit" / "export.json"
    view.ask_export_path = lambda: out
    view.export_button.click()
    document = json.loads(out.read_bytes())
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert list(document["contacts"]) == [BOB]
    assert load_ledger(files.ledger).contact(BOB).history[-1].kind is EventKind.EXPORTED
    assert (
        view.notice.text()
        == f"Exported 1 contact and their history to {out} (readable by you only)."
    )
    theirs = tmp_path / "cli-export.json"
    assert twin.cli("export", "--out", str(theirs)) == 0
    cli_document = json.loads(theirs.read_bytes())
    assert set(document) == set(cli_document) and document["version"] == cli_document["version"]
    mine, its = document["contacts"][BOB], cli_document["contacts"][BOB]
    assert mine["certificates"] == its["certificates"]
    assert [h["kind"] for h in mine["history"]] == [h["kind"] for h in its["history"]]


def test_export_failure_is_said_and_the_ledger_is_unchanged(
    qtbot: Any, files: Files, own: OwnIdentity, bob1: Issued
) -> None:
    view = files.view(qtbot, own)
    blocker = files.pem("blocker", bob1)
    view.ask_export_path = lambda: blocker / "export.json"  # its folder is a file
    before = files.ledger.read_bytes()
    view.export_button.click()
    assert files.ledger.read_bytes() == before
    assert view.notice.text().startswith("The ledger was not exported: ")
    view.ask_export_path = lambda: None  # cancelled
    view.export_button.click()
    assert files.ledger.read_bytes() == before


# --- forget ------------------------------------------------------------------------------------


def test_forget_asks_naming_the_contact_and_can_be_declined(
    qtbot: Any, files: Files, own: OwnIdentity, bob1: Issued
) -> None:
    assert (
        files.cli("verify", BOB, "--fingerprint", fingerprint_hex(bob1.cert), "--means", "qr") == 0
    )
    twin = files.copy("cli")
    view = files.view(qtbot, own)
    asked: list[ForgetWords] = []
    view.confirm_forget = _answer(asked, False)  # "Keep"
    before = files.ledger.read_bytes(), files.pins.read_bytes()
    view.forget_button.click()
    assert (files.ledger.read_bytes(), files.pins.read_bytes()) == before
    assert view.notice.text() == f"Nothing forgotten: {BOB} is kept."
    (words,) = asked
    assert words.title == f"Forget {BOB}?" and BOB in words.accept and "1 certificate" in words.text

    view.confirm_forget = lambda words: True
    view.forget_button.click()
    assert BOB not in load_ledger(files.ledger) and files.pins_of(BOB) == []
    assert view.list.topLevelItemCount() == 0 and view.notice.text() == f"Forgot {BOB}."
    assert twin.cli("forget", BOB, "--yes") == 0
    assert files.ledger.read_bytes() == twin.ledger.read_bytes()  # byte for byte


# --- failures, no file, the event loop ---------------------------------------------------------


def test_an_unreadable_ledger_is_said_and_kept_aside(
    qtbot: Any, files: Files, own: OwnIdentity
) -> None:
    view = files.view(qtbot, own)
    files.ledger.write_bytes(b"{broken")  # another program broke it meanwhile
    view.confirm_forget = lambda words: True
    view.forget_button.click()
    assert view.notice.text().startswith(f"{BOB} was not forgotten: the trust ledger ")
    assert "kept aside" in view.notice.text()
    (kept,) = files.ledger.parent.glob("contacts.json.corrupt-*")
    assert kept.read_bytes() == b"{broken"


def test_without_a_ledger_file_nothing_can_be_changed(qtbot: Any, files: Files) -> None:
    view = ContactsView()
    qtbot.addWidget(view)
    view.show_ledger(load_ledger(files.ledger), None)
    view.select(BOB)
    for button in (view.add_button, view.export_button, view.forget_button):
        assert not button.isEnabled() and "softphone contacts" in button.toolTip()
    view.ask_export_path = lambda: pytest.fail("asked for a file with nowhere to read from")
    view.export()


def test_mnemonics_are_distinct(qtbot: Any, changed: Files, own: OwnIdentity) -> None:
    view = changed.view(qtbot, own)
    texts = [
        b.text()
        for b in (
            view.add_button,
            view.export_button,
            view.verify_button,
            view.accept_button,
            view.forget_button,
        )
    ]
    keys = [t[t.index("&") + 1].lower() for t in texts]
    keys.append("m")  # S/&MIME
    assert len(set(keys)) == len(keys)


def test_changes_run_in_a_worker_thread_when_a_loop_runs(
    qtbot: Any, run_in_qasync: Run, files: Files, own: OwnIdentity
) -> None:
    view = files.view(qtbot, own)

    async def scenario() -> None:
        await view.settled()  # the safety number, worked out off the loop
        assert view.verify_button.isVisibleTo(view)
        view.verify_button.click()
        assert not view.verify_button.isEnabled()  # saving: one change at a time
        await view.settled()
        assert load_ledger(files.ledger).contact(BOB).state is ContactState.VERIFIED
        assert view.notice.text().endswith("is verified: you compared the safety number.")
        view.confirm_forget = lambda words: True
        view.forget_button.click()
        await view.settled()
        assert BOB not in load_ledger(files.ledger)
        assert view.forget_button.isEnabled() or not view.forget_button.isVisibleTo(view)

    run_in_qasync(scenario())
