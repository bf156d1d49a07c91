"""Sound-card I/O (softphone/media/devices.py) against a real, headless PulseAudio.

A private pulseaudio daemon (its own XDG_RUNTIME_DIR, a unix socket, one null sink) is started
once per run; PortAudio reaches it through ALSA's pulse plugin, as on a desktop. A tone played
into the null sink through :class:`DeviceSink` comes back from the sink's monitor through
:class:`DeviceSource`, and Goertzel finds its frequency. Device selection and the bounded
queues are checked on the same real streams; the pure parts (picking a device from a list,
the queue, the level) also without a sound server.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import math
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
from tests.media.pulse import PrivatePulse

WAIT = 30.0
SCAN = range(200, 3600, 20)


@pytest.fixture
def pulse(pulse_daemon: PrivatePulse, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The run's private daemon (tests/conftest.py) as this test's sound server; gives its
    run directory."""
    for name, value in pulse_daemon.env.items():
        monkeypatch.setenv(name, value)
    if (last_words := pulse_daemon.died()) is not None:
        pytest.fail(f"the run's pulseaudio is gone before this test; its log ends:\n{last_words}")
    # PortAudio enumerates once: let it see the pulse devices now. Refused only while a
    # stream is open: one an earlier test left open, which would also hear the wrong server.
    assert devices.rescan(), "a sound stream an earlier test opened is still open"
    errors_before = len(pulse_daemon.errors())
    yield pulse_daemon.run
    if (last_words := pulse_daemon.died()) is not None:
        pytest.fail(f"the run's pulseaudio died during this test; its log ends:\n{last_words}")
    # The daemon's own errors fail the test that provoked them, not a later one (pulse.py's
    # docstring: the memfd errors came before the abort that lost the rest of the run).
    if new_errors := pulse_daemon.errors()[errors_before:]:
        pytest.fail("the run's pulseaudio logged errors:\n" + "\n".join(new_errors))


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


async def test_a_short_tone_right_after_the_microphone_opens_is_heard(pulse: Path) -> None:
    """What the settings page's test tone does: the microphone opens, a tone plays at once for
    a moment. Each of five fresh microphones must hear it. Without the fixture's keep-alive
    recorder (tests/media/pulse.py) the null sink started a new capture 2 s late in 10-90 %
    of the opens, and a short tone went unheard: the CI failure of the settings test."""
    for attempt in range(5):
        with DeviceSource("pulse") as mic, DeviceSink("pulse") as sink:
            tone = ToneSource(440)
            loop = asyncio.get_running_loop()
            start = loop.time()
            written, loud = 0, 0
            while (elapsed := loop.time() - start) < 1.0 and loud < 5:
                while written < min(15, int(elapsed / 0.02) + 3):  # 0.3 s of tone in all
                    sink.write(tone.read())
                    written += 1
                while (frame := mic.read()) is not None:
                    loud += max(samples(frame)) > 1000
                await asyncio.sleep(0.01)
            assert loud >= 5, f"open {attempt + 1}: {loud} loud frames, {mic.counters}"


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


async def test_close_soon_leaves_the_drain_to_a_thread_of_its_own(pulse: Path) -> None:
    """A call closes its devices at hang-up on its event loop (the window's, in the desktop
    phone). PortAudio's ``stop()`` drains the buffers first, as long as the sound server takes
    (13-14 ms here, benchmarks/bench_audio.py). ``close_soon()``: closed at once for the owner, the
    stop and close on a "sound-close" thread; the real streams are watched."""
    called: list[tuple[str, str]] = []
    sink, mic = DeviceSink("pulse"), DeviceSource("pulse")
    for device in (sink, mic):
        stream = device._stream
        assert stream is not None
        for name in ("stop", "close"):
            method = getattr(stream, name)

            def spy(*args: object, _name: str = name, _method: Any = method) -> object:
                called.append((_name, threading.current_thread().name))
                return _method(*args)

            setattr(stream, name, spy)
    await asyncio.sleep(0.2)  # audio flowing both ways: there is something to drain
    sink.close_soon()
    mic.close_soon()
    assert sink.closed and mic.closed and mic.read() is None
    sink.write(bytes(1920))  # dropped, no error
    assert devices.wait_closed()
    assert sorted(called) == [("close", "sound-close")] * 2 + [("stop", "sound-close")] * 2
    assert devices.rescan()  # both really closed: PortAudio may enumerate again


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
