"""What the windows say, decided without Qt (Electrum style: flow logic in plain objects).

The widgets only copy these values into labels and buttons, so every word and every rule of
UX.md is tested here without a display:

- :class:`AccountPresenter` follows one account's engine events and says where its
  registration stands (words and a colour, never colour alone) and what is known about the
  registrar's certificate (the SHA-256 in groups of four).
- :class:`TrustDialogModel` is the trust dialog's content: the consequence first, then the
  reason, then every problem, then the details; which buttons exist and which is the default.
  A *changed* pinned certificate is the loud variant and gets no "always trust" button until
  the person has opened the details.
- :func:`describe_event` is one line for the status log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from softphone.ua import (
    CertificateSummary,
    ConnectionLost,
    ConnectionRestored,
    Event,
    Registered,
    RegistrationFailed,
    Transport,
    TrustDecision,
    TrustDecisionRequired,
    TrustRequired,
    Unregistered,
    fingerprint_groups,
)

__all__ = [
    "PROTECTIONS",
    "AccountPresenter",
    "AccountView",
    "ChainEntry",
    "Protection",
    "Tone",
    "TrustButton",
    "TrustDialogModel",
    "describe_event",
    "grouped_fingerprint",
    "signalling_words",
]


class Tone(Enum):
    """How a state is coloured. The words always say the same thing as the colour."""

    NEUTRAL = "gray"
    BUSY = "orange"
    GOOD = "green"
    BAD = "red"

    @property
    def colour(self) -> str:
        """A colour name (CSS/SVG, as ``QColor`` accepts it)."""
        return _COLOURS[self]


_COLOURS = {
    Tone.NEUTRAL: "dimgray",
    Tone.BUSY: "darkorange",
    Tone.GOOD: "forestgreen",
    Tone.BAD: "firebrick",
}


# --- fingerprints -------------------------------------------------------------------------


def grouped_fingerprint(colon_hex: str) -> str:
    """``AB:12:CD:34...`` (how events carry it) as ``AB12 CD34 ...`` (how people read it)."""
    try:
        digest = bytes.fromhex(colon_hex.replace(":", ""))
    except ValueError:
        return colon_hex  # not hex: show it as it came rather than hide it
    return fingerprint_groups(digest)


def wrap_groups(groups: str, per_line: int = 8) -> str:
    """``AB12 CD34 ...`` on lines of ``per_line`` groups (a SHA-256 is 16 groups: 2 lines)."""
    parts = groups.split()
    return "\n".join(" ".join(parts[i : i + per_line]) for i in range(0, len(parts), per_line))


# --- the words of UX.md ---------------------------------------------------------------------


def signalling_words(transport: Transport) -> str:
    """UX.md "Who can read the call setup" for a registration flow."""
    if transport is Transport.TLS:
        return "Encrypted to each server; servers on the way can read it"
    return "Call setup not encrypted"


class Protection(Enum):
    """The dialer's choice of how a call is protected (UX.md's three signalling states)."""

    PLAIN = "plain"
    SIPS = "sips"
    SIPSEC = "sipsec"

    @property
    def label(self) -> str:
        return _PROTECTION_LABELS[self]

    @property
    def words(self) -> str:
        """Who can read the call setup, in UX.md's words."""
        return _PROTECTION_WORDS[self]


_PROTECTION_LABELS = {
    Protection.PLAIN: "Plain (sip:)",
    Protection.SIPS: "Hop by hop (sips:)",
    Protection.SIPSEC: "End to end (sipsec)",
}
_PROTECTION_WORDS = {
    Protection.PLAIN: "Call setup not encrypted",
    Protection.SIPS: "Encrypted to each server; servers on the way can read it",
    Protection.SIPSEC: "Encrypted end to end; servers only see that a call was set up",
}
#: In the order the selector lists them; the strongest is the default.
PROTECTIONS: tuple[Protection, ...] = (Protection.SIPSEC, Protection.SIPS, Protection.PLAIN)


# --- one account ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountView:
    """One row of the account list, and the details under it."""

    aor: str
    state: str  # "Registered", "Registering…", "Registration failed" ...
    tone: Tone
    detail: str  # why, in a sentence ("" when there is nothing to add)
    certificate: str  # what is known about the registrar's certificate
    certificate_tone: Tone
    fingerprint: str | None  # SHA-256 in groups ("AB12 CD34 ..."), None before any TLS flow
    signalling: str  # who can read the call setup on the registration flow ("" if unknown)

    @property
    def colour(self) -> str:
        return self.tone.colour


@dataclass
class AccountPresenter:
    """Follows one account's events; :attr:`view` is what the window shows for it."""

    aor: str
    _state: str = "Not registered"
    _tone: Tone = Tone.NEUTRAL
    _detail: str = ""
    _certificate: str = "Not connected yet"
    _certificate_tone: Tone = Tone.NEUTRAL
    _fingerprint: str | None = None
    _signalling: str = ""
    _asked: bool = False  # a trust question about the registrar is open or was answered
    _decision: TrustDecision | None = field(default=None)
    _pending: bool = False  # a question about the registrar waits for the person now

    @property
    def view(self) -> AccountView:
        return AccountView(
            aor=self.aor,
            state=self._state,
            tone=self._tone,
            detail=self._detail,
            certificate=self._certificate,
            certificate_tone=self._certificate_tone,
            fingerprint=self._fingerprint,
            signalling=self._signalling,
        )

    def registering(self) -> AccountView:
        """The GUI started a registration (no event says so: the engine just starts)."""
        self._set("Registering…", Tone.BUSY, "Connecting to the registrar.")
        return self.view

    def decided(self, decision: TrustDecision) -> AccountView:
        """The person answered the trust question about the registrar's certificate (an
        answer to another question, e.g. a sipsec peer's identity, leaves the account as is)."""
        if not self._pending:
            return self.view
        self._pending = False
        self._decision = decision
        if decision is TrustDecision.REJECT:
            self._set("Not registered", Tone.BAD, "You chose not to connect to this server.")
            self._certificate = "Refused by you"
            self._certificate_tone = Tone.BAD
        else:
            self._set("Registering…", Tone.BUSY, "Certificate accepted; registering.")
        return self.view

    def apply(self, event: Event) -> AccountView:
        """Take an engine event for this account into account; returns the new view."""
        if isinstance(event, Registered):
            self._registered(event)
        elif isinstance(event, RegistrationFailed):
            state = "Registration failed"
            detail = event.reason
            if event.status_code is not None:
                detail = f"{detail} ({event.status_code})"
            if event.retrying:
                state = "Registration failed; trying again"
            self._set(state, Tone.BUSY if event.retrying else Tone.BAD, detail)
        elif isinstance(event, Unregistered):
            self._set("Not registered", Tone.NEUTRAL, _sentence(event.reason))
        elif isinstance(event, TrustRequired) and _about_registrar(event):
            self._asked = True
            self._pending = True
            self._decision = None
            self._set(
                "Waiting for you",
                Tone.BUSY,
                f"The {event.waiting_for} waits until you decide about the certificate.",
            )
            if event.changed:
                self._certificate = "Changed since you chose to trust it"
            else:
                self._certificate = "Not trusted; waiting for your decision"
            self._certificate_tone = Tone.BAD
            if event.fingerprint is not None:
                self._fingerprint = grouped_fingerprint(event.fingerprint)
        elif isinstance(event, ConnectionLost):
            self._set(
                "Connection lost; reconnecting",
                Tone.BUSY,
                f"The connection to {event.remote} broke: {event.reason}",
            )
        elif isinstance(event, ConnectionRestored):
            self._set("Reconnected; registering", Tone.BUSY, f"Connected again to {event.remote}.")
        return self.view

    def _registered(self, event: Registered) -> None:
        minutes = f"{event.expires // 60} min" if event.expires >= 120 else f"{event.expires} s"
        detail = f"At {event.registrar}; renewed before {minutes} are up."
        if event.weak:
            detail += (
                f" The registrar accepted only {event.algorithm} for the password check "
                "(weak: SHA-256 is preferred)."
            )
        self._set("Registered", Tone.GOOD, detail)
        self._signalling = signalling_words(event.transport)
        if event.registrar_fingerprint is None:
            self._certificate = "No certificate: the connection is not encrypted"
            self._certificate_tone = Tone.BAD
            self._fingerprint = None
            return
        self._fingerprint = grouped_fingerprint(event.registrar_fingerprint)
        if self._decision is TrustDecision.ALWAYS_TRUST:
            self._certificate, self._certificate_tone = "Always trusted by you", Tone.GOOD
        elif self._decision is TrustDecision.ACCEPT_ONCE:
            self._certificate = "Accepted by you this time only (not trusted)"
            self._certificate_tone = Tone.BUSY
        elif not self._asked:
            self._certificate = "Trusted (an authority you trust, or your earlier choice)"
            self._certificate_tone = Tone.GOOD

    def _set(self, state: str, tone: Tone, detail: str) -> None:
        self._state, self._tone, self._detail = state, tone, detail


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


# --- the trust dialog -----------------------------------------------------------------------


class TrustButton(Enum):
    """The dialog's buttons, each carrying the decision it makes."""

    DONT_CONNECT = TrustDecision.REJECT
    CONNECT_ONCE = TrustDecision.ACCEPT_ONCE
    ALWAYS_TRUST = TrustDecision.ALWAYS_TRUST

    @property
    def decision(self) -> TrustDecision:
        return TrustDecision(self.value)


@dataclass(frozen=True)
class ChainEntry:
    """One certificate in the details view."""

    title: str  # "The server's own certificate", "Issued by", ...
    subject: str
    issuer: str
    valid: str  # "01 Jan 2025 00:00 UTC to 01 Jan 2026 00:00 UTC"
    key: str
    fingerprint: str  # SHA-256 in groups

    @property
    def fingerprint_lines(self) -> str:
        return wrap_groups(self.fingerprint)


@dataclass(frozen=True)
class TrustDialogModel:
    """Everything the trust dialog shows, and its button rules (UX.md "Trust dialog wording")."""

    title: str
    headline: str  # consequence, then the reason: the first (most important) finding
    problems: tuple[str, ...]  # every problem found, most important first
    waiting: str  # what is paused until the answer
    note: str  # extra words for the case ("" when there are none)
    chain: tuple[ChainEntry, ...]
    fingerprint: str | None  # the peer's own SHA-256, in groups
    identity: str  # "example.test"
    loud: bool  # the certificate changed since it was pinned: red, distinct
    overridable: bool
    #: For a changed certificate: ("You chose to trust", groups) rows, then
    #: ("Presented now", groups), to compare by eye; empty otherwise.
    comparison: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_required(
        cls, required: TrustDecisionRequired, *, now: dt.datetime | None = None
    ) -> TrustDialogModel:
        report = required.report
        identity = report.identity.value
        loud = required.loud
        if loud:
            title = f"Warning: the certificate of {identity} changed"
        else:
            title = f"Is this really {identity}?"
        notes = []
        if report.closes_at_once:
            notes.append(
                "The connection was closed at once; if you connect this time, a new connection "
                "is opened and must present this same certificate."
            )
        if loud:
            notes.append(
                "Only connect if you know the server's certificate was replaced (ask its "
                "administrator, and compare the fingerprint in the details)."
            )
        certificates = report.certificates
        problems = report.messages
        comparison: tuple[tuple[str, str], ...] = ()
        if loud and report.fingerprint is not None:
            # The engine's message ends with both fingerprints inline ("Trusted: ... Now:
            # ..."); shown as a table instead, where they can be compared group by group.
            problems = tuple(_without_warning(_without_fingerprints(m)) for m in problems)
            comparison = (
                *(("You chose to trust", fingerprint_groups(pin.sha256)) for pin in report.pinned),
                ("Presented now", fingerprint_groups(report.fingerprint)),
            )
        return cls(
            title=title,
            headline=problems[0] if problems else report.headline,
            problems=problems,
            waiting=f"The {required.waiting_for} is paused until you decide.",
            note=" ".join(notes),
            chain=tuple(_chain_entry(c, len(certificates)) for c in certificates),
            fingerprint=certificates[0].fingerprint if certificates else None,
            identity=identity,
            loud=loud,
            overridable=report.overridable,
            comparison=comparison,
        )

    def label(self, button: TrustButton) -> str:
        if button is TrustButton.DONT_CONNECT:
            return "Don't connect"
        if button is TrustButton.CONNECT_ONCE:
            return "Connect this time"
        return f"Always trust this certificate for {self.identity}"

    @property
    def default(self) -> TrustButton:
        """The default and focused button: Enter or Escape never connects."""
        return TrustButton.DONT_CONNECT

    def buttons(self, *, details_open: bool) -> tuple[TrustButton, ...]:
        """The buttons offered now, left to right as the dialog shows them.

        A changed certificate gets no "always" button until the details have been opened
        (UX.md); a report nobody may override offers "Don't connect" only.
        """
        if not self.overridable:
            return (TrustButton.DONT_CONNECT,)
        if self.loud and not details_open:
            return (TrustButton.DONT_CONNECT, TrustButton.CONNECT_ONCE)
        return (TrustButton.DONT_CONNECT, TrustButton.CONNECT_ONCE, TrustButton.ALWAYS_TRUST)

    @property
    def other_problems(self) -> tuple[str, ...]:
        """The problems beyond the headline (listed under it; the headline is the first)."""
        return self.problems[1:]


def _without_warning(message: str) -> str:
    """The engine's changed-certificate message without its leading "Warning: " (the
    dialog's title already says it, in red, right above). The rest starts with a name
    ("example.test's server …"), left as written."""
    head, found, rest = message.partition("Warning: ")
    return rest if found and not head else message


def _without_fingerprints(message: str) -> str:
    head, found, _ = message.partition(" Trusted: ")
    return head if found else message


def _chain_entry(cert: CertificateSummary, count: int) -> ChainEntry:
    if cert.index == 0:
        title = "The server's own certificate"
    elif cert.index == count - 1:
        title = f"Certificate {cert.index + 1}: the authority at the top of the chain"
    else:
        title = f"Certificate {cert.index + 1}: an intermediate authority"
    return ChainEntry(
        title=title,
        subject=cert.subject,
        issuer=cert.issuer,
        valid=f"{_date(cert.not_before)} to {_date(cert.not_after)}",
        key=cert.key,
        fingerprint=cert.fingerprint,
    )


def _date(when: dt.datetime) -> str:
    return when.strftime("%d %b %Y %H:%M UTC")


# --- the status log -------------------------------------------------------------------------


def _about_registrar(event: TrustRequired) -> bool:
    """Whether the question is about the registrar (the engine says "registration to …");
    a sipsec peer's certificate ("end-to-end call to …") is not the account's business."""
    return event.waiting_for.startswith("registration")


def describe_event(event: Event) -> str:
    """One line for the status area, in the same words as the account list."""
    if isinstance(event, Registered):
        text = f"Registered {event.aor} with {event.registrar} ({event.transport.value.upper()})"
        if event.weak:
            text += f"; weak password check ({event.algorithm})"
        return text
    if isinstance(event, RegistrationFailed):
        code = f" ({event.status_code})" if event.status_code is not None else ""
        again = "; trying again" if event.retrying else ""
        return f"Registration of {event.aor} failed: {event.reason}{code}{again}"
    if isinstance(event, Unregistered):
        reason = f": {event.reason}" if event.reason else ""
        return f"{event.aor} is no longer registered{reason}"
    if isinstance(event, TrustRequired):
        return f"Certificate question for {event.identity}: {_first(event.problems)}"
    if isinstance(event, ConnectionLost):
        return f"Connection to {event.remote} lost: {event.reason}"
    if isinstance(event, ConnectionRestored):
        return f"Connection to {event.remote} restored ({event.transport.value.upper()})"
    return event.name


def _first(problems: Sequence[object]) -> str:
    for problem in problems:
        message = getattr(problem, "message", None)
        if isinstance(message, str):
            return message
    return "it needs your decision"
