"""Headers multi-dict, Request/Response serialisation and accessors (RFC 3261 §7, §8.2.6, §20)."""

from __future__ import annotations

import pytest

from softphone.sip.errors import LocalProtocolError, ParseError
from softphone.sip.message import (
    REASON_PHRASES,
    Headers,
    Request,
    Response,
    canonical_name,
    reason_phrase,
)
from softphone.sip.parser import parse_message
from softphone.sip.uri import parse_uri
from tests.sip.torture import sip


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("call-id", "Call-ID"),
        ("i", "Call-ID"),
        ("I", "Call-ID"),
        ("cseq", "CSeq"),
        ("www-authenticate", "WWW-Authenticate"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("m", "Contact"),
        ("f", "From"),
        ("t", "To"),
        ("v", "Via"),
        ("e", "Content-Encoding"),
        ("s", "Subject"),
        ("k", "Supported"),
        ("o", "Event"),
        ("u", "Allow-Events"),
        ("r", "Refer-To"),
        ("b", "Referred-By"),
        ("x", "Session-Expires"),
        ("a", "Accept-Contact"),
        ("j", "Reject-Contact"),
        ("d", "Request-Disposition"),
        ("y", "Identity"),
        ("n", "Identity-Info"),
        ("RECORD-ROUTE", "Record-Route"),
        ("X-Custom-Thing", "X-Custom-Thing"),
        ("x-custom-thing", "x-custom-thing"),
    ],
)
def test_canonical_name(name: str, canonical: str) -> None:
    assert canonical_name(name) == canonical


@pytest.mark.parametrize("bad", ["", "a b", "a:b", "ä", "x\r"])
def test_canonical_name_rejects_non_tokens(bad: str) -> None:
    with pytest.raises(ParseError):
        canonical_name(bad)


def test_compact_and_long_forms_are_one_header() -> None:
    h = Headers([("v", "SIP/2.0/UDP a"), ("VIA", "SIP/2.0/UDP b"), ("i", "x")])
    assert list(h) == [("Via", "SIP/2.0/UDP a"), ("Via", "SIP/2.0/UDP b"), ("Call-ID", "x")]
    assert h.get("call-id") == "x"
    assert "I" in h and "Call-Id" in h and "To" not in h
    assert 42 not in h and "bad name" not in h


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "Via",
            "SIP/2.0/UDP a;branch=1, SIP/2.0/UDP b",
            ["SIP/2.0/UDP a;branch=1", "SIP/2.0/UDP b"],
        ),
        ("Contact", '"A, B" <sip:a@x;p=1,2>, <sip:c@y>', ['"A, B" <sip:a@x;p=1,2>', "<sip:c@y>"]),
        ("Contact", "*", ["*"]),
        ("Allow", "INVITE,ACK , BYE", ["INVITE", "ACK", "BYE"]),
        ("Supported", "timer, 100rel", ["timer", "100rel"]),
        ("Accept-Encoding", "gzip, identity", ["gzip", "identity"]),
        ("Path", "<sip:p1;lr>, <sip:p2;lr>", ["<sip:p1;lr>", "<sip:p2;lr>"]),
        ("WWW-Authenticate", 'Digest realm="a", nonce="b"', ['Digest realm="a", nonce="b"']),
        ("Authorization", 'Digest username="u", realm="r"', ['Digest username="u", realm="r"']),
        ("Proxy-Authenticate", "Digest realm=x, qop=auth", ["Digest realm=x, qop=auth"]),
        ("Date", "Sat, 13 Nov 2010 23:29:00 GMT", ["Sat, 13 Nov 2010 23:29:00 GMT"]),
        ("Retry-After", "18000;duration=3600", ["18000;duration=3600"]),
        ("Subject", "Hello, world", ["Hello, world"]),
    ],
)
def test_get_all_splits_only_list_headers(name: str, value: str, expected: list[str]) -> None:
    h = Headers([(name, value)])
    assert h.get_all(name) == expected
    assert h.get_lines(name) == [value]


def test_mutation() -> None:
    h = Headers([("Via", "v2"), ("To", "t"), ("Via", "v3")])
    h.prepend("Via", "v1")
    h.prepend("Route", "r1")  # no Route yet: goes to the top
    assert [v for _, v in h] == ["r1", "v1", "v2", "t", "v3"]
    h.set("Via", "only")
    assert list(h) == [("Route", "r1"), ("Via", "only"), ("To", "t")]
    h.set("Max-Forwards", "70")
    assert list(h)[-1] == ("Max-Forwards", "70")
    h.remove("via")
    assert h.get("Via") is None and len(h) == 3
    h.remove("Not-There")
    copy = h.copy()
    copy.add("X", "1")
    assert "X" not in h and copy != h and h.copy() == h


def test_remove_first_of_a_list_header() -> None:
    h = Headers([("Via", "SIP/2.0/UDP a, SIP/2.0/UDP b"), ("Via", "SIP/2.0/UDP c")])
    assert h.remove_first("Via") == "SIP/2.0/UDP a"
    assert h.get_all("Via") == ["SIP/2.0/UDP b", "SIP/2.0/UDP c"]
    assert h.remove_first("v") == "SIP/2.0/UDP b"
    assert h.get_all("Via") == ["SIP/2.0/UDP c"]
    assert h.remove_first("Route") is None


@pytest.mark.parametrize("value", ["a\r\nX: injected", "a\nb", "a\rb", "a\x00"])
def test_header_injection_is_refused(value: str) -> None:
    with pytest.raises(LocalProtocolError):
        Headers().add("Subject", value)


def test_bad_header_name_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        Headers().add("Bad Name", "x")


def _request(body: bytes = b"") -> Request:
    headers = Headers(
        [
            ("Via", "SIP/2.0/TLS pc.example.com;branch=z9hG4bK1, SIP/2.0/TLS p2.example.com"),
            ("Max-Forwards", "70"),
            ("From", "Alice <sips:alice@example.com>;tag=1"),
            ("To", "Bob <sips:bob@example.com>"),
            ("Call-ID", "abc@pc"),
            ("CSeq", "7 INVITE"),
            ("Content-Length", "999"),
            ("Timestamp", "54"),
        ]
    )
    return Request("INVITE", parse_uri("sips:bob@example.com"), headers, body)


def test_bytes_computes_content_length_in_place() -> None:
    data = bytes(_request(b"\x00hello"))
    assert data.startswith(b"INVITE sips:bob@example.com SIP/2.0\r\nVia: ")
    assert b"Content-Length: 6\r\nTimestamp: 54\r\n\r\n\x00hello" in data
    assert data.count(b"Content-Length") == 1
    assert data.endswith(b"\r\n\r\n\x00hello")


def test_bytes_appends_content_length_when_absent() -> None:
    req = _request()
    req.headers.remove("Content-Length")
    assert bytes(req).endswith(b"Timestamp: 54\r\nContent-Length: 0\r\n\r\n")


def test_serialised_request_parses_back() -> None:
    req = _request(b"v=0\r\n")
    again = parse_message(bytes(req))
    assert isinstance(again, Request)
    assert again.body == b"v=0\r\n"
    assert list(again.headers) == [(n, "5" if n == "Content-Length" else v) for n, v in req.headers]


def test_accessors() -> None:
    req = _request()
    assert req.call_id == "abc@pc"
    assert (req.cseq.seq, req.cseq.method) == (7, "INVITE")
    assert req.from_.tag == "1" and req.to.tag is None
    assert [v.host for v in req.vias] == ["pc.example.com", "p2.example.com"]
    assert req.top_via.branch == "z9hG4bK1"
    assert req.max_forwards == 70
    assert req.content_type is None
    assert req.contacts == [] and req.routes == [] and req.record_routes == []


@pytest.mark.parametrize(
    ("attribute", "name", "value"),
    [
        ("call_id", "Call-ID", None),
        ("call_id", "Call-ID", ""),
        ("cseq", "CSeq", None),
        ("cseq", "CSeq", "x INVITE"),
        ("from_", "From", None),
        ("from_", "From", "<sip:a@b"),
        ("to", "To", "junk junk"),
        ("vias", "Via", None),
        ("vias", "Via", "HTTP"),
        ("top_via", "Via", None),
        ("max_forwards", "Max-Forwards", "256"),
        ("max_forwards", "Max-Forwards", "-1"),
        ("content_type", "Content-Type", "application"),
        ("content_type", "Content-Type", "application/sdp garbage"),
        ("contacts", "Contact", "<sip:a@b"),
        ("routes", "Route", "sip:a@b?x=y"),
        ("record_routes", "Record-Route", '"unterminated <sip:a@b>'),
    ],
)
def test_accessor_errors_name_the_header(attribute: str, name: str, value: str | None) -> None:
    req = _request()
    if value is None:
        req.headers.remove(name)
    else:
        req.headers.set(name, value)
    with pytest.raises(ParseError) as info:
        getattr(req, attribute)
    assert info.value.status_code == 400
    assert name in info.value.reason


def test_content_type_is_lower_case_without_params() -> None:
    req = _request()
    req.headers.set("c", "Application/SDP ; charset=utf-8")
    assert req.content_type == "application/sdp"


def test_accessors_never_share_mutable_objects() -> None:
    msg = parse_message(bytes(_request()))
    first = msg.to
    first.params["tag"] = "mutated"
    assert msg.to.tag is None  # the second access parses again
    vias = msg.vias
    vias.clear()
    assert len(msg.vias) == 2


def test_accessors_follow_header_changes() -> None:
    msg = parse_message(bytes(_request()))
    msg.headers.set("To", "<sips:carol@example.com>;tag=9")
    assert msg.to.tag == "9"  # the object built at parse time is not returned for a new value


def test_response_for_request() -> None:
    req = _request()
    resp = Response.for_request(req, 180, to_tag="xyz")
    assert (resp.status_code, resp.reason) == (180, "Ringing")
    assert resp.headers.get_lines("Via") == req.headers.get_lines("Via")
    assert resp.to.tag == "xyz"
    assert resp.from_.tag == "1"
    assert resp.call_id == "abc@pc"
    assert resp.cseq == req.cseq
    assert "Timestamp" not in resp.headers
    trying = Response.for_request(req, 100, to_tag="xyz")
    assert trying.to.tag is None  # §8.2.6.2: no tag on 100
    assert trying.headers.get("Timestamp") == "54"  # §8.2.6.1
    again = parse_message(bytes(resp))
    assert isinstance(again, Response)
    assert again.to.tag == "xyz"


def test_for_request_keeps_an_existing_to_tag_and_custom_reason() -> None:
    req = _request()
    req.headers.set("To", "<sips:bob@example.com>;tag=old")
    resp = Response.for_request(req, 200, "Fine", to_tag="new")
    assert (resp.reason, resp.to.tag) == ("Fine", "old")


def test_for_request_errors() -> None:
    with pytest.raises(LocalProtocolError):
        Response.for_request(_request(), 99)
    req = _request()
    req.headers.remove("Call-ID")
    with pytest.raises(LocalProtocolError):
        Response.for_request(req, 200)


@pytest.mark.parametrize(
    ("code", "phrase"),
    [
        (100, "Trying"),
        (183, "Session Progress"),
        (200, "OK"),
        (302, "Moved Temporarily"),
        (401, "Unauthorized"),
        (407, "Proxy Authentication Required"),
        (481, "Call/Transaction Does Not Exist"),
        (487, "Request Terminated"),
        (505, "Version Not Supported"),
        (513, "Message Too Large"),
        (603, "Decline"),
        (499, "Client Error"),
        (650, "Global Failure"),
    ],
)
def test_reason_phrases(code: int, phrase: str) -> None:
    assert reason_phrase(code) == phrase


def test_every_rfc3261_code_has_a_phrase() -> None:
    rfc3261 = [100, 180, 181, 182, 183, 200, 300, 301, 302, 305, 380, 400, 401, 402, 403, 404]
    rfc3261 += [405, 406, 407, 408, 410, 413, 414, 415, 416, 420, 421, 423, 480, 481, 482, 483]
    rfc3261 += [484, 485, 486, 487, 488, 491, 493, 500, 501, 502, 503, 504, 505, 513, 600, 603]
    rfc3261 += [604, 606]
    assert all(code in REASON_PHRASES for code in rfc3261)


def test_response_bytes_and_copy() -> None:
    resp = Response(486, "Busy Here", Headers([("Via", "SIP/2.0/UDP a")]), b"x")
    assert (
        bytes(resp) == b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP a\r\nContent-Length: 1\r\n\r\nx"
    )
    copy = resp.copy()
    copy.headers.add("To", "<sip:a@b>")
    assert "To" not in resp.headers
    req_copy = _request().copy()
    assert req_copy.method == "INVITE"


def test_utf8_survives_serialisation() -> None:
    data = sip(
        "MESSAGE sip:bob@example.com SIP/2.0\n"
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1\n"
        'From: "Zoë 日本" <sip:z@example.com>;tag=1\n'
        "To: <sip:bob@example.com>\n"
        "Call-ID: u\n"
        "CSeq: 1 MESSAGE\n"
        "Subject: ☎ call me\n"
        "\n",
        "héllo".encode(),
    )
    msg = parse_message(data)
    assert msg.from_.display_name == "Zoë 日本"
    again = parse_message(bytes(msg))
    assert again.headers.get("Subject") == "☎ call me"
    assert again.body == "héllo".encode()


def test_handed_out_objects_are_dropped_by_any_header_change() -> None:
    msg = parse_message(bytes(_request()))
    msg.headers.add("X-Other", "1")  # not From, but any change invalidates the handout
    msg.headers._lookup_index()
    before = msg.from_
    assert before.tag == msg.from_.tag
    assert msg.from_ is not before  # parsed again: never the parser's object after a change


def test_handout_survives_lookups_and_is_taken_once() -> None:
    msg = parse_message(bytes(_request()))
    assert msg.headers.get("From") is not None  # reading does not invalidate
    first = msg.cseq
    assert msg.cseq == first
    assert msg.cseq is not first
    assert msg.max_forwards == msg.max_forwards == 70


def test_copied_headers_do_not_reuse_the_handout() -> None:
    msg = parse_message(bytes(_request()))
    msg.headers = msg.headers.copy()
    msg.headers.set("CSeq", "8 INVITE")
    assert msg.cseq.seq == 8
