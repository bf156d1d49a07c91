"""``heard()``, the ear of the audio tests (tests/interop/helpers.py): the latest clear tone
among the last 2 s played, so a moment's gap at the very end (a loaded CI machine starving the
receiver) does not hide the tone that flowed, while silence and noise still fail."""

from __future__ import annotations

import random

import pytest

from softphone.media.tone import SilenceSource, ToneSource
from tests.interop.helpers import HEARD_WINDOW, Recorder, heard


def _play(rec: Recorder, source: ToneSource | SilenceSource, frames: int) -> None:
    for _ in range(frames):
        rec.write(source.read())


def test_a_gap_at_the_end_does_not_hide_the_tone_before_it() -> None:
    rec = Recorder()
    _play(rec, ToneSource(440), 40)
    _play(rec, SilenceSource(), HEARD_WINDOW)  # 300 ms of gap: the last window is silent
    assert heard(rec) == 440


def test_a_changed_tone_is_heard_as_the_new_one() -> None:
    rec = Recorder()
    _play(rec, ToneSource(1000), 40)
    _play(rec, ToneSource(440), 20)
    assert heard(rec) == 440


def test_silence_and_noise_are_no_tone() -> None:
    rec = Recorder()
    _play(rec, SilenceSource(), 60)
    with pytest.raises(AssertionError, match="no clear tone"):
        heard(rec)
    noise = random.Random(7)
    rec.clear()
    for _ in range(HEARD_WINDOW):
        rec.write(b"".join(noise.randrange(-8000, 8000).to_bytes(2, "little", signed=True)
                           for _ in range(960)))  # fmt: skip
    with pytest.raises(AssertionError, match="no clear tone"):
        heard(rec)


def test_a_tone_older_than_two_seconds_is_not_heard() -> None:
    rec = Recorder()
    _play(rec, ToneSource(440), 40)
    _play(rec, SilenceSource(), 101)
    with pytest.raises(AssertionError, match="no clear tone"):
        heard(rec)
