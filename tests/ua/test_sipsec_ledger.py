"""The trust ledger in sipsec calls (issue 6): real UserAgents, real TLS through the sipsec test
proxy. The peer's certificate is recorded after the trust check, "We compared it" makes the
contact verified (ledger and pins), and a verified contact presenting another certificate is
a loud "changed" question before any INVITE — even when only the ledger knew it was verified."""

# ruff: noqa: F811  # the fixtures of test_sipsec, imported, are parameters here
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from softphone.contacts import load_ledger, save_ledger
from softphone.media.tone import ToneSource
from softphone.security.certificates import Identity
from softphone.security.ledger import ContactState, Means, Seen
from softphone.security.pins import PinReason
from softphone.security.trust import TrustDecision
from softphone.storage import load_pin_store
from softphone.ua.call import CallError, CallPhase
from softphone.ua.events import PeerIdentity, TrustRequired
from softphone.ua.registration import RegistrationState
from tests.ua.sipsec_proxy import SipsecProxy
from tests.ua.test_sipsec import (  # noqa: F401  # fixtures
    WAIT,
    Lab,
    Party,
    lab,
    party,
    proxy,
    wait_until,
)

BOB = "sip:bob@biloxi.test"


async def make_pair(party: Callable[..., Any], lab: Lab, tmp_path: Path) -> tuple[Party, Party]:
    alice = await party(
        "alice@atlanta.test",
        lab.alice,
        TrustDecision.ACCEPT_ONCE,
        ledger_path=tmp_path / "alice-contacts.json",
    )
    bob = await party(
        "bob@biloxi.test",
        lab.bob,
        TrustDecision.ACCEPT_ONCE,
        TrustDecision.ACCEPT_ONCE,
        ledger_path=tmp_path / "bob-contacts.json",
    )
    return alice, bob


async def one_call(alice: Party) -> None:
    await wait_until(lambda: alice.ua.state is RegistrationState.REGISTERED, "registered")
    await wait_until(lambda: alice.ua.flow is not None and not alice.ua.flow.is_closed, "flow")
    call = await alice.ua.call("sipsec:bob@biloxi.test", source=ToneSource(1000))
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await call.hangup()


def identities(p: Party) -> list[PeerIdentity]:
    return [e for e in p.events.events if isinstance(e, PeerIdentity)]


async def test_both_sides_record_the_peer_and_we_compared_it_verifies(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab, tmp_path: Path
) -> None:
    alice, bob = await make_pair(party, lab, tmp_path)
    call = await alice.ua.call("sipsec:bob@biloxi.test", source=ToneSource(1000))
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    first = identities(alice)[-1]
    assert first.identity_state == "claimed" and first.ledger_state == "claimed"
    ledger = load_ledger(tmp_path / "alice-contacts.json")
    contact = ledger.contact(BOB)
    assert contact.current_record is not None
    assert contact.current_record.seen_via == {Seen.SIPSEC}
    await wait_until(lambda: bool(bob.incoming), "bob's call")
    assert "sip:alice@atlanta.test" in load_ledger(tmp_path / "bob-contacts.json")

    # "We compared it": ledger verified, bob pinned as verified, an event that says so.
    assert alice.ua.mark_verified(call) == BOB
    verified = identities(alice)[-1]
    assert verified.identity_state == "verified" and verified.call_id == call.call_id
    assert load_ledger(tmp_path / "alice-contacts.json").state(BOB) is ContactState.VERIFIED
    pins = load_pin_store(tmp_path / "pins-alice@atlanta.test.json").pins_for(Identity.aor(BOB))
    assert [p.reason for p in pins] == [PinReason.VERIFIED_SAFETY_NUMBER]
    assert pins[0].sha256 == load_ledger(tmp_path / "alice-contacts.json").contact(BOB).current
    await call.hangup()

    # The next call: no question, and the identity says verified.
    asked = len(alice.answers.asked)
    await one_call(alice)
    assert len(alice.answers.asked) == asked
    assert identities(alice)[-1].identity_state == "verified"


async def test_mark_verified_of_an_unknown_contact_is_a_clear_error(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab, tmp_path: Path
) -> None:
    alice = await party("alice@atlanta.test", lab.alice, register=False)
    with pytest.raises(CallError, match=r"could not mark sip:nobody@biloxi\.test verified"):
        alice.ua.mark_verified("sip:nobody@biloxi.test")


async def test_a_contact_verified_only_in_the_ledger_that_changes_is_loud_before_the_invite(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab, tmp_path: Path
) -> None:
    alice, bob = await make_pair(party, lab, tmp_path)
    await one_call(alice)
    # Verified by `softphone contacts verify` (the ledger only: no pin written).
    path = tmp_path / "alice-contacts.json"
    ledger = load_ledger(path)
    current = ledger.contact(BOB).current
    assert current is not None
    ledger.mark_verified(BOB, current, Means.SAFETY_NUMBER, _now())
    save_ledger(path, ledger)
    pins = load_pin_store(tmp_path / "pins-alice@atlanta.test.json")
    assert not pins.pins_for(Identity.aor(BOB))

    bob.ua._identity = lab.fake_bob  # bob's phone now presents another certificate
    await wait_until(lambda: "bob@biloxi.test" in proxy.bindings, "bob re-registered")
    await wait_until(lambda: alice.ua.state is RegistrationState.REGISTERED, "registered")
    await wait_until(lambda: alice.ua.flow is not None and not alice.ua.flow.is_closed, "flow")
    invites_before = len(bob.incoming)
    alice.answers.planned = [TrustDecision.REJECT]
    with pytest.raises(CallError, match="not connected"):
        await alice.ua.call("sipsec:bob@biloxi.test")
    loud = [e for e in alice.events.events if isinstance(e, TrustRequired)]
    assert loud[-1].changed and alice.answers.asked[-1].loud
    assert len(bob.incoming) == invites_before  # no INVITE reached bob
    # Refused: the ledger still knows bob as verified with the old certificate.
    assert load_ledger(path).contact(BOB).current == current


async def test_accepting_the_loud_change_unverifies_the_contact(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab, tmp_path: Path
) -> None:
    alice, bob = await make_pair(party, lab, tmp_path)
    await one_call(alice)
    alice.ua.mark_verified(BOB)
    bob.ua._identity = lab.fake_bob
    await wait_until(lambda: "bob@biloxi.test" in proxy.bindings, "bob re-registered")
    bob.answers.planned = [TrustDecision.ACCEPT_ONCE]
    alice.answers.planned = [TrustDecision.ACCEPT_ONCE]  # a person answered "Connect this time"
    await one_call(alice)
    assert alice.answers.asked[-1].loud
    assert identities(alice)[-1].identity_state == "changed"
    contact = load_ledger(tmp_path / "alice-contacts.json").contact(BOB)
    assert contact.state is not ContactState.VERIFIED and not contact.blocked
    assert len(contact.certificates) == 2


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


async def test_a_corrupt_ledger_is_kept_aside_and_the_call_goes_on(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab, tmp_path: Path
) -> None:
    alice, bob = await make_pair(party, lab, tmp_path)
    path = tmp_path / "alice-contacts.json"
    path.write_text("{ not json")
    await one_call(alice)  # the pins still guard the call; the ledger starts afresh
    kept = list(tmp_path.glob("alice-contacts.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text() == "{ not json"
    alice.answers.planned = [TrustDecision.ACCEPT_ONCE]  # bob is not pinned: asked again
    bob.answers.planned = [TrustDecision.ACCEPT_ONCE]
    await one_call(alice)
    assert BOB in load_ledger(path)
