"""A private, headless PulseAudio with one null sink (48 kHz mono): the sound card of the tests
(``tests/media/test_devices.py``'s ``pulse`` fixture) and of ``benchmarks/bench_audio.py``.

Its own XDG_RUNTIME_DIR and unix socket; PortAudio reaches it through ALSA's pulse plugin, as
on a desktop. The sink's monitor is the matching source, so what is played can be recorded back.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from softphone.media import devices
from softphone.media.devices import PortAudioMissingError

PULSE_HINT = "apt-get install pulseaudio libasound2-plugins libportaudio2 (or: make test as root)"
ALSA_PULSE_PLUGIN = Path("/usr/share/alsa/alsa.conf.d/pulse.conf")
SINK = "softphone_test"


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

    def stop(self) -> None:
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
    return PrivatePulse(
        run,
        int(pid_file.read_text().split()[0]),
        {
            "XDG_RUNTIME_DIR": str(run),
            "PULSE_SERVER": f"unix:{socket}",
            "PULSE_SINK": SINK,
            "PULSE_SOURCE": f"{SINK}.monitor",
        },
    )
