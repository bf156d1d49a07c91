"""What a proxy could see: the observations behind the demo's "what each proxy saw" report.

A proxy (``softphone.server``) hands every message it *parsed* and every tunnel it *relayed
without parsing* to an :data:`Observer`. A :class:`ProxyView` collects them for one proxy and
answers the demo's questions: could this proxy read an INVITE, an SDP body, an SRTP key? How
many bytes did it relay that it could not read?

This is the evidence for draft-gurbani-sip-sipsec §4 REQ 2 ("signaling must be confidential
from intermediaries"): for a ``sips:`` call a proxy's view holds the INVITE and the SDP with
its ``a=crypto`` keys; for a sipsec call it holds only the CONNECT, its 200, and a byte count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from softphone.sip.message import Message, Request, Response

__all__ = [
    "Observation",
    "Observer",
    "ProxyView",
    "SipSeen",
    "TunnelClosed",
    "TunnelOpened",
]


@dataclass(frozen=True)
class SipSeen:
    """A SIP message the proxy parsed: it could read all of it, body included.

    ``direction``: ``"in"`` (received) or ``"out"`` (sent on, after the proxy's changes).
    ``peer``: ``host:port`` of the other end of that hop. ``at``: the loop's monotonic time.
    """

    proxy: str
    direction: str
    peer: str
    message: Message
    raw: bytes
    at: float


@dataclass(frozen=True)
class TunnelOpened:
    """The proxy went transparent (draft §6.6) for the CONNECT to ``request_uri``."""

    proxy: str
    tunnel_id: int
    upstream: str  # host:port towards the caller
    downstream: str  # host:port towards the callee
    request_uri: str
    at: float


@dataclass(frozen=True)
class TunnelClosed:
    """A tunnel ended; the byte counts are what the proxy relayed without reading."""

    proxy: str
    tunnel_id: int
    bytes_up_to_down: int  # caller -> callee
    bytes_down_to_up: int  # callee -> caller
    reason: str
    at: float


Observation = SipSeen | TunnelOpened | TunnelClosed
Observer = Callable[[Observation], None]


@dataclass
class ProxyView:
    """Everything one proxy observed, in order (use :meth:`observe` as the observer).

    Tunnels still open are counted through :meth:`add_relayed`, which a proxy calls as it
    relays (so a report made during a call shows the bytes so far).
    """

    proxy: str
    observations: list[Observation] = field(default_factory=list)
    relayed: dict[int, int] = field(default_factory=dict)  # tunnel_id -> bytes so far

    def observe(self, observation: Observation) -> None:
        self.observations.append(observation)
        if isinstance(observation, TunnelClosed):
            self.relayed[observation.tunnel_id] = (
                observation.bytes_up_to_down + observation.bytes_down_to_up
            )

    def add_relayed(self, tunnel_id: int, count: int) -> None:
        self.relayed[tunnel_id] = self.relayed.get(tunnel_id, 0) + count

    @property
    def messages(self) -> list[SipSeen]:
        return [o for o in self.observations if isinstance(o, SipSeen)]

    def methods_read(self, call_id: str | None = None) -> list[str]:
        """Request methods and response codes (``"200 CONNECT"``) it parsed, in order,
        received side only (each message once)."""
        out = []
        for seen in self.messages:
            if seen.direction != "in":
                continue
            message = seen.message
            if call_id is not None and message.headers.get("Call-ID") != call_id:
                continue
            if isinstance(message, Request):
                out.append(message.method)
            elif isinstance(message, Response):
                out.append(f"{message.status_code} {message.cseq.method}")
        return out

    def read_sdp(self, call_id: str | None = None) -> bool:
        """Whether it parsed any message carrying an SDP body."""
        return any(
            (call_id is None or s.message.headers.get("Call-ID") == call_id)
            and b"v=0" in s.message.body
            for s in self.messages
        )

    def read_keys(self, call_id: str | None = None) -> bool:
        """Whether it parsed SDES keys (``a=crypto``) or a DTLS fingerprint it could swap."""
        return any(
            (call_id is None or s.message.headers.get("Call-ID") == call_id)
            and (b"a=crypto:" in s.message.body or b"a=fingerprint:" in s.message.body)
            for s in self.messages
        )

    @property
    def opaque_bytes(self) -> int:
        return sum(self.relayed.values())
