"""Audio sources and sinks that need no device, and a tone detector.

All work on 20 ms frames of 16-bit mono PCM at :data:`~softphone.media.codecs.INTERNAL_RATE`
(the :class:`FrameSource` / :class:`AudioSink` protocols of the session).

* :class:`ToneSource` — a phase-continuous sine (a test call, a ring-back you can hear);
* :class:`SilenceSource`;
* :class:`LevelMeter` — RMS and peak of what was played, in dBFS;
* :func:`goertzel_power` / :func:`dominant_frequency` — a pure-Python single-bin DFT
  (Goertzel), enough to say "this recording is a 1000 Hz tone" without numpy.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from typing import Protocol

from softphone.media.codecs import INTERNAL_FRAME_SAMPLES, INTERNAL_RATE

__all__ = [
    "AudioSink",
    "FrameSource",
    "LevelMeter",
    "SilenceSource",
    "ToneSource",
    "dominant_frequency",
    "goertzel_power",
    "samples",
]


class FrameSource(Protocol):
    """Gives the session one 20 ms frame of 48 kHz mono s16 PCM per call (``None``: nothing
    to send now; the session sends nothing for that frame)."""

    def read(self) -> bytes | None: ...


class AudioSink(Protocol):
    """Takes one 20 ms frame of 48 kHz mono s16 PCM per call, in play-out order."""

    def write(self, pcm: bytes) -> None: ...


def samples(pcm: bytes) -> array[int]:
    out = array("h")
    out.frombytes(pcm[: len(pcm) // 2 * 2])
    return out


class ToneSource:
    """A sine at ``frequency`` Hz, ``level`` dBFS (0 = full scale).

    A whole number of hertz repeats every ``rate / gcd(rate, frequency)`` samples (48 for
    1000 Hz, 1200 for 440 Hz): that cycle is computed once and each frame is a slice of it,
    not 960 ``sin`` calls in Python (~0.7 ms of the GIL per frame on the media thread, beside
    the window's event loop: issue 7). Other frequencies are computed sample by sample."""

    def __init__(
        self, frequency: float, level: float = -12.0, *, rate: int = INTERNAL_RATE
    ) -> None:
        self.frequency = frequency
        self.rate = rate
        self._amplitude = 32767 * 10 ** (level / 20)
        self._step = 2 * math.pi * frequency / rate
        self._n = 0
        self.frame_samples = round(rate * 0.02)
        self._period = 0
        self._cycles = b""  # whole cycles, enough for a frame starting anywhere in the first
        if float(frequency).is_integer() and frequency > 0:
            self._period = rate // math.gcd(rate, int(frequency))
            cycle = self._samples(0, self._period)
            repeats = -(-(self._period + self.frame_samples) // self._period)
            self._cycles = cycle * repeats

    def _samples(self, start: int, end: int) -> bytes:
        amp, step = self._amplitude, self._step
        return array("h", (int(amp * math.sin(step * i)) for i in range(start, end))).tobytes()

    def read(self) -> bytes:
        start = self._n
        self._n += self.frame_samples
        if not self._period:
            return self._samples(start, self._n)
        offset = 2 * (start % self._period)
        return self._cycles[offset : offset + 2 * self.frame_samples]


class SilenceSource:
    def __init__(self, frame_samples: int = INTERNAL_FRAME_SAMPLES) -> None:
        self._frame = bytes(2 * frame_samples)

    def read(self) -> bytes:
        return self._frame


class LevelMeter:
    """RMS of the last frame and peak since creation, in dBFS (-inf for digital silence)."""

    def __init__(self) -> None:
        self.frames = 0
        self.rms_dbfs = -math.inf
        self.peak_dbfs = -math.inf

    def write(self, pcm: bytes) -> None:
        data = samples(pcm)
        self.frames += 1
        if not data:
            return
        rms = math.sqrt(sum(s * s for s in data) / len(data))
        peak = max(abs(min(data)), abs(max(data)))
        self.rms_dbfs = 20 * math.log10(rms / 32768) if rms else -math.inf
        if peak:
            self.peak_dbfs = max(self.peak_dbfs, 20 * math.log10(peak / 32768))


def goertzel_power(data: Sequence[int], frequency: float, rate: int = INTERNAL_RATE) -> float:
    """Power of ``frequency`` in ``data`` (Goertzel's algorithm, normalised by length²)."""
    n = len(data)
    if n == 0:
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * frequency / rate)
    s1 = s2 = 0.0
    for x in data:
        s0 = x + coeff * s1 - s2
        s2, s1 = s1, s0
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (n * n)


def dominant_frequency(
    data: Sequence[int], candidates: Iterable[float], rate: int = INTERNAL_RATE
) -> tuple[float, float]:
    """The candidate frequency with the most power, and the share of the total candidate
    power it holds (1.0 = a pure tone among these candidates)."""
    powers = [(goertzel_power(data, f, rate), f) for f in candidates]
    total = sum(p for p, _ in powers)
    best_power, best = max(powers)
    return best, (best_power / total if total else 0.0)
