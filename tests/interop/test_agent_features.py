"""``softphone agent`` with ``--dtmf``, ``--hold-after``/``--resume-after`` and ``--keying``: a
real agent process (alice) calls a UserAgent (bob, in the test's loop) through a real Kamailio
over TLS (tests/interop/kamailio.py). bob sees the digits (RFC 4733) and the hold and resume
(RFC 3264 §8.4); the agent prints ``call_held``, ``dtmf_received`` (bob presses a key back) and
``media_started`` with the keying asked for. Waits are bounded, never timed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from softphone.media.tone import ToneSource
from softphone.ua.call import AUDIO_WORDS, Call, CallPhase
from softphone.ua.events import CallHeld, DtmfReceived
from softphone.ua.useragent import UserAgent
from tests.interop.helpers import account, wait_until
from tests.interop.kamailio import DEFAULT_USERS, KamailioServer
from tests.interop.test_agent_call import agent_runner, of, write_account
from tests.ua.test_registration import WAIT, EventLog

__all__ = ["agent_runner"]  # the fixture, shared with test_agent_call.py

pytestmark = pytest.mark.interop


async def bob_answering(
    server: KamailioServer, ua_factory: Callable[..., UserAgent], tmp_path: Path
) -> tuple[UserAgent, EventLog, list[Call]]:
    events, incoming = EventLog(), []

    def takes(call: Call) -> None:
        call.source = ToneSource(440)
        incoming.append(call)

    bob = ua_factory(
        account(server, "bob"),
        on_event=events,
        password=DEFAULT_USERS["bob"],
        pin_store_path=tmp_path / "bob-pins.json",
        auto_answer=True,
        on_incoming_call=takes,
    )
    await bob.register()
    return bob, events, incoming


async def test_agent_sends_dtmf_holds_resumes_and_prints_what_the_peer_does(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    agent_runner: Callable[..., Any],
    tmp_path: Path,
) -> None:
    server = kamailio_factory()
    _bob, bob_events, incoming = await bob_answering(server, ua_factory, tmp_path)
    alice = await agent_runner(
        "alice",
        "--account",
        str(write_account(tmp_path, server, "alice")),
        "--call",
        f"sips:bob@{server.domain}",
        "--dtmf",
        "12#",
        "--dtmf-after",
        "0.3",
        "--hold-after",
        "1.5",
        "--resume-after",
        "0.5",
        "--hangup-after",
        "4",
    )
    await alice.next_event("media_started")
    await wait_until(lambda: bool(incoming), "bob's call")
    bob_call = incoming[0]
    await bob_call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)

    def digits() -> list[str]:
        return [e.digit for e in bob_events.events if isinstance(e, DtmfReceived)]

    await wait_until(lambda: digits() == ["1", "2", "#"], "bob getting 1 2 #")
    bob_call.send_dtmf("9")
    pressed = await alice.next_event("dtmf_received")
    assert pressed["digit"] == "9"
    held = await alice.next_event("call_held")
    assert (held["by"], held["held"]) == ("us", True)
    resumed = await alice.next_event("call_held")
    assert (resumed["by"], resumed["held"]) == ("us", False)
    assert await alice.finish() == 0
    by_peer = [(e.by, e.held) for e in bob_events.events if isinstance(e, CallHeld)]
    assert by_peer == [("peer", True), ("peer", False)]
    await asyncio.wait_for(asyncio.shield(bob_call.ended), WAIT)


async def test_agent_keying_option_overrides_the_account(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    agent_runner: Callable[..., Any],
    tmp_path: Path,
) -> None:
    server = kamailio_factory()
    await bob_answering(server, ua_factory, tmp_path)
    alice = await agent_runner(
        "alice",
        "--account",
        str(write_account(tmp_path, server, "alice")),
        "--call",
        f"sips:bob@{server.domain}",
        "--keying",
        "dtls-srtp",
        "--hangup-after",
        "1",
    )
    started = await alice.next_event("media_started")
    assert started["keying"] == "dtls-srtp"
    assert started["audio"] == AUDIO_WORDS["dtls-hops"]
    assert await alice.finish() == 0
    assert of(alice, "call_state")[-1]["reason"] == "hung up"
