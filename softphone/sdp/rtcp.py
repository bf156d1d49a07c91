"""Where RTCP goes: ``a=rtcp`` (RFC 3605) and ``a=rtcp-mux`` (RFC 5761 §5.1.1).

Without either, RTCP uses the RTP port + 1 at the same address (RFC 3550 §11, RFC 8866 §5.14).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from softphone.sdp.errors import SdpParseError

__all__ = ["RtcpAttribute", "parse_rtcp"]


@dataclass(frozen=True)
class RtcpAttribute:
    """``a=rtcp:<port> [<nettype> <addrtype> <connection-address>]`` (RFC 3605 §2.1)."""

    port: int
    nettype: str | None = None
    addrtype: str | None = None
    address: str | None = None

    def __str__(self) -> str:
        if self.address is None:
            return str(self.port)
        return f"{self.port} {self.nettype} {self.addrtype} {self.address}"


def parse_rtcp(value: str) -> RtcpAttribute:
    """Parse the value of ``a=rtcp``; :class:`SdpParseError` when malformed."""
    fields = value.split()
    if len(fields) not in (1, 4):
        raise SdpParseError(f"malformed rtcp attribute: {value!r}")
    port_text = fields[0]
    if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
        raise SdpParseError(f"malformed rtcp port: {port_text!r}")
    port = int(port_text)
    if port > 65535:
        raise SdpParseError(f"rtcp port out of range: {port}")
    if len(fields) == 1:
        return RtcpAttribute(port)
    nettype, addrtype, address = fields[1], fields[2], fields[3]
    if nettype == "IN" and addrtype in ("IP4", "IP6"):
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            raise SdpParseError(f"malformed rtcp address: {address!r}") from None
        if parsed.version != (4 if addrtype == "IP4" else 6):
            raise SdpParseError(f"rtcp address {address!r} is not {addrtype}")
    return RtcpAttribute(port, nettype, addrtype, address)
