"""RFC 4733 telephone-events: payload layout, the send sequence, receive dedupe."""

from __future__ import annotations

import pytest

from softphone.media.dtmf import (
    DtmfReceiver,
    DtmfSender,
    TelephoneEvent,
    digit_to_event,
    event_to_digit,
)


@pytest.mark.parametrize(
    ("event", "hex_payload"),
    [
        # RFC 4733 §2.3: event | E R volume | duration
        (TelephoneEvent(9, False, 10, 160), "090a00a0"),
        (TelephoneEvent(9, True, 10, 1600), "098a0640"),
        (TelephoneEvent(11, True, 63, 0xFFFF), "0bbfffff"),
        (TelephoneEvent(0, False, 0, 0), "00000000"),
    ],
)
def test_payload_layout(event: TelephoneEvent, hex_payload: str) -> None:
    assert event.to_bytes().hex() == hex_payload
    assert TelephoneEvent.parse(bytes.fromhex(hex_payload)) == event


def test_digit_table() -> None:
    assert [digit_to_event(d) for d in "0123456789*#ABCD"] == list(range(16))
    assert digit_to_event("a") == 12
    assert event_to_digit(11) == "#"
    assert event_to_digit(16) is None
    with pytest.raises(ValueError, match="DTMF"):
        digit_to_event("E")


def test_send_sequence() -> None:
    # 100 ms digit '5' at 8 kHz in 20 ms packets: start (marker), 3 updates, 3 x end.
    sender = DtmfSender(8000, 160, volume=10)
    sender.start("5", timestamp=12345, duration=0.1)
    packets = []
    while (p := sender.next_packet()) is not None:
        packets.append(p)
    assert [p.timestamp for p in packets] == [12345] * 7
    assert [p.marker for p in packets] == [True] + [False] * 6
    events = [TelephoneEvent.parse(p.payload) for p in packets]
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert {e.event for e in events} == {5}
    assert not sender.active
    with pytest.raises(ValueError, match="DTMF"):
        sender.start("x", 0)


def test_receive_reports_each_digit_once() -> None:
    sender = DtmfSender(8000, 160)
    receiver = DtmfReceiver(8000)
    got = []
    for digit, ts in (("1", 1000), ("#", 5000)):
        sender.start(digit, ts, 0.06)
        while (p := sender.next_packet()) is not None:
            got.extend(receiver.receive(p.timestamp, p.payload))
    assert [(g.digit, g.duration) for g in got] == [("1", 0.06), ("#", 0.06)]
    # a retransmitted end arriving later is not a new digit
    assert receiver.receive(5000, TelephoneEvent(11, True, 10, 480).to_bytes()) == []


def test_receive_event_whose_end_packets_were_all_lost() -> None:
    receiver = DtmfReceiver(8000)
    assert receiver.receive(100, TelephoneEvent(7, False, 10, 160).to_bytes()) == []
    assert receiver.receive(100, TelephoneEvent(7, False, 10, 320).to_bytes()) == []
    got = receiver.receive(900, TelephoneEvent(8, False, 10, 160).to_bytes())
    assert [(g.digit, g.duration) for g in got] == [("7", 0.04)]
    assert receiver.receive(900, b"\x08") == []  # runt payload ignored
