"""DTMF as RTP telephone-events (RFC 4733), sans-I/O.

Payload (RFC 4733 §2.3)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    |     event     |E|R| volume    |          duration             |

Sending (§2.5.1): every packet of one event carries the event's start timestamp; the first has
the RTP marker bit; each later packet carries the duration so far; the end is sent three times
with the E bit and the final duration (§2.5.1.4 retransmits the final packet). Receiving
(§2.5.2): an event is identified by its timestamp, so the redundant end packets — and any
retransmission arriving later — report the digit once.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "DTMF_DIGITS",
    "DtmfReceiver",
    "DtmfSender",
    "ReceivedDigit",
    "TelephoneEvent",
    "TelephoneEventPacket",
    "digit_to_event",
    "event_to_digit",
]

#: Events 0-15 (RFC 4733 §3.2 Table 1): 0-9, * = 10, # = 11, A-D = 12-15.
DTMF_DIGITS = "0123456789*#ABCD"
_END_REPEATS = 3
_MAX_DURATION = 0xFFFF


def digit_to_event(digit: str) -> int:
    index = DTMF_DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return index


def event_to_digit(event: int) -> str | None:
    return DTMF_DIGITS[event] if 0 <= event < len(DTMF_DIGITS) else None


@dataclass(frozen=True)
class TelephoneEvent:
    """One 4-octet telephone-event payload."""

    event: int
    end: bool
    volume: int  # 0..63, power level in -dBm0 (10 is a usual value)
    duration: int  # in RTP timestamp units of the telephone-event clock

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise ValueError("event is 8 bits")
        if not 0 <= self.volume <= 63:
            raise ValueError("volume is 6 bits")
        if not 0 <= self.duration <= _MAX_DURATION:
            raise ValueError("duration is 16 bits")

    def to_bytes(self) -> bytes:
        return struct.pack(
            "!BBH", self.event, (0x80 if self.end else 0) | self.volume, self.duration
        )

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        """The first event of a payload (§2.5.1.5 allows several; we read the first)."""
        if len(payload) < 4:
            raise ValueError("telephone-event payload shorter than 4 octets")
        event, flags, duration = struct.unpack_from("!BBH", payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)


@dataclass(frozen=True)
class TelephoneEventPacket:
    """What to put in one RTP packet: payload, marker bit, RTP timestamp (the event start)."""

    payload: bytes
    marker: bool
    timestamp: int


class DtmfSender:
    """One digit at a time. ``packet_samples`` is the timestamp step of one packet (20 ms)."""

    def __init__(self, clock_rate: int = 8000, packet_samples: int = 160, volume: int = 10):
        self.clock_rate = clock_rate
        self.packet_samples = packet_samples
        self.volume = volume
        self._event: int | None = None
        self._start_ts = 0
        self._total = 0
        self._sent = 0
        self._ends_left = 0

    @property
    def active(self) -> bool:
        return self._event is not None

    def start(self, digit: str, timestamp: int, duration: float = 0.1) -> None:
        """Begin sending ``digit`` for ``duration`` seconds from RTP ``timestamp``."""
        if self.active:
            raise RuntimeError("a DTMF event is already being sent")
        self._event = digit_to_event(digit)
        self._start_ts = timestamp & 0xFFFFFFFF
        total = round(duration * self.clock_rate)
        self._total = max(self.packet_samples, min(total, _MAX_DURATION))
        self._sent = 0
        self._ends_left = _END_REPEATS

    def next_packet(self) -> TelephoneEventPacket | None:
        """The packet for the next packet interval, ``None`` once the event is over."""
        if self._event is None:
            return None
        first = self._sent == 0
        self._sent = min(self._sent + self.packet_samples, self._total)
        end = self._sent >= self._total
        payload = TelephoneEvent(self._event, end, self.volume, self._sent).to_bytes()
        packet = TelephoneEventPacket(payload, first, self._start_ts)
        if end:
            self._ends_left -= 1
            if self._ends_left == 0:
                self._event = None
        return packet


@dataclass(frozen=True)
class ReceivedDigit:
    digit: str
    event: int
    duration: float  # seconds
    volume: int


class DtmfReceiver:
    """Reports each digit once, when its end is seen (or when the next event starts and the
    end packets were all lost)."""

    def __init__(self, clock_rate: int = 8000) -> None:
        self.clock_rate = clock_rate
        self._current: tuple[int, TelephoneEvent] | None = None  # (timestamp, last seen)
        self._ended: set[int] = set()

    def receive(self, timestamp: int, payload: bytes) -> list[ReceivedDigit]:
        try:
            event = TelephoneEvent.parse(payload)
        except ValueError:
            return []
        out: list[ReceivedDigit] = []
        if timestamp in self._ended:
            return out  # an end retransmission or a late update of a finished event
        if self._current is not None and self._current[0] != timestamp:
            # A new event: the previous one lost all its end packets.
            out.extend(self._report(*self._current))
        self._current = (timestamp, event)
        if event.end:
            out.extend(self._report(timestamp, event))
        return out

    def _report(self, timestamp: int, event: TelephoneEvent) -> list[ReceivedDigit]:
        self._current = None
        self._ended.add(timestamp)
        if len(self._ended) > 64:
            self._ended = {timestamp}
        digit = event_to_digit(event.event)
        if digit is None:
            return []
        return [ReceivedDigit(digit, event.event, event.duration / self.clock_rate, event.volume)]
