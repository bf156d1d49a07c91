"""Errors of the sans-I/O SIP core.

The tree (after httpx/h11)::

    SipError
    ├── LocalProtocolError      we were asked to do something the protocol forbids
    └── RemoteProtocolError     the peer sent something the protocol forbids
        └── ParseError          the peer's bytes are not a SIP message we can accept

Every ``RemoteProtocolError`` carries ``status_code``: the response a server should send back
(400 Bad Request, 413 Message Too Large, 416 Unsupported URI Scheme, 505 Version Not
Supported, ...) and ``reason``, a short human phrase for the Reason-Phrase and the log.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ParseError", "RemoteProtocolError", "SipError"]


class SipError(Exception):
    """Base class of every error the SIP core raises on purpose."""


class LocalProtocolError(SipError):
    """The caller of the core tried something that would break the protocol."""


class RemoteProtocolError(SipError):
    """The peer broke the protocol; ``status_code`` is the response a server should answer."""

    def __init__(self, reason: str, status_code: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, status_code={self.status_code})"


class ParseError(RemoteProtocolError):
    """Bytes or text that do not follow the RFC 3261 §25 grammar (or exceed a limit)."""
