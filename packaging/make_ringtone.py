"""Synthesise the ringtone, ``resources/sounds/ringtone.wav`` (made by the project, no samples).

A soft two-tone chime, E5 then B5 (a fifth apart), twice, then a pause: 2.5 s that loop
cleanly (the file starts and ends in silence). Each note has a 10 ms attack and an
exponential decay, with a quiet octave partial for warmth; peak at about -9 dBFS so it is
clear without being harsh. 48 kHz, mono, 16-bit PCM: the engine's internal rate.

Usage: ``.venv/bin/python packaging/make_ringtone.py [OUT.wav]`` (stdlib only; the same
bytes every run).
"""

from __future__ import annotations

import math
import sys
import wave
from array import array
from pathlib import Path

RATE = 48_000
NOTES = ((659.25, 0.0), (987.77, 0.3), (659.25, 0.6), (987.77, 0.9))  # (Hz, start s)
NOTE_LENGTH = 0.45  # s, each note rings on under the next
DURATION = 2.5  # s, the pattern with its pause
PEAK = 0.35  # of full scale (about -9 dBFS)
OUT = Path(__file__).resolve().parent.parent / "resources" / "sounds" / "ringtone.wav"


def synthesise() -> array[int]:
    """The whole pattern as signed 16-bit samples."""
    total = int(DURATION * RATE)
    mix = [0.0] * total
    attack = int(0.010 * RATE)
    length = int(NOTE_LENGTH * RATE)
    fade = int(0.005 * RATE)  # each note ends in a 5 ms fade: no click
    for frequency, start in NOTES:
        first = int(start * RATE)
        for i in range(length):
            envelope = min(1.0, i / attack, (length - i) / fade) * math.exp(-6.0 * i / length)
            t = i / RATE
            tone = math.sin(2 * math.pi * frequency * t)
            tone += 0.25 * math.sin(2 * math.pi * 2 * frequency * t)
            mix[first + i] += envelope * tone
    peak = max(abs(x) for x in mix) or 1.0
    return array("h", (round(x / peak * PEAK * 32767) for x in mix))


def write(path: Path = OUT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        samples = synthesise()
        if sys.byteorder == "big":
            samples.byteswap()  # WAV is little-endian
        wav.writeframes(samples.tobytes())
    return path


if __name__ == "__main__":
    print(write(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
