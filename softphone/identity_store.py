"""The user's identity on disk and its passphrase in the OS keyring.

Files, in ``<user data dir>/identity/`` (``~/.local/share/softphone/identity`` on Linux) or a
directory the caller names:

- ``cert.pem``  the certificate (0644: it is public, peers get it anyway);
- ``chain.pem`` the CA certificates above it, when imported from a CA (0644);
- ``key.pem``   the private key, PKCS#8 ``ENCRYPTED PRIVATE KEY`` (0600).

The key's passphrase is 32 random bytes (base64) kept in the keyring, service
``softphone-identity``, user name the AOR (``sip:alice@example.test``). A missing or
file-based keyring is refused with :class:`~softphone.ua.secrets.NoSecureKeyringError` before
anything is written: there is never a plaintext key, nor a passphrase, on disk.

Every file is written with :func:`softphone.storage.atomic_write`. The key is written before
the certificate, and an existing passphrase for the same AOR is reused, so an interrupted
``cert new`` leaves either the old identity or a key that no longer matches the certificate,
which :meth:`IdentityStore.load` reports as such, never a key nobody can decrypt silently.

Errors::

    IdentityStoreError              messages are for the person
    ├── NoIdentityError             nothing stored yet
    ├── IdentityExistsError         refusing to replace an identity without being told to
    └── PassphraseNotFoundError     key.pem is there but its passphrase is not in the keyring
    (plus softphone.ua.secrets.NoSecureKeyringError / KeyringAccessError from the keyring and
    softphone.security.identity.IdentityError for files that do not decrypt or match)
"""

from __future__ import annotations

import base64
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import keyring.errors
import platformdirs
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from softphone.security.identity import (
    IdentityError,
    IdentityMaterial,
    encrypt_private_key,
    identity_aor,
    key_matches,
    load_private_key,
)
from softphone.storage import APP_NAME, atomic_write

# softphone.ua.secrets is imported where it is used: importing it at the top would run
# softphone/ua/__init__.py, whose identity helpers import this module (a cycle that broke
# `import softphone.identity_store` and so `softphone cert`).

__all__ = [
    "CERT_FILE",
    "CHAIN_FILE",
    "IDENTITY_SERVICE",
    "KEY_FILE",
    "IdentityExistsError",
    "IdentityStore",
    "IdentityStoreError",
    "NoIdentityError",
    "PassphraseNotFoundError",
    "default_identity_dir",
]

#: The keyring service of identity passphrases (account passwords use ``softphone``).
IDENTITY_SERVICE: Final = "softphone-identity"
CERT_FILE: Final = "cert.pem"
KEY_FILE: Final = "key.pem"
CHAIN_FILE: Final = "chain.pem"

_PASSPHRASE_BYTES: Final = 32
_PUBLIC_MODE: Final = 0o644
_PRIVATE_MODE: Final = 0o600


class IdentityStoreError(Exception):
    """Base class of the errors of this module; messages are meant for the person."""


class NoIdentityError(IdentityStoreError):
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        super().__init__(
            f"No identity in {directory}: create one with "
            "'softphone cert new --aor sip:you@domain' or import one with "
            "'softphone cert import FILE.p12'"
        )


class IdentityExistsError(IdentityStoreError):
    def __init__(self, directory: Path, aor: str | None) -> None:
        self.directory = directory
        who = f" for {aor}" if aor else ""
        super().__init__(
            f"An identity{who} already exists in {directory}. Replacing it changes your safety "
            "number with every contact, who will all have to verify you again; use --force if "
            "that is what you want"
        )


class PassphraseNotFoundError(IdentityStoreError):
    def __init__(self, user: str) -> None:
        self.user = user
        super().__init__(
            f"The passphrase of your private key is not in the keyring (service "
            f'"{IDENTITY_SERVICE}", user name "{user}"): was the keyring reset? The key cannot be '
            "used without it; create a new identity with 'softphone cert new --force'"
        )


def default_identity_dir() -> Path:
    """``<user data dir>/identity`` (platformdirs: ~/.local/share/softphone on Linux)."""
    return Path(platformdirs.user_data_dir(APP_NAME)) / "identity"


def _keyring_failed(exc: keyring.errors.KeyringError, action: str) -> Exception:
    from softphone.ua.secrets import KeyringAccessError, NoSecureKeyringError

    if isinstance(exc, keyring.errors.NoKeyringError):
        return NoSecureKeyringError(type(exc).__name__, "keyring found no backend")
    if isinstance(exc, keyring.errors.KeyringLocked):
        return KeyringAccessError(f"Could not {action}: the keyring is locked; unlock it first")
    return KeyringAccessError(f"Could not {action}: {type(exc).__name__}: {exc}")


def _read_certificates(path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except ValueError as exc:
        raise IdentityStoreError(f"{path} holds no readable PEM certificate") from exc


@dataclass(frozen=True)
class IdentityStore:
    """The identity files in ``directory`` and the passphrase in the keyring."""

    directory: Path

    @classmethod
    def default(cls) -> IdentityStore:
        return cls(default_identity_dir())

    @property
    def cert_path(self) -> Path:
        return self.directory / CERT_FILE

    @property
    def key_path(self) -> Path:
        return self.directory / KEY_FILE

    @property
    def chain_path(self) -> Path:
        return self.directory / CHAIN_FILE

    def exists(self) -> bool:
        return self.cert_path.exists() or self.key_path.exists()

    # --- reading (the certificate needs no keyring) -----------------------------------

    def load_certificate(self) -> x509.Certificate:
        if not self.cert_path.exists():
            raise NoIdentityError(self.directory)
        return _read_certificates(self.cert_path)[0]

    def load_chain(self) -> tuple[x509.Certificate, ...]:
        if not self.chain_path.exists():
            return ()
        return tuple(_read_certificates(self.chain_path))

    def load(self) -> IdentityMaterial:
        """Certificate, decrypted key and chain. Needs the keyring (a secure one)."""
        cert = self.load_certificate()
        if not self.key_path.exists():
            raise IdentityStoreError(f"{self.key_path} is missing: the identity has no key")
        user = identity_aor(cert)
        key = load_private_key(self.key_path.read_bytes(), self._get_passphrase(user))
        if not key_matches(cert, key):
            raise IdentityError(
                f"{self.key_path} does not belong to {self.cert_path} (an interrupted "
                "'cert new' or 'cert import'?): create or import the identity again"
            )
        return IdentityMaterial(cert, key, self.load_chain())

    def export_certificate(self, *, with_chain: bool = False) -> bytes:
        """The public certificate as PEM (and the CA chain after it with ``with_chain``)."""
        certs = [self.load_certificate(), *(self.load_chain() if with_chain else ())]
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)

    # --- writing ----------------------------------------------------------------------

    def save(self, material: IdentityMaterial, *, replace: bool = False) -> None:
        """Store ``material``: passphrase in the keyring first, then key, chain, certificate.

        Refuses to replace an existing identity unless ``replace`` (changing the key changes
        every safety number). The keyring is checked before any file is touched.
        """
        old_user = self._stored_aor()
        if self.exists() and not replace:
            raise IdentityExistsError(self.directory, old_user)
        if not key_matches(material.cert, material.key):
            raise IdentityError("the private key does not belong to the certificate")
        user = identity_aor(material.cert)
        from softphone.ua.secrets import check_keyring

        backend = check_keyring()
        try:
            secret = backend.get_password(IDENTITY_SERVICE, user)
            if not secret:
                secret = base64.b64encode(os.urandom(_PASSPHRASE_BYTES)).decode("ascii")
                backend.set_password(IDENTITY_SERVICE, user, secret)
        except keyring.errors.KeyringError as exc:
            raise _keyring_failed(exc, f"store the key passphrase for {user}") from exc
        atomic_write(
            self.key_path,
            encrypt_private_key(material.key, secret.encode("ascii")),
            mode=_PRIVATE_MODE,
        )
        if material.chain:
            pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in material.chain)
            atomic_write(self.chain_path, pem, mode=_PUBLIC_MODE)
        else:
            with contextlib.suppress(FileNotFoundError):
                self.chain_path.unlink()
        atomic_write(
            self.cert_path,
            material.cert.public_bytes(serialization.Encoding.PEM),
            mode=_PUBLIC_MODE,
        )
        if old_user is not None and old_user != user:
            # The old identity's passphrase opens nothing any more.
            with contextlib.suppress(keyring.errors.KeyringError):
                backend.delete_password(IDENTITY_SERVICE, old_user)

    # --- helpers ----------------------------------------------------------------------

    def _stored_aor(self) -> str | None:
        try:
            return identity_aor(self.load_certificate())
        except (IdentityStoreError, IdentityError, OSError):
            return None

    def _get_passphrase(self, user: str) -> bytes:
        from softphone.ua.secrets import check_keyring

        backend = check_keyring()
        try:
            secret = backend.get_password(IDENTITY_SERVICE, user)
        except keyring.errors.KeyringError as exc:
            raise _keyring_failed(exc, f"read the key passphrase for {user}") from exc
        if not secret:
            raise PassphraseNotFoundError(user)
        return str(secret).encode("ascii")
