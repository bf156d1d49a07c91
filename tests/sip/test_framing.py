"""StreamFramer: Content-Length framing on streams (RFC 3261 §18.3), RFC 5626 keepalives."""

from __future__ import annotations

import time

import pytest

from softphone.sip.errors import LocalProtocolError, ParseError
from softphone.sip.framing import FramingError, StreamFramer
from softphone.sip.message import Request, Response
from tests.sip.torture import sip


def options(call_id: str, body: bytes = b"", length: str | None = None) -> bytes:
    return sip(
        "OPTIONS sip:bob@example.com SIP/2.0\n"
        "Via: SIP/2.0/TCP pc33.example.com;branch=z9hG4bK776asdhds\n"
        "To: <sip:bob@example.com>\n"
        "From: <sip:alice@example.com>;tag=1928301774\n"
        f"Call-ID: {call_id}\n"
        "CSeq: 1 OPTIONS\n"
        f"Content-Length: {length if length is not None else '{cl}'}\n"
        "\n",
        body,
    )


OK = sip(
    "SIP/2.0 200 OK\n"
    "Via: SIP/2.0/TCP pc33.example.com;branch=z9hG4bK776asdhds\n"
    "To: <sip:bob@example.com>;tag=x\n"
    "From: <sip:alice@example.com>;tag=1928301774\n"
    "Call-ID: c1\n"
    "CSeq: 1 OPTIONS\n"
    "l: 0\n"
    "\n"
)


def call_ids(messages: list[Request | Response]) -> list[str]:
    return [m.call_id for m in messages]


def test_several_messages_in_one_chunk() -> None:
    framer = StreamFramer()
    data = options("a", b"hello") + OK + options("b", b"\x00\r\n\r\n")
    msgs = framer.feed(data)
    assert call_ids(msgs) == ["a", "c1", "b"]
    assert msgs[0].body == b"hello"
    assert msgs[2].body == b"\x00\r\n\r\n"  # the body may contain an empty line
    assert framer.buffered == 0


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_any_split_gives_the_same_messages(chunk: int) -> None:
    data = options("a", b"body\r\n") + b"\r\n\r\n" + options("b") + b"\r\n" + OK
    framer = StreamFramer()
    msgs: list[Request | Response] = []
    for i in range(0, len(data), chunk):
        msgs += framer.feed(data[i : i + chunk])
    assert call_ids(msgs) == ["a", "b", "c1"]
    assert framer.buffered == 0


def test_keepalive_ping_and_pong() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == []
    assert (framer.pings, framer.pongs) == (1, 0)
    assert framer.feed(b"\r\n") == []
    assert (framer.pings, framer.pongs) == (1, 1)
    assert call_ids(framer.feed(b"\r\n\r\n" + options("x"))) == ["x"]
    assert (framer.pings, framer.pongs) == (2, 1)


def test_lone_cr_waits_for_its_lf() -> None:
    framer = StreamFramer()
    framer.feed(b"\r\n\r")
    assert (framer.pings, framer.pongs) == (0, 0)
    framer.feed(b"\n")
    assert (framer.pings, framer.pongs) == (1, 0)


def test_partial_message_is_held() -> None:
    framer = StreamFramer()
    data = options("a", b"0123456789")
    assert framer.feed(data[:-1]) == []
    assert framer.buffered == len(data) - 1
    assert call_ids(framer.feed(data[-1:])) == ["a"]


BAD_FRAMING = [
    ("missing", options("a").replace(b"Content-Length: 0\r\n", b""), 400),
    ("negative", options("a", length="-1"), 400),
    ("non-numeric", options("a", length="ten"), 400),
    ("plus-sign", options("a", length="+5"), 400),
    ("duplicate", options("a").replace(b"Content-Length: 0", b"Content-Length: 0\r\nl: 4"), 400),
    ("too-large", options("a", length=str((1 << 20) + 1)), 413),
    ("absurd", options("a", length="9" * 40), 413),
]


@pytest.mark.parametrize(("data", "status"), [pytest.param(d, s, id=n) for n, d, s in BAD_FRAMING])
def test_bad_framing_kills_the_framer(data: bytes, status: int) -> None:
    framer = StreamFramer()
    with pytest.raises(ParseError) as info:
        framer.feed(data)
    assert info.value.status_code == status
    assert framer.dead
    with pytest.raises(LocalProtocolError):
        framer.feed(options("b"))


def test_a_framed_but_invalid_message_is_recoverable() -> None:
    """A message framed correctly but not valid SIP: answer it and keep the connection."""
    bad = options("bad").replace(b"Call-ID: bad\r\n", b"")
    framer = StreamFramer()
    with pytest.raises(FramingError) as info:
        framer.feed(options("before") + bad + options("after"))
    error = info.value
    assert error.recoverable and error.status_code == 400
    assert "Call-ID" in error.reason
    assert error.raw == bad
    assert call_ids(error.messages) == ["before"]
    assert not framer.dead
    assert call_ids(framer.feed(b"")) == ["after"]
    assert call_ids(framer.feed(options("later"))) == ["later"]


def test_broken_framing_is_not_recoverable() -> None:
    framer = StreamFramer()
    with pytest.raises(FramingError) as info:
        framer.feed(options("a", length="-1"))
    assert not info.value.recoverable
    assert framer.dead


def test_messages_before_the_error_are_kept_on_the_exception() -> None:
    framer = StreamFramer()
    with pytest.raises(FramingError) as info:
        framer.feed(options("good") + options("bad", length="-5"))
    assert call_ids(info.value.messages) == ["good"]


def test_header_section_limit_without_end_of_headers() -> None:
    framer = StreamFramer(max_header_bytes=1024)
    framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nX: " + b"a" * 900)
    with pytest.raises(ParseError) as info:
        framer.feed(b"a" * 200)  # still no empty line, now over the limit
    assert info.value.status_code == 413
    assert framer.buffered == 0  # nothing kept after death


def test_header_section_limit_with_end_of_headers() -> None:
    framer = StreamFramer(max_header_bytes=200)
    with pytest.raises(ParseError) as info:
        framer.feed(options("a" * 300))
    assert info.value.status_code == 413


def test_body_limit() -> None:
    framer = StreamFramer(max_body_bytes=10)
    with pytest.raises(ParseError) as info:
        framer.feed(options("a", b"x" * 11))
    assert info.value.status_code == 413


def test_buffering_is_bounded_while_waiting_for_a_body() -> None:
    framer = StreamFramer(max_body_bytes=100)
    msg = options("a", b"y" * 100)
    framer.feed(msg[:-1])
    assert framer.buffered < len(msg)


def _feed_bytewise(data: bytes) -> tuple[StreamFramer, int]:
    framer = StreamFramer(max_body_bytes=len(data))
    count = 0
    for i in range(len(data)):
        count += len(framer.feed(data[i : i + 1]))
    return framer, count


def test_one_mib_one_byte_at_a_time_is_linear() -> None:
    # A 1 MiB message (big body and a big header section) fed byte by byte: the search for the
    # empty line must only look at new bytes (plus overlap), never rescan the buffer.
    header_filler = "".join(f"X-Filler-{i}: {'v' * 80}\n" for i in range(500))
    body = b"z" * ((1 << 20) - 60_000)
    data = sip(
        "MESSAGE sip:bob@example.com SIP/2.0\n"
        "Via: SIP/2.0/TCP pc33.example.com;branch=z9hG4bK776asdhds\n"
        "To: <sip:bob@example.com>\n"
        "From: <sip:alice@example.com>;tag=1\n"
        "Call-ID: big\n"
        "CSeq: 1 MESSAGE\n" + header_filler + "Content-Length: {cl}\n\n",
        body,
    )
    assert len(data) > 1_000_000
    framer, count = _feed_bytewise(data)
    assert count == 1
    head_len = data.index(b"\r\n\r\n") + 4
    assert framer._scanned <= 4 * head_len  # each byte examined at most 4 times (overlap 3)


def test_bytewise_feeding_scales_linearly() -> None:
    # Loose wall-clock scaling check: 4x the bytes must cost well under 16x (quadratic) time.
    def run(size: int) -> float:
        data = options("s", b"q" * size)
        start = time.perf_counter()
        _feed_bytewise(data)
        return time.perf_counter() - start

    run(1000)  # warm up
    small = min(run(20_000) for _ in range(3))
    large = min(run(80_000) for _ in range(3))
    assert large < 8 * small
