"""Malformed input: RFC 4475 §3.1.2 / §3.2 / §3.3 and RFC 5118 messages plus our own corners.

Each row states the outcome of a *full parse* (``parse_message`` and then every typed
accessor the upper layers use): the exact status code of the ``ParseError``, or ``None`` where
we deliberately accept, with the reason in the row's note. The ``where`` column says whether
the error comes from ``parse_message`` itself or only when the typed header is read.
"""

from __future__ import annotations

import pytest

from softphone.sip.errors import ParseError
from softphone.sip.parser import parse_message
from tests.sip import torture as t

sip = t.sip

BASE = (
    "OPTIONS sip:user@example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\n"
    "To: <sip:user@example.com>\n"
    "From: <sip:caller@example.net>;tag=93334\n"
    "Call-ID: malformed.abc@192.0.2.1\n"
    "CSeq: 8 OPTIONS\n"
    "Max-Forwards: 70\n"
    "Content-Length: 0\n"
    "\n"
)


def base(old: str = "", new: str = "") -> bytes:
    assert old in BASE
    return sip(BASE.replace(old, new, 1))


def full_parse(data: bytes) -> None:
    """parse_message, then every typed accessor (what a UA or proxy reads)."""
    msg = parse_message(data)
    _ = (msg.call_id, msg.cseq, msg.from_, msg.to, msg.vias, msg.max_forwards, msg.content_type)
    _ = (msg.contacts, msg.routes, msg.record_routes)


BADINV01 = sip(
    "INVITE sip:user@example.com SIP/2.0\n"
    "To: sip:j.user@example.com\n"
    "From: sip:caller@example.net;tag=134161461246\n"
    "Max-Forwards: 7\n"
    "Call-ID: badinv01.0ha0isndaksdjasdf3234nas\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP 192.0.2.15;;,;,,\n"
    'Contact: "Joe" <sip:joe@example.org>;;;;\n'
    "Content-Length: {cl}\n"
    "Content-Type: application/sdp\n"
    "\n",
    t.SDP,
)
CLERR = sip(
    "INVITE sip:user@example.com SIP/2.0\n"
    "Max-Forwards: 80\n"
    "To: sip:j.user@example.com\n"
    "From: sip:caller@example.net;tag=93942939o2\n"
    "Contact: <sip:caller@hungry.example.net>\n"
    "Call-ID: clerr.0ha0isndaksdjweiafasdk3\n"
    "CSeq: 8 INVITE\n"
    "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523\n"
    "Content-Type: application/sdp\n"
    "Content-Length: 9999\n"
    "\n",
    t.SDP,
)
SCALAR02 = sip(
    "REGISTER sip:example.com SIP/2.0\n"
    "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\n"
    "To: <sip:user@example.com>\n"
    "From: <sip:user@example.com>;tag=239232jh3\n"
    "CSeq: 36893488147419103232 REGISTER\n"
    "Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32\n"
    "Max-Forwards: 300\n"
    f"Expires: 1{'0' * 100}\n"
    "Contact: <sip:user@host129.example.com>;expires=280297596632815\n"
    "Content-Length: 0\n"
    "\n"
)
SCALARLG = sip(
    "SIP/2.0 503 Service Unavailable\n"
    "Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129\n"
    "To: <sip:user@example.com>\n"
    "From: <sip:other@example.net>;tag=2easdjfejw\n"
    "CSeq: 9292394834772304023312 OPTIONS\n"
    "Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r\n"
    "Retry-After: 949302838503028349304023988\n"
    'Warning: 1812 overture "In Progress"\n'
    "Content-Length: 0\n"
    "\n"
)
MULTI01 = base("Call-ID: malformed.abc@192.0.2.1\n").replace(
    b"Content-Length",
    b"Call-ID: multi01.98asdh@192.0.2.2\r\nTo: sip:other@example.net\r\nContent-Length",
)
MISSING = {
    name: sip("".join(line + "\n" for line in BASE.split("\n") if not line.startswith(name)))
    for name in ("Via", "To", "From", "Call-ID", "CSeq")
}

# (id, data, expected status or None, where: "parse" | "typed" | "-", note)
ROWS: list[tuple[str, bytes, int | None, str, str]] = [
    ("badinv01", BADINV01, 400, "parse", "Via ';;,;,,': empty params and list items"),
    ("clerr", CLERR, 400, "parse", "Content-Length 9999 > body"),
    ("ncl", base("Content-Length: 0", "Content-Length: -999"), 400, "parse", "negative"),
    ("scalar02", SCALAR02, 400, "parse", "CSeq 2**65 and Max-Forwards 300 overflow"),
    ("scalarlg", SCALARLG, 400, "parse", "response CSeq overflow"),
    (
        "quotbal",
        base("To: <sip:user@example.com>", 'To: "Mr. J. User <sip:j.user@example.com>'),
        400,
        "parse",
        "unterminated quoted string",
    ),
    (
        "ltgtruri",
        base("OPTIONS sip:user@example.com", "OPTIONS <sip:user@example.com>"),
        400,
        "parse",
        "Request-URI in <>",
    ),
    (
        "lwsruri",
        base("OPTIONS sip:user@example.com", "OPTIONS sip:user@example.com; lr"),
        400,
        "parse",
        "LWS inside the Request-URI",
    ),
    (
        "lwsstart",
        base("OPTIONS sip:user@example.com SIP/2.0", "OPTIONS  sip:user@example.com  SIP/2.0"),
        400,
        "parse",
        "several SP between Request-Line elements",
    ),
    ("trws", base("SIP/2.0\n", "SIP/2.0  \n"), 400, "parse", "SP at the end of the Request-Line"),
    (
        "escruri",
        base(
            "OPTIONS sip:user@example.com",
            "OPTIONS sip:user@example.com?Route=%3Csip:example.com%3E",
        ),
        400,
        "parse",
        "URI headers are not allowed in a Request-URI (§19.1.1)",
    ),
    (
        "baddate",
        base("Content-Length", "Date: Fri, 01 Jan 2010 16:00:00 EST\nContent-Length"),
        None,
        "-",
        "accepted: RFC 4475 §3.1.2.12 lets an element that does not use Date ignore it",
    ),
    (
        "regbadct",
        base(
            "Content-Length",
            "Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E\nContent-Length",
        ),
        400,
        "typed",
        "addr-spec with '?' must be in <>; Contact is parsed when read",
    ),
    (
        "badaspec",
        base(
            "To: <sip:user@example.com>",
            'To: "Watson, Thomas" < sip:t.watson@example.org >',
        ),
        400,
        "parse",
        "SP inside <> (the strict choice RFC 4475 §3.1.2.14 allows)",
    ),
    (
        "baddn",
        base(
            "From: <sip:caller@example.net>",
            "From: Bell, Alexander <sip:a.g.bell@example.com>",
        ),
        400,
        "parse",
        "',' in an unquoted display-name",
    ),
    ("badvers", base("SIP/2.0\n", "SIP/7.0\n"), 505, "parse", "unknown SIP version"),
    ("badvers-resp", sip("SIP/1.0 200 OK\n\n"), 505, "parse", "response with SIP/1.0"),
    ("mismatch01", base("CSeq: 8 OPTIONS", "CSeq: 8 INVITE"), 400, "parse", "CSeq method"),
    (
        "mismatch02",
        base("OPTIONS sip:user@example.com", "NEWMETHOD sip:user@example.com").replace(
            b"CSeq: 8 OPTIONS", b"CSeq: 8 INVITE"
        ),
        400,
        "parse",
        "unknown method and CSeq mismatch",
    ),
    (
        "bigcode",
        sip(BASE.replace("OPTIONS sip:user@example.com SIP/2.0", "SIP/2.0 4294967301 better")),
        400,
        "parse",
        "status code not 3 digits",
    ),
    (
        "badbranch",
        base("branch=z9hG4bKkdjuw", "branch=z9hG4bK"),
        None,
        "-",
        "accepted: RFC 4475 §3.2.1 lets the transaction layer fall back to RFC 2543 matching",
    ),
    ("insuf", MISSING["Call-ID"], 400, "parse", "§8.1.1 Call-ID missing"),
    ("missing-via", MISSING["Via"], 400, "parse", "§8.1.1 Via missing"),
    ("missing-to", MISSING["To"], 400, "parse", "§8.1.1 To missing"),
    ("missing-from", MISSING["From"], 400, "parse", "§8.1.1 From missing"),
    ("missing-cseq", MISSING["CSeq"], 400, "parse", "§8.1.1 CSeq missing"),
    ("multi01", MULTI01, 400, "parse", "two Call-IDs and two Tos (RFC 4475 §3.3.8)"),
    (
        "mcl01",
        base("Content-Length: 0", "Content-Length: 0\nl: 8"),
        400,
        "parse",
        "two different Content-Lengths (RFC 4475 §3.3.9)",
    ),
    (
        "ipv6-bad",
        base("OPTIONS sip:user@example.com", "OPTIONS sip:user@2001:db8::10"),
        400,
        "parse",
        "RFC 5118 §4.2: IPv6 without brackets",
    ),
    (
        "mismatched-ipv6",
        base("OPTIONS sip:user@example.com", "OPTIONS sip:user@[2001:db8:::192.0.2.1]"),
        400,
        "parse",
        "RFC 5118 §4.10: ':::'",
    ),
    ("status-099", sip("SIP/2.0 099 Low\n\n"), 400, "parse", "status below 100"),
    ("status-700", sip("SIP/2.0 700 High\n\n"), 400, "parse", "status above 699"),
    ("status-2digits", sip("SIP/2.0 20 OK\n\n"), 400, "parse", "two-digit status"),
    ("status-unicode", sip("SIP/2.0 \uff12\uff10\uff10 OK\n\n"), 400, "parse", "full-width digits"),
    ("http", sip("HTTP/1.1 200 OK\n\n"), 400, "parse", "not SIP"),
    ("empty", b"", 400, "parse", "no message"),
    ("crlf-only", b"\r\n\r\n", 400, "parse", "keepalive is not a message"),
    ("no-empty-line", base("Content-Length: 0\n\n", "Content-Length: 0\n"), 400, "parse", ""),
    ("cl-nonnumeric", base("Content-Length: 0", "Content-Length: zero"), 400, "parse", ""),
    (
        "cl-arabic",
        base("Content-Length: 0", "Content-Length: \u0660"),
        400,
        "parse",
        "non-ASCII digit",
    ),
    ("cl-huge", base("Content-Length: 0", "Content-Length: " + "9" * 5000), 400, "parse", ""),
    ("cl-list", base("Content-Length: 0", "Content-Length: 0, 0"), 400, "parse", ""),
    ("mf-garbage", base("Max-Forwards: 70", "Max-Forwards: 7O"), 400, "parse", ""),
    ("mf-twice", base("Max-Forwards: 70", "Max-Forwards: 70\nMax-Forwards: 69"), 400, "parse", ""),
    ("cseq-2^31", base("CSeq: 8 OPTIONS", "CSeq: 2147483648 OPTIONS"), 400, "parse", "§8.1.1.5"),
    ("cseq-nomethod", base("CSeq: 8 OPTIONS", "CSeq: 8"), 400, "parse", ""),
    ("callid-space", base("abc@192.0.2.1", "abc def"), 400, "parse", ""),
    ("callid-empty", base("Call-ID: malformed.abc@192.0.2.1", "Call-ID:"), 400, "parse", ""),
    ("no-colon", base("Content-Length", "NoColonHere\nContent-Length"), 400, "parse", ""),
    ("bad-name", base("Content-Length", "Bad Name: x\nContent-Length"), 400, "parse", ""),
    ("empty-name", base("Content-Length", ": x\nContent-Length"), 400, "parse", ""),
    ("fold-at-start", base("Via:", " Via:"), 400, "parse", "continuation of the start line"),
    ("raw-nul", base("tag=93334", "tag=93\x00334"), 400, "parse", "NUL outside a quoted-pair"),
    ("raw-esc", base("Content-Length", "X: a\x1bb\nContent-Length"), 400, "parse", "ESC"),
    ("stray-cr", base("Content-Length", "X: a\rb\nContent-Length"), 400, "parse", "lone CR"),
    ("method-nontoken", base("OPTIONS sip", "OPT:IONS sip"), 400, "parse", ""),
    ("no-uri-scheme", base("OPTIONS sip:user@example.com", "OPTIONS user"), 400, "parse", ""),
    ("uri-utf8", base("sip:user@example.com SIP", "sip:üser@example.com SIP"), 400, "parse", ""),
    ("via-no-host", base("Via: SIP/2.0/UDP 192.0.2.1;", "Via: SIP/2.0/UDP ;"), 400, "parse", ""),
    (
        "via-empty-item",
        base("Via: SIP/2.0/UDP", "Via: ,SIP/2.0/UDP"),
        None,
        "-",
        "accepted: empty list items are skipped (RFC 7230 §7 tolerance in split_header_values)",
    ),
    (
        "contact-star-mixed",
        base("Content-Length", "Contact: *, <sip:a@b>\nContent-Length"),
        400,
        "typed",
        "'*' with other contacts",
    ),
    (
        "route-garbage",
        base("Content-Length", "Route: <sip:a@b\nContent-Length"),
        400,
        "typed",
        "unterminated '<'",
    ),
    (
        "ctype-garbage",
        base("Content-Length", "Content-Type: sdp\nContent-Length"),
        400,
        "typed",
        "no '/'",
    ),
]


def _invalid_utf8() -> bytes:
    return base("Content-Length", "X-Bin: \xff\nContent-Length").replace(b"\xc3\xbf", b"\xff")


ROWS.append(("bad-utf8", _invalid_utf8(), 400, "parse", "invalid UTF-8 in a header value"))


def test_table_is_big_enough() -> None:
    assert len(ROWS) >= 25
    assert len({row[0] for row in ROWS}) == len(ROWS)


@pytest.mark.parametrize(
    ("data", "status", "where"),
    [pytest.param(data, status, where, id=name) for name, data, status, where, _ in ROWS],
)
def test_malformed(data: bytes, status: int | None, where: str) -> None:
    if status is None:
        full_parse(data)
        return
    with pytest.raises(ParseError) as info:
        full_parse(data)
    assert info.value.status_code == status, info.value.reason
    if where == "typed":
        parse_message(data)  # parse_message itself accepts: the header is parsed when read
    else:
        with pytest.raises(ParseError):
            parse_message(data)


@pytest.mark.parametrize("name", ["Via", "To", "From", "Call-ID", "CSeq"])
def test_missing_header_reason_names_it(name: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(MISSING[name])
    assert name in info.value.reason


def test_over_max_size_is_413() -> None:
    with pytest.raises(ParseError) as info:
        parse_message(base(), max_size=100)
    assert info.value.status_code == 413


def test_identical_duplicate_content_length_is_accepted() -> None:
    msg = parse_message(base("Content-Length: 0", "Content-Length: 0\nl: 0"))
    assert msg.body == b""
