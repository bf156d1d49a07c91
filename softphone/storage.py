"""Files under the user's data directory, written so that a crash never leaves half a file.

:func:`atomic_write` follows the usual recipe: write a temporary file in the same directory,
``fsync`` it, ``os.replace`` it over the target (atomic on POSIX and on Windows), then
``fsync`` the directory so the rename itself survives a power cut. A crash at any point leaves
either the old file or the new one, never a mixture.

The pin store (:class:`softphone.security.PinStore`) lives in
``<user data dir>/trust/pins.json``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import platformdirs

from softphone.security.pins import PinStore

__all__ = ["APP_NAME", "atomic_write", "default_pin_store_path", "load_pin_store", "save_pin_store"]

APP_NAME = "softphone"


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically; the file gets permissions ``mode``.

    The temporary file is created with ``mode`` from the start (it may hold secrets, so it
    must never be world-readable, not even for a moment) and removed if anything fails.
    """
    target = Path(path)
    directory = target.parent
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as tmp:
            os.chmod(tmp_name, mode)
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; directories cannot be opened for this on Windows."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def default_pin_store_path() -> Path:
    """``<user data dir>/trust/pins.json`` (platformdirs: ~/.local/share/softphone on Linux)."""
    return Path(platformdirs.user_data_dir(APP_NAME)) / "trust" / "pins.json"


def load_pin_store(path: str | os.PathLike[str]) -> PinStore:
    """The pin store at ``path``; an empty one when the file does not exist yet.

    A file that exists but cannot be read raises :class:`~softphone.security.PinStoreError`
    rather than starting afresh: losing pins silently would hide the next changed certificate.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return PinStore()
    return PinStore.from_bytes(data)


def save_pin_store(path: str | os.PathLike[str], store: PinStore) -> None:
    """Write ``store`` to ``path`` atomically, readable by the user only."""
    atomic_write(path, store.to_bytes(), mode=0o600)
