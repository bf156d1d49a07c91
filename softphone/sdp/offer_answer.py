"""The offer/answer model of RFC 3264 for one audio stream, with our SRTP policy on top.

Three operations, all pure:

* :func:`build_offer` — our capabilities (:class:`LocalMedia`) -> an :class:`Offer` (the SDP
  plus the keys we put in it, needed to read the answer);
* :func:`build_answer` — our capabilities and the peer's offer -> an :class:`Answer` (SDP plus
  the :class:`Negotiated` result), or :class:`NegotiationError` (488) with the reason;
* :func:`process_answer` — our :class:`Offer` and the peer's answer -> :class:`Negotiated`, or
  :class:`NegotiationError`; the caller then ends the call with that reason.

Decisions (RFC 3264 leaves them to us):

* Codec order in an answer is the *offerer's* (RFC 3264 §6.1: "RECOMMENDED that ... the
  answerer list formats in the same relative order they were present in the offer"); our own
  list only filters. The payload type numbers of the offer are reused (§6.1: the answerer MUST
  use the offer's mapping). All common codecs are kept so that either side may switch.
* One audio stream is accepted: the first acceptable ``m=audio`` with the strongest keying
  (SRTP beats plain RTP). Every other m-line is answered with port 0, same media, proto and
  formats, in the same place (§6: same number of m-lines in the same order).
* ``a=crypto`` is only ever produced when ``signalling_protected`` is true (UX.md: SDES keys
  in clear signalling are readable by anyone on the path). :func:`build_offer` raises
  :class:`LocalProtocolError` if asked to; :func:`build_answer` treats SDES as unavailable.
* Hold: ``a=sendonly`` / ``a=inactive`` (RFC 6337 §5.3); an offer or answer with
  ``c=0.0.0.0`` (RFC 3264 §8.4, RFC 2543 style) means "do not send to me".
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace

from softphone.sdp.codecs import TELEPHONE_EVENT, Codec, PayloadFormat, first_free_dynamic_pt
from softphone.sdp.crypto import CryptoAttribute, generate_crypto
from softphone.sdp.direction import Direction
from softphone.sdp.errors import NegotiationError
from softphone.sdp.fingerprint import (
    SUPPORTED_HASH_FUNCTIONS,
    DtlsRole,
    Fingerprint,
    SetupRole,
)
from softphone.sdp.policy import Keying, LocalMedia, Negotiated, SrtpPolicy
from softphone.sdp.session import (
    RTP_PROTOS,
    Attribute,
    Connection,
    MediaDescription,
    Origin,
    SessionDescription,
)
from softphone.sip.errors import LocalProtocolError

__all__ = [
    "Answer",
    "Offer",
    "build_answer",
    "build_offer",
    "has_srtp",
    "new_origin",
    "next_origin",
    "peer_direction",
    "process_answer",
]

TokenBytes = Callable[[int], bytes]
_DTLS_PROTOS = frozenset({"UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF"})
_SAVP_PROTOS = frozenset({"RTP/SAVP", "RTP/SAVPF"})
_TELEPHONE_EVENT_PT = 101  # what most phones use; any free dynamic PT would do


@dataclass(frozen=True)
class Offer:
    """An offer we made: the SDP to send and what we must remember to read the answer."""

    sdp: SessionDescription
    local: LocalMedia
    keying: Keying
    crypto: tuple[CryptoAttribute, ...] = ()  # our keys, one per offered suite (SDES)
    media_index: int = 0


@dataclass(frozen=True)
class Answer:
    sdp: SessionDescription
    negotiated: Negotiated


def new_origin(
    username: str = "-",
    address: str = "0.0.0.0",  # noqa: S104 - an SDP field, not a socket binding
    *,
    token_bytes: TokenBytes = secrets.token_bytes,
) -> Origin:
    """A fresh ``o=`` line: random session id (RFC 8866 §5.2 only asks it to be unique;
    random avoids reading the clock), version 0."""
    sess_id = str(int.from_bytes(token_bytes(8), "big") >> 2)  # 62 bits: fits signed 64-bit
    addrtype = "IP6" if ":" in address else "IP4"
    return Origin(username, sess_id, 0, "IN", addrtype, address)


def next_origin(origin: Origin) -> Origin:
    """The same session with the version incremented (RFC 3264 §8: each new SDP in a dialog)."""
    return Origin(
        origin.username,
        origin.sess_id,
        origin.sess_version + 1,
        origin.nettype,
        origin.addrtype,
        origin.address,
    )


# -- building SDP -------------------------------------------------------------------------


def _session(origin: Origin, local: LocalMedia) -> SessionDescription:
    return SessionDescription(
        origin=origin,
        session_name="-",
        connection=Connection(local.address, local.addrtype),
    )


def _format_attributes(formats: list[PayloadFormat]) -> list[Attribute]:
    # rtpmap then fmtp per format, the layout baresip, linphone and Asterisk all use.
    attributes = []
    for fmt in formats:
        attributes.append(Attribute("rtpmap", str(fmt.rtpmap)))
        if fmt.fmtp:
            attributes.append(Attribute("fmtp", f"{fmt.payload_type} {fmt.fmtp}"))
    return attributes


def _transport_attributes(local: LocalMedia, *, rtcp_mux: bool) -> list[Attribute]:
    attributes = []
    if local.ptime is not None:
        attributes.append(Attribute("ptime", str(local.ptime)))
    if local.rtcp_port is not None:
        attributes.append(Attribute("rtcp", str(local.rtcp_port)))
    if rtcp_mux:
        attributes.append(Attribute("rtcp-mux"))
    return attributes


def _dtls_attributes(local: LocalMedia, setup: SetupRole) -> list[Attribute]:
    attributes = [Attribute("fingerprint", str(f)) for f in local.dtls_fingerprints]
    attributes.append(Attribute("setup", setup.value))
    return attributes


def _offer_keying(local: LocalMedia) -> Keying:
    if local.srtp is SrtpPolicy.OFF:
        return Keying.NONE
    if local.prefer_dtls and local.dtls_fingerprints:
        return Keying.DTLS_SRTP
    return Keying.SDES


def build_offer(
    local: LocalMedia,
    *,
    signalling_protected: bool,
    origin: Origin,
    previous_sdp: SessionDescription | None = None,
    media_index: int = 0,
    keep_keys: tuple[CryptoAttribute, ...] = (),
    token_bytes: TokenBytes = secrets.token_bytes,
) -> Offer:
    """An offer for one audio stream (RFC 3264 §5). Every offer gets fresh SRTP keys, except
    for a suite in ``keep_keys``: a re-offer keeps the key of the suite in use (RFC 4568
    §7.1.4: the same key means no re-keying; phones such as baresip 1.0 keep using their
    old keys after a re-INVITE, so new ones would break the audio).

    For a re-offer in a dialog (hold, resume, refresh) pass the last SDP we sent as
    ``previous_sdp`` and the audio stream's place as ``media_index`` (``Negotiated.media_index``):
    RFC 3264 §8 forbids removing m-lines, so the others are repeated with port 0.

    Raises :class:`LocalProtocolError` when the offer would carry SDES keys
    (``a=crypto``) over signalling that is not protected."""
    if previous_sdp is not None and not 0 <= media_index < len(previous_sdp.media):
        raise LocalProtocolError(f"no m-line {media_index} in the previous SDP")
    keying = _offer_keying(local)
    if keying is Keying.SDES and not signalling_protected:
        raise LocalProtocolError("refusing to put SRTP keys in SDP over unencrypted signalling")
    used: set[int] = set()
    formats: list[PayloadFormat] = []
    for codec in local.codecs:
        pt = codec.static_pt if codec.static_pt is not None else first_free_dynamic_pt(used)
        used.add(pt)
        formats.append(codec.payload_format(pt))
    if local.telephone_event:
        pt = _TELEPHONE_EVENT_PT if _TELEPHONE_EVENT_PT not in used else first_free_dynamic_pt(used)
        formats.append(TELEPHONE_EVENT.payload_format(pt))
    crypto: tuple[CryptoAttribute, ...] = ()
    if keying is Keying.DTLS_SRTP:
        proto = "UDP/TLS/RTP/SAVP"
        security = _dtls_attributes(local, SetupRole.ACTPASS)  # RFC 5763 §5: offerer: actpass
    elif keying is Keying.SDES:
        proto = "RTP/SAVP" if local.srtp is SrtpPolicy.MANDATORY else "RTP/AVP"
        kept = {c.suite: c for c in keep_keys}
        crypto = tuple(
            replace(kept[suite], tag=tag)
            if suite in kept
            else generate_crypto(tag, suite, token_bytes=token_bytes)
            for tag, suite in enumerate(local.suites, 1)
        )
        security = [Attribute("crypto", str(c)) for c in crypto]
    else:
        proto, security = "RTP/AVP", []
    media = MediaDescription(
        media="audio",
        port=local.port,
        proto=proto,
        formats=[str(f.payload_type) for f in formats],
        attributes=[
            *_format_attributes(formats),
            *_transport_attributes(local, rtcp_mux=local.rtcp_mux),
            *security,
            Attribute(local.direction.value),
        ],
    )
    sdp = _session(origin, local)
    if previous_sdp is None:
        sdp.media.append(media)
    else:
        sdp.media = [
            media if index == media_index else _disabled(old)
            for index, old in enumerate(previous_sdp.media)
        ]
    return Offer(sdp, local, keying, crypto, media_index if previous_sdp is not None else 0)


def _disabled(media: MediaDescription) -> MediaDescription:
    """RFC 3264 §6 / §8.2: a stream we do not use keeps its place, with port 0."""
    return MediaDescription(media.media, 0, media.proto, list(media.formats))


# -- reading the peer's SDP ---------------------------------------------------------------


def _common_formats(
    offered: list[PayloadFormat], local: LocalMedia
) -> tuple[list[PayloadFormat], PayloadFormat | None]:
    """Offered formats we support, in offer order, and the telephone-event to keep.

    telephone-event is kept when we do it and its clock matches the first codec's, else the
    8000 Hz one (RFC 4733 §7.1.1: the event clock should match the audio)."""
    codecs: list[PayloadFormat] = []
    events: list[PayloadFormat] = []
    for fmt in offered:
        if fmt.is_telephone_event:
            events.append(fmt)
            continue
        mine = _local_codec(local.codecs, fmt)
        if mine is not None:
            # Our fmtp, their PT: fmtp describes what the *receiver* of the SDP should send.
            codecs.append(mine.payload_format(fmt.payload_type))
    event = None
    if local.telephone_event and codecs:
        for rate in (codecs[0].clock_rate, 8000):
            offered_event = next((e for e in events if e.clock_rate == rate), None)
            if offered_event is not None:
                event = PayloadFormat(
                    offered_event.payload_type,
                    offered_event.encoding_name,
                    rate,
                    1,
                    TELEPHONE_EVENT.fmtp,
                )
                break
    return codecs, event


def _local_codec(codecs: tuple[Codec, ...], fmt: PayloadFormat) -> Codec | None:
    return next((c for c in codecs if c.matches(fmt)), None)


def _address(sdp: SessionDescription, media: MediaDescription) -> str:
    connection = sdp.media_connection(media)
    if connection is None:
        # RFC 8866 §5.7: c= at session level or in every media description.
        raise NegotiationError("no connection address (c=) for the audio stream", 400)
    return connection.address


def _remote_transport(
    sdp: SessionDescription, media: MediaDescription, *, rtcp_mux: bool
) -> tuple[tuple[str, int], tuple[str, int]]:
    address = _address(sdp, media)
    rtp = (address, media.port)
    if rtcp_mux:
        return rtp, rtp  # RFC 5761 §5.1.3: RTCP on the RTP port
    rtcp = media.rtcp()
    if rtcp is not None:  # RFC 3605 §2.1
        return rtp, (rtcp.address or address, rtcp.port)
    return rtp, (address, media.port + 1)  # RFC 3550 §11


def _effective_direction(sdp: SessionDescription, media: MediaDescription) -> Direction:
    """The direction the peer wrote, with old-style hold applied (RFC 3264 §8.4)."""
    direction = media.direction(sdp)
    connection = sdp.media_connection(media)
    if connection is not None and connection.is_hold_address:
        direction = direction.without_receive()
    return direction


def peer_direction(sdp: SessionDescription, media_index: int) -> Direction:
    """The direction the peer wrote for the audio stream at ``media_index`` of its offer or
    answer, with an old-style hold (``c=0.0.0.0``, RFC 3264 §8.4) read as "do not send to me".
    A peer whose direction does not receive has put us on hold (RFC 6337 §5.3)."""
    if not 0 <= media_index < len(sdp.media):
        raise NegotiationError(f"no m-line {media_index} in the SDP")
    return _effective_direction(sdp, sdp.media[media_index])


def has_srtp(sdp: SessionDescription, media_index: int | None = None) -> bool:
    """Does this SDP offer (or, with ``media_index``, answer) keys for SRTP audio? DTLS-SRTP
    (``UDP/TLS/RTP/SAVP``, RFC 5764) or ``a=crypto`` lines (SDES, RFC 4568, on ``RTP/SAVP`` or
    best effort on ``RTP/AVP``); an ``RTP/SAVP`` line without keys cannot be encrypted. Used
    to tell a downgrade from other refusals."""
    if media_index is not None:
        if not 0 <= media_index < len(sdp.media):
            return False
        candidates = [sdp.media[media_index]]
    else:
        candidates = [m for m in sdp.media if m.media == "audio" and not m.rejected]
    return any(m.proto in _DTLS_PROTOS or bool(m.get_values("crypto")) for m in candidates)


def _usable_fingerprints(fingerprints: list[Fingerprint]) -> tuple[Fingerprint, ...] | str:
    if not fingerprints:
        return "no a=fingerprint for DTLS-SRTP"
    usable = tuple(f for f in fingerprints if f.supported)
    if not usable:
        names = ", ".join(sorted({f.hash_function for f in fingerprints}))
        return (
            f"fingerprint hash function {names} not supported "
            f"(supported: {', '.join(SUPPORTED_HASH_FUNCTIONS)})"
        )
    return usable


@dataclass(frozen=True)
class _Candidate:
    """An offered audio stream we could accept, and how."""

    index: int
    media: MediaDescription
    codecs: list[PayloadFormat]
    event: PayloadFormat | None
    keying: Keying
    remote_crypto: CryptoAttribute | None = None
    remote_fingerprints: tuple[Fingerprint, ...] = ()
    remote_setup: SetupRole | None = None


def _effective_policy(local: LocalMedia, previous: Negotiated | None) -> SrtpPolicy:
    # Once encrypted, always encrypted: a re-INVITE must not downgrade the call.
    if previous is not None and previous.encrypted:
        return SrtpPolicy.MANDATORY
    return local.srtp


def _choose_sdes(
    media: MediaDescription, local: LocalMedia, signalling_protected: bool
) -> CryptoAttribute | str:
    offered = media.crypto()
    if not offered:
        return "no a=crypto"
    if not signalling_protected:
        return "SDES keys refused over unencrypted signalling"
    reasons = []
    for crypto in offered:  # the offerer's order of preference (RFC 4568 §7.1.1)
        reason = crypto.unusable_reason
        if reason is None and crypto.suite not in local.suites:
            reason = f"crypto suite {crypto.suite_name} not enabled"
        if reason is None:
            return crypto
        reasons.append(reason)
    return "no acceptable a=crypto: " + "; ".join(dict.fromkeys(reasons))


def _evaluate(
    sdp: SessionDescription,
    index: int,
    media: MediaDescription,
    *,
    local: LocalMedia,
    policy: SrtpPolicy,
    signalling_protected: bool,
) -> _Candidate | str:
    """Can we accept this m-line? A candidate, or the reason why not."""
    if media.media != "audio":
        return f"{media.media} streams are not supported"
    if media.proto not in RTP_PROTOS:
        return f"transport {media.proto} is not supported"
    codecs, event = _common_formats(media.payload_formats(skip_unknown=True), local)
    if not codecs:
        return "no common codec"
    if media.proto in _DTLS_PROTOS:
        if policy is SrtpPolicy.OFF:
            return "DTLS-SRTP offered but SRTP is switched off"
        if not local.dtls_fingerprints:
            return "DTLS-SRTP offered but we have no DTLS certificate"
        fingerprints = _usable_fingerprints(sdp.media_fingerprints(media))
        if isinstance(fingerprints, str):
            return fingerprints
        # RFC 4145 §4: no a=setup means "active".
        setup = sdp.media_setup(media) or SetupRole.ACTIVE
        if setup is SetupRole.HOLDCONN:
            return "DTLS connection held (a=setup:holdconn)"
        return _Candidate(index, media, codecs, event, Keying.DTLS_SRTP, None, fingerprints, setup)
    if policy is not SrtpPolicy.OFF:
        crypto = _choose_sdes(media, local, signalling_protected)
        if isinstance(crypto, CryptoAttribute):
            return _Candidate(index, media, codecs, event, Keying.SDES, crypto)
        if media.proto in _SAVP_PROTOS:
            return crypto
        if policy is SrtpPolicy.MANDATORY:
            detail = "" if crypto == "no a=crypto" else f" ({crypto})"
            return f"SRTP is required but the offer has no usable SRTP{detail}"
    elif media.proto in _SAVP_PROTOS:
        return "SRTP offered but SRTP is switched off"
    return _Candidate(index, media, codecs, event, Keying.NONE)


def build_answer(
    local: LocalMedia,
    offer: SessionDescription,
    *,
    signalling_protected: bool,
    origin: Origin,
    previous: Negotiated | None = None,
    token_bytes: TokenBytes = secrets.token_bytes,
) -> Answer:
    """Answer the peer's offer (RFC 3264 §6). ``previous`` is the result of the last exchange
    in this dialog, if any (a re-INVITE may not drop encryption).

    Raises :class:`NegotiationError` (488) when no audio stream can be accepted, and
    :class:`SdpParseError` (400) when an attribute we must read is malformed."""
    policy = _effective_policy(local, previous)
    candidates: list[_Candidate] = []
    reasons: list[str] = []
    for index, media in enumerate(offer.media):
        if media.rejected:
            continue
        result = _evaluate(
            offer,
            index,
            media,
            local=local,
            policy=policy,
            signalling_protected=signalling_protected,
        )
        if isinstance(result, str):
            reasons.append(result)
        else:
            candidates.append(result)
    if not candidates:
        reason = "; ".join(dict.fromkeys(reasons)) or "no media stream offered"
        raise NegotiationError(reason)
    # SRTP beats plain RTP; the offer's order breaks ties.
    chosen = max(candidates, key=lambda c: (c.keying is not Keying.NONE, -c.index))
    media = chosen.media
    rtcp_mux = media.rtcp_mux and local.rtcp_mux
    remote_rtp, remote_rtcp = _remote_transport(offer, media, rtcp_mux=rtcp_mux)
    direction = _effective_direction(offer, media).answer(local.direction)

    formats = [*chosen.codecs, *([chosen.event] if chosen.event else [])]
    security: list[Attribute] = []
    local_crypto = local_setup = dtls_role = None
    if chosen.keying is Keying.SDES:
        if not signalling_protected:  # _choose_sdes never picks SDES then; keep it that way
            raise LocalProtocolError("refusing to put SRTP keys in SDP over unencrypted signalling")
        assert chosen.remote_crypto is not None and chosen.remote_crypto.suite is not None
        # Same tag and suite as the line we accept, our own fresh key (RFC 4568 §7.1.2).
        local_crypto = generate_crypto(
            chosen.remote_crypto.tag, chosen.remote_crypto.suite, token_bytes=token_bytes
        )
        security = [Attribute("crypto", str(local_crypto))]
    elif chosen.keying is Keying.DTLS_SRTP:
        assert chosen.remote_setup is not None
        local_setup = chosen.remote_setup.answer()
        dtls_role = DtlsRole.for_setup(local_setup)
        security = _dtls_attributes(local, local_setup)

    answer = _session(origin, local)
    for index, offered in enumerate(offer.media):
        if index != chosen.index:
            answer.media.append(_disabled(offered))
            continue
        answer.media.append(
            MediaDescription(
                media="audio",
                port=local.port,
                proto=media.proto,  # §6.1: the answer uses the offer's transport
                formats=[str(f.payload_type) for f in formats],
                attributes=[
                    *_format_attributes(formats),
                    *_transport_attributes(local, rtcp_mux=rtcp_mux),
                    *security,
                    Attribute(direction.value),
                ],
            )
        )
    negotiated = Negotiated(
        media_index=chosen.index,
        proto=media.proto,
        codec=chosen.codecs[0],
        codecs=tuple(chosen.codecs),
        telephone_event=chosen.event,
        remote_rtp=remote_rtp,
        remote_rtcp=remote_rtcp,
        rtcp_mux=rtcp_mux,
        direction=direction,
        keying=chosen.keying,
        suite=None if local_crypto is None else local_crypto.suite,
        local_crypto=local_crypto,
        remote_crypto=chosen.remote_crypto,
        local_setup=local_setup,
        dtls_role=dtls_role,
        remote_fingerprints=chosen.remote_fingerprints,
        remote_ptime=media.ptime(),
    )
    return Answer(answer, negotiated)


# -- reading the answer to our offer ------------------------------------------------------


def _check_shape(offer: SessionDescription, answer: SessionDescription) -> None:
    """RFC 3264 §6: as many m-lines as the offer, same media and transport, in order."""
    if len(answer.media) != len(offer.media):
        raise NegotiationError(
            f"answer has {len(answer.media)} m-lines, the offer had {len(offer.media)}"
        )
    for index, (ours, theirs) in enumerate(zip(offer.media, answer.media, strict=True)):
        if theirs.media != ours.media or theirs.proto != ours.proto:
            raise NegotiationError(
                f"m-line {index} answered as {theirs.media} {theirs.proto}, "
                f"offered {ours.media} {ours.proto}"
            )


def _answer_formats(
    offer: Offer, media: MediaDescription
) -> tuple[list[PayloadFormat], PayloadFormat | None]:
    offered = set(offer.sdp.media[offer.media_index].formats)
    extra = [f for f in media.formats if f not in offered]
    if extra:
        raise NegotiationError(f"answer has payload types we did not offer: {' '.join(extra)}")
    # An answer that leaves out an rtpmap means the offer's mapping (RFC 3264 §6.1 keeps the
    # offerer's numbers), so the offer's rtpmaps are the fallback.
    ours = {f.payload_type: f.rtpmap for f in offer.sdp.media[offer.media_index].payload_formats()}
    codecs: list[PayloadFormat] = []
    event = None
    for fmt in media.payload_formats(defaults=ours):
        if fmt.is_telephone_event:
            event = event or fmt
            continue
        if _local_codec(offer.local.codecs, fmt) is None:
            raise NegotiationError(
                f"answer maps payload type {fmt.payload_type} to {fmt.encoding_name}/"
                f"{fmt.clock_rate}, which we did not offer"
            )
        codecs.append(fmt)
    if not codecs:
        raise NegotiationError("answer has no audio codec")
    return codecs, event if offer.local.telephone_event else None


def _answer_sdes(offer: Offer, media: MediaDescription) -> CryptoAttribute | None:
    lines = media.crypto()
    if not lines:
        return None
    if len(lines) > 1:
        raise NegotiationError("answer has more than one a=crypto line (RFC 4568 §7.1.2)")
    theirs = lines[0]
    ours = next((c for c in offer.crypto if c.tag == theirs.tag), None)
    if ours is None:
        raise NegotiationError(f"answer's a=crypto tag {theirs.tag} was not offered")
    if theirs.suite_name != ours.suite_name:
        raise NegotiationError(
            f"answer's a=crypto tag {theirs.tag} has suite {theirs.suite_name}, "
            f"offered {ours.suite_name}"
        )
    reason = theirs.unusable_reason
    if reason is not None:
        raise NegotiationError(f"answer's a=crypto is unusable: {reason}")
    return theirs


def process_answer(
    offer: Offer, answer: SessionDescription, *, previous: Negotiated | None = None
) -> Negotiated:
    """Check the peer's answer to our offer (RFC 3264 §7) and give the result.

    Raises :class:`NegotiationError` when the answer is not a valid answer to the offer or
    does not meet our SRTP policy; the call must then be ended with that reason."""
    _check_shape(offer.sdp, answer)
    media = answer.media[offer.media_index]
    if media.rejected:
        raise NegotiationError("the peer rejected the audio stream")
    codecs, event = _answer_formats(offer, media)
    policy = _effective_policy(offer.local, previous)

    keying = Keying.NONE
    local_crypto = remote_crypto = None
    local_setup = dtls_role = None
    fingerprints: tuple[Fingerprint, ...] = ()
    if offer.keying is Keying.DTLS_SRTP:
        setup = answer.media_setup(media)
        if setup not in (SetupRole.ACTIVE, SetupRole.PASSIVE):
            # RFC 5763 §5: the answerer MUST choose active or passive.
            shown = "none" if setup is None else setup.value
            raise NegotiationError(f"answer's a=setup must be active or passive, got {shown}")
        usable = _usable_fingerprints(answer.media_fingerprints(media))
        if isinstance(usable, str):
            raise NegotiationError(f"answer unusable for DTLS-SRTP: {usable}")
        keying, fingerprints = Keying.DTLS_SRTP, usable
        local_setup = setup.answer()
        dtls_role = DtlsRole.for_setup(local_setup)
    elif offer.keying is Keying.SDES:
        remote_crypto = _answer_sdes(offer, media)
        if remote_crypto is not None:
            keying = Keying.SDES
            local_crypto = next(c for c in offer.crypto if c.tag == remote_crypto.tag)
        elif media.proto in _SAVP_PROTOS:
            raise NegotiationError(f"answer on {media.proto} has no a=crypto")
    if policy is SrtpPolicy.MANDATORY and keying is Keying.NONE:
        raise NegotiationError("SRTP is required but the answer has no SRTP")

    rtcp_mux = offer.local.rtcp_mux and media.rtcp_mux
    remote_rtp, remote_rtcp = _remote_transport(answer, media, rtcp_mux=rtcp_mux)
    # The answer's direction is the answerer's; ours is its reverse, within what we offered.
    theirs = _effective_direction(answer, media)
    ours = offer.local.direction
    direction = Direction.from_flags(
        send=theirs.receives and ours.sends, recv=theirs.sends and ours.receives
    )
    return Negotiated(
        media_index=offer.media_index,
        proto=media.proto,
        codec=codecs[0],
        codecs=tuple(codecs),
        telephone_event=event,
        remote_rtp=remote_rtp,
        remote_rtcp=remote_rtcp,
        rtcp_mux=rtcp_mux,
        direction=direction,
        keying=keying,
        suite=None if remote_crypto is None else remote_crypto.suite,
        local_crypto=local_crypto,
        remote_crypto=remote_crypto,
        local_setup=local_setup,
        dtls_role=dtls_role,
        remote_fingerprints=fingerprints,
        remote_ptime=media.ptime(),
    )
