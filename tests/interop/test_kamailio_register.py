"""The softphone's UserAgent registering with a real Kamailio (TLS + Digest) on 127.0.0.1.

Kamailio comes from the ``kamailio_factory`` fixture (tests/interop/conftest.py: skips on a
developer machine without Kamailio, fails under CI=true). What Kamailio saw is read from its
log (the config xlogs "IN <method>" for every request and "REGISTER challenge" for every 401)
and from its location table (``registered_contacts``). Trust answers come from the
:class:`~tests.ua.test_registration.TrustAnswers` fixture. Waits are bounded, never timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from softphone.security.trust import TrustDecision
from softphone.sip.message import Message, Request
from softphone.storage import load_pin_store
from softphone.ua.events import TrustRequired
from softphone.ua.registration import RegistrationError, RegistrationState
from softphone.ua.useragent import UserAgent
from tests.interop.helpers import account_for, contacts, log_of, settle
from tests.interop.kamailio import KamailioServer
from tests.ua.test_registration import WAIT, EventLog, TrustAnswers, nc_of

pytestmark = pytest.mark.interop


def registers_seen(server: KamailioServer) -> int:
    return log_of(server).count("IN REGISTER ")


def challenges_sent(server: KamailioServer) -> int:
    return log_of(server).count("REGISTER challenge for")


async def wait_until(predicate: Callable[[], Any], timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


# --- register, refresh on the same flow, unregister ---------------------------------------


async def test_register_refresh_on_same_flow_and_unregister(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory(algorithm="SHA-256")
    events = EventLog()
    # Kamailio grants what we ask (600 s): the first refresh is brought forward to 0.5 s to
    # exercise the timer path, later ones are left at an hour.
    delays = iter([0.5])
    ua = ua_factory(
        account_for(server), on_event=events, refresh_after=lambda _: next(delays, 3600.0)
    )
    binding = await ua.register()
    assert binding.round_trips == 4  # TCP + TLS 1.3 + REGISTER/401 + REGISTER/200
    assert binding.algorithm == "SHA-256" and not binding.weak
    assert binding.expires > 0
    registered = (await events.wait_for("registered")).to_json()
    assert registered["registrar_fingerprint"] == server.server_cert_fingerprint_hex
    assert len(await contacts(server)) == 1
    flow = ua.flow
    assert flow is not None and flow.tls_version == "TLSv1.3"
    sent: list[Message] = []
    send = flow.send

    def recording(message: Message) -> None:
        sent.append(message)
        send(message)

    flow.send = recording  # type: ignore[method-assign]

    await events.wait_for("registered", count=2)
    assert ua.flow is flow and not flow.is_closed  # the refresh went on the same connection
    assert ua.binding is not None and ua.binding.round_trips == 1
    assert len(sent) == 1 and isinstance(sent[0], Request)
    assert nc_of(sent[0]) == "00000002"  # the cached nonce, pre-emptively
    await settle(server)
    assert registers_seen(server) == 3
    assert challenges_sent(server) == 1  # the refresh needed no new challenge

    await ua.unregister()
    assert await contacts(server) == []
    assert events.names()[-1] == "unregistered"


async def test_md5_registrar_is_accepted_and_marked_weak(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory()  # MD5 challenges, no algorithm= parameter
    ua = ua_factory(account_for(server))
    binding = await ua.register()
    assert binding.algorithm == "MD5" and binding.weak


async def test_wrong_password_fails_without_a_loop(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory()
    events = EventLog()
    ua = ua_factory(account_for(server), password="wrong-password", on_event=events)
    with pytest.raises(RegistrationError) as info:
        await ua.register()
    assert info.value.status_code == 401 and not info.value.retryable
    failed = (await events.wait_for("registration_failed")).to_json()
    assert failed["retrying"] is False
    await settle(server)
    assert registers_seen(server) == 2
    assert ua.state is RegistrationState.FAILED
    assert await contacts(server) == []


# --- certificates: decided before the first REGISTER ----------------------------------------


@pytest.mark.parametrize(
    ("profile", "problem"),
    [
        ("selfsigned", "self-signed"),
        ("unknownca", "unknown-ca"),
        ("wrongname", "name-mismatch"),
        ("expired", "expired"),
    ],
)
async def test_untrusted_certificate_is_decided_before_any_register(
    profile: str,
    problem: str,
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
) -> None:
    server = kamailio_factory(cert=profile)
    answers = TrustAnswers(TrustDecision.ACCEPT_ONCE, hold=True)
    events = EventLog()
    ua = ua_factory(account_for(server), answerer=answers, on_event=events)
    task = asyncio.ensure_future(ua.register())
    async with asyncio.timeout(WAIT):
        await answers.question_seen.wait()
    await settle(server)
    assert registers_seen(server) == 0  # the question is pending: no REGISTER yet
    trust = events.of("trust_required")[0]
    assert isinstance(trust, TrustRequired)
    assert problem in [p.problem for p in trust.problems]
    assert trust.fingerprint == server.server_cert_fingerprint_hex
    answers.release.set()
    async with asyncio.timeout(WAIT):
        await task
    assert len(await contacts(server)) == 1


@pytest.mark.parametrize("profile", ["selfsigned", "wrongname"])
async def test_reject_does_not_register(
    profile: str,
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
) -> None:
    server = kamailio_factory(cert=profile)
    events = EventLog()
    ua = ua_factory(account_for(server), trust_policy="reject", on_event=events)
    with pytest.raises(RegistrationError):
        await ua.register()
    assert events.names() == ["trust_required", "registration_failed"]
    await settle(server)
    assert registers_seen(server) == 0
    assert await contacts(server) == []


async def test_always_trust_then_next_time_without_asking_then_changed_is_loud(
    tmp_path: Path,
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
) -> None:
    server = kamailio_factory(cert="selfsigned")
    first = ua_factory(account_for(server), answerer=TrustAnswers(TrustDecision.ALWAYS_TRUST))
    await first.register()
    await first.close()
    assert len(load_pin_store(tmp_path / "pins.json")) == 1

    events = EventLog()
    second = ua_factory(account_for(server), trust_policy="reject", on_event=events)
    await second.register()
    assert "trust_required" not in events.names()
    await second.close()

    # Another certificate for the same name (as a man in the middle would present).
    await asyncio.to_thread(server.restart, cert="unknownca")
    loud = EventLog()
    third = ua_factory(account_for(server), trust_policy="accept-once", on_event=loud)
    with pytest.raises(RegistrationError):
        await third.register()
    warning = loud.of("trust_required")[0]
    assert isinstance(warning, TrustRequired)
    assert warning.changed and warning.problems[0].problem == "changed-since-pinned"
    await settle(server)
    assert registers_seen(server) == 0


# --- the flow breaks: registered again without anyone doing anything ------------------------


async def test_kamailio_restart_leads_to_reregistration(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory()
    events = EventLog()
    ua = ua_factory(account_for(server), on_event=events)
    await ua.register()
    # usrloc is in memory: the restart forgets the binding, so a contact found afterwards was
    # registered with the new process, by the UA on its own (the loop keeps running meanwhile).
    await asyncio.to_thread(server.restart)
    await events.wait_for("connection_lost")
    await events.wait_for("connection_restored")
    await events.wait_for("registered", count=2)

    async def bound() -> bool:
        return len(await contacts(server)) == 1

    await wait_until(bound)
    assert ua.state is RegistrationState.REGISTERED
    assert "REGISTER ok" in log_of(server)  # the log of the restarted process only
