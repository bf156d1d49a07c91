"""Typed header values: RFC 3261 §20 examples, RFC 4475 torture cases, RFC 5118 IPv6 Vias."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from softphone.sip.errors import LocalProtocolError, ParseError
from softphone.sip.grammar import split_header_values
from softphone.sip.headers import (
    MAGIC_COOKIE,
    CSeq,
    NameAddr,
    Via,
    parse_cseq,
    parse_int_header,
    parse_name_addr,
    parse_option_tags,
    parse_retry_after,
    parse_via,
)
from softphone.sip.uri import AbsoluteURI, SipURI, TelURI, parse_uri

# ---------------------------------------------------------------- name-addr


@pytest.mark.parametrize(
    ("value", "display", "uri", "params"),
    [
        # RFC 3261 §20 examples
        (
            '"A. G. Bell" <sip:agb@bell-telephone.com> ;tag=a48s',
            "A. G. Bell",
            "sip:agb@bell-telephone.com",
            {"tag": "a48s"},
        ),
        (
            "Anonymous <sip:c8oqz84zk7z@privacy.org>;tag=hyh8",
            "Anonymous",
            "sip:c8oqz84zk7z@privacy.org",
            {"tag": "hyh8"},
        ),
        (
            "sip:+12125551212@server.phone2net.com;tag=887s",
            None,
            "sip:+12125551212@server.phone2net.com",
            {"tag": "887s"},
        ),
        (
            "The Operator <sip:operator@cs.columbia.edu>;tag=287447",
            "The Operator",
            "sip:operator@cs.columbia.edu",
            {"tag": "287447"},
        ),
        (
            '"Mr. Watson" <sip:watson@worcester.bell-telephone.com>;q=0.7; expires=3600',
            "Mr. Watson",
            "sip:watson@worcester.bell-telephone.com",
            {"q": "0.7", "expires": "3600"},
        ),
        (
            '"Mr. Watson" <mailto:watson@bell-telephone.com> ;q=0.1',
            "Mr. Watson",
            "mailto:watson@bell-telephone.com",
            {"q": "0.1"},
        ),
        ("<sip:alice@atlanta.com>", None, "sip:alice@atlanta.com", {}),
        ("<sip:server10.biloxi.com;lr>", None, "sip:server10.biloxi.com;lr", {}),
        ("sip:alice@atlanta.com", None, "sip:alice@atlanta.com", {}),
        # §20.10: in the addr-spec form every ';' parameter belongs to the header
        ("sip:a@b;tag=x", None, "sip:a@b", {"tag": "x"}),
        ("sip:a@b;transport=tcp;lr", None, "sip:a@b", {"transport": "tcp", "lr": None}),
        ("<sip:a@b;transport=tcp>;lr", None, "sip:a@b;transport=tcp", {"lr": None}),
        ("tel:+1-212-555-0101;tag=9", None, "tel:+1-212-555-0101", {"tag": "9"}),
        # RFC 4475 §3.1.1.6 lwsdisp: no space between display-name and '<'
        (
            "caller<sip:caller@example.com>;tag=323",
            "caller",
            "sip:caller@example.com",
            {"tag": "323"},
        ),
        # RFC 4475 §3.1.1.1 wsinv
        (
            "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
            None,
            "sip:vivekg@chair-dnrc.example.com",
            {"tag": "1918181833n"},
        ),
        (
            '"J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\t;\ttag = 98asjd8',
            'J Rosenberg \\"',
            "sip:jdrosen@example.com",
            {"tag": "98asjd8"},
        ),
        (
            '"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam = newvalue ; '
            "secondparam ; q = 0.33",
            'Quoted string ""',
            "sip:jdrosen@example.com",
            {"newparam": "newvalue", "secondparam": None, "q": "0.33"},
        ),
        # RFC 4475 §3.1.1.3 esc01
        (
            "<sip:I%20have%20spaces@example.net>;tag=938",
            None,
            "sip:I%20have%20spaces@example.net",
            {"tag": "938"},
        ),
        (
            "<sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>",
            None,
            "sip:caller@host5.example.net;lr;name=value%2541",
            {},
        ),
        # RFC 4475 regescrt / cparam01 / cparam02
        (
            "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>",
            None,
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            {},
        ),
        (
            "sip:+19725552222@gw1.example.net;unknownparam",
            None,
            "sip:+19725552222@gw1.example.net",
            {"unknownparam": None},
        ),
        (
            "<sip:+19725552222@gw1.example.net;unknownparam>",
            None,
            "sip:+19725552222@gw1.example.net;unknownparam",
            {},
        ),
        # RFC 4475 §3.1.1.? unksm2 / longreq-style display names
        ("<isbn:2983792873>", None, "isbn:2983792873", {}),
        (
            '"I have a user name of extreme proportion" <sip:a@b>',
            "I have a user name of extreme proportion",
            "sip:a@b",
            {},
        ),
        # display-name details
        ('"" <sip:a@b>', "", "sip:a@b", {}),
        ('"Zoë Ünïcode 日本" <sip:z@b>', "Zoë Ünïcode 日本", "sip:z@b", {}),
        ("Zoë  Ünïcode\t<sip:z@b>", "Zoë Ünïcode", "sip:z@b", {}),
        ("Bob   Smith <sip:b@c>", "Bob Smith", "sip:b@c", {}),
        ('"a<b>,c;d" <sip:a@b>', "a<b>,c;d", "sip:a@b", {}),
        ('"back\\\\slash" <sip:a@b>', "back\\slash", "sip:a@b", {}),
        ('  "x"<sip:a@b>  ', "x", "sip:a@b", {}),
        (
            '<sip:a@b>;+sip.instance="<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>";reg-id=1',
            None,
            "sip:a@b",
            {"+sip.instance": "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>", "reg-id": "1"},
        ),
        (
            "<sips:[2001:db8::10]:5061>;expires=0",
            None,
            "sips:[2001:db8::10]:5061",
            {"expires": "0"},
        ),
        ("<sip:a@b>;TAG=X", None, "sip:a@b", {"tag": "X"}),
    ],
)
def test_parse_name_addr(
    value: str, display: str | None, uri: str, params: dict[str, str | None]
) -> None:
    na = parse_name_addr(value)
    assert na.display_name == display
    assert str(na.uri) == uri
    assert na.params == params
    again = parse_name_addr(str(na))  # serialise -> parse is stable
    assert (again.display_name, str(again.uri), again.params) == (display, uri, params)
    assert str(again) == str(na)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "Bell, Alexander <sip:a.g.bell@bell-tel.com>;tag=43",  # RFC 4475 §3.1.2.15 baddn
        '"Mr. J. User <sip:j.user@example.com>',  # RFC 4475 quotbal: unterminated quote
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # RFC 4475 regbadct
        "sip:caller@example.net;;tag=134161461246",  # RFC 4475 badinv01
        "sip:a@b,sip:c@d",  # a comma needs <...>
        "<sip:a@b",
        "<sip:a@b>>",
        "<sip:a@b> junk",
        "<sip:a@b>;tag",  # fine alone... see below
        "<>",
        "< sip:a@b>",
        "<sip:a @b>",
        '"x" sip:a@b',
        "Bob sip:bob@b",
        "Bob@home <sip:b@c>",
        'Bob "Smith" <sip:b@c>',
        "Bob; <sip:b@c>",
        "<sip:a@b>;tag=x y",
        "<sip:a@b>;tag=",
        "<sip:a@b>;",
        "*",  # Contact: * is the message layer's special case, not a name-addr
        "<sip:a@b>\r\n;tag=x",
    ],
)
def test_parse_name_addr_rejects(value: str) -> None:
    if value == "<sip:a@b>;tag":
        # A flag parameter is legal (generic-param = token [ EQUAL gen-value ]).
        assert parse_name_addr(value).params == {"tag": None}
        return
    with pytest.raises(ParseError):
        parse_name_addr(value)


@pytest.mark.parametrize(
    ("na", "text"),
    [
        (NameAddr(parse_uri("sip:a@b")), "<sip:a@b>"),
        (NameAddr(parse_uri("sip:a@b"), "Alice"), "Alice <sip:a@b>"),
        (NameAddr(parse_uri("sip:a@b"), "Alice Smith"), "Alice Smith <sip:a@b>"),
        (NameAddr(parse_uri("sip:a@b"), "A. G. Bell"), "A. G. Bell <sip:a@b>"),
        (NameAddr(parse_uri("sip:a@b"), "Bell, Alexander"), '"Bell, Alexander" <sip:a@b>'),
        (NameAddr(parse_uri("sip:a@b"), 'say "hi"'), '"say \\"hi\\"" <sip:a@b>'),
        (NameAddr(parse_uri("sip:a@b"), "Zoë"), '"Zoë" <sip:a@b>'),
        (NameAddr(parse_uri("sip:a@b"), ""), '"" <sip:a@b>'),
        (NameAddr(parse_uri("sip:a@b"), " lead"), '" lead" <sip:a@b>'),
        (NameAddr(parse_uri("sip:a@b;lr"), None, {"tag": "x"}), "<sip:a@b;lr>;tag=x"),
        (NameAddr(parse_uri("sip:a,b@c?x=1"), None, {"q": "0.5"}), "<sip:a,b@c?x=1>;q=0.5"),
    ],
)
def test_name_addr_str(na: NameAddr, text: str) -> None:
    assert str(na) == text


def test_name_addr_str_refuses_header_injection() -> None:
    with pytest.raises(LocalProtocolError):
        str(NameAddr(parse_uri("sip:a@b"), "x\r\nVia: evil"))


def test_name_addr_tag_and_copy() -> None:
    na = parse_name_addr("Bob <sip:bob@biloxi.com>")
    assert na.tag is None
    tagged = na.copy(params={"tag": "a6c85cf"})
    assert tagged.tag == "a6c85cf"
    assert na.tag is None
    other = na.copy()
    other.params["tag"] = "x"
    assert na.params == {}


def test_name_addr_uri_types() -> None:
    assert isinstance(parse_name_addr("<sip:a@b>").uri, SipURI)
    assert isinstance(parse_name_addr("<tel:+1234>").uri, TelURI)
    assert isinstance(parse_name_addr("<urn:service:sos>").uri, AbsoluteURI)


def test_contact_list_splits_then_parses() -> None:
    value = (
        '"Mr. Watson" <sip:watson@worcester.bell-telephone.com>;q=0.7; expires=3600, '
        '"Mr. Watson" <mailto:watson@bell-telephone.com> ;q=0.1'
    )
    contacts = [parse_name_addr(item) for item in split_header_values(value)]
    assert [c.params["q"] for c in contacts] == ["0.7", "0.1"]


# ---------------------------------------------------------------- Via


@pytest.mark.parametrize(
    ("value", "transport", "host", "port", "params", "text"),
    [
        (
            "SIP/2.0/UDP erlang.bell-telephone.com:5060;branch=z9hG4bK87asdks7",
            "UDP",
            "erlang.bell-telephone.com",
            5060,
            {"branch": "z9hG4bK87asdks7"},
            "SIP/2.0/UDP erlang.bell-telephone.com:5060;branch=z9hG4bK87asdks7",
        ),
        (
            "SIP/2.0/UDP 192.0.2.1:5060 ;received=192.0.2.207;branch=z9hG4bK77asjd",
            "UDP",
            "192.0.2.1",
            5060,
            {"received": "192.0.2.207", "branch": "z9hG4bK77asjd"},
            "SIP/2.0/UDP 192.0.2.1:5060;received=192.0.2.207;branch=z9hG4bK77asjd",
        ),
        (
            "SIP / 2.0 / UDP first.example.com: 4000;ttl=16;maddr=224.2.0.1 "
            ";branch=z9hG4bKa7c6a8dlze.1",
            "UDP",
            "first.example.com",
            4000,
            {"ttl": "16", "maddr": "224.2.0.1", "branch": "z9hG4bKa7c6a8dlze.1"},
            "SIP/2.0/UDP first.example.com:4000;ttl=16;maddr=224.2.0.1;branch=z9hG4bKa7c6a8dlze.1",
        ),
        (
            "SIP/2.0/tls client.atlanta.example.com:5061;branch=z9hG4bK74bf9;rport",
            "TLS",
            "client.atlanta.example.com",
            5061,
            {"branch": "z9hG4bK74bf9", "rport": None},
            "SIP/2.0/TLS client.atlanta.example.com:5061;branch=z9hG4bK74bf9;rport",
        ),
        (
            "SIP/2.0/UDP 10.0.0.1:5060;rport=5061;received=192.0.2.1;branch=z9hG4bKx",
            "UDP",
            "10.0.0.1",
            5060,
            {"rport": "5061", "received": "192.0.2.1", "branch": "z9hG4bKx"},
            "SIP/2.0/UDP 10.0.0.1:5060;rport=5061;received=192.0.2.1;branch=z9hG4bKx",
        ),
        # RFC 4475 §3.1.1.1 wsinv (after unfolding)
        (
            "SIP  /   2.0  /UDP    192.0.2.2;rport;branch=390skdjuw",
            "UDP",
            "192.0.2.2",
            None,
            {"rport": None, "branch": "390skdjuw"},
            "SIP/2.0/UDP 192.0.2.2;rport;branch=390skdjuw",
        ),
        (
            "SIP/2.0/TCP spindle.example.com   ;  branch  =   z9hG4bK9ikj8",
            "TCP",
            "spindle.example.com",
            None,
            {"branch": "z9hG4bK9ikj8"},
            "SIP/2.0/TCP spindle.example.com;branch=z9hG4bK9ikj8",
        ),
        # RFC 4475 §3.1.1.10 transports
        (
            "SIP/2.0/SCTP t3.example.com;branch=z9hG4bKkdjuw2",
            "SCTP",
            "t3.example.com",
            None,
            {"branch": "z9hG4bKkdjuw2"},
            "SIP/2.0/SCTP t3.example.com;branch=z9hG4bKkdjuw2",
        ),
        (
            "SIP/2.0/UNKNOWN t5.example.com;branch=z9hG4bKkdjuw5",
            "UNKNOWN",
            "t5.example.com",
            None,
            {"branch": "z9hG4bKkdjuw5"},
            "SIP/2.0/UNKNOWN t5.example.com;branch=z9hG4bKkdjuw5",
        ),
        (
            "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK56sdasks",
            "WSS",
            "df7jal23ls0d.invalid",
            None,
            {"branch": "z9hG4bK56sdasks"},
            "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK56sdasks",
        ),
        # RFC 5118 §4.5: received with and without brackets
        (
            "SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3-111",
            "UDP",
            "[2001:db8::9:1]",
            None,
            {"received": "[2001:db8::9:255]", "branch": "z9hG4bKas3-111"},
            "SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3-111",
        ),
        (
            "SIP/2.0/UDP [2001:db8::9:1]:6050;received=2001:db8::9:255;branch=z9hG4bKas3",
            "UDP",
            "[2001:db8::9:1]",
            6050,
            {"received": "2001:db8::9:255", "branch": "z9hG4bKas3"},
            "SIP/2.0/UDP [2001:db8::9:1]:6050;received=2001:db8::9:255;branch=z9hG4bKas3",
        ),
        (
            "SIP/2.0/TCP [::ffff:192.0.2.1] : 5060",
            "TCP",
            "[::ffff:192.0.2.1]",
            5060,
            {},
            "SIP/2.0/TCP [::ffff:192.0.2.1]:5060",
        ),
        ("  SIP/2.0/UDP h ", "UDP", "h", None, {}, "SIP/2.0/UDP h"),
        ('SIP/2.0/UDP h;ext="a b"', "UDP", "h", None, {"ext": "a b"}, 'SIP/2.0/UDP h;ext="a b"'),
        (
            "SIP/2.0/UDP h;branch=z9hG4bK1;x=1;X=2",
            "UDP",
            "h",
            None,
            {"branch": "z9hG4bK1", "x": "1"},
            "SIP/2.0/UDP h;branch=z9hG4bK1;x=1",
        ),
    ],
)
def test_parse_via(
    value: str,
    transport: str,
    host: str,
    port: int | None,
    params: dict[str, str | None],
    text: str,
) -> None:
    via = parse_via(value)
    assert (via.protocol, via.transport, via.host, via.port) == ("SIP/2.0", transport, host, port)
    assert via.params == params
    assert via.sent_by == (host, port)
    assert via.branch == params.get("branch")
    assert str(via) == text
    assert str(parse_via(text)) == text


@pytest.mark.parametrize(
    "value",
    [
        "",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP ",
        "SIP/2.0 UDP host",
        "SIP/2.0/UDPhost",  # LWS between sent-protocol and sent-by is required
        "SIP/2.0//UDP host",
        "SIP/2.0/UDP host:",
        "SIP/2.0/UDP host:65536",
        "SIP/2.0/UDP host:99999999999",
        "SIP/2.0/UDP host:-1",
        "SIP/2.0/UDP ho st",
        "SIP/2.0/UDP ho_st",
        "SIP/2.0/UDP -host",
        "SIP/2.0/UDP 192.0.2.300",
        "SIP/2.0/UDP 2001:db8::1",  # IPv6 sent-by needs brackets
        "SIP/2.0/UDP [2001:db8::1",
        "SIP/2.0/UDP [2001:db8:::1]",
        "SIP/2.0/UDP 192.0.2.15;;,;,,",  # RFC 4475 §3.1.2.1 badinv01
        "SIP/2.0/UDP h;branch",
        "SIP/2.0/UDP h;branch=",
        "SIP/2.0/UDP h;ttl=256",
        "SIP/2.0/UDP h;ttl=x",
        "SIP/2.0/UDP h;ttl",
        "SIP/2.0/UDP h;received=example.com",
        "SIP/2.0/UDP h;received=1.2.3.256",
        "SIP/2.0/UDP h;received",
        "SIP/2.0/UDP h;rport=65536",
        "SIP/2.0/UDP h;rport=x",
        "SIP/2.0/UDP h;maddr=bad_host",
        "SIP/2.0/UDP h;branch=z9hG4bK1 junk",
        "SIP/2.0/UDP h, SIP/2.0/UDP g",  # the message splits the list, not parse_via
        "SIP/2.0/UDP h\r\n;branch=z9hG4bK1",
    ],
)
def test_parse_via_rejects(value: str) -> None:
    with pytest.raises(ParseError):
        parse_via(value)


def test_via_properties_and_copy() -> None:
    via = parse_via("SIP/2.0/UDP 10.0.0.1;rport=5066;received=192.0.2.1;branch=z9hG4bKx")
    assert via.branch is not None and via.branch.startswith(MAGIC_COOKIE)
    assert (via.received, via.rport) == ("192.0.2.1", 5066)
    assert parse_via("SIP/2.0/UDP h;rport").rport is None
    assert parse_via("SIP/2.0/UDP h").branch is None
    changed = via.copy(port=5070)
    changed.params["received"] = "192.0.2.9"
    assert via.received == "192.0.2.1"
    assert str(changed) == "SIP/2.0/UDP 10.0.0.1:5070;rport=5066;received=192.0.2.9;branch=z9hG4bKx"


def test_via_built_by_hand() -> None:
    via = Via("TLS", "[2001:db8::1]", 5061, {"branch": MAGIC_COOKIE + "abc", "rport": None})
    assert str(via) == "SIP/2.0/TLS [2001:db8::1]:5061;branch=z9hG4bKabc;rport"


def test_magic_cookie() -> None:
    assert MAGIC_COOKIE == "z9hG4bK"


# ---------------------------------------------------------------- CSeq


@pytest.mark.parametrize(
    ("value", "seq", "method"),
    [
        ("4711 INVITE", 4711, "INVITE"),
        ("1 REGISTER", 1, "REGISTER"),
        ("0 OPTIONS", 0, "OPTIONS"),
        ("0009 INVITE", 9, "INVITE"),  # RFC 4475 wsinv (after unfolding)
        ("  42\t ACK ", 42, "ACK"),
        ("2147483647 BYE", 2**31 - 1, "BYE"),
        (
            "1 !interesting-Method0123456789_*+`.%indeed'~",
            1,
            "!interesting-Method0123456789_*+`.%indeed'~",
        ),
        ("7 invite", 7, "invite"),  # methods are case-sensitive: kept as written
    ],
)
def test_parse_cseq(value: str, seq: int, method: str) -> None:
    cseq = parse_cseq(value)
    assert cseq == CSeq(seq, method)
    assert str(cseq) == f"{seq} {method}"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "INVITE",
        "1",
        "1INVITE",
        "-1 INVITE",
        "+1 INVITE",
        "1.0 INVITE",
        "2147483648 INVITE",  # §8.1.1.5: less than 2**31
        "36893488147419103232 INVITE",  # RFC 4475 scalarlg
        "1 IN VITE",
        "1 INVITE;x",
        "1 INV@ITE",
        "\u0661 INVITE",  # ARABIC-INDIC DIGIT ONE: isdigit() but not 1*DIGIT
        "1" * 5000 + " INVITE",
    ],
)
def test_parse_cseq_rejects(value: str) -> None:
    with pytest.raises(ParseError):
        parse_cseq(value)


@pytest.mark.parametrize(
    ("seq", "method"), [(-1, "INVITE"), (2**31, "INVITE"), (1, ""), (1, "A B")]
)
def test_cseq_validates_when_built(seq: int, method: str) -> None:
    with pytest.raises(LocalProtocolError):
        CSeq(seq, method)


# ---------------------------------------------------------------- small helpers


@pytest.mark.parametrize(
    ("value", "maximum", "expected"),
    [
        ("0", 2**32 - 1, 0),
        ("3600", 2**32 - 1, 3600),
        (" 70 ", 255, 70),
        ("0068", 255, 68),  # RFC 4475 wsinv Max-Forwards
        ("4294967295", 2**32 - 1, 2**32 - 1),
        ("000000000000000000000001", 10, 1),
    ],
)
def test_parse_int_header(value: str, maximum: int, expected: int) -> None:
    assert parse_int_header(value, "Expires", maximum=maximum) == expected


@pytest.mark.parametrize(
    ("value", "maximum"),
    [
        ("", 10),
        (" ", 10),
        ("-999", 2**32),  # RFC 4475 ncl: negative Content-Length
        ("+1", 10),
        ("1.5", 10),
        ("0x10", 100),
        ("256", 255),  # Max-Forwards bound
        ("4294967296", 2**32 - 1),
        ("1" + "0" * 100, 2**32 - 1),  # RFC 4475 scalar02 huge Expires
        ("1 2", 10),
        ("²", 10),
        ("1\r\n", 10),
    ],
)
def test_parse_int_header_rejects(value: str, maximum: int) -> None:
    with pytest.raises(ParseError, match="Content-Length"):
        parse_int_header(value, "Content-Length", maximum=maximum)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ("100rel", ["100rel"]),
        (["100rel, Timer", "path", "timer"], ["100rel", "timer", "path"]),
        (["sipsec"], ["sipsec"]),
        ("", []),
        (" , ,", []),
        ([], []),
    ],
)
def test_parse_option_tags(values: str | list[str], expected: list[str]) -> None:
    assert parse_option_tags(values) == expected


@pytest.mark.parametrize("value", ["a b", "foo;bar", "x/y", '"q"', "é"])
def test_parse_option_tags_rejects(value: str) -> None:
    with pytest.raises(ParseError):
        parse_option_tags([value])


@pytest.mark.parametrize(
    ("value", "seconds", "comment", "params", "duration"),
    [
        ("18000;duration=3600", 18000, None, {"duration": "3600"}, 3600),
        ("120 (I'm in a meeting)", 120, "I'm in a meeting", {}, None),
        (
            "120 (nested (comment) \\) here) ;duration=60;x",
            120,
            "nested (comment) \\) here",
            {"duration": "60", "x": None},
            60,
        ),
        ("0", 0, None, {}, None),
    ],
)
def test_parse_retry_after(
    value: str,
    seconds: int,
    comment: str | None,
    params: dict[str, str | None],
    duration: int | None,
) -> None:
    retry = parse_retry_after(value)
    assert (retry.seconds, retry.comment, retry.params, retry.duration) == (
        seconds,
        comment,
        params,
        duration,
    )


@pytest.mark.parametrize(
    "value",
    [
        "",
        "soon",
        "-1",
        "120 (unterminated",
        "120 (a))",
        "1;duration=x",
        "1;duration",
        "99999999999",
        "1 x",
    ],
)
def test_parse_retry_after_rejects(value: str) -> None:
    with pytest.raises(ParseError):
        parse_retry_after(value)


# ---------------------------------------------------------------- properties and robustness

_DISPLAY = st.none() | st.text(max_size=20).filter(lambda s: "\r" not in s and "\n" not in s)


@given(
    _DISPLAY,
    st.sampled_from(["sip:a@b", "sips:x@[::1]:5061;lr?h=v", "tel:+1-2", "urn:x:y"]),
    st.dictionaries(
        st.sampled_from(["tag", "q", "expires", "x-y"]),
        st.none() | st.text(max_size=8).filter(lambda s: "\r" not in s and "\n" not in s),
        max_size=3,
    ),
)
def test_name_addr_round_trip(display: str | None, uri: str, params: dict[str, str | None]) -> None:
    na = NameAddr(parse_uri(uri), display, params)
    again = parse_name_addr(str(na))
    assert again.display_name == display
    assert str(again.uri) == str(na.uri)
    assert again.params == params


@given(st.text(max_size=80))
def test_only_parse_error_escapes(text: str) -> None:
    for function in (parse_name_addr, parse_via, parse_cseq, parse_retry_after):
        with contextlib.suppress(ParseError):
            function(text)
    for prefixed in ("SIP/2.0/UDP " + text, "<sip:a@b>" + text, '"' + text):
        for function in (parse_via, parse_name_addr):
            with contextlib.suppress(ParseError):
                function(prefixed)


@pytest.mark.parametrize(
    ("function", "evil"),
    [
        (parse_name_addr, '"' + "\\a" * 50_000),
        (parse_name_addr, "a " * 50_000 + "<"),
        (parse_name_addr, "a " * 50_000 + "x"),
        (parse_name_addr, "<sip:a@b>" + ";a" * 50_000 + " x"),
        (parse_via, "SIP/2.0/UDP " + "a." * 50_000 + "-"),
        (parse_via, "SIP" + " " * 100_000 + "x"),
        (parse_cseq, "1" * 100_000),
        (parse_retry_after, "1 " + "(" * 100_000),
    ],
)
def test_linear_time_on_hostile_input(function: Callable[[str], object], evil: str) -> None:
    start = time.perf_counter()
    with contextlib.suppress(ParseError):
        function(evil)
    assert time.perf_counter() - start < 1.0
