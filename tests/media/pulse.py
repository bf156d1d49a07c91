"""A private, headless PulseAudio with one null sink (48 kHz mono): the sound card of the tests
(``tests/media/test_devices.py``'s ``pulse`` fixture) and of ``benchmarks/bench_audio.py``.

Its own XDG_RUNTIME_DIR and unix socket; PortAudio reaches it through ALSA's pulse plugin, as
on a desktop. The sink's monitor is the matching source, so what is played can be recorded back.

A null sink is a card with a quirk no real one has. With no stream asking for a latency it
renders in blocks of its maximum latency, 2 s, and a stream that connects in the middle of
such a block waits for the block's end: a capture stream opened then got its first frame after
2.0 s (PortAudio via the pulse plugin, 10-90 % of the opens, depending on the timing). A test
tone of 1 s played in that window was never heard: the settings test's meter stayed "silent"
in two CI runs. Real sinks (alsa-sink) re-arm their timer when a stream asks for less, so the
daemon here gets a ``parec`` that records the monitor at 10 ms for its whole life, and
:func:`start_private_pulse` returns once that recorder is fed: from then on the sink renders
every 10 ms and every new stream starts at once.

The daemon runs without shared memory (``--disable-shm``): audio goes over its socket. With
memfd blocks, PulseAudio 16.1 (Debian 12) logs "Cannot send block reference with
non-registered memfd ID" (its issue 824) a few times in a run of the sound tests as clients come
and go, and once in CI it aborted on the assertion that follows
(``memblock_replace_import``), so every later sound test failed. The ``pulse`` fixture fails a
test after which the daemon has died or logged an error; ``PULSE_KEEP_LOG=<dir>`` keeps each
daemon's log there when it stops.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from softphone.media import devices
from softphone.media.devices import PortAudioMissingError

PULSE_HINT = (
    "apt-get install pulseaudio pulseaudio-utils libasound2-plugins libportaudio2"
    " (or: make test as root)"
)
ALSA_PULSE_PLUGIN = Path("/usr/share/alsa/alsa.conf.d/pulse.conf")
SINK = "softphone_test"
#: How long the sink may take to leave its first 2 s block and feed the keep-alive recorder.
FED_WITHIN = 15.0


class PulseUnavailable(Exception):  # noqa: N818 - it is a "not here", not an error of ours
    """What is missing (a package, or the daemon did not start), with the hint."""

    def __init__(self, what: str, hint: str) -> None:
        super().__init__(f"{what}: {hint}")
        self.what, self.hint = what, hint


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class PrivatePulse:
    """A running daemon: ``env`` is what a client needs (set it before PortAudio rescans)."""

    run: Path
    pid: int
    env: dict[str, str]
    #: the ``parec`` that keeps the sink rendering in 10 ms blocks (module docstring)
    keep_alive: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.run / "pulse.log"

    def errors(self) -> list[str]:
        """The error lines (``E:``) of the daemon's log so far."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.startswith("E:")]

    def died(self) -> str | None:
        """``None`` while the daemon runs, else what its log said last."""
        if _alive(self.pid):
            return None
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            lines = ["(no log)"]
        return "\n".join(lines[-6:])

    def stop(self) -> None:
        if self.keep_alive is not None:
            self.keep_alive.kill()
            self.keep_alive.wait(10)
        keep = os.environ.get("PULSE_KEEP_LOG")  # a directory: keep the daemon's log there
        if keep and self.log.exists():
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(self.log, Path(keep) / f"{self.run.name}.log")
        if not _alive(self.pid):
            shutil.rmtree(self.run, ignore_errors=True)
            return
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)
        shutil.rmtree(self.run, ignore_errors=True)


def start_private_pulse() -> PrivatePulse:
    """Start the daemon; :class:`PulseUnavailable` when a part is missing or it fails."""
    binary = shutil.which("pulseaudio")
    if binary is None:
        raise PulseUnavailable("pulseaudio", PULSE_HINT)
    if not ALSA_PULSE_PLUGIN.exists():
        raise PulseUnavailable("libasound2-plugins", PULSE_HINT)
    try:
        devices.list_devices()
    except PortAudioMissingError:
        raise PulseUnavailable("libportaudio2", PULSE_HINT) from None
    # Short path: a unix socket path must fit in 108 bytes.
    run = Path(tempfile.mkdtemp(prefix="pa-"))
    run.chmod(0o700)
    socket = run / "native"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(run), "HOME": str(run)}
    env.pop("PULSE_SERVER", None)
    result = subprocess.run(
        [
            binary,
            "--daemonize=yes",
            "--exit-idle-time=-1",
            "--disable-shm=yes",  # module docstring: PulseAudio's memfd bug
            "-n",  # no default.pa: only the modules below
            "--use-pid-file=yes",
            f"--log-target=file:{run / 'pulse.log'}",
            f"--load=module-native-protocol-unix socket={socket} auth-anonymous=1",
            f"--load=module-null-sink sink_name={SINK} rate=48000 channels=1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    pid_file = run / "pulse" / "pid"
    if result.returncode != 0 or not pid_file.exists():
        log = (
            (run / "pulse.log").read_text(errors="replace") if (run / "pulse.log").exists() else ""
        )
        shutil.rmtree(run, ignore_errors=True)
        raise PulseUnavailable(
            "pulseaudio",
            f"it did not start (rc {result.returncode}): {result.stderr[-500:]} {log[-500:]}",
        )
    daemon = PrivatePulse(
        run,
        int(pid_file.read_text().split()[0]),
        {
            "XDG_RUNTIME_DIR": str(run),
            "PULSE_SERVER": f"unix:{socket}",
            "PULSE_SINK": SINK,
            "PULSE_SOURCE": f"{SINK}.monitor",
        },
    )
    try:
        daemon.keep_alive = _keep_rendering({**env, **daemon.env})
    except PulseUnavailable:
        daemon.stop()
        raise
    return daemon


def _keep_rendering(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start the monitor's recorder (module docstring) and wait until it is fed; its output is
    read and dropped by a daemon thread for as long as it runs."""
    parec = shutil.which("parec")
    if parec is None:
        raise PulseUnavailable("pulseaudio-utils", PULSE_HINT)
    recorder = subprocess.Popen(
        [
            parec,
            "--raw",
            "--format=s16le",
            "--rate=48000",
            "--channels=1",
            "--latency-msec=10",
            f"--device={SINK}.monitor",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert recorder.stdout is not None
    fed = threading.Event()
    threading.Thread(
        target=_drop, args=(recorder.stdout, fed), name="pulse-keep-alive", daemon=True
    ).start()
    if not fed.wait(FED_WITHIN):
        recorder.kill()
        recorder.wait(10)
        raise PulseUnavailable(
            "pulseaudio", f"its null sink fed no recorder within {FED_WITHIN:.0f} s"
        )
    return recorder


def _drop(output: IO[bytes], fed: threading.Event) -> None:
    while output.read1(65536):  # type: ignore[attr-defined]  # a BufferedReader
        fed.set()
