"""RTCP (RFC 3550 §6): sender and receiver reports, SDES CNAME, BYE; reception statistics
(RFC 3550 Appendix A.1, A.3, A.8); round-trip time from LSR/DLSR (§6.4.1); and telling RTCP
from RTP on a muxed port (RFC 5761 §4).

Sans-I/O: times are arguments. ``wall`` is seconds since the Unix epoch (it becomes the NTP
timestamp of a sender report and must be the same clock for sending SRs and timing RRs);
``arrival`` in :class:`ReceptionStats` is any monotonic clock in seconds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = [
    "RTCP_BYE",
    "RTCP_RR",
    "RTCP_SDES",
    "RTCP_SR",
    "Goodbye",
    "InterarrivalJitter",
    "ReceiverReport",
    "ReceptionStats",
    "ReportBlock",
    "RtcpPacket",
    "RtcpParseError",
    "SenderReport",
    "SourceDescription",
    "UnknownRtcp",
    "is_rtcp",
    "ntp_middle",
    "ntp_timestamp",
    "parse_compound",
    "round_trip_time",
    "serialize_compound",
]

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203

_SDES_CNAME = 1
_NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
_SEQ_MOD = 1 << 16
_MAX_DROPOUT = 3000  # RFC 3550 A.1
_MAX_MISORDER = 100
_MIN_SEQUENTIAL = 2


class RtcpParseError(ValueError):
    """A compound packet that does not follow RFC 3550 §6.4-6.6 framing."""


def is_rtcp(datagram: bytes) -> bool:
    """RFC 5761 §4: on a muxed port, a second octet in 192..223 is RTCP (RTCP packet types
    200-204 and the range kept free for them), anything else is RTP."""
    return len(datagram) >= 2 and 192 <= datagram[1] <= 223


def ntp_timestamp(wall: float) -> int:
    """The 64-bit NTP timestamp (RFC 3550 §4) of Unix time ``wall``."""
    return round((wall + _NTP_EPOCH_OFFSET) * (1 << 32)) & ((1 << 64) - 1)


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: the unit of LSR, DLSR and RTT (1/65536 s)."""
    return (ntp >> 16) & 0xFFFFFFFF


def round_trip_time(block: ReportBlock, wall: float) -> float | None:
    """RFC 3550 §6.4.1 (Figure 2): RTT = A - LSR - DLSR, A the arrival time of the report.

    ``None`` when the peer has not received a sender report from us yet (LSR = 0). A negative
    result (clock mismatch, a DLSR lie) is reported as 0."""
    if block.lsr == 0:
        return None
    arrival = ntp_middle(ntp_timestamp(wall))
    rtt = (arrival - block.lsr - block.dlsr) & 0xFFFFFFFF
    if rtt >= 1 << 31:
        return 0.0
    return rtt / 65536


@dataclass(frozen=True)
class ReportBlock:
    """One reception report block (RFC 3550 §6.4.1)."""

    ssrc: int
    fraction_lost: int  # 8-bit fixed point, lost / expected * 256 since the last report
    cumulative_lost: int  # 24-bit signed (duplicates can make it negative)
    highest_seq: int  # extended highest sequence number received (cycles << 16 | seq)
    jitter: int  # interarrival jitter in RTP timestamp units
    lsr: int = 0  # middle 32 bits of the NTP time of the last SR from this source
    dlsr: int = 0  # delay since that SR, 1/65536 s

    def __post_init__(self) -> None:
        if not 0 <= self.fraction_lost <= 255:
            raise ValueError("fraction_lost is an 8-bit field")
        if not -(1 << 23) <= self.cumulative_lost < (1 << 23):
            raise ValueError("cumulative_lost is a 24-bit signed field")

    def to_bytes(self) -> bytes:
        lost = self.cumulative_lost & 0xFFFFFF
        return struct.pack(
            "!IIIIII",
            self.ssrc,
            (self.fraction_lost << 24) | lost,
            self.highest_seq & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.lsr & 0xFFFFFFFF,
            self.dlsr & 0xFFFFFFFF,
        )

    @classmethod
    def parse(cls, data: bytes) -> ReportBlock:
        ssrc, word, highest, jitter, lsr, dlsr = struct.unpack("!IIIIII", data)
        lost = word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 1 << 24
        return cls(ssrc, word >> 24, lost, highest, jitter, lsr, dlsr)


@dataclass(frozen=True)
class SenderReport:
    """SR (RFC 3550 §6.4.1): sender info and up to 31 report blocks."""

    ssrc: int
    ntp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True)
class ReceiverReport:
    """RR (RFC 3550 §6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True)
class SourceDescription:
    """SDES (RFC 3550 §6.5) reduced to what we send and read: the CNAME of each source."""

    cnames: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class Goodbye:
    """BYE (RFC 3550 §6.6)."""

    ssrcs: tuple[int, ...]
    reason: str = ""


@dataclass(frozen=True)
class UnknownRtcp:
    """APP, feedback (RFC 4585) and anything else: kept whole, ignored."""

    packet_type: int
    count: int
    body: bytes = field(repr=False)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Goodbye | UnknownRtcp


def _header(packet_type: int, count: int, body: bytes) -> bytes:
    assert len(body) % 4 == 0
    return struct.pack("!BBH", 0x80 | count, packet_type, len(body) // 4) + body


def _serialize(packet: RtcpPacket) -> bytes:
    if isinstance(packet, SenderReport):
        if len(packet.reports) > 31:
            raise ValueError("at most 31 report blocks")
        body = struct.pack(
            "!IQIII",
            packet.ssrc,
            packet.ntp,
            packet.rtp_timestamp & 0xFFFFFFFF,
            packet.packet_count & 0xFFFFFFFF,
            packet.octet_count & 0xFFFFFFFF,
        )
        body += b"".join(r.to_bytes() for r in packet.reports)
        return _header(RTCP_SR, len(packet.reports), body)
    if isinstance(packet, ReceiverReport):
        if len(packet.reports) > 31:
            raise ValueError("at most 31 report blocks")
        body = struct.pack("!I", packet.ssrc) + b"".join(r.to_bytes() for r in packet.reports)
        return _header(RTCP_RR, len(packet.reports), body)
    if isinstance(packet, SourceDescription):
        body = b""
        for ssrc, cname in packet.cnames:
            text = cname.encode("utf-8")
            if len(text) > 255:
                raise ValueError("CNAME longer than 255 octets")
            chunk = struct.pack("!IBB", ssrc, _SDES_CNAME, len(text)) + text + b"\x00"
            body += chunk + b"\x00" * (-len(chunk) % 4)  # null item ends the chunk, pad to 32 bits
        return _header(RTCP_SDES, len(packet.cnames), body)
    if isinstance(packet, Goodbye):
        body = b"".join(struct.pack("!I", s) for s in packet.ssrcs)
        if packet.reason:
            reason = packet.reason.encode("utf-8")[:255]
            extra = bytes([len(reason)]) + reason
            body += extra + b"\x00" * (-len(extra) % 4)
        return _header(RTCP_BYE, len(packet.ssrcs), body)
    return _header(packet.packet_type, packet.count, packet.body)


def serialize_compound(packets: list[RtcpPacket]) -> bytes:
    """A compound packet (RFC 3550 §6.1): the caller puts the SR or RR first."""
    return b"".join(_serialize(p) for p in packets)


def _parse_reports(data: bytes, count: int) -> tuple[ReportBlock, ...]:
    if len(data) < 24 * count:
        raise RtcpParseError("report blocks truncated")
    return tuple(ReportBlock.parse(data[24 * i : 24 * i + 24]) for i in range(count))


def _parse_sdes(body: bytes, count: int) -> SourceDescription:
    cnames: list[tuple[int, str]] = []
    pos = 0
    for _ in range(count):
        if pos + 4 > len(body):
            raise RtcpParseError("SDES chunk truncated")
        (ssrc,) = struct.unpack_from("!I", body, pos)
        pos += 4
        while True:
            if pos >= len(body):
                raise RtcpParseError("SDES items truncated")
            item = body[pos]
            if item == 0:
                pos += 1
                pos += -pos % 4
                break
            if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
                raise RtcpParseError("SDES item truncated")
            length = body[pos + 1]
            value = body[pos + 2 : pos + 2 + length]
            if item == _SDES_CNAME:
                cnames.append((ssrc, value.decode("utf-8", "replace")))
            pos += 2 + length
    return SourceDescription(tuple(cnames))


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == RTCP_SR:
        if len(body) < 24:
            raise RtcpParseError("SR truncated")
        ssrc, ntp, rtp_ts, packets, octets = struct.unpack_from("!IQIII", body)
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets, _parse_reports(body[24:], count))
    if packet_type == RTCP_RR:
        if len(body) < 4:
            raise RtcpParseError("RR truncated")
        (ssrc,) = struct.unpack_from("!I", body)
        return ReceiverReport(ssrc, _parse_reports(body[4:], count))
    if packet_type == RTCP_SDES:
        return _parse_sdes(body, count)
    if packet_type == RTCP_BYE:
        if len(body) < 4 * count:
            raise RtcpParseError("BYE truncated")
        ssrcs = struct.unpack_from(f"!{count}I", body)
        reason = ""
        rest = body[4 * count :]
        if rest and 1 + rest[0] <= len(rest):
            reason = rest[1 : 1 + rest[0]].decode("utf-8", "replace")
        return Goodbye(tuple(ssrcs), reason)
    return UnknownRtcp(packet_type, count, body)


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Every packet of a compound RTCP packet; :class:`RtcpParseError` if the framing is broken
    (version, lengths, padding: RFC 3550 A.2 validity checks, except that the first packet may
    be an RR or SR of any kind)."""
    packets: list[RtcpPacket] = []
    pos = 0
    if len(data) < 4:
        raise RtcpParseError("RTCP packet shorter than its header")
    while pos < len(data):
        if pos + 4 > len(data):
            raise RtcpParseError("RTCP header truncated")
        first, packet_type, length = struct.unpack_from("!BBH", data, pos)
        if first >> 6 != 2:
            raise RtcpParseError("RTCP version is not 2")
        end = pos + 4 + 4 * length
        if end > len(data):
            raise RtcpParseError("RTCP length runs past the datagram")
        body = data[pos + 4 : end]
        if first & 0x20:  # padding: only legal on the last packet of the compound
            if end != len(data) or not body or not 0 < body[-1] <= len(body):
                raise RtcpParseError("bad RTCP padding")
            body = body[: -body[-1]]
        packets.append(_parse_one(packet_type, first & 0x1F, body))
        pos = end
    if not isinstance(packets[0], SenderReport | ReceiverReport):
        raise RtcpParseError("a compound RTCP packet starts with an SR or RR")
    return packets


class InterarrivalJitter:
    """RFC 3550 §6.4.1 / A.8: J(i) = J(i-1) + (|D(i-1,i)| - J(i-1)) / 16, in RTP units."""

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self._transit: float | None = None
        self.value = 0.0  # RTP timestamp units

    def update(self, rtp_timestamp: int, arrival: float) -> None:
        transit = arrival * self.clock_rate - rtp_timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            # A 32-bit timestamp wrap or a new timeline is not jitter.
            if d < self.clock_rate * 10:
                self.value += (d - self.value) / 16
        self._transit = transit

    @property
    def seconds(self) -> float:
        return self.value / self.clock_rate


class ReceptionStats:
    """What we know of one remote source: RFC 3550 A.1 sequence tracking, A.3 loss, A.8
    jitter, and the LSR/DLSR bookkeeping for the report block we send back."""

    def __init__(self, ssrc: int, clock_rate: int) -> None:
        self.ssrc = ssrc
        self.jitter = InterarrivalJitter(clock_rate)
        self.received = 0
        self.octets = 0
        self._base_seq = 0
        self._max_seq = 0
        self._cycles = 0
        self._bad_seq = _SEQ_MOD + 1
        self._probation = _MIN_SEQUENTIAL
        self._started = False
        self._expected_prior = 0
        self._received_prior = 0
        self._last_sr: int = 0  # middle 32 bits of the NTP time of the last SR received
        self._last_sr_arrival: float | None = None

    def _init_seq(self, seq: int) -> None:
        self._base_seq = seq
        self._max_seq = seq
        self._bad_seq = _SEQ_MOD + 1
        self._cycles = 0
        self.received = 0
        self._received_prior = 0
        self._expected_prior = 0

    def update(self, seq: int, rtp_timestamp: int, arrival: float, size: int) -> bool:
        """Account one RTP packet (after SRTP). ``False`` if A.1 says it is not valid yet
        (probation) or a big jump that needs confirmation."""
        if not self._started:
            self._init_seq(seq)
            self._max_seq = seq - 1 & 0xFFFF
            self._probation = _MIN_SEQUENTIAL
            self._started = True
        udelta = (seq - self._max_seq) & 0xFFFF
        if self._probation:
            if seq == (self._max_seq + 1) & 0xFFFF:
                self._probation -= 1
                self._max_seq = seq
                if self._probation == 0:
                    self._init_seq(seq)
                    self._count(rtp_timestamp, arrival, size)
                    return True
            else:
                self._probation = _MIN_SEQUENTIAL - 1
                self._max_seq = seq
            return False
        if udelta < _MAX_DROPOUT:
            if seq < self._max_seq:
                self._cycles += _SEQ_MOD
            self._max_seq = seq
        elif udelta <= _SEQ_MOD - _MAX_MISORDER:
            if seq == self._bad_seq:
                self._init_seq(seq)  # two sequential packets: the source restarted
            else:
                self._bad_seq = (seq + 1) & 0xFFFF
                return False
        # else: duplicate or reordered packet, counted below
        self._count(rtp_timestamp, arrival, size)
        return True

    def _count(self, rtp_timestamp: int, arrival: float, size: int) -> None:
        self.received += 1
        self.octets += size
        self.jitter.update(rtp_timestamp, arrival)

    @property
    def extended_max_seq(self) -> int:
        return self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        return self.extended_max_seq - self._base_seq + 1 if self.received else 0

    @property
    def cumulative_lost(self) -> int:
        lost = self.expected - self.received
        return max(-(1 << 23), min(lost, (1 << 23) - 1))

    def note_sender_report(self, sr: SenderReport, arrival: float) -> None:
        self._last_sr = ntp_middle(sr.ntp)
        self._last_sr_arrival = arrival

    def report_block(self, now: float) -> ReportBlock:
        """The block for our next SR/RR, and start a new interval for ``fraction_lost``
        (RFC 3550 A.3). ``now`` on the same clock as the ``arrival`` times."""
        expected = self.expected
        expected_interval = expected - self._expected_prior
        received_interval = self.received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        dlsr = 0
        if self._last_sr_arrival is not None:
            dlsr = max(0, round((now - self._last_sr_arrival) * 65536))
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=fraction,
            cumulative_lost=self.cumulative_lost,
            highest_seq=self.extended_max_seq & 0xFFFFFFFF,
            jitter=int(self.jitter.value),
            lsr=self._last_sr,
            dlsr=dlsr & 0xFFFFFFFF,
        )
