"""multipart/* bodies (RFC 2046 §5.1, RFC 1847, RFC 5621)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from softphone.sip.errors import LocalProtocolError, ParseError
from softphone.sip.message import Headers
from softphone.sip.multipart import BodyPart, build_multipart, parse_content_type, parse_multipart

SIGNED_CT = (
    'multipart/signed;protocol="application/pkcs7-signature";micalg=sha-256;boundary=boundary42'
)
SIGNED_ENTITY = b"Content-Type: application/sdp\r\n\r\nv=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
SIGNATURE = bytes(range(256)) * 2
SIGNED_BODY = (
    b"This is the preamble, ignored.\r\n"
    b"--boundary42\r\n" + SIGNED_ENTITY + b"\r\n"
    b"--boundary42  \r\n"  # transport padding after the delimiter
    b"Content-Type: application/pkcs7-signature; name=smime.p7s\r\n"
    b"Content-Transfer-Encoding: binary\r\n"
    b"Content-Disposition: attachment; handling=required; filename=smime.p7s\r\n"
    b"\r\n" + SIGNATURE + b"\r\n"
    b"--boundary42--\r\n"
    b"epilogue, ignored\r\n"
)


def test_multipart_signed_keeps_exact_bytes() -> None:
    content, signature = parse_multipart(SIGNED_BODY, SIGNED_CT)
    assert content.raw == SIGNED_ENTITY  # what the signature covers, byte for byte
    assert content.content_type == "application/sdp"
    assert content.body == b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    assert signature.content_type == "application/pkcs7-signature"
    assert signature.body == SIGNATURE
    assert signature.headers.get("Content-Transfer-Encoding") == "binary"


def test_parse_content_type() -> None:
    media, params = parse_content_type(SIGNED_CT)
    assert media == "multipart/signed"
    assert params == {
        "protocol": "application/pkcs7-signature",
        "micalg": "sha-256",
        "boundary": "boundary42",
    }


def test_part_without_headers_defaults_to_text_plain() -> None:
    body = b"--b\r\n\r\nhello\r\n--b--"
    (part,) = parse_multipart(body, "multipart/mixed;boundary=b")
    assert (part.content_type, part.body, len(part.headers)) == ("text/plain", b"hello", 0)


def test_bare_lf_line_ends() -> None:
    body = b"--b\nContent-Type: text/plain\n\none\n--b\n\ntwo\n--b--\n"
    parts = parse_multipart(body, 'multipart/alternative; boundary="b"')
    assert [p.body for p in parts] == [b"one", b"two"]


def test_boundary_text_inside_a_line_is_content() -> None:
    body = b"--b\r\n\r\nx --b y\r\n--bc\r\n--b--\r\n"
    (part,) = parse_multipart(body, "multipart/mixed;boundary=b")
    assert part.body == b"x --b y\r\n--bc"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"--b\r\n\r\nx\r\n--b--", "application/sdp"),  # not multipart
        (b"--b\r\n\r\nx\r\n--b--", "multipart/mixed"),  # no boundary
        (b"--b\r\n\r\nx\r\n", "multipart/mixed;boundary=b"),  # no close delimiter
        (b"no delimiter at all", "multipart/mixed;boundary=b"),
        (b"--b--\r\n", "multipart/mixed;boundary=b"),  # no part
        (b"--b\r\n\xff: x\r\n\r\nx\r\n--b--", "multipart/mixed;boundary=b"),  # bad UTF-8
        (b"--b\r\nno colon\r\n\r\nx\r\n--b--", "multipart/mixed;boundary=b"),
        (b"--b\r\n\r\nx\r\n--b--", "multipart/mixed;boundary=" + "x" * 71),  # too long
    ],
)
def test_malformed_multipart(body: bytes, content_type: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_multipart(body, content_type)
    assert info.value.status_code == 400


def test_build_then_parse_round_trip() -> None:
    parts = [
        BodyPart(Headers([("Content-Type", "application/sdp")]), b"v=0\r\n"),
        BodyPart(Headers([("Content-Type", "application/octet-stream")]), b"\x00--x\r\n\xff"),
    ]
    content_type, body = build_multipart(parts, "mixed")
    assert content_type.startswith("multipart/mixed;boundary=")
    parsed = parse_multipart(body, content_type)
    assert [p.body for p in parsed] == [b"v=0\r\n", b"\x00--x\r\n\xff"]
    assert [p.content_type for p in parsed] == ["application/sdp", "application/octet-stream"]


def test_build_is_deterministic_and_keeps_parsed_parts_byte_exact() -> None:
    parts = parse_multipart(SIGNED_BODY, SIGNED_CT)
    ct1, body1 = build_multipart(parts, "signed", params={"protocol": "application/x"})
    ct2, body2 = build_multipart(parts, "signed", params={"protocol": "application/x"})
    assert (ct1, body1) == (ct2, body2)
    again = parse_multipart(body1, ct1)
    assert [p.raw for p in again] == [p.raw for p in parts]


def test_build_avoids_a_boundary_that_occurs_in_a_part() -> None:
    part = BodyPart(Headers(), b"--boundary42\r\n")
    with pytest.raises(LocalProtocolError):
        build_multipart([part], boundary="boundary42")
    with pytest.raises(LocalProtocolError):
        build_multipart([])


@given(st.lists(st.binary(max_size=200), min_size=1, max_size=5))
def test_any_binary_parts_round_trip(bodies: list[bytes]) -> None:
    parts = [BodyPart(Headers([("Content-Type", "application/octet-stream")]), b) for b in bodies]
    content_type, body = build_multipart(parts)
    assert [p.body for p in parse_multipart(body, content_type)] == bodies


@given(st.binary(max_size=300))
def test_parse_multipart_raises_only_parse_error(body: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse_multipart(b"--b\r\n" + body, "multipart/mixed;boundary=b")
