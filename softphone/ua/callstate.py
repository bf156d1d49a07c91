"""What every part of a call shares: its phases, its error, its constants and its words.

Split out of :mod:`softphone.ua.call` so that :mod:`softphone.ua.reinvite` (re-INVITE, hold,
DTMF) and :mod:`softphone.ua.smime_call` (RFC 3261 §23 bodies) can use them without importing
the call itself; :mod:`softphone.ua.call` re-exports every public name.

The words are UX.md's three questions: who can read the call setup
(:func:`signalling_protection`), who can listen to the audio (:func:`audio_protection`), and
why a call ended (:func:`ended_reason`, RFC 3261 §21 status codes in words).
"""

from __future__ import annotations

import enum

from softphone.sdp.policy import Keying
from softphone.sip.errors import ParseError
from softphone.sip.message import Response
from softphone.sip.uri import SipURI, parse_uri

__all__ = [
    "ACK_TIMEOUT",
    "ALLOW",
    "AUDIO_WORDS",
    "END_TO_END_SIGNALLING",
    "REASONS",
    "USER_AGENT",
    "CallDirection",
    "CallError",
    "CallPhase",
    "audio_protection",
    "ended_reason",
    "parse_target",
    "quoted_safe",
    "signalling_protection",
]

#: Methods a call understands (Allow in INVITEs and their answers).
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS"
USER_AGENT = "softphone/0.1"
#: How long an answered incoming call waits for the ACK (RFC 3261 §13.3.1.4: 64*T1).
ACK_TIMEOUT = 32.0

#: UX.md "Who can listen to the audio (media)?", by how the keys travelled.
AUDIO_WORDS = {
    "none": "Audio not encrypted",
    "sdes-hops": "Audio encrypted; every server on the way holds the key",
    "dtls-hops": (
        "Audio encrypted; a server on the way could still intercept by swapping fingerprints"
    ),
    "end-to-end": "Audio encrypted end to end",
}
_SIGNALLING_WORDS = {
    True: "Encrypted to each server; servers on the way can read it",
    False: "Call setup not encrypted",
}
#: UX.md: signalling inside a sipsec tunnel (draft-gurbani-sip-sipsec §6.4).
END_TO_END_SIGNALLING = "Encrypted end to end; servers only see that a call was set up"


class CallError(Exception):
    """A call could not be placed at all (not registered, refused by policy); ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CallPhase(enum.Enum):
    CALLING = "calling"  # INVITE sent (outgoing) / received and being looked at (incoming)
    RINGING = "ringing"  # 180 received (outgoing) / sent (incoming)
    ESTABLISHED = "established"  # 2xx and ACK: media flows
    ENDED = "ended"


class CallDirection(enum.Enum):
    OUTGOING = "outgoing"
    INCOMING = "incoming"


def audio_protection(keying: Keying, *, end_to_end: bool = False) -> str:
    """UX.md's words for who can listen, by how the keys travelled: over ``sips:`` hops, or
    (``end_to_end``) inside a sipsec tunnel or in S/MIME-encrypted SDP (RFC 3261 §23.3), where
    no server on the way reads the keys."""
    if end_to_end and keying is not Keying.NONE:
        return AUDIO_WORDS["end-to-end"]
    if keying is Keying.SDES:
        return AUDIO_WORDS["sdes-hops"]
    if keying is Keying.DTLS_SRTP:
        return AUDIO_WORDS["dtls-hops"]
    return AUDIO_WORDS["none"]


def signalling_protection(over_tls: bool, *, end_to_end: bool = False) -> str:
    """UX.md's words for who can read the call setup on a TLS or a plain hop, or inside a
    sipsec tunnel (``end_to_end``)."""
    if end_to_end:
        return END_TO_END_SIGNALLING
    return _SIGNALLING_WORDS[over_tls]


#: Final responses to an INVITE in words (RFC 3261 §21).
REASONS = {
    486: "busy",
    600: "busy",
    603: "declined",
    404: "not found",
    604: "not found",
    480: "unavailable",
    408: "no answer",
    487: "cancelled",
}


def ended_reason(response: Response) -> str:
    """The reason in words for a final non-2xx response to our INVITE (RFC 3261 §21)."""
    code = response.status_code
    known = REASONS.get(code)
    if known is not None:
        return known
    if code in (488, 606):
        warning = response.headers.get("Warning")
        detail = f": {warning}" if warning else ""
        return f"the other phone cannot accept our media ({code} {response.reason}{detail})"
    return f"failed ({code} {response.reason})"


def quoted_safe(text: str) -> str:
    """Text for a quoted-string (RFC 3261 §25.1): no quotes, backslashes or line breaks."""
    return "".join(c for c in text if c not in '"\\\r\n\0')[:200]


def parse_target(text: str, aor: SipURI) -> SipURI:
    """What the person typed as a SIP URI: ``bob`` → ``sips:bob@<our domain>``, a full
    ``sip:``/``sips:`` URI as it is. ``CallError`` for anything else."""
    text = text.strip()
    if ":" not in text.split("@", 1)[0]:
        text = f"{aor.scheme}:{text}" if "@" in text else f"{aor.scheme}:{text}@{aor.host}"
    try:
        uri = parse_uri(text)
    except ParseError as exc:
        raise CallError(f"not an address we can call: {exc.reason}") from exc
    if not isinstance(uri, SipURI):
        raise CallError("only sip: and sips: addresses can be called")
    return uri
