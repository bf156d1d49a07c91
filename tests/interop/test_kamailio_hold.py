"""Hold, resume, DTMF and a downgrading re-INVITE between two softphone UserAgents through a
real Kamailio over TLS (RFC 3261 §14, RFC 3264 §8.4, RFC 6337, RFC 4733).

alice calls bob (auto-answer); each sends a tone. Every re-INVITE, its 200 and ACK cross
Kamailio (record-routed, loose routing). "Held" is checked on the wire: the held side's
receive counter does not move for a second while both calls stay established; after resume
the tone is heard again. Waits are bounded (WAIT), never timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import pytest

from softphone.media.tone import ToneSource
from softphone.sdp.policy import SrtpPolicy
from softphone.ua.call import Call, CallError, CallPhase
from softphone.ua.events import CallHeld, DtmfReceived
from softphone.ua.reinvite import DOWNGRADE_OFFER
from softphone.ua.useragent import UserAgent
from tests.interop.helpers import Recorder, heard, log_of, settle, wait_until
from tests.interop.kamailio import KamailioServer
from tests.interop.test_kamailio_call import registered_pair
from tests.ua.test_registration import WAIT, EventLog

pytestmark = pytest.mark.interop


async def answered_call(
    server: KamailioServer, ua_factory: Callable[..., UserAgent]
) -> tuple[Call, EventLog, Recorder, Call, EventLog, Recorder]:
    bob_heard = Recorder()
    incoming: list[Call] = []

    def bob_takes(call: Call) -> None:
        call.source, call.sink = ToneSource(440), bob_heard
        incoming.append(call)

    alice, alice_events, _bob, bob_events = await registered_pair(
        server, ua_factory, bob_options={"auto_answer": True, "on_incoming_call": bob_takes}
    )
    alice_heard = Recorder()
    call = await alice.call(f"sips:bob@{server.domain}", source=ToneSource(1000), sink=alice_heard)
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await wait_until(lambda: len(incoming) == 1, "bob's call")
    bob_call = incoming[0]
    await bob_call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await wait_until(lambda: bob_heard.loud_frames() > 25, "bob hearing alice")
    return call, alice_events, alice_heard, bob_call, bob_events, bob_heard


def received(call: Call) -> int:
    assert call.media is not None
    return call.media.statistics().packets_received


async def test_hold_silences_the_held_side_and_resume_brings_the_tone_back(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory()
    call, alice_events, _, bob_call, bob_events, bob_heard = await answered_call(server, ua_factory)
    assert abs(heard(bob_heard) - 1000) <= 20

    await call.hold()
    assert call.held_by_us and call.phase is CallPhase.ESTABLISHED
    held = await bob_events.wait_for("call_held")
    assert isinstance(held, CallHeld) and (held.by, held.held) == ("peer", True)
    ours = await alice_events.wait_for("call_held")
    assert isinstance(ours, CallHeld) and (ours.by, ours.held) == ("us", True)
    await asyncio.sleep(0.2)  # packets already on the loopback wire
    before = received(bob_call)
    await asyncio.sleep(1.0)
    assert received(bob_call) == before  # no RTP reaches the held side
    assert call.phase is CallPhase.ESTABLISHED and bob_call.phase is CallPhase.ESTABLISHED
    assert bob_call.held_by_peer

    bob_heard.clear()
    await call.resume()
    assert not call.held and call.phase is CallPhase.ESTABLISHED
    await wait_until(lambda: not bob_call.held_by_peer, "bob taken off hold")
    await wait_until(lambda: bob_heard.loud_frames() > 25, "bob hearing alice again")
    assert abs(heard(bob_heard) - 1000) <= 20
    assert received(bob_call) > before
    assert [(e.by, e.held) for e in bob_events.of("call_held") if isinstance(e, CallHeld)] == [
        ("peer", True),
        ("peer", False),
    ]
    await settle(server)
    assert log_of(server).count("IN INVITE ") >= 4  # 2 for the call (407), hold, resume
    await call.hangup()
    await asyncio.wait_for(asyncio.shield(bob_call.ended), WAIT)


async def test_dtmf_digits_arrive_as_events(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory()
    call, _, _, bob_call, bob_events, _ = await answered_call(server, ua_factory)
    pressed: list[str] = []
    bob_call.on_dtmf = pressed.append
    call.send_dtmf("1#")
    await bob_events.wait_for("dtmf_received", 2)
    await asyncio.sleep(0.3)  # the end packets' repeats must not add digits
    digits = [e.digit for e in bob_events.of("dtmf_received") if isinstance(e, DtmfReceived)]
    assert digits == ["1", "#"] == pressed
    assert call.phase is CallPhase.ESTABLISHED
    await call.hangup()


async def test_reinvite_without_srtp_ends_the_call_with_the_downgrade_reason(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory()
    call, _, _, bob_call, bob_events, _ = await answered_call(server, ua_factory)
    # alice's phone turns SRTP off and re-offers: RTP/AVP, no a=crypto.
    setup = call._media_setup
    assert setup is not None
    setup.local = replace(setup.local, srtp=SrtpPolicy.OFF)
    with pytest.raises(CallError):
        await call.resume()
    await asyncio.wait_for(asyncio.shield(bob_call.ended), WAIT)
    assert bob_call.reason == DOWNGRADE_OFFER
    await asyncio.wait_for(asyncio.shield(call.ended), WAIT)
    assert call.reason == "the other side hung up"
    ended = bob_events.of("call_state")[-1]
    assert ended.to_json()["reason"] == (
        "the other side tried to turn off encryption (re-INVITE without SRTP)"
    )
    assert bob_call.media is None
