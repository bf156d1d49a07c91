"""In-memory keyring backends for tests, installed with ``keyring.set_keyring()``.

ARCHITECTURE.md "secrets": tests never touch the real keyring of the machine they run on, and
never use ``keyrings.alt``. The fixtures that use these live in ``tests/conftest.py``.
"""

from __future__ import annotations

import keyring
import keyring.core
import pytest
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class InMemoryKeyring(KeyringBackend):
    """A dict of (service, user) -> password. Priority -1: never chosen by auto-detection."""

    priority = -1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.store.pop((service, username), None) is None:
            raise PasswordDeleteError("no such password")


class PlaintextKeyring(InMemoryKeyring):
    """Stands for keyrings.alt's PlaintextKeyring: a file anyone with the disk can read.

    Only its name gives it away (its module stays ``tests.keyrings``).
    """


def install(monkeypatch: pytest.MonkeyPatch, backend: KeyringBackend) -> None:
    """Install ``backend`` for the test's duration; ``monkeypatch`` puts the previous one back."""
    # Registers the restore of the previous backend (even "not chosen yet", None) first.
    monkeypatch.setattr(keyring.core, "_keyring_backend", keyring.core._keyring_backend)
    keyring.set_keyring(backend)
