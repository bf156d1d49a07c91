"""The demo's text output: ladder diagrams and the "what each proxy saw" report.

Pure functions, no I/O: the demo network (:mod:`softphone.demo_network`) turns what the two
phones traced and what the two proxies observed (:mod:`softphone.server.observe`) into
:data:`Step` values and :class:`CallSummary` records; this module draws them in the style of
Figure 3 of draft-gurbani-sip-sipsec-01 (§6.7) and judges them against §4 REQ 2 ("signaling
must be confidential from intermediaries"): a proxy that could read an INVITE, an SDP body or
an SRTP key in a sipsec call is a failure of the demo (:func:`problems`).

The output is plain ASCII and fits 100 columns; colour (ANSI) is optional and never the only
carrier of meaning (UX.md): tunnel arrows are drawn with ``=`` and labelled as opaque.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from softphone.server.observe import ProxyView, SipSeen, TunnelClosed, TunnelOpened
from softphone.sip.errors import ParseError
from softphone.sip.message import Request, Response

__all__ = [
    "COLUMNS",
    "END_TO_END_SIGNALLING",
    "WIDTH",
    "Arrow",
    "CallSummary",
    "Note",
    "PhoneWords",
    "ProxyReport",
    "Span",
    "Step",
    "TraceLike",
    "mask_crypto_line",
    "problems",
    "proxy_report",
    "render_call",
    "render_ladder",
    "render_report",
    "short_first_line",
    "slice_view",
    "steps_from_proxy",
    "steps_from_trace",
]

#: The trapezoid of RFC 3261 §2 / Figure 3: caller, its proxy, the callee's proxy, callee.
COLUMNS: tuple[str, ...] = ("alice", "atlanta.test", "biloxi.test", "bob")
WIDTH = 100
_MARGIN = 6
_GAP = 24

#: UX.md: the words for signalling inside a sipsec tunnel.
END_TO_END_SIGNALLING = "Encrypted end to end; servers only see that a call was set up"
OPAQUE_MARK = "[end-to-end TLS: opaque to proxies]"

_ARROW_CHAR = {"tls-hop": "-", "none": "~", "sipsec-tunnel": "="}
_ANSI = {"tls-hop": "\x1b[33m", "none": "\x1b[31m", "sipsec-tunnel": "\x1b[32m", "span": "\x1b[32m"}
_RESET = "\x1b[0m"


@dataclass(frozen=True)
class Arrow:
    """A message from column ``src`` to column ``dst`` (a hop, or end to end in the tunnel).

    ``protection``: ``"none"``, ``"tls-hop"`` (TLS to the next server, which reads it) or
    ``"sipsec-tunnel"`` (nested TLS between the phones; the proxies relay it unread).
    """

    at: float
    src: str
    dst: str
    label: str
    protection: str = "tls-hop"


@dataclass(frozen=True)
class Note:
    """Something that happens at one column (a proxy "goes transparent", a phone checks a
    certificate)."""

    at: float
    column: str
    text: str


@dataclass(frozen=True)
class Span:
    """A dotted line from ``src`` to ``dst``: the tunnel of draft §6.7 step 9."""

    at: float
    src: str
    dst: str
    label: str


Step = Arrow | Note | Span


class TraceLike(Protocol):
    """What the demo reads of a phone's trace entry (``softphone.ua.trace.TraceEntry``)."""

    @property
    def at(self) -> float: ...
    @property
    def direction(self) -> str: ...
    @property
    def first_line(self) -> str: ...
    @property
    def raw(self) -> bytes: ...
    @property
    def protection(self) -> str: ...


@dataclass(frozen=True)
class ProxyReport:
    """What one proxy could read of one call and how much it relayed without reading."""

    proxy: str
    methods: tuple[str, ...]
    read_sdp: bool
    read_keys: bool
    crypto_line: str | None  # the first a=crypto line it read, key masked
    opaque_bytes: int

    @property
    def read_invite(self) -> bool:
        return "INVITE" in self.methods


@dataclass(frozen=True)
class PhoneWords:
    """The words one phone showed for the call (UX.md; from its ``MediaStarted`` event)."""

    phone: str
    signalling: str
    audio: str


@dataclass(frozen=True)
class CallSummary:
    """One call of the demo, ready to print and to judge."""

    kind: str  # "sips" | "sipsec"
    target: str
    ok: bool
    error: str = ""
    steps: tuple[Step, ...] = ()
    proxies: tuple[ProxyReport, ...] = ()
    phones: tuple[PhoneWords, ...] = ()
    safety_numbers: Mapping[str, str | None] = field(default_factory=dict)


# -- from observations to steps -------------------------------------------------------------

_CSEQ = re.compile(rb"^(?:CSeq|cseq|CSEQ)\s*:\s*\d+\s+(\S+)", re.MULTILINE)


def short_first_line(first_line: str, cseq_method: str | None = None) -> str:
    """``INVITE sips:bob@biloxi.test`` for a request, ``200 OK (INVITE)`` for a response:
    the start line (RFC 3261 §7.1/§7.2) without the protocol version."""
    line = first_line.strip()
    if line.startswith("SIP/2.0 "):
        line = line[len("SIP/2.0 ") :]
        if cseq_method:
            line = f"{line} ({cseq_method})"
        return line
    if line.endswith(" SIP/2.0"):
        line = line[: -len(" SIP/2.0")]
    return line


def _cseq_method(raw: bytes) -> str | None:
    match = _CSEQ.search(raw)
    return match.group(1).decode("ascii", "replace") if match else None


def steps_from_trace(
    phone: str, proxy: str, peer_phone: str, entries: Iterable[TraceLike]
) -> list[Step]:
    """Arrows for what ``phone`` *sent* (what it received is drawn from the sender's side, so
    that each message appears once): to its ``proxy`` on a hop, to ``peer_phone`` inside a
    sipsec tunnel."""
    steps: list[Step] = []
    for entry in entries:
        method = _cseq_method(entry.raw)
        if entry.direction != "sent" or method == "REGISTER":
            continue
        label = short_first_line(entry.first_line, method)
        if entry.protection == "sipsec-tunnel":
            steps.append(Arrow(entry.at, phone, peer_phone, label, "sipsec-tunnel"))
        else:
            steps.append(Arrow(entry.at, phone, proxy, label, entry.protection))
    return steps


def _next_hop(seen: SipSeen, own_phone: str, other_proxy: str, other_port: int | None) -> str:
    """Where a message the proxy sent on goes: the other proxy or its own user.

    The peer address decides when it is the other proxy's listener; otherwise the Via stack
    does (RFC 3261 §16.6 step 8, §16.7 step 3): in this two-proxy network a request with just
    the phone's Via and ours came from our own user and goes to the other domain, a response
    with more than one Via left goes back to the other proxy.
    """
    if other_port is not None and seen.peer.rpartition(":")[2] == str(other_port):
        return other_proxy
    try:
        vias = len(seen.message.vias)
    except ParseError:
        return own_phone
    if isinstance(seen.message, Request):
        return other_proxy if vias <= 2 else own_phone
    return other_proxy if vias >= 2 else own_phone


def steps_from_proxy(
    view: ProxyView,
    *,
    own_phone: str,
    other_proxy: str,
    other_port: int | None = None,
) -> list[Step]:
    """Arrows for what the proxy sent on after parsing it, and notes for its tunnels."""
    steps: list[Step] = []
    for obs in view.observations:
        if isinstance(obs, SipSeen):
            if obs.direction != "out":
                continue
            message = obs.message
            method = None
            if isinstance(message, Response):
                try:
                    method = message.cseq.method
                except ParseError:
                    method = None
            first = bytes(obs.raw).split(b"\r\n", 1)[0].decode("utf-8", "replace")
            dst = _next_hop(obs, own_phone, other_proxy, other_port)
            steps.append(Arrow(obs.at, view.proxy, dst, short_first_line(first, method)))
        elif isinstance(obs, TunnelOpened):
            steps.append(Note(obs.at, view.proxy, "goes transparent"))
        elif isinstance(obs, TunnelClosed):
            total = obs.bytes_up_to_down + obs.bytes_down_to_up
            steps.append(Note(obs.at, view.proxy, f"tunnel closed, {total} bytes relayed unread"))
    return steps


def _is_register(observation: object) -> bool:
    if not isinstance(observation, SipSeen):
        return False
    try:
        return observation.message.cseq.method == "REGISTER"
    except ParseError:
        return False


def slice_view(view: ProxyView, start: int, tunnels_before: Iterable[int]) -> ProxyView:
    """The part of ``view`` from observation ``start`` on, counting only tunnels that were
    not there before (one call's share of a proxy's observations). Registrations (a phone
    re-registers when its flow became a tunnel) are not part of the call and are left out."""
    before = set(tunnels_before)
    return ProxyView(
        view.proxy,
        [o for o in view.observations[start:] if not _is_register(o)],
        {tid: n for tid, n in view.relayed.items() if tid not in before},
    )


# -- reports ---------------------------------------------------------------------------------


def mask_crypto_line(line: str, keep: int = 4) -> str:
    """An ``a=crypto`` line (RFC 4568 §9.1) with the key-salt after its first ``keep``
    characters replaced by ``*`` (at most 36, so that a 256-bit key still fits the line):
    enough to show the key is there, not enough to use it."""

    def hide(match: re.Match[str]) -> str:
        key = match.group(2)
        return match.group(1) + key[:keep] + "*" * min(36, max(0, len(key) - keep))

    return re.sub(r"(inline:)([^|\s]+)", hide, line)


def proxy_report(view: ProxyView) -> ProxyReport:
    """What ``view`` says this proxy read (requests and responses it parsed, SDP, keys) and
    how many bytes it relayed unread."""
    crypto: str | None = None
    for seen in view.messages:
        for raw_line in seen.message.body.split(b"\n"):
            text = raw_line.strip().decode("utf-8", "replace")
            if text.startswith("a=crypto:"):
                crypto = mask_crypto_line(text)
                break
        if crypto is not None:
            break
    return ProxyReport(
        proxy=view.proxy,
        methods=tuple(view.methods_read()),
        read_sdp=view.read_sdp(),
        read_keys=view.read_keys(),
        crypto_line=crypto,
        opaque_bytes=view.opaque_bytes,
    )


def problems(summary: CallSummary) -> list[str]:
    """Why this call does not show what it should; empty when it does.

    A sipsec call (draft §4 REQ 2) fails when any proxy parsed an INVITE, an SDP body or a
    key, relayed no opaque bytes, when a phone does not say "end to end", or when the two
    safety numbers differ. A ``sips:`` call is never allowed to say "end to end" (UX.md).
    """
    label = f"the {summary.kind} call"
    if not summary.ok:
        return [f"{label} failed: {summary.error or 'no reason given'}"]
    found: list[str] = []
    if summary.kind == "sipsec":
        for proxy in summary.proxies:
            if proxy.read_invite:
                found.append(f"{proxy.proxy} read the INVITE in {label}")
            if proxy.read_sdp:
                found.append(f"{proxy.proxy} read the SDP in {label}")
            if proxy.read_keys:
                found.append(f"{proxy.proxy} read the SRTP keys in {label}")
            if proxy.opaque_bytes <= 0:
                found.append(f"{proxy.proxy} relayed no opaque bytes in {label}")
        if not summary.phones:
            found.append(f"no phone reported media in {label}")
        for phone in summary.phones:
            if phone.signalling != END_TO_END_SIGNALLING:
                found.append(f"{phone.phone} does not show end to end in {label}")
        numbers = list(summary.safety_numbers.values())
        if len(numbers) < 2 or None in numbers or len(set(numbers)) != 1:
            found.append(f"the safety numbers differ or are missing in {label}")
    else:
        for phone in summary.phones:
            if "end to end" in phone.signalling or "end to end" in phone.audio:
                found.append(f"{phone.phone} calls a {summary.kind}: call end to end")
    return found


# -- drawing ---------------------------------------------------------------------------------


def _positions(columns: Sequence[str]) -> dict[str, int]:
    return {name: _MARGIN + i * _GAP for i, name in enumerate(columns)}


def _pipes(positions: Mapping[str, int], width: int) -> list[str]:
    row = [" "] * width
    for pos in positions.values():
        row[pos] = "|"
    return row


def _put(row: list[str], start: int, text: str) -> None:
    for i, ch in enumerate(text):
        if start + i >= len(row):
            break
        row[start + i] = ch


def _line(row: list[str]) -> str:
    return "".join(row).rstrip()


def _paint(text: str, kind: str, color: bool) -> str:
    return f"{_ANSI[kind]}{text}{_RESET}" if color else text


def render_ladder(
    steps: Iterable[Step],
    columns: Sequence[str] = COLUMNS,
    *,
    width: int = WIDTH,
    color: bool = False,
) -> str:
    """A ladder diagram in the style of draft-gurbani-sip-sipsec-01 Figure 3: one vertical
    line per column, numbered steps in time order, ``-`` for a TLS hop the next server reads,
    ``=`` for a message inside the end-to-end tunnel, ``.`` for the tunnel itself."""
    positions = _positions(columns)
    header = [" "] * width
    for name, pos in positions.items():
        _put(header, max(0, pos - len(name) // 2), name)
    lines = [_line(header), _line(_pipes(positions, width))]
    ordered = sorted(enumerate(steps), key=lambda item: (item[1].at, item[0]))
    for number, (_index, step) in enumerate(ordered, start=1):
        tag = f"({number}) "
        if isinstance(step, Note):
            start = positions[step.column] + 1
            room = max(10, width - start - len(tag))
            chunks = textwrap.wrap(step.text, room) or [""]
            for i, chunk in enumerate(chunks):
                row = _pipes(positions, width)
                _put(row, start, (tag if i == 0 else " " * len(tag)) + chunk)
                lines.append(_line(row))
            continue
        lo, hi = sorted((positions[step.src], positions[step.dst]))
        label = step.label
        kind = "span" if isinstance(step, Span) else step.protection
        if isinstance(step, Arrow) and step.protection == "sipsec-tunnel":
            label = f"{label}  {OPAQUE_MARK}"
        row = _pipes(positions, width)
        _put(row, lo + 1, (tag + label)[: width - lo - 1])
        lines.append(_line(row))
        row = _pipes(positions, width)
        fill = "." if isinstance(step, Span) else _ARROW_CHAR.get(step.protection, "-")
        body = [fill] * (hi - lo - 1)
        if isinstance(step, Arrow):
            if positions[step.dst] > positions[step.src]:
                body[-1] = ">"
            else:
                body[0] = "<"
        _put(row, lo + 1, "".join(body))
        text = _line(row)
        if color:
            text = text[: lo + 1] + _paint(text[lo + 1 : hi], kind, True) + text[hi:]
        lines.append(text)
    lines.append(_line(_pipes(positions, width)))
    return "\n".join(lines)


LEGEND = (
    "  ---->  TLS to the next server: that server decrypts and reads the message\n"
    "  ====>  inside the sipsec tunnel: TLS between the two phones, opaque to the proxies\n"
    "  .....  the tunnel: the proxies relay bytes without parsing them (draft section 6.6)"
)


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def render_report(summary: CallSummary) -> str:
    """The "what each proxy saw" report of one call, then the words each phone showed and
    the safety numbers (sipsec)."""
    lines = [f"What each proxy saw ({summary.kind} call to {summary.target}):"]
    for proxy in summary.proxies:
        methods = ", ".join(proxy.methods) if proxy.methods else "nothing"
        lines.append(f"  {proxy.proxy}")
        lines.append(f"    SIP it read:         {methods}")
        lines.append(f"    read the INVITE:     {_yes_no(proxy.read_invite)}")
        lines.append(f"    read the SDP:        {_yes_no(proxy.read_sdp)}")
        lines.append(f"    read the SRTP keys:  {_yes_no(proxy.read_keys)}")
        if proxy.read_keys and proxy.crypto_line:
            lines.append(f"      {proxy.crypto_line}")
        lines.append(f"    opaque bytes relayed: {proxy.opaque_bytes}")
    if summary.phones:
        lines.append("What each phone shows:")
        for phone in summary.phones:
            lines.append(f"  {phone.phone}: call setup: {phone.signalling}")
            lines.append(f"  {' ' * len(phone.phone)}  audio:      {phone.audio}")
    if summary.kind == "sipsec":
        lines.append("Safety number each phone computed:")
        for name, number in summary.safety_numbers.items():
            lines.append(f"  {name}: {number or '(none)'}")
        values = list(summary.safety_numbers.values())
        same = len(values) >= 2 and None not in values and len(set(values)) == 1
        lines.append("  equal: " + ("yes, read them to each other to verify" if same else "NO"))
    return "\n".join(lines)


def render_call(summary: CallSummary, *, color: bool = False) -> str:
    """Title, ladder, legend and report of one call, and its verdict."""
    title = f"== {summary.kind}: alice calls {summary.target} =="
    parts = [title]
    if summary.steps:
        parts.append(render_ladder(summary.steps, color=color))
        parts.append(LEGEND)
    parts.append(render_report(summary))
    found = problems(summary)
    if found:
        parts.append("\n".join(f"PROBLEM: {p}" for p in found))
    else:
        parts.append("OK")
    return "\n".join(parts)
