"""The sound card of a call: the microphone and the speaker opened when its media starts.

``UserAgent(..., audio_devices=(input_spec, output_spec))`` makes every call that was not given
its own ``source``/``sink`` capture from and play to the sound card
(:mod:`softphone.media.devices`, PortAudio). A spec is a device name (exact, or a part that
matches one device), an index, or ``"default"`` (the system's default device); ``None`` in
either place leaves that direction off the sound card (silence sent, nothing played), and
``audio_devices=None`` uses no sound card at all. Left out (:data:`FROM_ACCOUNT`), the devices
are the account's ``input_device``/``output_device`` (:attr:`Account.audio_devices
<softphone.ua.account.Account.audio_devices>`), read each time a call opens its sound card:
a device chosen in Settings is used from the next call on, a call in progress keeps its own.

The devices are opened when the call's media starts (not while it rings: the microphone is
not open before anyone answered) and closed when the call ends. Opening them may take a
PortAudio round of device enumeration, so it runs in a worker thread, never on the event loop.
A device that cannot be opened is an :class:`~softphone.media.devices.AudioDeviceError`; the
call turns it into its ending reason ("the sound card could not be used: ..."), never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Literal

from softphone.media.devices import (
    AudioDevice,
    AudioDeviceError,
    DeviceSink,
    DeviceSource,
    DeviceSpec,
    Kind,
    NoSuchDeviceError,
    find_device,
    pick_device,
)
from softphone.ua.callstate import CallPhase

if TYPE_CHECKING:
    from softphone.media.tone import AudioSink, FrameSource
    from softphone.ua.call import CallHost

__all__ = [
    "FROM_ACCOUNT",
    "AudioDevices",
    "CallSound",
    "CallSoundMixin",
    "FromAccount",
    "check_devices",
    "device_spec",
    "match_device",
    "open_sound",
]

log = logging.getLogger(__name__)

#: (input spec, output spec): what ``UserAgent(audio_devices=...)`` takes.
AudioDevices = tuple[str | None, str | None]


class _FromAccount(Enum):
    FROM_ACCOUNT = "the account's input_device and output_device"


#: ``UserAgent(audio_devices=FROM_ACCOUNT)`` (the default): the account's devices, read at
#: each call.
FROM_ACCOUNT = _FromAccount.FROM_ACCOUNT
FromAccount = Literal[_FromAccount.FROM_ACCOUNT]


def device_spec(text: str) -> DeviceSpec:
    """A spec as :func:`~softphone.media.devices.find_device` takes it: ``"default"`` is the
    system's default device, digits an index, anything else a name."""
    stripped = text.strip()
    return None if stripped.casefold() == "default" else stripped


def match_device(spec: str, devices: Sequence[AudioDevice], kind: Kind) -> AudioDevice | None:
    """The device among ``devices`` that ``spec`` names, as a call would open it (exact name,
    index, or the one name containing it); ``None`` for ``"default"`` or when none (or more
    than one) matches: Settings then shows the saved spec as not connected."""
    wanted = device_spec(spec)
    if wanted is None:
        return None
    try:
        return pick_device(list(devices), wanted, kind)
    except NoSuchDeviceError:
        return None


def check_devices(devices: AudioDevices) -> None:
    """Raise :class:`AudioDeviceError` (with the devices there are) when a spec names no
    device: the agent checks its flags before it registers, not when a call is answered."""
    wanted, played = devices
    if wanted is not None:
        find_device(device_spec(wanted), "input")
    if played is not None:
        find_device(device_spec(played), "output")


@dataclass
class CallSound:
    """The devices one call opened (either may be None): closed together, once."""

    source: DeviceSource | None = None
    sink: DeviceSink | None = None

    def close(self) -> None:
        for device in (self.source, self.sink):
            if device is not None:
                with contextlib.suppress(Exception):  # PortAudioError on a vanished device
                    device.close()

    def close_soon(self) -> None:
        """Closed now for the call; PortAudio's drain (as long as the sound server takes)
        runs in a thread of its own, never on the event loop (softphone.media.devices)."""
        for device in (self.source, self.sink):
            if device is not None:
                device.close_soon()


def _open(devices: AudioDevices, *, capture: bool, play: bool) -> CallSound:
    wanted, played = devices
    sound = CallSound()
    try:
        if capture and wanted is not None:
            sound.source = DeviceSource(device_spec(wanted))
        if play and played is not None:
            sound.sink = DeviceSink(device_spec(played))
    except BaseException:
        sound.close()
        raise
    return sound


async def open_sound(devices: AudioDevices, *, capture: bool, play: bool) -> CallSound:
    """Open the input (when ``capture``) and the output (when ``play``) of ``devices`` in a
    worker thread. Raises :class:`AudioDeviceError`; nothing stays open when it does."""
    try:
        return await asyncio.to_thread(_open, devices, capture=capture, play=play)
    except AudioDeviceError:
        raise
    except Exception as exc:  # PortAudio's own errors from a broken setup
        raise AudioDeviceError(f"the sound card failed: {exc}") from exc


class CallSoundMixin:
    """The sound-card steps of :class:`~softphone.ua.call.Call`: open the devices its host
    names for whichever of ``source`` and ``sink`` the call was not given, close them when
    the call ends."""

    if TYPE_CHECKING:
        _host: CallHost
        _sound: CallSound | None
        call_id: str
        phase: CallPhase
        source: FrameSource | None
        sink: AudioSink | None

        async def _bye(self, reason: str, *, reason_header: str | None = None) -> None: ...

    async def _open_sound(self) -> bool:
        """Before the media session starts; False when a device failed and the call ended
        with the reason (the peer gets a BYE, the person a CallState saying why)."""
        devices: AudioDevices | None = getattr(self._host, "audio_devices", None)
        capture, play = self.source is None, self.sink is None
        if devices is None or self._sound is not None or not (capture or play):
            return True
        try:
            sound = await open_sound(devices, capture=capture, play=play)
        except AudioDeviceError as exc:
            log.warning("call %s: %s", self.call_id, exc)
            await self._bye(f"the sound card could not be used: {exc}")
            return False
        if self.phase is CallPhase.ENDED:  # hung up while the devices were opening
            sound.close_soon()
            return False
        self._sound = sound
        if sound.source is not None:
            self.source = sound.source
        if sound.sink is not None:
            self.sink = sound.sink
        return True

    def _close_sound(self) -> None:
        sound, self._sound = self._sound, None
        if sound is not None:
            sound.close_soon()
