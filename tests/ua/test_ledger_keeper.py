"""LedgerKeeper parses the trust ledger again only when its file changed (issue 7: a call's
set-up asks it four to six times, and each parse took 6 ms of the event loop with 100 contacts,
20-40 ms with 500). What it serves is always what the file holds: a save by someone else (the
``softphone contacts`` command, the contacts view) is seen at the next look, and a change that
is not saved is never served."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from softphone.contacts import load_ledger, save_ledger
from softphone.security import ledger as ledger_module
from softphone.security.ledger import ContactState, LedgerError, Means, Seen, TrustLedger
from softphone.ua import trustledger
from softphone.ua.trustledger import LedgerKeeper
from tests.transport import certs

BOB = "sips:bob@biloxi.test"
CAROL = "sips:carol@chicago.test"
NOW = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the ledger files parsed (TrustLedger.from_bytes)."""
    seen: list[int] = []
    real = TrustLedger.from_bytes.__func__  # type: ignore[attr-defined]

    def counting(cls: type[TrustLedger], data: bytes) -> TrustLedger:
        seen.append(len(data))
        return real(cls, data)  # type: ignore[no-any-return]

    monkeypatch.setattr(TrustLedger, "from_bytes", classmethod(counting))
    return seen


def _keeper(tmp_path: Path) -> LedgerKeeper:
    ca = certs.make_ca("Ledger CA")
    ledger = TrustLedger()
    ledger.observe(BOB, certs.issue(ca, "biloxi.test").cert, Seen.MANUAL, NOW)
    save_ledger(tmp_path / "contacts.json", ledger)
    return LedgerKeeper(tmp_path / "contacts.json", tmp_path / "pins.json", clock=lambda: NOW)


def test_an_unchanged_file_is_parsed_once(tmp_path: Path, parses: list[int]) -> None:
    keeper = _keeper(tmp_path)
    for _ in range(5):
        keeper.state(BOB)
        assert keeper.current_certificate(BOB) is not None
        keeper.smime_preference(BOB)
    assert len(parses) == 1


def test_a_save_by_someone_else_is_seen_at_the_next_look(tmp_path: Path, parses: list[int]) -> None:
    keeper = _keeper(tmp_path)
    assert keeper.current_certificate(CAROL) is None
    other = load_ledger(keeper.ledger_path)  # as `softphone contacts add` does
    other.observe(CAROL, certs.self_signed("chicago.test").cert, Seen.MANUAL, NOW)
    save_ledger(keeper.ledger_path, other)
    assert keeper.current_certificate(CAROL) is not None
    assert len(parses) == 3  # keeper, the other writer, keeper again


def test_a_file_edited_in_place_is_seen(tmp_path: Path) -> None:
    """Not replaced (same inode), but another size and modification time."""
    keeper = _keeper(tmp_path)
    assert keeper.current_certificate(BOB) is not None
    edited = TrustLedger()
    with open(keeper.ledger_path, "r+b") as file:
        file.truncate(0)
        file.write(edited.to_bytes())
    os.utime(keeper.ledger_path, ns=(0, 10**9))  # and an old time: the stamp differs
    assert keeper.current_certificate(BOB) is None


def test_our_own_save_serves_what_was_saved_without_a_parse(
    tmp_path: Path, parses: list[int]
) -> None:
    keeper = _keeper(tmp_path)
    ca = certs.make_ca("Carol CA")
    keeper.observe(CAROL, certs.issue(ca, "chicago.test").cert, Seen.SIPSEC)
    count = len(parses)
    assert keeper.current_certificate(CAROL) is not None
    assert len(parses) == count  # the object just saved is the file's
    assert load_ledger(keeper.ledger_path).get(CAROL) is not None  # and it is on disk


def test_a_change_that_is_not_saved_is_never_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keeper = _keeper(tmp_path)
    assert keeper.state(BOB) is not ContactState.VERIFIED  # the parsed ledger is kept

    def full_disk(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(trustledger, "save_ledger", full_disk)
    with pytest.raises(OSError, match="No space"):
        keeper.mark_verified(BOB, Means.SAFETY_NUMBER)
    # The kept ledger was changed in memory, then not saved: it is not served any more.
    assert keeper.state(BOB) is not ContactState.VERIFIED
    ca = certs.make_ca("Carol CA")
    assert keeper.observe(CAROL, certs.issue(ca, "chicago.test").cert, Seen.SIPSEC) is not None
    assert keeper.current_certificate(CAROL) is None  # logged, not saved, not served


def test_a_change_that_fails_half_way_is_never_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keeper = _keeper(tmp_path)
    assert keeper.current_certificate(CAROL) is None

    real_observe = TrustLedger.observe

    def observe_then_fail(self: TrustLedger, *args: object, **kwargs: object) -> object:
        real_observe(self, *args, **kwargs)  # type: ignore[arg-type]
        raise LedgerError("half-way")

    monkeypatch.setattr(ledger_module.TrustLedger, "observe", observe_then_fail)
    with pytest.raises(LedgerError, match="half-way"):
        keeper.observe(CAROL, certs.self_signed("chicago.test").cert, Seen.SIPSEC)
    monkeypatch.undo()
    assert keeper.current_certificate(CAROL) is None


def test_a_missing_file_is_an_empty_ledger_each_time(tmp_path: Path) -> None:
    keeper = LedgerKeeper(tmp_path / "none.json", tmp_path / "pins.json")
    assert keeper.state(BOB) is ContactState.CLAIMED
    assert keeper.load() is not keeper.load()  # nothing kept for a file that is not there


def test_a_save_encodes_again_only_the_contact_that_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 7: a sipsec call's set-up records the peer's certificate, and encoding every
    contact took 9-11 ms of the event loop with 500 of them. The file is the same bytes as
    :meth:`TrustLedger.to_bytes` (what ``softphone contacts`` writes)."""
    keeper = _keeper(tmp_path)
    ca = certs.make_ca("Many CA")
    for i in range(30):
        keeper.observe(
            f"sips:user{i}@example.test", certs.issue(ca, "example.test").cert, Seen.SIPSEC
        )
    encoded: list[str] = []
    real = ledger_module.Contact.to_json

    def counting(contact: ledger_module.Contact) -> dict[str, object]:
        encoded.append(contact.aor)
        return real(contact)

    monkeypatch.setattr(ledger_module.Contact, "to_json", counting)
    keeper.observe(CAROL, certs.self_signed("chicago.test").cert, Seen.SIPSEC)
    assert encoded == [ledger_module.normalise_aor(CAROL)]
    encoded.clear()
    keeper.mark_verified(CAROL, Means.SAFETY_NUMBER)
    assert encoded == [ledger_module.normalise_aor(CAROL)]
    monkeypatch.undo()
    on_disk = keeper.ledger_path.read_bytes()
    assert on_disk == load_ledger(keeper.ledger_path).to_bytes()
    assert load_ledger(keeper.ledger_path).state(CAROL) is ContactState.VERIFIED
    assert len(load_ledger(keeper.ledger_path)) == 32


def test_after_someone_elses_save_ours_keeps_their_change(tmp_path: Path) -> None:
    keeper = _keeper(tmp_path)
    keeper.observe(CAROL, certs.self_signed("chicago.test").cert, Seen.SIPSEC)
    other = load_ledger(keeper.ledger_path)  # as `softphone contacts forget` does
    other.forget(BOB)
    save_ledger(keeper.ledger_path, other)
    dave = "sips:dave@example.test"
    keeper.observe(dave, certs.self_signed("example.test").cert, Seen.SIPSEC)
    again = load_ledger(keeper.ledger_path)
    assert BOB not in again and CAROL in again and dave in again
    assert keeper.ledger_path.read_bytes() == again.to_bytes()
