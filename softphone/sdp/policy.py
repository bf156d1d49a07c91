"""What we bring to an RFC 3264 exchange and what comes out of it.

* :class:`LocalMedia` — our capabilities for one audio stream (RFC 3264 §5: the offer lists
  what we can receive, in our order of preference) and our SRTP policy;
* :class:`Negotiated` — the outcome, everything the media layer needs to start RTP/SRTP.

The SRTP policy follows baresip's ``srtp`` / ``srtp-mand`` / ``dtls_srtp`` split:

=============  =====================================================  ======================
policy         we offer                                               we accept
=============  =====================================================  ======================
MANDATORY      ``RTP/SAVP`` + ``a=crypto`` per suite (SDES), or       only SRTP; anything
               ``UDP/TLS/RTP/SAVP`` + ``a=fingerprint`` (DTLS-SRTP)   else is 488
OPTIONAL       ``RTP/AVP`` + ``a=crypto`` (best-effort SDES, RFC 4568  SRTP if offered, else
               §7.1.1 practice), or DTLS as above                     plain RTP
OFF            ``RTP/AVP``                                            plain RTP only
=============  =====================================================  ======================

Once a call has been encrypted, a later offer or answer without SRTP is refused whatever the
policy (no silent downgrade in a re-INVITE).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum, StrEnum

from softphone.sdp.codecs import G722, OPUS, PCMA, PCMU, Codec, PayloadFormat
from softphone.sdp.crypto import CryptoAttribute, SrtpSuite
from softphone.sdp.direction import Direction
from softphone.sdp.fingerprint import DtlsRole, Fingerprint, SetupRole

__all__ = ["DEFAULT_CODECS", "DEFAULT_SUITES", "Keying", "LocalMedia", "Negotiated", "SrtpPolicy"]


class SrtpPolicy(Enum):
    MANDATORY = "mandatory"
    OPTIONAL = "optional"
    OFF = "off"


class Keying(StrEnum):
    """How the SRTP keys travelled (UX.md "keys travelled"): in SDP, in DTLS, or not at all."""

    SDES = "sdes"  # RFC 4568: the keys are in the SDP, readable by whoever reads signalling
    DTLS_SRTP = "dtls-srtp"  # RFC 5763/5764: keys from a DTLS handshake bound by fingerprint
    NONE = "none"


#: Offered in this order. GCM first (RFC 7714: authenticated encryption, no 32-bit tag);
#: AES_CM_128_HMAC_SHA1_80 is the one every SDES phone supports (RFC 4568 §6.2.1 MUST); the
#: AES-256 counter-mode suites (RFC 6188) come last, so that a peer offering only them is
#: accepted while the tags of the others stay where peers have seen them (baresip 1.0 keeps
#: the tag it chose across re-INVITEs). softphone.media.srtp runs all of them.
DEFAULT_SUITES: tuple[SrtpSuite, ...] = (
    SrtpSuite.AEAD_AES_256_GCM,
    SrtpSuite.AEAD_AES_128_GCM,
    SrtpSuite.AES_CM_128_HMAC_SHA1_80,
    SrtpSuite.AES_CM_128_HMAC_SHA1_32,
    SrtpSuite.AES_256_CM_HMAC_SHA1_80,
    SrtpSuite.AES_256_CM_HMAC_SHA1_32,
)

#: The codecs of the media layer (aiortc.codecs), best first.
DEFAULT_CODECS: tuple[Codec, ...] = (OPUS, G722, PCMU, PCMA)


@dataclass(frozen=True)
class LocalMedia:
    """Our side of one audio stream.

    ``address`` / ``port`` are where we receive RTP. ``dtls_fingerprints`` are the fingerprints
    of our DTLS certificate; without them we cannot do DTLS-SRTP. ``prefer_dtls`` makes our
    offers use DTLS-SRTP instead of SDES. ``direction`` is what we want: ``SENDONLY`` (or
    ``INACTIVE``) puts the call on hold (RFC 6337 §5.3), see :meth:`hold` / :meth:`resume`."""

    address: str
    port: int
    codecs: tuple[Codec, ...] = DEFAULT_CODECS
    telephone_event: bool = True
    srtp: SrtpPolicy = SrtpPolicy.OPTIONAL
    suites: tuple[SrtpSuite, ...] = DEFAULT_SUITES
    dtls_fingerprints: tuple[Fingerprint, ...] = ()
    prefer_dtls: bool = False
    rtcp_mux: bool = True
    rtcp_port: int | None = None
    ptime: int | None = 20
    direction: Direction = Direction.SENDRECV

    def __post_init__(self) -> None:
        if not 0 < self.port <= 65535:
            raise ValueError(f"port out of range: {self.port}")
        if not self.codecs:
            raise ValueError("at least one codec is needed")

    @property
    def addrtype(self) -> str:
        return "IP6" if ":" in self.address else "IP4"

    def hold(self, *, inactive: bool = False) -> LocalMedia:
        """RFC 6337 §5.3: hold is an offer with ``a=sendonly`` (``a=inactive`` if we are also
        held by the other side)."""
        return replace(self, direction=Direction.INACTIVE if inactive else Direction.SENDONLY)

    def resume(self) -> LocalMedia:
        return replace(self, direction=Direction.SENDRECV)


@dataclass(frozen=True)
class Negotiated:
    """The result of one offer/answer exchange, from our point of view.

    ``codec`` is what we send (the first codec of the answer, RFC 3264 §6.1 / §7); ``codecs``
    all the common ones with the answer's payload type numbers. ``direction`` is ours:
    ``SENDONLY`` means we send and the peer does not. With ``keying == "sdes"``,
    ``local_crypto`` keys what we send and ``remote_crypto`` what we receive (RFC 4568 §6.1);
    with ``"dtls-srtp"`` the keys come from the DTLS handshake as ``dtls_role``, whose peer
    certificate must match ``remote_fingerprints`` (RFC 5763 §5). Keys never appear in repr."""

    media_index: int
    proto: str
    codec: PayloadFormat
    codecs: tuple[PayloadFormat, ...]
    telephone_event: PayloadFormat | None
    remote_rtp: tuple[str, int]
    remote_rtcp: tuple[str, int]
    rtcp_mux: bool
    direction: Direction
    keying: Keying
    suite: SrtpSuite | None = None
    local_crypto: CryptoAttribute | None = None
    remote_crypto: CryptoAttribute | None = None
    local_setup: SetupRole | None = None
    dtls_role: DtlsRole | None = None
    remote_fingerprints: tuple[Fingerprint, ...] = ()
    remote_ptime: int | None = None

    @property
    def encrypted(self) -> bool:
        return self.keying is not Keying.NONE

    @property
    def telephone_event_pt(self) -> int | None:
        return None if self.telephone_event is None else self.telephone_event.payload_type
