"""What the contacts view shows, decided without Qt (tested without a display).

A row per contact of the trust ledger (:class:`softphone.security.ledger.TrustLedger`): the AOR,
its state in UX.md's words (claimed / certificate / seen before / verified / changed) with a
label *and* a colour, and the current certificate's short fingerprint. The details list every
certificate the contact has shown (current first, then newest) and the history, oldest first;
with our own identity they also carry the safety number of the contact's current certificate
(:func:`softphone.security.safety.safety_number`, UX.md "Safety number").

The details are made for one contact at a time, the one shown: :func:`contact_summary` (the
certificates and the history: cheap) at once, :func:`contact_safety` (the safety number: an
iterated hash, 12 ms per new key) once the view has had the halves worked out in slices;
:func:`safety_key` says when a number already worked out still applies. The contact's own
S/MIME setting (RFC 3261 §23.3, issue 6) is offered as :data:`SMIME_CHOICES`, in words, and
explained by :func:`smime_explanation`.

What a person can do to the ledger from the view, as ``softphone contacts`` can (issue 7:
every capability of the engine reachable from the GUI): :func:`contact_actions` says which
actions the shown contact offers ("We compared the safety number" only beside a safety number
of its current certificate, not yet verified by a person; "Accept the new certificate" only in
the *changed* state); :func:`accept_change_words` and :func:`forget_words` are the
confirmations, :func:`added_words` and :func:`not_done_words` the outcomes, in words.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any, Final

from softphone.ua import (
    CertificateRecord,
    Contact,
    ContactState,
    EventKind,
    TrustLedger,
    fingerprint_sha256,
    safety_number,
)
from softphone.ua import LedgerHistoryEntry as HistoryEntry
from softphone.ua.contacts import ACCOUNT, Observation, ObservationKind, ProtectionMode
from ui.call_presenters import Level

__all__ = [
    "ACCEPT_BUTTON",
    "ADD_BUTTON",
    "EXPORT_BUTTON",
    "FORGET_BUTTON",
    "NOT_CHANGEABLE",
    "SMIME_CHOICES",
    "STATE_LABELS",
    "VERIFY_BUTTON",
    "AcceptChangeWords",
    "CertificateView",
    "ContactActions",
    "ContactDetails",
    "ContactRow",
    "ForgetWords",
    "SafetyView",
    "accept_change_words",
    "added_words",
    "contact_actions",
    "contact_details",
    "contact_rows",
    "contact_safety",
    "contact_summary",
    "forget_words",
    "not_done_words",
    "safety_key",
    "short_fingerprint",
    "smime_explanation",
    "smime_index",
    "verify_hint",
    "with_safety",
]

#: UX.md "Who is on the other end": the label, the sentence, the level (colour) of each state.
STATE_LABELS: Final[dict[ContactState, tuple[str, str, Level]]] = {
    ContactState.CLAIMED: (
        "claimed",
        "Seen, but nothing vouches for this certificate yet: compare the safety number",
        Level.WEAK,
    ),
    ContactState.CERTIFICATE: (
        "certificate",
        "The certificate names this address and chains to an authority you trust",
        Level.GOOD,
    ),
    ContactState.SEEN_BEFORE: (
        "seen before",
        "The same certificate as on earlier calls (not compared with this person yet)",
        Level.GOOD,
    ),
    ContactState.VERIFIED: (
        "verified",
        "You compared the safety number with this person",
        Level.BEST,
    ),
    ContactState.CHANGED: (
        "changed",
        "This contact now presents a DIFFERENT certificate: calls wait until you decide",
        Level.NONE,
    ),
}

_HISTORY_WORDS: Final = {
    EventKind.SEEN_NEW: "first seen",
    EventKind.VERIFIED: "verified",
    EventKind.CHANGED: "certificate changed",
    EventKind.UNVERIFIED_BY_CHANGE: "no longer verified (the certificate changed)",
    EventKind.CHANGE_ACCEPTED: "you accepted the new certificate",
    EventKind.EXPORTED: "exported",
    EventKind.SMIME_PREFERENCE: "S/MIME setting changed",
}

#: The contact's S/MIME setting (RFC 3261 §23.3) as the combo box offers it, in this order:
#: the words shown, and the preference stored (``None``: follow the account's ``smime``).
SMIME_CHOICES: Final[tuple[tuple[str, ProtectionMode | None], ...]] = (
    ("Use the account's setting", None),
    ("Off", ProtectionMode.OFF),
    ("Sign", ProtectionMode.SIGN),
    ("Sign and encrypt", ProtectionMode.SIGN_AND_ENCRYPT),
)

_SMIME_EXPLANATIONS: Final[dict[ProtectionMode | None, str]] = {
    None: "Calls with this contact follow the account's S/MIME setting.",
    ProtectionMode.OFF: (
        "Your call setup to this contact is sent without S/MIME. If the account requires "
        "S/MIME, their messages must still carry it."
    ),
    ProtectionMode.SIGN: (
        "Your call setup to this contact is signed, and theirs must be signed too (or more, "
        "if the account asks for more)."
    ),
    ProtectionMode.SIGN_AND_ENCRYPT: (
        "Your call setup to this contact is signed and encrypted to their certificate "
        "(signed only until a certificate of theirs is known), and theirs must be signed "
        "and encrypted too."
    ),
}

#: How the history's "<old> -> <new>" words of an S/MIME change read.
_PREFERENCE_WORDS: Final = {
    ACCOUNT: "the account's setting",
    ProtectionMode.OFF.value: "off",
    ProtectionMode.SIGN.value: "sign",
    ProtectionMode.SIGN_AND_ENCRYPT.value: "sign and encrypt",
}


def smime_index(preference: ProtectionMode | None) -> int:
    """The place of ``preference`` in :data:`SMIME_CHOICES`."""
    return [choice for _, choice in SMIME_CHOICES].index(preference)


def smime_explanation(preference: ProtectionMode | None) -> str:
    """What the setting does to calls with this contact, in words (RFC 3261 §23.3: what we
    send is the contact's setting; what we require is the stricter of account and contact)."""
    return _SMIME_EXPLANATIONS[preference]


def short_fingerprint(fingerprint: bytes, groups: int = 4) -> str:
    """The first ``groups`` groups of four hex digits of a SHA-256, then an ellipsis."""
    text = fingerprint.hex().upper()
    return " ".join(text[i : i + 4] for i in range(0, 4 * groups, 4)) + " …"


def _full_fingerprint(fingerprint: bytes) -> str:
    text = fingerprint.hex().upper()
    quads = [text[i : i + 4] for i in range(0, len(text), 4)]
    return "\n".join(" ".join(quads[i : i + 8]) for i in range(0, len(quads), 8))


@dataclass(frozen=True)
class ContactRow:
    aor: str
    state: ContactState
    label: str  # UX.md's word
    words: str
    level: Level
    fingerprint: str  # short, of the current certificate ("" when none)


@dataclass(frozen=True)
class CertificateView:
    title: str
    fingerprint: str  # all 64 hex digits, in two lines
    subject: str
    issuer: str
    valid: str
    seen: str  # first/last seen, how often, where
    verified: str  # "" when not verified


@dataclass(frozen=True)
class SafetyView:
    """The safety number with one contact's current certificate (UX.md "Safety number")."""

    number: str  # 12 groups of five digits
    qr_payload: bytes


@dataclass(frozen=True)
class ContactDetails:
    row: ContactRow
    certificates: tuple[CertificateView, ...]
    history: tuple[str, ...]
    safety_number: str | None  # 12 groups of five, when our identity is known
    qr_payload: bytes | None
    smime: ProtectionMode | None = None  # the contact's own S/MIME setting; None: the account's
    current: bytes | None = None  # SHA-256 of the current certificate (the number's)
    certificate_count: int = 0


def contact_rows(ledger: TrustLedger) -> list[ContactRow]:
    """One row per contact, sorted by AOR; a changed contact first (it needs an answer)."""
    rows = [_row(contact) for contact in ledger]
    return sorted(rows, key=lambda r: (r.state is not ContactState.CHANGED, r.aor))


def _row(contact: Contact) -> ContactRow:
    state = contact.state
    label, words, level = STATE_LABELS[state]
    current = contact.current
    return ContactRow(
        contact.aor, state, label, words, level, short_fingerprint(current) if current else ""
    )


def _when(moment: dt.datetime | None) -> str:
    return "" if moment is None else moment.astimezone().strftime("%Y-%m-%d %H:%M")


def _certificate(record: CertificateRecord, current: bool) -> CertificateView:
    try:
        cert = record.certificate
        subject, issuer = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
        valid = f"{_when(cert.not_valid_before_utc)} to {_when(cert.not_valid_after_utc)}"
    except ValueError:
        subject = issuer = valid = "(unreadable certificate)"
    via = ", ".join(sorted(str(v) for v in record.seen_via)) or "—"
    times = "once" if record.times_seen == 1 else f"{record.times_seen} times"
    seen = (
        f"First seen {_when(record.first_seen)}, last {_when(record.last_seen)}; "
        f"seen {times}, in: {via}"
    )
    verified = ""
    if record.verified_by is not None:
        verified = f"Verified by {record.verified_by} on {_when(record.verified_at)}"
    title = "Current certificate" if current else "Earlier certificate"
    return CertificateView(
        title, _full_fingerprint(record.fingerprint), subject, issuer, valid, seen, verified
    )


def _history(entry: HistoryEntry) -> str:
    words = _HISTORY_WORDS.get(entry.kind, str(entry.kind))
    line = f"{_when(entry.at)}  {words}"
    if entry.fingerprint is not None:
        line += f"  (SHA-256 {short_fingerprint(entry.fingerprint, 2)})"
    detail = entry.detail
    if entry.kind is EventKind.SMIME_PREFERENCE and " -> " in detail:
        old, new = detail.split(" -> ", 1)
        detail = f"{_PREFERENCE_WORDS.get(old, old)} → {_PREFERENCE_WORDS.get(new, new)}"
    if detail:
        line += f": {detail}"
    return line


def contact_summary(contact: Contact) -> ContactDetails:
    """The details of ``contact`` without the safety number: every certificate (current
    first, then newest), the history, the S/MIME setting. Cheap: made when it is shown."""
    records = sorted(
        contact.certificates,
        key=lambda r: (r.fingerprint != contact.current, -r.last_seen.timestamp()),
    )
    return ContactDetails(
        row=_row(contact),
        certificates=tuple(_certificate(r, r.fingerprint == contact.current) for r in records),
        history=tuple(_history(h) for h in contact.history),
        safety_number=None,
        qr_payload=None,
        smime=contact.smime,
        current=contact.current,
        certificate_count=len(contact.certificates),
    )


def safety_key(contact: Contact, own_identity: Any) -> tuple[str, str, bytes, bytes] | None:
    """What the safety number with ``contact`` depends on (both AORs, both certificates'
    SHA-256), to know when one worked out before still applies; ``None`` when there is none
    to work out (no identity of ours, no certificate of theirs)."""
    current = contact.current
    if own_identity is None or current is None:
        return None
    try:
        own = fingerprint_sha256(own_identity.cert)
    except (AttributeError, TypeError, ValueError):
        return None
    return (contact.aor, str(own_identity.aor), own, current)


def contact_safety(contact: Contact, own_identity: Any) -> SafetyView | None:
    """The safety number of ``contact``'s current certificate and ours, with its QR payload
    (UX.md "Safety number"); ``None`` when there is none (no identity of ours, no certificate
    of theirs, a key the number cannot be made from). An iterated hash (12 ms per new key
    here; :mod:`softphone.security.safety` caches each half): the view first has both halves
    worked out on the loop in slices (:func:`softphone.ua.safety_number_in_slices`)."""
    current = contact.current_record
    if own_identity is None or current is None:
        return None
    try:
        computed = safety_number(
            own_identity.cert, own_identity.aor, current.certificate, contact.aor
        )
    except ValueError:
        return None
    return SafetyView(str(computed), computed.qr_payload())


def with_safety(details: ContactDetails, safety: SafetyView | None) -> ContactDetails:
    """``details`` with the safety number (or without, for ``None``)."""
    if safety is None:
        return replace(details, safety_number=None, qr_payload=None)
    return replace(details, safety_number=safety.number, qr_payload=safety.qr_payload)


def contact_details(contact: Contact, own_identity: Any = None) -> ContactDetails:
    """Everything about ``contact``; ``own_identity`` (``.cert``, ``.aor``) adds the safety
    number of its current certificate and the QR payload of that number (at once: the view
    works the halves out in slices first instead)."""
    return with_safety(contact_summary(contact), contact_safety(contact, own_identity))


# --- what a person can do to the ledger (``softphone contacts`` add/verify/accept/export/forget)

VERIFY_BUTTON: Final = "We compared the safety &number"
ACCEPT_BUTTON: Final = "Acc&ept the new certificate…"
FORGET_BUTTON: Final = "&Forget this contact…"
ADD_BUTTON: Final = "&Add a certificate…"
EXPORT_BUTTON: Final = "E&xport the ledger…"
NOT_CHANGEABLE: Final = (
    "This account's trust ledger is not known here: use 'softphone contacts' to change it."
)


@dataclass(frozen=True)
class ContactActions:
    """Which actions the shown contact offers (a hidden one is not offered at all)."""

    verify: bool  # "We compared the safety number"
    accept_change: bool  # only in the changed state
    forget: bool


def contact_actions(details: ContactDetails | None) -> ContactActions:
    """``verify`` beside a safety number of the current certificate that a person has not
    verified yet (UX.md "Safety number": "We compared it" marks the contact verified; in the
    changed state it answers the change too); ``accept_change`` only when the certificate
    changed and is unanswered; ``forget`` for any contact shown."""
    if details is None:
        return ContactActions(verify=False, accept_change=False, forget=False)
    state = details.row.state
    return ContactActions(
        verify=details.safety_number is not None
        and details.current is not None
        and state is not ContactState.VERIFIED,
        accept_change=state is ContactState.CHANGED and details.current is not None,
        forget=True,
    )


def verify_hint(aor: str) -> str:
    return (
        f"Only after you read these digits aloud with {aor} (or scanned the QR code on their "
        "phone) and every group matched."
    )


@dataclass(frozen=True)
class AcceptChangeWords:
    """The loud confirmation before going on with a changed certificate (as the trust
    dialog's changed variant: the consequence first, then what it means)."""

    aor: str
    title: str
    consequence: str
    meaning: str
    fingerprint: str  # the new certificate, all 64 hex digits
    promise: str  # the box to tick before the accept button works
    accept: str
    cancel: str


def accept_change_words(details: ContactDetails) -> AcceptChangeWords:
    aor = details.row.aor
    current = details.certificates[0].fingerprint if details.certificates else ""
    return AcceptChangeWords(
        aor=aor,
        title=f"Accept the new certificate of {aor}?",
        consequence=(
            f"Someone may be between you and {aor}. Accept only if you have compared the NEW "
            "safety number with this person, by voice or QR code, and it matched."
        ),
        meaning=(
            "Calls then go on with this certificate; it is not marked verified. If the number "
            "did not match, or you have not compared it, do not accept: calls keep waiting."
        ),
        fingerprint=current,
        promise=f"I have compared the new safety number with {aor}",
        accept="&Accept the new certificate",
        cancel="&Not now",
    )


@dataclass(frozen=True)
class ForgetWords:
    aor: str
    title: str
    text: str
    accept: str
    cancel: str


def forget_words(details: ContactDetails) -> ForgetWords:
    aor = details.row.aor
    n = details.certificate_count
    seen = "1 certificate" if n == 1 else f"{n} certificates"
    return ForgetWords(
        aor=aor,
        title=f"Forget {aor}?",
        text=(
            f"{aor}, the {seen} seen and the history are removed from the trust ledger. "
            "A verified contact will have to be verified again."
        ),
        accept=f"&Forget {aor}",
        cancel="&Keep",
    )


def added_words(observation: Observation) -> tuple[str, bool]:
    """What adding a certificate by hand did, and whether it is a warning (a change)."""
    aor, short = observation.aor, short_fingerprint(observation.fingerprint)
    if observation.kind is ObservationKind.CHANGED:
        previous = "" if observation.previous is None else short_fingerprint(observation.previous)
        return (
            f"Warning: {aor} had another certificate ({previous}). This one ({short}) is now "
            "the current one: compare the safety number before trusting it.",
            True,
        )
    if observation.kind is ObservationKind.SAME:
        return f"{aor} already has this certificate ({short}): noted as seen again.", False
    return f"Added the certificate {short} for {aor}.", False


_NOT_DONE: Final = {
    "verify": "{aor} was not marked verified",
    "accept": "The new certificate of {aor} was not accepted",
    "add": "The certificate was not added",
    "export": "The ledger was not exported",
    "forget": "{aor} was not forgotten",
}


def not_done_words(action: str, aor: str, exc: BaseException) -> str:
    """Why an action failed, in words: the ledger's own sentence, or the system's reason."""
    if isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror + (f" ({exc.filename})" if exc.filename else "")
    else:
        reason = str(exc) or type(exc).__name__
    return f"{_NOT_DONE[action].format(aor=aor)}: {reason}."
