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

Engine-added audio delay on loopback, in that same call (media is direct UDP on 127.0.0.1; the
relays carry signalling only): alice's source sends a 1 kHz pulse of ``PULSE_FRAMES`` frames
every ``PULSE_EVERY`` frames and silence between; the time of the ``read()`` of each pulse's
first frame is its send time. bob's sink notes the time of the ``write()`` of the first loud
frame after silence (play-out). Delay = play-out - send - the jitter buffer's target delay at
that moment (``MediaStatistics.jitter_delay_ms`` of bob's call); 20 ms frame granularity.

baresip → linphonec (``tests/interop/baresip.py``, ``linphone.py``): carol is baresip, dave is
linphonec, each through its own delay relay to the same Kamailio (certificate ``good-ip``: linphone
checks it by IP); carol dials ``sip:dave@example.test`` (baresip cannot dial ``sips:``), dave
auto-answers; dial command → ``CALL_ESTABLISHED`` on baresip's ctrl_tcp. The first call (407,
not cached) and the median of ``REPS`` more are printed. SDES-SRTP, Opus preferred (baresip's
``opus`` module loaded before ``g711``; ``sndfile`` not loaded).

baresip's CPU per call: our UA (alice, this process, direct to Kamailio) calls carol (baresip,
Opus, SRTP, ``ausine`` tone, ALSA ``null`` speaker) for ``TALK_SECONDS``; baresip's CPU from
``/proc/<pid>/stat`` (utime + stime) beside this process's (one UA here; the idle relays too).
Prints; never asserts a time; every process it starts is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.delay_relay import DelayRelay
from softphone.media.tone import ToneSource, samples
from softphone.ua.account import Account, ResolveEntry
from softphone.ua.call import Call, CallPhase
from softphone.ua.useragent import UserAgent
from tests.interop.baresip import BaresipError, BaresipPeer, find_baresip, find_module_dir
from tests.interop.kamailio import (
    DEFAULT_USERS,
    KamailioError,
    KamailioServer,
    find_kamailio,
    find_tls_module,
)
from tests.interop.linphone import LinphoneError, LinphonePeer, find_linphonec
from tests.interop.pki import LabPKI

DELAYS_MS = (20.0, 50.0)
REPS = 5
TALK_SECONDS = 20.0
WAIT = 30.0
CERT = "good-ip"  # names example.test and 127.0.0.1: linphone checks Kamailio's by IP
PULSE_EVERY = 25  # frames (0.5 s)
PULSE_FRAMES = 5
FRAME_SAMPLES = 960  # 20 ms at 48 kHz


class PulseSource:
    """1 kHz pulses of PULSE_FRAMES frames every PULSE_EVERY frames; notes each pulse's send."""

    def __init__(self) -> None:
        amp = 32767 * 10 ** (-12 / 20)
        tone = [int(amp * math.sin(2 * math.pi * 1000 * i / 48000)) for i in range(FRAME_SAMPLES)]
        self._tone = b"".join(x.to_bytes(2, "little", signed=True) for x in tone)
        self._silence = bytes(2 * FRAME_SAMPLES)
        self._n = 0
        self.sent: list[float] = []

    def read(self) -> bytes:
        phase = self._n % PULSE_EVERY
        self._n += 1
        if phase == 0:
            self.sent.append(time.monotonic())
        return self._tone if phase < PULSE_FRAMES else self._silence


class PulseSink:
    """Notes the play-out time of the first loud frame after a quiet one (and the jitter
    buffer's target delay then, through ``target``)."""

    def __init__(self) -> None:
        self.onsets: list[tuple[float, float]] = []  # (monotonic, target delay s)
        self.target: Any = None  # () -> float, set once the call has media
        self._loud = False

    def write(self, pcm: bytes) -> None:
        data = samples(pcm)
        loud = bool(data) and max(-min(data), *data) > 2000
        if loud and not self._loud:
            target = self.target() if self.target is not None else float("nan")
            self.onsets.append((time.monotonic(), target))
        self._loud = loud


def audio_delays(source: PulseSource, sink: PulseSink) -> list[float]:
    """Play-out - send - jitter target (s) for each pulse matched to the nearest later send."""
    out = []
    for at, target in sink.onsets:
        earlier = [t for t in source.sent if t <= at]
        if earlier and at - earlier[-1] < PULSE_EVERY * 0.02 / 2:
            out.append(at - earlier[-1] - target)
    return out


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
) -> tuple[list[float], float | None, list[float]]:
    """Setup times (s) of REPS calls; CPU seconds per UA for one talk and the engine-added
    audio delays (s) in it (when asked)."""
    incoming: list[Call] = []
    pulses, heard = PulseSource(), PulseSink()
    talking = False

    def bob_takes(call: Call) -> None:
        call.source = ToneSource(440)
        if talking:
            call.sink = heard

            def target() -> float:
                media = call.media
                return media.statistics().jitter_delay_ms / 1000 if media else float("nan")

            heard.target = target
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
            talking = True
            call = await alice.call("bob", source=pulses)
            await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
            before = _cpu()
            await asyncio.sleep(TALK_SECONDS)
            cpu = (_cpu() - before) / 2
            await call.hangup()
            await _ended(incoming)
        return setups, cpu, audio_delays(pulses, heard)


class _Via:
    """What the peer harnesses read of a KamailioServer, with the TLS port of a relay."""

    def __init__(self, server: KamailioServer, port: int) -> None:
        self.domain = server.domain
        self.ca_cert_path = server.ca_cert_path
        self.host = server.host
        self.tls_port = port


class _OpusBaresip(BaresipPeer):
    """baresip with Opus preferred (``opus`` loaded before ``g711``) and no ``sndfile``."""

    def write_config(self) -> None:
        super().write_config()
        path = self.workdir / "config"
        config = path.read_text()
        config = config.replace("module\t\t\tg711.so", "module\t\t\topus.so\nmodule\t\t\tg711.so")
        config = config.replace("module\t\t\tsndfile.so\n", "")
        path.write_text(config)


def _proc_cpu(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (proc(5): fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name of ``pid`` (``/proc/<pid>/task/*/stat``)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            text = (task / "stat").read_text()
            name = text[text.index("(") + 1 : text.rindex(")")] + f"/{task.name}"
            fields = text.rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


async def baresip_linphone(server: KamailioServer, delay_ms: float, workdir: Path) -> None:
    """baresip → linphonec setup times at ``delay_ms``; at the first delay also baresip's CPU
    in a TALK_SECONDS call from our UA. Prints."""
    rtt = 4 * delay_ms / 1000.0
    async with contextlib.AsyncExitStack() as stack:
        relays = [
            await stack.enter_async_context(DelayRelay(server.host, server.tls_port, delay_ms))
            for _ in range(2)
        ]
        carol = _OpusBaresip(
            workdir / f"baresip-{delay_ms:g}",
            _Via(server, relays[0].port),  # type: ignore[arg-type]
            user="carol",
            password=DEFAULT_USERS["carol"],
            tone=600,
        )
        dave = LinphonePeer(
            workdir / f"linphone-{delay_ms:g}",
            _Via(server, relays[1].port),  # type: ignore[arg-type]
            user="dave",
            password=DEFAULT_USERS["dave"],
        )
        for peer in (carol, dave):
            await asyncio.to_thread(peer.start)
            stack.callback(peer.stop)
        uri = f"sip:dave@{server.domain}"
        setups = []
        for _ in range(REPS + 1):
            await asyncio.sleep(0.5)
            since = len(carol.events)
            start = time.monotonic()
            await asyncio.to_thread(carol.dial, uri)
            await asyncio.to_thread(carol.wait_event, "CALL_ESTABLISHED", WAIT, since=since)
            setups.append(time.monotonic() - start)
            await asyncio.sleep(0.3)
            since = len(carol.events)
            await asyncio.to_thread(carol.hangup)
            await asyncio.to_thread(carol.wait_event, "CALL_CLOSED", WAIT, since=since)
        first, rest = setups[0], setups[1:]
        median = statistics.median(rest)
        runs = ", ".join(f"{s / rtt:.2f}" for s in rest)
        print(
            f"{delay_ms:5g} {median / rtt:6.2f} {median * 1000:8.1f}   {runs}   "
            f"(first call, with the 407: {first / rtt:.2f} RTT, {first * 1000:.1f} ms)"
        )
        if delay_ms != DELAYS_MS[0]:
            return
        # baresip's CPU beside ours: our alice (direct to Kamailio) calls carol, Opus both ways
        alice = UserAgent(
            _account(server, "alice", server.tls_port),
            password=DEFAULT_USERS["alice"],
            pin_store_path=workdir / "pins-alice-cpu.json",
        )
        stack.push_async_callback(alice.close)
        await alice.register()
        call = await alice.call(f"sips:carol@{server.domain}", source=ToneSource(1000))
        await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
        await asyncio.sleep(1.0)  # media running
        pid = carol._proc.pid if carol._proc is not None else None
        assert pid is not None
        codec = call.media.statistics().codec if call.media is not None else "?"
        ours, theirs, threads = _cpu(), _proc_cpu(pid), _thread_cpu(pid)
        await asyncio.sleep(TALK_SECONDS)
        ours, theirs = _cpu() - ours, _proc_cpu(pid) - theirs
        after = _thread_cpu(pid)
        per_thread = sorted(((after[n] - threads.get(n, 0.0), n) for n in after), reverse=True)[:4]
        await call.hangup()
        print(
            f"CPU for a {TALK_SECONDS:g} s call our UA <-> baresip ({codec}, SRTP): "
            f"our UA {ours:.2f} s ({100 * ours / TALK_SECONDS:.1f} % of one core), "
            f"baresip {theirs:.2f} s ({100 * theirs / TALK_SECONDS:.1f} %)"
        )
        print("  baresip by thread: " + ", ".join(f"{n} {c:.2f} s" for c, n in per_thread))


def peers(server: KamailioServer, work: Path) -> None:
    if find_baresip() is None or find_module_dir() is None or find_linphonec() is None:
        print("baresip -> linphonec: baresip/baresip-core or linphone-cli not installed")
        return
    print("baresip -> linphonec on the same set-up (dial -> CALL_ESTABLISHED at baresip):")
    print(f"{'D ms':>5} {'RTT':>6} {'ms':>8}   runs (RTT)")
    for delay_ms in DELAYS_MS:
        try:
            asyncio.run(baresip_linphone(server, delay_ms, work))
        except (BaresipError, LinphoneError, TimeoutError, OSError) as exc:
            print(f"{delay_ms:5g} failed: {type(exc).__name__}: {exc}")


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
    audio: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-call-") as tmp:
        work = Path(tmp)
        pki = LabPKI.create(work / "pki")
        server = KamailioServer(work / "kamailio", pki, binary=binary, cert=CERT)
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
                setups, cpu, delays = asyncio.run(measure(server, delay_ms, work))
                cpu_per_call = cpu if cpu is not None else cpu_per_call
                audio = delays or audio
                median = statistics.median(setups)
                runs = ", ".join(f"{s / rtt:.2f}" for s in setups)
                print(f"{delay_ms:5g} {median / rtt:6.2f} {median * 1000:8.1f}   {runs}")
            peers(server, work)
        finally:
            server.close()
    if cpu_per_call is not None:
        print(
            f"CPU per UA for a {TALK_SECONDS:g} s call (Opus both ways, SRTP): "
            f"{cpu_per_call:.2f} s ({100 * cpu_per_call / TALK_SECONDS:.1f} % of one core)"
        )
    if audio:
        ms = sorted(1000 * d for d in audio)
        p95 = ms[min(len(ms) - 1, math.ceil(0.95 * len(ms)) - 1)]
        print(
            f"engine-added audio delay on loopback (play-out - send - jitter target), "
            f"{len(ms)} pulses: median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms"
        )
    else:
        print("engine-added audio delay: no pulse was heard")


if __name__ == "__main__":
    main()
