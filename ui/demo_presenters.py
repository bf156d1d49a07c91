"""What the GUI demo's "what the proxies see" panes say, decided without Qt.

Each pane shows one proxy's :class:`~softphone.server.observe.ProxyView` for the call being
shown (observations from a mark taken when the call was placed,
:func:`softphone.demo_ladder.slice_view`):

- a ``sips:`` call (RFC 3261 §26.2.2, TLS hop by hop): every message the proxy parsed, the
  INVITE in full with its SDP, the ``a=crypto`` key partly masked (RFC 4568 §9.1), under a red
  "This proxy can read the keys";
- a ``sipsec:`` call (draft-gurbani-sip-sipsec-01 §6.6): only the CONNECT and its 200, and
  a live count of the bytes it relayed without being able to read them.

The verdict always comes in words with its colour (UX.md: never colour alone). Digest
credentials in a parsed request (``Authorization``/``Proxy-Authorization``) are hidden: the
demo shows what a proxy reads, not our secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from softphone.ua.demo import (
    ProxyView,
    Request,
    Response,
    SipSeen,
    TunnelOpened,
    mask_crypto_line,
    proxy_report,
    short_first_line,
    slice_view,
)
from ui.call_presenters import Level

__all__ = [
    "CANNOT_READ",
    "CAN_READ_KEYS",
    "ProxyMark",
    "ProxyPaneModel",
    "mark",
    "masked_message",
    "opaque_counter",
    "proxy_pane_model",
]

CAN_READ_KEYS: Final = "This proxy can read the keys"
CAN_READ_SETUP: Final = "This proxy can read the call setup"
CANNOT_READ: Final = "This proxy cannot read the call"
READ_TUNNEL: Final = "This proxy read the call setup: the call is NOT end to end"
WAITING: Final = "No call yet"
_SECRET_HEADERS: Final = ("authorization:", "proxy-authorization:")


@dataclass(frozen=True)
class ProxyMark:
    """Where one call's share of a proxy's observations starts."""

    start: int
    tunnels_before: frozenset[int]


def mark(view: ProxyView) -> ProxyMark:
    """The mark to take just before a call is placed."""
    return ProxyMark(len(view.observations), frozenset(view.relayed))


@dataclass(frozen=True)
class ProxyPaneModel:
    """One pane: ``headline`` in words with ``level``'s colour, ``lines`` what it parsed."""

    proxy: str
    kind: str  # "sips" | "sipsec" | "" (no call yet)
    headline: str
    level: Level
    methods: tuple[str, ...]
    lines: tuple[str, ...]
    read_keys: bool
    read_invite: bool
    opaque_bytes: int
    counter: str
    key_line: str = ""  # the a=crypto line it read, key masked ("" when it read none)


def opaque_counter(count: int) -> str:
    """The sipsec pane's live counter."""
    return f"cannot read: {count:,} bytes of encrypted tunnel"


def masked_message(raw: bytes) -> list[str]:
    """``raw`` as the proxy read it, line by line, with the SRTP key and Digest credentials
    masked (the key's first characters show it was there in clear)."""
    lines = []
    for text in raw.decode("utf-8", "replace").split("\r\n"):
        shown = text
        if text.lower().startswith(_SECRET_HEADERS):
            name, _, value = text.partition(":")
            scheme = value.strip().split(" ", 1)[0]
            shown = f"{name}: {scheme} … (credentials hidden by the demo)"
        elif text.startswith("a=crypto:"):
            shown = mask_crypto_line(text)
        lines.append(shown)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _summary(seen: SipSeen) -> str:
    message = seen.message
    if isinstance(message, Request):
        return short_first_line(f"{message.method} {message.uri} SIP/2.0")
    assert isinstance(message, Response)
    return short_first_line(f"SIP/2.0 {message.status_code} {message.reason}", message.cseq.method)


def proxy_pane_model(view: ProxyView, kind: str, since: ProxyMark | None) -> ProxyPaneModel:
    """The pane of ``view`` for the ``kind`` call placed at ``since`` (``None``: none yet)."""
    if since is None:
        return ProxyPaneModel(view.proxy, "", WAITING, Level.GOOD, (), (), False, False, 0, "")
    part = slice_view(view, since.start, since.tunnels_before)
    report = proxy_report(part)
    lines: list[str] = []
    in_full: list[str] = []
    read_invite = False
    for seen in part.messages:
        if seen.direction != "in":
            continue
        lines.append(f"read  {_summary(seen)}")
        message = seen.message
        if isinstance(message, Request) and message.method == "INVITE":
            read_invite = True
            if message.body and not in_full:  # the first INVITE with its SDP: the point
                in_full = ["", "The INVITE as this proxy read it:"]
                in_full += [f"  | {line}" for line in masked_message(seen.raw)]
    for observation in part.observations:
        if isinstance(observation, TunnelOpened):
            lines.append("      … then only encrypted bytes between the two phones")
    lines += in_full
    opaque = part.opaque_bytes
    counter = opaque_counter(opaque) if kind == "sipsec" or opaque else ""
    if read_invite and kind == "sipsec":
        headline, level = READ_TUNNEL, Level.NONE
    elif report.read_keys:
        headline, level = CAN_READ_KEYS, Level.NONE
    elif report.read_sdp or read_invite:
        headline, level = CAN_READ_SETUP, Level.WEAK
    elif kind == "sipsec":
        headline, level = CANNOT_READ, Level.BEST
    else:
        headline, level = "Waiting for the call to reach this proxy", Level.GOOD
    return ProxyPaneModel(
        proxy=view.proxy,
        kind=kind,
        headline=headline,
        level=level,
        methods=report.methods,
        lines=tuple(lines),
        read_keys=report.read_keys,
        read_invite=read_invite,
        opaque_bytes=opaque,
        counter=counter,
        key_line=report.crypto_line or "",
    )
