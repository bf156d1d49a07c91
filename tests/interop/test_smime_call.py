"""S/MIME-protected SDP in calls (RFC 3261 §23) between two UserAgents through a real Kamailio.

alice and bob register over TLS with the real Kamailio (tests/interop/kamailio.py), each with a
self-signed RSA identity (S/MIME). Every trust question about the other's certificate goes to
a fixture that answers and counts. Kamailio challenges the INVITE (407), record-routes it and
rewrites the Contact (alias): the §23.4 tunnelled copy must survive that.

- sign: both SDPs signed; each side asked once about the other; audio words stay the hop words.
- sign+encrypt: alice learns bob's certificate by OPTIONS (§23.2), both SDPs encrypted:
  "Audio encrypted end to end".
- 493 flow: alice signs only, bob wants encryption: 493 with bob's certs-only body, alice
  learns it and sends the INVITE once more, encrypted.
- a byte flipped in the signed INVITE → 493 and no call rings; in bob's 200 → the call ends
  with an alert.
- per contact (issue 6, ``softphone contacts smime``): alice's account says off, her contact
  bob says sign → her INVITE is signed and bob verifies it; bob's account requires sign and
  his contact alice says off → a plain INVITE from alice still gets 493 (a per-contact "off"
  never weakens the account).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from softphone.contacts import load_ledger, save_ledger
from softphone.media.tone import ToneSource
from softphone.security.identity import IdentityMaterial, new_identity
from softphone.security.ledger import Seen
from softphone.security.trust import TrustDecision, TrustDecisionRequired
from softphone.sip.message import Request, Response
from softphone.ua.account import SmimeMode
from softphone.ua.call import AUDIO_WORDS, Call, CallPhase
from softphone.ua.events import MediaStarted, PeerIdentity, SmimeStatus, TrustRequired
from softphone.ua.useragent import UserAgent
from tests.interop.helpers import Recorder, account, heard, wait_until
from tests.interop.kamailio import DEFAULT_USERS, DOMAIN, KamailioServer
from tests.ua.test_registration import WAIT, EventLog

pytestmark = pytest.mark.interop


class Answers:
    """Trust fixture: each question answered with the next planned decision (then REJECT)."""

    def __init__(self, *decisions: TrustDecision) -> None:
        self.planned = list(decisions)
        self.asked: list[TrustDecisionRequired] = []

    async def __call__(self, required: TrustDecisionRequired) -> TrustDecision:
        self.asked.append(required)
        return self.planned.pop(0) if self.planned else TrustDecision.REJECT


class Side:
    def __init__(self, ua: UserAgent, events: EventLog, answers: Answers, tmp: Path) -> None:
        self.ua, self.events, self.answers, self.tmp = ua, events, answers, tmp
        self.incoming: list[Call] = []
        self.heard = Recorder()

    def smime(self, direction: str) -> list[str]:
        return [
            e.protection
            for e in self.events.events
            if isinstance(e, SmimeStatus) and e.direction == direction
        ]

    def ledger_via(self, aor: str) -> set[Seen]:
        contact = load_ledger(self.tmp / "contacts.json").contact(aor)
        assert contact.current_record is not None
        return set(contact.current_record.seen_via)


@pytest.fixture(scope="module")
def identities() -> dict[str, IdentityMaterial]:
    now = dt.datetime.now(dt.UTC)
    return {u: new_identity(f"sip:{u}@{DOMAIN}", now=now) for u in ("alice", "bob")}


async def pair(
    server: KamailioServer,
    ua_factory: Callable[..., UserAgent],
    identities: dict[str, IdentityMaterial],
    tmp_path: Path,
    *,
    alice_smime: str,
    bob_smime: str,
    alice_answers: Answers,
    bob_answers: Answers,
) -> tuple[Side, Side]:
    sides: list[Side] = []
    for user, mode, answers in (
        ("alice", alice_smime, alice_answers),
        ("bob", bob_smime, bob_answers),
    ):
        folder = tmp_path / user
        folder.mkdir()
        events = EventLog()
        side_holder: list[Side] = []

        def takes(call: Call, holder: list[Side] = side_holder) -> None:
            call.source, call.sink = ToneSource(440), holder[0].heard
            holder[0].incoming.append(call)

        ua = ua_factory(
            account(server, user, smime=SmimeMode(mode)),
            on_event=events,
            password=DEFAULT_USERS[user],
            pin_store_path=folder / "pins.json",
            identity=identities[user],
            answerer=answers,
            auto_answer=True,
            on_incoming_call=takes,
        )
        side = Side(ua, events, answers, folder)
        side_holder.append(side)
        sides.append(side)
    await asyncio.gather(*(s.ua.register() for s in sides))
    return sides[0], sides[1]


async def established_both(alice: Side, bob: Side, call: Call) -> Call:
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await wait_until(lambda: bool(bob.incoming), "bob's call")
    bob_call = bob.incoming[0]
    await bob_call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await wait_until(lambda: alice.heard.loud_frames() > 25, "alice hearing bob")
    await wait_until(lambda: bob.heard.loud_frames() > 25, "bob hearing alice")
    assert abs(heard(alice.heard) - 440) <= 20 and abs(heard(bob.heard) - 1000) <= 20
    return bob_call


def set_contact_smime(side: Side, aor: str, setting: str) -> None:
    """What ``softphone contacts smime AOR SETTING`` does, on this side's ledger file."""
    path = side.tmp / "contacts.json"
    ledger = load_ledger(path)
    ledger.set_smime(aor, setting, dt.datetime.now(dt.UTC))
    save_ledger(path, ledger)


def tamper(message: Request | Response) -> None:
    """Flip one byte of the SDP inside a multipart/signed body (the c= line's address)."""
    body = bytearray(message.body)
    at = body.find(b"c=IN IP4 ")
    assert at > 0, "no clear SDP to tamper with"
    body[at + 9] ^= 0x01
    message.body = bytes(body)


async def test_signed_sdp_both_ways_each_side_asked_once_hop_words(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    identities: dict[str, IdentityMaterial],
    tmp_path: Path,
) -> None:
    server = kamailio_factory()
    alice, bob = await pair(
        server,
        ua_factory,
        identities,
        tmp_path,
        alice_smime="sign",
        bob_smime="sign",
        alice_answers=Answers(TrustDecision.ACCEPT_ONCE),
        bob_answers=Answers(TrustDecision.ACCEPT_ONCE),
    )
    call = await alice.ua.call(
        f"sips:bob@{server.domain}", source=ToneSource(1000), sink=alice.heard
    )
    bob_call = await established_both(alice, bob, call)
    assert call.challenges == 1  # Kamailio's 407: the INVITE re-signed with the new CSeq
    assert len(alice.answers.asked) == 1 and len(bob.answers.asked) == 1
    assert alice.smime("sent") == ["signed", "signed"] and alice.smime("received") == ["signed"]
    assert bob.smime("sent") == ["signed"] and bob.smime("received") == ["signed"]
    for side in (alice, bob):
        started = await side.events.wait_for("media_started")
        assert isinstance(started, MediaStarted)
        assert started.audio == AUDIO_WORDS["sdes-hops"]  # signed only: servers still read
        identity = await side.events.wait_for("peer_identity")
        assert isinstance(identity, PeerIdentity) and identity.via == "smime"
        assert identity.safety_number is not None
    assert alice.ledger_via(f"sip:bob@{server.domain}") == {Seen.SMIME}
    assert bob.ledger_via(f"sip:alice@{server.domain}") == {Seen.SMIME}
    await call.hangup()
    await asyncio.wait_for(asyncio.shield(bob_call.ended), WAIT)


async def test_sign_and_encrypt_with_options_certificate_fetch_is_end_to_end(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    identities: dict[str, IdentityMaterial],
    tmp_path: Path,
) -> None:
    server = kamailio_factory()
    alice, bob = await pair(
        server,
        ua_factory,
        identities,
        tmp_path,
        alice_smime="sign+encrypt",
        bob_smime="sign+encrypt",
        alice_answers=Answers(TrustDecision.ACCEPT_ONCE),
        bob_answers=Answers(TrustDecision.ACCEPT_ONCE),
    )
    call = await alice.ua.call(
        f"sips:bob@{server.domain}", source=ToneSource(1000), sink=alice.heard
    )
    bob_call = await established_both(alice, bob, call)
    assert alice.smime("sent")[-1] == "signed+encrypted"
    assert alice.smime("received") == ["signed+encrypted"]
    assert bob.smime("received") == ["signed+encrypted"] and bob.smime("sent") == [
        "signed+encrypted"
    ]
    assert len(alice.answers.asked) == 1  # bob's certificate from the OPTIONS, once
    for side in (alice, bob):
        started = await side.events.wait_for("media_started")
        assert isinstance(started, MediaStarted)
        assert started.audio == "Audio encrypted end to end"
        assert started.signalling == "Encrypted to each server; servers on the way can read it"
    assert Seen.SMIME in alice.ledger_via(f"sip:bob@{server.domain}")
    # Hold and resume: the re-INVITEs are protected too, and the call goes on.
    await call.hold()
    await call.resume()
    assert call.phase is CallPhase.ESTABLISHED and bob_call.phase is CallPhase.ESTABLISHED
    await call.hangup()


async def test_493_teaches_the_certificate_and_the_invite_is_sent_again_encrypted(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    identities: dict[str, IdentityMaterial],
    tmp_path: Path,
) -> None:
    server = kamailio_factory()
    alice, bob = await pair(
        server,
        ua_factory,
        identities,
        tmp_path,
        alice_smime="sign",
        bob_smime="sign+encrypt",
        alice_answers=Answers(TrustDecision.ACCEPT_ONCE),
        bob_answers=Answers(TrustDecision.ACCEPT_ONCE),
    )
    call = await alice.ua.call(
        f"sips:bob@{server.domain}", source=ToneSource(1000), sink=alice.heard
    )
    bob_call = await established_both(alice, bob, call)
    assert call.smime is not None and call.smime.retried
    assert alice.smime("sent")[0] == "signed" and alice.smime("sent")[-1] == "signed+encrypted"
    assert call.invites_sent == 3  # 407, 493, then the encrypted one
    assert len(alice.answers.asked) == 1  # about bob's certificate from the 493
    assert alice.ledger_via(f"sip:bob@{server.domain}") == {Seen.SMIME}
    started = await alice.events.wait_for("media_started")
    assert isinstance(started, MediaStarted) and started.audio == "Audio encrypted end to end"
    await call.hangup()
    await asyncio.wait_for(asyncio.shield(bob_call.ended), WAIT)


async def test_a_flipped_byte_in_the_signed_invite_gets_493_and_nothing_rings(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    identities: dict[str, IdentityMaterial],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = kamailio_factory()
    alice, bob = await pair(
        server,
        ua_factory,
        identities,
        tmp_path,
        alice_smime="sign",
        bob_smime="sign",
        alice_answers=Answers(TrustDecision.ACCEPT_ONCE),
        bob_answers=Answers(TrustDecision.ACCEPT_ONCE),
    )
    host = alice.ua._call_host
    real = host.start_invite

    def tampering(request: Request, *args: Any) -> None:
        kind = request.headers.get("Content-Type") or ""
        if kind.startswith("multipart/signed"):
            tamper(request)  # a proxy on the way changes the media address
        elif kind.startswith("application/pkcs7-mime"):  # the retry after the 493: encrypted
            body = bytearray(request.body)
            body[-20] ^= 0x01  # inside the ciphertext
            request.body = bytes(body)
        real(request, *args)

    monkeypatch.setattr(host, "start_invite", tampering)
    call = await alice.ua.call(f"sips:bob@{server.domain}", source=ToneSource(1000))
    await asyncio.wait_for(asyncio.shield(call.ended), WAIT)
    assert call.status_code == 493, call.reason
    assert call.invites_sent == 3  # 407; 493 (bad signature); 493 again (cannot decrypt)
    assert len(alice.answers.asked) == 1  # bob's certificate from the first 493
    assert bob.incoming == []  # never rang
    assert bob.answers.asked == []  # a body that fails its checks asks nobody anything


async def test_a_flipped_byte_in_the_signed_200_ends_the_call_with_an_alert(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    identities: dict[str, IdentityMaterial],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = kamailio_factory()
    alice, bob = await pair(
        server,
        ua_factory,
        identities,
        tmp_path,
        alice_smime="sign",
        bob_smime="sign",
        alice_answers=Answers(TrustDecision.ACCEPT_ONCE),
        bob_answers=Answers(TrustDecision.ACCEPT_ONCE),
    )
    host = bob.ua._call_host
    real = host.respond

    def tampering(tx: Any, response: Response) -> None:
        if response.status_code == 200 and response.body:
            tamper(response)
        real(tx, response)

    monkeypatch.setattr(host, "respond", tampering)
    call = await alice.ua.call(f"sips:bob@{server.domain}", source=ToneSource(1000))
    await asyncio.wait_for(asyncio.shield(call.ended), WAIT)
    assert call.reason.startswith("the answer's S/MIME protection failed")
    assert call.media is None and alice.answers.asked == []
    await wait_until(lambda: bool(bob.incoming), "bob's call")
    await asyncio.wait_for(asyncio.shield(bob.incoming[0].ended), WAIT)  # the BYE reached bob


async def test_a_verified_contact_signing_with_another_certificate_is_loud_and_refused(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    identities: dict[str, IdentityMaterial],
    tmp_path: Path,
) -> None:
    server = kamailio_factory()
    alice, bob = await pair(
        server,
        ua_factory,
        identities,
        tmp_path,
        alice_smime="sign",
        bob_smime="sign",
        alice_answers=Answers(TrustDecision.ACCEPT_ONCE),
        bob_answers=Answers(TrustDecision.ACCEPT_ONCE),
    )
    target = f"sips:bob@{server.domain}"
    call = await alice.ua.call(target, source=ToneSource(1000), sink=alice.heard)
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    alice.ua.mark_verified(call)  # "We compared it"
    await call.hangup()
    bob.ua._identity = new_identity(  # bob's phone now signs with another key
        f"sip:bob@{server.domain}", now=dt.datetime.now(dt.UTC)
    )
    second = await alice.ua.call(target, source=ToneSource(1000))
    await asyncio.wait_for(asyncio.shield(second.ended), WAIT)
    assert second.reason.startswith("the answer's S/MIME protection failed")
    loud = [e for e in alice.events.events if isinstance(e, TrustRequired)]
    assert loud and loud[-1].changed and not loud[-1].overridable
    assert len(alice.answers.asked) == 1  # nobody may accept a changed key by policy
    contact = load_ledger(alice.tmp / "contacts.json").contact(f"sip:bob@{server.domain}")
    assert contact.blocked and contact.state.value == "changed"


async def test_contact_set_to_sign_signs_the_invite_though_the_account_is_off(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    identities: dict[str, IdentityMaterial],
    tmp_path: Path,
) -> None:
    server = kamailio_factory()
    alice, bob = await pair(
        server,
        ua_factory,
        identities,
        tmp_path,
        alice_smime="off",
        bob_smime="sign",
        alice_answers=Answers(TrustDecision.ACCEPT_ONCE),
        bob_answers=Answers(TrustDecision.ACCEPT_ONCE),
    )
    set_contact_smime(alice, f"sip:bob@{server.domain}", "sign")
    call = await alice.ua.call(
        f"sips:bob@{server.domain}", source=ToneSource(1000), sink=alice.heard
    )
    bob_call = await established_both(alice, bob, call)
    assert call.smime is not None and call.smime.mode.value == "sign"
    assert alice.smime("sent") == ["signed", "signed"]  # the 407 made it sign the INVITE again
    assert bob.smime("received") == ["signed"]  # verified on bob's side
    assert len(bob.answers.asked) == 1  # about alice's certificate, carried by her signature
    assert alice.smime("received") == ["signed"]  # the contact's "sign" is required of bob too
    assert bob.ledger_via(f"sip:alice@{server.domain}") == {Seen.SMIME}
    identity = await bob.events.wait_for("peer_identity")
    assert isinstance(identity, PeerIdentity) and identity.via == "smime"
    await call.hangup()
    await asyncio.wait_for(asyncio.shield(bob_call.ended), WAIT)


async def test_contact_set_to_off_does_not_weaken_an_account_that_requires_sign(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    identities: dict[str, IdentityMaterial],
    tmp_path: Path,
) -> None:
    server = kamailio_factory()
    alice, bob = await pair(
        server,
        ua_factory,
        identities,
        tmp_path,
        alice_smime="off",
        bob_smime="sign",
        alice_answers=Answers(TrustDecision.ACCEPT_ONCE),
        bob_answers=Answers(TrustDecision.ACCEPT_ONCE),
    )
    set_contact_smime(bob, f"sip:alice@{server.domain}", "off")
    call = await alice.ua.call(f"sips:bob@{server.domain}", source=ToneSource(1000))
    await asyncio.wait_for(asyncio.shield(call.ended), WAIT)
    assert call.status_code == 493, call.reason  # bob still requires a signed body
    assert alice.smime("sent") == []  # alice's plain INVITE: S/MIME is off on her side
    assert bob.incoming == [] and bob.answers.asked == []  # never rang, nobody asked
    contact = load_ledger(bob.tmp / "contacts.json").contact(f"sip:alice@{server.domain}")
    assert contact.smime is not None and contact.smime.value == "off"  # the setting stays
