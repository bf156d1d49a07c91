"""parse_message on valid input: RFC 4475 §3.1.1 / §3.3 / §3.4 and RFC 5118 messages that must
parse, each with the values a correct parser extracts."""

from __future__ import annotations

import pytest

from softphone.sip.errors import ParseError
from softphone.sip.message import Request, Response
from softphone.sip.multipart import parse_multipart
from softphone.sip.parser import parse_headers, parse_message
from softphone.sip.uri import AbsoluteURI, SipURI
from tests.sip import torture as t


def req(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def resp(data: bytes) -> Response:
    msg = parse_message(data)
    assert isinstance(msg, Response)
    return msg


def sip_uri(uri: object) -> SipURI:
    assert isinstance(uri, SipURI)
    return uri


def test_wsinv_short_tortuous_invite() -> None:
    m = req(t.WSINV)
    assert m.method == "INVITE"
    assert sip_uri(m.uri).params == {"unknownparam": None}
    assert sip_uri(m.to.uri).user == "vivekg"
    assert m.to.tag == "1918181833n"
    assert m.from_.display_name == 'J Rosenberg \\"'
    assert m.from_.tag == "98asjd8"
    assert m.max_forwards == 68
    assert (m.cseq.seq, m.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in m.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert m.headers.get("Subject") == ""
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (contact,) = m.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    (route,) = m.routes
    assert sip_uri(route.uri).params["unknownwith"] == "value"
    assert m.content_type == "application/sdp"
    assert m.body == t.SDP


def test_intmeth_wide_range_of_valid_characters() -> None:
    m = req(t.INTMETH)
    assert m.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.cseq.method == m.method
    uri = sip_uri(m.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert m.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert m.from_.params["fromparam''~+*_!.-%"] == "работающий"
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.headers.get("extensionHeader-!.%*+_`'~") == "大停電"
    assert m.max_forwards == 255


def test_esc01_percent_escapes_are_decoded() -> None:
    m = req(t.ESC01)
    assert sip_uri(m.uri).user == "sips:user@example.com"
    assert sip_uri(m.to.uri).user == "user"
    assert sip_uri(m.from_.uri).user == "I have spaces"
    assert m.call_id == "esc01.239409asdfakjkn23onasd0-3234"
    assert m.content_type == "application/sdp"
    (contact,) = m.contacts
    assert sip_uri(contact.uri).user == "caller"


def test_escnull_escaped_nul_in_uri() -> None:
    m = req(t.ESCNULL)
    assert sip_uri(m.to.uri).user == "null-\x00-null"
    assert [sip_uri(c.uri).user for c in m.contacts] == ["\x00", "\x00\x00"]
    assert m.body == b""


def test_esc02_percent_that_is_not_an_escape() -> None:
    m = req(t.ESC02)
    assert m.method == "RE%47IST%45R"  # not REGISTER: methods are not escaped
    assert m.to.display_name == "%Z%45"
    assert len(m.contacts) == 2  # "C%6Fntact" is another (unknown) header
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp_no_space_before_laquot() -> None:
    m = req(t.LWSDISP)
    assert m.from_.display_name == "caller"
    assert m.from_.tag == "323"


def test_longreq_long_values() -> None:
    m = req(t.LONGREQ)
    assert m.from_.tag == t.LONG_TAG
    assert len(m.vias) == t.LONG_VIAS
    assert m.vias[-1].host == f"sip{t.LONG_VIAS - 1}.example.com"
    assert len(m.call_id) == len("longreq.") + 1000
    assert m.body == t.SDP


def test_dblreq_bytes_after_the_body_are_ignored() -> None:
    m = req(t.DBLREQ)
    assert m.method == "REGISTER"
    assert m.body == b""
    assert m.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"


def test_semiuri_semicolon_in_user_part() -> None:
    m = req(t.SEMIURI)
    uri = sip_uri(m.uri)
    assert (uri.user, uri.host) == ("user;par=u@example.net", "example.com")
    assert m.headers.get_all("Accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def test_transports_unknown_transport_kept() -> None:
    m = req(t.TRANSPORTS)
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert m.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def test_mpart01_multipart_body_with_binary_part() -> None:
    m = req(t.MPART01)
    assert m.content_type == "multipart/mixed"
    content_type = m.headers.get("Content-Type")
    assert content_type is not None
    sdp, sig = parse_multipart(m.body, content_type)
    assert (sdp.content_type, sdp.body) == ("application/sdp", t.SDP)
    assert (sig.content_type, sig.body) == ("application/pkcs7-signature", t.PKCS7_BLOB)


def test_unreason_utf8_reason_phrase() -> None:
    m = resp(t.UNREASON)
    assert m.status_code == 200
    assert m.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    assert m.to.tag == "2229"


@pytest.mark.parametrize("start_line", [b"SIP/2.0 100 ", b"SIP/2.0 100"])
def test_noreason_empty_reason_phrase(start_line: bytes) -> None:
    m = resp(t.NOREASON.replace(b"SIP/2.0 100 ", start_line))
    assert (m.status_code, m.reason) == (100, "")


def test_unkscm_unknown_scheme_kept_as_absolute_uri() -> None:
    # RFC 4475 §3.3.2: the parser keeps it; the UAS answers 416.
    m = req(t.UNKSCM)
    assert isinstance(m.uri, AbsoluteURI)
    assert str(m.uri) == "nobodyKnowsThisScheme:totallyopaquecontent"


def test_zeromf_and_inv2543() -> None:
    assert req(t.ZEROMF).max_forwards == 0
    old = req(t.INV2543)  # RFC 2543 peer: no Max-Forwards, no branch, no Content-Length
    assert old.max_forwards is None
    assert old.top_via.branch is None
    assert old.body == t.SDP  # datagram without Content-Length: the rest is the body


@pytest.mark.parametrize(
    ("data", "host", "port"),
    [
        (t.IPV6_GOOD, "[2001:db8::10]", None),
        (t.PORT_AMBIGUOUS, "[2001:db8::10:5070]", None),
        (t.PORT_UNAMBIGUOUS, "[2001:db8::10]", 5070),
        (t.IPV4_MAPPED, "[::ffff:192.0.2.10]", None),
        (t.IPV6_CORRECT_ABNF, "[2001:db8::192.0.2.1]", None),
    ],
)
def test_rfc5118_ipv6_request_uris(data: bytes, host: str, port: int | None) -> None:
    m = req(data)
    uri = sip_uri(m.uri)
    assert (uri.host, uri.port) == (host, port)
    assert m.top_via.host == "[2001:db8::9:1]"
    assert sip_uri(m.contacts[0].uri).host == "[2001:db8::1]"


@pytest.mark.parametrize("data", [t.VIA_RECEIVED_DELIM, t.VIA_RECEIVED_NODELIM])
def test_rfc5118_via_received_ipv6(data: bytes) -> None:
    assert req(data).top_via.received in ("[2001:db8::9:255]", "2001:db8::9:255")


# --- grammar corners not covered by the torture messages ---------------------------------

BASIC = t.sip(
    "OPTIONS sip:bob@example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\n"
    "To: <sip:bob@example.com>\n"
    "From: Alice <sip:alice@example.com>;tag=1928301774\n"
    "Call-ID: a84b4c76e66710\n"
    "CSeq: 63104 OPTIONS\n"
    "Content-Length: 0\n"
    "\n"
)


def test_leading_crlfs_and_bare_lf_are_tolerated() -> None:
    m = req(b"\r\n\r\n\n" + BASIC.replace(b"\r\n", b"\n"))
    assert m.call_id == "a84b4c76e66710"
    assert m.body == b""


def test_mixed_line_ends() -> None:
    data = BASIC.replace(b"Call-ID: a84b4c76e66710\r\n", b"Call-ID: a84b4c76e66710\n")
    assert req(data).call_id == "a84b4c76e66710"


def test_header_names_are_case_insensitive_and_compact() -> None:
    data = (
        BASIC.replace(b"Call-ID:", b"i:")
        .replace(b"To:", b"t :")
        .replace(b"From:", b"FROM\t:")
        .replace(b"Via:", b"v:")
        .replace(b"CSeq:", b"cSEQ:")
    )
    m = req(data)
    assert [name for name, _ in m.headers][:5] == ["Via", "To", "From", "Call-ID", "CSeq"]
    assert m.call_id == "a84b4c76e66710"


def test_method_is_case_sensitive() -> None:
    m = req(BASIC.replace(b"OPTIONS", b"options"))
    assert m.method == "options"


def test_lowercase_sip_version_accepted_and_normalised() -> None:
    m = req(BASIC.replace(b" SIP/2.0\r\n", b" sip/2.0\r\n", 1))
    assert m.version == "SIP/2.0"


def test_one_header_over_several_lines_and_several_values_in_one() -> None:
    data = BASIC.replace(
        b"Content-Length: 0\r\n",
        b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
        b"Route: <sip:p3.example.com;lr>\r\n"
        b'Contact: "Alice, the first" <sip:alice@pc33.example.com>;expires=60,\r\n'
        b"  <sip:alice@192.0.2.4>\r\n"
        b"Content-Length: 0\r\n",
    )
    m = req(data)
    assert [sip_uri(r.uri).host for r in m.routes] == [
        "p1.example.com",
        "p2.example.com",
        "p3.example.com",
    ]
    assert [c.display_name for c in m.contacts] == ["Alice, the first", None]
    assert m.contacts[0].params == {"expires": "60"}


def test_body_with_nul_bytes_and_content_length_truncation() -> None:
    body = b"\x00\x01\r\n\r\n\x00"
    data = BASIC.replace(b"Content-Length: 0", f"Content-Length: {len(body)}".encode())
    m = req(data + body + b"trailing junk")
    assert m.body == body


def test_utf8_display_name() -> None:
    m = req(BASIC.replace(b"From: Alice", 'From: "Zoë Ærø 日本"'.encode()))
    assert m.from_.display_name == "Zoë Ærø 日本"


def test_unknown_headers_preserved_in_order_and_spelling() -> None:
    m = req(BASIC.replace(b"Content-Length", b"X-Foo-BAR: 1\r\nx-foo-bar: 2\r\nContent-Length"))
    assert m.headers.get_all("X-FOO-BAR") == ["1", "2"]
    assert ("X-Foo-BAR", "1") in list(m.headers)


def test_contact_star() -> None:
    m = req(BASIC.replace(b"Content-Length", b"Contact: *\r\nExpires: 0\r\nContent-Length"))
    assert m.contact_wildcard
    assert m.contacts == []


def test_response_fields() -> None:
    data = t.sip(
        "SIP/2.0 180 Ringing\n"
        "Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds;received=192.0.2.1\n"
        "To: Bob <sip:bob@example.com>;tag=a6c85cf\n"
        "From: Alice <sip:alice@example.com>;tag=1928301774\n"
        "Call-ID: a84b4c76e66710\n"
        "CSeq: 314159 INVITE\n"
        "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\n"
        "Content-Length: 0\n"
        "\n"
    )
    m = resp(data)
    assert (m.status_code, m.reason) == (180, "Ringing")
    assert m.cseq.method == "INVITE"  # a response's CSeq method need not be a request method
    assert len(m.record_routes) == 2
    assert m.top_via.received == "192.0.2.1"


def test_parse_headers_rejects_a_leading_continuation() -> None:
    with pytest.raises(ParseError):
        parse_headers(" folded: x")
    assert list(parse_headers("")) == []


_PLAIN = (
    b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"From: <sip:alice@example.com>;tag=1\r\n"
    b"Call-ID: c@h\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"To: <", b"To:<"),  # no space after the colon
        (b"To: <", b"To :\t <"),  # whitespace before and after the colon
        (b"To: <", b"t: <"),  # compact form
        (b"To: <", b"tO: <"),  # any case
        (b"To: <sip:bob@example.com>", b"To: <sip:bob@example.com>\r\n  "),  # empty fold
        (b"To: <sip:bob@example.com>", b"To:\r\n <sip:bob@example.com>"),  # folded value
    ],
)
def test_header_line_spellings(old: bytes, new: bytes) -> None:
    msg = parse_message(_PLAIN.replace(old, new, 1))
    assert str(msg.to.uri) == "sip:bob@example.com"
    assert msg.headers.get("To") == "<sip:bob@example.com>"


@pytest.mark.parametrize(
    "bad",
    [
        b"X-A: a\x01b\r\n",  # control character
        b"X-A: a\rb\r\n",  # CR not followed by LF
        b"X-A: a\x7fb\r\n",  # DEL
        b"X-A: a\xffb\r\n",  # invalid UTF-8
        b"X-A\r\n",  # no colon
        b"X A: b\r\n",  # name not a token
    ],
)
def test_fast_path_keeps_every_check(bad: bytes) -> None:
    with pytest.raises(ParseError):
        parse_message(_PLAIN.replace(b"Content-Length", bad + b"Content-Length", 1))


def test_bare_lf_in_one_line_takes_the_lenient_path() -> None:
    msg = parse_message(_PLAIN.replace(b"Call-ID: c@h\r\n", b"Call-ID: c@h\n", 1))
    assert msg.call_id == "c@h"
