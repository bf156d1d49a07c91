"""The trust ledger on disk: ``<user data dir>/trust/contacts.json``, beside the pin store.

Written with :func:`softphone.storage.atomic_write` (0600): a crash leaves the old ledger or
the new one. A file that exists but cannot be read is never replaced by an empty ledger in
silence: it is moved aside to ``contacts.json.corrupt-<UTC time>`` and
:class:`CorruptLedgerError` says where, so the person can look at it (the next load then
starts afresh, having been told). A ledger written by a newer version is left where it is.

:func:`export_ledger` writes the JSON for an audit (the same document as the ledger file,
with an ``exported_at`` stamp) and notes the export in every contact's history.

The steps ``softphone contacts`` and the GUI's contacts view share (one implementation, so a
certificate added or a contact verified in either is judged and stored alike):
:func:`read_certificate_file` (a certificate received by hand: the first PEM certificate of a
file), :func:`add_certificate` (recorded as seen ``manual``) and :func:`save_with_pins` (the
ledger saved, then the pin store brought in line with it by
:func:`~softphone.security.ledger.sync_pins`, so "verified" also pins the certificate for
sipsec calls, draft-gurbani-sip-sipsec-01 §6).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import platformdirs
from cryptography import x509

from softphone.security.ledger import (
    LEDGER_FORMAT_VERSION,
    LedgerError,
    LedgerText,
    Observation,
    Seen,
    TrustLedger,
    sync_pins,
)
from softphone.storage import APP_NAME, atomic_write, load_pin_store, save_pin_store

__all__ = [
    "CorruptLedgerError",
    "add_certificate",
    "default_ledger_path",
    "export_ledger",
    "ledger_export_bytes",
    "load_ledger",
    "read_certificate_file",
    "save_ledger",
    "save_with_pins",
]


class CorruptLedgerError(LedgerError):
    """The ledger file was unreadable; it has been kept aside as :attr:`kept`."""

    def __init__(self, path: Path, kept: Path, reason: str) -> None:
        self.path, self.kept = path, kept
        super().__init__(
            f"the trust ledger {path} could not be read ({reason}); it was kept aside as "
            f"{kept}. Verified contacts in it are no longer known: the next run starts with "
            "an empty ledger, or restore the file after repairing it"
        )


def default_ledger_path() -> Path:
    """``<user data dir>/trust/contacts.json`` (beside ``pins.json``)."""
    return Path(platformdirs.user_data_dir(APP_NAME)) / "trust" / "contacts.json"


def load_ledger(path: str | os.PathLike[str], *, now: dt.datetime | None = None) -> TrustLedger:
    """The ledger at ``path``; an empty one when the file does not exist yet.

    A corrupt file is renamed to ``<name>.corrupt-<now>`` and :class:`CorruptLedgerError`
    raised; a file of a newer format raises :class:`LedgerError` and is left untouched.
    """
    target = Path(path)
    try:
        data = target.read_bytes()
    except FileNotFoundError:
        return TrustLedger()
    try:
        return TrustLedger.from_bytes(data)
    except LedgerError as exc:
        if "newer version" in str(exc):
            raise
        moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        kept = target.with_name(f"{target.name}.corrupt-{moment:%Y%m%dT%H%M%S%fZ}")
        os.replace(target, kept)
        raise CorruptLedgerError(target, kept, str(exc)) from exc


def save_ledger(path: str | os.PathLike[str], ledger: TrustLedger | LedgerText) -> None:
    """Write ``ledger`` atomically, readable by the user only (a :class:`LedgerText` writes
    the same bytes, encoding again only the contacts it was told changed)."""
    atomic_write(path, ledger.to_bytes(), mode=0o600)


def ledger_export_bytes(ledger: TrustLedger, now: dt.datetime) -> bytes:
    """The audit export: the ledger document plus ``exported_at``."""
    document = ledger.to_json()
    document["exported_at"] = now.astimezone(dt.UTC).isoformat()
    document["version"] = LEDGER_FORMAT_VERSION
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


def export_ledger(
    ledger: TrustLedger,
    ledger_path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None,
    now: dt.datetime,
) -> bytes:
    """Record the export in the ledger (saved to ``ledger_path``), write it to ``out`` (0600:
    it names everyone you talk to) when given, and return the exported bytes."""
    ledger.record_export(now, str(out) if out is not None else "standard output")
    data = ledger_export_bytes(ledger, now)
    if out is not None:
        atomic_write(out, data, mode=0o600)
    save_ledger(ledger_path, ledger)
    return data


def read_certificate_file(path: str | os.PathLike[str]) -> x509.Certificate:
    """The first certificate of the PEM file at ``path`` (a certificate received by hand).

    Raises :class:`LedgerError` when the file holds no readable PEM certificate, ``OSError``
    when it cannot be read."""
    data = Path(path).read_bytes()
    try:
        return x509.load_pem_x509_certificates(data)[0]
    except (ValueError, IndexError) as exc:
        raise LedgerError(f"{path} holds no readable PEM certificate") from exc


def add_certificate(
    ledger: TrustLedger, aor: str, cert: x509.Certificate, now: dt.datetime
) -> Observation:
    """Record ``cert`` as ``aor``'s, received by hand (:attr:`Seen.MANUAL`): a new contact, the
    same certificate again, or CHANGED (loud: a person-verified contact is blocked until
    answered). ``LedgerError`` for an AOR that is not an address of record."""
    return ledger.observe(aor, cert, Seen.MANUAL, now)


def save_with_pins(
    ledger_path: str | os.PathLike[str],
    ledger: TrustLedger,
    pins_path: str | os.PathLike[str] | None,
    aor: str,
    now: dt.datetime,
) -> None:
    """Save ``ledger``, then make the pins of ``aor`` follow it (:func:`sync_pins`: verified →
    pinned ``verified-safety-number``; answered change or forgotten → that pin removed).
    ``pins_path`` ``None``: the pins are left to the user agent, which brings them in line
    before it judges a sipsec peer. Raises ``OSError`` or ``PinStoreError``; the ledger is
    saved first, so a pin store that cannot be written never loses the person's answer."""
    save_ledger(ledger_path, ledger)
    if pins_path is None:
        return
    pins = load_pin_store(pins_path)
    if sync_pins(ledger, aor, pins, now):
        save_pin_store(pins_path, pins)
