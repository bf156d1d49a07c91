"""Jitter buffer tables: reorder, loss, duplicates, late packets, adaptation; concealment."""

from __future__ import annotations

import pytest

from softphone.media.jitter import Concealer, JitterBuffer, PlayoutKind
from softphone.media.srtp import DropReason

F = 160  # timestamp step of 20 ms at 8 kHz


def _run(arrivals: list[tuple[float, int]], pops: int, start: float = 0.0) -> list[str]:
    """arrivals: (time, seq) with timestamp = seq * F; pops every 20 ms from ``start``.
    Returns what each pop played: the seq number, "C" (conceal) or "-" (silence). Play-out
    starts when the oldest frame has waited the target delay (40 ms) or that much is buffered."""
    jb = JitterBuffer(8000, F, min_delay=0.04)
    pending = sorted(arrivals)
    out: list[str] = []
    for i in range(pops):
        now = start + i * 0.02
        while pending and pending[0][0] <= now:
            t, seq = pending.pop(0)
            jb.push(seq, seq * F, bytes([seq % 256]), t)
        p = jb.pop(now)
        if p.kind is PlayoutKind.FRAME:
            out.append(str(p.payload[0]))
        else:
            out.append("C" if p.kind is PlayoutKind.CONCEAL else "-")
    return out


@pytest.mark.parametrize(
    ("name", "arrivals", "expected"),
    [
        ("in order", [(0.00, 1), (0.02, 2), (0.04, 3), (0.06, 4)], ["-", "1", "2", "3", "4", "C"]),
        (
            "reordered",
            [(0.00, 1), (0.03, 3), (0.035, 2), (0.06, 4)],
            ["-", "-", "1", "2", "3", "4"],
        ),
        ("lost", [(0.00, 1), (0.02, 2), (0.06, 4), (0.08, 5)], ["-", "1", "2", "C", "4", "5"]),
        ("duplicate", [(0.00, 1), (0.01, 1), (0.02, 2), (0.04, 3)], ["-", "1", "2", "3", "C", "C"]),
    ],
)
def test_playout_table(name: str, arrivals: list[tuple[float, int]], expected: list[str]) -> None:
    assert _run(arrivals, len(expected)) == expected, name


def test_late_packet_dropped_and_counted() -> None:
    jb = JitterBuffer(8000, F, min_delay=0.04)
    jb.push(1, F, b"1", 0.0)
    jb.push(2, 2 * F, b"2", 0.02)
    assert jb.pop(0.04).payload == b"1"
    assert jb.pop(0.06).payload == b"2"
    assert jb.pop(0.08).kind is PlayoutKind.CONCEAL  # 3 is missing at its play-out time
    assert jb.push(3, 3 * F, b"3", 0.09) is DropReason.LATE
    assert jb.push(4, 4 * F, b"4", 0.09) is None
    assert jb.pop(0.10).payload == b"4"
    assert jb.push(2, 2 * F, b"2", 0.11) is DropReason.DUPLICATE  # already played
    assert jb.drops == {DropReason.LATE: 1, DropReason.DUPLICATE: 1}
    assert (jb.played, jb.concealed) == (3, 1)


def test_sequence_and_timestamp_wrap() -> None:
    jb = JitterBuffer(8000, F, min_delay=0.02)
    base_ts = (1 << 32) - 2 * F
    seqs = [65534, 65535, 0, 1]
    for i, seq in enumerate(seqs):
        jb.push(seq, (base_ts + i * F) & 0xFFFFFFFF, bytes([i]), i * 0.02)
    played = [jb.pop(0.05 + i * 0.02) for i in range(4)]
    assert [p.payload for p in played] == [b"\x00", b"\x01", b"\x02", b"\x03"]


def test_target_delay_follows_jitter() -> None:
    steady = JitterBuffer(8000, F, min_delay=0.04, max_delay=0.3)
    for i in range(200):
        steady.push(i, i * F, b"x", i * 0.02)
    assert steady.target_delay == pytest.approx(0.04)
    jittery = JitterBuffer(8000, F, min_delay=0.04, max_delay=0.3)
    for i in range(200):
        jittery.push(i, i * F, b"x", i * 0.02 + (0.03 if i % 2 else 0))
    # J ~ 30 ms -> 1 frame + ceil(3 * 30 ms / 20 ms) = 6 frames
    assert jittery.jitter.seconds == pytest.approx(0.03, rel=0.05)
    assert jittery.target_delay == pytest.approx(0.12)


def test_buffer_shrinks_when_too_deep_and_grows_after_late_packets() -> None:
    jb = JitterBuffer(8000, F, min_delay=0.04)
    for seq in range(12):  # a burst: 12 frames at once
        jb.push(seq, seq * F, bytes([seq]), 0.0)
    now = 0.04
    for _ in range(30):
        jb.pop(now)
        now += 0.02
        jb.push(12 + _, (12 + _) * F, b"y", now)
    assert jb.shrunk >= 1
    before = jb.target_frames
    late = JitterBuffer(8000, F, min_delay=0.04)
    late.push(0, 0, b"a", 0.0)
    late.push(1, F, b"b", 0.02)
    late.pop(0.04)
    late.pop(0.06)
    late.pop(0.08)
    assert late.target_frames == 2
    assert late.push(2, 2 * F, b"c", 0.09) is DropReason.LATE
    assert late.target_frames >= 3  # one frame more after a late arrival
    assert before >= 2


def test_rebuffers_after_a_pause_and_resyncs_on_a_timestamp_jump() -> None:
    jb = JitterBuffer(8000, F, min_delay=0.04)
    jb.push(1, F, b"1", 0.0)
    assert jb.pop(0.04).payload == b"1"
    kinds = [jb.pop(0.06 + i * 0.02).kind for i in range(12)]
    assert kinds[:10] == [PlayoutKind.CONCEAL] * 10
    assert kinds[-1] is PlayoutKind.SILENCE  # stopped, waiting to refill
    jb.push(2, 100_000, b"2", 1.0)  # new talkspurt far ahead
    jb.push(3, 100_000 + F, b"3", 1.02)
    assert jb.pop(1.04).payload == b"2"
    assert jb.pop(1.06).payload == b"3"


def test_concealer_repeats_and_fades() -> None:
    c = Concealer(4)
    assert c.conceal() == bytes(8)  # nothing heard yet: silence
    frame = b"".join(v.to_bytes(2, "little", signed=True) for v in (1000, -1000, 2000, -2000))
    assert c.good(frame) == frame
    first = c.conceal()
    assert int.from_bytes(first[:2], "little", signed=True) == 700
    levels = [abs(int.from_bytes(c.conceal()[4:6], "little", signed=True)) for _ in range(3)]
    assert levels == [800, 300, 0]
