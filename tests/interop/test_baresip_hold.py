"""Hold and resume between our UserAgent and a real baresip (Debian 1.0) through a real
Kamailio over TLS (RFC 3264 §8.4, RFC 6337): baresip's ``hold``/``resume`` commands (ctrl_tcp)
send re-INVITEs with ``a=sendonly``/``a=sendrecv`` that our UA answers and reports as held by
the peer; our ``Call.hold()``/``resume()`` re-INVITEs are answered by baresip. SRTP (SDES)
throughout; the harness is tests/interop/baresip.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from softphone.media.tone import ToneSource
from softphone.ua.call import Call, CallPhase
from softphone.ua.events import CallHeld
from softphone.ua.useragent import UserAgent
from tests.interop.baresip import BaresipPeer
from tests.interop.helpers import Recorder, account, heard, wait_until
from tests.interop.kamailio import KamailioServer
from tests.interop.test_baresip_call import BARESIP_TONE, OUR_TONE, baresip_factory  # noqa: F401
from tests.ua.test_registration import WAIT, EventLog

pytestmark = pytest.mark.interop


def held(events: EventLog) -> list[tuple[str, bool]]:
    return [(e.by, e.held) for e in events.of("call_held") if isinstance(e, CallHeld)]


async def carol_calls_alice(
    server: KamailioServer,
    ua_factory: Callable[..., UserAgent],
    baresip_factory: Callable[..., BaresipPeer],  # noqa: F811
) -> tuple[BaresipPeer, Call, EventLog, Recorder]:
    carol = await asyncio.to_thread(baresip_factory, server, tone=BARESIP_TONE)
    events, alice_heard = EventLog(), Recorder()
    incoming: list[Call] = []

    def alice_takes(c: Call) -> None:
        c.source, c.sink = ToneSource(OUR_TONE), alice_heard
        incoming.append(c)

    alice = ua_factory(
        account(server, "alice"), on_event=events, auto_answer=True, on_incoming_call=alice_takes
    )
    await alice.register()
    await asyncio.to_thread(carol.dial, f"sip:alice@{server.domain}")
    await asyncio.to_thread(carol.wait_event, "CALL_ESTABLISHED")
    await wait_until(lambda: len(incoming) == 1, "the incoming call")
    call = incoming[0]
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await wait_until(lambda: alice_heard.loud_frames() > 25, "alice hearing carol")
    return carol, call, events, alice_heard


async def test_baresip_holds_us_and_resumes(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    baresip_factory: Callable[..., BaresipPeer],  # noqa: F811
) -> None:
    server = kamailio_factory()
    carol, call, events, alice_heard = await carol_calls_alice(server, ua_factory, baresip_factory)
    reply = await asyncio.to_thread(carol.command, "hold")
    assert reply.get("ok"), reply
    await events.wait_for("call_held")
    assert held(events) == [("peer", True)] and call.held_by_peer
    assert call.phase is CallPhase.ESTABLISHED
    assert call.media is not None and not call.media.negotiated.direction.sends
    sent = call.media.packets_sent
    await asyncio.sleep(0.5)
    assert call.media.packets_sent == sent  # we send nothing to a phone that holds us

    reply = await asyncio.to_thread(carol.command, "resume")
    assert reply.get("ok"), reply
    await events.wait_for("call_held", 2)
    assert held(events) == [("peer", True), ("peer", False)] and not call.held
    await wait_until(lambda: call.media is not None and call.media.packets_sent > sent, "RTP")
    alice_heard.clear()
    await wait_until(lambda: alice_heard.loud_frames() > 25, "alice hearing carol again")
    assert abs(heard(alice_heard) - BARESIP_TONE) <= 20
    await call.hangup()
    await asyncio.to_thread(carol.wait_event, "CALL_CLOSED")


async def test_we_hold_baresip_and_resume(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    baresip_factory: Callable[..., BaresipPeer],  # noqa: F811
) -> None:
    server = kamailio_factory()
    carol, call, events, alice_heard = await carol_calls_alice(server, ua_factory, baresip_factory)
    await call.hold()
    assert held(events) == [("us", True)] and call.phase is CallPhase.ESTABLISHED
    assert call.media is not None
    await asyncio.sleep(0.3)
    got = call.media.statistics().packets_received
    await asyncio.sleep(1.0)
    assert call.media.statistics().packets_received == got  # baresip answered recvonly
    await call.resume()
    assert not call.held
    alice_heard.clear()
    await wait_until(lambda: alice_heard.loud_frames() > 25, "alice hearing carol again")
    assert abs(heard(alice_heard) - BARESIP_TONE) <= 20
    await call.hangup()
    await asyncio.to_thread(carol.wait_event, "CALL_CLOSED")
