"""Sound cards for the settings page: the device lists, a test tone, a live input level.

Over :mod:`softphone.media.devices` (PortAudio) so ``ui/`` reaches them through the
``softphone.ua`` façade. A device is named as ``UserAgent(audio_devices=...)`` takes it
(:func:`softphone.ua.sound.device_spec`): ``"default"`` or a device's name.

PortAudio enumerates and opens devices slowly (tens of milliseconds, more with a sound server
starting): every open, close and scan runs in a worker thread, never on the event loop. A
missing PortAudio, no device, or a device that will not open is an
:class:`~softphone.media.devices.AudioDeviceError` whose message says so in words.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from softphone.media.devices import (
    AudioDevice,
    AudioDeviceError,
    DeviceSink,
    DeviceSource,
    list_devices,
    rescan,
)
from softphone.media.tone import ToneSource
from softphone.ua.sound import device_spec

__all__ = [
    "AudioDevice",
    "AudioDeviceError",
    "DeviceChoices",
    "InputMeter",
    "play_test_tone",
    "scan_devices",
]

_FRAME = 0.02
_Stream = TypeVar("_Stream", DeviceSink, DeviceSource)


@dataclass(frozen=True)
class DeviceChoices:
    """The devices that can capture and those that can play; ``problem`` in words when
    there are none (PortAudio missing, no sound server), else ``""``."""

    inputs: tuple[AudioDevice, ...] = ()
    outputs: tuple[AudioDevice, ...] = ()
    problem: str = ""


def _scan(fresh: bool) -> DeviceChoices:
    try:
        if fresh:
            rescan()
        found = list_devices()
    except AudioDeviceError as exc:
        return DeviceChoices(problem=str(exc))
    except Exception as exc:  # noqa: BLE001  # PortAudio's own errors: said, not raised
        return DeviceChoices(problem=f"the sound system failed: {exc}")
    inputs = tuple(d for d in found if d.can("input"))
    outputs = tuple(d for d in found if d.can("output"))
    problem = ""
    if not inputs and not outputs:
        problem = "PortAudio found no sound device (is a sound server such as PulseAudio running?)"
    elif not inputs:
        problem = "no microphone found"
    elif not outputs:
        problem = "no speaker found"
    return DeviceChoices(inputs, outputs, problem)


async def scan_devices(*, fresh: bool = False) -> DeviceChoices:
    """The capture and playback devices PortAudio knows (``fresh``: enumerate again, after a
    headset was plugged in). Never raises: a problem is in :attr:`DeviceChoices.problem`."""
    return await asyncio.to_thread(_scan, fresh)


async def play_test_tone(
    output: str = "default",
    *,
    seconds: float = 1.0,
    frequency: float = 440.0,
    level: float = -12.0,
) -> None:
    """Play a ``frequency`` Hz tone at ``level`` dBFS for ``seconds`` on ``output``, paced at
    one 20 ms frame per period, then close the device. Raises :class:`AudioDeviceError`."""
    sink = await _open(lambda: DeviceSink(device_spec(output)))
    try:
        tone = ToneSource(frequency, level)
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        for _ in range(max(1, round(seconds / _FRAME))):
            sink.write(tone.read())
            deadline += _FRAME
            await asyncio.sleep(max(0.0, deadline - loop.time()))
        await asyncio.sleep(sink.latency)  # let the last frames leave the card
    finally:
        await asyncio.to_thread(sink.close)


async def _open(make: Callable[[], _Stream]) -> _Stream:
    """Open a device in a worker thread; PortAudio's own errors become AudioDeviceError."""
    try:
        return await asyncio.to_thread(make)
    except AudioDeviceError:
        raise
    except Exception as exc:  # PortAudioError from a broken setup or a vanished device
        raise AudioDeviceError(f"the sound card failed: {exc}") from exc


class InputMeter:
    """The live level of one input device while the settings page shows it.

    ``await start()`` opens the device (worker thread) and drains it every 20 ms;
    :attr:`level_dbfs` is the RMS of the last frame; ``await stop()`` closes the device
    (idempotent). Nothing is recorded or kept: only the level.
    """

    def __init__(self, device: str = "default") -> None:
        self.device = device
        self.level_dbfs = -math.inf
        self.frames = 0
        self._source: DeviceSource | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._source is not None

    async def start(self) -> None:
        """Open the device. Raises :class:`AudioDeviceError`."""
        if self._source is not None:
            return
        self._source = await _open(lambda: DeviceSource(device_spec(self.device)))
        self._task = asyncio.create_task(self._drain(self._source))

    async def _drain(self, source: DeviceSource) -> None:
        while not source.closed:
            while source.read() is not None:  # every whole frame the card delivered
                self.frames += 1
                self.level_dbfs = source.level_dbfs
            await asyncio.sleep(_FRAME)

    def close_now(self) -> None:
        """:meth:`stop` when no event loop runs any more (a dialog closed after its loop):
        the device is closed for us at once and released by a thread of its own, so it never
        stays open (PortAudio could then not enumerate devices again:
        :func:`softphone.media.devices.rescan`, which waits for it) and the window does not
        wait for PortAudio's drain."""
        source, self._source = self._source, None
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(RuntimeError):  # its loop is closed: nothing to cancel
                task.cancel()
        if source is not None:
            source.close_soon()
        self.level_dbfs = -math.inf

    async def stop(self) -> None:
        source, self._source = self._source, None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if source is not None:
            await asyncio.to_thread(source.close)
        self.level_dbfs = -math.inf
