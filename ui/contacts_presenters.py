"""What the contacts view shows, decided without Qt (tested without a display).

A row per contact of the trust ledger (:class:`softphone.security.ledger.TrustLedger`): the AOR,
its state in UX.md's words (claimed / certificate / seen before / verified / changed) with a
label *and* a colour, and the current certificate's short fingerprint. The details list every
certificate the contact has shown (current first, then newest) and the history, oldest first;
with our own identity they also carry the safety number of the contact's current certificate
(:func:`softphone.security.safety.safety_number`, UX.md "Safety number").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from softphone.ua import (
    CertificateRecord,
    Contact,
    ContactState,
    EventKind,
    TrustLedger,
    safety_number,
)
from softphone.ua import LedgerHistoryEntry as HistoryEntry
from ui.call_presenters import Level

__all__ = [
    "STATE_LABELS",
    "CertificateView",
    "ContactDetails",
    "ContactRow",
    "contact_details",
    "contact_rows",
    "short_fingerprint",
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
}


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
class ContactDetails:
    row: ContactRow
    certificates: tuple[CertificateView, ...]
    history: tuple[str, ...]
    safety_number: str | None  # 12 groups of five, when our identity is known
    qr_payload: bytes | None


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
    if entry.detail:
        line += f": {entry.detail}"
    return line


def contact_details(contact: Contact, own_identity: Any = None) -> ContactDetails:
    """Everything about ``contact``; ``own_identity`` (``.cert``, ``.aor``) adds the safety
    number of its current certificate and the QR payload of that number."""
    records = sorted(
        contact.certificates,
        key=lambda r: (r.fingerprint != contact.current, -r.last_seen.timestamp()),
    )
    number: str | None = None
    payload: bytes | None = None
    current = contact.current_record
    if own_identity is not None and current is not None:
        try:
            computed = safety_number(
                own_identity.cert, own_identity.aor, current.certificate, contact.aor
            )
        except ValueError:
            pass
        else:
            number, payload = str(computed), computed.qr_payload()
    return ContactDetails(
        row=_row(contact),
        certificates=tuple(_certificate(r, r.fingerprint == contact.current) for r in records),
        history=tuple(_history(h) for h in contact.history),
        safety_number=number,
        qr_payload=payload,
    )
