"""WAV files as audio sources and sinks (stdlib :mod:`wave`, resampled through PyAV).

:class:`WavReader` plays any PCM WAV (8/16-bit, mono or stereo, any rate) as 20 ms frames of
48 kHz mono; :class:`WavWriter` records what the session plays out, as 48 kHz mono 16-bit.
"""

from __future__ import annotations

import wave
from array import array
from pathlib import Path
from types import TracebackType

from softphone.media.codecs import FRAME_DURATION, INTERNAL_RATE, Resampler

__all__ = ["WavReader", "WavWriter", "read_wav_mono"]


def _to_mono_s16(raw: bytes, width: int, channels: int) -> bytes:
    if width == 1:  # 8-bit WAV is unsigned
        data = array("h", ((b - 128) << 8 for b in raw))
    elif width == 2:
        data = array("h")
        data.frombytes(raw[: len(raw) // 2 * 2])
    else:
        raise ValueError(f"{8 * width}-bit WAV is not supported (8 or 16)")
    if channels == 1:
        return data.tobytes()
    mixed = array(
        "h",
        (sum(data[i : i + channels]) // channels for i in range(0, len(data), channels)),
    )
    return mixed.tobytes()


def read_wav_mono(path: str | Path) -> tuple[bytes, int]:
    """The whole file as mono s16 PCM and its sample rate."""
    with wave.open(str(path), "rb") as wav:
        raw = wav.readframes(wav.getnframes())
        return _to_mono_s16(raw, wav.getsampwidth(), wav.getnchannels()), wav.getframerate()


class WavReader:
    """A :class:`~softphone.media.tone.FrameSource` playing a WAV file, once or looping."""

    def __init__(self, path: str | Path, *, loop: bool = False) -> None:
        pcm, rate = read_wav_mono(path)
        self.loop = loop
        self.source_rate = rate
        self._in_frame = round(rate * FRAME_DURATION)
        if len(pcm) < 2 * self._in_frame:
            pcm += bytes(2 * self._in_frame - len(pcm))
        self._pcm = pcm
        self._pos = 0
        self._resampler = Resampler(rate, INTERNAL_RATE)
        self.finished = False

    def read(self) -> bytes | None:
        if self.finished:
            return None
        chunk = self._pcm[self._pos : self._pos + 2 * self._in_frame]
        self._pos += 2 * self._in_frame
        if self._pos >= len(self._pcm):
            if self.loop:
                self._pos = 0
            else:
                self.finished = True
        chunk += bytes(2 * self._in_frame - len(chunk))
        return self._resampler.process(chunk)


class WavWriter:
    """An :class:`~softphone.media.tone.AudioSink` recording 48 kHz mono 16-bit PCM."""

    def __init__(self, path: str | Path, *, rate: int = INTERNAL_RATE) -> None:
        self.path = Path(path)
        self.rate = rate
        self._wav = wave.open(str(path), "wb")  # noqa: SIM115 - closed by close()
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate)
        self.frames = 0

    def write(self, pcm: bytes) -> None:
        self._wav.writeframes(pcm)
        self.frames += 1

    def close(self) -> None:
        self._wav.close()

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
