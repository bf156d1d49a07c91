"""RTCP: SR/RR/SDES/BYE round trips (cross-checked with aiortc's parser), RTT, A.1/A.3/A.8."""

from __future__ import annotations

import pytest
from aiortc.rtp import RtcpPacket as AiortcRtcp
from aiortc.rtp import RtcpRrPacket, RtcpSrPacket

from softphone.media.rtcp import (
    Goodbye,
    InterarrivalJitter,
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    RtcpParseError,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    is_rtcp,
    ntp_middle,
    ntp_timestamp,
    parse_compound,
    round_trip_time,
    serialize_compound,
)

BLOCK = ReportBlock(
    ssrc=0xCAFEBABE,
    fraction_lost=64,
    cumulative_lost=-3,
    highest_seq=0x0001_0005,
    jitter=77,
    lsr=0x1234_5678,
    dlsr=0x0002_8000,
)


def test_compound_round_trip() -> None:
    sr = SenderReport(0x11223344, ntp_timestamp(1_700_000_000.25), 123456, 500, 80000, (BLOCK,))
    sdes = SourceDescription(((0x11223344, "alice@example.test"),))
    bye = Goodbye((0x11223344,), "hang up")
    data = serialize_compound([sr, sdes, bye])
    assert len(data) % 4 == 0
    assert parse_compound(data) == [sr, sdes, bye]
    rr = ReceiverReport(0x55, (BLOCK, BLOCK))
    assert parse_compound(serialize_compound([rr])) == [rr]


def test_aiortc_reads_what_we_write() -> None:
    sr = SenderReport(7, ntp_timestamp(1_700_000_000.5), 960, 10, 1600, (BLOCK,))
    rr = ReceiverReport(8, (BLOCK,))
    parsed = AiortcRtcp.parse(serialize_compound([sr, rr]))
    assert isinstance(parsed[0], RtcpSrPacket)
    assert parsed[0].ssrc == 7
    assert parsed[0].sender_info.ntp_timestamp == sr.ntp
    assert parsed[0].sender_info.packet_count == 10
    report = parsed[0].reports[0]
    assert (report.ssrc, report.fraction_lost, report.packets_lost) == (0xCAFEBABE, 64, -3)
    assert (report.highest_sequence, report.jitter, report.lsr, report.dlsr) == (
        0x10005,
        77,
        0x12345678,
        0x28000,
    )
    assert isinstance(parsed[1], RtcpRrPacket)


def test_ntp_and_rtt_math() -> None:
    # RFC 3550 §6.4.1 Figure 2: A = 0xb710:8000 (46864.500 s), LSR = 0xb705:2000
    # (46853.125 s), DLSR = 0x0005:4000 (5.250 s) -> RTT = 6.125 s.
    block = ReportBlock(1, 0, 0, 0, 0, lsr=0xB705_2000, dlsr=0x0005_4000)
    wall = 0xB710_8000 / 65536 - 2_208_988_800  # so that the middle 32 bits of A are b7108000
    assert ntp_middle(ntp_timestamp(wall)) == 0xB710_8000
    assert round_trip_time(block, wall) == pytest.approx(6.125)
    assert round_trip_time(ReportBlock(1, 0, 0, 0, 0, lsr=0), wall) is None
    # DLSR bigger than the elapsed time: a lie or clock trouble, never a negative RTT
    assert round_trip_time(ReportBlock(1, 0, 0, 0, 0, lsr=0xB710_0000, dlsr=0x10_0000), wall) == 0


def test_rtt_end_to_end_with_reception_stats() -> None:
    # We send an SR at wall 1000.0; the peer receives it at its monotonic 50.0, reports at
    # 50.25; the report reaches us at wall 1000.4: RTT = 0.4 - 0.25 = 0.15 s.
    sr = SenderReport(9, ntp_timestamp(1000.0), 0, 1, 160)
    peer = ReceptionStats(9, 8000)
    for seq in range(3):
        peer.update(seq, seq * 160, 49.9 + seq * 0.02, 160)
    peer.note_sender_report(sr, 50.0)
    block = peer.report_block(50.25)
    assert block.lsr == ntp_middle(sr.ntp)
    assert block.dlsr == 0x4000
    assert round_trip_time(block, 1000.4) == pytest.approx(0.15, abs=1e-4)


def test_loss_and_fraction_lost() -> None:
    stats = ReceptionStats(1, 8000)
    seqs = [65530, 65531, 65532, 65534, 65535, 0, 1, 3, 4]  # 65533 and 2 lost, a wrap
    for i, seq in enumerate(seqs):
        stats.update(seq, i * 160, i * 0.02, 160)
    block = stats.report_block(1.0)
    # probation makes the first packet the base only after the second (RFC 3550 A.1)
    assert block.highest_seq == (1 << 16) | 4
    assert block.cumulative_lost == 2
    assert block.fraction_lost == (2 * 256) // 10
    for i, seq in enumerate(range(5, 15)):
        stats.update(seq, (20 + i) * 160, 1 + i * 0.02, 160)
    assert stats.report_block(2.0).fraction_lost == 0


def test_interarrival_jitter_rfc3550_a8() -> None:
    steady = InterarrivalJitter(8000)
    for i in range(50):
        steady.update(i * 160, 10 + i * 0.02)
    assert steady.value == pytest.approx(0, abs=1e-6)
    jittery = InterarrivalJitter(8000)
    for i in range(400):
        jittery.update(i * 160, 10 + i * 0.02 + (0.01 if i % 2 else 0))
    # |D| alternates 80 samples: J converges to 80 (10 ms)
    assert jittery.value == pytest.approx(80, rel=0.01)
    assert jittery.seconds == pytest.approx(0.01, rel=0.01)


@pytest.mark.parametrize(
    ("second_octet", "rtcp"),
    [
        (0, False),
        (8, False),
        (96, False),
        (127, False),
        (128, False),
        (191, False),
        (192, True),
        (200, True),
        (201, True),
        (204, True),
        (223, True),
        (224, False),
    ],
)
def test_rfc5761_demux(second_octet: int, rtcp: bool) -> None:
    assert is_rtcp(bytes([0x80, second_octet, 0, 0])) is rtcp


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\xc9",
        b"\x40\xc9\x00\x01\x00\x00\x00\x01",  # version 1
        b"\x80\xc9\x00\x05\x00\x00\x00\x01",  # length past the end
        b"\x81\xc9\x00\x01\x00\x00\x00\x01",  # RR claims a block it lacks
        b"\x81\xca\x00\x01\x00\x00\x00\x01",  # SDES first
        b"\xa0\xc9\x00\x01\x00\x00\x00\x09",  # padding longer than the packet
    ],
)
def test_malformed_rtcp(data: bytes) -> None:
    with pytest.raises(RtcpParseError):
        parse_compound(data)


def test_unknown_packets_kept() -> None:
    rr = ReceiverReport(1)
    app = UnknownRtcp(204, 0, b"name\x00\x00\x00\x01")
    assert parse_compound(serialize_compound([rr, app])) == [rr, app]
