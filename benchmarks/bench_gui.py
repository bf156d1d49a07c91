"""GUI cold start and event-loop stalls during a call (``python benchmarks/bench_gui.py``; issue 7).

Targets (issue 7, "Quality"): cold start to a visible window within 1 s; the event loop never
stalls more than 20 ms during a call.

(a) Cold start: wall time from ``exec`` of ``softphone gui --exit-after-show
--no-single-instance`` (``QT_QPA_PLATFORM=offscreen``, fresh HOME, no account) to the line
``softphone gui: the main window was shown`` on its stderr, which ``ui.app.run`` prints once
the window is visible and its handle exposed (``ui.app._shown`` polls every 50 ms, so the
figure includes up to 50 ms of polling). The floor beside it: a ``python -c`` that imports
PySide6.QtWidgets, shows an empty QMainWindow and prints a line once it is exposed (polled
every 1 ms). Median of ``STARTS`` runs each, after one unmeasured run (bytecode cached, as
on an installed phone); the process's total time (with its exit path) is
printed too.

(b) Stalls: two GUI phones (:class:`ui.app.Phone`, bridge, CallManager, UserAgent, under qasync
as ``main`` runs them; both in this process, so the loop carries both ends of the call) in
  * a ``sips:`` call through a real Kamailio (TLS, SRTP, Opus), and
  * a ``sipsec:`` call through the engine's test sipsec proxy, run in a process of its own
    (nested TLS, self-signed identities, the trust questions clicked "Connect this time").
alice dials from the dialer (the window's Call button), bob auto-answers; ``TALK_SECONDS`` of
audio both ways, in which alice mutes, unmutes, sends a DTMF digit, holds, resumes, says "We
compared it" and opens the SIP trace (``ACTIONS``), then alice hangs up from the call window.
Each call is measured with bob a second GUI phone in this process (one loop carries both ends:
the worst case), and with bob ``softphone agent --auto-answer`` in a process of his own (as a
second phone is: alice's loop carries her phone only), that one ``BENCH_GUI_REPEAT`` times (3):
a stall that is ours shows in every run, the machine's in some. ``BENCH_GUI_HERE`` (1) is how
many times the call with both phones in this process is measured (the demo's layout). The peers'
processes (bob's agent, the proxies) run at niceness ``BENCH_GUI_PEER_NICE`` (10): on this
2-core machine they stand in for machines of their own, so alice's threads go first when
everything wants a CPU at once. Before
dialling, each phone has been up long enough to build its spare call window
(``ui.calls.CallManager.prepare_spare``) and warm its hidden tabs
(``ui.main_window.MainWindow.warm_hidden_tabs``), as it is before anyone dials.
The phones run calls' media on the media thread, as the desktop phone does
(softphone.media.thread). The floor beside them: the same ticker on an idle qasync loop. A
ticker on the loop sleeps ``TICK`` s and records how late it wakes (the lag = stall), and from
the loop thread's ``/proc`` schedstat how the lag was spent: on a CPU (our code; on this VM
also time the hypervisor took while the thread ran), waiting for a CPU (other threads or
processes had both), or neither (the GIL, a system call). The hypervisor's steal for the whole
VM (``/proc/stat``) is printed beside each figure. Every asyncio callback on the Qt thread is
timed (``asyncio.Handle._run`` wrapped in this process only) so the longest ones are named.
Every collection of Python's cyclic GC of 1 ms or more is timed too (``gc.callbacks``) and named
when it falls in one of the longest lags.
``BENCH_GUI_QT_EVENTS=1`` also times every Qt event on the GUI thread (a Python
``notify()``, so every event is slower: for finding what "Qt's own work" in a lag was, not for
the figures) and lists those inside the longest lags. Prints max, p99 and the culprits; never
asserts a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STARTS = 5
TICK = 0.005
#: Seconds of talk per call (BENCH_GUI_TALK): 1 measures many set-ups in little time.
TALK_SECONDS = float(os.environ.get("BENCH_GUI_TALK", "10"))
#: BENCH_GUI_ONLY=sipsec_call (names, comma-separated: cold_start, idle_floor, sips_call,
#: sipsec_call): only those parts. With BENCH_GUI_REPEAT=16 BENCH_GUI_TALK=1, sixteen sipsec
#: set-ups with bob an agent process in about a minute: enough calls to tell a change of a few
#: ms from this shared machine's noise (docs/benchmarks.md, stop 18).
ONLY = {name for name in os.environ.get("BENCH_GUI_ONLY", "").split(",") if name}
_RUNS = itertools.count()
#: How many times the calls with bob as an agent process are measured (BENCH_GUI_REPEAT).
REPEAT = int(os.environ.get("BENCH_GUI_REPEAT", "3"))
#: How many times the calls with both phones in this process (the demo's layout) are measured
#: (BENCH_GUI_HERE; 0 skips them).
HERE = int(os.environ.get("BENCH_GUI_HERE", "1"))
#: In the talk, alice does from her call window, ACTION_GAP s apart, what a person does in a
#: call: mute, unmute, a DTMF digit, hold, resume (each waited for), "We compared it" where the
#: call has a safety number, the SIP trace opened, then closed (BENCH_GUI_ACTIONS=0: none, the
#: talk alone, as until stop 19). The talk lasts BENCH_GUI_TALK or as long as they take.
ACTIONS = os.environ.get("BENCH_GUI_ACTIONS", "1") != "0"
ACTION_GAP = 0.5
#: BENCH_GUI_QT_EVENTS=1: time every Qt event delivered on the GUI thread (a QApplication whose
#: notify() is Python, which slows every event: a diagnostic, not a figure) and list the ones
#: of 2 ms or more inside the longest lags: what "Qt's own work" was (paint, layout, expose).
QT_EVENTS = os.environ.get("BENCH_GUI_QT_EVENTS", "") == "1"
#: (start monotonic, seconds, "event type -> receiver class") when QT_EVENTS
qt_events: list[tuple[float, float, str]] = []
#: the same for the outermost events of 0.2 ms or more (an event inside another's handling is
#: part of that one): what the GUI thread's time in a lag went to, summed by kind
qt_top_events: list[tuple[float, float, str]] = []
#: (start monotonic, seconds, generation, thread name) of every collection by Python's cyclic
#: GC of 1 ms or more: a collection runs inside whatever callback allocated last.
gc_pauses: list[tuple[float, float, int, str]] = []
_gc_started: dict[int, float] = {}


def _gc_callback(phase: str, info: dict[str, int]) -> None:
    me = threading.get_ident()
    if phase == "start":
        _gc_started[me] = time.monotonic()
    elif me in _gc_started:
        t0 = _gc_started.pop(me)
        if time.monotonic() - t0 >= 0.001:
            name = threading.current_thread().name
            gc_pauses.append((t0, time.monotonic() - t0, info["generation"], name))


WAIT = 30.0
SHOWN_LINE = b"the main window was shown"

FLOOR = """
import sys, time
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication([])
w = QMainWindow(); w.resize(800, 600); w.show()
while not (w.windowHandle() is not None and w.windowHandle().isExposed()):
    app.processEvents(); time.sleep(0.001)
sys.stderr.write("the main window was shown\\n"); sys.stderr.flush()
"""
IMPORT = "import sys, %s; sys.stderr.write('the main window was shown\\n')"


# ---- (a) cold start ---------------------------------------------------------------------------


def _timed_start(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds exec → SHOWN_LINE on stderr, seconds exec → exit)."""
    start = time.monotonic()
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    assert proc.stderr is not None
    shown: float | None = None
    tail: list[bytes] = []
    for line in proc.stderr:
        if SHOWN_LINE in line and shown is None:
            shown = time.monotonic() - start
        tail.append(line)
    code = proc.wait(timeout=60)
    total = time.monotonic() - start
    if code != 0 or shown is None:
        last = b"".join(tail[-5:]).decode(errors="replace")
        raise RuntimeError(f"{args[0]} exited {code}: {last}")
    return shown, total


def cold_start() -> None:
    softphone = ROOT / ".venv" / "bin" / "softphone"
    python = ROOT / ".venv" / "bin" / "python"
    with tempfile.TemporaryDirectory(prefix="bench-gui-") as home:
        env = dict(
            os.environ,
            QT_QPA_PLATFORM="offscreen",
            HOME=home,
            XDG_CONFIG_HOME=f"{home}/config",
            XDG_DATA_HOME=f"{home}/data",
            PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
        )
        env.pop("PYTHONASYNCIODEBUG", None)
        # Bytecode cached, as on an installed phone (pip compiles at install; a source tree
        # writes __pycache__ on the first run): this sandbox sets PYTHONDONTWRITEBYTECODE,
        # which would make every start compile ~50 modules (0.2 s) again.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        rows = (
            ("softphone gui", [str(softphone), "gui", "--exit-after-show", "--no-single-instance"]),
            ("floor: PySide6 + empty QMainWindow", [str(python), "-c", FLOOR]),
            ("part: python -c 'import softphone.ua'", [str(python), "-c", IMPORT % "softphone.ua"]),
            ("part: python -c 'import ui.app'", [str(python), "-c", IMPORT % "ui.app"]),
        )
        print(f"(a) cold start, QT_QPA_PLATFORM=offscreen, median of {STARTS}; target 1 s")
        print(f"{'what':<38} {'shown s':>8} {'exit s':>7}   runs to shown (s)")
        for what, args in rows:
            try:
                _timed_start(args, env)  # warm-up, unmeasured: writes the bytecode caches
                runs = [_timed_start(args, env) for _ in range(STARTS)]
            except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"{what:<38} failed: {exc}")
                continue
            shown = statistics.median(r[0] for r in runs)
            total = statistics.median(r[1] for r in runs)
            listing = ", ".join(f"{r[0]:.2f}" for r in runs)
            print(f"{what:<38} {shown:8.3f} {total:7.3f}   {listing}")


# ---- (b) stalls during a call ------------------------------------------------------------------


def _task_name(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return f"task {getattr(coro, '__qualname__', coro)!s}"


def _describe(handle: asyncio.Handle) -> str:
    """The task (coroutine) a handle steps; for the end of a sleep (``asyncio.sleep``'s
    ``_set_result_unless_cancelled``), the tasks that sleep wakes; else the callback's repr."""
    callback = getattr(handle, "_callback", None)
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        return _task_name(task)
    args = getattr(handle, "_args", None) or ()
    if getattr(callback, "__name__", "") == "_set_result_unless_cancelled" and args:
        waiting = [
            _task_name(waker.__self__)
            for waker, _context in getattr(args[0], "_callbacks", None) or ()
            if isinstance(getattr(waker, "__self__", None), asyncio.Task)
        ]
        if waiting:
            return "sleep ended, wakes " + ", ".join(waiting)
    return repr(handle)[:200]


def _stack(frame: Any) -> str:
    """The innermost frames of the project (softphone/, ui/) and the library below them."""
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    parts = []
    for f in frames[:40]:
        name = f.f_code.co_filename
        short = name.split("/site-packages/")[-1].replace(str(ROOT) + "/", "")
        parts.append(f"{short}:{f.f_lineno} {f.f_code.co_name}")
    ours = [p for p in parts if p.startswith(("softphone/", "ui/"))]
    return " <- ".join(parts[:2] + [p for p in ours[:4] if p not in parts[:2]])


class CallbackTimer:
    """Times every asyncio callback run on this (the Qt) thread (``Handle._run`` wrapped; the
    media thread's loop is not timed); a sampler thread records the main thread's stack
    whenever a callback has run for 15 ms or more, and every 5 ms in any case (``timeline``:
    what the thread was doing during a lag that no asyncio callback explains: Qt's own
    painting and layout show as the bare event-loop frame, Python slots by name)."""

    def __init__(self) -> None:
        self.slow: list[tuple[float, float, str]] = []  # (start monotonic, seconds, what)
        #: (start monotonic, CPU seconds of this thread, what) of every callback over 5 ms of
        #: CPU: what our code holds the loop for, without the time the machine took the CPU
        #: away (a shared VM: steal) — the wall-clock lag includes both.
        self.cpu: list[tuple[float, float, str]] = []
        #: (start monotonic, seconds, CPU seconds, what) of every callback of 0.5 ms or more:
        #: what a long lag was made of
        self.every: list[tuple[float, float, float, str]] = []
        self.samples: dict[float, list[str]] = {}  # callback start -> stacks seen during it
        self.timeline: list[tuple[float, str]] = []  # (monotonic, main thread's stack)
        #: (monotonic, {thread name: ns on a CPU so far}) of this process's other Python
        #: threads, every sample: which of them ran during a lag (the GIL is one lock: a
        #: thread of ours on a CPU can keep the loop's thread waiting for it)
        self.threads: list[tuple[float, dict[str, int]]] = []
        #: (start, end, s of CPU, what) of every ``asyncio.to_thread`` job: the worker
        #: threads' Python holds the GIL against the loop
        self.jobs: list[tuple[float, float, float, str]] = []
        self._to_thread: Any = None
        self._thread_fds: dict[int, int] = {}
        self._original: Callable[[Any], None] | None = None
        self._current: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _thread_cpu(self) -> dict[str, int]:
        """ns on a CPU so far of every other thread of this process (``/proc`` schedstat):
        Python's threads by name, and the rest (qasync's ``_QThreadWorker`` that run
        ``asyncio.to_thread`` work, Qt's pool) by the name the kernel knows them by."""
        names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
        skip = {threading.get_native_id(), threading.main_thread().native_id}
        seen: dict[str, int] = {}
        for entry in os.listdir("/proc/self/task"):
            tid = int(entry)
            if tid in skip:
                continue
            fd = self._thread_fds.get(tid)
            try:
                if fd is None:
                    fd = os.open(f"/proc/self/task/{tid}/schedstat", os.O_RDONLY)
                    self._thread_fds[tid] = fd
                name = names.get(tid)
                if name is None:
                    with open(f"/proc/self/task/{tid}/comm") as comm:
                        name = comm.read().strip()
                seen[f"{name}#{tid}"] = int(os.pread(fd, 128, 0).split()[0])
            except (OSError, IndexError, ValueError):
                continue
        return seen

    def busy_threads(self, start: float, end: float) -> list[tuple[str, float]]:
        """(thread, ms on a CPU) of the other Python threads between the samples around
        ``start``..``end`` (5 ms apart, so the window is up to 10 ms wider)."""
        before = [s for s in self.threads if s[0] <= start]
        after = [s for s in self.threads if s[0] >= end]
        if not before or not after:
            return []
        cpu0, cpu1 = before[-1][1], after[0][1]
        used = [(name, (ns - cpu0.get(name, 0)) / 1e6) for name, ns in cpu1.items()]
        return sorted(((n, ms) for n, ms in used if ms >= 0.5), key=lambda u: -u[1])

    def _sample(self, main: int) -> None:
        while not self._stop.wait(0.005):
            self.threads.append((time.monotonic(), self._thread_cpu()))
            t0 = self._current
            frame = sys._current_frames().get(main)
            if frame is None:
                continue
            stack = _stack(frame)
            self.timeline.append((time.monotonic(), stack))
            if t0 is not None and time.monotonic() - t0 >= 0.015:
                self.samples.setdefault(t0, []).append(stack)

    def __enter__(self) -> CallbackTimer:
        original = asyncio.Handle._run
        self._original = original
        me = self
        main = threading.get_ident()

        def timed(handle: asyncio.Handle) -> None:
            if threading.get_ident() != main:  # the media thread's loop: not the window's
                original(handle)
                return
            t0 = time.monotonic()
            c0 = time.thread_time()
            me._current = t0
            try:
                original(handle)
            finally:
                me._current = None
            took = time.monotonic() - t0
            cpu = time.thread_time() - c0
            if took >= 0.0005:
                me.every.append((t0, took, cpu, _describe(handle)))
            if took >= 0.010:
                me.slow.append((t0, took, _describe(handle)))
            if cpu >= 0.005:
                me.cpu.append((t0, cpu, _describe(handle)))

        setattr(asyncio.Handle, "_run", timed)  # noqa: B010 - patched for this process only
        to_thread = self._to_thread = asyncio.to_thread

        async def timed_to_thread(func: Callable[..., Any], /, *args: Any, **kw: Any) -> Any:
            what = getattr(func, "__qualname__", repr(func))

            def job() -> Any:
                t0, c0 = time.monotonic(), time.thread_time()
                try:
                    return func(*args, **kw)
                finally:
                    me.jobs.append((t0, time.monotonic(), time.thread_time() - c0, what))

            return await to_thread(job)

        asyncio.to_thread = timed_to_thread  # the engine and the window call it by attribute
        self._thread = threading.Thread(target=self._sample, args=(main,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for fd in self._thread_fds.values():
            os.close(fd)
        self._thread_fds.clear()
        if self._original is not None:
            setattr(asyncio.Handle, "_run", self._original)  # noqa: B010
        if self._to_thread is not None:
            asyncio.to_thread = self._to_thread


def _schedstat_reader() -> Callable[[], tuple[int, int]]:
    """(ns on a CPU, ns runnable but waiting for one) of the calling thread so far, from
    ``/proc/self/task/<tid>/schedstat`` (Linux; zeros where there is none)."""
    try:
        fd = os.open(f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY)
    except OSError:
        return lambda: (0, 0)

    def read() -> tuple[int, int]:
        on_cpu, waiting, _ = os.pread(fd, 128, 0).split()
        return int(on_cpu), int(waiting)

    return read


def machine_steal() -> float:
    """Seconds of CPU the hypervisor took from this VM so far (``/proc/stat``, all CPUs)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _steal_reader() -> Callable[[], float]:
    """Seconds the hypervisor has taken so far from the CPU the calling thread is on now
    (``/proc/stat`` per CPU, in 10 ms units; ``/proc/thread-self/stat`` field 39)."""
    hz = os.sysconf("SC_CLK_TCK")
    try:
        me = os.open(f"/proc/self/task/{threading.get_native_id()}/stat", os.O_RDONLY)
    except OSError:
        return lambda: 0.0

    def read() -> float:
        cpu = "cpu" + os.pread(me, 1024, 0).rsplit(b")", 1)[1].split()[36].decode()
        for line in Path("/proc/stat").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[0] == cpu:
                return int(fields[8]) / hz
        return 0.0

    return read


class Ticker:
    """Sleeps TICK on the loop and records how late each wake-up is; from the loop thread's
    schedstat, how that lag was spent: on a CPU (our code, or time the hypervisor took while
    the thread ran), runnable but waiting for a CPU (other threads and processes had them), or
    neither (waiting for the GIL, or in a system call); and how much the hypervisor took from
    the thread's CPU meanwhile (steal, counted by the guest kernel in 10 ms units)."""

    def __init__(self) -> None:
        #: (expected wake-up, lag, seconds on a CPU, seconds waiting for a CPU, steal on the
        #: thread's CPU) per tick
        self.lags: list[tuple[float, float, float, float, float]] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        sched, steal = _schedstat_reader(), _steal_reader()
        while True:
            expected = time.monotonic() + TICK
            cpu0, wait0 = sched()
            steal0 = steal()
            await asyncio.sleep(TICK)
            now = time.monotonic()
            cpu1, wait1 = sched()
            lag = max(0.0, now - expected)
            stolen = max(0.0, steal() - steal0)
            self.lags.append((expected, lag, (cpu1 - cpu0) / 1e9, (wait1 - wait0) / 1e9, stolen))

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _why(ticks: list[tuple[float, float, float, float, float]]) -> str:
    """How the ticks' lags were spent (see :class:`Ticker`), in words."""
    on_cpu = sum(1 for _, lag, cpu, _w, _s in ticks if cpu >= lag / 2)
    waiting = sum(1 for _, lag, cpu, wait, _s in ticks if cpu < lag / 2 and wait >= lag / 2)
    other = len(ticks) - on_cpu - waiting
    return (
        f"{on_cpu} with the loop's thread on a CPU most of the lag, {waiting} waiting for a "
        f"CPU (other threads/processes ran), {other} neither (GIL or a system call)"
    )


def report(
    label: str,
    ticker: Ticker,
    timer: CallbackTimer,
    began: float,
    ended: float,
    *,
    steal: float | None = None,
) -> tuple[float, int, float]:
    """Prints the figures; returns (max lag ms, ticks over 20 ms, steal ms)."""
    ticks = [t for t in ticker.lags if began <= t[0] <= ended]
    lags = [t[1] for t in ticks]
    if not lags:
        print(f"{label}: no ticks")
        return (0.0, 0, 0.0)
    lags_ms = sorted(1000 * lag for lag in lags)
    p99 = lags_ms[min(len(lags_ms) - 1, int(0.99 * len(lags_ms)))]
    over = over_20 = sum(1 for lag in lags_ms if lag > 20)
    print(
        f"{label}: {len(lags_ms)} ticks; lag median {statistics.median(lags_ms):.1f} ms, "
        f"p99 {p99:.1f} ms, max {lags_ms[-1]:.1f} ms; {over} ticks over 20 ms"
    )
    if over:
        print(f"    the ticks over 20 ms: {_why([t for t in ticks if t[1] > 0.020])}")
        net = sorted(1000 * max(0.0, t[1] - t[4]) for t in ticks)
        print(
            f"    less the steal on the loop thread's CPU during each tick: max {net[-1]:.1f} ms, "
            f"{sum(1 for lag in net if lag > 20)} ticks over 20 ms"
        )
    if steal is not None:
        print(f"    the hypervisor took {1000 * steal:.0f} ms of CPU from this VM meanwhile")
    worst_at = max(ticks, key=lambda t: t[1])[0]
    slow = sorted((s for s in timer.slow if began <= s[0] <= ended), key=lambda s: -s[1])
    for t0, took, what in slow[:4]:
        mark = " <- at the max lag" if t0 - 0.05 <= worst_at <= t0 + took + 0.05 else ""
        print(f"    {1000 * took:6.1f} ms at +{t0 - began:5.2f} s: {what}{mark}")
        stacks = timer.samples.get(t0, [])
        for stack in sorted(set(stacks), key=stacks.count, reverse=True)[:2]:
            print(f"        {stacks.count(stack)}x {stack}")
    if not slow:
        print("    no asyncio callback took 10 ms or more (the stall was outside asyncio)")
    for rank, (at, lag, _cpu, _wait, _steal) in enumerate(sorted(ticks, key=lambda t: -t[1])[:3]):
        if rank and lag <= 0.020:  # the longest lag is always explained, the others over 20 ms
            break
        seen = [stack for t, stack in timer.timeline if at <= t <= at + lag]
        common = sorted(set(seen), key=seen.count, reverse=True)[:2]
        print(f"    during the {1000 * lag:.0f} ms lag at +{at - began:5.2f} s the thread was in:")
        for stack in common:
            print(f"        {seen.count(stack)}x {stack}")
        inside = [
            (t0, took, cpu, what)
            for t0, took, cpu, what in timer.every
            if t0 < at + lag and t0 + took > at and "Ticker._run" not in what
        ]
        for _t0, took, cpu, what in inside:
            print(f"        callback {1000 * took:5.1f} ms ({1000 * cpu:.1f} ms CPU): {what}")
        in_callbacks = 1000 * sum(took for _, took, _, _ in inside)
        print(
            f"        callbacks {in_callbacks:.1f} ms in all; the rest was Qt's own work (paint,"
            " layout, its events), or the thread did not run"
        )
        busy = timer.busy_threads(at, at + lag)
        if busy:
            print(
                "        other threads of this process on a CPU meanwhile (the GIL is theirs "
                "while they run Python): " + ", ".join(f"{name} {ms:.1f} ms" for name, ms in busy)
            )
        for t0, t1, cpu, what in timer.jobs:
            if t0 < at + lag and t1 > at:
                print(
                    f"        worker job (asyncio.to_thread) {1000 * (t1 - t0):5.1f} ms "
                    f"({1000 * cpu:.1f} ms CPU) from +{t0 - began:5.2f} s: {what}"
                )
        for t0, took, what in qt_events:  # BENCH_GUI_QT_EVENTS=1 (each includes its slots)
            if t0 < at + lag and t0 + took > at and took >= 0.002:
                print(f"        Qt event {1000 * took:5.1f} ms: {what}")
        top = [(took, what) for t0, took, what in qt_top_events if t0 < at + lag and t0 + took > at]
        if top:
            kinds: dict[str, float] = {}
            for took, what in top:
                kinds[what] = kinds.get(what, 0.0) + took
            print(
                f"        Qt events of 0.2 ms or more, outermost only: {len(top)}, "
                f"{1000 * sum(t for t, _ in top):.1f} ms in all: "
                + ", ".join(
                    f"{what} {1000 * ms:.1f}"
                    for what, ms in sorted(kinds.items(), key=lambda k: -k[1])[:6]
                )
            )
        for t0, took, generation, thread in gc_pauses:
            if t0 < at + lag and t0 + took > at:
                print(
                    f"        GC of generation {generation} {1000 * took:5.1f} ms "
                    f"(in thread {thread})"
                )
    cpu = sorted((c for c in timer.cpu if began <= c[0] <= ended), key=lambda c: -c[1])
    if cpu:
        t0, took, what = cpu[0]
        over = sum(1 for c in cpu if c[1] > 0.020)
        print(
            f"    longest callback in CPU time: {1000 * took:.1f} ms at +{t0 - began:5.2f} s "
            f"({what}); {over} callbacks over 20 ms of CPU"
        )
    else:
        print("    no callback used 5 ms of CPU or more")
    main_thread = threading.main_thread().name
    pauses = [p for p in gc_pauses if began <= p[0] <= ended and p[3] == main_thread]
    if pauses:
        t0, took, generation, _ = max(pauses, key=lambda p: p[1])
        print(
            f"    GC on the loop's thread: {len(pauses)} collections of 1 ms or more, the "
            f"longest {1000 * took:.1f} ms (generation {generation}) at +{t0 - began:5.2f} s"
        )
    else:
        print("    GC on the loop's thread: no collection of 1 ms or more")
    return (lags_ms[-1], over_20, 1000 * (steal or 0.0))


def summary(label: str, runs: list[tuple[float, int, float]]) -> None:
    """The same call measured several times: the stall that is ours shows in every run, the
    machine's (hypervisor steal, other processes) in some."""
    if not runs:
        return
    maxes = ", ".join(f"{m:.0f}" for m, _, _ in runs)
    clean = sum(1 for _, over, _ in runs if over == 0)
    steal = ", ".join(f"{s:.0f}" for _, _, s in runs)
    least = min(m for m, _, _ in runs)
    middle = statistics.median(m for m, _, _ in runs)
    print(
        f"  {label}, {len(runs)} runs: max lag per run {maxes} ms (min {least:.1f} ms, median "
        f"{middle:.1f} ms); {clean} of {len(runs)} runs with no tick over 20 ms; steal per run "
        f"{steal} ms"
    )


def answer_trust_questions(*phones: Any) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    for phone in phones:
        for dialog in list(phone.bridge.open_dialogs.values()):
            if dialog.isVisible():
                QTest.mouseClick(dialog.once_button, Qt.MouseButton.LeftButton)


async def until(condition: Callable[[], Any], what: str) -> Any:
    from tests.ui.demo_journey import until as poll  # PySide6: imported once Qt is up

    return await poll(condition, what, wait=WAIT, every=0.02)


PROXY = """
import asyncio, sys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.transport.certs import Identity
from tests.ua.sipsec_proxy import SipsecProxy

cert = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
key = serialization.load_pem_private_key(open(sys.argv[2], "rb").read(), None)

async def main():
    async with SipsecProxy(Identity((cert,), key)) as proxy:
        print(proxy.port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


#: The niceness of the peers' processes (bob's agent, the sipsec proxy): on this 2-core machine
#: they stand in for another phone and a proxy that would run on other machines, so alice's
#: threads go first when all want a CPU at once (call set-up); they still run whenever one is
#: free. BENCH_GUI_PEER_NICE=0 measures them competing as equals.
PEER_NICE = int(os.environ.get("BENCH_GUI_PEER_NICE", "10"))


def behind(pid: int) -> None:
    """Lower the priority of a peer's process (its threads made later inherit it)."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, PEER_NICE)


class ProxyProcess:
    """The engine's test sipsec proxy in a process of its own (as a proxy is: not on alice's
    loop), for as long as the ``async with`` lasts; ``port`` once started."""

    def __init__(self, ca: Any, workdir: Path) -> None:
        from cryptography.hazmat.primitives import serialization

        self.cert_file, self.key_file = workdir / "proxy-ca.pem", workdir / "proxy-ca-key.pem"
        self.cert_file.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
        self.key_file.write_bytes(
            ca.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> ProxyProcess:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            PROXY,
            str(self.cert_file),
            str(self.key_file),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            cwd=ROOT,
        )
        behind(self.process.pid)
        assert self.process.stdout is not None
        async with asyncio.timeout(WAIT):
            self.port = int(await self.process.stdout.readline())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.process is not None and self.process.stdin is not None:
            self.process.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 10)
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()


class PeerAgent:
    """bob in a process of his own (``softphone agent --auto-answer``), as the other phone of
    a call is: alice's event loop then carries only her phone."""

    def __init__(self, account_toml: str, workdir: Path, env: dict[str, str]) -> None:
        self.account = workdir / "bob-agent.toml"
        self.account.write_text(account_toml, encoding="utf-8")
        self.workdir = workdir
        self.env = env
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), **self.env)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "softphone.agent",
            "--account",
            str(self.account),
            "--pin-store",
            str(self.workdir / "bob-agent-pins.json"),
            "--auto-answer",
            "--on-untrusted",
            "accept-once",
            "--sipsec-policy",
            "accept",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
        )
        behind(self.process.pid)
        await self.until("registered")

    async def until(self, name: str) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        async with asyncio.timeout(WAIT):
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    raise RuntimeError(f"bob's agent exited before {name!r}")
                event = json.loads(line)
                if event.get("event") == name:
                    return dict(event)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 10)
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()


async def gui_call(
    label: str,
    accounts: list[tuple[Any, dict[str, Any]]],
    dial: str,
    workdir: Path,
    peer: PeerAgent | None = None,
) -> tuple[float, int, float]:
    """alice's Phone dials ``dial``; bob (a second Phone in this process, or ``peer``, an
    agent process) auto-answers; talk, alice hangs up; lag report."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from ui.app import Phone

    phones: list[Phone] = []
    ticker, timer = Ticker(), CallbackTimer()
    try:
        for i, (account, options) in enumerate(accounts):
            # Each run its own files: a repeat meets bob's new certificate as a stranger
            # again, not as a "changed" contact.
            run = workdir / f"run-{next(_RUNS)}"
            run.mkdir()
            phone = Phone(history_path=run / f"history-{i}.json")
            phone.window.show()
            phone.add_account(
                account,
                pin_store_path=run / f"pins-{i}.json",
                auto_answer=i == 1,
                **options,
            )
            phones.append(phone)
        alice = phones[0]
        others = phones[1:]
        if peer is not None:
            await peer.start()
        for phone in phones:
            aor = phone.user_agents[0].account.aor

            def registered(p: Phone = phone, a: str = aor) -> bool:
                return bool(p.window.view(a).state == "Registered")

            await until(registered, "registered")
            # As a person would: the phone has been up for a moment (its spare call window,
            # built at idle after start-up, is ready: ui.calls.CallManager.prepare_spare).
            await until(lambda p=phone: p.calls.spare is not None, "spare call window")
            await until(lambda p=phone: p.window.warmed, "hidden tabs warmed")
        with timer:
            ticker.start()
            began, steal0 = time.monotonic(), machine_steal()
            alice.window.set_dial_text(dial)
            QTest.mouseClick(alice.window.call_button, Qt.MouseButton.LeftButton)

            def established() -> Any:
                answer_trust_questions(alice, *others)
                if alice.window.dial_error.text():
                    raise RuntimeError(alice.window.dial_error.text())
                for window in alice.calls.windows.values():
                    if window.presenter.phase == "established":
                        return window
                return None

            window = await until(established, "alice in call")
            setup = time.monotonic() - began
            talk_began = time.monotonic()
            actions = await in_call_actions(alice, window, began) if ACTIONS else []
            await asyncio.sleep(max(0.0, TALK_SECONDS - (time.monotonic() - talk_began)))
            QTest.mouseClick(window.hangup_button, Qt.MouseButton.LeftButton)
            await until(lambda: window.presenter.phase == "ended", "alice ended")
            ended, steal = time.monotonic(), machine_steal() - steal0
            await ticker.stop()
        if actions:
            print("    alice's actions: " + ", ".join(actions))
        return report(
            f"{label} (dial → 200 {1000 * setup:.0f} ms, {TALK_SECONDS:g} s talk"
            f"{' with actions' if actions else ''}, hang-up)",
            ticker,
            timer,
            began,
            ended,
            steal=steal,
        )
    finally:
        await ticker.stop()
        for phone in phones:
            await phone.close()
        if peer is not None:
            await peer.stop()


async def in_call_actions(phone: Any, window: Any, began: float) -> list[str]:
    """What a person does in a call (``ACTIONS``), clicked in ``window``; the names of the
    actions done, with the time each began (seconds after the dial, as the lags are given)."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    done: list[str] = []
    call_id = window.presenter.call_id

    async def step(name: str, button: Any, finished: Callable[[], Any] | None = None) -> None:
        await asyncio.sleep(ACTION_GAP)
        if not button.isEnabled():
            return
        done.append(f"{name} +{time.monotonic() - began:.2f} s")
        QTest.mouseClick(button, Qt.MouseButton.LeftButton)
        if finished is not None:
            await until(finished, name)

    await step("mute", window.mute_button, lambda: window.muted)
    await step("unmute", window.mute_button, lambda: not window.muted)
    await step("DTMF 5", window.keypad["5"])
    await step("hold", window.hold_button, lambda: "us" in window.presenter.held_by)
    await step("resume", window.hold_button, lambda: "us" not in window.presenter.held_by)
    await step("we compared it", window.security.compare_button)
    await step("SIP trace", window.trace_button, lambda: call_id in phone.calls.ladders)
    ladder = phone.calls.ladders.get(call_id)
    if ladder is not None:
        await asyncio.sleep(ACTION_GAP)
        done.append(f"SIP trace closed +{time.monotonic() - began:.2f} s")
        ladder.close()
    return done


async def sips_call(workdir: Path) -> None:
    from softphone.ua.account import Account, ResolveEntry
    from tests.interop.kamailio import (
        DEFAULT_USERS,
        KamailioError,
        KamailioServer,
        find_kamailio,
        find_tls_module,
    )
    from tests.interop.pki import LabPKI

    binary = find_kamailio()
    if binary is None or find_tls_module(binary) is None:
        print("sips: kamailio (with its TLS module) not installed: not measured")
        return
    server = KamailioServer(workdir / "kamailio", LabPKI.create(workdir / "pki"), binary=binary)
    try:
        await asyncio.to_thread(server.start)
    except KamailioError as exc:
        print(f"sips: kamailio did not start: {exc}")
        return
    if server.pid is not None:  # its own process group: every child too
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PGRP, server.pid, PEER_NICE)
    try:
        accounts = [
            (
                Account(
                    aor=f"sips:{user}@{server.domain}",
                    registrar=f"sips:{server.domain}:{server.tls_port}",
                    resolve=(ResolveEntry(server.domain, server.tls_port, "127.0.0.1"),),
                    ca_file=server.ca_cert_path,
                ),
                {"password": DEFAULT_USERS[user]},
            )
            for user in ("alice", "bob")
        ]
        dial = f"sips:bob@{server.domain}"
        label = "sips: via Kamailio, both phones here"
        summary(label, [await gui_call(label, accounts, dial, workdir) for _ in range(HERE)])
        bob = PeerAgent(
            "\n".join(
                [
                    f'aor = "sips:bob@{server.domain}"',
                    f'registrar = "sips:{server.domain}:{server.tls_port}"',
                    f'resolve = ["{server.domain}:{server.tls_port}:127.0.0.1"]',
                    f'ca_file = "{server.ca_cert_path}"',
                    'password_env = "BENCH_BOB_PASSWORD"',
                ]
            )
            + "\n",
            workdir,
            {"BENCH_BOB_PASSWORD": DEFAULT_USERS["bob"]},
        )
        label = "sips: via Kamailio, bob an agent process"
        runs = [await gui_call(label, accounts[:1], dial, workdir, peer=bob) for _ in range(REPEAT)]
        summary(label, runs)
    finally:
        await asyncio.to_thread(server.close)


async def sipsec_call(workdir: Path) -> None:
    from softphone.security.identity import new_identity
    from softphone.ua import Account, ResolveEntry
    from softphone.ua.account import SipsecAccept
    from softphone.ua.useragent import Backoff
    from tests.transport import certs
    from tests.ua.sipsec_proxy import PROXY_DOMAIN

    ca = certs.make_ca("bench GUI CA")
    now = dt.datetime.now(dt.UTC)
    async with ProxyProcess(ca, workdir) as proxy:
        accounts = [
            (
                Account(
                    aor=f"sips:{who}",
                    registrar=f"sips:{PROXY_DOMAIN}:{proxy.port}",
                    resolve=(ResolveEntry(PROXY_DOMAIN, proxy.port, "127.0.0.1"),),
                    sipsec_accept=SipsecAccept.ACCEPT,
                ),
                {
                    "anchors": (ca.cert,),
                    "backoff": Backoff(base=0.05, cap=0.5),
                    "identity": new_identity(f"sip:{who}", now=now),
                    "password": "unused",
                },
            )
            for who in ("alice@atlanta.test", "bob@biloxi.test")
        ]
        dial = "sipsec:bob@biloxi.test"
        label = "sipsec: via the test proxy, both phones here"
        summary(label, [await gui_call(label, accounts, dial, workdir) for _ in range(HERE)])
        label = "sipsec: via the test proxy, bob an agent process"
        runs = [
            await gui_call(
                label, accounts[:1], dial, workdir, peer=_sipsec_agent(proxy, ca, workdir)
            )
            for _ in range(REPEAT)
        ]
        summary(label, runs)


def _sipsec_agent(proxy: Any, ca: Any, workdir: Path) -> PeerAgent:
    """bob@biloxi.test as an agent process: his identity in an identity store under the
    agent's XDG_DATA_HOME, its passphrase handed over in a read-only test keyring."""
    import keyring
    from cryptography.hazmat.primitives import serialization

    from softphone.identity_store import IDENTITY_SERVICE, IdentityStore
    from softphone.security.identity import new_identity
    from tests.keyrings import InMemoryKeyring
    from tests.ua.sipsec_proxy import PROXY_DOMAIN

    aor = "sip:bob@biloxi.test"
    data_home = workdir / f"bob-agent-data-{next(_RUNS)}"
    previous = keyring.get_keyring()
    keyring.set_keyring(InMemoryKeyring())
    try:
        store = IdentityStore(data_home / "softphone" / "identity")
        store.save(new_identity(aor, now=dt.datetime.now(dt.UTC)))
        passphrase = keyring.get_password(IDENTITY_SERVICE, aor)
    finally:
        keyring.set_keyring(previous)
    ca_file = workdir / "bench-gui-ca.pem"
    ca_file.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    return PeerAgent(
        "\n".join(
            [
                'aor = "sips:bob@biloxi.test"',
                f'registrar = "sips:{PROXY_DOMAIN}:{proxy.port}"',
                f'resolve = ["{PROXY_DOMAIN}:{proxy.port}:127.0.0.1"]',
                f'ca_file = "{ca_file}"',
                'password_env = "BENCH_BOB_PASSWORD"',
                'sipsec_accept = "accept"',
            ]
        )
        + "\n",
        workdir,
        {
            "BENCH_BOB_PASSWORD": "unused",
            "XDG_DATA_HOME": str(data_home),
            "PYTHON_KEYRING_BACKEND": "tests.ua.sipsec_proxy.EnvKeyring",
            "SOFTPHONE_TEST_KEYRING": json.dumps({f"{IDENTITY_SERVICE}|{aor}": passphrase}),
        },
    )


async def idle_floor(workdir: Path) -> None:
    """The floor: the same ticker on a qasync loop with nothing else on it, for as long as a
    call is measured. What this shared machine's scheduler alone costs a loop."""
    ticker, timer = Ticker(), CallbackTimer()
    with timer:
        ticker.start()
        began, steal0 = time.monotonic(), machine_steal()
        await asyncio.sleep(TALK_SECONDS)
        ended, steal = time.monotonic(), machine_steal() - steal0
        await ticker.stop()
    label = f"floor: an idle qasync loop, no phone ({TALK_SECONDS:g} s)"
    report(label, ticker, timer, began, ended, steal=steal)


def _timed_application() -> Any:
    """A QApplication that records every Qt event of 2 ms or more (``QT_EVENTS``)."""
    from PySide6.QtWidgets import QApplication

    class TimedApplication(QApplication):
        depth = 0

        def notify(self, receiver: Any, event: Any) -> bool:
            t0 = time.monotonic()
            TimedApplication.depth += 1
            try:
                return bool(super().notify(receiver, event))
            finally:
                TimedApplication.depth -= 1
                took = time.monotonic() - t0
                if took >= 0.002 or (TimedApplication.depth == 0 and took >= 0.0002):
                    kind = getattr(event.type(), "name", str(event.type()))
                    what = f"{kind} -> {type(receiver).__name__}"
                    qt_events.append((t0, took, what))
                    if TimedApplication.depth == 0:
                        qt_top_events.append((t0, took, what))

    return TimedApplication([sys.argv[0]])


def stalls() -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import qasync
    import shiboken6
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or (
        _timed_application() if QT_EVENTS else QApplication([sys.argv[0]])
    )
    gc.callbacks.append(_gc_callback)
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    print(f"(b) event-loop lag during a GUI call (ticker every {TICK * 1000:g} ms); target 20 ms")
    scenarios: list[Callable[[Path], Coroutine[Any, Any, None]]] = [
        scenario
        for scenario in (idle_floor, sips_call, sipsec_call)
        if not ONLY or scenario.__name__ in ONLY
    ]
    with tempfile.TemporaryDirectory(prefix="bench-gui-") as tmp:
        for scenario in scenarios:
            loop = qasync.QEventLoop(app)
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(asyncio.wait_for(scenario(Path(tmp)), 120))
            except Exception as exc:  # noqa: BLE001 - a benchmark reports and goes on
                print(f"{scenario.__name__}: failed: {type(exc).__name__}: {exc}")
            finally:
                loop.close()
                # As tests/ui/conftest.py: the closed loop's QObject timer deleted here, on
                # the Qt thread (left to a collection in a worker thread, a timer fires on
                # freed memory later).
                shiboken6.delete(loop._timer)
                asyncio.set_event_loop(None)


def main() -> None:
    print("shared 2-core machine: figures are from one run, read them as shapes")
    if not ONLY or "cold_start" in ONLY:
        cold_start()
        print()
    stalls()


if __name__ == "__main__":
    main()
