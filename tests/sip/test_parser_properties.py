"""Property tests of the message layer (hypothesis).

1. Generated well-formed requests and responses round-trip: parsing the serialisation of a
   parsed message gives the same message, field by field.
2. ``parse_message`` raises nothing but ``ParseError``, on arbitrary bytes and on mutations of
   valid messages.
3. Parse time grows linearly with the number of headers and the length of values.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softphone.sip.errors import ParseError
from softphone.sip.grammar import quote
from softphone.sip.message import Headers, Message, Request, Response
from softphone.sip.parser import parse_message
from softphone.sip.uri import parse_uri
from tests.sip.torture import INTMETH, LONGREQ, MPART01, WSINV

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
tokens = st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=12)
labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
hosts = st.one_of(
    st.lists(labels, min_size=1, max_size=3).map(lambda ls: ".".join(ls) + ".example"),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
    st.sampled_from(["[2001:db8::1]", "[::1]", "[2001:db8::192.0.2.1]"]),
)
# unreserved / user-unreserved (RFC 3261 §25.1)
users = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()&=+$",
    min_size=1,
    max_size=12,
)
ports = st.one_of(st.none(), st.integers(1, 65535))
# Display names: any text without control characters (UTF-8, quotes, backslashes included).
display_names = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029"),
    max_size=20,
)
values = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40).map(
    lambda s: s.strip(" \t")
)


@st.composite
def sip_uris(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["sip", "sips"]))
    user = draw(st.one_of(st.none(), users))
    port = draw(ports)
    params = draw(st.lists(st.tuples(labels, st.one_of(st.none(), labels)), max_size=3))
    text = f"{scheme}:{user + '@' if user else ''}{draw(hosts)}"
    text += f":{port}" if port is not None else ""
    text += "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)
    return text


uris = st.one_of(sip_uris(), st.just("tel:+1-201-555-0123"), st.just("urn:service:sos"))


@st.composite
def name_addrs(draw: st.DrawFn, tag: bool) -> str:
    name = draw(display_names)
    head = f"{quote(name)} " if name else ""
    text = f"{head}<{draw(sip_uris())}>"
    if tag:
        text += f";tag={draw(tokens)}"
    return text


@st.composite
def via_values(draw: st.DrawFn) -> str:
    transport = draw(st.sampled_from(["UDP", "TCP", "TLS", "WS", "SCTP"]))
    port = draw(ports)
    text = f"SIP/2.0/{transport} {draw(hosts)}{f':{port}' if port else ''}"
    return text + f";branch=z9hG4bK{draw(tokens)}" + draw(st.sampled_from(["", ";rport"]))


@st.composite
def common_headers(draw: st.DrawFn, method: str) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = [
        (draw(st.sampled_from(["Via", "v", "VIA"])), v)
        for v in draw(st.lists(via_values(), min_size=1, max_size=3))
    ]
    fields += [
        ("Max-Forwards", str(draw(st.integers(0, 255)))),
        (draw(st.sampled_from(["From", "f"])), draw(name_addrs(tag=True))),
        (draw(st.sampled_from(["To", "t"])), draw(name_addrs(tag=draw(st.booleans())))),
        (draw(st.sampled_from(["Call-ID", "i"])), draw(tokens) + "@" + draw(labels)),
        ("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}"),
    ]
    extra = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("Contact"), name_addrs(tag=False)),
                st.tuples(st.just("Route"), sip_uris().map(lambda u: f"<{u};lr>")),
                st.tuples(st.just("Subject"), values),
                st.tuples(st.just("Content-Type"), st.just("application/sdp")),
                st.tuples(tokens.map(lambda t: "X-" + t), values),
            ),
            max_size=6,
        )
    )
    fields += extra
    draw(st.randoms()).shuffle(fields)  # header order is free (except among the same name)
    return fields


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(st.one_of(st.sampled_from(["INVITE", "REGISTER", "BYE", "MESSAGE"]), tokens))
    headers = Headers(draw(common_headers(method)))
    return Request(method, parse_uri(draw(uris)), headers, draw(st.binary(max_size=64)))


@st.composite
def responses(draw: st.DrawFn) -> Response:
    method = draw(tokens)
    headers = Headers(draw(common_headers(method)))
    reason = draw(values)
    return Response(draw(st.integers(100, 699)), reason, headers, draw(st.binary(max_size=64)))


def fields_of(msg: Message) -> tuple[object, ...]:
    """Everything a message carries, as comparable plain values."""
    start: tuple[object, ...]
    if isinstance(msg, Request):
        start = ("request", msg.method, str(msg.uri))
    else:
        start = ("response", msg.status_code, msg.reason)
    return (
        *start,
        msg.version,
        list(msg.headers),
        msg.body,
        msg.call_id,
        str(msg.cseq),
        str(msg.from_),
        str(msg.to),
        [str(v) for v in msg.vias],
        [str(c) for c in msg.contacts],
        [str(r) for r in msg.routes],
        msg.max_forwards,
        msg.content_type,
    )


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(requests(), responses()))
def test_round_trip(msg: Message) -> None:
    first = parse_message(bytes(msg))
    second = parse_message(bytes(first))
    assert fields_of(second) == fields_of(first)
    assert bytes(second) == bytes(first)
    assert first.body == msg.body
    assert [v for n, v in first.headers if n != "Content-Length"] == [v for _, v in msg.headers]


def only_parse_errors(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except ParseError:
        return
    # Whatever was accepted must also serialise and read back without crashing.
    for accessor in ("contacts", "routes", "record_routes", "content_type", "max_forwards"):
        with contextlib.suppress(ParseError):
            getattr(msg, accessor)
    parse_message(bytes(msg))


@settings(max_examples=500)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_parse_error(data: bytes) -> None:
    only_parse_errors(data)


SEEDS = [WSINV, INTMETH, MPART01, LONGREQ[:3000]]


@settings(max_examples=500)
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 8), st.binary(max_size=8)), max_size=6),
)
def test_mutated_messages_raise_only_parse_error(
    seed: bytes, edits: list[tuple[int, int, bytes]]
) -> None:
    data = seed
    for offset, delete, insert in edits:
        position = offset % (len(data) + 1)
        data = data[:position] + insert + data[position + delete :]
    only_parse_errors(data)


@settings(max_examples=200)
@given(
    st.sampled_from(SEEDS),
    st.lists(
        st.sampled_from([b":", b",", b";", b'"', b"\\", b"<", b">", b"\r\n", b"\n ", b"%", b"@"]),
        min_size=1,
        max_size=10,
    ),
    st.integers(0, 5000),
)
def test_grammar_characters_inserted_raise_only_parse_error(
    seed: bytes, pieces: list[bytes], position: int
) -> None:
    position %= len(seed)
    only_parse_errors(seed[:position] + b"".join(pieces) + seed[position:])


# --- linear time -----------------------------------------------------------------------------

HEAD = (
    "INVITE sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP pc.example.com;branch=z9hG4bK1\r\n"
    "From: <sip:alice@example.com>;tag=1\r\n"
    "To: <sip:bob@example.com>\r\n"
    "Call-ID: linear\r\n"
    "CSeq: 1 INVITE\r\n"
)

SHAPES: dict[str, Callable[[int], str]] = {
    "many headers": lambda k: "".join(f"X-H{i}: value {i}\r\n" for i in range(k)),
    "long value": lambda k: "Subject: " + "word " * k + "\r\n",
    "long space run": lambda k: "Subject: a" + " " * (5 * k) + "b\r\n",
    "many vias on one line": lambda k: (
        "Via: " + ", ".join(["SIP/2.0/UDP h;branch=z9hG4bKx"] * k) + "\r\n"
    ),
    "many contacts": lambda k: "Contact: " + ", ".join(['"a,b" <sip:a@b>'] * k) + "\r\n",
    "folded header": lambda k: "Subject: x" + "\r\n  y" * k + "\r\n",
    "escaped display name": lambda k: 'Contact: "' + '\\\\\\"' * k + '" <sip:a@b>\r\n',
    "many params": lambda k: "Contact: <sip:a@b>" + "".join(f";p{i}=v" for i in range(k)) + "\r\n",
}


def _parse_time(data: bytes) -> float:
    """Best of 7 full parses; the collector is paused so that it does not add noise."""
    best = float("inf")
    gc.collect()
    gc.disable()
    try:
        for _ in range(7):
            start = time.perf_counter()
            msg = parse_message(data)
            _ = (msg.contacts, msg.vias)
            best = min(best, time.perf_counter() - start)
    finally:
        gc.enable()
    return best


@pytest.mark.parametrize("shape", list(SHAPES))
def test_parse_time_is_linear(shape: str) -> None:
    def message(k: int) -> bytes:
        return (HEAD + SHAPES[shape](k) + "\r\n").encode()

    small, large = 300, 2400  # 8x more
    _parse_time(message(small))  # warm up caches
    ratio = _parse_time(message(large)) / _parse_time(message(small))
    # Linear gives ~8; quadratic would give ~64. Leave room for noise on a shared machine.
    assert ratio < 24, f"{shape}: 8x input took {ratio:.1f}x time"
