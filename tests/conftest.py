"""Shared test configuration.

Interop tests need real peers (Kamailio, baresip, linphonec, openssl). Where one is missing a
developer's run skips the test with the reason; under CI (``CI=true``) the same test fails, so a
missing install step can never turn a red suite green.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from tests.keyrings import InMemoryKeyring, install

if TYPE_CHECKING:
    from tests.media.pulse import PrivatePulse


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_peer(name: str, *, available: bool | None = None, hint: str = "") -> None:
    """Skip (developer) or fail (CI) the calling test when the real peer ``name`` is missing.

    ``available`` defaults to "``name`` is an executable on PATH".
    """
    if available is None:
        available = shutil.which(name) is not None
    if available:
        return
    message = f"real peer {name!r} is not installed{': ' + hint if hint else ''}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a missing peer is a failure, not a skip)")
    pytest.skip(message)


# --- keyring: an in-memory backend (tests/keyrings.py), never the machine's own ---------------


@pytest.fixture
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemoryKeyring]:
    backend = InMemoryKeyring()
    install(monkeypatch, backend)
    yield backend


@pytest.fixture
def fail_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[fail.Keyring]:
    """What ``keyring`` gives on a machine with no keyring at all."""
    backend = fail.Keyring()  # type: ignore[no-untyped-call]
    install(monkeypatch, backend)
    yield backend


@pytest.fixture
def install_keyring(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[KeyringBackend], None]]:
    """A function that installs any backend for the test's duration."""

    def install_backend(backend: KeyringBackend) -> None:
        install(monkeypatch, backend)

    yield install_backend


# --- sound: one private PulseAudio for the run (tests/media/pulse.py) --------------------------


@pytest.fixture(scope="session")
def pulse_daemon() -> Iterator[PrivatePulse]:
    """One private pulseaudio daemon with one null sink (48 kHz mono, tests/media/pulse.py)
    for the whole run: it is ready only once its sink renders in short blocks, which takes
    the sink's first 2 s block; stopped by its PID at the end."""
    from tests.media.pulse import PulseUnavailable, start_private_pulse  # PortAudio: lazily

    try:
        daemon = start_private_pulse()
    except PulseUnavailable as missing:
        require_peer(missing.what, available=False, hint=missing.hint)
        raise  # pragma: no cover - require_peer skips or fails
    try:
        yield daemon
    finally:
        daemon.stop()
