"""Sound-card capture and playback through PortAudio (``sounddevice``), with a level meter.

:class:`DeviceSource` is a :class:`~softphone.media.tone.FrameSource` (the microphone) and
:class:`DeviceSink` an :class:`~softphone.media.tone.AudioSink` (the speaker): both trade
20 ms frames of 48 kHz mono s16 PCM with the session, whatever rate and channel count the
device runs at (resampled through PyAV, mixed down / duplicated). Why PortAudio and not
libpulse or ALSA through PyAV: ``docs/audio.md``.

Threads: PortAudio calls our stream callbacks on its own real-time thread. Between that thread
and the event loop there is one bounded :class:`FrameQueue` per stream, guarded by a lock that
is held for a few list operations only: the event loop never waits for the sound card, and
the callback never waits for the event loop. When a queue is full the *oldest* audio is
dropped and counted (``overflows``: latency stays bounded when the clocks of the card and of
the network drift apart); when it is empty the speaker plays silence and the microphone
gives ``None`` (``underruns``). Resampling, mixing and the level meter run on the caller's
thread (the event loop), never in the callback.

The level meter (:attr:`DeviceSource.level_dbfs`, ``on_level``) is the RMS of each 20 ms frame
in dBFS, the quantity a VU-style meter in the call window shows (-inf for digital silence).

Errors are :class:`AudioDeviceError`: :class:`PortAudioMissingError` when the PortAudio library
is not installed, :class:`NoSuchDeviceError` when a name or index matches no device (the
message lists the devices there are), :class:`DeviceOpenError` when the device refuses to
open. A stream that fails later is reported through ``status`` flags counted in
:class:`DeviceCounters`; the call keeps going (with silence).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

from softphone.media.codecs import FRAME_DURATION, INTERNAL_FRAME_SAMPLES, INTERNAL_RATE, Resampler
from softphone.media.tone import LevelMeter, samples

__all__ = [
    "AudioDevice",
    "AudioDeviceError",
    "DeviceCounters",
    "DeviceOpenError",
    "DeviceSink",
    "DeviceSource",
    "FrameQueue",
    "NoSuchDeviceError",
    "PortAudioMissingError",
    "find_device",
    "list_devices",
    "pick_device",
    "rescan",
    "rms_dbfs",
]

Kind = Literal["input", "output"]
DeviceSpec = int | str | None
LevelCallback = Callable[[float], None]

#: Frames (20 ms each) a queue holds before it drops the oldest: 160 ms of slack.
DEFAULT_QUEUE_FRAMES = 8


class AudioDeviceError(Exception):
    """Sound-card I/O cannot go on as asked."""


class PortAudioMissingError(AudioDeviceError):
    """The PortAudio shared library (Debian: ``libportaudio2``) is not installed."""


class NoSuchDeviceError(AudioDeviceError):
    """No device matches the name or index asked for (or there is no device at all)."""


class DeviceOpenError(AudioDeviceError):
    """The device exists but would not open with any format we can use."""


def _portaudio() -> Any:
    """``sounddevice``, imported on first use: it loads PortAudio at import time, and a
    machine without it must still run calls with WAV files and tones."""
    try:
        import sounddevice
    except OSError as exc:  # sounddevice: "PortAudio library not found"
        raise PortAudioMissingError(
            "PortAudio is not installed: sound-card audio needs it "
            "(Debian/Ubuntu: apt-get install libportaudio2). WAV files and tones still work."
        ) from exc
    except ImportError as exc:
        raise PortAudioMissingError(
            "the Python package sounddevice is missing (pip install sounddevice)"
        ) from exc
    return sounddevice


#: PortAudio is not thread-safe, and streams are opened and closed from worker threads (the
#: settings' meter, the test tone, calls): every PortAudio call made from Python (device
#: queries, open + start, stop + close, the rescan) holds this lock. The streams' own
#: callbacks run on PortAudio's thread and never take it.
_PORTAUDIO_LOCK = threading.RLock()
_log = logging.getLogger(__name__)
_open_streams = 0  # streams opened and not yet closed (guarded by the lock)
#: Threads stopping and closing streams handed over by :meth:`_DeviceStream.close_soon`.
_closers: set[threading.Thread] = set()
_CLOSERS_LOCK = threading.Lock()


def wait_closed(timeout: float = 10.0) -> bool:
    """Wait until the streams :meth:`~_DeviceStream.close_soon` handed over are closed;
    False if some still are not after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with _CLOSERS_LOCK:
            pending = [t for t in _closers if t is not threading.current_thread()]
        if not pending:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        pending[0].join(remaining)


def rescan() -> bool:
    """Ask PortAudio to enumerate devices again (it does so once, when it starts): after a
    headset is plugged in, or a sound server started. Not while a stream is open (it would
    be closed under its owner's feet: a crash): then nothing happens and False is returned.
    Streams being closed in the background (:meth:`~_DeviceStream.close_soon`) are waited
    for first."""
    sd = _portaudio()
    wait_closed()
    with _PORTAUDIO_LOCK:
        if _open_streams:
            return False
        sd._terminate()
        sd._initialize()
        return True


@dataclass(frozen=True)
class AudioDevice:
    """One PortAudio device, as :func:`list_devices` reports it."""

    index: int
    name: str
    host_api: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    default_input: bool = False
    default_output: bool = False

    def can(self, kind: Kind) -> bool:
        return (self.max_input_channels if kind == "input" else self.max_output_channels) > 0

    def __str__(self) -> str:
        marks = ("<" if self.default_input else "") + (">" if self.default_output else "")
        return (
            f"{self.index} {self.name} ({self.host_api}, {self.max_input_channels} in, "
            f"{self.max_output_channels} out){' ' + marks if marks else ''}"
        )


def list_devices() -> list[AudioDevice]:
    """Every device PortAudio knows, defaults marked (``<`` input, ``>`` output in str())."""
    sd = _portaudio()
    with _PORTAUDIO_LOCK:
        apis = [api["name"] for api in sd.query_hostapis()]
        default_in, default_out = _defaults(sd)
        infos = list(sd.query_devices())
    return [
        AudioDevice(
            index=int(info["index"]),
            name=str(info["name"]),
            host_api=apis[int(info["hostapi"])],
            max_input_channels=int(info["max_input_channels"]),
            max_output_channels=int(info["max_output_channels"]),
            default_samplerate=float(info["default_samplerate"]),
            default_input=int(info["index"]) == default_in,
            default_output=int(info["index"]) == default_out,
        )
        for info in infos
    ]


def _defaults(sd: Any) -> tuple[int, int]:
    try:
        default_in, default_out = sd.default.device
    except (TypeError, ValueError):  # pragma: no cover - sounddevice always gives a pair
        return -1, -1
    return int(default_in), int(default_out)


def pick_device(devices: list[AudioDevice], spec: DeviceSpec, kind: Kind) -> AudioDevice:
    """The device ``spec`` names among ``devices``: ``None`` the default, an ``int`` (or a
    string of digits) an index, another string a name: an exact name first, else the one
    device whose name contains it (case-insensitive). Only devices that can do ``kind``."""
    usable = [d for d in devices if d.can(kind)]
    if not usable:
        raise NoSuchDeviceError(
            f"no audio {kind} device found (no sound card, or no sound server running)"
        )
    if spec is None:
        defaults = [d for d in usable if (d.default_input if kind == "input" else d.default_output)]
        return defaults[0] if defaults else usable[0]
    if isinstance(spec, str) and spec.strip().isdigit():
        spec = int(spec)
    if isinstance(spec, int):
        for device in usable:
            if device.index == spec:
                return device
        raise NoSuchDeviceError(f"no {kind} device with index {spec}; {_choices(usable)}")
    wanted = spec.strip().casefold()
    exact = [d for d in usable if d.name.casefold() == wanted]
    if exact:
        return exact[0]
    partial = [d for d in usable if wanted in d.name.casefold()]
    if len(partial) == 1:
        return partial[0]
    if not partial:
        raise NoSuchDeviceError(f"no {kind} device named {spec!r}; {_choices(usable)}")
    raise NoSuchDeviceError(
        f"{spec!r} matches several {kind} devices; {_choices(partial)} (use the index)"
    )


def _choices(devices: list[AudioDevice]) -> str:
    return "there are: " + "; ".join(f"{d.index} {d.name!r}" for d in devices)


def find_device(spec: DeviceSpec, kind: Kind) -> AudioDevice:
    """:func:`pick_device` among the devices PortAudio knows now."""
    return pick_device(list_devices(), spec, kind)


def rms_dbfs(pcm: bytes) -> float:
    """RMS level of s16 PCM in dBFS (0 = a full-scale square wave, -inf = digital silence)."""
    data = samples(pcm)
    if not data:
        return -math.inf
    rms = math.sqrt(sum(s * s for s in data) / len(data))
    return 20 * math.log10(rms / 32768) if rms else -math.inf


@dataclass(frozen=True)
class DeviceCounters:
    """What went wrong between the card and the session, for the statistics events."""

    frames: int  # 20 ms frames handed to / taken from the session
    overflows: int  # blocks dropped because the queue was full (oldest first)
    underruns: int  # times the queue was empty when audio was due
    status_errors: int  # PortAudio status flags (xruns the card itself reported)


class FrameQueue:
    """A bounded FIFO of PCM blocks shared by PortAudio's thread and the event loop.

    ``put`` never blocks: when ``max_bytes`` would be exceeded it drops the oldest blocks and
    counts them in ``overflows``. ``take(n)`` gives exactly ``n`` bytes or ``None``."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError("a frame queue needs room for some audio")
        self.max_bytes = max_bytes
        self._blocks: deque[bytes] = deque()
        self._size = 0
        self._head = 0  # bytes of _blocks[0] already taken
        self._lock = threading.Lock()
        self.overflows = 0

    def __len__(self) -> int:
        with self._lock:
            return self._size

    def put(self, block: bytes) -> None:
        if not block:
            return
        with self._lock:
            if len(block) > self.max_bytes:
                block = block[-self.max_bytes :]
            self._blocks.append(block)
            self._size += len(block)
            while self._size > self.max_bytes:
                dropped = self._blocks.popleft()
                self._size -= len(dropped) - self._head
                self._head = 0
                self.overflows += 1

    def take(self, n: int) -> bytes | None:
        with self._lock:
            if self._size < n:
                return None
            out = bytearray()
            while len(out) < n:
                block = self._blocks[0]
                need = n - len(out)
                chunk = block[self._head : self._head + need]
                out += chunk
                self._head += len(chunk)
                if self._head == len(block):
                    self._blocks.popleft()
                    self._head = 0
            self._size -= n
            return bytes(out)

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()
            self._size = self._head = 0


class _DeviceStream:
    """What capture and playback share: device choice, format negotiation, lifecycle."""

    kind: Kind

    def __init__(
        self,
        device: DeviceSpec,
        *,
        queue_frames: int,
        on_level: LevelCallback | None,
    ) -> None:
        self._sd = _portaudio()
        self.device = find_device(device, self.kind)
        self.rate, self.channels = self._negotiate()
        #: samples per 20 ms at the device's rate
        self.block = round(self.rate * FRAME_DURATION)
        self._queue = FrameQueue(queue_frames * self.block * 2 * self.channels)
        self._meter = LevelMeter()
        self.on_level = on_level
        self._frames = 0
        self._underruns = 0
        self._status_errors = 0
        self._stream: Any = None
        self.closed = False

    def _negotiate(self) -> tuple[int, int]:
        """48 kHz mono when the device takes it (no resampling), else its own rate and
        channel count (the ALSA ``hw:`` devices of many cards are stereo-only)."""
        check = (
            self._sd.check_input_settings
            if self.kind == "input"
            else self._sd.check_output_settings
        )
        most = (
            self.device.max_input_channels
            if self.kind == "input"
            else self.device.max_output_channels
        )
        rates = [INTERNAL_RATE]
        if round(self.device.default_samplerate) != INTERNAL_RATE:
            rates.append(round(self.device.default_samplerate))
        errors: list[str] = []
        for rate in rates:
            for channels in sorted({1, min(2, most)}):
                try:
                    with _PORTAUDIO_LOCK:
                        check(
                            device=self.device.index,
                            samplerate=rate,
                            channels=channels,
                            dtype="int16",
                        )
                except Exception as exc:  # noqa: BLE001 - PortAudioError, ValueError
                    errors.append(f"{rate} Hz x{channels}: {exc}")
                    continue
                return rate, channels
        raise DeviceOpenError(
            f"audio {self.kind} device {self.device.name!r} takes no 16-bit format we can use "
            f"({'; '.join(errors)})"
        )

    def _open(self, stream_class: Any, callback: Callable[..., None]) -> None:
        global _open_streams  # noqa: PLW0603 - the one count of open streams, under the lock
        with _PORTAUDIO_LOCK:
            try:
                stream = stream_class(
                    samplerate=self.rate,
                    channels=self.channels,
                    dtype="int16",
                    blocksize=self.block,
                    device=self.device.index,
                    latency="low",
                    callback=callback,
                )
            except Exception as exc:  # sounddevice raises PortAudioError or ValueError
                self._stream = None
                raise DeviceOpenError(
                    f"cannot open audio {self.kind} device {self.device.name!r}: {exc}"
                ) from exc
            _open_streams += 1
            self._stream = stream
            try:
                stream.start()
            except Exception as exc:  # closed again (the count with it), said in words
                self.close()
                raise DeviceOpenError(
                    f"cannot open audio {self.kind} device {self.device.name!r}: {exc}"
                ) from exc

    def _level(self, pcm: bytes) -> None:
        self._meter.write(pcm)
        if self.on_level is not None:
            self.on_level(self._meter.rms_dbfs)

    @property
    def level_dbfs(self) -> float:
        """RMS of the last 20 ms frame, dBFS (-inf before any audio or for silence)."""
        return self._meter.rms_dbfs

    @property
    def peak_dbfs(self) -> float:
        """Highest sample so far, dBFS (clipping shows as 0)."""
        return self._meter.peak_dbfs

    @property
    def counters(self) -> DeviceCounters:
        return DeviceCounters(
            frames=self._frames,
            overflows=self._queue.overflows,
            underruns=self._underruns,
            status_errors=self._status_errors,
        )

    @property
    def latency(self) -> float:
        """PortAudio's own latency estimate for the stream, seconds (0 when closed)."""
        return float(self._stream.latency) if self._stream is not None else 0.0

    def close(self) -> None:
        """Stop and release the device (idempotent). Waits for PortAudio's ``stop()``, which
        lets the buffers drain: 13-14 ms through ALSA's pulse plugin here, as long as the
        sound server's own buffer lasts (benchmarks/bench_audio.py). Never on an event loop:
        :meth:`close_soon` there."""
        stream = self._detach()
        if stream is not None:
            _stop_and_close(stream)

    def close_soon(self) -> None:
        """Closed at once for its owner (``closed``, reads give nothing, writes are dropped);
        the stream is stopped and released by a thread of its own (:func:`wait_closed`).
        What a call does at hang-up: its loop is the window's, and ``stop()`` waits for the
        sound server (a loop tick of 13 ms at best, seconds behind a slow server).
        (PortAudio's ``abort()`` would return at once, but on ALSA it cancels the callback
        thread in the middle of Python code: a crash.)"""
        stream = self._detach()
        if stream is None:
            return
        thread = threading.Thread(target=_close_quietly, args=(stream,), name="sound-close")
        with _CLOSERS_LOCK:
            _closers.add(thread)
        thread.start()

    def _detach(self) -> Any:
        if self.closed:
            return None
        self.closed = True
        stream, self._stream = self._stream, None
        self._queue.clear()
        return stream

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _stop_and_close(stream: Any) -> None:
    global _open_streams  # noqa: PLW0603 - see _DeviceStream._open
    with _PORTAUDIO_LOCK:
        try:
            stream.stop()
        finally:
            stream.close()
            _open_streams -= 1


def _close_quietly(stream: Any) -> None:
    """A "sound-close" thread's work (:meth:`_DeviceStream.close_soon`)."""
    try:
        _stop_and_close(stream)
    except Exception as exc:  # noqa: BLE001 - PortAudioError on a vanished device: said, not raised
        _log.warning("closing a sound device failed: %s", exc)
    finally:
        with _CLOSERS_LOCK:
            _closers.discard(threading.current_thread())


class DeviceSource(_DeviceStream):
    """The microphone: a :class:`~softphone.media.tone.FrameSource` of 20 ms, 48 kHz mono
    frames. ``read()`` gives ``None`` while the card has not yet delivered a whole frame
    (the session then sends nothing for that slot)."""

    kind: Kind = "input"

    def __init__(
        self,
        device: DeviceSpec = None,
        *,
        queue_frames: int = DEFAULT_QUEUE_FRAMES,
        on_level: LevelCallback | None = None,
    ) -> None:
        super().__init__(device, queue_frames=queue_frames, on_level=on_level)
        self._resampler = Resampler(self.rate, INTERNAL_RATE)
        self._started = False
        self._open(self._sd.RawInputStream, self._callback)

    def _callback(self, data: Any, frames: int, time: Any, status: Any) -> None:
        # PortAudio's thread: copy and go.
        if status:
            self._status_errors += 1
        self._queue.put(bytes(data))

    def read(self) -> bytes | None:
        if self.closed:
            return None
        raw = self._queue.take(self.block * 2 * self.channels)
        if raw is None:
            if self._started:
                self._underruns += 1
            return None
        self._started = True
        if self.channels == 2:
            raw = _mix_down(raw)
        pcm = self._resampler.process(raw)
        self._frames += 1
        self._level(pcm)
        return pcm


class DeviceSink(_DeviceStream):
    """The speaker: an :class:`~softphone.media.tone.AudioSink` taking 20 ms, 48 kHz mono
    frames; the card plays silence whenever the session has nothing for it."""

    kind: Kind = "output"

    def __init__(
        self,
        device: DeviceSpec = None,
        *,
        queue_frames: int = DEFAULT_QUEUE_FRAMES,
        on_level: LevelCallback | None = None,
    ) -> None:
        super().__init__(device, queue_frames=queue_frames, on_level=on_level)
        self._resampler = Resampler(INTERNAL_RATE, self.rate)
        self._playing = False
        self._open(self._sd.RawOutputStream, self._callback)

    def _callback(self, data: Any, frames: int, time: Any, status: Any) -> None:
        # PortAudio's thread: copy what is queued, or silence.
        if status:
            self._status_errors += 1
        want = frames * 2 * self.channels
        pcm = self._queue.take(want)
        if pcm is None:
            if self._playing:
                self._underruns += 1
            data[:] = bytes(want)
            return
        self._playing = True
        data[:] = pcm

    def write(self, pcm: bytes) -> None:
        if self.closed:
            return
        if len(pcm) != 2 * INTERNAL_FRAME_SAMPLES:
            pcm = pcm[: 2 * INTERNAL_FRAME_SAMPLES].ljust(2 * INTERNAL_FRAME_SAMPLES, b"\0")
        self._frames += 1
        self._level(pcm)
        out = self._resampler.process(pcm)
        if self.channels == 2:
            out = _duplicate(out)
        self._queue.put(out)


def _mix_down(stereo: bytes) -> bytes:
    data = samples(stereo)
    mono = [(data[i] + data[i + 1]) // 2 for i in range(0, len(data) - 1, 2)]
    return _pack(mono)


def _duplicate(mono: bytes) -> bytes:
    data = samples(mono)
    stereo = [s for s in data for _ in range(2)]
    return _pack(stereo)


def _pack(values: list[int]) -> bytes:
    return array("h", values).tobytes()
