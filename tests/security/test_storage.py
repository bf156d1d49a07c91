"""softphone.storage: atomic writes and the pin store file."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from softphone import storage
from softphone.security import Identity, Pin, PinReason, PinStore, PinStoreError
from tests.security.pki import NOW


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.json"
    storage.atomic_write(target, b"one")
    assert target.read_bytes() == b"one"
    storage.atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.json"]  # no temp left


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_atomic_write_mode(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    storage.atomic_write(target, b"x")
    assert _mode(target) == 0o600
    storage.atomic_write(target, b"y", mode=0o644)
    assert _mode(target) == 0o644


def test_crash_before_replace_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "pins.json"
    storage.atomic_write(target, b"old")

    def crash(src: object, dst: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        storage.atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["pins.json"]  # temp file cleaned up


def test_pin_store_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "trust" / "pins.json"
    assert len(storage.load_pin_store(path)) == 0  # no file yet: empty store
    store = PinStore()
    store.add(Identity.domain("example.test"), Pin(b"\x01" * 32, NOW, PinReason.ALWAYS_TRUST))
    storage.save_pin_store(path, store)
    assert storage.load_pin_store(path) == store


def test_corrupt_pin_store_is_an_error_not_an_empty_store(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    path.write_bytes(b"{not json")
    with pytest.raises(PinStoreError):
        storage.load_pin_store(path)


def test_default_path_is_under_the_user_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    path = storage.default_pin_store_path()
    assert path.parts[-2:] == ("trust", "pins.json")
    if sys.platform.startswith("linux"):  # XDG applies on Linux only
        assert path.is_relative_to(tmp_path)
