"""The SDP layer: RFC 8866 session descriptions, RFC 3264 offer/answer for audio, SDES
(RFC 4568) and DTLS-SRTP fingerprints (RFC 8122, RFC 5763). Sans-I/O: text in, objects out.

One module per spec object:

============================  ============================================================
``session``                   RFC 8866 (RFC 4566) parse/serialise, typed attribute views
``codecs``                    rtpmap / fmtp / ptime, RFC 3551 static payload types
``direction``                 sendrecv / sendonly / recvonly / inactive (RFC 3264 §6.1)
``rtcp``                      a=rtcp (RFC 3605), rtcp-mux (RFC 5761)
``crypto``                    a=crypto (RFC 4568, RFC 6188, RFC 7714 suites)
``fingerprint``               a=fingerprint (RFC 8122), a=setup (RFC 4145, RFC 5763)
``policy``                    our capabilities, SRTP policy, the negotiated result
``offer_answer``              RFC 3264 offer, answer, answer processing, hold
``errors``                    SdpParseError (400), NegotiationError (488)
============================  ============================================================
"""

from softphone.sdp.codecs import (
    G722,
    OPUS,
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    Codec,
    PayloadFormat,
    RtpMap,
)
from softphone.sdp.crypto import (
    CryptoAttribute,
    KeyParams,
    SrtpSuite,
    generate_crypto,
    parse_crypto,
)
from softphone.sdp.direction import Direction
from softphone.sdp.errors import NegotiationError, SdpParseError
from softphone.sdp.fingerprint import (
    DtlsRole,
    Fingerprint,
    SetupRole,
    parse_fingerprint,
    verify_certificate,
)
from softphone.sdp.offer_answer import (
    Answer,
    Offer,
    build_answer,
    build_offer,
    new_origin,
    next_origin,
    process_answer,
)
from softphone.sdp.policy import Keying, LocalMedia, Negotiated, SrtpPolicy
from softphone.sdp.rtcp import RtcpAttribute
from softphone.sdp.session import (
    Attribute,
    Bandwidth,
    Connection,
    MediaDescription,
    Origin,
    SessionDescription,
    Timing,
    parse_sdp,
)

__all__ = [
    "G722",
    "OPUS",
    "PCMA",
    "PCMU",
    "TELEPHONE_EVENT",
    "Answer",
    "Attribute",
    "Bandwidth",
    "Codec",
    "Connection",
    "CryptoAttribute",
    "Direction",
    "DtlsRole",
    "Fingerprint",
    "KeyParams",
    "Keying",
    "LocalMedia",
    "MediaDescription",
    "Negotiated",
    "NegotiationError",
    "Offer",
    "Origin",
    "PayloadFormat",
    "RtcpAttribute",
    "RtpMap",
    "SdpParseError",
    "SessionDescription",
    "SetupRole",
    "SrtpPolicy",
    "SrtpSuite",
    "Timing",
    "build_answer",
    "build_offer",
    "generate_crypto",
    "new_origin",
    "next_origin",
    "parse_crypto",
    "parse_fingerprint",
    "parse_sdp",
    "process_answer",
    "verify_certificate",
]
