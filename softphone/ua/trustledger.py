"""The trust ledger as the user agent keeps it: read, observe, verify, save (issue 6).

:class:`LedgerKeeper` is the one place where calls touch the ledger file
(:mod:`softphone.contacts`, ``contacts.json``) and the pin store beside it (``pins.json``).
Both are looked at before each use (another window, ``softphone contacts verify``, may have
written them) and written atomically after each change. The ledger is parsed again only when
its file changed (:meth:`LedgerKeeper.load`): a call's set-up asks it four to six times, and
each parse took 6 ms of the event loop with 100 contacts, 20-40 ms with 500 (issue 7: the loop
never stalls 20 ms); a check of the file's identity costs a ``stat``.

What the calls do with it:

* before a sipsec peer's certificate is judged (draft-gurbani-sip-sipsec-01 §6.4/§6.5),
  :meth:`LedgerKeeper.pin_verified` makes a contact verified in the ledger also *pinned*
  (:func:`~softphone.security.ledger.sync_pins`), so the
  :class:`~softphone.ua.trustgate.TrustGate` sees a different certificate as "changed" and asks
  loudly before the INVITE goes anywhere;
* after it was accepted, :meth:`LedgerKeeper.observe` records it (``Seen.SIPSEC``); so does an
  S/MIME signer or a certs-only body (RFC 3261 §23.2, ``Seen.SMIME``);
* "We compared it" is :meth:`LedgerKeeper.mark_verified`: the ledger and the pins at once.

A ledger that cannot be read is never replaced in silence (:mod:`softphone.contacts` moves a
corrupt file aside and says so); here it means no ledger for this call, logged, and the pins
still guard sipsec peers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from softphone.contacts import load_ledger, save_ledger
from softphone.security.certificates import InvalidIdentityError
from softphone.security.ledger import (
    Contact,
    ContactState,
    LedgerError,
    LedgerText,
    Means,
    Observation,
    ObservationKind,
    Seen,
    TrustLedger,
    sync_pins,
)
from softphone.security.pins import PinStoreError
from softphone.security.safety import memoised_safety_number, safety_number_steps
from softphone.security.smime import ProtectionMode
from softphone.storage import load_pin_store, save_pin_store
from softphone.ua.turns import run_in_slices

__all__ = ["LEDGER_STATES", "LedgerKeeper", "identity_state_of", "safety_number_in_slices"]

log = logging.getLogger(__name__)

#: ContactState → the words of PeerIdentity.identity_state (UX.md "Who is on the other end").
LEDGER_STATES = {
    ContactState.CLAIMED: "claimed",
    ContactState.CERTIFICATE: "certificate",
    ContactState.SEEN_BEFORE: "seen-before",
    ContactState.VERIFIED: "verified",
    ContactState.CHANGED: "changed",
}


def identity_state_of(state: ContactState) -> str:
    return LEDGER_STATES[state]


#: What tells a ledger file from another: device, inode, size, modification time (ns).
FileIdentity = tuple[int, int, int, int]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LedgerKeeper:
    """The ledger at ``ledger_path`` and the pin store at ``pin_store_path``."""

    def __init__(
        self,
        ledger_path: Path,
        pin_store_path: Path,
        *,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self.ledger_path = Path(ledger_path)
        self.pin_store_path = Path(pin_store_path)
        self._clock = clock
        #: The ledger last read or written, with the identity of its file then.
        self._cache: tuple[FileIdentity, TrustLedger] | None = None
        #: The file's bytes of the ledger last saved, each contact's JSON kept for the next
        #: save of the same ledger object (only what changed is encoded again).
        self._text: LedgerText | None = None

    def _identity(self) -> FileIdentity | None:
        try:
            st = os.stat(self.ledger_path)
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def load(self) -> TrustLedger:
        """The ledger as it is on disk now; ``LedgerError`` when it cannot be read.

        Parsed again only when the file is not the one parsed last: another inode (every save
        replaces the file, ours and :mod:`softphone.contacts`'), size or modification time.
        The object given out is shared until then: read it only (a change goes through
        :meth:`_changing`, so what is kept is always what the file holds)."""
        before = self._identity()
        if before is not None and self._cache is not None and self._cache[0] == before:
            return self._cache[1]
        ledger = load_ledger(self.ledger_path, now=self._clock())
        unchanged = before is not None and self._identity() == before  # while it was read
        self._cache = (before, ledger) if before is not None and unchanged else None
        return ledger

    def _changing(self) -> None:
        """The ledger just loaded is about to change: no longer the kept one until it is
        saved (:meth:`_saved`), so a change that fails half-way, or is not saved, is never
        served as what the file holds."""
        self._cache = None

    def _saved(self, ledger: TrustLedger) -> None:
        """``ledger`` is now what the file holds."""
        identity = self._identity()
        self._cache = None if identity is None else (identity, ledger)

    def _load_quiet(self) -> TrustLedger | None:
        try:
            return self.load()
        except (OSError, LedgerError) as exc:
            log.warning("the trust ledger is not usable: %s", exc)
            return None

    def _save(self, ledger: TrustLedger, changed: str) -> None:
        try:
            self._write(ledger, changed)
        except OSError as exc:
            log.warning("could not save the trust ledger: %s", exc)
            return
        self._saved(ledger)

    def _write(self, ledger: TrustLedger, changed: str) -> None:
        """:func:`softphone.contacts.save_ledger`, the same bytes, with only the contact
        ``changed`` encoded again when ``ledger`` is the one saved last (9-11 ms with 500
        contacts at each sipsec call's set-up, on the event loop: issue 7)."""
        text = self._text
        if text is None or text.ledger is not ledger:
            text = self._text = ledger.text()
        text.changed(changed)
        save_ledger(self.ledger_path, text)

    def state(self, aor: str) -> ContactState:
        """The contact's state (``claimed`` when unknown or the ledger is unreadable)."""
        ledger = self._load_quiet()
        return ContactState.CLAIMED if ledger is None else ledger.state(aor)

    def current_certificate(self, aor: str) -> x509.Certificate | None:
        """The certificate ``aor`` presented last (S/MIME encrypts to it, RFC 3261 §23.3)."""
        ledger = self._load_quiet()
        contact = None if ledger is None else ledger.get(aor)
        record = None if contact is None else contact.current_record
        return None if record is None else record.certificate

    def smime_preference(self, aor: str) -> ProtectionMode | None:
        """The contact's own S/MIME setting (RFC 3261 §23.3), None when it follows the
        account (or the ledger is unreadable: the account's setting then applies)."""
        ledger = self._load_quiet()
        contact = None if ledger is None else ledger.get(aor)
        return None if contact is None else contact.smime

    def pin_verified(self, aor: str) -> None:
        """Make the pins follow the ledger for ``aor`` (``sync_pins``): a verified contact's
        certificate becomes its one pin, so any other is "changed" for the TrustGate."""
        ledger = self._load_quiet()
        if ledger is None:
            return
        try:
            pins = load_pin_store(self.pin_store_path)
            if sync_pins(ledger, aor, pins, self._clock()):
                save_pin_store(self.pin_store_path, pins)
        except (OSError, PinStoreError) as exc:
            log.warning("could not bring the pins in line with the ledger: %s", exc)

    def observe(
        self, aor: str, cert: x509.Certificate, via: Seen, *, accepted_change: bool = False
    ) -> Observation | None:
        """Record that ``aor`` presented ``cert`` (saved at once). ``accepted_change``: a
        person already answered the loud "changed" question for this very certificate (the
        TrustGate's dialog), so a change it reveals is answered too. None when the ledger is
        unreadable."""
        ledger = self._load_quiet()
        if ledger is None:
            return None
        self._changing()
        now = self._clock()
        observation = ledger.observe(aor, cert, via, now)
        if accepted_change and observation.kind is ObservationKind.CHANGED:
            ledger.accept_change(aor, observation.fingerprint, now)
            observation = Observation(
                observation.aor,
                observation.kind,
                observation.fingerprint,
                ledger.state(aor),
                previous=observation.previous,
                was_verified=observation.was_verified,
                must_block=False,
            )
        self._save(ledger, aor)
        if observation.kind is ObservationKind.CHANGED:
            self.pin_verified(aor)  # a verification lost with the change leaves the pins
        return observation

    def mark_verified(self, aor: str, means: Means | str = Means.SAFETY_NUMBER) -> Contact:
        """ "We compared it" (UX.md "Safety number"): the contact's current certificate is
        verified by ``means`` in the ledger and pinned (``VERIFIED_SAFETY_NUMBER``). Raises
        ``LedgerError`` (unknown contact, unreadable ledger) or ``OSError`` (not saved)."""
        ledger = self.load()
        self._changing()
        contact = ledger.contact(aor)
        if contact.current is None:
            raise LedgerError(f"no certificate of {contact.aor} is known yet")
        contact = ledger.mark_verified(aor, contact.current, means, self._clock())
        self._write(ledger, aor)
        self._saved(ledger)
        pins = load_pin_store(self.pin_store_path)
        if sync_pins(ledger, aor, pins, self._clock()):
            save_pin_store(self.pin_store_path, pins)
        return contact


async def safety_number_in_slices(
    own_cert: x509.Certificate, own_aor: str, peer_cert: x509.Certificate, peer_aor: str
) -> str | None:
    """The safety number of a call, without stalling the event loop (issue 7: 20 ms): the
    memoised one at once, else worked out on the loop a millisecond at a time
    (:func:`~softphone.ua.turns.run_in_slices`: 5200 x SHA-512 per new key, ~12 ms here;
    the memo then serves every later call, contact view and QR code). ``None`` when an AOR
    is not a usable identity."""
    with contextlib.suppress(ValueError, InvalidIdentityError):
        known = memoised_safety_number(own_cert, own_aor, peer_cert, peer_aor)
        if known is not None:
            return str(known)
        steps = safety_number_steps(own_cert, own_aor, peer_cert, peer_aor)
        return str(await run_in_slices(steps))
    return None
