"""What the GUI's contacts view needs of the trust ledger beyond ``softphone.ua``'s façade:
every change ``softphone contacts`` can make, made the same way (the shared steps live in
:mod:`softphone.contacts`): the per-contact S/MIME setting (issue 6: "sign, sign+encrypt, or
off, per contact or account"; RFC 3261 §23.3, :func:`save_contact_smime`), "We compared the
safety number" (:func:`verify_contact`, UX.md "Safety number"), going on with a changed
certificate (:func:`accept_contact_change`), a certificate received by hand
(:func:`add_contact_certificate`), the audit export (:func:`export_contacts`) and forgetting a
contact (:func:`forget_contact`).

Each one re-reads the ledger file, changes it, and writes it atomically, as
:func:`save_contact_smime` does below; verify, accept and forget then bring the pin store in
line (:func:`softphone.contacts.save_with_pins`) as the CLI does. The errors they raise are
:data:`CONTACT_ERRORS`; nothing is written when one is raised before the save.

:func:`save_contact_smime` re-reads the ledger file first (another window or the CLI may have
written it since the view was filled), sets the preference with
:meth:`~softphone.security.ledger.TrustLedger.set_smime` (recorded in the contact's history)
and writes the file atomically (:func:`softphone.contacts.save_ledger`: a crash leaves the old
ledger or the new one, never half of one). It does file I/O and an fsync: call it from a
worker thread when an event loop must not stall.

What a call then does with the preference (``softphone.ua.smime_call``): our SDP goes out as
the contact's setting says (:func:`sending_mode`), and what we require of *their* bodies is
the stricter of the account's and the contact's settings (:func:`required_mode`), so ``off``
for one contact never weakens an account that requires S/MIME.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Final

from softphone.contacts import (
    CorruptLedgerError,
    add_certificate,
    export_ledger,
    load_ledger,
    read_certificate_file,
    save_ledger,
    save_with_pins,
)
from softphone.security.ledger import (
    ACCOUNT,
    LedgerError,
    Means,
    Observation,
    ObservationKind,
    TrustLedger,
    parse_smime_preference,
    required_mode,
    sending_mode,
)
from softphone.security.pins import PinStoreError
from softphone.security.smime import ProtectionMode

__all__ = [
    "ACCOUNT",
    "CONTACT_ERRORS",
    "CorruptLedgerError",
    "LedgerError",
    "Observation",
    "ObservationKind",
    "PinStoreError",
    "ProtectionMode",
    "accept_contact_change",
    "add_contact_certificate",
    "export_contacts",
    "forget_contact",
    "parse_smime_preference",
    "required_mode",
    "save_contact_smime",
    "sending_mode",
    "verify_contact",
]

PathLike = str | os.PathLike[str]

#: What the changes below raise for a person to read (a ledger refusing, files).
CONTACT_ERRORS: Final = (LedgerError, PinStoreError, OSError)


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.UTC)


def save_contact_smime(
    ledger_path: str | os.PathLike[str],
    aor: str,
    preference: ProtectionMode | None,
    *,
    now: dt.datetime | None = None,
) -> TrustLedger:
    """Set ``aor``'s S/MIME preference (``None``: follow the account) in the ledger file at
    ``ledger_path`` and save it atomically; returns the ledger as saved.

    Raises :class:`LedgerError` when the file cannot be read (a corrupt one is kept aside,
    :class:`CorruptLedgerError` says where; a newer format is left alone) or the AOR is not an
    address of record, and ``OSError`` when it cannot be read or written. Nothing is written
    then."""
    ledger = load_ledger(ledger_path, now=now)
    ledger.set_smime(aor, preference, _now(now))
    save_ledger(ledger_path, ledger)
    return ledger


def verify_contact(
    ledger_path: PathLike,
    aor: str,
    fingerprint: bytes,
    *,
    pins_path: PathLike | None = None,
    now: dt.datetime | None = None,
) -> TrustLedger:
    """ "We compared the safety number" (UX.md "Safety number"): ``fingerprint``, the
    certificate whose safety number was shown, is verified by :attr:`Means.SAFETY_NUMBER`,
    as ``softphone contacts verify AOR --fingerprint FP --means safety-number`` does; the pin
    store follows (verified for sipsec and S/MIME alike). Answers a pending change too.

    Raises :class:`LedgerError` when the certificate is no longer the contact's current one
    (it changed since the number was shown: nothing is marked), the contact is unknown or the
    file unreadable; :data:`CONTACT_ERRORS` otherwise."""
    moment = _now(now)
    ledger = load_ledger(ledger_path, now=moment)
    contact = ledger.mark_verified(aor, fingerprint, Means.SAFETY_NUMBER, moment)
    save_with_pins(ledger_path, ledger, pins_path, contact.aor, moment)
    return ledger


def accept_contact_change(
    ledger_path: PathLike,
    aor: str,
    fingerprint: bytes,
    *,
    pins_path: PathLike | None = None,
    now: dt.datetime | None = None,
) -> TrustLedger:
    """Go on with ``aor``'s changed certificate ``fingerprint`` (unverified), as
    ``softphone contacts accept-change`` does; the old verified pin is removed. Raises
    :class:`LedgerError` when the certificate has not changed, or ``fingerprint`` is not the
    new one (it changed again since it was shown)."""
    moment = _now(now)
    ledger = load_ledger(ledger_path, now=moment)
    contact = ledger.accept_change(aor, fingerprint, moment)
    save_with_pins(ledger_path, ledger, pins_path, contact.aor, moment)
    return ledger


def add_contact_certificate(
    ledger_path: PathLike, aor: str, cert_path: PathLike, *, now: dt.datetime | None = None
) -> tuple[TrustLedger, Observation]:
    """Record the certificate in the PEM file ``cert_path`` as ``aor``'s, received by hand,
    as ``softphone contacts add AOR --cert FILE`` does. The :class:`Observation` says whether
    it is a new contact, the same certificate, or CHANGED (then compare the safety number).
    Raises :class:`LedgerError` (no PEM certificate, not an address of record) or
    ``OSError``; the ledger is not written then."""
    moment = _now(now)
    cert = read_certificate_file(cert_path)
    ledger = load_ledger(ledger_path, now=moment)
    observation = add_certificate(ledger, aor, cert, moment)
    save_ledger(ledger_path, ledger)
    return ledger, observation


def export_contacts(
    ledger_path: PathLike, out: PathLike, *, now: dt.datetime | None = None
) -> TrustLedger:
    """The ledger as JSON for an audit, written atomically to ``out`` (0600: it names
    everyone you talk to), the export noted in every contact's history, as
    ``softphone contacts export --out FILE`` does."""
    moment = _now(now)
    ledger = load_ledger(ledger_path, now=moment)
    export_ledger(ledger, ledger_path, out, moment)
    return ledger


def forget_contact(
    ledger_path: PathLike,
    aor: str,
    *,
    pins_path: PathLike | None = None,
    now: dt.datetime | None = None,
) -> TrustLedger:
    """Remove ``aor`` and everything known about it, as ``softphone contacts forget`` does
    (its verified pin goes too: a verified contact must be verified again)."""
    moment = _now(now)
    ledger = load_ledger(ledger_path, now=moment)
    contact = ledger.forget(aor)
    save_with_pins(ledger_path, ledger, pins_path, contact.aor, moment)
    return ledger
