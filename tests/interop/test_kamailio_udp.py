"""The softphone's UserAgent registering with a real Kamailio over UDP (``sip:`` accounts).

Kamailio comes from the ``kamailio_factory`` fixture (skips on a developer machine without
Kamailio, fails under CI=true); what it saw is read from its log ("IN REGISTER ... /udp") and
its location table. The harness's config loads no ``stun`` module, so Kamailio does not answer
STUN Binding requests: the UA finds that out and keeps the binding alive by refreshing only
(RFC 5626 §4.4.2 keep-alives need the registrar's STUN). Waits are bounded, never timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from softphone.transport.flow import UDPFlow
from softphone.ua.account import Account, ResolveEntry
from softphone.ua.registration import RegistrationError, RegistrationState
from softphone.ua.useragent import Backoff, UserAgent
from tests.interop.helpers import PASSWORD, USER, contacts, log_of, settle
from tests.interop.kamailio import KamailioServer
from tests.ua.test_registration import WAIT, EventLog, nc_of
from tests.ua.test_udp import LossyRelay

pytestmark = pytest.mark.interop


def udp_account(server: KamailioServer, port: int | None = None, **extra: Any) -> Account:
    port = port or server.udp_port
    return Account(
        aor=f"sip:{USER}@{server.domain}",
        registrar=f"sip:{server.domain}:{port};transport=udp",
        resolve=(ResolveEntry(server.domain, port, "127.0.0.1"),),
        **extra,
    )


async def until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


@pytest.fixture
async def ua_factory(tmp_path: Path) -> AsyncIterator[Callable[..., UserAgent]]:
    """Overrides tests/interop/conftest.py's: plain UDP has no CA, so no anchors."""
    made: list[UserAgent] = []

    def make(account: Account, **options: Any) -> UserAgent:
        options.setdefault("pin_store_path", tmp_path / "pins.json")
        options.setdefault("password", PASSWORD)
        options.setdefault("anchors", ())
        options.setdefault("backoff", Backoff(base=0.2, cap=2.0))
        ua = UserAgent(account, **options)
        made.append(ua)
        return ua

    yield make
    for ua in made:
        await ua.close()


async def test_register_refresh_unregister_over_udp(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory(algorithm="SHA-256")
    events = EventLog()
    delays = iter([0.3])  # the first refresh soon (the timer path), later ones in an hour
    ua = ua_factory(
        udp_account(server),
        on_event=events,
        refresh_after=lambda _: next(delays, 3600.0),
        keepalive_interval=0.05,
        pong_timeout=1.0,
    )
    binding = await ua.register()
    assert binding.round_trips == 2  # REGISTER/401 + REGISTER/200, no connection set-up
    assert binding.algorithm == "SHA-256"
    flow = ua.flow
    assert isinstance(flow, UDPFlow)
    sent: list[Any] = []
    send = flow.send

    def recording(message: Any) -> None:
        sent.append(message)
        send(message)

    flow.send = recording  # type: ignore[method-assign]
    registered = (await events.wait_for("registered")).to_json()
    assert registered["transport"] == "udp"
    found = await contacts(server)
    assert len(found) == 1 and "transport=udp" in found[0]
    await settle(server)
    assert f"IN REGISTER sip:{server.domain}" in log_of(server)
    assert "/udp" in log_of(server)

    await events.wait_for("registered", count=2)
    assert ua.flow is flow and not flow.is_closed  # the refresh went on the same socket
    assert len(sent) == 1 and nc_of(sent[0]) == "00000002"  # cached nonce, pre-emptively
    assert ua.binding is not None and ua.binding.round_trips == 1

    # Kamailio (no stun module here) never answers the STUN keep-alive: the flow is not
    # declared dead for it; the refresh REGISTERs alone keep the binding.
    await until(lambda: flow.stun_supported is False)
    assert not flow.is_closed and flow.mapped_address is None
    assert len(await contacts(server)) == 1

    await ua.unregister()
    assert await contacts(server) == []
    assert ua.state is RegistrationState.UNREGISTERED


async def test_first_register_lost_is_retransmitted_and_kamailio_registers(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory()
    relay = await LossyRelay(("127.0.0.1", server.udp_port), drop_up=frozenset({1})).start()
    try:
        ua = ua_factory(udp_account(server, relay.port, outbound=False))
        binding = await ua.register()
        assert binding.weak  # MD5 challenges by default
        assert len(relay.dropped) == 1 and relay.up[1] == relay.dropped[0]  # Timer E resend
        assert len(await contacts(server)) == 1
        await settle(server)
        assert log_of(server).count("IN REGISTER ") == 2  # the resend and the answer to 401
    finally:
        relay.close()


async def test_wrong_password_over_udp_fails_once(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory()
    ua = ua_factory(udp_account(server), password="wrong-password")
    with pytest.raises(RegistrationError) as info:
        await ua.register()
    assert info.value.status_code == 401 and not info.value.retryable
    await settle(server)
    assert log_of(server).count("IN REGISTER ") == 2
    assert await contacts(server) == []


async def test_sips_account_never_goes_to_kamailio_over_udp(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory()
    account = Account(
        aor=f"sips:{USER}@{server.domain}",
        registrar=f"sips:{server.domain}:{server.udp_port};transport=udp",
        resolve=(ResolveEntry(server.domain, server.udp_port, "127.0.0.1"),),
    )
    ua = ua_factory(account)
    with pytest.raises(RegistrationError) as info:
        await ua.register()
    assert "transport=udp" in info.value.reason
    await settle(server)
    assert "IN REGISTER" not in log_of(server)
