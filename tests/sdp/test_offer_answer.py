"""RFC 3264 offer/answer with our SRTP policy: exact SDP, codec tables, hold, SRTP matrix,
answer validation."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from softphone.sdp import (
    G722,
    OPUS,
    PCMA,
    PCMU,
    Direction,
    DtlsRole,
    Fingerprint,
    Keying,
    LocalMedia,
    Negotiated,
    NegotiationError,
    Offer,
    Origin,
    SetupRole,
    SrtpPolicy,
    SrtpSuite,
    build_answer,
    build_offer,
    new_origin,
    next_origin,
    parse_sdp,
    process_answer,
)
from softphone.sip.errors import LocalProtocolError, RemoteProtocolError

from .samples import (
    ASTERISK_HOLD_OFFER,
    ASTERISK_OFFER,
    BARESIP_BEST_EFFORT_OFFER,
    BARESIP_SDES_OFFER,
    IPV6_AUDIO_VIDEO_OFFER,
    LINPHONE_DTLS_OFFER,
    OLD_STYLE_HOLD_OFFER,
    crlf,
)

ORIGIN = Origin("-", "1", 0, "IN", "IP4", "192.0.2.1")
OUR_CERT = b"0\x82our DTLS certificate"
OUR_FP = Fingerprint.of_certificate(OUR_CERT)


def counting_bytes(n: int) -> bytes:
    return bytes(range(n))


def local(**changes: object) -> LocalMedia:
    base = LocalMedia("192.0.2.1", 4000, dtls_fingerprints=(OUR_FP,))
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def answer(
    offer_text: str,
    *,
    protected: bool = True,
    previous: Negotiated | None = None,
    **changes: object,
) -> tuple[str, Negotiated]:
    result = build_answer(
        local(**changes),
        parse_sdp(offer_text),
        signalling_protected=protected,
        origin=ORIGIN,
        previous=previous,
        token_bytes=counting_bytes,
    )
    return str(result.sdp), result.negotiated


def reason_of(exc_info: pytest.ExceptionInfo[NegotiationError]) -> str:
    assert exc_info.value.status_code == 488
    return exc_info.value.reason


# -- offers -----------------------------------------------------------------------------

K30 = base64.b64encode(bytes(range(30))).decode()
K28 = base64.b64encode(bytes(range(28))).decode()
K44 = base64.b64encode(bytes(range(44))).decode()
K46 = base64.b64encode(bytes(range(46))).decode()


def test_mandatory_sdes_offer_exact() -> None:
    offer = build_offer(
        local(srtp=SrtpPolicy.MANDATORY),
        signalling_protected=True,
        origin=ORIGIN,
        token_bytes=counting_bytes,
    )
    assert str(offer.sdp) == crlf(
        f"""v=0
o=- 1 0 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 4000 RTP/SAVP 96 9 0 8 101
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=rtcp-mux
a=crypto:1 AEAD_AES_256_GCM inline:{K44}
a=crypto:2 AEAD_AES_128_GCM inline:{K28}
a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{K30}
a=crypto:4 AES_CM_128_HMAC_SHA1_32 inline:{K30}
a=crypto:5 AES_256_CM_HMAC_SHA1_80 inline:{K46}
a=crypto:6 AES_256_CM_HMAC_SHA1_32 inline:{K46}
a=sendrecv
"""
    )
    assert offer.keying is Keying.SDES
    assert [c.tag for c in offer.crypto] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    ("changes", "proto", "keying", "present", "absent"),
    [
        ({"srtp": SrtpPolicy.OPTIONAL}, "RTP/AVP", Keying.SDES, ["crypto"], ["fingerprint"]),
        ({"srtp": SrtpPolicy.OFF}, "RTP/AVP", Keying.NONE, [], ["crypto", "fingerprint"]),
        (
            {"srtp": SrtpPolicy.MANDATORY, "prefer_dtls": True},
            "UDP/TLS/RTP/SAVP",
            Keying.DTLS_SRTP,
            ["fingerprint", "setup"],
            ["crypto"],
        ),
    ],
)
def test_offer_shapes(
    changes: dict[str, object], proto: str, keying: Keying, present: list[str], absent: list[str]
) -> None:
    offer = build_offer(local(**changes), signalling_protected=True, origin=ORIGIN)
    media = offer.sdp.media[0]
    assert media.proto == proto
    assert offer.keying is keying
    for name in present:
        assert media.has_attribute(name)
    for name in absent:
        assert not media.has_attribute(name)
    if keying is Keying.DTLS_SRTP:
        assert media.get_values("setup") == ["actpass"]  # RFC 5763 §5
        assert media.fingerprints() == [OUR_FP]


@pytest.mark.parametrize("policy", [SrtpPolicy.MANDATORY, SrtpPolicy.OPTIONAL])
def test_no_sdes_keys_over_unprotected_signalling(policy: SrtpPolicy) -> None:
    with pytest.raises(LocalProtocolError) as info:
        build_offer(local(srtp=policy), signalling_protected=False, origin=ORIGIN)
    assert str(info.value) == "refusing to put SRTP keys in SDP over unencrypted signalling"


def test_unprotected_signalling_is_fine_without_sdes() -> None:
    off = build_offer(local(srtp=SrtpPolicy.OFF), signalling_protected=False, origin=ORIGIN)
    assert "a=crypto" not in str(off.sdp)
    dtls = build_offer(
        local(srtp=SrtpPolicy.MANDATORY, prefer_dtls=True),
        signalling_protected=False,
        origin=ORIGIN,
    )
    assert "a=crypto" not in str(dtls.sdp) and "a=fingerprint" in str(dtls.sdp)


def test_offer_allocates_dynamic_pts_around_static_ones() -> None:
    codecs = (OPUS, dataclasses.replace(OPUS, clock_rate=16000, channels=1), PCMU)
    offer = build_offer(
        local(codecs=codecs, srtp=SrtpPolicy.OFF), signalling_protected=False, origin=ORIGIN
    )
    assert offer.sdp.media[0].formats == ["96", "97", "0", "101"]


def test_origin_helpers() -> None:
    origin = new_origin("alice", "2001:db8::5", token_bytes=lambda n: b"\xff" * n)
    assert origin == Origin("alice", str(2**62 - 1), 0, "IN", "IP6", "2001:db8::5")
    assert next_origin(origin).sess_version == 1
    assert next_origin(origin).sess_id == origin.sess_id


# -- answers to real offers -------------------------------------------------------------


def test_answer_to_baresip_sdes_offer_exact() -> None:
    text, negotiated = answer(BARESIP_SDES_OFFER, srtp=SrtpPolicy.MANDATORY)
    assert text == crlf(
        f"""v=0
o=- 1 0 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 4000 RTP/SAVP 96 9 0 8 101
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{K30}
a=sendrecv
"""
    )
    n = negotiated
    assert n.keying == "sdes"
    assert n.suite is SrtpSuite.AES_CM_128_HMAC_SHA1_32
    assert n.remote_crypto is not None and n.local_crypto is not None
    assert n.remote_crypto.key.key_salt == base64.b64decode(
        "UVhfZm10e4KJkJeepayzusHIz9bd5Ovy+QAHDhUc"
    )
    assert n.local_crypto.key.key_salt == bytes(range(30))
    assert n.codec.payload_type == 96 and n.codec.name == "opus"
    assert n.telephone_event_pt == 101
    assert n.remote_rtp == ("192.168.1.20", 10678)
    assert n.remote_rtcp == ("192.168.1.20", 10679)
    assert n.rtcp_mux is False
    assert n.remote_ptime == 20
    assert "inline" not in repr(n) and K30 not in repr(n)


def test_answer_picks_the_first_offered_suite_we_enable() -> None:
    _, n = answer(
        BARESIP_SDES_OFFER, suites=(SrtpSuite.AEAD_AES_128_GCM, SrtpSuite.AES_CM_128_HMAC_SHA1_80)
    )
    assert n.remote_crypto is not None
    assert (n.remote_crypto.tag, n.suite) == (2, SrtpSuite.AES_CM_128_HMAC_SHA1_80)


def test_answer_to_linphone_dtls_offer() -> None:
    text, n = answer(LINPHONE_DTLS_OFFER, srtp=SrtpPolicy.MANDATORY)
    media = parse_sdp(text).media[0]
    assert media.proto == "UDP/TLS/RTP/SAVPF"
    # speex and G.729 are not ours; offer order and PT numbers kept; telephone-event with
    # opus's 48 kHz clock chosen among the three offered.
    assert media.formats == ["96", "0", "8", "101"]
    assert media.get_values("rtpmap")[-1] == "101 telephone-event/48000"
    assert media.get_values("setup") == ["active"]
    assert media.fingerprints() == [OUR_FP]
    assert not media.has_attribute("crypto")
    assert n.keying is Keying.DTLS_SRTP
    assert n.local_setup is SetupRole.ACTIVE
    assert n.dtls_role is DtlsRole.CLIENT
    [fp] = n.remote_fingerprints
    assert str(fp).startswith("sha-256 5A:B9:56:96")
    assert n.remote_rtcp == ("192.168.1.30", 7079)  # RFC 3605 a=rtcp


def test_dtls_answer_needs_our_certificate() -> None:
    with pytest.raises(NegotiationError) as info:
        answer(LINPHONE_DTLS_OFFER, dtls_fingerprints=())
    assert reason_of(info) == "DTLS-SRTP offered but we have no DTLS certificate"


@pytest.mark.parametrize(
    ("fingerprint_line", "reason"),
    [
        ("", "no a=fingerprint for DTLS-SRTP"),
        (
            "a=fingerprint:md5 " + ":".join(["AB"] * 16) + "\r\n",
            "fingerprint hash function md5 not supported "
            "(supported: sha-1, sha-224, sha-256, sha-384, sha-512)",
        ),
    ],
)
def test_dtls_offer_with_unusable_fingerprint(fingerprint_line: str, reason: str) -> None:
    lines = [x for x in LINPHONE_DTLS_OFFER.split("\r\n") if not x.startswith("a=fingerprint")]
    offer = "\r\n".join(lines).replace(
        "a=setup:actpass\r\n", "a=setup:actpass\r\n" + fingerprint_line
    )
    with pytest.raises(NegotiationError) as info:
        answer(offer)
    assert reason_of(info) == reason


def test_answer_to_asterisk_offer() -> None:
    text, n = answer(ASTERISK_OFFER, srtp=SrtpPolicy.OPTIONAL)
    media = parse_sdp(text).media[0]
    assert media.formats == ["0", "8", "9", "101"]  # the offerer's order, not ours
    assert n.codec.name == "pcmu"
    assert n.keying is Keying.NONE
    assert media.get_values("crypto") == []


def test_answer_reuses_offered_payload_type_numbers() -> None:
    offer = crlf(
        """v=0
o=- 5 5 IN IP4 198.51.100.2
s=-
c=IN IP4 198.51.100.2
t=0 0
m=audio 30000 RTP/AVP 111 126 0
a=rtpmap:111 OPUS/48000/2
a=rtpmap:126 telephone-event/8000
a=fmtp:126 0-15
"""
    )
    text, n = answer(offer, srtp=SrtpPolicy.OFF)
    media = parse_sdp(text).media[0]
    assert media.formats == ["111", "0", "126"]
    assert media.get_values("rtpmap") == [
        "111 opus/48000/2",
        "0 PCMU/8000",
        "126 telephone-event/8000",
    ]
    assert n.telephone_event_pt == 126


def test_telephone_event_dropped_when_we_do_not_do_it() -> None:
    text, n = answer(ASTERISK_OFFER, srtp=SrtpPolicy.OFF, telephone_event=False)
    assert parse_sdp(text).media[0].formats == ["0", "8", "9"]
    assert n.telephone_event is None


def test_no_common_codec_is_488() -> None:
    offer = ASTERISK_OFFER.replace("RTP/AVP 0 8 9 101", "RTP/AVP 18 101").replace(
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000",
        "a=rtpmap:18 G729/8000",
    )
    with pytest.raises(NegotiationError) as info:
        answer(offer, srtp=SrtpPolicy.OFF)
    assert reason_of(info) == "no common codec"
    assert isinstance(info.value, RemoteProtocolError)


def test_only_our_codecs_are_considered() -> None:
    with pytest.raises(NegotiationError, match="no common codec"):
        answer(ASTERISK_OFFER, srtp=SrtpPolicy.OFF, codecs=(OPUS,))
    _, n = answer(ASTERISK_OFFER, srtp=SrtpPolicy.OFF, codecs=(G722, PCMA))
    assert [c.payload_type for c in n.codecs] == [8, 9]


def test_rejected_streams_keep_their_place_with_port_0() -> None:
    text, n = answer(IPV6_AUDIO_VIDEO_OFFER, srtp=SrtpPolicy.OFF, address="2001:db8::1")
    sdp = parse_sdp(text)
    assert [(m.media, m.port, m.proto, m.formats) for m in sdp.media] == [
        ("video", 0, "RTP/AVP", ["99"]),
        ("audio", 4000, "RTP/AVP", ["0", "101"]),
    ]
    assert sdp.connection is not None and sdp.connection.addrtype == "IP6"
    assert sdp.media[1].rtcp_mux
    assert n.media_index == 1
    assert n.rtcp_mux and n.remote_rtcp == ("2001:db8::10", 49232)


def test_offered_port_0_stream_is_not_used() -> None:
    offer = ASTERISK_OFFER + "m=audio 0 RTP/AVP 0\r\n"
    text, _n = answer(offer, srtp=SrtpPolicy.OFF)
    assert [m.port for m in parse_sdp(text).media] == [4000, 0]
    only_rejected = ASTERISK_OFFER.replace("m=audio 16842", "m=audio 0")
    with pytest.raises(NegotiationError) as info:
        answer(only_rejected, srtp=SrtpPolicy.OFF)
    assert reason_of(info) == "no media stream offered"


# -- hold ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offer", "ours", "written"),
    [
        (ASTERISK_HOLD_OFFER, Direction.SENDRECV, "recvonly"),  # RFC 6337 a=sendonly hold
        (OLD_STYLE_HOLD_OFFER, Direction.SENDRECV, "recvonly"),  # RFC 3264 §8.4 c=0.0.0.0
        (ASTERISK_OFFER.replace("a=sendrecv", "a=inactive"), Direction.SENDRECV, "inactive"),
        (ASTERISK_OFFER.replace("a=sendrecv", "a=recvonly"), Direction.SENDRECV, "sendonly"),
        (ASTERISK_OFFER, Direction.SENDONLY, "sendonly"),  # we hold while answering
        (ASTERISK_HOLD_OFFER, Direction.SENDONLY, "inactive"),  # both hold
    ],
)
def test_hold_in_answers(offer: str, ours: Direction, written: str) -> None:
    text, n = answer(offer, srtp=SrtpPolicy.OFF, direction=ours)
    media = parse_sdp(text).media[0]
    assert media.own_direction() is Direction(written)
    assert n.direction is Direction(written)


def test_hold_and_resume_round_trip_between_two_softphones() -> None:
    alice = local(srtp=SrtpPolicy.MANDATORY)
    bob = LocalMedia("192.0.2.2", 5000, srtp=SrtpPolicy.MANDATORY)
    origin = ORIGIN
    offer = build_offer(alice.hold(), signalling_protected=True, origin=origin)
    assert offer.sdp.media[0].own_direction() is Direction.SENDONLY
    reply = build_answer(bob, offer.sdp, signalling_protected=True, origin=ORIGIN)
    assert reply.negotiated.direction is Direction.RECVONLY
    assert process_answer(offer, reply.sdp).direction is Direction.SENDONLY
    origin = next_origin(origin)
    resumed = build_offer(alice.resume(), signalling_protected=True, origin=origin)
    assert resumed.sdp.origin.sess_version == 1
    reply = build_answer(bob, resumed.sdp, signalling_protected=True, origin=ORIGIN)
    assert process_answer(resumed, reply.sdp).direction is Direction.SENDRECV


# -- SRTP policy x offer type -------------------------------------------------------------

DTLS_OFFER = LINPHONE_DTLS_OFFER
PLAIN_OFFER = ASTERISK_OFFER
BEST_EFFORT = BARESIP_BEST_EFFORT_OFFER
SAVP_OFFER = BARESIP_SDES_OFFER

_REQUIRED = "SRTP is required but the offer has no usable SRTP"


@pytest.mark.parametrize(
    ("policy", "offer", "protected", "expected"),
    [
        (SrtpPolicy.MANDATORY, PLAIN_OFFER, True, _REQUIRED),
        (SrtpPolicy.MANDATORY, BEST_EFFORT, True, Keying.SDES),
        (SrtpPolicy.MANDATORY, SAVP_OFFER, True, Keying.SDES),
        (SrtpPolicy.MANDATORY, DTLS_OFFER, True, Keying.DTLS_SRTP),
        (SrtpPolicy.OPTIONAL, PLAIN_OFFER, True, Keying.NONE),
        (SrtpPolicy.OPTIONAL, BEST_EFFORT, True, Keying.SDES),
        (SrtpPolicy.OPTIONAL, SAVP_OFFER, True, Keying.SDES),
        (SrtpPolicy.OPTIONAL, DTLS_OFFER, True, Keying.DTLS_SRTP),
        (SrtpPolicy.OFF, PLAIN_OFFER, True, Keying.NONE),
        (SrtpPolicy.OFF, BEST_EFFORT, True, Keying.NONE),
        (SrtpPolicy.OFF, SAVP_OFFER, True, "SRTP offered but SRTP is switched off"),
        (SrtpPolicy.OFF, DTLS_OFFER, True, "DTLS-SRTP offered but SRTP is switched off"),
        # signalling in clear: SDES keys are never written, DTLS is still fine
        (
            SrtpPolicy.MANDATORY,
            SAVP_OFFER,
            False,
            "SDES keys refused over unencrypted signalling",
        ),
        (
            SrtpPolicy.MANDATORY,
            BEST_EFFORT,
            False,
            f"{_REQUIRED} (SDES keys refused over unencrypted signalling)",
        ),
        (SrtpPolicy.OPTIONAL, SAVP_OFFER, False, "SDES keys refused over unencrypted signalling"),
        (SrtpPolicy.OPTIONAL, BEST_EFFORT, False, Keying.NONE),
        (SrtpPolicy.MANDATORY, DTLS_OFFER, False, Keying.DTLS_SRTP),
    ],
)
def test_srtp_policy_matrix(
    policy: SrtpPolicy, offer: str, protected: bool, expected: Keying | str
) -> None:
    if isinstance(expected, Keying):
        text, n = answer(offer, srtp=policy, protected=protected)
        assert n.keying is expected
        media = parse_sdp(text).media[0]
        assert media.proto == parse_sdp(offer).media[0].proto  # RFC 3264 §6.1
        assert media.has_attribute("crypto") == (expected is Keying.SDES)
        assert media.has_attribute("fingerprint") == (expected is Keying.DTLS_SRTP)
    else:
        with pytest.raises(NegotiationError) as info:
            answer(offer, srtp=policy, protected=protected)
        assert reason_of(info) == expected


def test_weakened_crypto_lines_are_skipped() -> None:
    key = "inline:Vl1ka3J5gIeOlZyjqrG4v8bN1Nvi6fD3/gUMExoh"
    offer = ASTERISK_OFFER.replace("RTP/AVP", "RTP/SAVP").replace(
        "a=sendrecv",
        f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 {key} UNENCRYPTED_SRTP\r\n"
        f"a=crypto:2 AES_CM_128_HMAC_SHA1_80 {key}|1:4\r\n"
        f"a=crypto:3 F8_128_HMAC_SHA1_80 {key}\r\na=sendrecv",
    )
    with pytest.raises(NegotiationError) as info:
        answer(offer, srtp=SrtpPolicy.MANDATORY)
    assert reason_of(info) == (
        "no acceptable a=crypto: session parameter UNENCRYPTED_SRTP switches SRTP protection "
        "off; MKI is not supported; unsupported crypto suite F8_128_HMAC_SHA1_80"
    )


def test_srtp_stream_preferred_among_duplicate_audio_lines() -> None:
    # Old best-effort trick: the same audio twice, RTP/SAVP first and RTP/AVP second.
    savp = parse_sdp(BARESIP_SDES_OFFER)
    plain = parse_sdp(ASTERISK_OFFER).media[0]
    savp.media.append(plain)
    text, n = answer(str(savp), srtp=SrtpPolicy.OPTIONAL)
    assert [m.port for m in parse_sdp(text).media] == [4000, 0]
    assert n.keying is Keying.SDES
    savp.media.reverse()
    text, n = answer(str(savp), srtp=SrtpPolicy.OPTIONAL)
    assert [m.port for m in parse_sdp(text).media] == [0, 4000]  # SRTP beats offer order
    text, n = answer(str(savp), srtp=SrtpPolicy.OFF)
    assert [m.port for m in parse_sdp(text).media] == [4000, 0]
    assert n.keying is Keying.NONE


def test_reinvite_may_not_drop_encryption() -> None:
    _, first = answer(BARESIP_SDES_OFFER, srtp=SrtpPolicy.OPTIONAL)
    with pytest.raises(NegotiationError) as info:
        answer(ASTERISK_OFFER, srtp=SrtpPolicy.OPTIONAL, previous=first)
    assert reason_of(info) == _REQUIRED
    _, plain = answer(ASTERISK_OFFER, srtp=SrtpPolicy.OPTIONAL)
    _, again = answer(ASTERISK_OFFER, srtp=SrtpPolicy.OPTIONAL, previous=plain)
    assert again.keying is Keying.NONE


def test_missing_connection_address() -> None:
    offer = ASTERISK_OFFER.replace("c=IN IP4 203.0.113.5\r\n", "")
    with pytest.raises(NegotiationError, match=r"no connection address \(c=\)"):
        answer(offer, srtp=SrtpPolicy.OFF)


# -- processing answers to our offers ---------------------------------------------------


def make_offer(**changes: object) -> Offer:
    return build_offer(
        local(**changes), signalling_protected=True, origin=ORIGIN, token_bytes=counting_bytes
    )


def test_sdes_keys_cross_over_between_two_ends() -> None:
    offer = make_offer(srtp=SrtpPolicy.MANDATORY)
    bob = LocalMedia("192.0.2.2", 5000, srtp=SrtpPolicy.MANDATORY, codecs=(PCMA, PCMU))
    reply = build_answer(bob, offer.sdp, signalling_protected=True, origin=ORIGIN)
    ours = process_answer(offer, reply.sdp)
    theirs = reply.negotiated
    assert ours.keying is theirs.keying is Keying.SDES
    assert ours.suite is theirs.suite is SrtpSuite.AEAD_AES_256_GCM  # our first choice
    assert ours.local_crypto == theirs.remote_crypto
    assert ours.remote_crypto == theirs.local_crypto
    assert ours.local_crypto is not None and ours.remote_crypto is not None
    assert ours.local_crypto.key.key_salt != ours.remote_crypto.key.key_salt
    # Bob answered in our (the offerer's) order, filtered by his codecs.
    assert [c.name for c in ours.codecs] == ["pcmu", "pcma"]
    assert ours.codec.payload_type == 0
    assert ours.telephone_event_pt == 101
    assert ours.remote_rtp == ("192.0.2.2", 5000)
    assert ours.rtcp_mux and ours.remote_rtcp == ("192.0.2.2", 5000)  # RFC 5761


def test_dtls_roles_between_two_ends() -> None:
    offer = make_offer(srtp=SrtpPolicy.MANDATORY, prefer_dtls=True)
    bob_fp = Fingerprint.of_certificate(b"bob's certificate", "sha-512")
    bob = LocalMedia("192.0.2.2", 5000, srtp=SrtpPolicy.MANDATORY, dtls_fingerprints=(bob_fp,))
    reply = build_answer(bob, offer.sdp, signalling_protected=False, origin=ORIGIN)
    assert reply.negotiated.dtls_role is DtlsRole.CLIENT  # answerer to actpass: active
    assert reply.negotiated.remote_fingerprints == (OUR_FP,)
    ours = process_answer(offer, reply.sdp)
    assert ours.keying is Keying.DTLS_SRTP
    assert ours.local_setup is SetupRole.PASSIVE
    assert ours.dtls_role is DtlsRole.SERVER
    assert ours.remote_fingerprints == (bob_fp,)


def _mutated_answer(offer: Offer, old: str, new: str, **bob: object) -> str:
    base = LocalMedia("192.0.2.2", 5000, srtp=SrtpPolicy.MANDATORY)
    reply = build_answer(
        dataclasses.replace(base, **bob),  # type: ignore[arg-type]
        offer.sdp,
        signalling_protected=True,
        origin=ORIGIN,
        token_bytes=counting_bytes,
    )
    text = str(reply.sdp)
    assert old in text, text
    return text.replace(old, new)


ANSWER_CRYPTO = f"a=crypto:1 AEAD_AES_256_GCM inline:{K44}"


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("m=audio 5000", "m=audio 0", "the peer rejected the audio stream"),
        (
            "a=sendrecv\r\n",
            "a=sendrecv\r\nm=video 0 RTP/AVP 31\r\n",
            "answer has 2 m-lines, the offer had 1",
        ),
        ("RTP/SAVP", "RTP/AVP", "m-line 0 answered as audio RTP/AVP, offered audio RTP/SAVP"),
        (
            "m=audio 5000 RTP/SAVP 96",
            "m=audio 5000 RTP/SAVP 97 96",
            "answer has payload types we did not offer: 97",
        ),
        (
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:9 G7221/16000",
            "answer maps payload type 9 to G7221/16000, which we did not offer",
        ),
        (ANSWER_CRYPTO + "\r\n", "", "answer on RTP/SAVP has no a=crypto"),
        ("a=crypto:1 ", "a=crypto:9 ", "answer's a=crypto tag 9 was not offered"),
        (
            "a=crypto:1 AEAD_AES_256_GCM",
            "a=crypto:3 AEAD_AES_256_GCM",
            "answer's a=crypto tag 3 has suite AEAD_AES_256_GCM, offered AES_CM_128_HMAC_SHA1_80",
        ),
        (
            ANSWER_CRYPTO,
            ANSWER_CRYPTO + "\r\n" + ANSWER_CRYPTO,
            "answer has more than one a=crypto line (RFC 4568 §7.1.2)",
        ),
        (
            ANSWER_CRYPTO,
            ANSWER_CRYPTO + " KDR=1",
            "answer's a=crypto is unusable: unsupported session parameter KDR",
        ),
    ],
)
def test_invalid_answers(old: str, new: str, reason: str) -> None:
    offer = make_offer(srtp=SrtpPolicy.MANDATORY)
    bad = _mutated_answer(offer, old, new)
    with pytest.raises(NegotiationError) as info:
        process_answer(offer, parse_sdp(bad))
    assert reason_of(info) == reason


def test_answer_with_only_telephone_event() -> None:
    offer = make_offer(srtp=SrtpPolicy.OFF)
    bad = _mutated_answer(offer, "RTP/AVP 96 9 0 8 101", "RTP/AVP 101", srtp=SrtpPolicy.OFF)
    with pytest.raises(NegotiationError, match="answer has no audio codec"):
        process_answer(offer, parse_sdp(bad))


def test_best_effort_offer_answered_without_keys_is_plain_rtp() -> None:
    offer = make_offer(srtp=SrtpPolicy.OPTIONAL)
    assert offer.sdp.media[0].proto == "RTP/AVP"
    plain = LocalMedia("192.0.2.2", 5000, srtp=SrtpPolicy.OFF)
    reply = build_answer(plain, offer.sdp, signalling_protected=True, origin=ORIGIN)
    assert "a=crypto" not in str(reply.sdp)
    assert process_answer(offer, reply.sdp).keying is Keying.NONE
    # ...but not once the call was encrypted (re-INVITE downgrade)
    encrypted = process_answer(
        offer,
        build_answer(
            dataclasses.replace(plain, srtp=SrtpPolicy.OPTIONAL),
            offer.sdp,
            signalling_protected=True,
            origin=ORIGIN,
        ).sdp,
    )
    assert encrypted.keying is Keying.SDES
    with pytest.raises(NegotiationError) as info:
        process_answer(offer, reply.sdp, previous=encrypted)
    assert reason_of(info) == "SRTP is required but the answer has no SRTP"


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (
            "a=setup:active",
            "a=setup:actpass",
            "answer's a=setup must be active or passive, got actpass",
        ),
        (
            "a=setup:active",
            "a=setup:holdconn",
            "answer's a=setup must be active or passive, got holdconn",
        ),
        ("a=setup:active\r\n", "", "answer's a=setup must be active or passive, got none"),
        (
            "a=fingerprint:sha-256 ",
            "a=fingerprint:md5 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\r\na=x:",
            "answer unusable for DTLS-SRTP: fingerprint hash function md5 not supported "
            "(supported: sha-1, sha-224, sha-256, sha-384, sha-512)",
        ),
    ],
)
def test_invalid_dtls_answers(old: str, new: str, reason: str) -> None:
    offer = make_offer(srtp=SrtpPolicy.MANDATORY, prefer_dtls=True)
    bad = _mutated_answer(offer, old, new, dtls_fingerprints=(OUR_FP,))
    with pytest.raises(NegotiationError) as info:
        process_answer(offer, parse_sdp(bad))
    assert reason_of(info) == reason


def test_old_style_hold_in_an_answer_stops_our_sending() -> None:
    offer = make_offer(srtp=SrtpPolicy.OFF)
    held = _mutated_answer(offer, "c=IN IP4 192.0.2.2", "c=IN IP4 0.0.0.0", srtp=SrtpPolicy.OFF)
    assert process_answer(offer, parse_sdp(held)).direction is Direction.RECVONLY


def test_local_media_validation() -> None:
    with pytest.raises(ValueError, match="port out of range"):
        LocalMedia("192.0.2.1", 0)
    with pytest.raises(ValueError, match="at least one codec"):
        LocalMedia("192.0.2.1", 4000, codecs=())


# -- re-offers, liberal reading -----------------------------------------------------------


def test_reoffer_keeps_every_m_line_in_place() -> None:
    # The peer called with video and audio; we answered audio only. Our hold re-offer must
    # still have both m-lines (RFC 3264 §8), the video one disabled.
    first = build_answer(
        local(srtp=SrtpPolicy.OFF, address="2001:db8::1"),
        parse_sdp(IPV6_AUDIO_VIDEO_OFFER),
        signalling_protected=False,
        origin=ORIGIN,
    )
    reoffer = build_offer(
        local(srtp=SrtpPolicy.OFF, address="2001:db8::1").hold(),
        signalling_protected=False,
        origin=next_origin(ORIGIN),
        previous_sdp=first.sdp,
        media_index=first.negotiated.media_index,
    )
    sdp = reoffer.sdp
    assert [(m.media, m.port) for m in sdp.media] == [("video", 0), ("audio", 4000)]
    assert sdp.media[1].own_direction() is Direction.SENDONLY
    assert reoffer.media_index == 1
    peer = LocalMedia("2001:db8::10", 49232, srtp=SrtpPolicy.OFF)
    reply = build_answer(peer, sdp, signalling_protected=False, origin=ORIGIN)
    assert reply.negotiated.direction is Direction.RECVONLY
    assert process_answer(reoffer, reply.sdp).direction is Direction.SENDONLY
    with pytest.raises(LocalProtocolError, match="no m-line 2 in the previous SDP"):
        build_offer(
            local(srtp=SrtpPolicy.OFF),
            signalling_protected=False,
            origin=ORIGIN,
            previous_sdp=first.sdp,
            media_index=2,
        )


def test_undefined_dynamic_payload_type_is_skipped_not_fatal() -> None:
    offer = ASTERISK_OFFER.replace("RTP/AVP 0 8 9 101", "RTP/AVP 98 0 8 9 101")
    text, _ = answer(offer, srtp=SrtpPolicy.OFF)
    assert parse_sdp(text).media[0].formats == ["0", "8", "9", "101"]
    with pytest.raises(NegotiationError, match="no common codec"):
        answer(offer.replace("RTP/AVP 98 0 8 9 101", "RTP/AVP 98"), srtp=SrtpPolicy.OFF)


def test_answer_without_rtpmap_uses_the_offer_mapping() -> None:
    offer = make_offer(srtp=SrtpPolicy.OFF)
    terse = _mutated_answer(offer, "a=rtpmap:96 opus/48000/2\r\n", "", srtp=SrtpPolicy.OFF)
    n = process_answer(offer, parse_sdp(terse))
    assert (n.codec.payload_type, n.codec.name, n.codec.channels) == (96, "opus", 2)


def test_trailing_space_on_an_m_line_is_tolerated() -> None:
    offer = ASTERISK_OFFER.replace("RTP/AVP 0 8 9 101\r\n", "RTP/AVP 0 8 9 101 \r\n")
    assert parse_sdp(offer).media[0].formats == ["0", "8", "9", "101"]
    _, n = answer(offer, srtp=SrtpPolicy.OFF)
    assert n.codec.payload_type == 0


def test_no_key_material_in_any_repr() -> None:
    offer = make_offer(srtp=SrtpPolicy.MANDATORY)
    bob = LocalMedia("192.0.2.2", 5000, srtp=SrtpPolicy.MANDATORY)
    reply = build_answer(bob, offer.sdp, signalling_protected=True, origin=ORIGIN)
    ours = process_answer(offer, reply.sdp)
    assert K30 in str(offer.sdp) and K44 in str(offer.sdp)  # the wire form carries them
    assert reply.negotiated.local_crypto is not None
    remote_key = base64.b64encode(reply.negotiated.local_crypto.key.key_salt).decode()
    assert remote_key in str(reply.sdp)
    for obj in (offer, offer.sdp, offer.sdp.media[0], reply, reply.sdp, ours):
        text = repr(obj)
        for secret in (K30, K44, K28, remote_key, K30[:16], remote_key[:16]):
            assert secret not in text
    assert "inline:<redacted>" in repr(offer.sdp)
    sdp = parse_sdp(ASTERISK_OFFER.replace("t=0 0\r\n", "t=0 0\r\nk=clear:hunter2\r\n"))
    assert sdp.key == "clear:hunter2" and "hunter2" not in repr(sdp)
