"""Calls between two softphone UserAgents registered with a real Kamailio over TLS.

alice and bob each register over their own TLS flow (tests/interop/kamailio.py: Kamailio
record-routes INVITEs, challenges requests From its own domain with 407, and reaches a callee
over the flow it registered on). Every call here crosses Kamailio both ways: INVITE, 1xx,
2xx, ACK and BYE, CANCEL and 487. Audio goes end to end between the two UAs on 127.0.0.1
(SRTP with SDES keys: Kamailio relays no media), each side sending a tone and finding the
other's in what it played (Goertzel). Waits are bounded (WAIT), never timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from softphone.media.tone import ToneSource
from softphone.sdp.policy import SrtpPolicy
from softphone.ua.call import AUDIO_WORDS, Call, CallPhase
from softphone.ua.events import CallState, MediaStarted
from softphone.ua.useragent import UserAgent
from tests.interop.helpers import Recorder, account, heard, log_of, settle, states, wait_until
from tests.interop.kamailio import DEFAULT_USERS, KamailioServer
from tests.ua.test_registration import WAIT, EventLog

pytestmark = pytest.mark.interop


async def registered_pair(
    server: KamailioServer,
    ua_factory: Callable[..., UserAgent],
    *,
    bob_options: dict[str, Any] | None = None,
    bob_account: dict[str, Any] | None = None,
) -> tuple[UserAgent, EventLog, UserAgent, EventLog]:
    alice_events, bob_events = EventLog(), EventLog()
    alice = ua_factory(account(server, "alice"), on_event=alice_events)
    bob = ua_factory(
        account(server, "bob", **(bob_account or {})),
        on_event=bob_events,
        password=DEFAULT_USERS["bob"],
        **(bob_options or {}),
    )
    await asyncio.gather(alice.register(), bob.register())
    return alice, alice_events, bob, bob_events


def invites_seen(server: KamailioServer) -> int:
    return log_of(server).count("IN INVITE ")


async def test_call_over_tls_audio_both_ways_encrypted_and_bye_ends_both(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory()
    bob_heard = Recorder()
    incoming: list[Call] = []

    def bob_takes(call: Call) -> None:
        call.source, call.sink = ToneSource(440), bob_heard
        incoming.append(call)

    alice, alice_events, bob, bob_events = await registered_pair(
        server, ua_factory, bob_options={"auto_answer": True, "on_incoming_call": bob_takes}
    )
    alice_heard = Recorder()
    call = await alice.call(f"sips:bob@{server.domain}", source=ToneSource(1000), sink=alice_heard)
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    assert len(incoming) == 1
    bob_call = incoming[0]
    await bob_call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    assert call.invites_sent == 2 and call.challenges == 1  # Kamailio's 407, answered once
    assert call.dialog is not None and call.dialog.secure  # sips Request-URI over TLS

    # Audio both ways: each hears the other's tone, through SRTP.
    await wait_until(lambda: alice_heard.loud_frames() > 25, "alice hearing bob")
    await wait_until(lambda: bob_heard.loud_frames() > 25, "bob hearing alice")
    assert abs(heard(alice_heard) - 440) <= 20
    assert abs(heard(bob_heard) - 1000) <= 20
    for events in (alice_events, bob_events):
        started = await events.wait_for("media_started")
        assert isinstance(started, MediaStarted)
        assert started.encrypted and started.keying == "sdes"
        assert started.srtp_suite in {
            "AEAD_AES_256_GCM",
            "AEAD_AES_128_GCM",
            "AES_CM_128_HMAC_SHA1_80",
            "AES_CM_128_HMAC_SHA1_32",
        }
        assert started.audio == AUDIO_WORDS["sdes-hops"]
        assert started.audio == "Audio encrypted; every server on the way holds the key"
    assert call.media is not None
    stats = call.media.statistics()
    assert stats.encrypted and stats.packets_received > 25 and not stats.drops.get("auth")

    # alice hangs up: BYE through Kamailio (record-routed), both calls end.
    await call.hangup()
    assert call.phase is CallPhase.ENDED and call.reason == "hung up"
    await asyncio.wait_for(asyncio.shield(bob_call.ended), WAIT)
    assert bob_call.reason == "the other side hung up"
    assert states(alice_events) == ["calling", "ringing", "established", "ended"]
    assert states(bob_events) == ["calling", "ringing", "established", "ended"]
    assert alice.calls == [] and bob.calls == []
    await settle(server)
    log = log_of(server)
    assert "IN BYE " in log and "IN ACK " in log
    # both UAs are still registered on their flows
    assert alice.flow is not None and not alice.flow.is_closed


async def test_busy_callee_ends_the_call_busy(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory()
    alice, alice_events, bob, _bob_events = await registered_pair(
        server, ua_factory, bob_options={"on_incoming_call": lambda c: c.reject(486)}
    )
    call = await alice.call("bob")  # just the user: our domain, our scheme (sips)
    await asyncio.wait_for(asyncio.shield(call.ended), WAIT)
    assert call.reason == "busy" and call.status_code == 486
    ended = alice_events.of("call_state")[-1]
    assert isinstance(ended, CallState) and ended.state == "ended" and ended.reason == "busy"
    assert "established" not in states(alice_events)
    assert alice.calls == [] and bob.calls == []


async def test_decline_ends_the_call_declined(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory()
    alice, _, _bob, _ = await registered_pair(
        server, ua_factory, bob_options={"on_incoming_call": lambda c: c.reject(603)}
    )
    call = await alice.call("bob")
    await asyncio.wait_for(asyncio.shield(call.ended), WAIT)
    assert call.reason == "declined" and call.status_code == 603


async def test_unknown_user_ends_not_found(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory()
    alice, _, _, _ = await registered_pair(server, ua_factory)
    call = await alice.call("carol")  # a subscriber, but not registered: Kamailio's 404
    await asyncio.wait_for(asyncio.shield(call.ended), WAIT)
    assert call.reason == "not found" and call.status_code == 404


async def test_cancel_before_answer_gets_487(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory()
    ringing: list[Call] = []
    alice, _alice_events, _bob, bob_events = await registered_pair(
        server, ua_factory, bob_options={"on_incoming_call": ringing.append}
    )
    call = await alice.call(f"sips:bob@{server.domain}")
    await call.wait_for(CallPhase.RINGING, timeout=WAIT)
    assert len(ringing) == 1 and ringing[0].phase is CallPhase.RINGING
    await call.hangup()
    assert call.phase is CallPhase.ENDED
    assert call.reason == "cancelled" and call.status_code == 487
    await asyncio.wait_for(asyncio.shield(ringing[0].ended), WAIT)
    assert ringing[0].reason == "cancelled by the caller"
    assert states(bob_events) == ["calling", "ringing", "ended"]
    await settle(server)
    assert "IN CANCEL " in log_of(server)
    assert "RPL 487 " in log_of(server)


async def test_second_call_carries_credentials_preemptively(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory()
    alice, _, _bob, _ = await registered_pair(server, ua_factory, bob_options={"auto_answer": True})
    first = await alice.call("bob")
    await first.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await first.hangup()
    await settle(server)
    assert first.invites_sent == 2 and first.challenges == 1
    before = invites_seen(server)

    second = await alice.call("bob")
    await second.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    assert second.invites_sent == 1 and second.challenges == 0  # no 407 round trip
    await second.hangup()
    await settle(server)
    # Kamailio saw one INVITE from alice for the second call (plus its relay to bob: none
    # is logged, "IN" is what arrives) and answered it without a 407.
    assert invites_seen(server) - before == 1


async def test_srtp_off_peer_under_mandatory_policy_gets_488_and_no_call(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory()
    rang: list[Call] = []
    # alice: SRTP off (plain RTP/AVP offer); bob: SRTP mandatory (the default).
    alice_events, bob_events = EventLog(), EventLog()
    alice = ua_factory(account(server, "alice", srtp=SrtpPolicy.OFF), on_event=alice_events)
    bob = ua_factory(
        account(server, "bob"),
        on_event=bob_events,
        password=DEFAULT_USERS["bob"],
        auto_answer=True,
        on_incoming_call=rang.append,
    )
    await asyncio.gather(alice.register(), bob.register())
    call = await alice.call("bob")
    await asyncio.wait_for(asyncio.shield(call.ended), WAIT)
    assert call.status_code == 488, call.reason
    assert "cannot accept our media" in call.reason
    assert rang == []  # bob's phone never rang
    assert "ringing" not in states(bob_events) and "established" not in states(bob_events)
    assert bob_events.of("media_started") == [] and alice_events.of("media_started") == []


async def test_optional_caller_accepts_plain_rtp_and_says_so(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    """alice (optional) offers SRTP on RTP/AVP; bob (off) answers plain RTP: alice with
    ``optional`` takes it, and says so ("Audio not encrypted")."""
    server = kamailio_factory()
    alice, alice_events, _bob, _ = await registered_pair(
        server,
        ua_factory,
        bob_options={"auto_answer": True},
        bob_account={"srtp": SrtpPolicy.OFF},
    )
    alice.account = account(server, "alice", srtp=SrtpPolicy.OPTIONAL)
    call = await alice.call("bob")
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    started = await alice_events.wait_for("media_started")
    assert isinstance(started, MediaStarted)
    assert not started.encrypted and started.audio == "Audio not encrypted"
    await call.hangup()


async def test_dead_flow_ends_the_call_and_the_peer_times_out_on_media(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    """bob's connection dies mid-call: bob's call ends at once ("connection lost"); alice
    hears nothing any more and ends hers after her media timeout, with a BYE (best effort:
    Kamailio has no flow to bob left, so the BYE's answer is its own error)."""
    server = kamailio_factory()
    incoming: list[Call] = []
    alice_events = EventLog()
    alice = ua_factory(account(server, "alice"), on_event=alice_events, media_timeout=2.0)
    bob = ua_factory(
        account(server, "bob"),
        password=DEFAULT_USERS["bob"],
        auto_answer=True,
        on_incoming_call=incoming.append,
    )
    await asyncio.gather(alice.register(), bob.register())
    call = await alice.call("bob", source=ToneSource(1000))
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    bob_call = incoming[0]
    await bob_call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    assert bob.flow is not None
    bob.flow.close("pulled the cable")
    await asyncio.wait_for(asyncio.shield(bob_call.ended), WAIT)
    assert bob_call.reason.startswith("connection lost (pulled the cable")
    await asyncio.wait_for(asyncio.shield(call.ended), WAIT)
    assert call.reason == "no audio from the other side for 2 s"
    await settle(server)
    assert "IN BYE " in log_of(server)
