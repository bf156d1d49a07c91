"""The embedded demo network: the SIP trapezoid of RFC 3261 §2 on loopback, in one process.

::

    async with DemoNetwork.start(workdir) as net:
        sips = await net.call(kind="sips")       # hop-by-hop TLS: both proxies read it all
        sipsec = await net.call(kind="sipsec")   # CONNECT tunnel: the proxies relay bytes

What :meth:`DemoNetwork.start` sets up (draft-gurbani-sip-sipsec-01 §6.7, Figure 3):

- a demo CA made for this run, and a TLS certificate from it for each proxy (SAN DNS
  ``atlanta.test``, ``biloxi.test``);
- two registrar/proxies (:mod:`softphone.server`), each routing the other's domain to the
  other's TLS listener and trusting the demo CA for that hop (``peer_anchors``), each with a
  :class:`~softphone.server.observe.ProxyView` recording what it parsed and what it relayed
  unread;
- alice@atlanta.test and bob@biloxi.test with freshly generated, self-signed identity
  certificates (:func:`softphone.security.identity.new_identity`), random passwords kept in an
  in-memory keyring (never a plaintext file), a pin store each in ``workdir``, accounts that
  reach their proxy through ``resolve`` entries (no DNS) and trust the demo CA for it;
- both phones registered; bob answers by himself; both send a tone, so audio flows.

Trust questions (the peer's self-signed identity in a sipsec call, draft §6.4/§6.5 "present
this information to the user") go to ``answerer``: :class:`AnnounceAndAcceptOnce` for the
headless demo; the GUI passes its dialog.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import inspect
import secrets
import socket
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import keyring
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from softphone.demo_ladder import (
    COLUMNS,
    Arrow,
    CallSummary,
    Note,
    PhoneWords,
    Span,
    Step,
    TraceLike,
    proxy_report,
    slice_view,
    steps_from_proxy,
    steps_from_trace,
)
from softphone.security.certificates import fingerprint_groups
from softphone.security.identity import IdentityMaterial, new_identity
from softphone.security.trust import TrustDecision, TrustDecisionRequired
from softphone.server.observe import ProxyView

__all__ = [
    "AnnounceAndAcceptOnce",
    "CallRun",
    "DemoNetwork",
    "DemoPhone",
    "MemoryKeyring",
    "TrustAnswerer",
    "missing_parts",
    "network_available",
]

ALICE_DOMAIN, BOB_DOMAIN = COLUMNS[1], COLUMNS[2]
#: How long a call may take to be established, and to end, before the demo calls it failed.
ESTABLISH_TIMEOUT = 30.0
END_TIMEOUT = 15.0
TALK_TIME = 1.0

#: The trust hook: which phone asks (``"alice"``/``"bob"``) and its question; the answer.
TrustAnswerer = Callable[[str, TrustDecisionRequired], Awaitable[TrustDecision]]


# -- what the demo needs from the server and the user agent ---------------------------------


def missing_parts() -> list[str]:
    """What the demo network still lacks in this build, in words (empty: it can run)."""
    missing: list[str] = []
    try:
        from softphone.server.config import RegistrarConfig
    except ImportError:  # pragma: no cover - the registrar is part of the engine
        return ["the registrar"]
    names = {f.name for f in dataclasses.fields(RegistrarConfig)}
    for wanted in ("routes", "peer_anchors"):
        if wanted not in names:
            missing.append(f"proxy routing (RegistrarConfig.{wanted})")
    from softphone.server.registrar import Registrar

    if "observer" not in inspect.signature(Registrar.__init__).parameters:
        missing.append("proxy observations (Registrar(config, observer=...))")
    from softphone.ua.useragent import UserAgent

    params = inspect.signature(UserAgent.__init__).parameters
    for wanted in ("identity", "on_trace"):
        if wanted not in params:
            missing.append(f"sipsec calls in the user agent (UserAgent({wanted}=...))")
    return missing


def network_available() -> bool:
    return not missing_parts()


# -- secrets ----------------------------------------------------------------------------------


class MemoryKeyring(KeyringBackend):
    """The demo's passwords, in memory only (ARCHITECTURE.md: never ``keyrings.alt``)."""

    priority = -1  # never chosen by keyring's own detection

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self._store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self._store.pop((service, username), None) is None:
            raise PasswordDeleteError("no such password")


@contextlib.contextmanager
def _keyring_installed(backend: KeyringBackend) -> Any:
    previous = keyring.core._keyring_backend  # None when nothing was chosen yet
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.core._keyring_backend = previous


# -- the demo PKI -----------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass(frozen=True)
class _Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def make_demo_ca(now: dt.datetime) -> _Issued:
    """A CA for this run only (ECDSA P-256, valid a day): it signs the proxies' certificates."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("Softphone demo CA (this run only)")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Issued(cert, key)


def issue_proxy_certificate(ca: _Issued, domain: str, now: dt.datetime) -> _Issued:
    """A proxy's TLS certificate: SAN DNS ``domain`` (RFC 5922 §7.1), server and client auth
    (it is the TLS client on the hop to the other proxy)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(domain))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return _Issued(cert, key)


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextlib.asynccontextmanager
async def _running(config: Any, view: ProxyView) -> AsyncIterator[Any]:
    """A started registrar/proxy reporting to ``view``, closed on exit."""
    from softphone.server.registrar import Registrar

    registrar = Registrar(config, observer=view.observe)
    await registrar.start()
    try:
        yield registrar
    finally:
        await registrar.close()


# -- trust questions --------------------------------------------------------------------------


class AnnounceAndAcceptOnce:
    """The headless demo's answer to a trust question: print it, with the fingerprint, and
    accept this once (the demo's identities are self-signed and fresh: there is nothing to
    compare them with yet). Records every question in :attr:`asked`."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out
        self.asked: list[tuple[str, TrustDecisionRequired]] = []

    async def __call__(self, phone: str, required: TrustDecisionRequired) -> TrustDecision:
        self.asked.append((phone, required))
        if self.out is not None:
            report = required.report
            fingerprint = report.fingerprint
            shown = fingerprint_groups(fingerprint) if fingerprint is not None else "(none)"
            lines = [f"{phone}'s phone asks about the {required.waiting_for}:"]
            for message in report.messages or (report.headline,):
                lines += textwrap.wrap(message, 92, initial_indent="    ", subsequent_indent="    ")
            lines.append(f"    fingerprint {shown}")
            lines.append("    -> accepted this once (demo policy)")
            print("\n".join(lines), file=self.out)
        return TrustDecision.ACCEPT_ONCE


# -- the phones -------------------------------------------------------------------------------


@dataclass
class DemoPhone:
    """One of the two phones: its user agent and everything it reported."""

    name: str
    domain: str
    aor: str
    identity: IdentityMaterial
    ua: Any = None  # softphone.ua.UserAgent
    events: list[tuple[float, Any]] = field(default_factory=list)  # (loop time, Event)
    traces: list[TraceLike] = field(default_factory=list)
    calls: list[Any] = field(default_factory=list)  # incoming softphone.ua.call.Call

    def on_event(self, event: Any) -> None:
        self.events.append((asyncio.get_running_loop().time(), event))

    def on_trace(self, entry: TraceLike) -> None:
        self.traces.append(entry)


@dataclass
class CallRun:
    """What one call of the demo produced (see :meth:`DemoNetwork.call`)."""

    kind: str
    target: str
    ok: bool
    error: str
    steps: list[Step]
    words: dict[str, PhoneWords]
    safety_numbers: dict[str, str | None]
    views: dict[str, ProxyView]

    def summary(self) -> CallSummary:
        return CallSummary(
            kind=self.kind,
            target=self.target,
            ok=self.ok,
            error=self.error,
            steps=tuple(self.steps),
            proxies=tuple(proxy_report(self.views[d]) for d in (ALICE_DOMAIN, BOB_DOMAIN)),
            phones=tuple(self.words.values()),
            safety_numbers=dict(self.safety_numbers),
        )


def _event_name(event: Any) -> str:
    return str(getattr(event, "name", type(event).__name__))


class DemoNetwork:
    """Two domains, two proxies, two phones (module docstring). Build with :meth:`start`."""

    def __init__(self, workdir: Path, answerer: TrustAnswerer) -> None:
        self.workdir = workdir
        self.answerer = answerer
        self.views = {ALICE_DOMAIN: ProxyView(ALICE_DOMAIN), BOB_DOMAIN: ProxyView(BOB_DOMAIN)}
        self.ports: dict[str, int] = {}
        self.registrars: dict[str, Any] = {}
        self.alice: DemoPhone | None = None
        self.bob: DemoPhone | None = None
        self.keyring = MemoryKeyring()
        #: Test hook: called with the network at the moment a sipsec call is established
        #: (a sabotage test makes a proxy "read" the tunnel here).
        self.on_established: Callable[[DemoNetwork, str], None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls,
        workdir: Path,
        *,
        answerer: TrustAnswerer | None = None,
        out: TextIO | None = None,
    ) -> AsyncIterator[DemoNetwork]:
        """Start everything (module docstring); stop it all on exit."""
        missing = missing_parts()
        if missing:
            raise RuntimeError("the demo network cannot run yet: " + "; ".join(missing))
        workdir.mkdir(parents=True, exist_ok=True)
        net = cls(workdir, answerer or AnnounceAndAcceptOnce(out))
        with _keyring_installed(net.keyring):
            async with contextlib.AsyncExitStack() as stack:
                await net._start(stack)
                yield net

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        from softphone.server.config import ListenAddress, RegistrarConfig
        from softphone.ua.secrets import set_password

        now = dt.datetime.now(dt.UTC)
        ca = make_demo_ca(now)
        ca_file = self.workdir / "demo-ca.pem"
        ca_file.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
        # RSA 3072 identities take a moment each: make both at once, off the event loop.
        alice_id, bob_id = await asyncio.gather(
            asyncio.to_thread(new_identity, f"sip:alice@{ALICE_DOMAIN}", now=now),
            asyncio.to_thread(new_identity, f"sip:bob@{BOB_DOMAIN}", now=now),
        )
        self.alice = DemoPhone("alice", ALICE_DOMAIN, f"sips:alice@{ALICE_DOMAIN}", alice_id)
        self.bob = DemoPhone("bob", BOB_DOMAIN, f"sips:bob@{BOB_DOMAIN}", bob_id)
        passwords = {p.name: secrets.token_urlsafe(18) for p in (self.alice, self.bob)}
        port_a, port_b = _free_ports(2)
        self.ports = {ALICE_DOMAIN: port_a, BOB_DOMAIN: port_b}
        fields = {f.name for f in dataclasses.fields(RegistrarConfig)}
        for phone, other in ((self.alice, BOB_DOMAIN), (self.bob, ALICE_DOMAIN)):
            leaf = issue_proxy_certificate(ca, phone.domain, now)
            options: dict[str, Any] = {
                "routes": {other: f"127.0.0.1:{self.ports[other]}"},
                "peer_anchors": (ca.cert,),
                "authenticate_outgoing": True,
                "record_route": True,
            }
            config = RegistrarConfig(
                domain=phone.domain,
                users={phone.name: passwords[phone.name]},
                listen=(ListenAddress("127.0.0.1", self.ports[phone.domain], "tls"),),
                certificate_chain=(leaf.cert, ca.cert),
                private_key=leaf.key,
                **{k: v for k, v in options.items() if k in fields},
            )
            self.registrars[phone.domain] = await stack.enter_async_context(
                _running(config, self.views[phone.domain])
            )
        for phone in (self.alice, self.bob):
            set_password(phone.aor, passwords[phone.name])
            phone.ua = await stack.enter_async_context(self._user_agent(phone, ca_file))
            await phone.ua.register()

    @contextlib.asynccontextmanager
    async def _user_agent(self, phone: DemoPhone, ca_file: Path) -> AsyncIterator[Any]:
        from softphone.ua.account import Account, ResolveEntry, SipsecAccept
        from softphone.ua.useragent import UserAgent

        port = self.ports[phone.domain]
        account = Account(
            aor=phone.aor,
            registrar=f"sips:{phone.domain}:{port}",
            resolve=(ResolveEntry(phone.domain, port, "127.0.0.1"),),
            ca_file=ca_file,
            sipsec_accept=SipsecAccept.ACCEPT,
            expires=3600,
        )
        from softphone.media.tone import LevelMeter, ToneSource

        def incoming(call: Any) -> None:
            call.source, call.sink = ToneSource(660.0), LevelMeter()
            phone.calls.append(call)

        pins = self.workdir / phone.name / "pins.json"
        pins.parent.mkdir(parents=True, exist_ok=True)
        extra: dict[str, Any] = {"identity": phone.identity, "on_trace": phone.on_trace}
        ua = UserAgent(
            account,
            pin_store_path=pins,
            trust_policy="ask",
            answerer=functools.partial(self.answerer, phone.name),
            on_event=phone.on_event,
            on_incoming_call=incoming if phone.name == "bob" else None,
            auto_answer=phone.name == "bob",
            media_thread=True,  # as the desktop phone: the proxies' relaying never delays audio
            **extra,
        )
        try:
            yield ua
        finally:
            await ua.close()

    # -- one call -------------------------------------------------------------------------------

    async def call(self, kind: str = "sipsec", *, talk_time: float = TALK_TIME) -> CallRun:
        """alice calls bob as ``kind`` (``"sips"`` or ``"sipsec"``), talks ``talk_time``
        seconds (tones both ways), hangs up; what both phones and both proxies saw."""
        if kind not in ("sips", "sipsec"):
            raise ValueError(f"kind must be 'sips' or 'sipsec', not {kind!r}")
        alice, bob = self.alice, self.bob
        assert alice is not None and bob is not None, "start() the network first"
        from softphone.media.tone import LevelMeter, ToneSource
        from softphone.ua.call import CallError, CallPhase

        target = f"{kind}:bob@{BOB_DOMAIN}"
        loop = asyncio.get_running_loop()
        marks = {d: (len(v.observations), set(v.relayed)) for d, v in self.views.items()}
        traces = {p.name: len(p.traces) for p in (alice, bob)}
        events = {p.name: len(p.events) for p in (alice, bob)}
        ok, error = True, ""
        try:
            call = await alice.ua.call(target, source=ToneSource(440.0), sink=LevelMeter())
            await call.wait_for(CallPhase.ESTABLISHED, timeout=ESTABLISH_TIMEOUT)
            if self.on_established is not None:
                self.on_established(self, kind)
            await asyncio.sleep(talk_time)
            await call.hangup()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(call.ended), END_TIMEOUT)
        except (CallError, TimeoutError, OSError) as exc:
            ok, error = False, str(exc) or type(exc).__name__
        # Let the proxies report the tunnels' end (bounded: a report without it is still true).
        deadline = loop.time() + 3.0
        while kind == "sipsec" and loop.time() < deadline and not self._tunnels_closed(marks):
            await asyncio.sleep(0.05)
        views = {d: slice_view(v, *marks[d]) for d, v in self.views.items()}
        new_traces = {p.name: p.traces[traces[p.name] :] for p in (alice, bob)}
        new_events = {p.name: p.events[events[p.name] :] for p in (alice, bob)}
        steps = self._steps(views, new_traces, new_events)
        words: dict[str, PhoneWords] = {}
        numbers: dict[str, str | None] = {}
        for name, evs in new_events.items():
            for _at, event in evs:
                if _event_name(event) == "media_started":
                    words.setdefault(name, PhoneWords(name, event.signalling, event.audio))
                number = getattr(event, "safety_number", None)
                if number:
                    numbers[name] = str(number)
            if kind == "sipsec":
                numbers.setdefault(name, None)
        if ok and len(words) < 2:
            ok, error = False, "a phone reported no audio"
        return CallRun(kind, target, ok, error, steps, words, numbers, views)

    def _tunnels_closed(self, marks: dict[str, tuple[int, set[int]]]) -> bool:
        from softphone.server.observe import TunnelClosed, TunnelOpened

        for domain, view in self.views.items():
            new = view.observations[marks[domain][0] :]
            opened = {o.tunnel_id for o in new if isinstance(o, TunnelOpened)}
            closed = {o.tunnel_id for o in new if isinstance(o, TunnelClosed)}
            if opened - closed:
                return False
        return True

    def _steps(
        self,
        views: dict[str, ProxyView],
        traces: dict[str, list[TraceLike]],
        events: dict[str, list[tuple[float, Any]]],
    ) -> list[Step]:
        steps: list[Step] = []
        steps += steps_from_trace("alice", ALICE_DOMAIN, "bob", traces["alice"])
        steps += steps_from_trace("bob", BOB_DOMAIN, "alice", traces["bob"])
        steps += steps_from_proxy(
            views[ALICE_DOMAIN],
            own_phone="alice",
            other_proxy=BOB_DOMAIN,
            other_port=self.ports[BOB_DOMAIN],
        )
        steps += steps_from_proxy(
            views[BOB_DOMAIN],
            own_phone="bob",
            other_proxy=ALICE_DOMAIN,
            other_port=self.ports[ALICE_DOMAIN],
        )
        tunnel = [s for s in steps if isinstance(s, Arrow) and s.protection == "sipsec-tunnel"]
        if tunnel:
            first = min(s.at for s in tunnel)
            steps.append(
                Span(first - 1e-6, "alice", "bob", "Tunnel established spanning both proxies")
            )
        for name, evs in events.items():
            for at, event in evs:
                what = _event_name(event)
                if what == "trust_required":
                    steps.append(Note(at, name, "evaluates the peer's certificate, asks"))
                elif what == "peer_identity":
                    state = getattr(event, "identity_state", "")
                    steps.append(Note(at, name, f"trust decision: peer {state}"))
        return steps


def default_out() -> TextIO:
    return sys.stdout
