"""Registration end to end: UserAgent against our own registrar over real TLS on 127.0.0.1.

Every trust answer comes from :class:`TrustAnswers` (the fixture that answers
TrustDecisionRequired); every count of what the registrar saw comes from :func:`record`, which
wraps the registrar's sans-I/O core. Waits are bounded (:data:`WAIT`), never timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from softphone.security.certificates import Identity as PinIdentity
from softphone.security.trust import TrustDecision, TrustDecisionRequired
from softphone.server.config import RegistrarConfig
from softphone.server.registrar import Registrar, running_registrar
from softphone.sip.digest import DigestClient, parse_credentials
from softphone.sip.message import Request, Response
from softphone.storage import load_pin_store
from softphone.ua.account import Account, ResolveEntry
from softphone.ua.events import Event, TrustRequired
from softphone.ua.registration import (
    Failed,
    Registration,
    RegistrationError,
    RegistrationState,
    Retry,
    refresh_delay,
)
from softphone.ua.useragent import Backoff, UserAgent
from tests.transport import certs

DOMAIN = "example.test"
USER = "alice"
PASSWORD = "alice-secret-1"
WAIT = 20.0  # upper bound for any wait: a failure, never a measurement


# --- fixtures shared with test_agent.py and the Kamailio interop tests ----------------------


class EventLog:
    """Collects the UA's events; :meth:`wait_for` waits (bounded) for the n-th of a kind."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def names(self) -> list[str]:
        return [e.name for e in self.events]

    def of(self, name: str) -> list[Event]:
        return [e for e in self.events if e.name == name]

    async def wait_for(self, name: str, count: int = 1, timeout: float = WAIT) -> Event:
        async with asyncio.timeout(timeout):
            while len(self.of(name)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.of(name)[count - 1]


class TrustAnswers:
    """The trust fixture: answers each question with the next planned decision, once
    :attr:`release` is set (``hold=True`` keeps the question pending until the test says)."""

    def __init__(self, *decisions: TrustDecision, hold: bool = False) -> None:
        self.planned = list(decisions)
        self.asked: list[TrustDecisionRequired] = []
        self.release = asyncio.Event()
        self.question_seen = asyncio.Event()
        if not hold:
            self.release.set()

    async def __call__(self, required: TrustDecisionRequired) -> TrustDecision:
        self.asked.append(required)
        self.question_seen.set()
        await self.release.wait()
        return self.planned.pop(0) if self.planned else TrustDecision.REJECT


@dataclass
class Exchanges:
    """What the registrar's core received and answered, in order."""

    items: list[tuple[Request, Response | None]] = field(default_factory=list)

    @property
    def registers(self) -> list[Request]:
        return [r for r, _ in self.items if r.method == "REGISTER"]

    @property
    def challenges(self) -> int:
        return sum(1 for _, resp in self.items if resp is not None and resp.status_code == 401)


def record(registrar: Registrar) -> Exchanges:
    """Wrap the registrar core's handle_request to see every request and its answer."""
    exchanges = Exchanges()
    handle = registrar.core.handle_request

    def recording(request: Request, now: float, **kwargs: Any) -> Response | None:
        response = handle(request, now, **kwargs)
        exchanges.items.append((request, response))
        return response

    registrar.core.handle_request = recording  # type: ignore[method-assign]
    return exchanges


@dataclass
class Lab:
    """A test CA and server certificates for example.test."""

    ca: certs.Identity
    ca_file: Path
    good: certs.Identity
    other_good: certs.Identity  # same CA, same name, another key: "a different certificate"
    selfsigned: certs.Identity
    other_selfsigned: certs.Identity
    unknownca: certs.Identity
    wrongname: certs.Identity
    expired: certs.Identity


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    ca = certs.make_ca("Softphone Test CA")
    other_ca = certs.make_ca("Nobody's CA")
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca_file.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    return Lab(
        ca=ca,
        ca_file=ca_file,
        good=certs.issue(ca, DOMAIN),
        other_good=certs.issue(ca, DOMAIN),
        selfsigned=certs.self_signed(DOMAIN),
        other_selfsigned=certs.self_signed(DOMAIN),
        unknownca=certs.issue(other_ca, DOMAIN),
        wrongname=certs.issue(ca, "wrong.test"),
        expired=certs.issue(ca, DOMAIN, expired=True),
    )


RegistrarFactory = Callable[..., Any]


@pytest.fixture
async def registrar_factory() -> AsyncIterator[Callable[..., Any]]:
    """``await make(identity, **config)`` → (running Registrar, Exchanges); closed at the end."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(identity: certs.Identity, **config: Any) -> tuple[Registrar, Exchanges]:
            cfg = RegistrarConfig(
                domain=DOMAIN,
                users={USER: PASSWORD},
                certificate_chain=identity.chain,
                private_key=identity.key,
                **config,
            )
            reg = await stack.enter_async_context(running_registrar(cfg))
            return reg, record(reg)

        yield make


def account_for(port: int, ca_file: Path | None, **extra: Any) -> Account:
    return Account(
        aor=f"sips:{USER}@{DOMAIN}",
        registrar=f"sips:{DOMAIN}:{port}",
        resolve=(ResolveEntry(DOMAIN, port, "127.0.0.1"),),
        ca_file=ca_file,
        **extra,
    )


@pytest.fixture
async def ua_factory(tmp_path: Path) -> AsyncIterator[Callable[..., UserAgent]]:
    """``make(account, **options)`` → a UserAgent (system anchors off: only the lab CA),
    pin store in tmp_path; every UA is closed at the end."""
    made: list[UserAgent] = []

    def make(account: Account, **options: Any) -> UserAgent:
        options.setdefault("pin_store_path", tmp_path / "pins.json")
        options.setdefault("password", PASSWORD)
        if "anchors" not in options:
            ca_file = account.ca_file
            options["anchors"] = (
                tuple(x509.load_pem_x509_certificates(ca_file.read_bytes())) if ca_file else ()
            )
        options.setdefault("backoff", Backoff(base=0.05, cap=0.5))
        ua = UserAgent(account, **options)
        made.append(ua)
        return ua

    yield make
    for ua in made:
        await ua.close()


def nc_of(request: Request) -> str | None:
    values = request.headers.get_all("Authorization")
    if not values:
        return None
    creds = parse_credentials(values[0])
    return f"{creds.nc:08x}" if creds.nc is not None else None


# --- registering, refreshing, unregistering -------------------------------------------------


async def test_register_refresh_on_same_flow_with_cached_nonce_then_unregister(
    lab: Lab, registrar_factory: RegistrarFactory, ua_factory: Callable[..., UserAgent]
) -> None:
    # The registrar grants 2 s whatever we ask: the refresh timer (half of it) fires soon.
    reg, seen = await registrar_factory(lab.good, min_expires=1, default_expires=2, max_expires=2)
    events = EventLog()
    ua = ua_factory(account_for(reg.tls_port, lab.ca_file), on_event=events)

    binding = await ua.register()
    assert binding.expires == 2
    assert binding.algorithm == "SHA-256" and not binding.weak
    registered = await events.wait_for("registered")
    assert registered.to_json()["registrar_fingerprint"] == reg.fingerprint
    assert len(reg.bindings(f"sips:{USER}@{DOMAIN}")) == 1
    flow = ua.flow
    assert flow is not None

    await events.wait_for("registered", count=2)  # the timer-driven refresh
    assert ua.flow is flow and not flow.is_closed
    # REGISTER → 401, REGISTER (nc 1) → 200, refresh REGISTER (nc 2, same nonce) → 200.
    assert [r.status_code for _, r in seen.items if r is not None][:3] == [401, 200, 200]
    assert seen.challenges == 1
    _, second, refresh = seen.registers[:3]
    assert nc_of(second) == "00000001"
    assert nc_of(refresh) == "00000002"
    assert refresh.top_via.port == second.top_via.port  # same connection
    assert refresh.call_id == second.call_id and refresh.cseq.seq == second.cseq.seq + 1
    assert "reg-id=1" in (refresh.headers.get("Contact") or "")
    assert "+sip.instance=" in (refresh.headers.get("Contact") or "")
    assert "outbound" in (refresh.headers.get("Supported") or "")

    await ua.unregister()
    assert reg.bindings(f"sips:{USER}@{DOMAIN}") == []
    assert seen.registers[-1].headers.get("Expires") == "0"
    assert events.names()[-1] == "unregistered"
    assert ua.state is RegistrationState.UNREGISTERED


async def test_cold_registration_is_four_round_trips_and_a_refresh_one(
    lab: Lab, registrar_factory: RegistrarFactory, ua_factory: Callable[..., UserAgent]
) -> None:
    reg, seen = await registrar_factory(lab.good)
    ua = ua_factory(account_for(reg.tls_port, lab.ca_file))
    cold = await ua.register()
    # TCP 1 + TLS 1.3 1 + REGISTER/401 1 + REGISTER/200 1 (ARCHITECTURE.md floor).
    assert cold.round_trips == 4
    assert ua.flow is not None and ua.flow.tls_version == "TLSv1.3"
    warm = await ua.refresh()
    assert warm.round_trips == 1
    assert seen.challenges == 1


async def test_close_unregisters(
    lab: Lab, registrar_factory: RegistrarFactory, ua_factory: Callable[..., UserAgent]
) -> None:
    reg, seen = await registrar_factory(lab.good)
    events = EventLog()
    ua = ua_factory(account_for(reg.tls_port, lab.ca_file), on_event=events)
    await ua.register()
    await ua.close()
    assert reg.bindings(f"sips:{USER}@{DOMAIN}") == []
    assert seen.registers[-1].headers.get("Expires") == "0"
    assert "unregistered" in events.names()
    assert ua.flow is not None and ua.flow.is_closed


async def test_wrong_password_fails_once_and_does_not_loop(
    lab: Lab, registrar_factory: RegistrarFactory, ua_factory: Callable[..., UserAgent]
) -> None:
    reg, seen = await registrar_factory(lab.good)
    events = EventLog()
    ua = ua_factory(account_for(reg.tls_port, lab.ca_file), password="wrong", on_event=events)
    with pytest.raises(RegistrationError) as info:
        await ua.register()
    assert info.value.status_code == 401 and not info.value.retryable
    failed = (await events.wait_for("registration_failed")).to_json()
    assert failed["retrying"] is False and failed["status_code"] == 401
    assert "password" in str(failed["reason"])
    for _ in range(20):  # give a (buggy) retry loop every chance to run
        await asyncio.sleep(0)
    assert len(seen.registers) == 2
    assert ua.state is RegistrationState.FAILED
    assert "wrong" not in "".join(e.to_json_line() for e in events.events)


async def test_interval_too_brief_retries_with_min_expires(
    lab: Lab, registrar_factory: RegistrarFactory, ua_factory: Callable[..., UserAgent]
) -> None:
    reg, seen = await registrar_factory(
        lab.good, min_expires=3600, default_expires=3600, max_expires=3600
    )
    ua = ua_factory(account_for(reg.tls_port, lab.ca_file, expires=600))
    binding = await ua.register()
    assert binding.expires == 3600
    codes = [r.status_code for _, r in seen.items if r is not None]
    assert 423 in codes and codes[-1] == 200
    assert seen.registers[-1].headers.get("Expires") == "3600"


# --- the certificate decision comes before the first SIP byte -------------------------------


async def test_self_signed_asks_first_and_sends_no_register_until_answered(
    lab: Lab, registrar_factory: RegistrarFactory, ua_factory: Callable[..., UserAgent]
) -> None:
    reg, seen = await registrar_factory(lab.selfsigned)
    answers = TrustAnswers(TrustDecision.ACCEPT_ONCE, hold=True)
    events = EventLog()
    ua = ua_factory(account_for(reg.tls_port, lab.ca_file), answerer=answers, on_event=events)
    task = asyncio.ensure_future(ua.register())
    async with asyncio.timeout(WAIT):
        await answers.question_seen.wait()
    # The question is pending: the TLS connection is up, but not one SIP byte was sent.
    assert seen.items == []
    assert len(ua.gate.pending) == 1
    trust = await events.wait_for("trust_required")
    assert isinstance(trust, TrustRequired)
    assert "self-signed" in [p.problem for p in trust.problems]
    assert trust.identity and trust.fingerprint == reg.fingerprint
    assert trust.changed is False
    assert all(p.message for p in trust.problems)
    answers.release.set()
    async with asyncio.timeout(WAIT):
        await task
    assert len(seen.registers) == 2
    assert events.names().index("trust_required") < events.names().index("registered")


@pytest.mark.parametrize("profile", ["selfsigned", "unknownca", "wrongname"])
async def test_reject_policy_does_not_register(
    profile: str,
    lab: Lab,
    registrar_factory: RegistrarFactory,
    ua_factory: Callable[..., UserAgent],
) -> None:
    reg, seen = await registrar_factory(getattr(lab, profile))
    events = EventLog()
    ua = ua_factory(account_for(reg.tls_port, lab.ca_file), trust_policy="reject", on_event=events)
    with pytest.raises(RegistrationError):
        await ua.register()
    assert seen.items == []
    assert reg.bindings(f"sips:{USER}@{DOMAIN}") == []
    assert events.names() == ["trust_required", "registration_failed"]
    assert events.of("registration_failed")[0].to_json()["retrying"] is False


async def test_person_saying_no_does_not_register(
    lab: Lab, registrar_factory: RegistrarFactory, ua_factory: Callable[..., UserAgent]
) -> None:
    reg, seen = await registrar_factory(lab.wrongname)
    answers = TrustAnswers(TrustDecision.REJECT)
    ua = ua_factory(account_for(reg.tls_port, lab.ca_file), answerer=answers)
    with pytest.raises(RegistrationError) as info:
        await ua.register()
    assert "wrong.test" in info.value.reason
    assert len(answers.asked) == 1 and seen.items == []


async def test_always_trust_pins_and_the_next_run_registers_without_asking(
    tmp_path: Path,
    lab: Lab,
    registrar_factory: RegistrarFactory,
    ua_factory: Callable[..., UserAgent],
) -> None:
    reg, _ = await registrar_factory(lab.selfsigned)
    account = account_for(reg.tls_port, lab.ca_file)
    answers = TrustAnswers(TrustDecision.ALWAYS_TRUST)
    first = ua_factory(account, answerer=answers)
    await first.register()
    await first.close()
    pins = load_pin_store(tmp_path / "pins.json")
    pinned = pins.pins_for(PinIdentity.domain(DOMAIN))
    assert [p.sha256 for p in pinned] == [lab.selfsigned.cert.fingerprint(hashes.SHA256())]
    assert (tmp_path / "pins.json").stat().st_mode & 0o077 == 0

    events = EventLog()
    second = ua_factory(account, trust_policy="reject", on_event=events)  # asking would fail
    await second.register()
    assert "trust_required" not in events.names()
    assert second.state is RegistrationState.REGISTERED


async def test_changed_certificate_after_pinning_is_loud_and_accept_once_does_not_take_it(
    lab: Lab, registrar_factory: RegistrarFactory, ua_factory: Callable[..., UserAgent]
) -> None:
    reg1, _ = await registrar_factory(lab.selfsigned)
    first = ua_factory(
        account_for(reg1.tls_port, lab.ca_file),
        answerer=TrustAnswers(TrustDecision.ALWAYS_TRUST),
    )
    await first.register()
    await first.close()

    # Same name, another self-signed certificate: someone in the middle, or a re-keyed server.
    reg2, seen = await registrar_factory(lab.other_selfsigned)
    events = EventLog()
    policy_only = ua_factory(
        account_for(reg2.tls_port, lab.ca_file), trust_policy="accept-once", on_event=events
    )
    with pytest.raises(RegistrationError):
        await policy_only.register()
    trust = events.of("trust_required")[0]
    assert isinstance(trust, TrustRequired)
    assert trust.changed is True
    assert trust.problems[0].problem == "changed-since-pinned"
    assert trust.problems[0].message.startswith("Warning:")
    assert seen.items == []

    # A person (ask) may still accept it once, after seeing the loud warning.
    answers = TrustAnswers(TrustDecision.ACCEPT_ONCE)
    person = ua_factory(account_for(reg2.tls_port, lab.ca_file), answerer=answers)
    await person.register()
    assert answers.asked[0].loud


async def test_expired_certificate_is_closed_before_asking_then_reconnects(
    lab: Lab, registrar_factory: RegistrarFactory, ua_factory: Callable[..., UserAgent]
) -> None:
    reg, seen = await registrar_factory(lab.expired)
    answers = TrustAnswers(TrustDecision.ACCEPT_ONCE, hold=True)
    ua = ua_factory(account_for(reg.tls_port, lab.ca_file), answerer=answers)
    task = asyncio.ensure_future(ua.register())
    async with asyncio.timeout(WAIT):
        await answers.question_seen.wait()
        while reg.flows:  # the UA closed the connection before asking (draft A.2.1)
            await asyncio.sleep(0.01)
    assert "expired" in [p.value for p in answers.asked[0].report.problems]
    answers.release.set()
    async with asyncio.timeout(WAIT):
        await task
    assert len(seen.registers) == 2


# --- the flow dies: registered again without anyone doing anything --------------------------


async def test_registrar_dropping_flows_leads_to_reregistration(
    lab: Lab, registrar_factory: RegistrarFactory, ua_factory: Callable[..., UserAgent]
) -> None:
    reg, _ = await registrar_factory(lab.good)
    events = EventLog()
    ua = ua_factory(account_for(reg.tls_port, lab.ca_file), on_event=events)
    await ua.register()
    old_flow = ua.flow
    await reg.drop_flows()
    lost = (await events.wait_for("connection_lost")).to_json()
    assert "closed" in str(lost["reason"])
    await events.wait_for("connection_restored")
    await events.wait_for("registered", count=2)
    assert ua.flow is not old_flow and ua.flow is not None and not ua.flow.is_closed
    assert len(reg.bindings(f"sips:{USER}@{DOMAIN}")) == 1
    assert ua.state is RegistrationState.REGISTERED
    names = events.names()
    assert names.index("connection_lost") < names.index("connection_restored")


async def test_accepted_once_certificate_is_not_asked_again_on_reconnect(
    lab: Lab, registrar_factory: RegistrarFactory, ua_factory: Callable[..., UserAgent]
) -> None:
    reg, _ = await registrar_factory(lab.selfsigned)
    answers = TrustAnswers(TrustDecision.ACCEPT_ONCE)
    events = EventLog()
    ua = ua_factory(account_for(reg.tls_port, lab.ca_file), answerer=answers, on_event=events)
    await ua.register()
    await reg.drop_flows()
    await events.wait_for("registered", count=2)
    assert len(answers.asked) == 1


# --- pure parts -------------------------------------------------------------------------------


def test_refresh_delay_is_half_the_interval() -> None:
    assert refresh_delay(600) == 300
    assert refresh_delay(2) == 1
    assert refresh_delay(0) == 0


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    backoff = Backoff()
    rng = random.Random(1)
    assert backoff.delay(0) == 0
    for failures, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (7, 60), (20, 60)]:
        delay = backoff.delay(failures, rng)
        assert ceiling * 0.5 <= delay <= ceiling


def test_403_is_a_failure_without_retry() -> None:
    account = account_for(5061, None)
    dialogue = Registration(account, DigestClient(USER, PASSWORD))
    request = dialogue.build(("127.0.0.1", 40000), "TLS")
    response = Response.for_request(request, 403)
    outcome = dialogue.judge(request, response, ("127.0.0.1", 40000), "TLS")
    assert isinstance(outcome, Failed)
    assert not outcome.error.retryable and outcome.error.status_code == 403
    assert "403" in outcome.error.reason


def test_stale_challenge_is_answered_again() -> None:
    from softphone.sip.digest_server import DigestServer, InMemoryCredentials

    store = InMemoryCredentials()
    server = DigestServer(DOMAIN, store)
    store.add_password(USER, DOMAIN, PASSWORD, server.algorithms)
    dialogue = Registration(account_for(5061, None), DigestClient(USER, PASSWORD))
    local = ("127.0.0.1", 40000)
    request = dialogue.build(local, "TLS")
    challenge = Response.for_request(request, 401)
    for name, value in server.challenge(0.0):
        challenge.headers.add(name, value)
    outcome = dialogue.judge(request, challenge, local, "TLS")
    assert isinstance(outcome, Retry)
    answered = outcome.request
    stale = Response.for_request(answered, 401)
    for name, value in server.challenge(1.0, stale=True):
        stale.headers.add(name, value)
    again = dialogue.judge(answered, stale, local, "TLS")
    assert isinstance(again, Retry)  # stale=true: a fresh nonce, not a wrong password
    not_stale = Response.for_request(again.request, 401)
    for name, value in server.challenge(2.0):
        not_stale.headers.add(name, value)
    final = dialogue.judge(again.request, not_stale, local, "TLS")
    assert isinstance(final, Failed) and not final.error.retryable


def test_sip_contact_over_tls_says_transport_and_md5_is_marked_weak() -> None:
    account = Account(aor=f"sip:{USER}@{DOMAIN}", outbound=False)
    dialogue = Registration(account, DigestClient(USER, PASSWORD))
    request = dialogue.build(("127.0.0.1", 40000), "TLS")
    contact = request.headers.get("Contact") or ""
    assert "transport=tls" in contact and "+sip.instance" not in contact
    assert "Supported" not in request.headers
    challenge = Response.for_request(request, 401)
    challenge.headers.add("WWW-Authenticate", f'Digest realm="{DOMAIN}", nonce="abc", qop="auth"')
    retry = dialogue.judge(request, challenge, ("127.0.0.1", 40000), "TLS")
    assert isinstance(retry, Retry)
    ok = Response.for_request(retry.request, 200)
    ok.headers.add("Contact", (retry.request.headers.get("Contact") or "") + ";expires=120")
    binding = dialogue.judge(retry.request, ok, ("127.0.0.1", 40000), "TLS")
    assert not isinstance(binding, (Retry, Failed))
    assert binding.algorithm == "MD5" and binding.weak and binding.expires == 120


# --- transports -----------------------------------------------------------------------------


async def test_sips_with_transport_tcp_parameter_still_uses_tls(
    lab: Lab, registrar_factory: RegistrarFactory, ua_factory: Callable[..., UserAgent]
) -> None:
    reg, seen = await registrar_factory(lab.good)
    account = Account(
        aor=f"sips:{USER}@{DOMAIN}",
        registrar=f"sips:{DOMAIN}:{reg.tls_port};transport=tcp",
        resolve=(ResolveEntry(DOMAIN, reg.tls_port, "127.0.0.1"),),
        ca_file=lab.ca_file,
    )
    ua = ua_factory(account)
    await ua.register()
    assert ua.flow is not None and ua.flow.transport == "TLS"
    assert seen.registers[-1].top_via.transport == "TLS"


async def test_plain_sip_account_registers_over_tcp(
    lab: Lab, registrar_factory: RegistrarFactory, ua_factory: Callable[..., UserAgent]
) -> None:
    from softphone.server.config import ListenAddress
    from softphone.ua.account import Transport

    reg, seen = await registrar_factory(lab.good, listen=(ListenAddress("127.0.0.1", 0, "tcp"),))
    account = Account(
        aor=f"sip:{USER}@{DOMAIN}",
        registrar=f"sip:{DOMAIN}:{reg.tcp_port};transport=tcp",
        resolve=(ResolveEntry(DOMAIN, reg.tcp_port, "127.0.0.1"),),
        transport=(Transport.TCP,),
    )
    events = EventLog()
    ua = ua_factory(account, on_event=events)
    binding = await ua.register()
    assert binding.round_trips == 3  # TCP + REGISTER/401 + REGISTER/200
    registered = (await events.wait_for("registered")).to_json()
    assert registered["transport"] == "tcp" and registered["registrar_fingerprint"] is None
    assert "transport=tcp" in (seen.registers[-1].headers.get("Contact") or "")


async def test_unreadable_pin_store_fails_closed(
    tmp_path: Path,
    lab: Lab,
    registrar_factory: RegistrarFactory,
    ua_factory: Callable[..., UserAgent],
) -> None:
    reg, seen = await registrar_factory(lab.selfsigned)
    (tmp_path / "pins.json").write_text("not json")
    answers = TrustAnswers(TrustDecision.ACCEPT_ONCE)
    ua = ua_factory(account_for(reg.tls_port, lab.ca_file), answerer=answers)
    with pytest.raises(RegistrationError, match="trust store"):
        await ua.register()
    assert answers.asked == [] and seen.items == []
