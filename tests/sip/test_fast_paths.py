"""The parser's fast paths agree with its general paths (issue 2: speed without losing checks).

Each fast path (one regex for the common Via, the common name-addr, the Request-Line URI; the
CSeq shortcut; the lazily made header triples; the ", " split of list headers; fixed tables
for ports and Max-Forwards) must accept exactly what the general path accepts and give the
same result. Hypothesis generates near-common values, valid and not, and both paths run.
"""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from softphone.sip import headers as headers_module
from softphone.sip import message as message_module
from softphone.sip import uri as uri_module
from softphone.sip.errors import ParseError
from softphone.sip.grammar import split_header_values
from softphone.sip.headers import (
    _CSEQ_RE,
    _IPV4_FAST_PATTERN,
    _IPV4_PATTERN,
    _bounded_int,
    _parse_name_addr_careful,
    _parse_via_careful,
    parse_cseq,
    parse_name_addr,
    parse_via,
)
from softphone.sip.message import Headers, Request, canonical_name, parse_max_forwards
from softphone.sip.parser import parse_message
from softphone.sip.uri import SipURI, _parse_sip_careful

_hosts = st.one_of(
    st.sampled_from(
        ["example.com", "a-b.example.com", "example.com.", "x1.y2.z", "1a.b", "-a.com", "a-.com"]
    ),
    st.text(alphabet="ab1Z09-.", min_size=1, max_size=14),
    st.lists(st.sampled_from(["0", "01", "9", "99", "199", "255", "256", "a"]), min_size=3)
    .filter(lambda parts: len(parts) <= 5)
    .map(".".join),
)
_ports = st.one_of(st.none(), st.text(alphabet="0123456789", min_size=1, max_size=6))
_addresses = st.lists(
    st.sampled_from(["0", "00", "010", "99", "199", "249", "250", "255", "256", "300", "1a"]),
    min_size=3,
    max_size=5,
).map(".".join)


def _outcome(parse: object, value: str) -> object:
    """What a parse function gives: a comparable tuple, or the fact that it raised."""
    assert callable(parse)
    try:
        result = parse(value)
    except ParseError:
        return "ParseError"
    return _fields(result)


def _fields(obj: object) -> object:
    if isinstance(obj, SipURI):
        return ("SipURI", obj.scheme, obj.user, obj.password, obj.host, obj.port,
                list(obj.params.items()), obj.headers)  # fmt: skip
    if isinstance(obj, headers_module.NameAddr):
        return (_fields(obj.uri), obj.display_name, list(obj.params.items()))
    if isinstance(obj, headers_module.Via):
        return (obj.protocol, obj.transport, obj.host, obj.port, list(obj.params.items()))
    return str(obj)


@given(
    st.sampled_from(["UDP", "TCP", "TLS", "tcp", "WSS", "WS", "SCTP", "X-Y"]),
    _hosts,
    _ports,
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    ";branch=z9hG4bK776",
                    ";branch=",
                    ";branch",
                    ";Branch=z9hG4bKx",
                    ";rport",
                    ";rport=",
                    ";rport=5060",
                    ";rport=65535",
                    ";rport=65536",
                    ";rport=99999",
                    ";ttl=1",
                    ";maddr=224.2.0.1",
                    ";x=y",
                    ";received=[::1]",
                    ";received=host",
                ]
            ),
            _addresses.map(lambda address: ";received=" + address),
        ),
        max_size=4,
    ),
)
def test_via_fast_paths_agree_with_the_careful_path(
    transport: str, host: str, port: str | None, params: list[str]
) -> None:
    value = f"SIP/2.0/{transport} {host}" + (f":{port}" if port is not None else "")
    value += "".join(params)
    assert _outcome(parse_via, value) == _outcome(_parse_via_careful, value)


_VIA_PARAM_CASES = [
    ";branch=z9hG4bK1",
    ";branch=",
    ";branch",
    ";branch=z9hG4bK1;received=192.0.2.1",
    ";branch=z9hG4bK1;received=256.0.0.1",
    ";branch=z9hG4bK1;received=010.0.0.1",
    ";branch=z9hG4bK1;received=1.2.3",
    ";branch=z9hG4bK1;received=",
    ";branch=z9hG4bK1;Received=host",
    ";branch=z9hG4bK1;rport",
    ";branch=z9hG4bK1;rport=",
    ";branch=z9hG4bK1;rport=0",
    ";branch=z9hG4bK1;rport=65535",
    ";branch=z9hG4bK1;rport=65536",
    ";branch=z9hG4bK1;rport=123456",
    ";branch=z9hG4bK1;received=192.0.2.1;rport=5060",
    ";branch=z9hG4bK1;rport=5060;received=192.0.2.1",
    ";branch=z9hG4bK1;branch=z9hG4bK2",
    ";branch=a b",
    ";branch=z9hG4bK1;ttl=256",
]


@pytest.mark.parametrize("params", _VIA_PARAM_CASES)
@pytest.mark.parametrize(
    "sent_by", ["h.example.com:5060", "h.example.com", "192.0.2.1:5", "h:65536", "-h.com", "h.:1"]
)
@pytest.mark.parametrize("transport", ["TCP", "tls", "WSS"])
def test_via_edge_cases_agree_with_the_careful_path(
    transport: str, sent_by: str, params: str
) -> None:
    value = f"SIP/2.0/{transport} {sent_by}{params}"
    assert _outcome(parse_via, value) == _outcome(_parse_via_careful, value)


_display = st.one_of(
    st.none(),
    st.just('""'),
    st.text(alphabet='ab Z"\\é\t', max_size=6).map(lambda text: f'"{text}"'),
    st.text(alphabet="ab Z", min_size=1, max_size=6),
)


@given(
    _display,
    st.sampled_from(["sip", "sips", "SIP", "tel"]),
    st.one_of(st.none(), st.text(alphabet="aB1-_.!%:@", min_size=1, max_size=6)),
    _hosts,
    _ports,
    st.sampled_from(["", ";transport=tcp", ";lr", ";TRANSPORT=TLS", ";lr;ob", ";a=b;a=c", ";=x"]),
    st.sampled_from(["", ";tag=1928301774", ";tag", ";TAG=x", ";tag=a;expires=3", ';q="0.5"']),
    st.sampled_from(["", " "]),
)
def test_name_addr_fast_paths_agree_with_the_careful_path(
    display: str | None,
    scheme: str,
    user: str | None,
    host: str,
    port: str | None,
    uri_params: str,
    params: str,
    space: str,
) -> None:
    uri = f"{scheme}:" + (f"{user}@" if user is not None else "") + host
    uri += (f":{port}" if port is not None else "") + uri_params
    value = (f"{display}{space}" if display is not None else "") + f"<{uri}>{params}"
    assert _outcome(parse_name_addr, value) == _outcome(_parse_name_addr_careful, value)


@pytest.mark.parametrize(
    "value",
    [
        '"Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl',
        '"" <sip:a@h>',
        '"A\\"B" <sip:a@h>',
        '"Al ice"  <sip:a@h>',
        "Alice <sip:a@h>;tag=1",
        "<sip:a@h;transport=tcp>",
        "<sip:a@h;TRANSPORT=TCP;lr>",
        "<sip:a@h:5060;transport=tcp>;expires=3600",
        "<sip:a@h:65536>",
        "<sip:a@h:0>",
        "<sips:h.example.com.>",
        "<sip:a@-h.com>",
        "<sip:a@h>;tag",
        "<sip:a@h>;tag=",
        "<sip:a@h>;TAG=x",
        "<sip:a@h>;tag=a;tag=b",
        "<sip:a:pw@h>",
        "<sip:%61@h>",
        "<sip:a@h;a=b;a=c>",
        "<sip:a@h;=x>",
        "<tel:+1-212-555-0101>",
        "sip:a@h;tag=1",
    ],
)
def test_name_addr_edge_cases_agree_with_the_careful_path(value: str) -> None:
    assert _outcome(parse_name_addr, value) == _outcome(_parse_name_addr_careful, value)


def _cseq_reference(value: str) -> object:
    """parse_cseq as it was before the shortcut: the regex and _bounded_int."""
    m = _CSEQ_RE.fullmatch(value)
    seq = _bounded_int(m.group(1), 2**31 - 1) if m is not None else None
    if m is None or seq is None:
        return "ParseError"
    return f"{seq} {m.group(2)}"


@given(
    st.one_of(
        st.text(alphabet="0123456789", min_size=1, max_size=12),
        st.sampled_from(["", "-1", "\u0661", "2147483647", "2147483648", "0000000001", " 1"]),
    ),
    st.sampled_from([" ", "  ", "\t", ""]),
    st.sampled_from(["INVITE", "invite", "ACK", "FOO-BAR", "INVITÉ", "", "A B", "INVITE "]),
)
def test_cseq_shortcut_agrees_with_the_regex(seq: str, space: str, method: str) -> None:
    value = seq + space + method
    assert _outcome(parse_cseq, value) == _cseq_reference(value)


def test_fast_ipv4_pattern_is_the_same_language() -> None:
    slow = re.compile(_IPV4_PATTERN)
    fast = re.compile(_IPV4_FAST_PATTERN)
    octets = [
        "".join(digits) for n in range(1, 5) for digits in itertools.product("0123456789", repeat=n)
    ]
    for octet in octets:  # fmt: skip
        address = f"{octet}.1.{octet}.0"
        assert (slow.fullmatch(address) is None) == (fast.fullmatch(address) is None), address


@given(
    st.lists(st.sampled_from(["INVITE", "a", "tag-1", '"q, r"', "<sip:a,b>", "x y"]), min_size=1),
    st.lists(st.sampled_from([", ", ",", " ,", ",  ", ",\t", " , ", ", ,"]), min_size=8),
)
def test_list_header_split_agrees_with_the_general_rule(
    items: list[str], separators: list[str]
) -> None:
    value = "".join(item + sep for item, sep in zip(items, separators, strict=False))
    value = value.strip(" \t").rstrip(",").strip(" \t") or "x"
    headers = Headers([("Allow", value)])
    try:
        expected = split_header_values(value)
    except ParseError:
        with pytest.raises(ParseError):
            headers.get_all("Allow")
        return
    assert headers.get_all("Allow") == expected


_LINES = [
    "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1",
    "v: SIP/2.0/TCP b.example.com;branch=z9hG4bK2",
    "Max-Forwards: 70",
    "To: <sip:bob@example.com>",
    "f: <sip:alice@example.com>;tag=1",
    "Call-ID : c@h",
    "CSeq:1 INVITE",
    "X-Custom:  spaced value  ",
    "x-custom: second",
    "Subject:",
    "Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
    "route: <sip:p3.example.com;lr>",
    "Content-Length: 0",
]


@given(st.permutations(_LINES[7:]))
def test_lazy_header_triples_match_an_eager_build(extra: list[str]) -> None:
    head = "INVITE sip:bob@example.com SIP/2.0\r\n" + "\r\n".join([*_LINES[:7], *extra])
    msg = parse_message((head + "\r\n\r\n").encode())
    eager = Headers()
    for line in [*_LINES[:7], *extra]:
        name, _, value = line.partition(":")
        eager.add(name.strip(), value)
    assert list(msg.headers) == list(eager)
    for name in ("Via", "To", "From", "X-Custom", "Subject", "Route", "Call-ID", "Nope"):
        assert msg.headers.get(name) == eager.get(name)
        assert msg.headers.get_lines(name) == eager.get_lines(name)
        assert msg.headers.get_all(name) == eager.get_all(name)
    assert [canonical_name(name) for name, _ in msg.headers] == [name for name, _ in eager]
    # A change drops the index; it is rebuilt from the (now materialised) triples.
    msg.headers.add("X-Custom", "third")
    eager.add("X-Custom", "third")
    assert msg.headers.get_lines("X-Custom") == eager.get_lines("X-Custom")
    assert msg.headers.get_lines("X-Custom")[-1] == "third"
    assert list(msg.headers) == list(eager)


@given(
    st.one_of(st.none(), st.text(alphabet="aB1-_.!~*'()&=+$,", min_size=1, max_size=6)),
    _hosts,
    _ports,
    st.sampled_from(["", ";transport=tcp", ";lr", ";LR", ";a=b;a=c", ";x", ";maddr=h;lr"]),
)
def test_request_uri_fast_path_agrees_with_the_careful_path(
    user: str | None, host: str, port: str | None, params: str
) -> None:
    rest = (f"{user}@" if user is not None else "") + host
    rest += (f":{port}" if port is not None else "") + params
    head = (
        f"OPTIONS sip:{rest} SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        "To: <sip:b@h>\r\nFrom: <sip:a@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n"
    )
    try:
        msg = parse_message(head.encode())
    except ParseError:
        parsed: object = "ParseError"
    else:
        assert isinstance(msg, Request)
        parsed = _fields(msg.uri)
    assert parsed == _outcome(lambda text: _parse_sip_careful("sip", text), rest)


@pytest.mark.parametrize(
    "raw", [*map(str, range(300)), "0068", "00", "", "-1", "1.0", "٣", "2550", "0256"]
)
def test_max_forwards_table_agrees_with_the_rule(raw: str) -> None:
    digits = raw.isascii() and raw.isdigit()
    expected = int(raw) if digits and int(raw) <= 255 else None
    if expected is None:
        with pytest.raises(ParseError):
            parse_max_forwards(raw)
    else:
        assert parse_max_forwards(raw) == expected


def test_fixed_tables_learn_nothing_from_the_wire() -> None:
    tables = {
        "ports": uri_module._COMMON_PORTS,
        "max-forwards": message_module._MAX_FORWARDS_VALUES,
        "header keys": message_module._KEY_CACHE,
        "header names": message_module._NAME_CACHE,
        "media types": message_module._COMMON_MEDIA_TYPES,
    }
    sizes = {name: len(table) for name, table in tables.items()}
    for n in range(30):
        msg = parse_message(
            f"OPTIONS sip:u{n}@h{n}.example.com:{6000 + n} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP h{n}:{7000 + n};branch=z9hG4bK{n}\r\nMax-Forwards: 0{n}\r\n"
            f"X-Seen-{n}: v\r\nTo: <sip:b@h>\r\nFrom: <sip:a@h>;tag=1\r\nCall-ID: c{n}\r\n"
            f"CSeq: {n} OPTIONS\r\nContent-Type: x/y{n}\r\n\r\n".encode()
        )
        assert msg.content_type == f"x/y{n}" and msg.top_via.port == 7000 + n
    assert {name: len(table) for name, table in tables.items()} == sizes


@pytest.mark.parametrize("tail", ["\u00a0", "\u0085", "\u3000", " \u2003"])
def test_only_sp_and_htab_are_stripped_from_values(tail: str) -> None:
    head = (
        "OPTIONS sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@h>\r\n"
        f"From: <sip:a@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nSubject: {tail}hi{tail} \t\r\n"
    )
    msg = parse_message((head + "\r\n").encode())
    assert msg.headers.get("Subject") == f"{tail.lstrip(' ')}hi{tail}"
    assert dict(msg.headers)["Subject"] == f"{tail.lstrip(' ')}hi{tail}"
