"""Fixtures for the ua layer: an in-memory keyring, installed with ``keyring.set_keyring()``.

ARCHITECTURE.md "secrets": tests never touch the real keyring of the machine they run on, and
never use ``keyrings.alt``. Each fixture puts back whatever backend was there before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import keyring
import keyring.core
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail
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


def _install(monkeypatch: pytest.MonkeyPatch, backend: KeyringBackend) -> None:
    # Registers the restore of the previous backend (even "not chosen yet", None) first.
    monkeypatch.setattr(keyring.core, "_keyring_backend", keyring.core._keyring_backend)
    keyring.set_keyring(backend)


@pytest.fixture
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemoryKeyring]:
    backend = InMemoryKeyring()
    _install(monkeypatch, backend)
    yield backend


@pytest.fixture
def fail_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[fail.Keyring]:
    """What ``keyring`` gives on a machine with no keyring at all."""
    backend = fail.Keyring()  # type: ignore[no-untyped-call]
    _install(monkeypatch, backend)
    yield backend


@pytest.fixture
def install_keyring(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[KeyringBackend], None]]:
    """A function that installs any backend for the test's duration."""

    def install(backend: KeyringBackend) -> None:
        _install(monkeypatch, backend)

    yield install
