"""Logging for the whole program: a rotating file in the platform's log folder, free of secrets.

:func:`setup_logging` sends the ``softphone`` (and ``ui``) loggers to
``<user log dir>/softphone.log`` (platformdirs: ``~/.local/state/softphone/log`` on Linux),
rotated at 1 MB with 5 old files kept, and optionally to stderr. Every line goes through
:func:`redact` on its way out, whatever code wrote it, so a secret that reaches a log call
still does not reach the disk:

- the credentials of ``Authorization`` / ``Proxy-Authorization`` (RFC 3261 §20.7, §20.28):
  a Digest value keeps realm, nonce and user name but loses ``response`` and ``cnonce``
  (:func:`softphone.sip.digest.redact_authorization`; the response allows an offline
  dictionary attack on the password, RFC 7616 §5.2); any other scheme loses its whole value;
- SDES keys, ``inline:`` key-params of ``a=crypto`` (RFC 4568 §6.1: whoever reads them decrypts
  the audio), and ``a=key-mgmt`` data (RFC 4567 §3);
- ``password = ...`` / ``"password": ...`` / ``SOFTPHONE_PASSWORD=...`` values (also
  ``passwd``, ``passphrase``, ``secret``);
- PEM private key blocks (RFC 7468 §10, §11), complete or cut off.

:func:`log_trace` turns :mod:`softphone.ua.trace` entries (whose ``raw`` carries the secrets)
into redacted DEBUG records of the ``softphone.trace`` logger.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

import platformdirs

from softphone.sip.digest import REDACTED, redact_authorization
from softphone.storage import APP_NAME

if TYPE_CHECKING:
    from softphone.ua.trace import TraceEntry

__all__ = [
    "BACKUP_COUNT",
    "LOG_FILE_NAME",
    "MAX_BYTES",
    "RedactingFilter",
    "RedactingFormatter",
    "default_log_dir",
    "log_trace",
    "redact",
    "setup_logging",
]

MAX_BYTES: Final = 1_000_000
BACKUP_COUNT: Final = 5
LOG_FILE_NAME: Final = "softphone.log"
#: The loggers the program writes to: the engine and the GUI.
_ROOTS: Final = ("softphone", "ui")
_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_AUTH_HEADER_RE: Final = re.compile(
    r"(?i)(?<![\w-])((?:proxy-)?authorization[ \t]*:[ \t]*)([^\r\n]*)"
)
_INLINE_KEY_RE: Final = re.compile(r"(?i)(inline:)[^|\s;]+")
_KEY_MGMT_RE: Final = re.compile(r"(?im)(a=key-mgmt:[ \t]*\S+[ \t]+)[^\r\n]+")
_PASSWORD_RE: Final = re.compile(
    r"""(?ix)
    (\b\w*(?:password|passwd|passphrase|secret)\b["']?[ \t]*[:=][ \t]*)   # the key and = or :
    ("[^"\r\n]*"|'[^'\r\n]*'|[^\s,;}&]+)                                # its value
    """
)
_PEM_KEY_RE: Final = re.compile(
    r"(-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----)"
    r"(?:.*?(-----END \2-----)|.*\Z)",
    re.DOTALL,
)


def _authorization(match: re.Match[str]) -> str:
    prefix, value = match.group(1), match.group(2)
    if value.lstrip().lower().startswith("digest"):
        return prefix + redact_authorization(value)
    scheme = value.split(None, 1)[0] if value.strip() else ""
    return f"{prefix}{scheme} {REDACTED}".rstrip() if scheme else prefix + REDACTED


def _pem(match: re.Match[str]) -> str:
    end = match.group(3) or ""
    return f"{match.group(1)} {REDACTED} {end}".rstrip()


def redact(text: str) -> str:
    """``text`` with every secret the module docstring lists replaced by ``…redacted…``."""
    text = _PEM_KEY_RE.sub(_pem, text)
    text = _AUTH_HEADER_RE.sub(_authorization, text)
    text = _INLINE_KEY_RE.sub(rf"\g<1>{REDACTED}", text)
    text = _KEY_MGMT_RE.sub(rf"\g<1>{REDACTED}", text)
    return _PASSWORD_RE.sub(rf"\g<1>{REDACTED}", text)


class RedactingFilter(logging.Filter):
    """Redacts a record's message in place (for handlers that use their own formatter).

    Exception text is formatted later, by the formatter: use :class:`RedactingFormatter` to
    cover tracebacks too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class RedactingFormatter(logging.Formatter):
    """A formatter whose whole output (message, traceback, stack) goes through :func:`redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def default_log_dir() -> Path:
    """``platformdirs.user_log_dir("softphone")``: ``~/.local/state/softphone/log`` on Linux."""
    return Path(platformdirs.user_log_dir(APP_NAME))


def setup_logging(
    *,
    level: int = logging.INFO,
    directory: Path | None = None,
    stderr_level: int | None = None,
    max_bytes: int = MAX_BYTES,
    backup_count: int = BACKUP_COUNT,
) -> Path:
    """Log the ``softphone`` and ``ui`` loggers at ``level`` to a rotating file in
    ``directory`` (default :func:`default_log_dir`), and to stderr at ``stderr_level`` if given.

    Calling it again replaces the handlers it installed before. Returns the log file's path;
    ``OSError`` if the folder cannot be created.
    """
    folder = default_log_dir() if directory is None else Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOG_FILE_NAME
    file_handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
    )
    file_handler.setLevel(level)
    handlers: list[logging.Handler] = [file_handler]
    if stderr_level is not None:
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(stderr_level)
        handlers.append(console)
    for handler in handlers:
        handler.setFormatter(RedactingFormatter(_FORMAT))
        handler.addFilter(RedactingFilter())
        handler._softphone_installed = True  # type: ignore[attr-defined]  # found on re-setup
    for name in _ROOTS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, "_softphone_installed", False)]:
            logger.removeHandler(old)
            old.close()
        logger.setLevel(min(level, stderr_level) if stderr_level is not None else level)
        for handler in handlers:
            logger.addHandler(handler)
    return path


_trace_log = logging.getLogger("softphone.trace")


def log_trace(entry: TraceEntry) -> None:
    """A ``UserAgent(on_trace=...)`` callback: each SIP message, redacted, at DEBUG."""
    if not _trace_log.isEnabledFor(logging.DEBUG):
        return
    text = entry.raw.decode("utf-8", errors="replace")
    _trace_log.debug("%s %s (%s)\n%s", entry.direction, entry.peer, entry.protection, redact(text))
