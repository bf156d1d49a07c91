"""The pin store: certificates a person chose to trust for an identity (sans-I/O data model).

Like SSH's ``known_hosts``: once a user has said "always trust this certificate for
example.test", a different certificate for example.test later is not a new question but a
loud warning (:attr:`PinState.CHANGED`). Reading and writing the file (atomically) is
:mod:`softphone.storage`'s job; this module only turns a store into bytes and back.

The serialisation is versioned JSON::

    {"version": 1,
     "pins": {"domain:example.test": [
         {"sha256": "ab12...", "pinned_at": "2025-06-01T12:00:00+00:00",
          "reason": "always-trust", "subject": "example.test"}]}}
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from softphone.security.certificates import Identity, SecurityError

__all__ = ["FORMAT_VERSION", "Pin", "PinReason", "PinState", "PinStore", "PinStoreError"]

#: Bumped when the JSON layout changes; older readers refuse newer files rather than lose pins.
FORMAT_VERSION = 1


class PinStoreError(SecurityError, ValueError):
    """The trust store bytes are not a pin store this version can read."""


class PinReason(StrEnum):
    """Why a certificate was pinned: what the user did."""

    ALWAYS_TRUST = "always-trust"
    VERIFIED_SAFETY_NUMBER = "verified-safety-number"


class PinState(StrEnum):
    """How the presented certificate relates to the pins for the identity."""

    NONE = "none"  # nothing pinned for this identity
    MATCHES = "matches"  # the presented leaf is pinned for this identity
    CHANGED = "changed"  # something else is pinned: never accepted automatically


@dataclass(frozen=True)
class Pin:
    """One trusted certificate for one identity (its SHA-256 fingerprint over the DER)."""

    sha256: bytes
    pinned_at: dt.datetime
    reason: PinReason
    subject: str = ""

    def __post_init__(self) -> None:
        if len(self.sha256) != 32:
            raise PinStoreError("a pin is a 32-byte SHA-256 fingerprint")
        if self.pinned_at.tzinfo is None:
            raise PinStoreError("pinned_at must carry a time zone")

    def to_json(self) -> dict[str, str]:
        return {
            "sha256": self.sha256.hex(),
            "pinned_at": self.pinned_at.isoformat(),
            "reason": self.reason.value,
            "subject": self.subject,
        }

    @classmethod
    def from_json(cls, data: Any) -> Pin:
        if not isinstance(data, dict):
            raise PinStoreError("a pin must be an object")
        try:
            return cls(
                sha256=bytes.fromhex(data["sha256"]),
                pinned_at=dt.datetime.fromisoformat(data["pinned_at"]),
                reason=PinReason(data["reason"]),
                subject=str(data.get("subject", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PinStoreError(f"unreadable pin: {exc}") from exc


class PinStore:
    """Identity key (``domain:example.test``, ``aor:bob@example.test``) → pinned certificates.

    Mutable in memory; the caller saves it (``softphone.storage.save_pin_store``) after a
    change. Several pins per identity are allowed (a user who verified two devices), so a
    domain served by several certificates can be pinned one by one.
    """

    def __init__(self, pins: Mapping[str, tuple[Pin, ...]] | None = None) -> None:
        self._pins: dict[str, tuple[Pin, ...]] = dict(pins or {})

    def pins_for(self, identity: Identity) -> tuple[Pin, ...]:
        return self._pins.get(identity.key, ())

    def state(self, identity: Identity, fingerprint: bytes) -> PinState:
        """Whether ``fingerprint`` is pinned, something else is, or nothing is."""
        pins = self.pins_for(identity)
        if not pins:
            return PinState.NONE
        if any(p.sha256 == fingerprint for p in pins):
            return PinState.MATCHES
        return PinState.CHANGED

    def add(self, identity: Identity, pin: Pin) -> None:
        """Add ``pin`` for ``identity`` (replacing a pin of the same fingerprint)."""
        kept = tuple(p for p in self.pins_for(identity) if p.sha256 != pin.sha256)
        self._pins[identity.key] = (*kept, pin)

    def replace(self, identity: Identity, pin: Pin) -> None:
        """Make ``pin`` the only pin for ``identity``: the user re-trusted a changed cert."""
        self._pins[identity.key] = (pin,)

    def remove(self, identity: Identity, fingerprint: bytes | None = None) -> bool:
        """Forget one pin (or all of the identity's); whether anything was removed."""
        pins = self.pins_for(identity)
        kept = () if fingerprint is None else tuple(p for p in pins if p.sha256 != fingerprint)
        if kept:
            self._pins[identity.key] = kept
        else:
            self._pins.pop(identity.key, None)
        return len(kept) != len(pins)

    def __iter__(self) -> Iterator[tuple[str, tuple[Pin, ...]]]:
        return iter(sorted(self._pins.items()))

    def __len__(self) -> int:
        return len(self._pins)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PinStore) and self._pins == other._pins

    __hash__ = None  # type: ignore[assignment]  # mutable

    def to_bytes(self) -> bytes:
        """Versioned, sorted, human-readable JSON (so a diff of two stores is readable)."""
        document = {
            "version": FORMAT_VERSION,
            "pins": {key: [p.to_json() for p in pins] for key, pins in self},
        }
        return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> PinStore:
        """Parse :meth:`to_bytes` output; anything else raises :class:`PinStoreError`.

        Never returns an empty store for bad input: silently losing pins would turn the next
        "changed certificate" warning into an innocent first-use question.
        """
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PinStoreError(f"the trust store is not JSON: {exc}") from exc
        if not isinstance(document, dict) or not isinstance(document.get("version"), int):
            raise PinStoreError("the trust store has no version")
        if document["version"] > FORMAT_VERSION:
            raise PinStoreError(
                f"the trust store was written by a newer version (format {document['version']})"
            )
        pins = document.get("pins")
        if not isinstance(pins, dict):
            raise PinStoreError("the trust store has no pins object")
        parsed: dict[str, tuple[Pin, ...]] = {}
        for key, entries in pins.items():
            if not isinstance(entries, list) or ":" not in key:
                raise PinStoreError(f"bad trust store entry {key!r}")
            parsed[key] = tuple(Pin.from_json(e) for e in entries)
        return cls(parsed)
