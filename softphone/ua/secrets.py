"""Account passwords: from the OS keyring, or from an environment variable for automation.

The keyring entry is service ``softphone``, user name the account's AOR (canonical, as
:class:`~softphone.ua.account.Account` keeps it: ``sips:alice@example.com``). An account with
``password_env`` reads that variable instead and never touches the keyring.

Only a secure store is used: Secret Service (GNOME Keyring, KeePassXC), KWallet, the macOS
Keychain or the Windows Credential Locker. ``keyring`` with no such backend falls back to
``fail.Keyring`` (or, with ``keyrings.alt`` installed, to a plaintext or weakly encrypted
file); both are refused with :class:`NoSecureKeyringError`, which says so in plain words
rather than quietly writing the password to disk (ARCHITECTURE.md "secrets").

The errors::

    SecretsError
    ├── NoSecureKeyringError    no keyring, or only a file-based one: refused
    ├── KeyringAccessError      the keyring is there but failed (locked, D-Bus error...)
    ├── PasswordNotFoundError   the keyring holds no password for this AOR
    └── PasswordEnvError        password_env names a variable that is unset or empty

None of them ever contains the password.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, NoReturn, final

import keyring
import keyring.errors
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null

from softphone.sip.errors import ParseError
from softphone.sip.uri import SipURI, parse_uri

if TYPE_CHECKING:
    from softphone.ua.account import Account

__all__ = [
    "SERVICE",
    "KeyringAccessError",
    "NoSecureKeyringError",
    "PasswordEnvError",
    "PasswordNotFoundError",
    "Secret",
    "SecretsError",
    "check_keyring",
    "delete_password",
    "get_password",
    "get_secret",
    "keyring_user",
    "set_password",
]

SERVICE: Final = "softphone"

#: Backends that keep passwords in a file of their own (plaintext, or encrypted with a key
#: kept beside it or asked for on a terminal): never used for account passwords.
_FILE_BACKEND_MODULES: Final = ("keyrings.alt", "keyrings.cryptfile")


class SecretsError(Exception):
    """Base class of the errors of this module; messages are meant for the person."""


class NoSecureKeyringError(SecretsError):
    """No secure password store; ``backend`` names what ``keyring`` offered instead."""

    MESSAGE: Final = (
        "No secure password store (Secret Service / KWallet / macOS Keychain) is available; "
        "set password_env in the account file for automation, or install and unlock a keyring"
    )

    def __init__(self, backend: str, why: str) -> None:
        self.backend = backend
        self.why = why
        super().__init__(f"{self.MESSAGE}. ({why})")


class KeyringAccessError(SecretsError):
    """The keyring exists but the operation failed (locked and not unlocked, D-Bus down...)."""


class PasswordNotFoundError(SecretsError):
    """Nothing stored in the keyring for the AOR."""

    def __init__(self, aor: str) -> None:
        self.aor = aor
        super().__init__(
            f'No password for {aor} in the keyring (service "{SERVICE}", user name "{aor}"); '
            "store one, or set password_env in the account file"
        )


class PasswordEnvError(SecretsError):
    """``password_env`` names a variable that is not set, or is empty."""

    def __init__(self, variable: str, *, empty: bool) -> None:
        self.variable = variable
        state = "is empty" if empty else "is not set"
        super().__init__(
            f"The account file takes the password from the environment variable {variable}, "
            f"but {variable} {state}"
        )


@final
class Secret:
    """A password that does not show itself: ``repr``, ``str`` and ``format`` give stars,
    pickling is refused, ``==`` compares in constant time. :meth:`reveal` gives the text."""

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret holds a str")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"

    def __format__(self, spec: str) -> str:
        return "********"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    __hash__ = None  # type: ignore[assignment]  # a hash of the password is a leak

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a Secret cannot be changed")

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret is not pickled: it would end up in a file")


def keyring_user(aor: str) -> str:
    """The keyring user name for ``aor``: its canonical ``scheme:user@host`` (host in lower
    case), so that ``sips:alice@Example.com;transport=tls`` finds the same entry."""
    try:
        uri = parse_uri(aor)
    except ParseError:
        raise ValueError(f"not a sip: or sips: address of record: {aor!r}") from None
    if not isinstance(uri, SipURI) or not uri.user:
        raise ValueError(f"not a sip: or sips: address of record: {aor!r}")
    if uri.password is not None:
        raise ValueError("an address of record must not contain a password")
    return uri.copy(host=uri.host.lower()).aor


def _insecure(backend: KeyringBackend) -> str | None:
    """Why ``backend`` may not hold account passwords, or ``None`` if it may."""
    kind = type(backend)
    name = f"{kind.__module__}.{kind.__qualname__}"
    if isinstance(backend, fail.Keyring):
        return "keyring found no backend"
    if isinstance(backend, null.Keyring):
        return f"the keyring backend is {name}, which stores nothing"
    if kind.__module__.startswith(_FILE_BACKEND_MODULES) or "plaintext" in name.lower():
        return f"the keyring backend {name} keeps passwords in a file: refused"
    if isinstance(backend, chainer.ChainerBackend):
        members = list(backend.backends)
        if not members:
            return "keyring found no backend"
        for member in members:
            why = _insecure(member)
            if why is not None:
                return why
    return None


def check_keyring() -> KeyringBackend:
    """The current keyring backend, or :class:`NoSecureKeyringError` if it is not secure.

    A chain of backends is refused when any member is insecure: the chain would write to the
    first member that accepts, which may be the file.
    """
    backend = keyring.get_keyring()
    why = _insecure(backend)
    if why is not None:
        kind = type(backend)
        raise NoSecureKeyringError(f"{kind.__module__}.{kind.__qualname__}", why)
    return backend


def _keyring_failed(exc: keyring.errors.KeyringError, action: str) -> SecretsError:
    if isinstance(exc, keyring.errors.NoKeyringError):
        return NoSecureKeyringError(type(exc).__name__, "keyring found no backend")
    if isinstance(exc, keyring.errors.KeyringLocked):
        return KeyringAccessError(f"Could not {action}: the keyring is locked; unlock it first")
    return KeyringAccessError(f"Could not {action}: {type(exc).__name__}: {exc}")


def get_secret(account: Account, *, environ: Mapping[str, str] | None = None) -> Secret:
    """The account's password: from ``account.password_env`` when set (``environ`` defaults
    to ``os.environ``), else from the keyring. Raises a :class:`SecretsError`."""
    if account.password_env is not None:
        env = os.environ if environ is None else environ
        value = env.get(account.password_env)
        if not value:
            raise PasswordEnvError(account.password_env, empty=value is not None)
        return Secret(value)
    backend = check_keyring()
    user = keyring_user(account.aor)
    try:
        value = backend.get_password(SERVICE, user)
    except keyring.errors.KeyringError as exc:
        raise _keyring_failed(exc, f"read the password for {user}") from exc
    if not value:
        raise PasswordNotFoundError(user)
    return Secret(value)


def get_password(account: Account, *, environ: Mapping[str, str] | None = None) -> str:
    """:func:`get_secret`, revealed: for the Digest computation, and nothing that keeps it."""
    return get_secret(account, environ=environ).reveal()


def set_password(aor: str, password: str | Secret) -> None:
    """Store ``password`` for ``aor`` in the keyring (replacing any old one)."""
    value = password.reveal() if isinstance(password, Secret) else password
    if not value:
        raise ValueError("an empty password cannot be stored")
    backend = check_keyring()
    user = keyring_user(aor)
    try:
        backend.set_password(SERVICE, user, value)
    except keyring.errors.KeyringError as exc:
        raise _keyring_failed(exc, f"store the password for {user}") from exc


def delete_password(aor: str) -> bool:
    """Remove the password for ``aor`` from the keyring; ``False`` if there was none."""
    backend = check_keyring()
    user = keyring_user(aor)
    try:
        if backend.get_password(SERVICE, user) is None:
            return False
        backend.delete_password(SERVICE, user)
    except keyring.errors.KeyringError as exc:
        raise _keyring_failed(exc, f"delete the password for {user}") from exc
    return True
