"""The user's identity certificate for the GUI: show, create, import, export.

The same steps as ``softphone cert new/import/export/show`` (:mod:`softphone.cert_cli`), as
small functions over an :class:`~softphone.identity_store.IdentityStore`, so ``ui/`` reaches
them through the ``softphone.ua`` façade (ARCHITECTURE.md). The identity is a self-signed
RSA certificate whose subjectAltName is the AOR (RFC 3261 §23.2: the certificate S/MIME and
sipsec (draft-gurbani-sip-sipsec-01 §5) peers see), or one a CA issued, imported from PKCS#12.

- Key generation (RSA-3072: about a second here) and PKCS#12 decryption run in a worker
  thread (:func:`asyncio.to_thread`): the event loop, and so the GUI, never stalls on them.
- The PKCS#12 password is used once and never stored; the new key's passphrase goes to the
  OS keyring (:class:`IdentityStore`), never to a file or a log.
- Every failure is one of :data:`IDENTITY_ERRORS`, whose message is meant for the person.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from softphone.identity_store import (
    IdentityExistsError,
    IdentityStore,
    IdentityStoreError,
    NoIdentityError,
    default_identity_dir,
)
from softphone.security.certificates import (
    SecurityError,
    describe_key,
    fingerprint_groups,
    is_self_signed,
    summary,
)
from softphone.security.identity import (
    DEFAULT_DAYS,
    KeyChoice,
    identity_aor,
    import_pkcs12,
    new_identity,
)
from softphone.storage import atomic_write
from softphone.ua.secrets import SecretsError, check_keyring

__all__ = [
    "IDENTITY_ERRORS",
    "IdentityExistsError",
    "IdentityStore",
    "IdentityStoreError",
    "IdentitySummary",
    "create_identity",
    "current_identity",
    "default_identity_dir",
    "export_identity_certificate",
    "import_identity",
    "summarise_identity",
]

#: What the functions here raise; ``str(exc)`` says what went wrong in words.
IDENTITY_ERRORS: tuple[type[Exception], ...] = (
    IdentityStoreError,
    SecretsError,
    SecurityError,
    OSError,
    ValueError,
)


@dataclass(frozen=True)
class IdentitySummary:
    """What the settings page shows about an identity certificate (public parts only)."""

    aor: str | None  # None: the certificate names no sip: URI
    fingerprint: str  # SHA-256 in groups, as people read it to each other
    key: str  # "RSA 3072"
    weak_key: bool
    issuer: str  # "self-signed" or the issuer's name
    valid_from: dt.datetime
    valid_until: dt.datetime
    expired: bool
    warnings: tuple[str, ...] = ()  # from an import: worth saying, not refusing


def summarise_identity(
    cert: x509.Certificate, *, now: dt.datetime, warnings: tuple[str, ...] = ()
) -> IdentitySummary:
    """The :class:`IdentitySummary` of ``cert`` at ``now`` (as ``cert show`` prints it)."""
    try:
        aor: str | None = identity_aor(cert)
    except SecurityError:
        aor = None
    key = describe_key(cert)
    end = cert.not_valid_after_utc
    return IdentitySummary(
        aor=aor,
        fingerprint=fingerprint_groups(cert),
        key=key.description,
        weak_key=key.weak,
        issuer="self-signed" if is_self_signed(cert) else summary(cert.issuer),
        valid_from=cert.not_valid_before_utc,
        valid_until=end,
        expired=now > end,
        warnings=warnings,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def current_identity(store: IdentityStore) -> IdentitySummary | None:
    """The stored identity's summary; ``None`` when there is none. Reads only the public
    certificate (no keyring). Raises one of :data:`IDENTITY_ERRORS` for an unreadable one."""
    try:
        cert = store.load_certificate()
    except NoIdentityError:
        return None
    return summarise_identity(cert, now=_now())


def _create(
    store: IdentityStore, aor: str, replace: bool, days: int, key: KeyChoice
) -> IdentitySummary:
    if store.exists() and not replace:
        raise IdentityExistsError(store.directory, _stored_aor(store))
    check_keyring()  # before the slow part: no point making a key that cannot be stored
    material = new_identity(aor, now=_now(), days=days, key=key)
    store.save(material, replace=replace)
    return summarise_identity(material.cert, now=_now())


def _stored_aor(store: IdentityStore) -> str | None:
    try:
        return identity_aor(store.load_certificate())
    except (IdentityStoreError, SecurityError, OSError):
        return None


async def create_identity(
    store: IdentityStore,
    aor: str,
    *,
    replace: bool = False,
    days: int = DEFAULT_DAYS,
    key: KeyChoice = "rsa3072",
) -> IdentitySummary:
    """Generate a self-signed identity for ``aor`` (RFC 3261 §23.2) and store it, in a worker
    thread. Refuses to replace an existing identity unless ``replace`` (a new key changes
    every safety number). Raises one of :data:`IDENTITY_ERRORS`."""
    return await asyncio.to_thread(_create, store, aor, replace, days, key)


def _import(
    store: IdentityStore, data: bytes, password: bytes | None, replace: bool
) -> IdentitySummary:
    if store.exists() and not replace:
        raise IdentityExistsError(store.directory, _stored_aor(store))
    check_keyring()
    imported = import_pkcs12(data, password, now=_now())
    store.save(imported, replace=replace)
    return summarise_identity(imported.cert, now=_now(), warnings=imported.warnings)


async def import_identity(
    store: IdentityStore, path: Path, password: str, *, replace: bool = False
) -> IdentitySummary:
    """Import a CA-issued PKCS#12 file (RFC 7292) as the identity, in a worker thread. The
    password opens the file once and is not kept. Raises one of :data:`IDENTITY_ERRORS`
    (a wrong password: "could not read the PKCS#12 file: wrong password, ...")."""
    data = await asyncio.to_thread(path.read_bytes)
    secret = password.encode("utf-8") or None
    return await asyncio.to_thread(_import, store, data, secret, replace)


def export_identity_certificate(
    store: IdentityStore, path: Path, *, with_chain: bool = False
) -> None:
    """Write the public certificate (PEM, never the key) to ``path`` (0644, atomic)."""
    atomic_write(path, store.export_certificate(with_chain=with_chain), mode=0o644)
