"""An adaptive play-out (jitter) buffer for one audio stream, sans-I/O.

Packets go in with :meth:`JitterBuffer.push` in whatever order the network delivers them;
every 20 ms the session calls :meth:`JitterBuffer.pop` and gets exactly one :class:`Playout`:
the encoded frame due now, or an instruction to conceal a missing one, or silence while the
buffer fills. Time is an argument (``now``, seconds on any monotonic clock).

* Order is by RTP timestamp (sequence numbers only detect duplicates): a frame is due when
  its timestamp reaches the play-out point, which advances one frame per ``pop``.
* A duplicate (same sequence number as one buffered or played recently) is dropped and counted;
  a frame whose play-out time has passed is *late*, dropped and counted, and makes the target
  delay grow.
* The target delay follows the RFC 3550 A.8 interarrival jitter (:class:`InterarrivalJitter`):
  a frame's worth plus three jitters, rounded up to whole frames, between ``min_delay`` and
  ``max_delay``. The buffer grows by holding the play-out point one frame (a concealment frame
  is played) and shrinks by dropping the oldest frame, each at most once per
  ``ADAPT_EVERY`` frames so that speech is not chopped.
* :class:`Concealer` covers a lost frame in the PCM domain: it repeats the last good frame,
  fading out (0.7, 0.4, 0.15, then silence) — good enough for 20 ms losses, and codec
  independent. (libopus' own PLC is not reachable through PyAV: an empty packet means
  "drain".)
"""

from __future__ import annotations

import math
from array import array
from collections import Counter, deque
from dataclasses import dataclass
from enum import Enum

from softphone.media.rtcp import InterarrivalJitter
from softphone.media.srtp import DropReason

__all__ = ["ADAPT_EVERY", "Concealer", "JitterBuffer", "Playout", "PlayoutKind"]

ADAPT_EVERY = 25  # frames (0.5 s at 20 ms) between two delay adjustments
_RESYNC_FRAMES = 50  # a timestamp jump bigger than this (1 s) is a new timeline, not loss
_REBUFFER_AFTER = 10  # consecutive empty pops before we stop and fill up again
_RECENT_SEQS = 128


class PlayoutKind(Enum):
    FRAME = "frame"  # a received frame: decode ``payload``
    CONCEAL = "conceal"  # the frame due now is missing: conceal
    SILENCE = "silence"  # not playing (buffering, or nothing ever received)


@dataclass(frozen=True)
class Playout:
    kind: PlayoutKind
    timestamp: int
    payload: bytes = b""
    sequence_number: int | None = None


@dataclass
class _Entry:
    seq: int
    timestamp: int
    payload: bytes
    arrival: float


def _ts_diff(a: int, b: int) -> int:
    """a - b for 32-bit RTP timestamps, signed (wraps handled)."""
    d = (a - b) & 0xFFFFFFFF
    return d - (1 << 32) if d >= 1 << 31 else d


class JitterBuffer:
    """See the module docstring. ``frame_samples`` is the RTP timestamp step of one 20 ms
    frame (160 for PCMU/PCMA/G.722 whose RTP clock is 8000, 960 for opus)."""

    def __init__(
        self,
        clock_rate: int,
        frame_samples: int,
        *,
        frame_duration: float = 0.02,
        min_delay: float = 0.04,
        max_delay: float = 0.3,
    ) -> None:
        self.clock_rate = clock_rate
        self.frame_samples = frame_samples
        self.frame_duration = frame_duration
        self._min_frames = max(1, math.ceil(min_delay / frame_duration - 1e-9))
        self._max_frames = max(self._min_frames, math.ceil(max_delay / frame_duration - 1e-9))
        self._late_margin = 0  # frames added after late arrivals, decays slowly
        self.jitter = InterarrivalJitter(clock_rate)
        self._entries: dict[int, _Entry] = {}  # by timestamp
        self._recent: deque[int] = deque(maxlen=_RECENT_SEQS)
        self._recent_set: set[int] = set()
        self._playing = False
        self._next_ts = 0
        self._empty_pops = 0
        self._since_adapt = 0
        self.drops: Counter[DropReason] = Counter()
        self.played = 0
        self.concealed = 0
        self.shrunk = 0
        self.stretched = 0

    # -- input -------------------------------------------------------------------------------

    def push(self, seq: int, timestamp: int, payload: bytes, now: float) -> DropReason | None:
        """Buffer one frame; the reason if it was dropped (also counted in :attr:`drops`)."""
        if seq in self._recent_set or any(e.seq == seq for e in self._entries.values()):
            return self._drop(DropReason.DUPLICATE)
        self.jitter.update(timestamp, now)
        if self._playing:
            ahead = _ts_diff(timestamp, self._next_ts)
            if ahead < 0 and -ahead < _RESYNC_FRAMES * self.frame_samples:
                self._late_margin = min(self._late_margin + 1, self._max_frames)
                self._remember(seq)
                return self._drop(DropReason.LATE)
        if timestamp in self._entries:
            return self._drop(DropReason.DUPLICATE)
        self._entries[timestamp] = _Entry(seq, timestamp, payload, now)
        return None

    def _drop(self, reason: DropReason) -> DropReason:
        self.drops[reason] += 1
        return reason

    def _remember(self, seq: int) -> None:
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(seq)
        self._recent_set.add(seq)

    # -- delay -------------------------------------------------------------------------------

    @property
    def target_frames(self) -> int:
        """Target buffer depth in frames: one frame plus three jitters, plus late margin."""
        jitter_frames = math.ceil(3 * self.jitter.seconds / self.frame_duration - 1e-9)
        wanted = 1 + jitter_frames + self._late_margin
        return max(self._min_frames, min(self._max_frames, wanted))

    @property
    def target_delay(self) -> float:
        return self.target_frames * self.frame_duration

    @property
    def depth_frames(self) -> int:
        """How many frames from the play-out point to the newest buffered one."""
        if not self._entries:
            return 0
        if not self._playing:
            return len(self._entries)
        newest = max(self._entries, key=lambda ts: _ts_diff(ts, self._next_ts))
        return max(0, _ts_diff(newest, self._next_ts) // self.frame_samples + 1)

    def _oldest(self) -> _Entry | None:
        if not self._entries:
            return None
        ref = self._next_ts if self._playing else next(iter(self._entries))
        ts = min(self._entries, key=lambda t: _ts_diff(t, ref))
        return self._entries[ts]

    # -- output ------------------------------------------------------------------------------

    def pop(self, now: float) -> Playout:
        """The frame to play for the next 20 ms (call once per frame period)."""
        if not self._playing:
            oldest = self._oldest()
            if oldest is None:
                return Playout(PlayoutKind.SILENCE, self._next_ts)
            waited = now - oldest.arrival >= self.target_delay - 1e-9
            if not waited and len(self._entries) < self.target_frames:
                return Playout(PlayoutKind.SILENCE, self._next_ts)
            self._playing = True
            self._next_ts = oldest.timestamp
            self._empty_pops = 0
            self._since_adapt = 0
        self._since_adapt += 1
        self._adapt()
        entry = self._entries.pop(self._next_ts, None)
        if entry is None:
            entry = self._resync()
        ts = self._next_ts
        self._next_ts = (self._next_ts + self.frame_samples) & 0xFFFFFFFF
        if entry is not None:
            self._remember(entry.seq)
            self._empty_pops = 0
            self.played += 1
            return Playout(PlayoutKind.FRAME, entry.timestamp, entry.payload, entry.seq)
        self._empty_pops += 1
        self.concealed += 1
        if self._empty_pops >= _REBUFFER_AFTER and not self._entries:
            self._playing = False  # the peer stopped (hold, DTX): fill up again when it resumes
            self._late_margin = max(0, self._late_margin - 1)
        return Playout(PlayoutKind.CONCEAL, ts)

    def _resync(self) -> _Entry | None:
        """The frame due is missing. A frame a little off the frame grid (odd packetisation)
        is taken as this one; a jump of more than a second starts a new timeline."""
        oldest = self._oldest()
        if oldest is None:
            return None
        ahead = _ts_diff(oldest.timestamp, self._next_ts)
        if abs(ahead) < self.frame_samples // 2 or ahead >= _RESYNC_FRAMES * self.frame_samples:
            self._next_ts = oldest.timestamp
            return self._entries.pop(oldest.timestamp)
        return None

    def _adapt(self) -> None:
        if self._since_adapt < ADAPT_EVERY:
            return
        depth = self.depth_frames
        target = self.target_frames
        if depth > target + 2 and self._oldest() is not None:
            oldest = self._oldest()
            assert oldest is not None
            del self._entries[oldest.timestamp]
            self._remember(oldest.seq)
            self._next_ts = (oldest.timestamp + self.frame_samples) & 0xFFFFFFFF
            self.shrunk += 1
            self._since_adapt = 0
        elif depth < target and self._entries:
            # Hold the play-out point one frame: this pop conceals, the buffer gains a frame.
            self._next_ts = (self._next_ts - self.frame_samples) & 0xFFFFFFFF
            self.stretched += 1
            self._since_adapt = 0
            if self._late_margin and depth >= target - 1:
                self._late_margin -= 1


class Concealer:
    """Packet loss concealment on 16-bit mono PCM: repeat the last frame, fading out."""

    GAINS = (0.7, 0.4, 0.15)

    def __init__(self, frame_samples: int) -> None:
        self.frame_samples = frame_samples
        self._last: array[int] | None = None
        self._lost = 0

    def good(self, pcm: bytes) -> bytes:
        """Remember a decoded frame (returned unchanged)."""
        frame = array("h")
        frame.frombytes(pcm)
        self._last = frame
        self._lost = 0
        return pcm

    def conceal(self) -> bytes:
        """A stand-in for the missing frame."""
        silence = bytes(2 * self.frame_samples)
        if self._last is None or self._lost >= len(self.GAINS):
            self._lost += 1
            return silence
        gain = self.GAINS[self._lost]
        self._lost += 1
        out = array("h", (int(s * gain) for s in self._last))
        return out.tobytes()
