"""URIs: RFC 3261 §19.1 / §25.1, RFC 3966 tel, RFC 5118 IPv6, RFC 4475 torture cases, sipsec."""

from __future__ import annotations

import contextlib
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from softphone.sip.errors import LocalProtocolError, ParseError
from softphone.sip.uri import (
    AbsoluteURI,
    SipURI,
    TelURI,
    parse_sipsec_uri,
    parse_uri,
    sipsec_request_uri,
    validate_host,
)


def sip(text: str) -> SipURI:
    uri = parse_uri(text)
    assert isinstance(uri, SipURI)
    return uri


# ---------------------------------------------------------------- parsing: the fields


@pytest.mark.parametrize(
    ("text", "scheme", "user", "password", "host", "port", "params", "headers"),
    [
        ("sip:alice@atlanta.com", "sip", "alice", None, "atlanta.com", None, {}, {}),
        ("SIP:alice@atlanta.com", "sip", "alice", None, "atlanta.com", None, {}, {}),
        ("sips:bob@biloxi.com:5061", "sips", "bob", None, "biloxi.com", 5061, {}, {}),
        ("sip:registrar.biloxi.com", "sip", None, None, "registrar.biloxi.com", None, {}, {}),
        (
            "sip:alice:secretword@atlanta.com;transport=tcp",
            "sip",
            "alice",
            "secretword",
            "atlanta.com",
            None,
            {"transport": "tcp"},
            {},
        ),
        ("sip:alice:@atlanta.com", "sip", "alice", "", "atlanta.com", None, {}, {}),
        (
            "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sips",
            "alice",
            None,
            "atlanta.com",
            None,
            {},
            {"subject": "project x", "priority": "urgent"},
        ),
        (
            "sip:+1-212-555-1212:1234@gateway.com;user=phone",
            "sip",
            "+1-212-555-1212",
            "1234",
            "gateway.com",
            None,
            {"user": "phone"},
            {},
        ),
        ("sip:alice@192.0.2.4", "sip", "alice", None, "192.0.2.4", None, {}, {}),
        (
            "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
            "sip",
            None,
            None,
            "atlanta.com",
            None,
            {"method": "REGISTER"},
            {"to": "alice@atlanta.com"},
        ),
        (
            "sip:alice;day=tuesday@atlanta.com",
            "sip",
            "alice;day=tuesday",
            None,
            "atlanta.com",
            None,
            {},
            {},
        ),
        (
            "sip:p.example.com;lr;Transport=TLS",
            "sip",
            None,
            None,
            "p.example.com",
            None,
            {"lr": None, "transport": "TLS"},
            {},
        ),
        ("sip:host.example.com.", "sip", None, None, "host.example.com.", None, {}, {}),
        ("sip:h:0", "sip", None, None, "h", 0, {}, {}),
        ("sip:h:65535", "sip", None, None, "h", 65535, {}, {}),
        ("sip:h:05060", "sip", None, None, "h", 5060, {}, {}),
        ("sip:001.002.003.004", "sip", None, None, "001.002.003.004", None, {}, {}),
        ("sip:a-b--c.x1-y.com", "sip", None, None, "a-b--c.x1-y.com", None, {}, {}),
        (
            "sip:alice@atlanta.com;maddr=239.255.255.1;ttl=15",
            "sip",
            "alice",
            None,
            "atlanta.com",
            None,
            {"maddr": "239.255.255.1", "ttl": "15"},
            {},
        ),
        # RFC 4475 §3.1.1.3 esc01: escaped ':' and '@' in the user part
        (
            "sip:sips%3Auser%40example.com@example.net",
            "sip",
            "sips:user@example.com",
            None,
            "example.net",
            None,
            {},
            {},
        ),
        # RFC 4475 §3.1.1.3 esc01 Contact: escaped parameter names and values
        (
            "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31",
            "sip",
            "caller",
            None,
            "host5.example.net",
            None,
            {"lr": None, "name": "value%41"},
            {},
        ),
        (
            "sip:I%20have%20spaces@example.net",
            "sip",
            "I have spaces",
            None,
            "example.net",
            None,
            {},
            {},
        ),
        (
            "sip:null-%00-null@example.com",
            "sip",
            "null-\x00-null",
            None,
            "example.com",
            None,
            {},
            {},
        ),  # RFC 4475 §3.1.1.4 escnull
        ("sip:%75se%72@example.com", "sip", "user", None, "example.com", None, {}, {}),
        # RFC 4475 §3.1.1.9 semiuri: ';' in the user part, escaped '@'
        (
            "sip:user;par=u%40example.net@example.com",
            "sip",
            "user;par=u@example.net",
            None,
            "example.com",
            None,
            {},
            {},
        ),
        # RFC 4475 §3.1.1.2 intmeth: every legal odd character in user and password
        (
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
            "(doesn't-it)@example.com",
            "sip",
            "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*",
            "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)",
            "example.com",
            None,
            {},
            {},
        ),
        # RFC 4475 §3.1.2.10 escruri: escaped headers parse (it is the message that is wrong)
        (
            "sip:user@example.com?Route=%3Csip:example.com%3E",
            "sip",
            "user",
            None,
            "example.com",
            None,
            {},
            {"Route": "<sip:example.com>"},
        ),
        (
            "sip:bob@b.example?Replaces=12345@192.0.2.1%3Bto-tag%3D1",
            "sip",
            "bob",
            None,
            "b.example",
            None,
            {},
            {"Replaces": "12345@192.0.2.1;to-tag=1"},
        ),
        ("sip:a@b?h=", "sip", "a", None, "b", None, {}, {"h": ""}),
        ("sip:a@b?Route=x&Route=y", "sip", "a", None, "b", None, {}, {"Route": "x,y"}),
        (
            "sip:vivekg@chair-dnrc.example.com;unknownparam",
            "sip",
            "vivekg",
            None,
            "chair-dnrc.example.com",
            None,
            {"unknownparam": None},
            {},
        ),
        ("sip:a@b;x=1;X=2", "sip", "a", None, "b", None, {"x": "1"}, {}),
    ],
)
def test_parse_sip_uri(
    text: str,
    scheme: str,
    user: str | None,
    password: str | None,
    host: str,
    port: int | None,
    params: dict[str, str | None],
    headers: dict[str, str],
) -> None:
    uri = sip(text)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        scheme,
        user,
        password,
        host,
        port,
    )
    assert uri.params == params
    assert uri.headers == headers
    again = sip(str(uri))  # parse -> str -> parse is stable, field for field
    assert (again.user, again.password, again.host, again.port) == (user, password, host, port)
    assert (again.params, again.headers) == (params, headers)
    assert str(again) == str(uri)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("SIP:alice@atlanta.com", "sip:alice@atlanta.com"),
        ("sip:%61lice@atlanta.com", "sip:alice@atlanta.com"),
        ("sip:sips%3Auser%40example.com@example.net", "sip:sips%3Auser%40example.com@example.net"),
        ("sip:a%3bb@h", "sip:a;b@h"),  # ';' is legal unescaped in user
        (
            "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31",
            "sip:caller@host5.example.net;lr;name=value%2541",
        ),
        ("sip:a@b?to=sip:bob%40biloxi.com", "sip:a@b?to=sip:bob%40biloxi.com"),
        ("sip:a@b?Replaces=x@y", "sip:a@b?Replaces=x%40y"),
        ("sip:h:05060", "sip:h:5060"),
        ("sips:[2001:DB8::1]:5061;transport=tcp", "sips:[2001:DB8::1]:5061;transport=tcp"),
    ],
)
def test_canonical_serialisation(text: str, canonical: str) -> None:
    assert str(parse_uri(text)) == canonical


@pytest.mark.parametrize(
    "text",
    [
        "sip:",
        "sip:@example.com",
        "sip:alice@",
        "sip:alice@example.com:",
        "sip:alice@example.com:65536",
        "sip:alice@example.com:99999999999999999999999999",
        "sip:alice@example.com:-1",
        "sip:alice@example.com:50a",
        "sip:alice@exa mple.com",
        "sip:alice@example.com ",
        " sip:alice@example.com",
        "sip:alice@example.com;",
        "sip:alice@example.com;;lr",
        "sip:alice@example.com;a=",
        "sip:alice@example.com;a=b=c=<",
        "sip:alice@example.com?",
        "sip:alice@example.com?subject",
        "sip:alice@example.com?=x",
        "sip:alice@example.com?a=b c",
        "sip:al ice@example.com",
        "sip:al<ice@example.com",
        "sip:alice%@example.com",
        "sip:alice%4@example.com",
        "sip:alice%zz@example.com",
        "sip:alice:pa;ss@example.com",
        "sip:alice@-example.com",
        "sip:alice@example-.com",
        "sip:alice@example..com",
        "sip:alice@.example.com",
        "sip:alice@example.com..",
        "sip:alice@example.1com",  # toplabel must start with a letter
        "sip:alice@under_score.com",
        "sip:alice@256.1.1.1",
        "sip:alice@1.2.3",
        "sip:alice@1.2.3.4.5",
        "sip:alice@1.2.3.4x",
        "sip:alice@ex%61mple.com",
        "sip:alice@exämple.com",
        "sip:2001:db8::10",  # RFC 5118 §4.2: an IPv6 host needs brackets
        "sip:[2001:db8::10",
        "sip:[2001:db8::10]x",
        "sip:[2001:db8::10]:",
        "sip:[2001:db8:::10]",
        "sip:[2001:db8::10::1]",
        "sip:[12345::1]",
        "sip:[fe80::1%eth0]",
        "sip:[::ffff:256.0.0.1]",
        "sip:[]",
        "<sip:user@example.com>",  # RFC 4475 §3.1.2.11 ltgtruri
        "sip:user@example.com\r\nVia: x",
        "",
        ":",
        "alice@example.com",
        "1sip:alice@example.com",
        "si p:alice@example.com",
    ],
)
def test_parse_uri_rejects(text: str) -> None:
    with pytest.raises(ParseError) as excinfo:
        parse_uri(text)
    assert excinfo.value.status_code == 400


# ---------------------------------------------------------------- RFC 5118 IPv6


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:db8::10]", "[2001:db8::10]", None),  # §4.1
        ("sip:[2001:db8::10:5070]", "[2001:db8::10:5070]", None),  # §4.3: no port here
        ("sip:[2001:db8::10]:5070", "[2001:db8::10]", 5070),  # §4.4
        ("sip:user@[2001:db8::192.0.2.1]", "[2001:db8::192.0.2.1]", None),  # §4.12
        ("sip:[::ffff:192.0.2.10]", "[::ffff:192.0.2.10]", None),  # §4.11
        ("sip:[::ffff:c000:280a]", "[::ffff:c000:280a]", None),
        ("sip:[2001:db8:0:0:0:0:0:10]", "[2001:db8:0:0:0:0:0:10]", None),
        ("sip:[::1]", "[::1]", None),
        ("sip:[::]:5060", "[::]", 5060),
        ("sips:alice@[2001:DB8::9:1]:5061;transport=tls", "[2001:DB8::9:1]", 5061),
    ],
)
def test_ipv6_references(text: str, host: str, port: int | None) -> None:
    uri = sip(text)
    assert (uri.host, uri.port) == (host, port)
    assert sip(str(uri)) == uri


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # RFC 5118 §4.11 prints the hex form as c000:280a, which is 192.0.40.10: the two
        # spellings of 192.0.2.10 are the ones below.
        ("sip:[::ffff:192.0.2.10]", "sip:[::ffff:c000:20a]"),
        ("sip:[2001:db8::10]", "sip:[2001:db8:0:0:0:0:0:10]"),
        ("sip:[2001:DB8::10]", "sip:[2001:db8::10]"),
        ("sip:a@[2001:db8::1]:5060", "sip:a@[2001:0db8:0000::0001]:5060"),
    ],
)
def test_ipv6_forms_compare_as_addresses(a: str, b: str) -> None:
    assert parse_uri(a) == parse_uri(b)


def test_ipv4_mapped_is_not_the_ipv4_host() -> None:
    assert parse_uri("sip:[::ffff:192.0.2.10]") != parse_uri("sip:192.0.2.10")
    assert parse_uri("sip:[::ffff:192.0.2.10]") != parse_uri("sip:[::ffff:c000:280a]")
    assert parse_uri("sip:[2001:db8::10]:5070") != parse_uri("sip:[2001:db8::10:5070]")


# ---------------------------------------------------------------- RFC 3261 §19.1.4 comparison

EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
]

NOT_EQUIVALENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),  # user
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),  # may resolve to other ports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),  # to other transports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),  # to both
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),  # header
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),  # no DNS in comparison
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_rfc3261_equivalent_pairs(a: str, b: str) -> None:
    ua, ub = parse_uri(a), parse_uri(b)
    assert ua == ub
    assert ub == ua
    assert ua.equivalent(ub)


@pytest.mark.parametrize(("a", "b"), NOT_EQUIVALENT)
def test_rfc3261_non_equivalent_pairs(a: str, b: str) -> None:
    ua, ub = parse_uri(a), parse_uri(b)
    assert ua != ub
    assert ub != ua
    assert not ua.equivalent(ub)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),  # scheme
        ("sip:alice@atlanta.com", "sip:Alice@atlanta.com"),  # userinfo is case-sensitive
        ("sip:alice:pw@atlanta.com", "sip:alice:PW@atlanta.com"),
        ("sip:alice:pw@atlanta.com", "sip:alice@atlanta.com"),
        ("sip:alice@atlanta.com", "sip:atlanta.com"),
        ("sip:a@h;user=phone", "sip:a@h"),
        ("sip:a@h", "sip:a@h;ttl=1"),
        ("sip:a@h;method=INVITE", "sip:a@h"),
        ("sip:a@h;maddr=239.1.1.1", "sip:a@h"),
        ("sip:a@h;lr", "sip:a@h;lr=on"),  # flag vs value, both present
        ("sip:a@h?x=1", "sip:a@h?x=2"),
        ("sip:a@h?x=1", "sip:a@h?x=1&y=2"),
        ("sip:a@example.com.", "sip:a@example.com"),  # §19.1.4 compares text, not DNS
    ],
)
def test_more_non_equivalent(a: str, b: str) -> None:
    assert parse_uri(a) != parse_uri(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sip:a@h;LR", "sip:a@h;lr"),
        ("sip:a@h;foo=BAR", "sip:a@h;FOO=bar"),  # other components are case-insensitive
        ("sip:a@h?Subject=x", "sip:a@h?subject=x"),
        ("sip:a@1.2.3.4", "sip:a@001.002.003.004"),
        ("sip:a%3bb@h", "sip:a;b@h"),
    ],
)
def test_more_equivalent(a: str, b: str) -> None:
    assert parse_uri(a) == parse_uri(b)


def test_uris_are_deliberately_unhashable() -> None:
    # §19.1.4 equality is not transitive (see the security=on/off rows), so no hash fits it.
    for text in ("sip:a@b", "tel:+1234", "urn:x"):
        with pytest.raises(TypeError):
            hash(parse_uri(text))


def test_comparison_with_other_types() -> None:
    assert parse_uri("sip:a@b") != "sip:a@b"
    assert parse_uri("sip:a@b") != parse_uri("tel:+1234")
    assert parse_uri("urn:x") != parse_uri("sip:x")


# ---------------------------------------------------------------- properties


def test_properties() -> None:
    uri = sip("sips:Bob:pw@Biloxi.COM:5061;transport=TLS;lr?x=y")
    assert uri.transport == "tls"
    assert uri.is_secure
    assert uri.aor == "sips:Bob@Biloxi.COM"
    assert sip("sip:biloxi.com").aor == "sip:biloxi.com"
    assert sip("sip:biloxi.com").transport is None
    assert not sip("sip:biloxi.com").is_secure
    assert sip("sip:sips%3Au@h").aor == "sip:sips%3Au@h"


def test_copy_is_independent() -> None:
    uri = sip("sip:a@b;lr?x=1")
    other = uri.copy(port=5070)
    other.params["transport"] = "tcp"
    other.headers["y"] = "2"
    assert str(uri) == "sip:a@b;lr?x=1"
    assert str(other) == "sip:a@b:5070;lr;transport=tcp?x=1&y=2"


def test_built_uri_serialises_with_escapes() -> None:
    uri = SipURI(
        "sip",
        user="a b@c",
        password="p:w",
        host="example.com",
        port=5060,
        params={"x": "y z", "lr": None},
        headers={"Subject": "hi & bye"},
    )
    assert str(uri) == "sip:a%20b%40c:p%3Aw@example.com:5060;x=y%20z;lr?Subject=hi%20%26%20bye"
    assert sip(str(uri)) == uri


# ---------------------------------------------------------------- tel: (RFC 3966)


@pytest.mark.parametrize(
    ("text", "number", "params", "is_global", "digits"),
    [
        ("tel:+1-212-555-0101", "+1-212-555-0101", {}, True, "+12125550101"),
        ("tel:+1.(212).555.0101", "+1.(212).555.0101", {}, True, "+12125550101"),
        (
            "tel:+358-555-1234567;postd=pp22",
            "+358-555-1234567",
            {"postd": "pp22"},
            True,
            "+3585551234567",
        ),
        (
            "tel:7042;phone-context=example.com",
            "7042",
            {"phone-context": "example.com"},
            False,
            "7042",
        ),
        (
            "tel:863-1234;phone-context=+1-914-555",
            "863-1234",
            {"phone-context": "+1-914-555"},
            False,
            "8631234",
        ),
        ("tel:+1-201-555-0123;ext=1234", "+1-201-555-0123", {"ext": "1234"}, True, "+12015550123"),
        ("tel:+1-201-555-0123;isub=%41b", "+1-201-555-0123", {"isub": "Ab"}, True, "+12015550123"),
        (
            "tel:*21%23;phone-context=example.com",
            "*21#",
            {"phone-context": "example.com"},
            False,
            "*21#",
        ),
        ("TEL:+1234", "+1234", {}, True, "+1234"),
        ("tel:ABC;phone-context=+1", "ABC", {"phone-context": "+1"}, False, "abc"),
    ],
)
def test_parse_tel(
    text: str, number: str, params: dict[str, str | None], is_global: bool, digits: str
) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, TelURI)
    assert (uri.number, uri.params, uri.is_global, uri.digits) == (
        number,
        params,
        is_global,
        digits,
    )
    again = parse_uri(str(uri))
    assert isinstance(again, TelURI)
    assert (again.number, again.params) == (number, params)


@pytest.mark.parametrize(
    "text",
    [
        "tel:",
        "tel:+",
        "tel:+-.()",
        "tel:7042",  # local number without phone-context
        "tel:7042;phone-context=",
        "tel:7042;phone-context=+",
        "tel:7042;phone-context=[::1]",
        "tel:7042;phone-context=bad_domain",
        "tel:+1234;phone-context=example.com",  # a global number has no context
        "tel:+12x4",
        "tel:12 34;phone-context=+1",
        "tel:+1234;",
        "tel:+1234;a_b=c",
        "tel:+1234;a=",
        "tel:-;phone-context=+1",
    ],
)
def test_parse_tel_rejects(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("tel:+1-212-555-0101", "tel:+12125550101", True),
        ("tel:+1-212-555-0101", "tel:+1.212.555.0101", True),
        ("tel:+1-212-555-0101", "tel:+1-212-555-0102", False),
        ("tel:7042;phone-context=EXAMPLE.com", "tel:7042;phone-context=example.com", True),
        ("tel:863-1234;phone-context=+1-914-555", "tel:8631234;phone-context=+1914555", True),
        ("tel:+1234;a=1;b=2", "tel:+1234;B=2;a=1", True),
        ("tel:+1234;a=1", "tel:+1234", False),  # parameters must be in both
        ("tel:+1234;a=x", "tel:+1234;a=X", True),
        ("tel:7042;phone-context=+1", "tel:+17042", False),  # local vs global
        ("tel:abc;phone-context=+1", "tel:ABC;phone-context=+1", True),
    ],
)
def test_tel_comparison(a: str, b: str, equal: bool) -> None:
    assert (parse_uri(a) == parse_uri(b)) is equal


# ---------------------------------------------------------------- other schemes


@pytest.mark.parametrize(
    "text",
    [
        "http://www.example.com/alice/photo.jpg",
        "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        "urn:service:sos",
        "mailto:alice@atlanta.com?subject=hi",
        "isbn:2983792873",  # RFC 4475 §3.1.1.? unksm2
        "nobodyKnowsThisScheme:totallyopaquecontent",  # RFC 4475 unksm
        "soap.beep://192.0.2.103:3002",  # RFC 4475 novelsc
        "sipsec:bob@example.com",  # never on the wire, but must not break a parser
        "cid:part1@example.com",
    ],
)
def test_absolute_uris_round_trip_verbatim(text: str) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, AbsoluteURI)
    assert str(uri) == text
    assert parse_uri(text) == uri


@pytest.mark.parametrize("text", ["http:", "http:a b", "urn:<x>", 'urn:"x"', "1urn:x", "u_rn:x"])
def test_absolute_uri_rejects(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)


# ---------------------------------------------------------------- sipsec (draft §6.2)


@pytest.mark.parametrize(
    ("text", "scheme", "expected"),
    [
        ("sipsec:bob@example.com", "sips", "sips:bob@example.com"),
        ("sipsec:bob@example.com", "sip", "sip:bob@example.com"),
        ("SIPSEC:vkg@example.com", "sips", "sips:vkg@example.com"),
        (
            "sipsec:bob@example.com:5071;transport=tcp?subject=x%20y",
            "sips",
            "sips:bob@example.com:5071;transport=tcp?subject=x%20y",
        ),
        ("sipsec:bob%40home@[2001:db8::1]", "sip", "sip:bob%40home@[2001:db8::1]"),
    ],
)
def test_parse_sipsec_uri(text: str, scheme: str, expected: str) -> None:
    uri = parse_sipsec_uri(text, scheme=scheme)
    assert uri.scheme == scheme
    assert str(uri) == expected
    assert "sipsec" not in str(uri)


def test_parse_sipsec_uri_defaults_to_sips() -> None:
    uri = parse_sipsec_uri("sipsec:bob@example.com")
    assert uri.scheme == "sips"
    assert (uri.user, uri.host) == ("bob", "example.com")


@pytest.mark.parametrize(
    "text",
    [
        "sipsec:",
        "sipsec:@example.com",
        "sipsec:bob@",
        "mailto:bob@example.com",
        "tel:+1234",
        "sipsec:bob@exa mple.com",
    ],
)
def test_parse_sipsec_uri_rejects(text: str) -> None:
    with pytest.raises(ParseError):
        parse_sipsec_uri(text)


def test_sipsec_request_uri_keeps_everything_but_the_scheme() -> None:
    target = sip("sips:bob:pw@example.com:5071;transport=tcp;lr?subject=x")
    request_uri = sipsec_request_uri(target, scheme="sip")
    assert str(request_uri) == "sip:bob:pw@example.com:5071;transport=tcp;lr?subject=x"
    assert str(target) == "sips:bob:pw@example.com:5071;transport=tcp;lr?subject=x"
    assert sipsec_request_uri(request_uri).scheme == "sips"


@pytest.mark.parametrize("scheme", ["sipsec", "tel", "SIPS", ""])
def test_sipsec_request_uri_refuses_other_schemes(scheme: str) -> None:
    with pytest.raises(LocalProtocolError):
        sipsec_request_uri(sip("sips:bob@example.com"), scheme=scheme)


# ---------------------------------------------------------------- hosts


@pytest.mark.parametrize(
    "host",
    [
        "a",
        "A1",
        "example.com",
        "example.com.",
        "x-1.y--2.Z",
        "1.2.3.4",
        "[::1]",
        "255.255.255.255",
        "[2001:db8::192.0.2.1]",
        "a.b.c.d.e.f.g.example",
    ],
)
def test_validate_host_accepts(host: str) -> None:
    assert validate_host(host) == host


@pytest.mark.parametrize(
    "host",
    [
        "",
        ".",
        "-a",
        "a-",
        "a..b",
        "1.2.3.256",
        "1a.2b.3.4",
        "a b",
        "[::1",
        "::1",
        "[x::1]",
        "a_b",
        "é.com",
        "com.1",
    ],
)
def test_validate_host_rejects(host: str) -> None:
    with pytest.raises(ParseError):
        validate_host(host)


# ---------------------------------------------------------------- properties and robustness

_HOSTS = st.sampled_from(
    ["example.com", "a.b-c.example.", "192.0.2.4", "[2001:db8::1]", "[::ffff:192.0.2.1]", "h"]
)
_TEXT = st.text(min_size=1, max_size=12)
_PNAMES = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.!~*'()[]/:&+$%;=?@ é", min_size=1, max_size=8
)


@given(
    scheme=st.sampled_from(["sip", "sips"]),
    user=st.none() | _TEXT,
    password=st.none() | st.text(max_size=8),
    host=_HOSTS,
    port=st.none() | st.integers(0, 65535),
    params=st.dictionaries(_PNAMES.map(str.lower), st.none() | _TEXT, max_size=4),
    headers=st.dictionaries(_PNAMES, st.text(max_size=8), max_size=3),
)
def test_sip_uri_round_trip(
    scheme: str,
    user: str | None,
    password: str | None,
    host: str,
    port: int | None,
    params: dict[str, str | None],
    headers: dict[str, str],
) -> None:
    if user is None:
        password = None
    uri = SipURI(scheme, user, password, host, port, params, headers)
    text = str(uri)
    again = sip(text)
    assert (again.scheme, again.user, again.password, again.host, again.port) == (
        scheme,
        user,
        password,
        host,
        port,
    )
    assert (again.params, again.headers) == (params, headers)
    assert str(again) == text
    assert again == uri


@given(st.text(max_size=80))
def test_parse_uri_raises_only_parse_error(text: str) -> None:
    for candidate in (text, "sip:" + text, "tel:" + text, "sipsec:" + text):
        with contextlib.suppress(ParseError):
            parse_uri(candidate)


@pytest.mark.parametrize(
    "evil",
    [
        "sip:" + "a" * 100_000,
        "sip:" + "a" * 100_000 + "!",
        "sip:" + "a-" * 50_000 + ".",
        "sip:" + "a." * 50_000 + "1",
        "sip:" + "a;" * 50_000 + "@",
        "sip:h" + ";a" * 50_000 + ";",
        "sip:h?" + "a=b&" * 25_000,
        "sip:[" + "1:" * 50_000 + "]",
        "tel:+" + "1-" * 50_000 + "x",
        "x" * 100_000 + ":y",
    ],
)
def test_linear_time_on_hostile_input(evil: str) -> None:
    start = time.perf_counter()
    with contextlib.suppress(ParseError):
        parse_uri(evil)
    assert time.perf_counter() - start < 1.0


# The one-regex fast paths (host, SIP URI) must accept exactly what the careful path accepts
# and give the same result: compare them on generated near-hosts and near-URIs.
_host_texts = st.one_of(
    st.text(alphabet="ab1Z09-.", min_size=1, max_size=16),
    st.lists(st.sampled_from(["0", "01", "9", "99", "199", "200", "255", "256", "300", "a"]))
    .filter(lambda parts: len(parts) in (3, 4, 5))
    .map(".".join),
)


@given(_host_texts)
def test_host_fast_path_agrees_with_the_careful_check(host: str) -> None:
    from softphone.sip.uri import _HOST_FAST_RE, _check_host

    try:
        _check_host(host)
        valid = True
    except ParseError:
        valid = False
    assert (_HOST_FAST_RE.fullmatch(host) is not None) == valid


@given(
    st.one_of(st.none(), st.text(alphabet="aB1-_.!~*'()&=+$,%:", min_size=1, max_size=8)),
    _host_texts,
    st.one_of(st.none(), st.text(alphabet="0123456789", min_size=1, max_size=6)),
    st.text(alphabet="aB1=;-[]/:&+$%", max_size=12),
)
def test_sip_uri_fast_path_agrees_with_the_careful_path(
    user: str | None, host: str, port: str | None, params: str
) -> None:
    from softphone.sip.uri import _parse_sip, _parse_sip_careful

    rest = (f"{user}@" if user is not None else "") + host
    rest += f":{port}" if port is not None else ""
    rest += f";{params}" if params else ""
    outcomes = []
    for parse in (_parse_sip, _parse_sip_careful):
        try:
            uri = parse("sip", rest)
            outcomes.append(
                (uri.user, uri.password, uri.host, uri.port, list(uri.params.items()), uri.headers)
            )
        except ParseError:
            outcomes.append(None)
    assert outcomes[0] == outcomes[1]


def test_validate_host_keeps_no_memo() -> None:
    import softphone.sip.uri as uri_module

    assert not hasattr(uri_module, "_VALID_HOSTS")  # no parse results kept across calls
