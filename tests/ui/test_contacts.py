"""The contacts view: every state in UX.md's words with a colour (never colour alone), the
details with every certificate and the history, the safety number and its QR code; and the
QR code of the in-call security panel (drawn only when it matches the number shown)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGroupBox, QLabel

from softphone.security.certificates import fingerprint_sha256
from softphone.security.ledger import ContactState
from softphone.security.safety import parse_qr_payload, safety_number
from tests.transport import certs
from tests.ui.screens import sample_ledger
from ui.contacts_presenters import STATE_LABELS, contact_details, contact_rows
from ui.contacts_view import ContactsView
from ui.qr import qr_pixmap, safety_qr_payload


def test_rows_name_every_state_in_ux_words_changed_first() -> None:
    ledger, _ = sample_ledger()
    rows = contact_rows(ledger)
    assert rows[0].state is ContactState.CHANGED  # it needs an answer: on top
    by_aor = {r.aor: r for r in rows}
    assert by_aor["sip:bob@biloxi.test"].label == "verified"
    assert by_aor["sip:carol@chicago.test"].label == "claimed"
    assert by_aor["sip:erin@example.test"].label == "seen before"
    assert by_aor["sip:frank@example.test"].label == "certificate"
    assert by_aor["sip:dave@example.test"].label == "changed"
    assert {label for label, _, _ in STATE_LABELS.values()} == {
        "claimed", "certificate", "seen before", "verified", "changed",
    }  # fmt: skip
    for row in rows:
        assert row.fingerprint.endswith(" …") and len(row.fingerprint.split()) == 5


def test_details_list_every_certificate_and_the_history() -> None:
    ledger, own = sample_ledger()
    dave = ledger.contact("sip:dave@example.test")
    details = contact_details(dave, own)
    assert [c.title for c in details.certificates] == ["Current certificate", "Earlier certificate"]
    current = dave.current_record
    assert current is not None
    assert details.certificates[0].fingerprint.replace("\n", " ").replace(" ", "") == (
        current.fingerprint.hex().upper()
    )
    assert any("certificate changed" in line for line in details.history)
    assert any("no longer verified" in line for line in details.history)
    expected = safety_number(own.cert, own.aor, current.certificate, dave.aor)
    assert details.safety_number == str(expected)
    assert details.qr_payload == expected.qr_payload()
    assert contact_details(dave).safety_number is None  # no identity of ours: no number


def test_contacts_view_shows_words_colour_and_qr(qtbot: Any) -> None:
    ledger, own = sample_ledger()
    view = ContactsView()
    qtbot.addWidget(view)
    view.show_ledger(ledger, own)
    texts = {}
    for i in range(view.list.topLevelItemCount()):
        item = view.list.topLevelItem(i)
        assert item is not None
        texts[item.text(0)] = (item.text(1), item.foreground(1).color())
    assert texts["sip:bob@biloxi.test"][0] == "● verified"
    assert texts["sip:dave@example.test"][0] == "● changed"
    assert texts["sip:dave@example.test"][1] == QColor("#b22222")
    view.select("sip:bob@biloxi.test")
    assert view.title.text() == "sip:bob@biloxi.test"
    assert view.badge.text() == "VERIFIED"
    assert not view.qr.pixmap().isNull()
    assert len(view.safety_number.text().split()) == 12
    view.show_ledger(None, None, "The trust ledger could not be read: broken.")
    assert view.problem.text().startswith("The trust ledger could not be read")
    assert view.list.topLevelItemCount() == 0 and view.empty.isVisibleTo(view)


def test_a_narrow_view_puts_the_details_under_the_list_never_sideways(qtbot: Any) -> None:
    """The demo's split window gave the contacts view ~600 px: beside the list, the details
    were ~350 px wide, narrower than their widest row, and scrolled sideways with every
    sentence cut at the edge ("You compared the safety number with this perso...")."""
    from PySide6.QtCore import Qt

    ledger, own = sample_ledger()
    view = ContactsView()
    qtbot.addWidget(view)
    view.show_ledger(ledger, own)
    view.select("sip:dave@example.test")  # the changed contact: the widest details
    view.resize(600, 500)
    view.show()
    qtbot.waitExposed(view)
    assert view.splitter.orientation() == Qt.Orientation.Vertical
    bar = view.scroller.horizontalScrollBar()
    assert bar is not None and bar.maximum() == 0  # nothing to scroll sideways
    assert view.scroller.widget().width() <= view.scroller.viewport().width()
    view.resize(1000, 500)
    qtbot.waitUntil(lambda: view.splitter.orientation() == Qt.Orientation.Horizontal)
    assert view.list.width() < view.width() / 2 < view.scroller.width() + view.list.width()


def test_a_refresh_that_changes_nothing_keeps_the_list_and_the_certificate_boxes(
    qtbot: Any,
) -> None:
    """Issue 7: every call event that touches a contact refreshes the view, and a refresh
    used to clear the list and build the certificate boxes again (~12 widgets to polish, lay
    out and paint: the contacts tab brought to the front mid-call took 16-21 ms, now 10-11).
    What changed is still shown: a newly verified certificate, another contact."""
    ledger, own = sample_ledger()
    view = ContactsView()
    qtbot.addWidget(view)
    view.show_ledger(ledger, own)
    view.select("sip:carol@chicago.test")

    def boxes() -> list[QGroupBox]:
        return [box for box in view.findChildren(QGroupBox) if not box.isHidden()]

    def items() -> list[Any]:
        return [view.list.topLevelItem(i) for i in range(view.list.topLevelItemCount())]

    before_boxes, before_items = boxes(), items()
    assert [box.title() for box in before_boxes] == ["Current certificate"]
    view.show_ledger(ledger, own)  # the same contacts
    assert boxes() == before_boxes and items() == before_items
    assert view.selected_aor() == "sip:carol@chicago.test"

    carol = ledger.contact("sip:carol@chicago.test")
    assert carol.current is not None
    ledger.mark_verified(carol.aor, carol.current, "safety-number", dt.datetime.now(dt.UTC))
    view.show_ledger(ledger, own)
    assert boxes() != before_boxes and items() != before_items
    assert view.badge.text() == "VERIFIED" and view.selected_aor() == carol.aor
    verified = [label.text() for label in boxes()[0].findChildren(QLabel)]
    assert any(text.startswith("Verified") for text in verified), verified
    view.select("sip:dave@example.test")
    assert [box.title() for box in boxes()] == ["Current certificate", "Earlier certificate"]


def test_call_qr_only_for_the_presented_certificate_and_the_shown_number() -> None:
    own, peer, other = (certs.self_signed(n).cert for n in ("alice", "bob", "mallory"))
    number = str(safety_number(own, "sip:alice@a.test", peer, "sip:bob@b.test"))
    fp = ":".join(f"{b:02X}" for b in fingerprint_sha256(peer))
    payload = safety_qr_payload(
        own, "sip:alice@a.test", peer, "sip:bob@b.test", fingerprint=fp, shown_number=number
    )
    assert payload is not None and parse_qr_payload(payload)[0] == 1
    assert not qr_pixmap(payload).isNull()
    # Another certificate than the one the call presented, or another number: no QR code.
    assert (
        safety_qr_payload(
            own, "sip:alice@a.test", other, "sip:bob@b.test", fingerprint=fp, shown_number=number
        )
        is None
    )
    wrong = ("2" if number[0] == "1" else "1") + number[1:]
    assert (
        safety_qr_payload(
            own, "sip:alice@a.test", peer, "sip:bob@b.test", fingerprint=fp, shown_number=wrong
        )
        is None
    )
    assert (
        safety_qr_payload(
            own, "sip:alice@a.test", peer, "sip:bob@b.test", fingerprint="zz", shown_number=number
        )
        is None
    )


@pytest.mark.parametrize("state", list(ContactState))
def test_every_state_has_words_and_a_label(state: ContactState) -> None:
    label, words, level = STATE_LABELS[state]
    assert label == state.value and words and level.colour.startswith("#")
