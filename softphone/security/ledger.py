"""The trust ledger: every certificate each contact has shown us, and what the user made of it.

Sans-I/O (no files, no clock: ``now`` is an argument). :mod:`softphone.contacts` reads and
writes it atomically. One :class:`Contact` per AOR (normalised ``sip:user@host``, as
:meth:`Identity.aor` does, so ``sips:Bob@Example.TEST`` and ``bob@example.test`` are the same
person) holds:

- every certificate seen (:class:`CertificateRecord`: SHA-256 fingerprint, PEM, first and last
  seen, where: ``sipsec`` (the end-to-end TLS of draft-gurbani-sip-sipsec-01 §6), ``smime``
  (RFC 3261 §23.2 certs-only or a signer), ``dtls`` (RFC 5763 fingerprint), ``manual``);
- which one is *current*, whether it is verified and by which means (:class:`Means`: the
  safety number read aloud, its QR code scanned, or a CA chain);
- an append-only history (:class:`HistoryEntry`).

The SSH / Signal rule (issue 6, UX.md "changed"): :meth:`TrustLedger.observe` of a
certificate other than the contact's current one reports :attr:`ObservationKind.CHANGED`; a
contact a *person* had verified loses "verified" and stays :attr:`Contact.blocked` — the next
call must not proceed — until the user answers (:meth:`TrustLedger.accept_change` or
:meth:`TrustLedger.mark_verified` of the new certificate).

"A contact verified once is verified for sipsec calls and S/MIME alike": the safety number
covers the key, whatever channel brought it, and :func:`sync_pins` writes the verification
into the :class:`~softphone.security.pins.PinStore` (``PinReason.VERIFIED_SAFETY_NUMBER``)
under ``Identity.aor(aor)``, which :func:`softphone.security.trust.evaluate` consults for
sipsec TLS peers.

The S/MIME preference (issue 6: "a user setting chooses sign, sign+encrypt, or off, per
contact or account"; RFC 3261 §23.3): :attr:`Contact.smime` is ``None`` (follow the account's
``smime`` setting) or a :class:`~softphone.security.smime.ProtectionMode`, set by
:meth:`TrustLedger.set_smime`, which records each change in the history
(:attr:`EventKind.SMIME_PREFERENCE`). Setting it for an AOR the ledger does not know creates
the contact with no certificate (state "claimed"): the preference may be chosen before the
first call. What a call does with it: :func:`sending_mode` and :func:`required_mode`.

Serialisation: versioned JSON (:data:`LEDGER_FORMAT_VERSION`); :meth:`TrustLedger.from_bytes`
raises :class:`LedgerError` for anything else, never an empty ledger. Format 1 (before the
S/MIME preference) still loads: its contacts follow the account.

Errors::

    SecurityError
    └── LedgerError          (also ValueError) ledger bytes we cannot read, or a request the
        │                    ledger refuses (verifying a certificate that is not current)
        └── UnknownContactError   no such contact
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from softphone.security.certificates import (
    Identity,
    InvalidIdentityError,
    SecurityError,
    fingerprint_sha256,
)
from softphone.security.pins import Pin, PinReason, PinStore
from softphone.security.smime import ProtectionMode

__all__ = [
    "ACCOUNT",
    "LEDGER_FORMAT_VERSION",
    "PERSONAL_MEANS",
    "CertificateRecord",
    "Contact",
    "ContactState",
    "EventKind",
    "HistoryEntry",
    "LedgerError",
    "LedgerText",
    "Means",
    "Observation",
    "ObservationKind",
    "Seen",
    "TrustLedger",
    "UnknownContactError",
    "normalise_aor",
    "parse_fingerprint",
    "parse_smime_preference",
    "required_mode",
    "sending_mode",
    "sync_pins",
]

#: Bumped when the JSON layout changes; older readers refuse newer files. 2: per-contact
#: ``smime`` preference (format 1 files load with every contact following the account).
LEDGER_FORMAT_VERSION: Final = 2


class LedgerError(SecurityError, ValueError):
    """Ledger bytes this version cannot read, or a change the ledger refuses."""


class UnknownContactError(LedgerError):
    def __init__(self, aor: str) -> None:
        self.aor = aor
        super().__init__(f"no contact {aor} in the trust ledger")


class Seen(StrEnum):
    """Where a certificate was seen."""

    SIPSEC = "sipsec"  # the peer's certificate in the end-to-end TLS of a sipsec call
    SMIME = "smime"  # a certs-only body (RFC 3261 §23.2) or an S/MIME signer (§23.3)
    DTLS = "dtls"  # DTLS-SRTP (RFC 5763)
    MANUAL = "manual"  # imported by the user from a file


class Means(StrEnum):
    """How a certificate was verified."""

    SAFETY_NUMBER = "safety-number"  # read aloud and compared
    QR = "qr"  # the other phone's QR code scanned
    CA_CHAIN = "ca-chain"  # chains to a CA the user trusts and names this AOR


#: The means by which a *person* compared keys: losing one of these blocks the next call.
PERSONAL_MEANS: Final = frozenset({Means.SAFETY_NUMBER, Means.QR})


class EventKind(StrEnum):
    """The kinds of history entries (append-only)."""

    SEEN_NEW = "seen-new"  # a certificate seen for the first time for this contact
    VERIFIED = "verified"
    CHANGED = "changed"  # the contact now presents another certificate
    UNVERIFIED_BY_CHANGE = "unverified-by-change"  # ... and so lost "verified"
    CHANGE_ACCEPTED = "change-accepted"  # the user answered the warning: use the new one
    EXPORTED = "exported"
    SMIME_PREFERENCE = "smime-preference"  # detail: "<old> -> <new>" ("account" = None)


class ContactState(StrEnum):
    """UX.md "Who is on the other end", as the ledger sees a contact."""

    CLAIMED = "claimed"  # one certificate seen once: nothing vouches for it yet
    CERTIFICATE = "certificate"  # verified through a CA chain naming the AOR
    SEEN_BEFORE = "seen before"  # the same certificate as on an earlier occasion
    VERIFIED = "verified"  # a person compared the safety number (voice or QR)
    CHANGED = "changed"  # another certificate than before: loud, until answered


class ObservationKind(StrEnum):
    NEW_CONTACT = "new-contact"
    SAME = "same"
    CHANGED = "changed"


def normalise_aor(aor: str) -> str:
    """``sip:user@host`` (host lower-cased, ``sips:`` → ``sip:``), or LedgerError."""
    try:
        return str(Identity.aor(aor))
    except InvalidIdentityError as exc:
        raise LedgerError(f"not an address of record: {aor!r} ({exc})") from exc


def parse_fingerprint(text: str) -> bytes:
    """A SHA-256 fingerprint typed by a person: hex with any of ``: -`` and spaces."""
    cleaned = "".join(c for c in text if c not in ": -\t").lower()
    try:
        value = bytes.fromhex(cleaned)
    except ValueError as exc:
        raise LedgerError(f"not a hexadecimal fingerprint: {text!r}") from exc
    if len(value) != 32:
        raise LedgerError(f"a SHA-256 fingerprint has 64 hex digits, not {len(cleaned)}")
    return value


#: The word for "no preference of the contact's own: follow the account".
ACCOUNT: Final = "account"

#: Strength order of the modes, for "the stricter of two".
_STRENGTH: Final = {
    ProtectionMode.OFF: 0,
    ProtectionMode.SIGN: 1,
    ProtectionMode.SIGN_AND_ENCRYPT: 2,
}


def parse_smime_preference(text: str) -> ProtectionMode | None:
    """``off`` / ``sign`` / ``sign+encrypt`` → the mode; ``account`` → None; else LedgerError."""
    word = text.strip().lower()
    if word == ACCOUNT:
        return None
    try:
        return ProtectionMode(word)
    except ValueError:
        choices = ", ".join([*(m.value for m in ProtectionMode), ACCOUNT])
        raise LedgerError(f"not an S/MIME setting: {text!r} (one of {choices})") from None


def _preference_words(preference: ProtectionMode | None) -> str:
    return ACCOUNT if preference is None else preference.value


def sending_mode(account: ProtectionMode, contact: ProtectionMode | None) -> ProtectionMode:
    """What our SDP to this contact carries (RFC 3261 §23.3): the contact's own setting, else
    the account's."""
    return account if contact is None else contact


def required_mode(account: ProtectionMode, contact: ProtectionMode | None) -> ProtectionMode:
    """What a body *from* this contact must have: the stricter of the account's and the
    contact's settings. A per-contact ``off`` never weakens an account that requires S/MIME
    (a downgrade the person did not ask for account-wide); a per-contact ``sign`` or
    ``sign+encrypt`` does make the account's ``off`` stricter for that contact."""
    if contact is None or _STRENGTH[account] >= _STRENGTH[contact]:
        return account
    return contact


def _check_time(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    return now.astimezone(dt.UTC)


@dataclass
class CertificateRecord:
    """One certificate of one contact."""

    fingerprint: bytes
    pem: bytes
    first_seen: dt.datetime
    last_seen: dt.datetime
    seen_via: set[Seen] = field(default_factory=set)
    times_seen: int = 1
    verified_by: Means | None = None
    verified_at: dt.datetime | None = None

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.pem)

    def to_json(self) -> dict[str, Any]:
        return {
            "sha256": self.fingerprint.hex(),
            "pem": self.pem.decode("ascii"),
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "seen_via": sorted(v.value for v in self.seen_via),
            "times_seen": self.times_seen,
            "verified_by": None if self.verified_by is None else self.verified_by.value,
            "verified_at": None if self.verified_at is None else self.verified_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Any) -> CertificateRecord:
        if not isinstance(data, dict):
            raise LedgerError("a certificate record must be an object")
        try:
            pem = str(data["pem"]).encode("ascii")
            record = cls(
                fingerprint=bytes.fromhex(data["sha256"]),
                pem=pem,
                first_seen=_time(data["first_seen"]),
                last_seen=_time(data["last_seen"]),
                seen_via={Seen(v) for v in data["seen_via"]},
                times_seen=int(data["times_seen"]),
                verified_by=None if data["verified_by"] is None else Means(data["verified_by"]),
                verified_at=None if data["verified_at"] is None else _time(data["verified_at"]),
            )
            cert = x509.load_pem_x509_certificate(pem)
        except (KeyError, TypeError, ValueError) as exc:
            raise LedgerError(f"unreadable certificate record: {exc}") from exc
        if fingerprint_sha256(cert) != record.fingerprint:
            raise LedgerError(
                f"certificate {record.fingerprint.hex()[:16]}… does not match its PEM"
            )
        return record


@dataclass(frozen=True)
class HistoryEntry:
    at: dt.datetime
    kind: EventKind
    fingerprint: bytes | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind.value,
            "sha256": None if self.fingerprint is None else self.fingerprint.hex(),
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: Any) -> HistoryEntry:
        if not isinstance(data, dict):
            raise LedgerError("a history entry must be an object")
        try:
            fp = data.get("sha256")
            return cls(
                _time(data["at"]),
                EventKind(data["kind"]),
                None if fp is None else bytes.fromhex(fp),
                str(data.get("detail", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LedgerError(f"unreadable history entry: {exc}") from exc


def _time(value: Any) -> dt.datetime:
    moment = dt.datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError(f"time without a time zone: {value!r}")
    return moment


@dataclass
class Contact:
    """One person (AOR) and the certificates they have shown."""

    aor: str
    certificates: list[CertificateRecord] = field(default_factory=list)
    current: bytes | None = None
    #: A person-verified certificate was replaced: calls wait until the user answers.
    blocked: bool = False
    #: The certificate changed and the user has not answered yet (blocked or not).
    change_pending: bool = False
    history: list[HistoryEntry] = field(default_factory=list)
    #: S/MIME for calls with this contact (RFC 3261 §23.3); None: follow the account.
    smime: ProtectionMode | None = None

    def record(self, fingerprint: bytes) -> CertificateRecord | None:
        return next((r for r in self.certificates if r.fingerprint == fingerprint), None)

    @property
    def current_record(self) -> CertificateRecord | None:
        return None if self.current is None else self.record(self.current)

    @property
    def verified_by(self) -> Means | None:
        record = self.current_record
        return None if record is None or self.change_pending else record.verified_by

    @property
    def state(self) -> ContactState:
        record = self.current_record
        if record is None:
            return ContactState.CLAIMED
        if self.change_pending:
            return ContactState.CHANGED
        if record.verified_by in PERSONAL_MEANS:
            return ContactState.VERIFIED
        if record.verified_by is Means.CA_CHAIN:
            return ContactState.CERTIFICATE
        if record.times_seen > 1:
            return ContactState.SEEN_BEFORE
        return ContactState.CLAIMED

    def to_json(self) -> dict[str, Any]:
        return {
            "certificates": [r.to_json() for r in self.certificates],
            "current": None if self.current is None else self.current.hex(),
            "blocked": self.blocked,
            "change_pending": self.change_pending,
            "history": [h.to_json() for h in self.history],
            "smime": None if self.smime is None else self.smime.value,
        }

    @classmethod
    def from_json(cls, aor: str, data: Any, version: int = LEDGER_FORMAT_VERSION) -> Contact:
        """One contact of a ledger document of format ``version`` (1: no ``smime`` key)."""
        if not isinstance(data, dict):
            raise LedgerError(f"contact {aor} must be an object")
        try:
            records = [CertificateRecord.from_json(r) for r in data["certificates"]]
            history = [HistoryEntry.from_json(h) for h in data["history"]]
            current = None if data["current"] is None else bytes.fromhex(data["current"])
            blocked, pending = data["blocked"], data["change_pending"]
            raw_smime = data["smime"] if version >= 2 else None
            smime = None if raw_smime is None else ProtectionMode(raw_smime)
        except (KeyError, TypeError, ValueError) as exc:
            raise LedgerError(f"contact {aor}: {exc}") from exc
        if not isinstance(blocked, bool) or not isinstance(pending, bool):
            raise LedgerError(f"contact {aor}: blocked and change_pending are true or false")
        contact = cls(aor, records, current, blocked, pending, history, smime)
        if current is not None and contact.record(current) is None:
            raise LedgerError(f"contact {aor}: the current certificate is not among its records")
        return contact


@dataclass(frozen=True)
class Observation:
    """What :meth:`TrustLedger.observe` found.

    ``must_block``: the contact had been verified by a person and now presents another
    certificate (or still has an unanswered such change): the call must not proceed until the
    user answers. ``previous`` is the certificate that was current before a change.
    """

    aor: str
    kind: ObservationKind
    fingerprint: bytes
    state: ContactState
    previous: bytes | None = None
    was_verified: bool = False
    must_block: bool = False


class TrustLedger:
    """AOR → :class:`Contact`. Mutable in memory; the caller saves it after a change."""

    def __init__(self, contacts: dict[str, Contact] | None = None) -> None:
        self._contacts: dict[str, Contact] = dict(contacts or {})

    # --- reading --------------------------------------------------------------------------

    def get(self, aor: str) -> Contact | None:
        return self._contacts.get(normalise_aor(aor))

    def contact(self, aor: str) -> Contact:
        found = self.get(aor)
        if found is None:
            raise UnknownContactError(normalise_aor(aor))
        return found

    def state(self, aor: str) -> ContactState:
        """The contact's state; ``claimed`` for an AOR never seen with a certificate."""
        found = self.get(aor)
        return ContactState.CLAIMED if found is None else found.state

    def __iter__(self) -> Iterator[Contact]:
        return iter(self._contacts[k] for k in sorted(self._contacts))

    def __len__(self) -> int:
        return len(self._contacts)

    def __contains__(self, aor: object) -> bool:
        return isinstance(aor, str) and self.get(aor) is not None

    # --- changes --------------------------------------------------------------------------

    def observe(
        self, aor: str, cert: x509.Certificate, via: Seen | str, now: dt.datetime
    ) -> Observation:
        """Record that ``aor`` presented ``cert`` through ``via`` at ``now``.

        Returns NEW_CONTACT, SAME (the current certificate again) or CHANGED. A change makes
        the new certificate current, loses any verification and, when a person had verified
        the old one, blocks the contact (:attr:`Observation.must_block`).
        """
        now, via = _check_time(now), Seen(via)
        key = normalise_aor(aor)
        fingerprint = fingerprint_sha256(cert)
        contact = self._contacts.get(key)
        if contact is None or contact.current is None:
            # A new contact, or one known only by its S/MIME preference: its first certificate.
            if contact is None:
                contact = Contact(key)
                self._contacts[key] = contact
            self._see(contact, cert, fingerprint, via, now)
            contact.current = fingerprint
            return Observation(key, ObservationKind.NEW_CONTACT, fingerprint, contact.state)
        if contact.current == fingerprint:
            self._see(contact, cert, fingerprint, via, now)
            return Observation(
                key,
                ObservationKind.SAME,
                fingerprint,
                contact.state,
                must_block=contact.blocked,
            )
        previous = contact.current
        old = contact.current_record
        was_verified = old is not None and old.verified_by is not None
        personal = old is not None and old.verified_by in PERSONAL_MEANS
        self._see(contact, cert, fingerprint, via, now)
        contact.current = fingerprint
        contact.change_pending = True
        contact.blocked = contact.blocked or personal
        detail = f"was {previous.hex() if previous else 'none'}"
        contact.history.append(HistoryEntry(now, EventKind.CHANGED, fingerprint, detail))
        if was_verified and old is not None:
            lost = old.verified_by
            old.verified_by, old.verified_at = None, None
            contact.history.append(
                HistoryEntry(
                    now,
                    EventKind.UNVERIFIED_BY_CHANGE,
                    previous,
                    f"verified by {lost.value if lost else '?'} until the change",
                )
            )
        return Observation(
            key,
            ObservationKind.CHANGED,
            fingerprint,
            contact.state,
            previous=previous,
            was_verified=was_verified,
            must_block=contact.blocked,
        )

    @staticmethod
    def _see(
        contact: Contact, cert: x509.Certificate, fingerprint: bytes, via: Seen, now: dt.datetime
    ) -> None:
        record = contact.record(fingerprint)
        if record is None:
            pem = cert.public_bytes(serialization.Encoding.PEM)
            contact.certificates.append(CertificateRecord(fingerprint, pem, now, now, {via}))
            contact.history.append(HistoryEntry(now, EventKind.SEEN_NEW, fingerprint, via.value))
            return
        record.last_seen = max(record.last_seen, now)
        record.seen_via.add(via)
        record.times_seen += 1

    def mark_verified(
        self, aor: str, fingerprint: bytes, means: Means | str, now: dt.datetime
    ) -> Contact:
        """The user verified ``fingerprint`` for ``aor`` by ``means``.

        Refuses (LedgerError) a fingerprint that is not the contact's current certificate:
        verifying an old or a never-seen certificate would vouch for the wrong key. Answers a
        pending change (the new certificate is the one verified).
        """
        now, means = _check_time(now), Means(means)
        contact = self.contact(aor)
        if contact.current != fingerprint:
            known = contact.record(fingerprint) is not None
            raise LedgerError(
                f"{fingerprint.hex()[:16]}… is {'no longer' if known else 'not'} the "
                f"certificate of {contact.aor}; its current one is "
                f"{contact.current.hex()[:16] if contact.current else 'none'}…"
            )
        record = contact.current_record
        assert record is not None
        record.verified_by, record.verified_at = means, now
        contact.blocked = contact.change_pending = False
        contact.history.append(HistoryEntry(now, EventKind.VERIFIED, fingerprint, means.value))
        return contact

    def accept_change(self, aor: str, fingerprint: bytes, now: dt.datetime) -> Contact:
        """The user answered the "changed" warning and chose to go on with ``fingerprint``
        (unverified: compare the safety number to make it verified again)."""
        now = _check_time(now)
        contact = self.contact(aor)
        if not contact.change_pending:
            raise LedgerError(f"the certificate of {contact.aor} has not changed")
        if contact.current != fingerprint:
            raise LedgerError(f"{fingerprint.hex()[:16]}… is not the new certificate")
        contact.blocked = contact.change_pending = False
        contact.history.append(HistoryEntry(now, EventKind.CHANGE_ACCEPTED, fingerprint))
        return contact

    def set_smime(
        self, aor: str, preference: ProtectionMode | str | None, now: dt.datetime
    ) -> Contact:
        """The S/MIME setting for calls with ``aor`` (issue 6; RFC 3261 §23.3): a mode, or
        None / ``"account"`` to follow the account again. An AOR not in the ledger yet is
        created with no certificate ("claimed"). A change is recorded in the history; setting
        the same value again changes nothing."""
        now = _check_time(now)
        if isinstance(preference, str):
            preference = parse_smime_preference(preference)
        key = normalise_aor(aor)
        contact = self._contacts.get(key)
        if contact is None:
            contact = Contact(key)
            self._contacts[key] = contact
        if contact.smime is preference:
            return contact
        detail = f"{_preference_words(contact.smime)} -> {_preference_words(preference)}"
        contact.smime = preference
        contact.history.append(HistoryEntry(now, EventKind.SMIME_PREFERENCE, None, detail))
        return contact

    def forget(self, aor: str) -> Contact:
        """Remove the contact (and everything known about it); returns what was removed."""
        contact = self.contact(aor)
        del self._contacts[contact.aor]
        return contact

    def record_export(self, now: dt.datetime, destination: str) -> None:
        """Note in every contact's history that the ledger was exported (an audit trail)."""
        now = _check_time(now)
        for contact in self._contacts.values():
            contact.history.append(HistoryEntry(now, EventKind.EXPORTED, None, destination))

    # --- serialisation --------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": LEDGER_FORMAT_VERSION,
            "contacts": {c.aor: c.to_json() for c in self},
        }

    def to_bytes(self) -> bytes:
        """Compact JSON: the indented form took 3 times as long (Python's encoder; the C one
        does no indent), 27 ms of a 500-contact save on the event loop. ``softphone contacts
        export`` writes the indented document for reading."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return (text + "\n").encode("utf-8")

    def text(self) -> LedgerText:
        """:meth:`to_bytes` again and again, each contact's JSON kept (:class:`LedgerText`)."""
        return LedgerText(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> TrustLedger:
        """Parse :meth:`to_bytes` output; anything else raises :class:`LedgerError`."""
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LedgerError(f"the trust ledger is not JSON: {exc}") from exc
        if not isinstance(document, dict) or not isinstance(document.get("version"), int):
            raise LedgerError("the trust ledger has no version")
        if document["version"] > LEDGER_FORMAT_VERSION:
            raise LedgerError(
                f"the trust ledger was written by a newer version (format {document['version']})"
            )
        contacts = document.get("contacts")
        if not isinstance(contacts, dict):
            raise LedgerError("the trust ledger has no contacts object")
        parsed: dict[str, Contact] = {}
        for aor, data_ in contacts.items():
            key = normalise_aor(str(aor))
            if key != aor:
                raise LedgerError(f"contact key {aor!r} is not a normalised AOR ({key})")
            parsed[key] = Contact.from_json(key, data_, document["version"])
        return cls(parsed)


def sync_pins(ledger: TrustLedger, aor: str, pins: PinStore, now: dt.datetime) -> bool:
    """Make the pins of ``Identity.aor(aor)`` follow the ledger; whether anything changed.

    - verified by a person → the current certificate is the one
      ``PinReason.VERIFIED_SAFETY_NUMBER`` pin (so a sipsec peer presenting it is
      :attr:`PinState.MATCHES` and one presenting anything else is CHANGED);
    - an unanswered change → the old pin is kept, so the TLS evaluation also blocks;
    - otherwise (answered change, forgotten contact) → verified-safety-number pins are
      removed; "always trust" pins the user made in a trust dialog are left alone.
    """
    now = _check_time(now)
    identity = Identity.aor(normalise_aor(aor))
    contact = ledger.get(aor)
    if contact is not None and contact.change_pending:
        return False
    if contact is not None and contact.state is ContactState.VERIFIED:
        assert contact.current is not None
        existing = pins.pins_for(identity)
        wanted = (contact.current, PinReason.VERIFIED_SAFETY_NUMBER)
        if [(p.sha256, p.reason) for p in existing] == [wanted]:
            return False
        pins.replace(
            identity, Pin(contact.current, now, PinReason.VERIFIED_SAFETY_NUMBER, contact.aor)
        )
        return True
    changed = False
    for pin in pins.pins_for(identity):
        if pin.reason is PinReason.VERIFIED_SAFETY_NUMBER:
            changed = pins.remove(identity, pin.sha256) or changed
    return changed


class LedgerText:
    """:meth:`TrustLedger.to_bytes` of one ledger, byte for byte, each contact's JSON made once
    and kept: after one contact changed (and :meth:`changed` was told) only its JSON is made
    again. Encoding every contact took 9-11 ms with 500 contacts, on the event loop at every
    sipsec call's set-up that records the peer's certificate (issue 7)."""

    def __init__(self, ledger: TrustLedger) -> None:
        self.ledger = ledger
        self._texts: dict[str, str] = {}

    def changed(self, aor: str) -> None:
        """``aor``'s contact changed (or was added or removed) since the last :meth:`to_bytes`."""
        self._texts.pop(normalise_aor(aor), None)

    def to_bytes(self) -> bytes:
        texts: dict[str, str] = {}
        for contact in self.ledger:  # sorted by AOR, as json's sort_keys orders them
            text = self._texts.get(contact.aor)
            if text is None:
                text = json.dumps(contact.to_json(), sort_keys=True, separators=(",", ":"))
            texts[contact.aor] = text
        self._texts = texts
        body = ",".join(f"{json.dumps(aor)}:{text}" for aor, text in texts.items())
        return f'{{"contacts":{{{body}}},"version":{LEDGER_FORMAT_VERSION}}}\n'.encode()
