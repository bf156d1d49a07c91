"""sipsec vs sips call setup in end-to-end round trips (``python benchmarks/bench_sipsec.py``).

Target (ARCHITECTURE.md, round-trip floors; draft-gurbani-sip-sipsec-01 §6, Figure 3): on
established registration flows, dial → 200 at the caller costs

* sipsec: 3 end-to-end RTT (CONNECT/200 1 + nested TLS 1.3 1, the client Finished riding with
  the INVITE + INVITE/200 1);
* sips:   1 end-to-end RTT (INVITE/200 with pre-emptive credentials from the cached challenge).

Topology: the demo network's trapezoid (``softphone/demo_network.py`` pieces: a CA for this run,
our registrar/proxy for atlanta.test and biloxi.test routing to each other, alice and bob with
self-signed identity certificates), with :mod:`benchmarks.delay_relay` on the two access links,
alice↔atlanta and biloxi↔bob, D ms one way each (``DELAYS_MS``). The proxies' link is NOT
delayed, so one end-to-end RTT is ``4 * D``. Everything runs in this one process (one event
loop): processing time of the four parties adds up, and shrinks relative to a longer RTT.
(The relay models the TCP handshake; ACK-clocked stalls such as Nagle's do not
show up, see delay_relay.py.)

Each figure is the median of ``REPS`` calls, divided by the end-to-end RTT. A first ``sips:``
call (not measured) caches the proxy's 407 challenge. Beside the figures: what the caller sent
and received in the window (from ``on_trace``), and how many separate client flights crossed
alice's access link (bursts of c2s writes more than half an RTT apart): an extra flight or a
407 is where an extra round trip goes. Never asserts a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import serialization

from benchmarks.delay_relay import DelayRelay
from softphone.demo_network import issue_proxy_certificate, make_demo_ca
from softphone.security.identity import new_identity
from softphone.security.trust import TrustDecision, TrustDecisionRequired
from softphone.server.config import ListenAddress, RegistrarConfig
from softphone.server.registrar import running_registrar
from softphone.ua.account import Account, ResolveEntry, SipsecAccept
from softphone.ua.call import Call, CallPhase
from softphone.ua.registration import RegistrationState
from softphone.ua.trace import TraceEntry
from softphone.ua.useragent import UserAgent

ALICE_DOMAIN, BOB_DOMAIN = "atlanta.test", "biloxi.test"
DELAYS_MS = (20.0, 50.0)  # one way, on each access link
REPS = 3
WAIT = 30.0


@dataclass
class Phone:
    name: str
    domain: str
    ua: UserAgent
    traces: list[TraceEntry] = field(default_factory=list)
    incoming: list[Call] = field(default_factory=list)


async def _accept_once(required: TrustDecisionRequired) -> TrustDecision:
    return TrustDecision.ACCEPT_ONCE  # self-signed demo identities: "connect this time"


@contextlib.asynccontextmanager
async def network(workdir: Path, delay_ms: float) -> AsyncIterator[tuple[Phone, Phone, DelayRelay]]:
    """The trapezoid with delayed access links; both phones registered through the relays."""
    now = dt.datetime.now(dt.UTC)
    ca = make_demo_ca(now)
    ca_file = workdir / "ca.pem"
    ca_file.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    passwords = {"alice": secrets.token_urlsafe(12), "bob": secrets.token_urlsafe(12)}
    identities = await asyncio.gather(
        asyncio.to_thread(new_identity, f"sip:alice@{ALICE_DOMAIN}", now=now),
        asyncio.to_thread(new_identity, f"sip:bob@{BOB_DOMAIN}", now=now),
    )
    async with contextlib.AsyncExitStack() as stack:
        ports: dict[str, int] = {}
        registrars = {}
        for domain in (ALICE_DOMAIN, BOB_DOMAIN):
            with contextlib.closing(__import__("socket").socket()) as s:
                s.bind(("127.0.0.1", 0))
                ports[domain] = s.getsockname()[1]
        for domain, user, other in (
            (ALICE_DOMAIN, "alice", BOB_DOMAIN),
            (BOB_DOMAIN, "bob", ALICE_DOMAIN),
        ):
            leaf = issue_proxy_certificate(ca, domain, now)
            config = RegistrarConfig(
                domain=domain,
                users={user: passwords[user]},
                listen=(ListenAddress("127.0.0.1", ports[domain], "tls"),),
                certificate_chain=(leaf.cert, ca.cert),
                private_key=leaf.key,
                routes={other: f"127.0.0.1:{ports[other]}"},
                peer_anchors=(ca.cert,),
            )
            registrars[domain] = await stack.enter_async_context(running_registrar(config))
        phones = []
        alice_relay: DelayRelay | None = None
        for (user, domain), identity in zip(
            (("alice", ALICE_DOMAIN), ("bob", BOB_DOMAIN)), identities, strict=True
        ):
            relay = await stack.enter_async_context(
                DelayRelay("127.0.0.1", registrars[domain].tls_port, delay_ms)
            )
            if user == "alice":
                alice_relay = relay
            account = Account(
                aor=f"sips:{user}@{domain}",
                registrar=f"sips:{domain}:{relay.port}",
                resolve=(ResolveEntry(domain, relay.port, "127.0.0.1"),),
                ca_file=ca_file,
                sipsec_accept=SipsecAccept.ACCEPT,
                sipsec_handshake_timeout=10.0,
            )
            phone = Phone(user, domain, None)  # type: ignore[arg-type]
            ua = UserAgent(
                account,
                password=passwords[user],
                pin_store_path=workdir / f"pins-{user}.json",
                anchors=(ca.cert,),
                answerer=_accept_once,
                identity=identity,
                on_trace=phone.traces.append,
                on_incoming_call=phone.incoming.append,
                auto_answer=user == "bob",
            )
            phone.ua = ua
            stack.push_async_callback(ua.close)
            await ua.register()
            phones.append(phone)
        assert alice_relay is not None
        yield phones[0], phones[1], alice_relay


async def registered(ua: UserAgent) -> None:
    async with asyncio.timeout(WAIT):
        while not (
            ua.state is RegistrationState.REGISTERED
            and ua.flow is not None
            and not ua.flow.is_closed
            and not ua.flow.detached
        ):
            await asyncio.sleep(0.02)


def flights(relay: DelayRelay, since: float, until: float, gap: float) -> str:
    """Client→server bursts on alice's access link in [since, until], per connection that
    carried any ("3" or "3+5": the second number is a new connection, the re-registration)."""
    counts = []
    for conn in relay.connections:
        times = [t for t, d, _ in conn.trace if d == "c2s" and since <= t <= until + relay.delay]
        count, last = 0, None
        for t in times:
            if last is None or t - last > gap:
                count += 1
            last = t
        if count:
            counts.append(str(count))
    return "+".join(counts) or "0"


@dataclass
class Sample:
    seconds: float
    flights: str
    ladder: list[str]


async def one_call(alice: Phone, bob: Phone, relay: DelayRelay, kind: str) -> Sample:
    await asyncio.gather(registered(alice.ua), registered(bob.ua))
    await asyncio.sleep(0.3)  # let keepalives and re-registrations settle
    mark, bob_mark = len(alice.traces), len(bob.traces)
    start = time.monotonic()
    call = await alice.ua.call(f"{kind}:bob@{BOB_DOMAIN}")
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    elapsed = time.monotonic() - start
    rtt = 4 * relay.delay
    ladder = [
        f"{(e.at - start) / rtt:5.2f} RTT {e.direction:8} {e.first_line[:44]}"
        for e in alice.traces[mark:]
    ] + [
        f"{(e.at - start) / rtt:5.2f} RTT bob {e.direction:8} {e.first_line[:40]}"
        for e in bob.traces[bob_mark:]
        if e.at - start <= elapsed
    ]
    count = flights(relay, start, start + elapsed, rtt / 2)
    await call.hangup()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(call.ended), WAIT)
    for c in list(bob.incoming):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(c.ended), WAIT)
    bob.incoming.clear()
    return Sample(elapsed, count, ladder)


async def measure(delay_ms: float) -> dict[str, list[Sample]]:
    with tempfile.TemporaryDirectory(prefix="bench-sipsec-") as tmp:
        async with network(Path(tmp), delay_ms) as (alice, bob, relay):
            await one_call(alice, bob, relay, "sips")  # caches the 407 challenge
            results: dict[str, list[Sample]] = {"sipsec": [], "sips": []}
            for _ in range(REPS):
                for kind in ("sipsec", "sips"):
                    results[kind].append(await one_call(alice, bob, relay, kind))
    return results


def main() -> None:
    print(
        "access links alice<->atlanta and biloxi<->bob delayed, D ms one way each; the "
        f"proxies' link undelayed; end-to-end RTT = 4 D; median of {REPS}"
    )
    print(f"{'D ms':>5} {'call':8} {'target':>6} {'RTT':>6} {'ms':>8} {'flights':>8}")
    results: dict[str, list[Sample]] = {}
    for delay_ms in DELAYS_MS:
        rtt = 4 * delay_ms / 1000.0
        # a fresh event loop per network: a UDP (media) transport of a finished call can
        # outlive its socket, and a second network in the same loop then trips over the fd
        results = asyncio.run(measure(delay_ms))
        for kind, target in (("sipsec", 3.0), ("sips", 1.0)):
            samples = results[kind]
            median = statistics.median(s.seconds for s in samples)
            runs = ", ".join(f"{s.seconds / rtt:.2f}" for s in samples)
            print(
                f"{delay_ms:5g} {kind:8} {target:6.1f} {median / rtt:6.2f} {median * 1000:8.1f} "
                f"{samples[-1].flights:>8}   (runs: {runs})"
            )
    for kind in ("sipsec", "sips"):
        print(f"-- the last {kind} call at D = {DELAYS_MS[-1]:g} ms (times in end-to-end RTT):")
        for line in results[kind][-1].ladder:
            print(f"   {line}")


if __name__ == "__main__":
    main()
