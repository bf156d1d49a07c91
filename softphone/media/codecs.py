"""Audio codecs for RTP: thin typed wrappers over ``aiortc.codecs`` (PyAV/FFmpeg underneath).

Everything above this module speaks one PCM format: 16-bit signed little-endian mono at
:data:`INTERNAL_RATE` = 48 kHz, in 20 ms frames of :data:`INTERNAL_FRAME_SAMPLES` samples.
48 kHz because it is opus' own rate and the rate sound servers (PulseAudio, PipeWire) run at,
so the common wideband path (opus, sound card) needs no resampling at all, and the others
divide it exactly (G.722 by 3, G.711 by 6); a 16 kHz core would throw away opus' fullband and
resample every sound card frame.

* :class:`AudioCodec` — one payload format: ``encode(pcm)`` takes one 20 ms frame of mono PCM
  *at the codec's own sample rate* and returns the RTP payloads; ``decode(payload)`` returns
  mono PCM at the codec's rate (opus' stereo output is mixed down).
* :class:`Resampler` — a fixed-ratio stream resampler (libswresample) that returns exactly
  ``len(input) * out_rate / in_rate`` samples per call, so 20 ms in is 20 ms out (its filter
  delay is paid once, as leading silence).
* :class:`CodecPipeline` — both together: internal-rate frames in and out.

G.722's RTP clock is 8000 though it samples at 16 kHz (RFC 3551 §4.5.2): the timestamp step of
a 20 ms frame is ``clock_rate * 0.02`` = 160, not 320.
"""

from __future__ import annotations

import fractions
from typing import Any

from aiortc.codecs.g711 import PcmaDecoder, PcmaEncoder, PcmuDecoder, PcmuEncoder
from aiortc.codecs.g722 import G722Decoder, G722Encoder
from aiortc.codecs.opus import OpusDecoder, OpusEncoder
from aiortc.jitterbuffer import JitterFrame
from av import AudioFrame, AudioResampler

from softphone.sdp.codecs import PayloadFormat

__all__ = [
    "FRAME_DURATION",
    "INTERNAL_FRAME_SAMPLES",
    "INTERNAL_RATE",
    "SUPPORTED_CODECS",
    "AudioCodec",
    "CodecPipeline",
    "Resampler",
    "UnsupportedCodecError",
]

INTERNAL_RATE = 48_000
FRAME_DURATION = 0.02
INTERNAL_FRAME_SAMPLES = 960

#: encoding name -> (sample rate of the PCM the codec works on, encoder, decoder class)
_CODECS: dict[str, tuple[int, Any, Any]] = {
    "pcmu": (8000, PcmuEncoder, PcmuDecoder),
    "pcma": (8000, PcmaEncoder, PcmaDecoder),
    "g722": (16000, G722Encoder, G722Decoder),
    "opus": (48000, OpusEncoder, OpusDecoder),
}
SUPPORTED_CODECS = frozenset(_CODECS)

_OPUS_BITRATE = 32_000  # aiortc's 96 kb/s is music quality; 32 kb/s is fullband speech


class UnsupportedCodecError(ValueError):
    """A payload format the media layer has no encoder or decoder for."""


def _frame(pcm: bytes, rate: int, pts: int) -> AudioFrame:
    samples = len(pcm) // 2
    frame = AudioFrame(format="s16", layout="mono", samples=samples)
    frame.planes[0].update(pcm)
    frame.sample_rate = rate
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, rate)
    return frame


def _pcm(frame: AudioFrame) -> bytes:
    """The interleaved s16 samples of a frame (the plane may be padded beyond them)."""
    channels = len(frame.layout.channels)
    return bytes(frame.planes[0])[: frame.samples * channels * 2]


class Resampler:
    """Mono s16 from ``in_rate`` to ``out_rate``, same duration out as in."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._resampler = AudioResampler(format="s16", layout="mono", rate=out_rate)
        self._pending = bytearray()
        self._primed = False
        self._pts = 0

    def process(self, pcm: bytes) -> bytes:
        if self.in_rate == self.out_rate:
            return pcm
        in_samples = len(pcm) // 2
        want = in_samples * self.out_rate // self.in_rate
        frame = _frame(pcm, self.in_rate, self._pts)
        self._pts += in_samples
        for out in self._resampler.resample(frame):
            self._pending += _pcm(out)
        if not self._primed:
            # The filter holds back a few samples at first: pad once so that every later
            # call has a whole frame ready.
            self._pending[:0] = bytes(max(0, 2 * want - len(self._pending)))
            self._primed = True
        if len(self._pending) < 2 * want:
            self._pending += bytes(2 * want - len(self._pending))
        data = bytes(self._pending[: 2 * want])
        del self._pending[: 2 * want]
        return data


class AudioCodec:
    """Encoder and decoder of one payload format, 20 ms frames at the codec's sample rate."""

    def __init__(self, fmt: PayloadFormat) -> None:
        try:
            rate, encoder_class, decoder_class = _CODECS[fmt.name]
        except KeyError:
            raise UnsupportedCodecError(f"no codec for {fmt.encoding_name}") from None
        self.format = fmt
        self.name = fmt.name
        self.sample_rate = rate
        self.clock_rate = fmt.clock_rate
        self.frame_samples = round(rate * FRAME_DURATION)
        #: RTP timestamp step of one 20 ms frame
        self.timestamp_step = round(fmt.clock_rate * FRAME_DURATION)
        self._encoder = encoder_class()
        if self.name == "opus":
            self._encoder.codec.bit_rate = _OPUS_BITRATE  # before first use opens the codec
        self._decoder = decoder_class()
        self._mixdown: AudioResampler | None = None
        self._pts = 0

    def encode(self, pcm: bytes) -> list[bytes]:
        """The RTP payloads for one 20 ms frame (usually one; none while a codec fills up)."""
        frame = _frame(pcm, self.sample_rate, self._pts)
        self._pts += len(pcm) // 2
        payloads, _timestamp = self._encoder.encode(frame)
        return [bytes(p) for p in payloads]

    def decode(self, payload: bytes, timestamp: int = 0) -> bytes:
        """Mono PCM at :attr:`sample_rate`; a payload the decoder rejects gives ``b""``."""
        try:
            frames = self._decoder.decode(JitterFrame(data=payload, timestamp=timestamp))
        except Exception:  # noqa: BLE001 - FFmpeg raises many error types on garbage input
            return b""
        out = bytearray()
        for frame in frames:
            if len(frame.layout.channels) > 1 or frame.sample_rate != self.sample_rate:
                if self._mixdown is None:
                    self._mixdown = AudioResampler(
                        format="s16", layout="mono", rate=self.sample_rate
                    )
                for mono in self._mixdown.resample(frame):
                    out += _pcm(mono)
            else:
                out += _pcm(frame)
        return bytes(out)


class CodecPipeline:
    """An :class:`AudioCodec` behind resamplers: 48 kHz internal frames in and out."""

    def __init__(self, fmt: PayloadFormat) -> None:
        self.codec = AudioCodec(fmt)
        rate = self.codec.sample_rate
        self._down = Resampler(INTERNAL_RATE, rate)
        self._up = Resampler(rate, INTERNAL_RATE)

    @property
    def timestamp_step(self) -> int:
        return self.codec.timestamp_step

    def encode(self, pcm: bytes) -> list[bytes]:
        """One internal 20 ms frame -> RTP payloads."""
        return self.codec.encode(self._down.process(pcm))

    def decode(self, payload: bytes, timestamp: int = 0) -> bytes:
        """One payload -> internal-rate PCM (its length follows the packet's duration; a
        payload the codec rejects gives ``b""``)."""
        pcm = self.codec.decode(payload, timestamp)
        if not pcm:
            return b""
        return self._up.process(pcm)
