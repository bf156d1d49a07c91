"""What the engine tells its driver: typed events, one frozen dataclass each.

The headless agent prints each as one JSON line (:meth:`Event.to_json_line`); the GUI turns
each into a Qt signal. ``to_json()`` always has ``"event"``, the event's name, first; the
other keys are the fields. Events are validated when built (h11 style) and carry no secret:
no password, no Digest response, no private key, only what the person may see.

=======================  ===========================================================
``registered``           the registrar accepted the binding (RFC 3261 §10.2.4)
``registration_failed``  a REGISTER failed; ``retrying`` says whether the engine goes on
``unregistered``         the binding was removed (asked for, or expired)
``trust_required``       a certificate needs a person's decision; something waits for it
``connection_lost``      the flow to a server broke (RFC 5626 §4.4 flow failure)
``connection_restored``  a new flow replaced it
``call_state``           a call is calling, ringing, established or ended (with why)
``media_started``        audio flows: codec, SRTP suite, keying, who can listen (UX.md)
``tunnel_state``         a sipsec tunnel (draft-gurbani-sip-sipsec-01 §6) changed state
``peer_identity``        who is on the other end of a sipsec call, and how we know
=======================  ===========================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, ClassVar, TypeAlias

from softphone.security.certificates import fingerprint_hex
from softphone.security.trust import TrustDecisionRequired, TrustReport
from softphone.sip.errors import ParseError
from softphone.sip.uri import SipURI, parse_uri
from softphone.ua.account import Transport

__all__ = [
    "CALL_STATES",
    "EVENT_TYPES",
    "CallState",
    "ConnectionLost",
    "ConnectionRestored",
    "Event",
    "JsonValue",
    "MediaStarted",
    "PeerIdentity",
    "Registered",
    "RegistrationFailed",
    "TrustProblem",
    "TrustRequired",
    "TunnelState",
    "Unregistered",
    "event_from_json",
]

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"


def _check_uri(what: str, text: str) -> None:
    """A sip:/sips: URI without a password in it: events are printed and logged."""
    try:
        uri = parse_uri(text)
    except ParseError:
        raise ValueError(f"{what} is not a SIP URI") from None
    if not isinstance(uri, SipURI):
        raise ValueError(f"{what} must be a sip: or sips: URI")
    if uri.password is not None:
        raise ValueError(f"{what} must not contain a password")


def _check_int(what: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what} must be an integer from {low} to {high}, not {value!r}")


def _check_str(what: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")


def _json(value: object) -> JsonValue:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Enum):
        return _json(value.value)
    if isinstance(value, tuple | list):
        return [_json(v) for v in value]
    if isinstance(value, _JsonDataclass):
        return value.to_json()
    # Anything else (a Secret, bytes, a certificate) is a mistake, not something to stringify.
    raise TypeError(f"{type(value).__name__} has no JSON form in an event")


class _JsonDataclass:
    """``to_json()`` for a dataclass: its fields in order, converted by :func:`_json`."""

    def to_json(self) -> dict[str, JsonValue]:
        return {f.name: _json(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


class Event(_JsonDataclass):
    """Base class of the engine's events; ``name`` is the ``"event"`` value in JSON."""

    name: ClassVar[str]

    def to_json(self) -> dict[str, JsonValue]:
        return {"event": self.name, **super().to_json()}

    def to_json_line(self) -> str:
        """One line of JSON (UTF-8 text, no newline inside), as the agent prints it."""
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":"))


def _transport(value: Transport | str) -> Transport:
    try:
        return Transport(value)
    except ValueError:
        raise ValueError(f"transport must be tls, tcp or udp, not {value!r}") from None


@dataclass(frozen=True)
class Registered(Event):
    """The registrar accepted our binding for ``expires`` seconds (RFC 3261 §10.2.4: the
    value the 200 OK gave, which may be less than asked). ``registrar_fingerprint`` is the
    SHA-256 of the registrar's certificate (``AB:12:...``) over TLS, else ``None``."""

    name: ClassVar[str] = "registered"

    aor: str
    expires: int
    registrar: str
    registrar_fingerprint: str | None
    transport: Transport
    #: The Digest algorithm the registrar accepted (None: it asked for no credentials), and
    #: whether it is a weak one (MD5: RFC 8760 prefers SHA-256), so the user can be told.
    algorithm: str | None = None
    weak: bool = False

    def __post_init__(self) -> None:
        _check_uri("aor", self.aor)
        _check_uri("registrar", self.registrar)
        if self.algorithm is not None:
            _check_str("algorithm", self.algorithm)
        _check_int("expires", self.expires, 0, 2**32 - 1)
        if self.registrar_fingerprint is not None:
            _check_str("registrar_fingerprint", self.registrar_fingerprint)
        object.__setattr__(self, "transport", _transport(self.transport))
        if self.transport is Transport.TLS and self.registrar_fingerprint is None:
            raise ValueError("a registration over TLS must say which certificate it trusted")


@dataclass(frozen=True)
class RegistrationFailed(Event):
    """A REGISTER failed: ``reason`` in words, the final ``status_code`` if a response came
    (``None`` for a timeout, a refused certificate, a DNS failure), and whether the engine
    will try again by itself."""

    name: ClassVar[str] = "registration_failed"

    aor: str
    reason: str
    status_code: int | None
    retrying: bool

    def __post_init__(self) -> None:
        _check_uri("aor", self.aor)
        _check_str("reason", self.reason)
        if self.status_code is not None:
            _check_int("status_code", self.status_code, 300, 699)
        if not isinstance(self.retrying, bool):
            raise TypeError("retrying must be a bool")


@dataclass(frozen=True)
class Unregistered(Event):
    """The binding is gone: we removed it (``Expires: 0``), or it lapsed. ``reason`` says
    which, in words."""

    name: ClassVar[str] = "unregistered"

    aor: str
    reason: str = ""

    def __post_init__(self) -> None:
        _check_uri("aor", self.aor)
        _check_str("reason", self.reason)


@dataclass(frozen=True)
class TrustProblem(_JsonDataclass):
    """One finding of a :class:`~softphone.security.trust.TrustReport`: the problem's code
    (``"expired"``, ``"unknown-ca"``...), the index in the chain of the certificate it
    concerns (0: the peer's own) and the message for the person."""

    problem: str
    certificate: int
    message: str


@dataclass(frozen=True)
class TrustRequired(Event):
    """A certificate only a person can decide on; ``waiting_for`` says what is paused in
    words ("registration to example.test"). A summary of the report: who it should be,
    every problem with its message, the peer certificate's SHA-256 (``AB:12:...``), the
    subjects of the chain (peer first), whether it replaced a pinned certificate (the loud
    case, UX.md) and whether the person may accept it at all."""

    name: ClassVar[str] = "trust_required"

    waiting_for: str
    identity: str
    problems: tuple[TrustProblem, ...]
    fingerprint: str | None
    chain_subjects: tuple[str, ...]
    changed: bool
    overridable: bool

    def __post_init__(self) -> None:
        if not self.waiting_for:
            raise ValueError("say what is waiting for the decision")
        _check_str("identity", self.identity)
        object.__setattr__(self, "problems", tuple(self.problems))
        object.__setattr__(self, "chain_subjects", tuple(self.chain_subjects))
        if not all(isinstance(p, TrustProblem) for p in self.problems):
            raise TypeError("problems must be TrustProblem values")

    @classmethod
    def from_report(cls, report: TrustReport, waiting_for: str) -> TrustRequired:
        return cls(
            waiting_for=waiting_for,
            identity=str(report.identity),
            problems=tuple(
                TrustProblem(f.problem.value, f.certificate_index, f.message)
                for f in report.findings
            ),
            fingerprint=fingerprint_hex(report.fingerprint) if report.fingerprint else None,
            chain_subjects=tuple(c.subject for c in report.certificates),
            changed=report.changed,
            overridable=report.overridable,
        )

    @classmethod
    def from_required(cls, required: TrustDecisionRequired) -> TrustRequired:
        return cls.from_report(required.report, required.waiting_for)


@dataclass(frozen=True)
class ConnectionLost(Event):
    """The connection (RFC 5626 flow) to ``remote`` (``host:port``) broke; ``reason`` in
    words. Registration and calls over it wait for :class:`ConnectionRestored`."""

    name: ClassVar[str] = "connection_lost"

    aor: str
    remote: str
    transport: Transport
    reason: str

    def __post_init__(self) -> None:
        _check_uri("aor", self.aor)
        _check_str("remote", self.remote)
        _check_str("reason", self.reason)
        object.__setattr__(self, "transport", _transport(self.transport))


@dataclass(frozen=True)
class ConnectionRestored(Event):
    """A new connection to ``remote`` replaced the lost one."""

    name: ClassVar[str] = "connection_restored"

    aor: str
    remote: str
    transport: Transport

    def __post_init__(self) -> None:
        _check_uri("aor", self.aor)
        _check_str("remote", self.remote)
        object.__setattr__(self, "transport", _transport(self.transport))


#: The phases a call reports, in order (softphone.ua.call.CallPhase values).
CALL_STATES = ("calling", "ringing", "established", "ended")


@dataclass(frozen=True)
class CallState(Event):
    """A call (``call_id``: its SIP Call-ID) changed phase: ``calling`` (INVITE sent, or an
    incoming one being looked at), ``ringing``, ``established`` (answered, media started),
    ``ended``. ``reason`` says why it ended, in words ("busy", "declined", "cancelled", "the
    other side hung up", "connection lost (...)"), and ``status_code`` the SIP final
    response that ended it, if one did (RFC 3261 §21)."""

    name: ClassVar[str] = "call_state"

    call_id: str
    direction: str  # "outgoing" | "incoming"
    peer: str
    state: str
    reason: str = ""
    status_code: int | None = None

    def __post_init__(self) -> None:
        _check_str("call_id", self.call_id)
        _check_str("peer", self.peer)
        _check_str("reason", self.reason)
        if self.direction not in ("outgoing", "incoming"):
            raise ValueError(f"direction must be outgoing or incoming, not {self.direction!r}")
        if self.state not in CALL_STATES:
            raise ValueError(f"state must be one of {', '.join(CALL_STATES)}, not {self.state!r}")
        if self.status_code is not None:
            _check_int("status_code", self.status_code, 100, 699)


@dataclass(frozen=True)
class MediaStarted(Event):
    """Audio of call ``call_id`` flows: the codec sent, whether it is encrypted, the SRTP
    suite (``AES_CM_128_HMAC_SHA1_80``...; None without SRTP), how the keys travelled
    (``sdes``, ``dtls-srtp``, ``none``) and UX.md's words for who can listen (``audio``) and
    who can read the call setup (``signalling``)."""

    name: ClassVar[str] = "media_started"

    call_id: str
    codec: str
    encrypted: bool
    srtp_suite: str | None
    keying: str
    audio: str
    signalling: str

    def __post_init__(self) -> None:
        for what in ("call_id", "codec", "keying", "audio", "signalling"):
            _check_str(what, getattr(self, what))
        if not isinstance(self.encrypted, bool):
            raise TypeError("encrypted must be a bool")
        if self.keying not in ("sdes", "dtls-srtp", "none"):
            raise ValueError(f"keying must be sdes, dtls-srtp or none, not {self.keying!r}")
        if self.encrypted != (self.keying != "none"):
            raise ValueError("encrypted and keying disagree")
        if self.srtp_suite is not None:
            _check_str("srtp_suite", self.srtp_suite)
        if not self.encrypted and self.audio != "Audio not encrypted":
            raise ValueError("unencrypted audio must be described as 'Audio not encrypted'")


#: The states a sipsec tunnel reports (draft-gurbani-sip-sipsec-01 §6.7, Figure 3).
TUNNEL_STATES = ("connecting", "tunnel-open", "verified", "failed", "closed")
#: UX.md "Who is on the other end (identity)?".
IDENTITY_STATES = ("claimed", "certificate", "seen-before", "verified", "changed")


@dataclass(frozen=True)
class TunnelState(Event):
    """A sipsec tunnel changed state (draft-gurbani-sip-sipsec-01 §6.4-6.5): ``connecting``
    (CONNECT sent or received), ``tunnel-open`` (the 2xx passed and the end-to-end TLS
    handshake completed), ``verified`` (the peer's certificate was accepted: the INVITE may go
    inside), ``failed`` (``reason`` says why in words), ``closed``. ``tunnel_id`` is the
    CONNECT's Call-ID (what the proxies saw), ``call_id`` the Call-ID of the call inside once
    known. ``proxy_transparent``: whether the proxies went transparent (None: not known)."""

    name: ClassVar[str] = "tunnel_state"

    tunnel_id: str
    direction: str  # "outgoing" | "incoming"
    peer: str
    state: str
    reason: str = ""
    proxy_transparent: bool | None = None
    call_id: str = ""

    def __post_init__(self) -> None:
        for what in ("tunnel_id", "peer", "reason", "call_id"):
            _check_str(what, getattr(self, what))
        if self.direction not in ("outgoing", "incoming"):
            raise ValueError(f"direction must be outgoing or incoming, not {self.direction!r}")
        if self.state not in TUNNEL_STATES:
            raise ValueError(f"state must be one of {', '.join(TUNNEL_STATES)}, not {self.state!r}")
        if self.proxy_transparent is not None and not isinstance(self.proxy_transparent, bool):
            raise TypeError("proxy_transparent must be a bool or None")
        if self.state == "failed" and not self.reason:
            raise ValueError("a failed tunnel must say why")


@dataclass(frozen=True)
class PeerIdentity(Event):
    """Who is on the other end of sipsec call ``call_id`` (UX.md identity states):
    ``peer_aor`` the address the certificate names, ``fingerprint`` its SHA-256
    (``AB:CD:...``), ``identity_state`` one of ``claimed`` (accepted by a person without a
    CA or pin vouching), ``certificate`` (chains to a trusted CA), ``seen-before`` (matches the
    pinned certificate), ``verified`` (the safety number was compared), ``changed`` (another
    certificate was pinned: accepted by a person despite the warning) and ``safety_number``
    (60 digits in groups of five) when both certificates are known. ``ledger_state``: the
    contact's state in the trust ledger (issue 6; the same words, None when unknown);
    ``via``: ``sipsec`` (the end-to-end TLS, ``tunnel_id`` set) or ``smime`` (an RFC 3261
    §23 signer or certs-only body, ``tunnel_id`` empty)."""

    name: ClassVar[str] = "peer_identity"

    call_id: str
    tunnel_id: str
    peer_aor: str
    fingerprint: str
    identity_state: str
    safety_number: str | None = None
    ledger_state: str | None = None
    via: str = "sipsec"

    def __post_init__(self) -> None:
        for what in ("call_id", "tunnel_id", "fingerprint"):
            _check_str(what, getattr(self, what))
        _check_uri("peer_aor", self.peer_aor)
        for what in ("identity_state", "ledger_state"):
            value = getattr(self, what)
            if (value is not None or what == "identity_state") and value not in IDENTITY_STATES:
                raise ValueError(
                    f"{what} must be one of {', '.join(IDENTITY_STATES)}, not {value!r}"
                )
        if self.via not in ("sipsec", "smime"):
            raise ValueError(f"via must be sipsec or smime, not {self.via!r}")
        if self.safety_number is not None:
            groups = self.safety_number.split(" ")
            if len(groups) != 12 or not all(len(g) == 5 and g.isdigit() for g in groups):
                raise ValueError("safety_number must be 12 groups of 5 digits")


EVENT_TYPES: dict[str, type[Event]] = {
    cls.name: cls
    for cls in (
        Registered,
        RegistrationFailed,
        Unregistered,
        TrustRequired,
        ConnectionLost,
        ConnectionRestored,
        CallState,
        MediaStarted,
        TunnelState,
        PeerIdentity,
    )
}


def event_from_json(data: dict[str, Any]) -> Event:
    """The event a :meth:`Event.to_json` dict (or a parsed agent line) describes.

    Raises ``ValueError`` for an unknown event or a missing or unknown field.
    """
    kind = EVENT_TYPES.get(data.get("event", ""))
    if kind is None:
        raise ValueError(f"unknown event {data.get('event')!r}")
    names = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    extra = set(data) - names - {"event"}
    if extra:
        raise ValueError(f"unknown fields for {kind.name}: {', '.join(sorted(extra))}")
    values = {k: v for k, v in data.items() if k != "event"}
    if kind is TrustRequired:
        values["problems"] = tuple(TrustProblem(**p) for p in values.get("problems", ()))
        values["chain_subjects"] = tuple(values.get("chain_subjects", ()))
    try:
        return kind(**values)
    except TypeError as exc:
        raise ValueError(f"bad {kind.name} event: {exc}") from None


@dataclass(frozen=True)
class CallHeld(Event):
    """Call ``call_id`` was put on hold or taken off it (RFC 3264 §8.4, RFC 6337 §5.3): ``by``
    ``"us"`` (our re-INVITE with ``a=sendonly``/``a=inactive``: we send no audio) or
    ``"peer"`` (their offer or answer says "do not send to me": we send no audio either);
    ``held`` False when that side resumed. Both can hold at once; each change is one event.
    The call stays ``established`` in :class:`CallState` throughout."""

    name: ClassVar[str] = "call_held"

    call_id: str
    by: str  # "us" | "peer"
    held: bool

    def __post_init__(self) -> None:
        _check_str("call_id", self.call_id)
        if self.by not in ("us", "peer"):
            raise ValueError(f"by must be us or peer, not {self.by!r}")
        if not isinstance(self.held, bool):
            raise TypeError("held must be a bool")


#: RFC 4733 §3.2 events 0-15 as the digits a person presses.
DTMF_DIGITS = "0123456789*#ABCD"


@dataclass(frozen=True)
class DtmfReceived(Event):
    """The peer pressed ``digit`` (one of ``0-9 * # A-D``), received as an RFC 4733
    telephone-event in call ``call_id``; reported once per key press."""

    name: ClassVar[str] = "dtmf_received"

    call_id: str
    digit: str

    def __post_init__(self) -> None:
        _check_str("call_id", self.call_id)
        _check_str("digit", self.digit)
        if len(self.digit) != 1 or self.digit not in DTMF_DIGITS:
            raise ValueError(f"digit must be one of {DTMF_DIGITS}, not {self.digit!r}")


@dataclass(frozen=True)
class MediaDowngraded(Event):
    """The audio of call ``call_id`` is no longer encrypted: a re-INVITE (or the answer to
    ours) dropped SRTP and the account's SRTP policy is ``optional``, so the call goes on in
    clear. Never silent (issue 4): ``reason`` in words, ``audio`` is UX.md's "Audio not
    encrypted". Under the ``mandatory`` policy the call ends instead (``call_state`` ended
    with the downgrade reason)."""

    name: ClassVar[str] = "media_downgraded"

    call_id: str
    reason: str
    audio: str = "Audio not encrypted"

    def __post_init__(self) -> None:
        for what in ("call_id", "reason", "audio"):
            _check_str(what, getattr(self, what))
        if self.audio != "Audio not encrypted":
            raise ValueError("downgraded audio must be described as 'Audio not encrypted'")


__all__ += ["CallHeld", "DtmfReceived", "MediaDowngraded"]
EVENT_TYPES.update({cls.name: cls for cls in (CallHeld, DtmfReceived, MediaDowngraded)})


#: How an S/MIME body of a call was protected (RFC 3261 §23.3), in SmimeStatus.
SMIME_PROTECTIONS = ("signed+encrypted", "signed", "encrypted", "not protected")


@dataclass(frozen=True)
class SmimeStatus(Event):
    """The SDP of call ``call_id`` went out (``direction`` ``"sent"``) or came in
    (``"received"``) as an S/MIME body (RFC 3261 §23.3) protected as ``protection`` says;
    ``detail`` in words, e.g. why we signed only ("no certificate of bob@example.test is
    known: signed only, not encrypted")."""

    name: ClassVar[str] = "smime_status"

    call_id: str
    direction: str  # "sent" | "received"
    protection: str
    detail: str = ""

    def __post_init__(self) -> None:
        for what in ("call_id", "detail"):
            _check_str(what, getattr(self, what))
        if self.direction not in ("sent", "received"):
            raise ValueError(f"direction must be sent or received, not {self.direction!r}")
        if self.protection not in SMIME_PROTECTIONS:
            raise ValueError(f"protection must be one of {', '.join(SMIME_PROTECTIONS)}")


__all__ += ["SMIME_PROTECTIONS", "SmimeStatus"]
EVENT_TYPES[SmimeStatus.name] = SmimeStatus


@dataclass(frozen=True)
class CallMuted(Event):
    """Our microphone on call ``call_id`` was muted (``muted`` True) or unmuted: a local
    action, no signalling. While muted the media session sends silent frames (RFC 3550 §5.1:
    RTP keeps flowing with continuous timestamps), so the peer hears nothing."""

    name: ClassVar[str] = "call_muted"

    call_id: str
    muted: bool

    def __post_init__(self) -> None:
        _check_str("call_id", self.call_id)
        if not isinstance(self.muted, bool):
            raise TypeError("muted must be a bool")


__all__ += ["CallMuted"]
EVENT_TYPES[CallMuted.name] = CallMuted
