"""What the call screens say, decided without Qt: the dialer, the incoming call, the in-call
window's security panel, the history and the SIP trace ladder.

Every word and rule of UX.md for calls is decided (and tested) here; the widgets copy it.

- :func:`parse_dial` reads what the person typed (``sip:``, ``sips:``, ``sipsec:``, ``tel:`` or
  a bare ``user@domain``); the typed scheme preselects the protection and the chosen protection
  rewrites the scheme (:func:`rewrite_scheme`). ``tel:`` becomes a SIP URI with ``user=phone``
  (RFC 3261 §19.1.6) at the account's domain.
- :class:`CallPresenter` follows one call's events (``CallState``, ``MediaStarted``, and when
  the engine has them ``TunnelState``, ``PeerIdentity``, media statistics) and gives the
  :class:`SecurityPanelModel`: three rows (signalling, identity, audio), each with UX.md's
  words, a colour and a text label, and a summary that is the weakest of the three. A call
  that is not inside a sipsec tunnel (draft-gurbani-sip-sipsec §6) is never shown as end to
  end, whatever any word says.
- :func:`redact_raw` hides Digest credentials (RFC 3261 §22.4) and SDES keys (RFC 4568 §6.1
  ``inline:``) before a message is shown; :class:`LadderModel` lays out a call's messages.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ui.presenters import Protection, grouped_fingerprint, wrap_groups

__all__ = [
    "AUDIO_WORDS",
    "IDENTITY_WORDS",
    "SIGNALLING_WORDS",
    "CallPresenter",
    "DialError",
    "DialTarget",
    "HistoryRow",
    "LadderArrow",
    "LadderModel",
    "Level",
    "SecurityPanelModel",
    "SecurityRow",
    "describe_call_event",
    "history_row",
    "identity_words",
    "parse_dial",
    "redact_raw",
    "rewrite_scheme",
    "safety_number_groups",
]


# --- levels ---------------------------------------------------------------------------------


class Level(Enum):
    """How well one answer protects the person; the colour always comes with a label."""

    NONE = 0
    WEAK = 1
    GOOD = 2
    BEST = 3

    @property
    def colour(self) -> str:
        return _LEVEL_COLOURS[self]

    @property
    def summary(self) -> str:
        """The top line's label when this is the weakest answer."""
        return _LEVEL_SUMMARY[self]


#: Dark enough for white text on them and for text on white (WCAG AA, 4.5:1).
_LEVEL_COLOURS = {
    Level.NONE: "#b22222",
    Level.WEAK: "#9a4a00",
    Level.GOOD: "#1f6b45",
    Level.BEST: "#17651a",
}
_LEVEL_SUMMARY = {
    Level.NONE: "Not protected",
    Level.WEAK: "Partly protected",
    Level.GOOD: "Protected end to end; identity not verified",
    Level.BEST: "Protected end to end and verified",
}


# --- UX.md's words --------------------------------------------------------------------------

SIGNALLING_WORDS = {
    "none": "Call setup not encrypted",
    "hops": "Encrypted to each server; servers on the way can read it",
    "end-to-end": "Encrypted end to end; servers only see that a call was set up",
}
AUDIO_WORDS = {
    "none": "Audio not encrypted",
    "sdes-hops": "Audio encrypted; every server on the way holds the key",
    "dtls-hops": (
        "Audio encrypted; a server on the way could still intercept by swapping fingerprints"
    ),
    "end-to-end": "Audio encrypted end to end",
}
#: UX.md "Who is on the other end": (label, words, level) per identity state.
IDENTITY_WORDS: dict[str, tuple[str, str, Level]] = {
    "claimed": (
        "CLAIMED",
        "Only claimed by the caller; at most our proxy checked their password (Digest)",
        Level.WEAK,
    ),
    "certificate": (
        "CA-SIGNED",
        "Their certificate names this address and is signed by an authority you trust",
        Level.GOOD,
    ),
    "seen-before": (
        "PINNED",
        "The same certificate as before (pinned for this contact)",
        Level.GOOD,
    ),
    "verified": (
        "VERIFIED",
        "Verified: you compared the safety number with this person",
        Level.BEST,
    ),
    "changed": (
        "CHANGED",
        "Warning: this contact now presents a different certificate",
        Level.NONE,
    ),
    "unknown": ("UNKNOWN", "Unknown: the caller gave no usable address", Level.NONE),
}


def identity_words(state: str) -> tuple[str, str, Level]:
    """(label, words, level) for an identity state; unknown states are "unknown"."""
    return IDENTITY_WORDS.get(state, IDENTITY_WORDS["unknown"])


def safety_number_groups(number: str, per_line: int = 4) -> str:
    """A safety number's digits in groups of five, ``per_line`` groups a line (UX.md)."""
    digits = "".join(c for c in number if c.isdigit())
    groups = [digits[i : i + 5] for i in range(0, len(digits), 5)]
    return "\n".join(" ".join(groups[i : i + per_line]) for i in range(0, len(groups), per_line))


# --- the dialer -----------------------------------------------------------------------------


class DialError(ValueError):
    """What the person typed cannot be called; the message says why, in words."""


@dataclass(frozen=True)
class DialTarget:
    """What to hand to ``UserAgent.call``: ``uri`` (``sipsec:`` kept for the engine to map,
    draft-gurbani-sip-sipsec §6.2) and the protection it asks for."""

    uri: str
    protection: Protection


_SCHEMES = {"sip": Protection.PLAIN, "sips": Protection.SIPS, "sipsec": Protection.SIPSEC}
_SCHEME_OF = {Protection.PLAIN: "sip", Protection.SIPS: "sips", Protection.SIPSEC: "sipsec"}
_USER_HOST = re.compile(r"^[^\s@<>\"]+@[A-Za-z0-9.\-\[\]:]+(;[^\s]*)?$")
_TEL = re.compile(r"^\+?[0-9*#()\-. ]+$")


def typed_protection(text: str) -> Protection | None:
    """The protection the typed scheme asks for (None: no scheme or ``tel:``)."""
    scheme, found, _ = text.strip().partition(":")
    if not found or "@" in scheme:
        return None
    return _SCHEMES.get(scheme.lower())


def rewrite_scheme(text: str, protection: Protection) -> str:
    """``text`` with its ``sip:``/``sips:``/``sipsec:`` scheme replaced by the one of
    ``protection``; text without such a scheme (a bare address, ``tel:``) is unchanged."""
    stripped = text.strip()
    if typed_protection(stripped) is None:
        return text
    _, _, rest = stripped.partition(":")
    return f"{_SCHEME_OF[protection]}:{rest}"


def parse_dial(text: str, protection: Protection, domain: str | None = None) -> DialTarget:
    """What the person typed, as a call target with the chosen ``protection``.

    A bare ``user@domain`` gets the protection's scheme; ``tel:+15551234`` becomes
    ``<scheme>:+15551234@<domain>;user=phone`` (RFC 3261 §19.1.6) and needs the account's
    ``domain``. Raises :class:`DialError` with the reason in words.
    """
    stripped = text.strip()
    if not stripped:
        raise DialError("Type who to call, for example bob@example.test")
    scheme, found, rest = stripped.partition(":")
    if found and scheme.lower() == "tel":
        number = rest.split(";", 1)[0].strip()
        if not _TEL.match(number) or not any(c.isdigit() for c in number):
            raise DialError(f"“{rest}” is not a telephone number")
        if not domain:
            raise DialError("A telephone number needs an account to call through")
        digits = "".join(c for c in number if c.isdigit() or c in "+*#")
        return DialTarget(f"{_SCHEME_OF[protection]}:{digits}@{domain};user=phone", protection)
    if found and "@" not in scheme:
        if scheme.lower() not in _SCHEMES:
            raise DialError(
                f"“{scheme}:” addresses cannot be called; use sip:, sips:, sipsec: or tel:"
            )
        address = rest
    else:
        address = stripped
    if not _USER_HOST.match(address):
        raise DialError(f"“{stripped}” is not an address: write it as user@domain")
    return DialTarget(f"{_SCHEME_OF[protection]}:{address}", protection)


# --- one call -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecurityRow:
    """One of UX.md's three answers: ``label`` is a short text label (the colour never
    stands alone), ``words`` the sentence, ``details`` lines under it."""

    title: str  # "Call setup", "Who is on the other end", "Audio"
    label: str
    words: str
    level: Level
    details: tuple[str, ...] = ()

    @property
    def colour(self) -> str:
        return self.level.colour


@dataclass(frozen=True)
class SecurityPanelModel:
    signalling: SecurityRow
    identity: SecurityRow
    audio: SecurityRow
    fingerprint: str | None  # the peer certificate's SHA-256 in hex groups (2 lines)
    safety_number: str | None  # groups of five
    can_mark_verified: bool  # a safety number exists and is not verified yet
    #: Set when the engine's words claimed more than the call can have (shown, and logged).
    corrected: str = ""

    @property
    def rows(self) -> tuple[SecurityRow, SecurityRow, SecurityRow]:
        return (self.signalling, self.identity, self.audio)

    @property
    def weakest(self) -> SecurityRow:
        """The weakest answer (signalling first among equals, then audio, then identity)."""
        order = (self.signalling, self.audio, self.identity)
        return min(order, key=lambda row: row.level.value)

    @property
    def summary(self) -> str:
        return self.weakest.level.summary

    @property
    def summary_words(self) -> str:
        weakest = self.weakest
        return f"{weakest.title}: {weakest.words}"


_PHASE_WORDS = {
    ("outgoing", "calling"): "Calling…",
    ("incoming", "calling"): "Incoming call",
    ("outgoing", "ringing"): "Ringing…",
    ("incoming", "ringing"): "Incoming call",
    ("outgoing", "established"): "In call",
    ("incoming", "established"): "In call",
}
#: TunnelState states after which the call inside is end to end (draft-gurbani-sip-sipsec §6.7).
_TUNNEL_UP = frozenset({"tunnel-open", "verified"})


@dataclass
class CallPresenter:
    """Follows one call's events; ``now`` values are monotonic seconds from the caller."""

    call_id: str
    peer: str
    direction: str  # "outgoing" | "incoming"
    #: What the dialer asked for (None for an incoming call).
    protection: Protection | None = None
    phase: str = "calling"
    reason: str = ""
    held_by: set[str] = field(default_factory=set)  # "us" and/or "peer" (CallHeld)
    tunnel_was_up: bool = False
    downgrade: str = ""  # why the audio lost its encryption mid-call (MediaDowngraded)
    established_at: float | None = None
    ended_at: float | None = None
    signalling_words: str = ""
    audio_words: str = ""
    codec: str = ""
    srtp_suite: str | None = None
    keying: str = ""
    keys_travelled: str = ""  # from the engine when it says (S/MIME...)
    tunnel: str = ""  # the last TunnelState state
    identity_state: str = "claimed"
    peer_aor: str = ""  # the address the peer's certificate names (PeerIdentity)
    tunnel_ids: set[str] = field(default_factory=set)  # Call-IDs of the sipsec CONNECTs
    fingerprint: str | None = None
    safety_number: str | None = None
    level: float | None = None  # 0..1, from media statistics when they carry one
    corrected: str = ""
    events: list[str] = field(default_factory=list)

    @classmethod
    def from_call(cls, call: Any, protection: Protection | None = None) -> CallPresenter:
        """From an engine ``Call`` (duck-typed: ``call_id``, ``peer``, ``direction``)."""
        direction = getattr(getattr(call, "direction", None), "value", "outgoing")
        return cls(str(call.call_id), str(call.peer), str(direction), protection)

    # -- events -------------------------------------------------------------------------------

    def apply(self, event: Any, now: float) -> bool:
        """Take an engine event into account; False if it is about another call."""
        if getattr(event, "call_id", None) != self.call_id:
            return False
        name = getattr(event, "name", "")
        tunnel_id = getattr(event, "tunnel_id", "")
        if isinstance(tunnel_id, str) and tunnel_id:
            self.tunnel_ids.add(tunnel_id)
        if name == "call_state":
            self._state(event.state, event.reason, now)
        elif name == "media_started":
            self.signalling_words = event.signalling
            self.audio_words = event.audio
            self.codec = event.codec
            self.srtp_suite = event.srtp_suite
            self.keying = event.keying
            travelled = getattr(event, "keys_travelled", "")
            self.keys_travelled = travelled if isinstance(travelled, str) else ""
        elif name == "tunnel_state":
            self.tunnel = str(getattr(event, "state", ""))
            if self.tunnel in _TUNNEL_UP:
                self.tunnel_was_up = True  # it stays so for this call when the tunnel closes
            elif self.tunnel == "failed":
                self.tunnel_was_up = False
        elif name == "media_downgraded":
            self.audio_words = AUDIO_WORDS["none"]
            self.keying, self.srtp_suite = "none", None
            self.downgrade = str(getattr(event, "reason", ""))
        elif name == "peer_identity":
            # Only a sipsec tunnel's nested TLS yields a PeerIdentity (draft §6.7 steps 10-11):
            # the call inside it is end to end even if the tunnel's own events came unnamed.
            if self.tunnel != "failed":
                self.tunnel_was_up = True
                self.tunnel = self.tunnel or "verified"
            self.peer_aor = str(getattr(event, "peer_aor", ""))
            self.identity_state = str(getattr(event, "identity_state", "claimed"))
            fingerprint = getattr(event, "fingerprint", None)
            self.fingerprint = fingerprint if isinstance(fingerprint, str) else None
            number = getattr(event, "safety_number", None)
            self.safety_number = number if isinstance(number, str) and number else None
        elif name == "call_held":
            by = str(getattr(event, "by", "us"))
            if getattr(event, "held", True):
                self.held_by.add(by)
            else:
                self.held_by.discard(by)
        elif name == "media_statistics":
            level = getattr(event, "level", None)
            if isinstance(level, int | float) and not isinstance(level, bool):
                self.level = min(1.0, max(0.0, float(level)))
        return True

    def _state(self, state: str, reason: str, now: float) -> None:
        self.phase = state
        if state == "established" and self.established_at is None:
            self.established_at = now
        if state == "ended":
            self.reason = reason
            self.ended_at = now

    def marked_verified(self) -> None:
        """The person pressed "We compared it" and the ledger took it."""
        self.identity_state = "verified"

    # -- what to show -------------------------------------------------------------------------

    @property
    def end_to_end_possible(self) -> bool:
        """Only a call inside an established sipsec tunnel can be end to end (UX.md); a call
        dialled as ``sips:`` or ``sip:`` never is."""
        if self.protection in (Protection.SIPS, Protection.PLAIN):
            return False
        if self.tunnel:
            return self.tunnel_was_up
        # No tunnel event (an engine without them): a sipsec call, or an incoming call, is
        # end to end only if the engine says its host is a tunnel.
        return "end to end" in self.signalling_words

    @property
    def phase_words(self) -> str:
        if self.phase == "ended":
            return f"Call ended: {self.reason}" if self.reason else "Call ended"
        if self.phase == "established" and "us" in self.held_by:
            return "On hold"
        if self.phase == "established" and "peer" in self.held_by:
            return "The other side put the call on hold"
        return _PHASE_WORDS.get((self.direction, self.phase), self.phase)

    def timer(self, now: float) -> str:
        """How long the call has been established, ``m:ss`` (``h:mm:ss`` past an hour)."""
        if self.established_at is None:
            return "0:00"
        end = self.ended_at if self.ended_at is not None else now
        seconds = int(max(0.0, end - self.established_at))
        hours, rest = divmod(seconds, 3600)
        minutes, secs = divmod(rest, 60)
        return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"

    def panel(self) -> SecurityPanelModel:
        corrected: list[str] = []
        signalling = self._signalling_row(corrected)
        audio = self._audio_row(corrected)
        label, words, level = self.identity_view()
        identity = SecurityRow("Who is on the other end", label, words, level, self._id_details())
        self.corrected = " ".join(corrected)
        return SecurityPanelModel(
            signalling=signalling,
            identity=identity,
            audio=audio,
            fingerprint=wrap_groups(grouped_fingerprint(self.fingerprint))
            if self.fingerprint
            else None,
            safety_number=safety_number_groups(self.safety_number) if self.safety_number else None,
            can_mark_verified=bool(self.safety_number) and self.identity_state != "verified",
            corrected=self.corrected,
        )

    def _signalling_row(self, corrected: list[str]) -> SecurityRow:
        title = "Call setup"
        words = self.signalling_words
        e2e = self.end_to_end_possible
        if not words:
            if self.tunnel and e2e:  # the tunnel is up: the INVITE came (or goes) inside it
                return SecurityRow(title, "END TO END", SIGNALLING_WORDS["end-to-end"], Level.BEST)
            if self.protection is Protection.SIPSEC and not e2e:
                return SecurityRow(
                    title,
                    "NOT YET",
                    "Setting up the end-to-end tunnel; nothing is sent until it is up",
                    Level.WEAK,
                )
            words = {
                Protection.PLAIN: SIGNALLING_WORDS["none"],
                Protection.SIPS: SIGNALLING_WORDS["hops"],
                Protection.SIPSEC: SIGNALLING_WORDS["end-to-end"],
                None: SIGNALLING_WORDS["hops"] if "sips:" in self.peer else "",
            }[self.protection]
            if not words:
                return SecurityRow(title, "UNKNOWN", "Not known yet", Level.NONE)
        if words == SIGNALLING_WORDS["end-to-end"] or "end to end" in words:
            if e2e:
                return SecurityRow(title, "END TO END", SIGNALLING_WORDS["end-to-end"], Level.BEST)
            corrected.append("The call setup is not inside an end-to-end tunnel.")
            words = SIGNALLING_WORDS["hops"]
        if words == SIGNALLING_WORDS["none"]:
            return SecurityRow(title, "NOT ENCRYPTED", words, Level.NONE)
        return SecurityRow(title, "SERVERS CAN READ", words, Level.WEAK)

    def _audio_row(self, corrected: list[str]) -> SecurityRow:
        title = "Audio"
        if not self.audio_words:
            return SecurityRow(title, "NOT YET", "No audio yet", Level.WEAK)
        words = self.audio_words
        details = self._media_details()
        if words == AUDIO_WORDS["end-to-end"] or "end to end" in words:
            if self.end_to_end_possible and self.keying != "none":
                return SecurityRow(
                    title, "END TO END", AUDIO_WORDS["end-to-end"], Level.BEST, details
                )
            corrected.append("The audio keys did not travel end to end.")
            words = (
                AUDIO_WORDS["dtls-hops"] if self.keying == "dtls-srtp" else AUDIO_WORDS["sdes-hops"]
            )
            if self.keying == "none":
                words = AUDIO_WORDS["none"]
        if words == AUDIO_WORDS["none"]:
            return SecurityRow(title, "NOT ENCRYPTED", words, Level.NONE, details)
        return SecurityRow(title, "SERVERS HOLD KEY", words, Level.WEAK, details)

    def _media_details(self) -> tuple[str, ...]:
        keying = {
            "sdes": "SDES (keys written in the call setup)",
            "dtls-srtp": "DTLS-SRTP (keys agreed between the phones)",
            "none": "none",
        }.get(self.keying, self.keying or "—")
        travelled = self.keys_travelled
        if not travelled:
            if self.keying == "none":
                travelled = "no keys: the audio is not encrypted"
            elif self.end_to_end_possible:
                travelled = "inside the sipsec tunnel"
            elif self.keying == "dtls-srtp":
                travelled = "fingerprints across each TLS hop"
            else:
                travelled = "across each TLS hop (every server on the way)"
        lines = [
            *((f"Encryption dropped: {self.downgrade}",) if self.downgrade else ()),
            f"Codec: {self.codec or '—'}",
            f"SRTP suite: {self.srtp_suite or 'none'}",
            f"Key exchange: {keying}",
            f"Keys travelled: {travelled}",
        ]
        return tuple(lines)

    def identity_view(self) -> tuple[str, str, Level]:
        """(label, words, level) of the identity answer: "claimed" with a certificate (a
        sipsec peer nobody vouches for, accepted by a person) says so instead of Digest."""
        if self.identity_state == "claimed" and self.fingerprint:
            return (
                "CLAIMED",
                "Their certificate is vouched for by nobody (you accepted it); compare the "
                "safety number to be sure",
                Level.WEAK,
            )
        return identity_words(self.identity_state)

    def _id_details(self) -> tuple[str, ...]:
        if self.identity_state == "claimed" and not self.fingerprint:
            return ("No certificate from the other phone on this call.",)
        return ()


# --- incoming -------------------------------------------------------------------------------


def incoming_identity(presenter: CallPresenter) -> tuple[str, str, Level]:
    """How the caller's identity was established, for the incoming-call window."""
    if presenter.peer in ("", "unknown"):
        return identity_words("unknown")
    return presenter.identity_view()


# --- history --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryRow:
    direction: str  # "↗ Outgoing" / "↙ Incoming" (arrow and word)
    peer: str
    start: str
    duration: str
    outcome: str
    protection: str
    level: Level


def history_row(entry: Any, tz: dt.tzinfo | None = None) -> HistoryRow:
    """One line of the history list from a ``HistoryEntry`` (its protection summary is the
    weakest of what the engine reported, as in the call window)."""
    direction = "↗ Outgoing" if entry.direction == "outgoing" else "↙ Incoming"
    start = entry.started.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    duration = "—"
    if entry.duration is not None:
        minutes, secs = divmod(int(entry.duration), 60)
        duration = f"{minutes}:{secs:02d}"
    presenter = CallPresenter(entry.call_id, entry.peer, entry.direction)
    # The words were checked by the call window when they came; a tunnel is all they imply.
    presenter.tunnel_was_up = entry.signalling == SIGNALLING_WORDS["end-to-end"]
    presenter.tunnel = "recorded" if presenter.tunnel_was_up else ""
    presenter.signalling_words = entry.signalling
    presenter.audio_words = entry.audio
    presenter.keying = "none" if entry.audio == AUDIO_WORDS["none"] else "sdes"
    presenter.identity_state = entry.identity or "claimed"
    if not entry.signalling:
        return HistoryRow(direction, entry.peer, start, duration, entry.outcome, "—", Level.NONE)
    panel = presenter.panel()
    return HistoryRow(
        direction, entry.peer, start, duration, entry.outcome, panel.summary, panel.weakest.level
    )


# --- the SIP trace --------------------------------------------------------------------------

_AUTH_LINE = re.compile(
    r"^((?:proxy-)?authorization[ \t]*:[ \t]*)(\S+)?.*$", re.IGNORECASE | re.MULTILINE
)
_CRYPTO_KEY = re.compile(r"(inline:)[^\s|;]+", re.IGNORECASE)
_KEY_LINE = re.compile(r"^(k=)(\S*).*$", re.MULTILINE)
REDACTED = "[redacted]"


def redact_raw(raw: bytes | str) -> str:
    """The message as text with Authorization/Proxy-Authorization values (RFC 3261 §22.4),
    SDES keys (``a=crypto ... inline:KEY``, RFC 4568 §6.1) and SDP ``k=`` lines hidden."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = _AUTH_LINE.sub(lambda m: f"{m.group(1)}{m.group(2) or ''} {REDACTED}", text)
    text = _CRYPTO_KEY.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return _KEY_LINE.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


_PROTECTION_MARKS = {
    "none": ("not encrypted", Level.NONE),
    "tls-hop": ("TLS to this hop", Level.WEAK),
    "sipsec-tunnel": ("sipsec tunnel", Level.BEST),
}


@dataclass(frozen=True)
class LadderArrow:
    index: int
    at: float
    source: int  # column index
    target: int
    label: str  # the first line, shortened
    marker: str  # the protection in words ("TLS to this hop")
    level: Level
    raw: str  # redacted

    @property
    def colour(self) -> str:
        return self.level.colour


def call_id_of(raw: bytes | str) -> str | None:
    """The Call-ID (or compact ``i:``) header of a raw message, if any (RFC 3261 §20.8)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    head = text.split("\r\n\r\n", 1)[0].split("\n\n", 1)[0]
    for line in head.splitlines():
        name, found, value = line.partition(":")
        if found and name.strip().lower() in ("call-id", "i"):
            return value.strip()
    return None


@dataclass
class LadderModel:
    """A ladder: ``parties`` are the columns (``You`` first), ``arrows`` the messages."""

    me: str = "You"
    parties: list[str] = field(default_factory=list)
    arrows: list[LadderArrow] = field(default_factory=list)
    #: Only messages with one of these Call-IDs (the call's and its sipsec tunnel's CONNECT);
    #: None: every message.
    call_ids: set[str] | None = None

    def __post_init__(self) -> None:
        if not self.parties:
            self.parties = [self.me]

    @classmethod
    def from_entries(
        cls, entries: Iterable[Any], *, call_ids: Iterable[str] | None = None, me: str = "You"
    ) -> LadderModel:
        model = cls(me=me, call_ids=None if call_ids is None else set(call_ids))
        for entry in entries:
            model.add(entry)
        return model

    def add(self, entry: Any) -> LadderArrow | None:
        """Add a ``TraceEntry`` (duck-typed); None if it belongs to another call."""
        raw = getattr(entry, "raw", b"")
        if self.call_ids is not None and call_id_of(raw) not in self.call_ids:
            return None
        peer = str(getattr(entry, "peer", "?"))
        if peer not in self.parties:
            self.parties.append(peer)
        column = self.parties.index(peer)
        sent = getattr(entry, "direction", "sent") == "sent"
        marker, level = _PROTECTION_MARKS.get(
            str(getattr(entry, "protection", "none")), ("protection unknown", Level.NONE)
        )
        first = str(getattr(entry, "first_line", "")) or redact_raw(raw).split("\n", 1)[0]
        arrow = LadderArrow(
            index=len(self.arrows),
            at=float(getattr(entry, "at", 0.0)),
            source=0 if sent else column,
            target=column if sent else 0,
            label=_short(first.strip()),
            marker=marker,
            level=level,
            raw=redact_raw(raw),
        )
        self.arrows.append(arrow)
        return arrow


def _short(first_line: str) -> str:
    """``INVITE sips:bob@x SIP/2.0`` → ``INVITE``; ``SIP/2.0 200 OK`` → ``200 OK``."""
    if first_line.startswith("SIP/2.0 "):
        return first_line[len("SIP/2.0 ") :]
    return first_line.split(" ", 1)[0] if first_line else "?"


def describe_call_event(event: Any) -> str | None:
    """One line for the status log about a call event (None: not a call event)."""
    name = getattr(event, "name", "")
    if name == "call_state":
        text = f"Call with {event.peer}: {event.state}"
        return f"{text} ({event.reason})" if event.reason else text
    if name == "media_started":
        suite = f", {event.srtp_suite}" if event.srtp_suite else ""
        return f"Audio started ({event.codec}{suite}): {event.audio}"
    if name == "tunnel_state":
        why = f": {event.reason}" if getattr(event, "reason", "") else ""
        return f"End-to-end tunnel to {event.peer}: {event.state}{why}"
    if name == "peer_identity":
        _, words, _ = identity_words(str(getattr(event, "identity_state", "")))
        return f"{getattr(event, 'peer_aor', 'The other phone')}: {words}"
    if name == "call_held":
        who = "You" if getattr(event, "by", "us") == "us" else "The other side"
        return f"{who} {'put the call on hold' if event.held else 'resumed the call'}"
    if name == "media_downgraded":
        return f"Audio no longer encrypted: {event.reason}"
    if name == "dtmf_received":
        return f"The other side pressed {event.digit}"
    return None


def keypad_digits() -> Sequence[str]:
    """The DTMF keypad (RFC 4733 events 0-9, *, #), in telephone order."""
    return ("1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#")
