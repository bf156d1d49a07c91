"""Sound-card I/O (softphone/media/devices.py) against a real, headless PulseAudio.

A private pulseaudio daemon (its own XDG_RUNTIME_DIR, a unix socket, one null sink) is started
per test; PortAudio reaches it through ALSA's pulse plugin, as on a desktop. A tone played
into the null sink through :class:`DeviceSink` comes back from the sink's monitor through
:class:`DeviceSource`, and Goertzel finds its frequency. Device selection and the bounded
queues are checked on the same real streams; the pure parts (picking a device from a list,
the queue, the level) also without a sound server.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from softphone.media import devices
from softphone.media.devices import (
    AudioDevice,
    DeviceSink,
    DeviceSource,
    FrameQueue,
    NoSuchDeviceError,
    PortAudioMissingError,
    find_device,
    list_devices,
    pick_device,
    rms_dbfs,
)
from softphone.media.tone import SilenceSource, ToneSource, dominant_frequency, samples
from tests.conftest import require_peer

PULSE_HINT = "apt-get install pulseaudio libasound2-plugins libportaudio2 (or: make test as root)"
ALSA_PULSE_PLUGIN = Path("/usr/share/alsa/alsa.conf.d/pulse.conf")
SINK = "softphone_test"
WAIT = 30.0
SCAN = range(200, 3600, 20)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def pulse(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A pulseaudio daemon with one null sink (48 kHz mono), stopped by its PID afterwards."""
    binary = shutil.which("pulseaudio")
    require_peer("pulseaudio", available=binary is not None, hint=PULSE_HINT)
    require_peer("libasound2-plugins", available=ALSA_PULSE_PLUGIN.exists(), hint=PULSE_HINT)
    assert binary is not None
    try:
        devices.list_devices()
    except PortAudioMissingError:
        require_peer("libportaudio2", available=False, hint=PULSE_HINT)
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
        require_peer(
            "pulseaudio",
            available=False,
            hint=f"it did not start (rc {result.returncode}): {result.stderr[-500:]} {log[-500:]}",
        )
    pid = int(pid_file.read_text().split()[0])
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    monkeypatch.setenv("PULSE_SERVER", f"unix:{socket}")
    monkeypatch.setenv("PULSE_SINK", SINK)
    monkeypatch.setenv("PULSE_SOURCE", f"{SINK}.monitor")
    # PortAudio enumerates once: let it see the pulse devices now. Refused only while a
    # stream is open: one an earlier test left open, which would also hear the wrong server.
    assert devices.rescan(), "a sound stream an earlier test opened is still open"
    try:
        yield run
    finally:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(run, ignore_errors=True)


# -- real streams through the null sink ---------------------------------------------------


async def _loop_back(
    sink: DeviceSink, mic: DeviceSource, frequency: float, want_frames: int
) -> list[bytes]:
    """Play a tone in real time (a few frames ahead of the clock) and collect what the
    monitor captures until ``want_frames`` loud frames came back."""
    tone = ToneSource(frequency)
    loop = asyncio.get_running_loop()
    start = loop.time()
    written = 0
    captured: list[bytes] = []
    async with asyncio.timeout(WAIT):
        while sum(1 for f in captured if max(samples(f)) > 1000) < want_frames:
            due = int((loop.time() - start) / 0.02) + 3
            while written < due:
                sink.write(tone.read())
                written += 1
            while (frame := mic.read()) is not None:
                captured.append(frame)
            await asyncio.sleep(0.01)
    return captured


@pytest.mark.parametrize("frequency", [440, 1000])
async def test_tone_through_null_sink_comes_back_from_its_monitor(
    pulse: Path, frequency: int
) -> None:
    levels: list[float] = []
    with DeviceSink("pulse") as sink, DeviceSource("pulse", on_level=levels.append) as mic:
        assert sink.rate == mic.rate == 48_000  # the pulse device takes 48 kHz mono as is
        assert sink.channels == mic.channels == 1
        captured = await _loop_back(sink, mic, frequency, want_frames=40)
        assert all(len(f) == 2 * 960 for f in captured)  # 20 ms at 48 kHz, mono s16
        loud = [f for f in captured if max(samples(f)) > 1000]
        found, share = dominant_frequency(samples(b"".join(loud[-25:])), SCAN)
        assert found == frequency and share > 0.9, (found, share)
        # ToneSource's default is -12 dBFS peak: a sine's RMS is 3 dB lower.
        assert -18.0 < mic.level_dbfs < -12.0, mic.level_dbfs
        assert -18.0 < sink.level_dbfs < -12.0
        assert levels and levels[-1] == mic.level_dbfs
        assert mic.counters.frames == len(captured)
        assert sink.counters.frames > 0
    assert sink.closed and mic.closed
    assert mic.read() is None  # a closed source gives nothing, and does not raise
    sink.write(bytes(1920))  # nor does a closed sink


async def test_full_queues_drop_and_count_instead_of_blocking(pulse: Path) -> None:
    with DeviceSink("pulse", queue_frames=2) as sink:
        silence = SilenceSource()
        for _ in range(50):  # 1 s of audio at once: the queue holds 40 ms
            sink.write(silence.read())
        assert sink.counters.frames == 50
        assert sink.counters.overflows >= 40
    with DeviceSource("pulse", queue_frames=2) as mic:
        async with asyncio.timeout(WAIT):
            while mic.counters.overflows < 5:  # nobody reads: the card keeps delivering
                await asyncio.sleep(0.05)
        assert mic.read() is not None  # the newest 40 ms are still there


def test_devices_are_listed_and_found_by_name_or_index(pulse: Path) -> None:
    listed = list_devices()
    pulse_device = next(d for d in listed if d.name == "pulse")
    assert pulse_device.host_api == "ALSA"
    assert pulse_device.can("input") and pulse_device.can("output")
    assert find_device("PULSE", "input") == pulse_device  # case-insensitive
    assert find_device(pulse_device.index, "output") == pulse_device
    assert find_device(str(pulse_device.index), "output") == pulse_device
    assert "pulse" in str(pulse_device)


def test_no_rescan_while_a_stream_is_open_and_streams_open_from_many_threads(
    pulse: Path,
) -> None:
    """PortAudio is not thread-safe: a rescan (Pa_Terminate + Pa_Initialize) would close an
    open stream under its owner (a crash when that owner later stops it), and opens/closes
    from several threads at once must take turns (the settings meter, the test tone, calls)."""
    import threading

    with DeviceSource("pulse") as mic:
        assert not devices.rescan()  # refused: the microphone is open
        assert mic.level_dbfs is not None
    assert devices.rescan()  # nothing open: done
    errors: list[BaseException] = []

    def open_and_close() -> None:
        try:
            for _ in range(3):
                with DeviceSink("pulse"), DeviceSource("pulse"):
                    pass
                devices.rescan()  # refused or done, never in the middle of an open
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_and_close) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and not any(t.is_alive() for t in threads)
    assert devices._open_streams == 0


def test_unknown_device_is_a_clear_error_naming_the_choices(pulse: Path) -> None:
    with pytest.raises(NoSuchDeviceError, match=r"no input device named 'no-such-card'.*pulse"):
        DeviceSource("no-such-card")
    with pytest.raises(NoSuchDeviceError, match="index 9999"):
        DeviceSink(9999)


# -- pure parts: no sound server needed ---------------------------------------------------


def _device(index: int, name: str, ins: int, outs: int, **flags: bool) -> AudioDevice:
    return AudioDevice(index, name, "ALSA", ins, outs, 48_000.0, **flags)


DEVICES = [
    _device(0, "HDA Intel PCH: ALC257 Analog (hw:0,0)", 2, 2),
    _device(1, "HDA Intel PCH: HDMI 0 (hw:0,3)", 0, 8),
    _device(2, "USB Headset: Audio (hw:1,0)", 1, 2),
    _device(3, "pulse", 32, 32),
    _device(4, "default", 32, 32, default_input=True, default_output=True),
]


@pytest.mark.parametrize(
    ("spec", "kind", "index"),
    [
        (None, "input", 4),
        (None, "output", 4),
        (2, "input", 2),
        ("2", "output", 2),
        ("pulse", "input", 3),  # exact name
        ("headset", "input", 2),  # the one device containing it
        ("HDMI", "output", 1),
    ],
)
def test_pick_device(spec: str | int | None, kind: devices.Kind, index: int) -> None:
    assert pick_device(DEVICES, spec, kind).index == index


@pytest.mark.parametrize(
    ("spec", "kind", "message"),
    [
        ("HDMI", "input", "no input device named 'HDMI'"),  # output only
        (1, "input", "no input device with index 1"),
        ("hw:0", "output", "matches several output devices"),
        ("nothing", "output", "there are: 0 'HDA Intel"),
    ],
)
def test_pick_device_errors(spec: str | int, kind: devices.Kind, message: str) -> None:
    with pytest.raises(NoSuchDeviceError, match=message):
        pick_device(DEVICES, spec, kind)


def test_no_device_at_all_says_so() -> None:
    with pytest.raises(NoSuchDeviceError, match="no audio input device found"):
        pick_device([_device(1, "HDMI", 0, 8)], None, "input")


def test_frame_queue_keeps_the_newest_audio_and_counts_what_it_dropped() -> None:
    queue = FrameQueue(max_bytes=8)
    queue.put(b"aaaa")
    queue.put(b"bbbb")
    assert queue.take(3) == b"aaa"
    assert len(queue) == 5
    queue.put(b"cccc")  # 9 bytes would not fit: the oldest block (its rest, "a") goes
    assert queue.overflows == 1
    assert queue.take(8) == b"bbbbcccc"
    assert queue.take(1) is None  # empty: nothing, never a short read
    queue.put(b"0123456789")  # one block bigger than the queue: its newest bytes stay
    assert queue.take(8) == b"23456789"
    with pytest.raises(ValueError, match="room"):
        FrameQueue(0)


def test_rms_level_of_a_sine_and_of_silence() -> None:
    assert abs(rms_dbfs(ToneSource(1000, level=-12).read()) - (-12 - 10 * math.log10(2))) < 0.1
    assert rms_dbfs(ToneSource(1000, level=-30).read()) < -32
    assert rms_dbfs(bytes(1920)) == -math.inf
    assert rms_dbfs(b"") == -math.inf


class _NoPortAudio(importlib.abc.MetaPathFinder):
    """What importing sounddevice does on a machine without libportaudio2."""

    def find_spec(self, name: str, path: object, target: object = None) -> None:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")


def test_missing_portaudio_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoPortAudio(), *sys.meta_path])
    with pytest.raises(PortAudioMissingError, match="apt-get install libportaudio2"):
        list_devices()
    with pytest.raises(PortAudioMissingError):
        DeviceSource()
