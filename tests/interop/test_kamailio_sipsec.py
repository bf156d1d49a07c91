"""sipsec calls (draft-gurbani-sip-sipsec-01 §6.4-6.6) through a real Kamailio, which does not
implement sipsec: the caller must say so in words, within its handshake timeout, never hang.

Two real UserAgents, alice and bob, each with a fresh self-signed identity certificate for
``sip:user@example.test``, register with a real Kamailio over TLS (tests/interop/kamailio.py).

* Stock configuration (``sanity_check`` with the Proxy-Require check, no extension listed):
  Kamailio answers the CONNECT itself with ``420 Bad Extension`` / ``Unsupported: sipsec``
  (RFC 3261 §8.2.2.3, §20.29) and the caller reports that the proxy "does not support
  end-to-end (sipsec) calls (420 …)".
* ``modparam("sanity", "proxy_require", "sipsec")``: Kamailio accepts the option tag, looks
  bob up, forwards the CONNECT over bob's flow and relays bob's 200 back (draft §6.6 steps
  1-9) but then goes on parsing the connection as SIP instead of splicing bytes (§6.6 "the
  proxy MUST leave the TCP connection ... open" and relay transparently). The caller's
  nested ClientHello goes nowhere: it must end with exactly "the proxy forwarded the CONNECT
  but did not go transparent", bob's side ends cleanly too, and both phones register again
  on new connections so that an ordinary ``sips:`` call works right afterwards.

Waits are bounded (WAIT), never timed: the test asserts that the call ended, not how fast.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from softphone.security.identity import IdentityMaterial, new_identity
from softphone.ua.account import SipsecAccept
from softphone.ua.call import CallPhase
from softphone.ua.events import TunnelState
from softphone.ua.registration import RegistrationState
from softphone.ua.sipsec import SipsecCallError
from softphone.ua.useragent import UserAgent
from tests.interop.helpers import account, log_of, settle
from tests.interop.kamailio import DEFAULT_USERS, KamailioServer
from tests.ua.test_registration import WAIT, EventLog

pytestmark = pytest.mark.interop

HANDSHAKE_TIMEOUT = 2.0
NOT_TRANSPARENT = "the proxy forwarded the CONNECT but did not go transparent"


def identity(server: KamailioServer, user: str) -> IdentityMaterial:
    return new_identity(f"sip:{user}@{server.domain}", now=dt.datetime.now(dt.UTC))


async def sipsec_pair(
    server: KamailioServer, ua_factory: Callable[..., UserAgent]
) -> tuple[UserAgent, EventLog, UserAgent, EventLog]:
    """alice and bob registered at ``server``, with identities; bob accepts tunnels and
    answers calls by himself."""
    options: dict[str, Any] = {
        "sipsec_handshake_timeout": HANDSHAKE_TIMEOUT,
        "sipsec_accept": SipsecAccept.ACCEPT,
    }
    alice_events, bob_events = EventLog(), EventLog()
    alice = ua_factory(
        account(server, "alice", **options),
        on_event=alice_events,
        identity=identity(server, "alice"),
    )
    bob = ua_factory(
        account(server, "bob", **options),
        on_event=bob_events,
        password=DEFAULT_USERS["bob"],
        identity=identity(server, "bob"),
        auto_answer=True,
    )
    await asyncio.gather(alice.register(), bob.register())
    return alice, alice_events, bob, bob_events


def tunnel_states(events: EventLog) -> list[TunnelState]:
    return [e for e in events.events if isinstance(e, TunnelState)]


async def wait_reregistered(ua: UserAgent, old: object) -> None:
    async with asyncio.timeout(WAIT):
        while not (
            ua.state is RegistrationState.REGISTERED
            and ua.flow is not None
            and ua.flow is not old
            and not ua.flow.is_closed
        ):
            await asyncio.sleep(0.05)


async def ordinary_call_works(alice: UserAgent, server: KamailioServer) -> None:
    call = await alice.call(f"sips:bob@{server.domain}")
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    assert call.dialog is not None and call.dialog.secure
    await call.hangup()
    assert call.phase is CallPhase.ENDED and call.reason == "hung up"


async def test_stock_kamailio_answers_connect_with_420_and_the_caller_says_so(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory(proxy_require="check")
    alice, alice_events, _bob, bob_events = await sipsec_pair(server, ua_factory)
    flow = alice.flow

    with pytest.raises(SipsecCallError) as caught:
        await asyncio.wait_for(alice.call(f"sipsec:bob@{server.domain}"), WAIT)
    reason = caught.value.reason
    assert "does not support end-to-end (sipsec) calls (420 " in reason, reason
    assert "unsupported: sipsec" in reason.lower(), reason
    assert f"sips:bob@{server.domain}" in reason  # the way out, in words
    assert caught.value.fallback_ok  # a sips: call could still work (with consent)
    failed = tunnel_states(alice_events)[-1]
    assert failed.state == "failed" and failed.reason == reason

    # Kamailio answered it itself: bob never saw a CONNECT, alice keeps her flow.
    await settle(server)
    log = log_of(server)
    # (sanity_check returns 0 after sending its 420: the script stops there, unlogged)
    assert "IN CONNECT " in log and "OUT CONNECT " not in log
    assert not tunnel_states(bob_events)
    assert alice.flow is flow and flow is not None and not flow.is_closed
    assert not flow.detached
    await ordinary_call_works(alice, server)


async def test_kamailio_forwards_connect_but_does_not_go_transparent(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory(proxy_require="allow-sipsec")
    assert 'modparam("sanity", "proxy_require", "sipsec")' in server.cfg_path.read_text()
    alice, alice_events, bob, bob_events = await sipsec_pair(server, ua_factory)
    alice_flow, bob_flow = alice.flow, bob.flow

    with pytest.raises(SipsecCallError) as caught:
        await asyncio.wait_for(alice.call(f"sipsec:bob@{server.domain}"), WAIT)
    reason = caught.value.reason
    alice_tunnel = tunnel_states(alice_events)
    assert [t.state for t in alice_tunnel] == ["connecting", "failed"]
    # Kamailio reads alice's ClientHello as the start of a SIP message. Usually it waits for
    # the end of the headers and alice's handshake times out: "did not go transparent". When
    # the ClientHello's random bytes hold what ends a header block (a blank line), Kamailio
    # parses it, fails ("bad message", in its log only then) and closes her connection (one
    # CI run at stop 14; none of its parse errors in 6 passing runs). From alice's side that is
    # a tunnel closed with nothing back, which a transparent proxy whose callee hung up would
    # also show, so she does not claim to know which it was.
    if reason.startswith(NOT_TRANSPARENT):
        assert alice_tunnel[-1].proxy_transparent is False
    else:
        assert reason.startswith("the tunnel closed before the end-to-end TLS handshake"), reason
        assert alice_tunnel[-1].proxy_transparent is None
    assert caught.value.fallback_ok

    # bob accepted (200), then saw no end-to-end TLS either: his side ends, cleanly.
    async with asyncio.timeout(WAIT):
        while not any(t.state == "failed" for t in tunnel_states(bob_events)):
            await bob_events.wait_for("tunnel_state", len(tunnel_states(bob_events)) + 1)
    bob_failed = [t for t in tunnel_states(bob_events) if t.state == "failed"][-1]
    assert bob_failed.direction == "incoming"
    assert bob_failed.reason.startswith(NOT_TRANSPARENT) or "tunnel closed" in bob_failed.reason
    assert alice.calls == [] and bob.calls == []

    # Kamailio did forward the CONNECT and relay the 200 (draft §6.6 steps 1-9).
    await settle(server)
    log = log_of(server)
    assert "IN CONNECT " in log and "OUT CONNECT " in log
    assert "RPL 200 " in log

    # Both register again on new connections; an ordinary sips: call works.
    await asyncio.gather(wait_reregistered(alice, alice_flow), wait_reregistered(bob, bob_flow))
    assert await asyncio.to_thread(server.registered_contacts, "bob")
    await ordinary_call_works(alice, server)
