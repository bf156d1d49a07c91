"""What the GUI's contacts view needs of the trust ledger beyond ``softphone.ua``'s façade:
the per-contact S/MIME setting (issue 6: "sign, sign+encrypt, or off, per contact or
account"; RFC 3261 §23.3), written the way ``softphone contacts smime`` writes it.

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

from softphone.contacts import CorruptLedgerError, load_ledger, save_ledger
from softphone.security.ledger import (
    ACCOUNT,
    LedgerError,
    TrustLedger,
    parse_smime_preference,
    required_mode,
    sending_mode,
)
from softphone.security.smime import ProtectionMode

__all__ = [
    "ACCOUNT",
    "CorruptLedgerError",
    "LedgerError",
    "ProtectionMode",
    "parse_smime_preference",
    "required_mode",
    "save_contact_smime",
    "sending_mode",
]


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
    ledger.set_smime(aor, preference, now or dt.datetime.now(dt.UTC))
    save_ledger(ledger_path, ledger)
    return ledger
