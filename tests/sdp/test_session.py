"""RFC 8866 parse/serialise: real offers, round trips, and a table of malformed input."""

from __future__ import annotations

import contextlib
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softphone.sdp import (
    Attribute,
    Bandwidth,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    PayloadFormat,
    SdpParseError,
    SessionDescription,
    SetupRole,
    Timing,
    parse_sdp,
)
from softphone.sdp.rtcp import RtcpAttribute
from softphone.sip.errors import ParseError

from .samples import (
    ALL_SAMPLES,
    ASTERISK_OFFER,
    BARESIP_SDES_OFFER,
    IPV6_AUDIO_VIDEO_OFFER,
    LINPHONE_DTLS_OFFER,
    OLD_STYLE_HOLD_OFFER,
)


@pytest.mark.parametrize("name", sorted(ALL_SAMPLES))
def test_real_offers_round_trip_byte_for_byte(name: str) -> None:
    text = ALL_SAMPLES[name]
    sdp = parse_sdp(text.encode())
    assert str(sdp) == text
    assert bytes(sdp) == text.encode()
    assert parse_sdp(str(sdp)) == sdp


@pytest.mark.parametrize("name", sorted(ALL_SAMPLES))
def test_lf_only_input_parses_the_same_and_serialises_with_crlf(name: str) -> None:
    text = ALL_SAMPLES[name]
    lf = text.replace("\r\n", "\n")
    assert parse_sdp(lf) == parse_sdp(text)
    assert str(parse_sdp(lf)) == text


def test_baresip_offer_fields() -> None:
    sdp = parse_sdp(BARESIP_SDES_OFFER)
    assert sdp.origin == Origin("-", "1195537498", 3497498578, "IN", "IP4", "192.168.1.20")
    assert sdp.session_name == "-"
    assert sdp.connection == Connection("192.168.1.20", "IP4", "IN")
    assert sdp.timings == [Timing(0, 0, [])]
    assert sdp.attributes == [Attribute("tool", "baresip 1.0.0")]
    [audio] = sdp.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 10678, "RTP/SAVP")
    assert audio.formats == ["96", "9", "0", "8", "101"]
    assert audio.bandwidths == [Bandwidth("AS", 80)]
    assert audio.payload_formats() == [
        PayloadFormat(96, "opus", 48000, 2, "stereo=1;sprop-stereo=1"),
        PayloadFormat(9, "G722", 8000, 1, None),
        PayloadFormat(0, "PCMU", 8000, 1, None),
        PayloadFormat(8, "PCMA", 8000, 1, None),
        PayloadFormat(101, "telephone-event", 8000, 1, "0-15"),
    ]
    assert audio.payload_formats()[1].sample_rate == 16000  # the G.722 quirk
    assert audio.ptime() == 20
    assert audio.direction(sdp) is Direction.SENDRECV
    assert audio.has_attribute("rtcp-rsize")  # unknown property kept
    assert audio.get_values("ssrc") == ["1442385421 cname:d6b1c3a9-1b2c-4e21-a0ee-0ad7c2b7f1a4"]
    assert [(c.tag, c.suite_name) for c in audio.crypto()] == [
        (1, "AES_CM_128_HMAC_SHA1_32"),
        (2, "AES_CM_128_HMAC_SHA1_80"),
        (3, "AEAD_AES_256_GCM"),
        (4, "AEAD_AES_128_GCM"),
    ]


def test_linphone_offer_fields() -> None:
    sdp = parse_sdp(LINPHONE_DTLS_OFFER)
    [audio] = sdp.media
    assert audio.proto == "UDP/TLS/RTP/SAVPF"
    assert audio.fingerprints() == []  # at session level only
    [fingerprint] = sdp.media_fingerprints(audio)
    assert fingerprint.hash_function == "sha-256"  # "SHA-256" on the wire
    assert fingerprint.digest.hex().startswith("5ab9569696c4")
    assert sdp.media_setup(audio) is SetupRole.ACTPASS
    assert audio.rtcp() == RtcpAttribute(7079)
    assert not audio.rtcp_mux
    assert audio.get_values("rtcp-fb") == ["* trr-int 1000", "* ccm tmmbr", "96 nack"]
    formats = {f.payload_type: f for f in audio.payload_formats()}
    assert formats[18] == PayloadFormat(18, "G729", 8000, 1, "annexb=yes")  # static + fmtp
    assert formats[97] == PayloadFormat(97, "speex", 16000, 1, "vbr=on")
    assert [f.clock_rate for f in audio.payload_formats() if f.is_telephone_event] == [
        48000,
        16000,
        8000,
    ]


def test_asterisk_offer_fields() -> None:
    sdp = parse_sdp(ASTERISK_OFFER)
    [audio] = sdp.media
    assert sdp.session_name == "Asterisk"
    assert audio.ptime() == 20
    assert audio.maxptime() == 150
    assert audio.own_direction() is Direction.SENDRECV
    assert audio.crypto() == []


def test_old_style_hold_and_ipv6_media_level_connection() -> None:
    hold = parse_sdp(OLD_STYLE_HOLD_OFFER)
    assert hold.connection is not None and hold.connection.is_hold_address
    v6 = parse_sdp(IPV6_AUDIO_VIDEO_OFFER)
    assert v6.connection is None
    assert [m.media for m in v6.media] == ["video", "audio"]
    assert v6.media_connection(v6.media[1]) == Connection("2001:db8::10", "IP6")
    assert v6.media[1].rtcp_mux


def test_session_level_direction_applies_unless_media_overrides() -> None:
    base = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\na=recvonly\r\n"
    sdp = parse_sdp(base + "m=audio 4000 RTP/AVP 0\r\nm=audio 4002 RTP/AVP 0\r\na=inactive\r\n")
    assert sdp.media[0].direction(sdp) is Direction.RECVONLY
    assert sdp.media[1].direction(sdp) is Direction.INACTIVE
    assert sdp.media[0].direction() is Direction.SENDRECV  # without the session: default


def test_multicast_connection_and_ports() -> None:
    text = (
        "v=0\r\no=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\r\ns=SDP Seminar\r\n"
        "i=A Seminar on the session description protocol\r\n"
        "u=http://www.example.com/seminars/sdp.pdf\r\ne=j.doe@example.com (Jane Doe)\r\n"
        "p=+1 617 555-6011\r\nc=IN IP4 224.2.17.12/127/2\r\nb=CT:128\r\n"
        "t=2873397496 2873404696\r\nr=604800 3600 0 90000\r\nt=0 0\r\n"
        "z=2882844526 -1h 2898848070 0\r\nk=prompt\r\na=recvonly\r\n"
        "m=audio 49170/2 RTP/AVP 0\r\ni=voice\r\nc=IN IP6 ff15::101/3\r\nb=AS:64\r\n"
        "k=prompt\r\nm=application 32416 udp wb\r\na=orient:portrait\r\n"
    )
    sdp = parse_sdp(text)
    assert sdp.connection == Connection("224.2.17.12", "IP4", "IN", ttl=127, count=2)
    assert sdp.timings == [Timing(2873397496, 2873404696, ["604800 3600 0 90000"]), Timing()]
    assert sdp.emails == ["j.doe@example.com (Jane Doe)"]
    assert sdp.media[0].port_count == 2
    assert sdp.media[0].connections == [Connection("ff15::101", "IP6", "IN", None, 3)]
    assert sdp.media[1].formats == ["wb"]  # non-RTP formats are not payload types
    assert str(sdp) == text


def test_parse_errors_are_parse_errors_with_status_400() -> None:
    with pytest.raises(ParseError) as info:
        parse_sdp("v=1\r\n")
    assert isinstance(info.value, SdpParseError)
    assert info.value.status_code == 400
    assert info.value.reason == "line 1: unsupported SDP version '1'"


HEAD = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\n"
HEAD_T = HEAD + "t=0 0\n"

MALFORMED = [
    ("", "missing v= line"),
    ("v=0\n", "missing o= line"),
    (HEAD, "missing t= line"),
    ("o=- 1 1 IN IP4 10.0.0.1\nv=0\ns=-\nt=0 0\n", "line 2: v= line out of order"),
    ("v=0\nv=0\n", "line 2: v= line out of order"),
    (HEAD + "s=again\nt=0 0\n", "line 4: s= line out of order"),
    (HEAD_T + "c=IN IP4 10.0.0.1\n", "line 5: c= line out of order"),
    (HEAD + "r=1 2 3\nt=0 0\n", "line 4: r= line without t= line"),
    (HEAD_T + "x=unknown\n", "line 5: unexpected x= line"),
    (HEAD_T + "m=audio 4000 RTP/AVP 0\no=- 1 1 IN IP4 1.2.3.4\n", "line 6: unexpected o= line"),
    (HEAD_T + "m=audio 4000 RTP/AVP 0\na=x\nc=IN IP4 1.2.3.4\n", "line 7: c= line out of order"),
    (HEAD_T + "m=audio 4000 RTP/AVP 0\ni=a\ni=b\n", "line 7: i= line out of order"),
    (HEAD + "m=audio 4000 RTP/AVP 0\n", "line 4: missing t= line before media"),
    (HEAD_T + "A=x\n", "line 5: not a <type>=<value> line"),
    (HEAD_T + "a x\n", "line 5: not a <type>=<value> line"),
    (HEAD_T + "\na=x\n", "line 5: not a <type>=<value> line"),
    (HEAD_T + "a=\n", "line 5: invalid attribute name: ''"),
    (HEAD_T + "a=na me:x\n", "line 5: invalid attribute name: 'na me'"),
    (HEAD_T + "a=x\ry\n", "line 5: stray CR or NUL"),
    (HEAD_T + "a=x\x00\n", "line 5: stray CR or NUL"),
    ("v=0\no=- 1 1 IN IP4\ns=-\nt=0 0\n", "line 2: malformed origin (o=) line"),
    ("v=0\no=- x 1 IN IP4 1.2.3.4\ns=-\nt=0 0\n", "line 2: invalid session id: 'x'"),
    ("v=0\no=- 1 -1 IN IP4 1.2.3.4\ns=-\nt=0 0\n", "line 2: invalid session version: '-1'"),
    ("v=0\no=- 1 1 IN IP4 ::1\ns=-\nt=0 0\n", "line 2: address '::1' is not IP4"),
    (HEAD + "c=IN IP4 300.1.1.1\nt=0 0\n", "line 4: invalid IP4 address: '300.1.1.1'"),
    (HEAD + "c=IN IP6 2001:db8::zz\nt=0 0\n", "line 4: invalid IP6 address: '2001:db8::zz'"),
    (HEAD + "c=IN IP6 10.0.0.1\nt=0 0\n", "line 4: address '10.0.0.1' is not IP6"),
    (HEAD + "c=IN IP4\nt=0 0\n", "line 4: malformed connection (c=) line"),
    (HEAD + "c=IN IP4 224.2.1.1/256\nt=0 0\n", "line 4: TTL out of range: 256"),
    (HEAD + "c=IN IP4 224.2.1.1/1/2/3\nt=0 0\n", "line 4: malformed connection address"),
    (HEAD + "c=IN IP6 ff15::1/1/2\nt=0 0\n", "line 4: malformed connection address"),
    (HEAD + "c=IN IP4 224.2.1.1/1/0\nt=0 0\n", "line 4: number of addresses must be at least 1"),
    (HEAD + "b=AS\nt=0 0\n", "line 4: malformed bandwidth (b=) line"),
    (HEAD + "b=AS:fast\nt=0 0\n", "line 4: invalid bandwidth: 'fast'"),
    (HEAD + "t=0\n", "line 4: malformed timing (t=) line"),
    (HEAD + "t=now 0\n", "line 4: invalid start time: 'now'"),
    (HEAD_T + "m=audio 4000 RTP/AVP\n", "line 5: malformed media (m=) line"),
    (HEAD_T + "m=audio 70000 RTP/AVP 0\n", "line 5: port out of range: 70000"),
    (HEAD_T + "m=audio 4000/0 RTP/AVP 0\n", "line 5: number of ports must be at least 1"),
    (HEAD_T + "m=audio 4000 RTP/AVP 128\n", "line 5: payload type out of range: 128"),
    (HEAD_T + "m=audio 4000 RTP/AVP PCMU\n", "line 5: invalid payload type: 'PCMU'"),
    (HEAD_T + "m=audio  4000 RTP/AVP 0\n", "line 5: malformed media (m=) line"),
    ("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nz=\r\n", "line 5: empty z= line"),
]


@pytest.mark.parametrize(("text", "reason"), MALFORMED)
def test_malformed_table(text: str, reason: str) -> None:
    with pytest.raises(SdpParseError) as info:
        parse_sdp(text)
    assert info.value.reason == reason
    assert info.value.status_code == 400


def test_non_utf8_bytes() -> None:
    with pytest.raises(SdpParseError, match="not UTF-8"):
        parse_sdp((HEAD_T + "s=caf\xe9\n").encode("latin-1"))


def test_size_limits_answer_413() -> None:
    big = HEAD_T + "a=x:" + "y" * 70000 + "\n"
    with pytest.raises(SdpParseError) as info:
        parse_sdp(big)
    assert info.value.status_code == 413
    many = HEAD_T + "a=x\n" * 2000
    with pytest.raises(SdpParseError, match="more than 1024 lines") as info:
        parse_sdp(many)
    assert info.value.status_code == 413
    media = HEAD_T + "m=audio 4000 RTP/AVP 0\n" * 33
    with pytest.raises(SdpParseError, match="more than 32 media descriptions"):
        parse_sdp(media)
    assert len(parse_sdp(HEAD_T + "a=x:" + "y" * 1000 + "\n", max_size=2000).attributes) == 1


@pytest.mark.parametrize(
    ("attribute", "reason"),
    [
        ("rtpmap:96 opus", "malformed rtpmap: '96 opus'"),
        ("rtpmap:96 opus/x", "invalid rtpmap clock rate: 'x'"),
        ("rtpmap:200 opus/48000", "payload type out of range: 200"),
        ("ptime:fast", "invalid packet time: 'fast'"),
        ("rtcp:99999", "rtcp port out of range: 99999"),
        ("rtcp:7079 IN IP4", "malformed rtcp attribute: '7079 IN IP4'"),
        ("rtcp:7079 IN IP4 ::1", "rtcp address '::1' is not IP4"),
    ],
)
def test_malformed_typed_attributes(attribute: str, reason: str) -> None:
    sdp = parse_sdp(HEAD_T + f"m=audio 4000 RTP/AVP 0\na={attribute}\n")
    media = sdp.media[0]
    with pytest.raises(SdpParseError) as info:
        media.payload_formats()
        media.ptime()
        media.rtcp()
    assert info.value.reason == reason


def test_dynamic_payload_type_without_rtpmap() -> None:
    sdp = parse_sdp(HEAD_T + "m=audio 4000 RTP/AVP 0 96\n")
    with pytest.raises(SdpParseError, match="payload type 96 has no rtpmap"):
        sdp.media[0].payload_formats()


def test_two_direction_attributes_are_an_error() -> None:
    sdp = parse_sdp(HEAD_T + "m=audio 4000 RTP/AVP 0\na=sendonly\na=recvonly\n")
    with pytest.raises(SdpParseError, match="more than one direction attribute"):
        sdp.media[0].direction(sdp)


def test_rtcp_with_address() -> None:
    sdp = parse_sdp(HEAD_T + "m=audio 4000 RTP/AVP 0\na=rtcp:53020 IN IP6 2001:db8::1\n")
    assert sdp.media[0].rtcp() == RtcpAttribute(53020, "IN", "IP6", "2001:db8::1")
    assert str(sdp.media[0].rtcp()) == "53020 IN IP6 2001:db8::1"


def test_parsing_is_linear_in_pathological_input() -> None:
    # A long attribute value full of separators must not make any step quadratic; this is a
    # correctness check (it parses) whose input would take minutes if a step backtracked.
    value = ":" * 60000
    sdp = parse_sdp(HEAD_T + f"a=x{value}\n")
    assert sdp.attributes[0].value == value[1:]


# -- round trip property ------------------------------------------------------------------

_TOKEN = st.text(string.ascii_letters + string.digits + "-._+", min_size=1, max_size=12)
_TEXT = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\x00"), max_size=30
)
_IP4 = st.ip_addresses(v=4).map(str)
_IP6 = st.ip_addresses(v=6).map(str)
_CONNECTION = st.one_of(
    st.builds(Connection, _IP4, st.just("IP4")),
    st.builds(Connection, _IP6, st.just("IP6")),
    st.builds(
        Connection,
        _IP4,
        st.just("IP4"),
        st.just("IN"),
        st.integers(0, 255),
        st.none() | st.integers(1, 9),
    ),
)
_ATTRIBUTE = st.builds(Attribute, _TOKEN.filter(lambda t: ":" not in t), st.none() | _TEXT)
_MEDIA = st.builds(
    MediaDescription,
    media=st.sampled_from(["audio", "video", "application"]),
    port=st.integers(0, 65535),
    proto=st.sampled_from(["RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF", "RTP/SAVPF"]),
    formats=st.lists(st.integers(0, 127).map(str), min_size=1, max_size=6),
    port_count=st.none() | st.integers(1, 4),
    information=st.none() | _TEXT,
    connections=st.lists(_CONNECTION, max_size=2),
    bandwidths=st.lists(st.builds(Bandwidth, _TOKEN, st.integers(0, 10**6)), max_size=2),
    attributes=st.lists(_ATTRIBUTE, max_size=6),
)
_SESSION = st.builds(
    SessionDescription,
    origin=st.builds(
        Origin,
        _TOKEN,
        st.integers(0, 2**63).map(str),
        st.integers(0, 2**63),
        st.just("IN"),
        st.just("IP4"),
        _IP4,
    ),
    session_name=_TEXT,
    information=st.none() | _TEXT,
    uri=st.none() | _TEXT,
    emails=st.lists(_TEXT, max_size=2),
    connection=st.none() | _CONNECTION,
    timings=st.lists(
        st.builds(Timing, st.integers(0, 2**32), st.integers(0, 2**32), st.just([])),
        min_size=1,
        max_size=2,
    ),
    attributes=st.lists(_ATTRIBUTE, max_size=4),
    media=st.lists(_MEDIA, max_size=3),
)


@settings(max_examples=300)
@given(_SESSION)
def test_round_trip_property(sdp: SessionDescription) -> None:
    text = str(sdp)
    parsed = parse_sdp(text.encode("utf-8"))
    assert parsed == sdp
    assert str(parsed) == text


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_sdp_parse_error(data: bytes) -> None:
    with contextlib.suppress(SdpParseError):
        parse_sdp(HEAD_T.encode() + data)


@settings(max_examples=300)
@given(st.lists(st.sampled_from(list("vosiuepcbtrzkam")), max_size=20), _TEXT)
def test_random_line_sequences_raise_only_sdp_parse_error(kinds: list[str], value: str) -> None:
    text = "".join(f"{k}={value}\r\n" for k in kinds)
    try:
        sdp = parse_sdp(text)
    except SdpParseError:
        return
    assert str(parse_sdp(str(sdp))) == str(sdp)


def test_origin_username_may_be_utf8() -> None:
    sdp = parse_sdp("v=0\r\no=jürgen 1 1 IN IP4 10.0.0.1\r\ns=Grüße\r\nt=0 0\r\n".encode())
    assert sdp.origin.username == "jürgen"
    assert sdp.session_name == "Grüße"
