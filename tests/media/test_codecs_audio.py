"""Codecs, resampler, tone, WAV: real audio, checked with a Goertzel frequency scan."""

from __future__ import annotations

import math
import wave
from array import array
from pathlib import Path

import pytest

from softphone.media.codecs import (
    INTERNAL_FRAME_SAMPLES,
    AudioCodec,
    CodecPipeline,
    Resampler,
    UnsupportedCodecError,
)
from softphone.media.tone import (
    LevelMeter,
    SilenceSource,
    ToneSource,
    dominant_frequency,
    samples,
)
from softphone.media.wav import WavReader, WavWriter
from softphone.sdp.codecs import PayloadFormat

CODECS = {
    "PCMU": PayloadFormat(0, "PCMU", 8000),
    "PCMA": PayloadFormat(8, "PCMA", 8000),
    "G722": PayloadFormat(9, "G722", 8000),
    "opus": PayloadFormat(111, "opus", 48000, 2),
}
SCAN = range(200, 3600, 20)


def peak(pcm: bytes, rate: int = 48000) -> tuple[float, float]:
    return dominant_frequency(samples(pcm), SCAN, rate)


def test_goertzel_finds_the_tone() -> None:
    tone = ToneSource(1000)
    pcm = b"".join(tone.read() for _ in range(5))
    freq, share = peak(pcm)
    assert freq == 1000
    assert share > 0.5


@pytest.mark.parametrize("name", sorted(CODECS))
def test_codec_round_trip_keeps_the_tone(name: str) -> None:
    pipe = CodecPipeline(CODECS[name])
    tone = ToneSource(1000 if name != "PCMA" else 440)
    out = bytearray()
    sizes = set()
    for _ in range(25):
        for payload in pipe.encode(tone.read()):
            sizes.add(len(payload))
            pcm = pipe.decode(payload)
            assert len(pcm) == 2 * INTERNAL_FRAME_SAMPLES
            out += pcm
    assert len(out) >= 20 * 2 * INTERNAL_FRAME_SAMPLES
    freq, share = peak(bytes(out[len(out) // 2 :]))
    assert freq == tone.frequency
    assert share > 0.4
    if name in ("PCMU", "PCMA", "G722"):
        assert sizes == {160}
    assert pipe.timestamp_step == {"opus": 960}.get(name, 160)


def test_codec_rates_and_steps() -> None:
    g722 = AudioCodec(CODECS["G722"])
    assert (g722.sample_rate, g722.frame_samples, g722.timestamp_step) == (16000, 320, 160)
    opus = AudioCodec(CODECS["opus"])
    assert (opus.sample_rate, opus.frame_samples, opus.timestamp_step) == (48000, 960, 960)
    with pytest.raises(UnsupportedCodecError):
        AudioCodec(PayloadFormat(18, "G729", 8000))


def test_garbage_payload_decodes_to_nothing_not_an_exception() -> None:
    pipe = CodecPipeline(CODECS["opus"])
    assert isinstance(pipe.decode(b"\xff" * 3), bytes)


@pytest.mark.parametrize(
    ("src", "dst"), [(48000, 8000), (48000, 16000), (8000, 48000), (44100, 48000)]
)
def test_resampler_is_duration_exact(src: int, dst: int) -> None:
    r = Resampler(src, dst)
    n_in = src // 50
    sizes = {len(r.process(bytes(2 * n_in))) for _ in range(20)}
    assert sizes == {2 * (n_in * dst // src)}


def test_wav_writer_and_reader_resample(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as wav:  # 8 kHz stereo 16-bit 660 Hz
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        frames = array("h")
        for i in range(8000 // 2):
            v = int(8000 * math.sin(2 * math.pi * 660 * i / 8000))
            frames.extend((v, v))
        wav.writeframes(frames.tobytes())
    reader = WavReader(path)
    assert reader.source_rate == 8000
    got = []
    while (frame := reader.read()) is not None:
        assert len(frame) == 2 * INTERNAL_FRAME_SAMPLES
        got.append(frame)
    assert len(got) == 25  # 0.5 s
    assert peak(b"".join(got[5:20]))[0] == 660
    out = tmp_path / "out.wav"
    with WavWriter(out) as writer:
        for frame in got:
            writer.write(frame)
    with wave.open(str(out), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getnframes()) == (48000, 1, 25 * 960)
    looping = WavReader(path, loop=True)
    assert all(looping.read() is not None for _ in range(60))


def test_level_meter_and_silence() -> None:
    meter = LevelMeter()
    meter.write(SilenceSource().read())
    assert meter.rms_dbfs == -math.inf
    meter.write(ToneSource(1000, level=-6).read())
    assert meter.rms_dbfs == pytest.approx(-6 - 3.01, abs=0.1)  # sine RMS = peak - 3 dB
    assert meter.peak_dbfs == pytest.approx(-6, abs=0.1)


def _sine(frequency: float, count: int, level: float = -12.0) -> array[int]:
    amplitude, step = 32767 * 10 ** (level / 20), 2 * math.pi * frequency / 48000
    return array("h", (int(amplitude * math.sin(step * i)) for i in range(count)))


@pytest.mark.parametrize("frequency", [1000, 440, 697, 123.5])
def test_tone_frames_are_one_phase_continuous_sine(frequency: float) -> None:
    # Whole hertz are sliced from a precomputed cycle (1200 samples for 440 Hz: a frame
    # starts anywhere in it); 123.5 Hz is computed sample by sample. The same samples.
    tone = ToneSource(frequency)
    frames = [tone.read() for _ in range(130)]
    assert {len(f) for f in frames} == {2 * 960}
    assert samples(b"".join(frames)) == _sine(frequency, 130 * 960)


def test_a_whole_hertz_tone_computes_no_sine_per_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    # The media thread reads a frame every 20 ms beside the window's loop (issue 7): 960
    # sin() calls in Python were ~0.7 ms of the GIL per frame.
    tone = ToneSource(440)

    def no_sine(_x: float) -> float:
        raise AssertionError("sin() called for a frame")

    monkeypatch.setattr(math, "sin", no_sine)
    for _ in range(60):
        tone.read()
