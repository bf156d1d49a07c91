"""Session descriptions as real phones write them (written from their source and captures:
baresip 1.0 with the srtp-mand module, linphone 5.x with DTLS-SRTP, Asterisk chan_pjsip).

Keys and fingerprints are made up but have the right lengths for their suites.
"""

from __future__ import annotations

# ruff: noqa: E501 - captured SDP lines are as long as the phones write them


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


# baresip, menc=srtp-mand: RTP/SAVP, one a=crypto per suite in srtp.c's order, opus first.
BARESIP_SDES_OFFER = crlf(
    """v=0
o=- 1195537498 3497498578 IN IP4 192.168.1.20
s=-
c=IN IP4 192.168.1.20
t=0 0
a=tool:baresip 1.0.0
m=audio 10678 RTP/SAVP 96 9 0 8 101
b=AS:80
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=rtcp-rsize
a=ssrc:1442385421 cname:d6b1c3a9-1b2c-4e21-a0ee-0ad7c2b7f1a4
a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:UVhfZm10e4KJkJeepayzusHIz9bd5Ovy+QAHDhUc
a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:Vl1ka3J5gIeOlZyjqrG4v8bN1Nvi6fD3/gUMExoh
a=crypto:3 AEAD_AES_256_GCM inline:k5qhqK+2vcTL0tng5+71/AMKERgfJi00O0JJUFdeZWxzeoGIj5adpKuyucA=
a=crypto:4 AEAD_AES_128_GCM inline:g4qRmJ+mrbS7wsnQ197l7PP6AQgPFh0kKzI5QA==
a=ptime:20
"""
)

# The same phone with menc=srtp (best effort): keys offered on RTP/AVP.
BARESIP_BEST_EFFORT_OFFER = BARESIP_SDES_OFFER.replace("RTP/SAVP", "RTP/AVP")

# linphone with media_encryption=dtls: fingerprint and setup at session level, upper-case
# "SHA-256", RTCP feedback (AVPF), three telephone-event clocks, a=rtcp (RFC 3605).
LINPHONE_DTLS_OFFER = crlf(
    """v=0
o=bob 2617 3129 IN IP4 192.168.1.30
s=Talk
c=IN IP4 192.168.1.30
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
a=record:off
a=fingerprint:SHA-256 5A:B9:56:96:96:C4:8E:FF:45:36:2E:22:BF:75:8E:F8:A8:8D:32:4B:2C:95:35:72:F8:DE:03:C7:97:AB:E5:5D
a=setup:actpass
m=audio 7078 UDP/TLS/RTP/SAVPF 96 97 98 0 8 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp:7079
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
a=rtcp-fb:96 nack
"""
)

# Asterisk (chan_pjsip): static payload types, ptime/maxptime, explicit a=sendrecv.
ASTERISK_OFFER = crlf(
    """v=0
o=- 1732034566 1732034566 IN IP4 203.0.113.5
s=Asterisk
c=IN IP4 203.0.113.5
t=0 0
m=audio 16842 RTP/AVP 0 8 9 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:9 G722/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
"""
)

# Asterisk putting us on hold (RFC 6337 style): a=sendonly, version incremented.
ASTERISK_HOLD_OFFER = ASTERISK_OFFER.replace("1732034566 IN", "1732034567 IN").replace(
    "a=sendrecv", "a=sendonly"
)

# An RFC 2543-era phone putting us on hold: c=0.0.0.0 and no direction attribute.
OLD_STYLE_HOLD_OFFER = crlf(
    """v=0
o=- 42 43 IN IP4 198.51.100.7
s=-
c=IN IP4 0.0.0.0
t=0 0
m=audio 49170 RTP/AVP 0
a=rtpmap:0 PCMU/8000
"""
)

# Audio and video, IPv6, media-level c= (e.g. a video phone we can only talk to by voice).
IPV6_AUDIO_VIDEO_OFFER = crlf(
    """v=0
o=carol 2890844526 2890842807 IN IP6 2001:db8::10
s=Call
t=0 0
m=video 51372 RTP/AVP 99
c=IN IP6 2001:db8::10
a=rtpmap:99 H264/90000
m=audio 49232 RTP/AVP 0 101
c=IN IP6 2001:db8::10
a=rtpmap:101 telephone-event/8000
a=rtcp-mux
"""
)

ALL_SAMPLES = {
    "baresip-sdes": BARESIP_SDES_OFFER,
    "baresip-best-effort": BARESIP_BEST_EFFORT_OFFER,
    "linphone-dtls": LINPHONE_DTLS_OFFER,
    "asterisk": ASTERISK_OFFER,
    "asterisk-hold": ASTERISK_HOLD_OFFER,
    "old-style-hold": OLD_STYLE_HOLD_OFFER,
    "ipv6-audio-video": IPV6_AUDIO_VIDEO_OFFER,
}
