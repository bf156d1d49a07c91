"""RFC 3261 §25.1 lexical helpers: tables of good and bad input, and round-trip properties."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from softphone.sip.errors import LocalProtocolError, ParseError
from softphone.sip.grammar import (
    HEADER_SAFE,
    PARAM_SAFE,
    PASSWORD_SAFE,
    TOKEN_CHARS,
    USER_SAFE,
    format_params,
    is_token,
    parse_params,
    percent_decode,
    percent_encode,
    quote,
    scan_quoted,
    split_header_values,
    unquote,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("INVITE", True),
        ("z9hG4bK-._!%*+`'~", True),
        ("!interesting-Method0123456789_*+`.%indeed'~", True),  # RFC 4475 intmeth
        ("", False),
        ("a b", False),
        ("a,b", False),
        ("a;b", False),
        ('a"', False),
        ("a@b", False),
        ("a:b", False),
        ("a/b", False),
        ("é", False),
        ("a\x00", False),
    ],
)
def test_is_token(text: str, expected: bool) -> None:
    assert is_token(text) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a, b ,c", ["a", "b", "c"]),
        ('a, <sip:x;a=1,2>, "b,c" <sip:y>', ["a", "<sip:x;a=1,2>", '"b,c" <sip:y>']),
        (
            '"quote \\" and , comma" <sip:a@b>, <sip:c@d>',
            ['"quote \\" and , comma" <sip:a@b>', "<sip:c@d>"],
        ),
        ('"ends with backslash \\\\", x', ['"ends with backslash \\\\"', "x"]),
        ("", []),
        ("  ", []),
        ("a,,b, ,", ["a", "b"]),  # empty list elements are ignored (RFC 7230 §7)
        ("\tINVITE,ACK\t", ["INVITE", "ACK"]),
        ("<sip:a@b?x=1,2>;q=0.5, <sip:c>", ["<sip:a@b?x=1,2>;q=0.5", "<sip:c>"]),
        (
            "SIP/2.0/UDP a:5060;branch=z9hG4bK1, SIP/2.0/TCP b;branch=z9hG4bK2",
            ["SIP/2.0/UDP a:5060;branch=z9hG4bK1", "SIP/2.0/TCP b;branch=z9hG4bK2"],
        ),
    ],
)
def test_split_header_values(value: str, expected: list[str]) -> None:
    assert split_header_values(value) == expected


@pytest.mark.parametrize("value", ['"unterminated, a', "<sip:a@b, c", 'a, "x\\"'])
def test_split_header_values_rejects_unbalanced(value: str) -> None:
    with pytest.raises(ParseError):
        split_header_values(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        (";lr", {"lr": None}),
        (";tag=1928301774", {"tag": "1928301774"}),
        (
            ";branch=z9hG4bKnashds8;received=192.0.2.1;rport",
            {"branch": "z9hG4bKnashds8", "received": "192.0.2.1", "rport": None},
        ),
        (";Transport=TCP", {"transport": "TCP"}),  # names lower-cased, values kept
        (" ; tag = abc ;lr", {"tag": "abc", "lr": None}),  # SWS around ';' and '='
        (";   tag    = 1918181833n", {"tag": "1918181833n"}),  # RFC 4475 wsinv
        (';a="x;y, z";b', {"a": "x;y, z", "b": None}),
        (';a = "q\\"uote\\\\" ; b = c', {"a": 'q"uote\\', "b": "c"}),
        (
            ';+sip.instance="<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"',
            {"+sip.instance": "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"},
        ),
        (";received=2001:db8::9:255", {"received": "2001:db8::9:255"}),
        (";maddr=[2001:db8::1]", {"maddr": "[2001:db8::1]"}),
        (";a=1;A=2", {"a": "1"}),  # the first occurrence wins
        (';e=""', {"e": ""}),
        (";q=0.7;expires=3600", {"q": "0.7", "expires": "3600"}),
    ],
)
def test_parse_params(text: str, expected: dict[str, str | None]) -> None:
    params = parse_params(text)
    assert params == expected
    assert list(params) == list(expected)


@pytest.mark.parametrize(
    "text",
    [
        "tag=1",  # no leading ';'
        ";",
        ";;tag=1",  # RFC 4475 badinv01: empty parameter
        ";tag=1;",
        ";tag=",
        ";=x",
        ";a b=c",
        ";a=b c",
        ";a=b,c",
        ';a="unterminated',
        ';a="x"y',
        ";a=<sip:x>",
        ";a=é",
        ';"a"=b',
        ";a=b\r\n;c",
    ],
)
def test_parse_params_rejects(text: str) -> None:
    with pytest.raises(ParseError):
        parse_params(text)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ""),
        ({"lr": None}, ";lr"),
        ({"transport": "tls", "lr": None}, ";transport=tls;lr"),
        ({"received": "2001:db8::1"}, ";received=2001:db8::1"),
        ({"x": "a b"}, ';x="a b"'),
        ({"x": ""}, ';x=""'),
        ({"x": 'q"\\'}, ';x="q\\"\\\\"'),
    ],
)
def test_format_params(params: dict[str, str | None], expected: str) -> None:
    assert format_params(params) == expected
    assert parse_params(expected) == params


@pytest.mark.parametrize(
    ("raw", "quoted"),
    [
        ("Alice", '"Alice"'),
        ("", '""'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("Zoë 😀", '"Zoë 😀"'),
        ("tab\there", '"tab\there"'),
    ],
)
def test_quote_unquote(raw: str, quoted: str) -> None:
    assert quote(raw) == quoted
    assert unquote(quoted) == raw


@pytest.mark.parametrize(
    ("quoted", "raw"),
    [
        ('"\\a\\b"', "ab"),  # any quoted-pair stands for its character
        ('  "x"\t', "x"),
        ('"J Rosenberg \\\\\\""', 'J Rosenberg \\"'),  # RFC 4475 wsinv From display-name
    ],
)
def test_unquote_quoted_pairs(quoted: str, raw: str) -> None:
    assert unquote(quoted) == raw


@pytest.mark.parametrize(
    "text", ['"abc', "abc", '"abc\\"', '"a"b', '"a\rb"', '"a\nb"', '"a\\\nb"', '"\x00"', ""]
)
def test_unquote_rejects(text: str) -> None:
    with pytest.raises(ParseError):
        unquote(text)


@pytest.mark.parametrize("raw", ["a\r\nVia: injected", "line\n", "cr\r"])
def test_quote_refuses_cr_lf(raw: str) -> None:
    with pytest.raises(LocalProtocolError):
        quote(raw)


def test_scan_quoted_returns_end() -> None:
    assert scan_quoted('x "a\\"b" <sip:c>', 2) == ('a"b', 8)


@pytest.mark.parametrize(
    ("escaped", "decoded"),
    [
        ("plain", "plain"),
        ("%61lice", "alice"),
        ("sips%3Auser%40example.com", "sips:user@example.com"),
        ("null-%00-null", "null-\x00-null"),  # RFC 4475 escnull
        ("I%20have%20spaces", "I have spaces"),
        ("%C3%A9t%C3%A9", "été"),
        ("%e2%82%ac", "€"),
        ("v%61lue%25%34%31", "value%41"),
        ("%25", "%"),
    ],
)
def test_percent_decode(escaped: str, decoded: str) -> None:
    assert percent_decode(escaped) == decoded


@pytest.mark.parametrize("bad", ["%", "%4", "50%", "%zz", "%4g", "%+1", "% 1", "a%-1b"])
def test_percent_decode_rejects(bad: str) -> None:
    with pytest.raises(ParseError):
        percent_decode(bad)


def test_percent_decode_keeps_invalid_utf8_bytes() -> None:
    decoded = percent_decode("%FF%FE")
    assert percent_encode(decoded) == "%FF%FE"


@pytest.mark.parametrize(
    ("raw", "safe", "expected"),
    [
        ("alice", USER_SAFE, "alice"),
        ("sips:user@example.com", USER_SAFE, "sips%3Auser%40example.com"),
        ("a;b?c/d", USER_SAFE, "a;b?c/d"),
        ("p:w@", PASSWORD_SAFE, "p%3Aw%40"),
        ("a;b", PASSWORD_SAFE, "a%3Bb"),
        ("[x]/:&+$", PARAM_SAFE, "[x]/:&+$"),
        ("a;b=c", PARAM_SAFE, "a%3Bb%3Dc"),
        ("<sip:x@y>", HEADER_SAFE, "%3Csip:x%40y%3E"),
        ("a&b=c", HEADER_SAFE, "a%26b%3Dc"),
        ("100%", "", "100%25"),
        ("é", "", "%C3%A9"),
        (" ", "", "%20"),
    ],
)
def test_percent_encode(raw: str, safe: str, expected: str) -> None:
    assert percent_encode(raw, safe) == expected


@given(st.text(), st.sampled_from(["", USER_SAFE, PASSWORD_SAFE, PARAM_SAFE, HEADER_SAFE]))
def test_percent_round_trip(raw: str, safe: str) -> None:
    assert percent_decode(percent_encode(raw, safe)) == raw


@given(st.text().filter(lambda s: "\r" not in s and "\n" not in s))
def test_quote_round_trip(raw: str) -> None:
    assert unquote(quote(raw)) == raw


_TOKENS = st.text(alphabet=sorted(TOKEN_CHARS), min_size=1, max_size=12)


@given(
    st.dictionaries(
        _TOKENS.map(str.lower),
        st.none() | st.text(max_size=12).filter(lambda s: "\r" not in s and "\n" not in s),
        max_size=6,
    )
)
def test_params_round_trip(params: dict[str, str | None]) -> None:
    assert parse_params(format_params(params)) == params


@given(st.lists(st.text(max_size=10).filter(lambda s: "\r" not in s and "\n" not in s), max_size=5))
def test_split_quoted_items(items: list[str]) -> None:
    joined = ", ".join(quote(item) + " <sip:a@b;x=1,2>" for item in items)
    assert split_header_values(joined) == [quote(item) + " <sip:a@b;x=1,2>" for item in items]


@given(st.text(max_size=60))
def test_only_parse_error_escapes(text: str) -> None:
    for function in (parse_params, split_header_values, unquote, percent_decode):
        with contextlib.suppress(ParseError):
            function(text)


@pytest.mark.parametrize(
    ("function", "evil"),
    [
        (split_header_values, '"' + "\\a" * 50_000),
        (split_header_values, "<" * 100_000),
        (parse_params, ';a="' + "\\x" * 50_000),
        (parse_params, ";" + "a" * 100_000 + "=" + "[" * 100_000 + " x"),
        (unquote, '"' + " " * 100_000),
        (percent_decode, "%41" * 50_000 + "%"),
    ],
)
def test_linear_time_on_hostile_input(function: Callable[[str], object], evil: str) -> None:
    # A backtracking regex takes minutes on these; a linear scan takes milliseconds.
    start = time.perf_counter()
    with contextlib.suppress(ParseError):
        function(evil)
    assert time.perf_counter() - start < 1.0
