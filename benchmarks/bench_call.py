"""Call setup in round trips, and CPU per call (``python benchmarks/bench_call.py``; issue 4).

Target (ARCHITECTURE.md, round-trip floors): a ``sips:`` call on established flows costs
INVITE → 200 = 1 end-to-end RTT with auto-answer, when the proxy's challenge is cached and the
credentials go pre-emptively (RFC 3261 §22.3).

Set-up: a real Kamailio (tests/interop/kamailio.py, lab PKI) for example.test; alice and bob
(our :class:`~softphone.ua.useragent.UserAgent`, in this process) each reach it through
:mod:`benchmarks.delay_relay`, D ms one way on each access link, so one end-to-end RTT is 4 D.
A first call caches Kamailio's 407 (not measured); then ``REPS`` calls, dial → 200 at alice
(bob answers by himself), median in end-to-end RTT.

CPU per call: one call of ``TALK_SECONDS`` (20 s, not 60: the machine is shared; Opus both
ways, SRTP), CPU time of this process (``resource.getrusage``) from 200 to hang-up, divided by
two (both UserAgents run here; the relays carry only signalling). Kamailio's CPU is not in it.

Not measured here yet: baresip → linphonec on the same set-up, and baresip's CPU per call (the
harnesses are ``tests/interop/baresip.py`` and ``linphone.py``). Prints; never asserts a time;
every process it starts is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.delay_relay import DelayRelay
from softphone.media.tone import ToneSource
from softphone.ua.account import Account, ResolveEntry
from softphone.ua.call import Call, CallPhase
from softphone.ua.useragent import UserAgent
from tests.interop.kamailio import (
    DEFAULT_USERS,
    KamailioError,
    KamailioServer,
    find_kamailio,
    find_tls_module,
)
from tests.interop.pki import LabPKI

DELAYS_MS = (20.0, 50.0)
REPS = 5
TALK_SECONDS = 20.0
WAIT = 30.0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _account(server: KamailioServer, user: str, port: int) -> Account:
    return Account(
        aor=f"sips:{user}@{server.domain}",
        registrar=f"sips:{server.domain}:{port}",
        resolve=(ResolveEntry(server.domain, port, "127.0.0.1"),),
        ca_file=server.ca_cert_path,
    )


async def _ended(calls: list[Call]) -> None:
    for call in calls:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(call.ended), WAIT)
    calls.clear()


async def measure(
    server: KamailioServer, delay_ms: float, workdir: Path
) -> tuple[list[float], float | None]:
    """Setup times (s) of REPS calls; CPU seconds per UA for one talk (when asked)."""
    incoming: list[Call] = []

    def bob_takes(call: Call) -> None:
        call.source = ToneSource(440)
        incoming.append(call)

    async with contextlib.AsyncExitStack() as stack:
        uas = []
        for user in ("alice", "bob"):
            relay = await stack.enter_async_context(
                DelayRelay(server.host, server.tls_port, delay_ms)
            )
            ua = UserAgent(
                _account(server, user, relay.port),
                password=DEFAULT_USERS[user],
                pin_store_path=workdir / f"pins-{user}.json",
                auto_answer=user == "bob",
                on_incoming_call=bob_takes if user == "bob" else None,
            )
            stack.push_async_callback(ua.close)
            await ua.register()
            uas.append(ua)
        alice = uas[0]
        first = await alice.call("bob")  # caches the 407
        await first.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
        await first.hangup()
        await _ended(incoming)
        setups = []
        for _ in range(REPS):
            await asyncio.sleep(0.2)
            start = time.monotonic()
            call = await alice.call("bob")
            await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
            setups.append(time.monotonic() - start)
            await call.hangup()
            await _ended(incoming)
        cpu: float | None = None
        if delay_ms == DELAYS_MS[0]:
            call = await alice.call("bob", source=ToneSource(1000))
            await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
            before = _cpu()
            await asyncio.sleep(TALK_SECONDS)
            cpu = (_cpu() - before) / 2
            await call.hangup()
            await _ended(incoming)
        return setups, cpu


def main() -> None:
    binary = find_kamailio()
    if binary is None or find_tls_module(binary) is None:
        print("kamailio (with its TLS module) not installed: nothing to measure")
        return
    print(
        f"our UA -> Kamailio -> our UA, sips:, access links delayed D ms one way each "
        f"(end-to-end RTT = 4 D); median of {REPS}; target 1 RTT"
    )
    print(f"{'D ms':>5} {'RTT':>6} {'ms':>8}   runs (RTT)")
    cpu_per_call: float | None = None
    with tempfile.TemporaryDirectory(prefix="bench-call-") as tmp:
        work = Path(tmp)
        pki = LabPKI.create(work / "pki")
        server = KamailioServer(work / "kamailio", pki, binary=binary)
        try:
            server.start()
        except KamailioError as exc:
            print(f"kamailio did not start: {exc}")
            return
        try:
            for delay_ms in DELAYS_MS:
                rtt = 4 * delay_ms / 1000.0
                # one event loop per run (see bench_sipsec.py: a media transport can outlive
                # its socket)
                setups, cpu = asyncio.run(measure(server, delay_ms, work))
                cpu_per_call = cpu if cpu is not None else cpu_per_call
                median = statistics.median(setups)
                runs = ", ".join(f"{s / rtt:.2f}" for s in setups)
                print(f"{delay_ms:5g} {median / rtt:6.2f} {median * 1000:8.1f}   {runs}")
        finally:
            server.close()
    if cpu_per_call is not None:
        print(
            f"CPU per UA for a {TALK_SECONDS:g} s call (Opus both ways, SRTP): "
            f"{cpu_per_call:.2f} s ({100 * cpu_per_call / TALK_SECONDS:.1f} % of one core)"
        )
    print("baresip -> linphonec beside it: not measured yet (see the module docstring)")


if __name__ == "__main__":
    main()
