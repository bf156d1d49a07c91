"""The trust ledger (sans-I/O model) and its file (softphone.contacts): observe, verify, the
SSH/Signal "changed" rule, pins for sipsec, JSON round trip, corrupt files kept aside."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest

from softphone.contacts import (
    CorruptLedgerError,
    export_ledger,
    load_ledger,
    save_ledger,
)
from softphone.security.certificates import Identity, fingerprint_sha256
from softphone.security.ledger import (
    ContactState,
    EventKind,
    LedgerError,
    Means,
    ObservationKind,
    Seen,
    TrustLedger,
    UnknownContactError,
    parse_fingerprint,
    parse_smime_preference,
    required_mode,
    sending_mode,
    sync_pins,
)
from softphone.security.pins import Pin, PinReason, PinState, PinStore
from softphone.security.smime import ProtectionMode
from softphone.security.trust import Problem, evaluate
from tests.security.pki import NOW, Issued, make_self_signed, new_key

BOB = "sip:bob@example.test"
T0 = NOW
T1 = NOW + dt.timedelta(hours=1)
T2 = NOW + dt.timedelta(hours=2)


def _bob(slot: int) -> Issued:
    return make_self_signed(cn="bob", uris=[BOB], key=new_key("ec", 256))


@pytest.fixture(scope="module")
def bob1() -> Issued:
    return _bob(1)


@pytest.fixture(scope="module")
def bob2() -> Issued:
    return _bob(2)


def test_first_sight_is_a_new_claimed_contact(bob1: Issued) -> None:
    ledger = TrustLedger()
    seen = ledger.observe("sips:bob@EXAMPLE.test", bob1.cert, Seen.SIPSEC, T0)
    assert seen.kind is ObservationKind.NEW_CONTACT
    assert seen.aor == BOB and seen.fingerprint == fingerprint_sha256(bob1.cert)
    assert seen.state is ContactState.CLAIMED and not seen.must_block
    contact = ledger.contact("bob@example.test")  # every AOR spelling is the same contact
    assert contact.current == seen.fingerprint
    (record,) = contact.certificates
    assert record.first_seen == record.last_seen == T0 and record.seen_via == {Seen.SIPSEC}
    assert record.certificate == bob1.cert
    assert [h.kind for h in contact.history] == [EventKind.SEEN_NEW]


def test_same_certificate_again_is_seen_before_and_updates_last_seen(bob1: Issued) -> None:
    ledger = TrustLedger()
    ledger.observe(BOB, bob1.cert, "sipsec", T0)
    again = ledger.observe(BOB, bob1.cert, Seen.SMIME, T1)
    assert again.kind is ObservationKind.SAME
    assert again.state is ContactState.SEEN_BEFORE
    record = ledger.contact(BOB).certificates[0]
    assert record.first_seen == T0 and record.last_seen == T1 and record.times_seen == 2
    assert record.seen_via == {Seen.SIPSEC, Seen.SMIME}
    assert len(ledger.contact(BOB).history) == 1  # seeing again is not a history event


@pytest.mark.parametrize("means", [Means.SAFETY_NUMBER, Means.QR])
def test_verified_contact_whose_certificate_changes_is_blocked_until_answered(
    bob1: Issued, bob2: Issued, means: Means
) -> None:
    ledger = TrustLedger()
    ledger.observe(BOB, bob1.cert, Seen.SIPSEC, T0)
    ledger.mark_verified(BOB, fingerprint_sha256(bob1.cert), means, T0)
    assert ledger.state(BOB) is ContactState.VERIFIED

    changed = ledger.observe(BOB, bob2.cert, Seen.SMIME, T1)
    assert changed.kind is ObservationKind.CHANGED
    assert changed.was_verified and changed.must_block
    assert changed.previous == fingerprint_sha256(bob1.cert)
    assert changed.state is ContactState.CHANGED
    contact = ledger.contact(BOB)
    assert contact.blocked and contact.verified_by is None
    assert contact.certificates[0].verified_by is None  # lost "verified"
    kinds = [h.kind for h in contact.history]
    assert kinds[-3:] == [EventKind.SEEN_NEW, EventKind.CHANGED, EventKind.UNVERIFIED_BY_CHANGE]

    # The next call sees the new certificate again: still blocked (nobody answered).
    assert ledger.observe(BOB, bob2.cert, Seen.SIPSEC, T2).must_block

    ledger.accept_change(BOB, fingerprint_sha256(bob2.cert), T2)
    assert not ledger.contact(BOB).blocked
    assert ledger.state(BOB) is ContactState.SEEN_BEFORE  # accepted, not verified
    assert not ledger.observe(BOB, bob2.cert, Seen.SIPSEC, T2).must_block


def test_unverified_contact_change_warns_but_does_not_block(bob1: Issued, bob2: Issued) -> None:
    ledger = TrustLedger()
    ledger.observe(BOB, bob1.cert, Seen.SIPSEC, T0)
    changed = ledger.observe(BOB, bob2.cert, Seen.SIPSEC, T1)
    assert changed.kind is ObservationKind.CHANGED and changed.state is ContactState.CHANGED
    assert not changed.was_verified and not changed.must_block


def test_verifying_the_new_certificate_answers_the_change(bob1: Issued, bob2: Issued) -> None:
    ledger = TrustLedger()
    ledger.observe(BOB, bob1.cert, Seen.SIPSEC, T0)
    ledger.mark_verified(BOB, fingerprint_sha256(bob1.cert), Means.QR, T0)
    ledger.observe(BOB, bob2.cert, Seen.SIPSEC, T1)
    ledger.mark_verified(BOB, fingerprint_sha256(bob2.cert), Means.SAFETY_NUMBER, T2)
    contact = ledger.contact(BOB)
    assert contact.state is ContactState.VERIFIED and not contact.blocked
    assert contact.verified_by is Means.SAFETY_NUMBER


def test_mark_verified_refuses_a_certificate_that_is_not_current(
    bob1: Issued, bob2: Issued
) -> None:
    ledger = TrustLedger()
    ledger.observe(BOB, bob1.cert, Seen.SIPSEC, T0)
    ledger.observe(BOB, bob2.cert, Seen.SIPSEC, T1)
    with pytest.raises(LedgerError, match="no longer the certificate"):
        ledger.mark_verified(BOB, fingerprint_sha256(bob1.cert), Means.QR, T2)
    with pytest.raises(LedgerError, match="is not the certificate"):
        ledger.mark_verified(BOB, b"\x00" * 32, Means.QR, T2)
    with pytest.raises(UnknownContactError):
        ledger.mark_verified("sip:nobody@example.test", b"\x00" * 32, Means.QR, T2)
    assert ledger.state(BOB) is ContactState.CHANGED  # nothing was marked


def test_ca_chain_verification_is_the_certificate_state_and_does_not_block(
    bob1: Issued, bob2: Issued
) -> None:
    ledger = TrustLedger()
    ledger.observe(BOB, bob1.cert, Seen.SMIME, T0)
    ledger.mark_verified(BOB, fingerprint_sha256(bob1.cert), Means.CA_CHAIN, T0)
    assert ledger.state(BOB) is ContactState.CERTIFICATE
    changed = ledger.observe(BOB, bob2.cert, Seen.SMIME, T1)
    assert changed.was_verified and not changed.must_block


def test_naive_time_is_refused(bob1: Issued) -> None:
    with pytest.raises(ValueError, match="time zone"):
        TrustLedger().observe(BOB, bob1.cert, Seen.SIPSEC, dt.datetime(2025, 1, 1))


def test_bad_aor_and_via_are_clear_errors(bob1: Issued) -> None:
    ledger = TrustLedger()
    with pytest.raises(LedgerError, match="not an address of record"):
        ledger.observe("not an address", bob1.cert, Seen.SIPSEC, T0)
    with pytest.raises(ValueError):
        ledger.observe(BOB, bob1.cert, "carrier-pigeon", T0)
    assert len(ledger) == 0


@pytest.mark.parametrize(
    "text",
    ["AB:" * 31 + "AB", "ab" * 32, " ".join(["ABCD"] * 16)],
)
def test_fingerprints_typed_by_people_parse(text: str) -> None:
    assert len(parse_fingerprint(text)) == 32


@pytest.mark.parametrize("text", ["xyz", "AB:CD", "ab" * 33])
def test_malformed_fingerprints_are_refused(text: str) -> None:
    with pytest.raises(LedgerError):
        parse_fingerprint(text)


# --- pins: verified once, verified for sipsec too ---------------------------------------------


def test_verification_becomes_a_pin_that_trust_evaluation_sees(bob1: Issued, bob2: Issued) -> None:
    ledger, pins = TrustLedger(), PinStore()
    ledger.observe(BOB, bob1.cert, Seen.SMIME, T0)  # learnt through S/MIME...
    ledger.mark_verified(BOB, fingerprint_sha256(bob1.cert), Means.SAFETY_NUMBER, T0)
    assert sync_pins(ledger, BOB, pins, T0)
    assert not sync_pins(ledger, BOB, pins, T0)  # idempotent
    (pin,) = pins.pins_for(Identity.aor(BOB))
    assert pin.reason is PinReason.VERIFIED_SAFETY_NUMBER

    # ... and the sipsec TLS peer presenting it is pinned: self-signed is covered by the pin.
    report = evaluate([bob1.cert], Identity.aor(BOB), now=T0, pins=pins, purpose="client")
    assert report.pin_state is PinState.MATCHES and report.acceptable

    # A changed certificate: the old pin stays until the user answers, so TLS blocks too.
    ledger.observe(BOB, bob2.cert, Seen.SIPSEC, T1)
    assert not sync_pins(ledger, BOB, pins, T1)
    report = evaluate([bob2.cert], Identity.aor(BOB), now=T1, pins=pins, purpose="client")
    assert report.changed and Problem.CHANGED_SINCE_PINNED in report.problems

    # Accepted without verifying: the verified pin goes; an always-trust pin would stay.
    pins.add(Identity.aor(BOB), Pin(b"\x01" * 32, T0, PinReason.ALWAYS_TRUST))
    ledger.accept_change(BOB, fingerprint_sha256(bob2.cert), T2)
    assert sync_pins(ledger, BOB, pins, T2)
    assert [p.reason for p in pins.pins_for(Identity.aor(BOB))] == [PinReason.ALWAYS_TRUST]


# --- JSON -----------------------------------------------------------------------------------


def _busy_ledger(bob1: Issued, bob2: Issued) -> TrustLedger:
    ledger = TrustLedger()
    ledger.observe(BOB, bob1.cert, Seen.SIPSEC, T0)
    ledger.mark_verified(BOB, fingerprint_sha256(bob1.cert), Means.QR, T0)
    ledger.observe(BOB, bob2.cert, Seen.DTLS, T1)
    alice = make_self_signed(cn="alice", uris=["sip:alice@example.test"])
    ledger.observe("sip:alice@example.test", alice.cert, Seen.SMIME, T2)
    return ledger


def test_json_round_trip_keeps_everything(bob1: Issued, bob2: Issued) -> None:
    ledger = _busy_ledger(bob1, bob2)
    data = ledger.to_bytes()
    again = TrustLedger.from_bytes(data)
    assert again.to_bytes() == data
    assert json.loads(data)["version"] == 2
    contact = again.contact(BOB)
    assert contact.blocked and contact.state is ContactState.CHANGED
    assert [r.seen_via for r in contact.certificates] == [{Seen.SIPSEC}, {Seen.DTLS}]
    assert [h.kind for h in contact.history] == [h.kind for h in ledger.contact(BOB).history]


def _mutations(good: bytes) -> list[bytes]:
    doc = json.loads(good)
    bob = doc["contacts"][BOB]
    cases: list[object] = []
    cases.append({**doc, "version": "1"})
    cases.append({"version": 1})
    cases.append({**doc, "contacts": {BOB: {**bob, "current": "00" * 32}}})
    cases.append({**doc, "contacts": {BOB: {**bob, "blocked": "yes"}}})
    record = {**bob["certificates"][0], "sha256": "11" * 32}
    cases.append({**doc, "contacts": {BOB: {**bob, "certificates": [record]}}})
    cases.append({**doc, "contacts": {"SIP:Bob@Example.test": bob}})
    history = [{**bob["history"][0], "kind": "teleported"}]
    cases.append({**doc, "contacts": {BOB: {**bob, "history": history}}})
    cases.append({**doc, "contacts": {BOB: {**bob, "smime": "shout"}}})
    cases.append({**doc, "contacts": {BOB: {k: v for k, v in bob.items() if k != "smime"}}})
    return [b"\xff\xfe", b"{", b"[]", *(json.dumps(c).encode() for c in cases)]


def test_malformed_ledgers_are_refused_with_a_reason(bob1: Issued, bob2: Issued) -> None:
    for bad in _mutations(_busy_ledger(bob1, bob2).to_bytes()):
        with pytest.raises(LedgerError):
            TrustLedger.from_bytes(bad)


def test_newer_format_is_refused_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "contacts.json"
    path.write_bytes(b'{"version": 99, "contacts": {}}')
    with pytest.raises(LedgerError, match="newer version"):
        load_ledger(path, now=T0)
    assert path.exists()  # left where it is


# --- the file ---------------------------------------------------------------------------------


def test_save_load_atomic_and_private(tmp_path: Path, bob1: Issued, bob2: Issued) -> None:
    path = tmp_path / "trust" / "contacts.json"
    assert len(load_ledger(path)) == 0  # no file yet: an empty ledger
    ledger = _busy_ledger(bob1, bob2)
    save_ledger(path, ledger)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(path.parent.glob(".*.tmp"))
    assert load_ledger(path).to_bytes() == ledger.to_bytes()


def test_corrupt_file_is_kept_aside_and_said(tmp_path: Path) -> None:
    path = tmp_path / "contacts.json"
    path.write_bytes(b'{"version": 1, "contacts": ')  # a torn write by another program
    with pytest.raises(CorruptLedgerError) as caught:
        load_ledger(path, now=T0)
    kept = caught.value.kept
    assert kept.name.startswith("contacts.json.corrupt-20250601T120000")
    assert kept.read_bytes() == b'{"version": 1, "contacts": '
    assert str(kept) in str(caught.value) and not path.exists()
    assert len(load_ledger(path)) == 0  # told once, then a fresh ledger


def test_export_writes_json_and_records_it(tmp_path: Path, bob1: Issued, bob2: Issued) -> None:
    path, out = tmp_path / "contacts.json", tmp_path / "audit.json"
    ledger = _busy_ledger(bob1, bob2)
    data = export_ledger(ledger, path, out, T2)
    assert out.read_bytes() == data
    document = json.loads(data)
    assert document["exported_at"] == T2.isoformat()
    assert set(document["contacts"]) == {BOB, "sip:alice@example.test"}
    assert load_ledger(path).contact(BOB).history[-1].kind is EventKind.EXPORTED


# --- the per-contact S/MIME preference (issue 6) -----------------------------------------------

OFF, SIGN, BOTH = ProtectionMode.OFF, ProtectionMode.SIGN, ProtectionMode.SIGN_AND_ENCRYPT


def test_smime_preference_is_kept_in_json_and_history(bob1: Issued, bob2: Issued) -> None:
    ledger = _busy_ledger(bob1, bob2)
    assert ledger.contact(BOB).smime is None  # follows the account until set
    ledger.set_smime("sips:bob@EXAMPLE.test", "sign+encrypt", T1)
    ledger.set_smime(BOB, BOTH, T1)  # the same again: no new history entry
    ledger.set_smime(BOB, OFF, T2)
    again = TrustLedger.from_bytes(ledger.to_bytes())
    assert len(again) == 2  # every spelling of bob's AOR is the same contact
    contact = again.contact(BOB)
    assert contact.smime is OFF
    assert json.loads(ledger.to_bytes())["contacts"][BOB]["smime"] == "off"
    changes = [h for h in contact.history if h.kind is EventKind.SMIME_PREFERENCE]
    assert [(h.at, h.detail) for h in changes] == [
        (T1, "account -> sign+encrypt"),
        (T2, "sign+encrypt -> off"),
    ]
    assert contact.blocked and contact.state is ContactState.CHANGED  # the rest untouched
    ledger.set_smime(BOB, "account", T2)
    assert TrustLedger.from_bytes(ledger.to_bytes()).contact(BOB).smime is None


def test_a_format_1_file_still_loads_and_follows_the_account(
    tmp_path: Path, bob1: Issued, bob2: Issued
) -> None:
    document = json.loads(_busy_ledger(bob1, bob2).to_bytes())
    document["version"] = 1
    for contact in document["contacts"].values():
        del contact["smime"]  # what a format 1 writer wrote
    path = tmp_path / "contacts.json"
    path.write_bytes(json.dumps(document).encode())
    ledger = load_ledger(path, now=T0)
    assert path.exists() and not list(tmp_path.glob("*.corrupt-*"))  # not treated as corrupt
    assert len(ledger) == 2 and all(c.smime is None for c in ledger)
    assert ledger.contact(BOB).blocked and len(ledger.contact(BOB).certificates) == 2
    ledger.set_smime(BOB, SIGN, T2)
    save_ledger(path, ledger)
    assert json.loads(path.read_bytes())["version"] == 2
    assert load_ledger(path).contact(BOB).smime is SIGN


def test_setting_smime_for_an_unknown_aor_creates_a_claimed_contact(bob1: Issued) -> None:
    ledger = TrustLedger()
    contact = ledger.set_smime("bob@example.test", SIGN, T0)
    assert contact.aor == BOB and contact.certificates == [] and contact.current is None
    assert ledger.state(BOB) is ContactState.CLAIMED and BOB in ledger
    assert TrustLedger.from_bytes(ledger.to_bytes()).contact(BOB).smime is SIGN
    # Its first certificate is a first sight, not a "change".
    seen = ledger.observe(BOB, bob1.cert, Seen.SMIME, T1)
    assert seen.kind is ObservationKind.NEW_CONTACT and not seen.must_block
    contact = ledger.contact(BOB)
    assert not contact.change_pending and contact.current == fingerprint_sha256(bob1.cert)
    assert contact.smime is SIGN


@pytest.mark.parametrize("text", ["", "encrypt", "sign+", "on"])
def test_unknown_smime_settings_are_refused(text: str) -> None:
    with pytest.raises(LedgerError, match="not an S/MIME setting"):
        parse_smime_preference(text)
    with pytest.raises(LedgerError):
        TrustLedger().set_smime(BOB, text, T0)


@pytest.mark.parametrize(
    ("account", "contact", "send", "require"),
    [
        (OFF, None, OFF, OFF),
        (SIGN, None, SIGN, SIGN),
        (OFF, SIGN, SIGN, SIGN),  # the contact makes the account stricter
        (OFF, BOTH, BOTH, BOTH),
        (SIGN, OFF, OFF, SIGN),  # "off" for a contact never weakens what is required
        (BOTH, OFF, OFF, BOTH),
        (BOTH, SIGN, SIGN, BOTH),
        (SIGN, BOTH, BOTH, BOTH),
    ],
)
def test_what_we_send_and_what_we_require(
    account: ProtectionMode,
    contact: ProtectionMode | None,
    send: ProtectionMode,
    require: ProtectionMode,
) -> None:
    assert sending_mode(account, contact) is send
    assert required_mode(account, contact) is require


def _current(ledger: TrustLedger, aor: str) -> bytes:
    fingerprint = ledger.contact(aor).current
    assert fingerprint is not None
    return fingerprint


def test_ledger_text_is_to_bytes_after_changes_and_removals() -> None:
    """LedgerText (what the user agent's keeper saves with) writes to_bytes' very bytes,
    encoding again only the contacts it was told changed."""
    ledger = TrustLedger()
    people = [f"sip:p{i}@example.test" for i in range(6)]
    for aor in people:
        ledger.observe(aor, make_self_signed(cn=aor, uris=[aor]).cert, Seen.MANUAL, NOW)
    text = ledger.text()
    assert text.to_bytes() == ledger.to_bytes()
    ledger.mark_verified(people[2], _current(ledger, people[2]), Means.SAFETY_NUMBER, NOW)
    text.changed(people[2])
    ledger.forget(people[4])
    text.changed(people[4])
    newcomer = "sips:new@example.test"
    ledger.observe(newcomer, make_self_signed(cn="new", uris=[newcomer]).cert, Seen.SIPSEC, NOW)
    text.changed(newcomer)  # any spelling of the AOR
    assert text.to_bytes() == ledger.to_bytes()
    assert TrustLedger.from_bytes(text.to_bytes()).state(people[2]) is ContactState.VERIFIED
    # Not told: the old JSON of that contact stays (the keeper tells it every change).
    ledger.mark_verified(people[3], _current(ledger, people[3]), Means.SAFETY_NUMBER, NOW)
    assert text.to_bytes() != ledger.to_bytes()
