"""The SIP trace: every message a user agent sends or receives, for ladders and the GUI.

``UserAgent(..., on_trace=callback)`` calls ``callback(entry)`` for each SIP message on any
flow (the registration flow and every sipsec tunnel) and once for each end-to-end TLS handshake
of a tunnel (draft-gurbani-sip-sipsec-01 §6.7, Figure 3 steps 10-11), so the demo can draw the
ladder of a call and say on each arrow who could read it (UX.md):

========================  ===================================================================
``protection``            meaning
========================  ===================================================================
``none``                  plain TCP/UDP: anyone on the path reads it
``tls-hop``               TLS to the next server: that server (and every one after) reads it
``sipsec-tunnel``         inside the nested end-to-end TLS: only the other phone reads it
========================  ===================================================================

``first_line`` is the start line only (never a header: no Authorization can leak into it);
``raw`` is the whole message as sent or parsed, secrets included: consumers redact before
they show or store it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from softphone.sip.message import Message, Request

__all__ = ["Direction", "Protection", "TraceEntry", "TraceHandler", "first_line_of"]

Direction = Literal["sent", "received"]
Protection = Literal["none", "tls-hop", "sipsec-tunnel"]
_DIRECTIONS = ("sent", "received")
_PROTECTIONS = ("none", "tls-hop", "sipsec-tunnel")


@dataclass(frozen=True)
class TraceEntry:
    """One arrow of the ladder: when (``at``, the event loop's monotonic clock), which way,
    the peer's ``host:port``, the start line, the bytes and who could read them."""

    at: float
    direction: Direction
    peer: str
    first_line: str
    raw: bytes
    protection: Protection

    def __post_init__(self) -> None:
        if self.direction not in _DIRECTIONS:
            raise ValueError(f"direction must be sent or received, not {self.direction!r}")
        if self.protection not in _PROTECTIONS:
            raise ValueError(f"protection must be one of {_PROTECTIONS}, not {self.protection!r}")
        if "\r" in self.first_line or "\n" in self.first_line:
            raise ValueError("first_line is one line")


TraceHandler = Callable[[TraceEntry], None]


def first_line_of(message: Message) -> str:
    """``INVITE sips:bob@biloxi.test SIP/2.0`` or ``SIP/2.0 200 OK`` (RFC 3261 §7.1, §7.2)."""
    if isinstance(message, Request):
        return f"{message.method} {message.uri} {message.version}"
    return f"{message.version} {message.status_code} {message.reason}"
