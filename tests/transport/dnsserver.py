"""An in-process authoritative DNS server on 127.0.0.1 for tests (UDP, plus TCP for truncation).

The zone is a plain dict given by the test, rdata in master-file text (names in rdata are
absolute whether or not they end with a dot)::

    zone = {
        "example.test": {
            "NAPTR": ['10 50 "s" "SIPS+D2T" "" _sips._tcp.example.test'],
        },
        "_sips._tcp.example.test": {"SRV": ["0 5 5061 sip1.example.test"]},
        "sip1.example.test": {"A": ["127.0.0.1"], "AAAA": ["::1"]},
        "alias.example.test": {"CNAME": ["sip1.example.test"]},
    }

    async with DnsServer(zone) as dns_server:
        config = ResolverConfig.from_account(nameserver=dns_server.address)
        ...
        assert ("example.test", "NAPTR") in dns_server.queries

Answers follow authoritative-server rules: a name with the type gets it (NOERROR); a name
with a CNAME gets the CNAME and, if the target is in the zone, the chase; a name that exists
(or is an empty non-terminal such as ``_tcp.example.test``) without the type gets NOERROR with an
empty answer (NODATA); any other name gets NXDOMAIN.

``delay`` (seconds) holds every reply back, to count round trips by wall-clock time.
``fault(name, rdtype, action)`` makes queries for a name (one type, or all with ``None``)
get no reply (``"drop"``, for timeouts) or ``"servfail"`` / ``"refused"``.
``queries`` lists every question received, ``(name without final dot, type)``, in order;
``tcp_queries`` counts those that came over TCP (after a truncated UDP answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import struct
from collections.abc import Mapping, Sequence
from typing import Literal, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

Zone = Mapping[str, Mapping[str, Sequence[str] | str]]
Fault = Literal["drop", "servfail", "refused"]

TTL = 60
_UDP_PLAIN_MAX = 512


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text, origin=dns.name.root)


def _text(name: dns.name.Name) -> str:
    return "." if name == dns.name.root else name.to_text(omit_final_dot=True).lower()


class DnsServer:
    """Serve ``zone`` on ``127.0.0.1:<random free port>``; use as ``async with`` or start/close."""

    def __init__(self, zone: Zone | None = None, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.queries: list[tuple[str, str]] = []
        self.tcp_queries = 0
        self._records: dict[dns.name.Name, dict[dns.rdatatype.RdataType, dns.rrset.RRset]] = {}
        self._faults: dict[tuple[dns.name.Name, dns.rdatatype.RdataType | None], Fault] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._pending: set[asyncio.TimerHandle] = set()
        self.port = 0
        self.set_zone(zone or {})

    # -- zone ------------------------------------------------------------------------------

    def set_zone(self, zone: Zone) -> None:
        """Replace the zone (rdata text is parsed here, so a typo fails the test at once)."""
        records: dict[dns.name.Name, dict[dns.rdatatype.RdataType, dns.rrset.RRset]] = {}
        for owner, types in zone.items():
            name = _name(owner)
            for type_text, values in types.items():
                rdtype = dns.rdatatype.from_text(type_text)
                rrset = dns.rrset.RRset(name, dns.rdataclass.IN, rdtype)
                rrset.update_ttl(TTL)
                for value in [values] if isinstance(values, str) else values:
                    rdata = dns.rdata.from_text(
                        dns.rdataclass.IN, rdtype, value, origin=dns.name.root, relativize=False
                    )
                    rrset.add(rdata, TTL)
                # A zone mistake fails here, not as a silent timeout later.
                rrset.to_wire(io.BytesIO())
                records.setdefault(name, {})[rdtype] = rrset
        self._records = records

    def fault(self, name: str, rdtype: str | None = None, action: Fault = "drop") -> None:
        """Make queries for ``name`` (of ``rdtype``, or of any type) fail with ``action``."""
        key = (_name(name), dns.rdatatype.from_text(rdtype) if rdtype else None)
        self._faults[key] = action

    def queried(self, name: str, rdtype: str) -> bool:
        return (name.rstrip(".").lower(), rdtype.upper()) in self.queries

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """``"127.0.0.1:<port>"``, the form of the account option ``nameserver``."""
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # UDP on a free port, then TCP on the same number (retry if that one is taken).
        last_error: OSError | None = None
        for _ in range(20):
            udp, _protocol = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=("127.0.0.1", 0)
            )
            port = udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, "127.0.0.1", port)
            except OSError as exc:
                last_error = exc
                udp.close()
                continue
            self._udp, self.port = udp, port
            return
        raise RuntimeError(f"no free port for the test DNS server: {last_error}")

    async def close(self) -> None:
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                await self._tcp.wait_closed()
            self._tcp = None

    async def __aenter__(self) -> DnsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- answering -------------------------------------------------------------------------

    def respond(self, wire: bytes, *, udp: bool) -> bytes | None:
        """The reply to one query message, or ``None`` to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if not query.question:
            return None
        question = query.question[0]
        self.queries.append((_text(question.name), dns.rdatatype.to_text(question.rdtype)))
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        fault = self._faults.get((question.name, question.rdtype)) or self._faults.get(
            (question.name, None)
        )
        if fault == "drop":
            return None
        if fault is not None:
            response.set_rcode(dns.rcode.SERVFAIL if fault == "servfail" else dns.rcode.REFUSED)
        else:
            rcode, answer = self._lookup(question.name, question.rdtype)
            response.set_rcode(rcode)
            response.answer.extend(answer)
        if not udp:
            return response.to_wire(max_size=65535)
        max_size = max(_UDP_PLAIN_MAX, query.payload) if query.edns >= 0 else _UDP_PLAIN_MAX
        try:
            return response.to_wire(max_size=max_size)
        except dns.exception.TooBig:
            response.answer.clear()
            response.flags |= dns.flags.TC
            return response.to_wire()

    def _lookup(
        self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> tuple[dns.rcode.Rcode, list[dns.rrset.RRset]]:
        chain: list[dns.rrset.RRset] = []
        name = qname
        for _ in range(8):  # CNAME chase, bounded against loops in a test zone
            node = self._records.get(name)
            if node is None:
                if chain or self._is_empty_non_terminal(name):
                    return dns.rcode.NOERROR, chain
                return dns.rcode.NXDOMAIN, chain
            if rdtype in node:
                chain.append(node[rdtype])
                return dns.rcode.NOERROR, chain
            cname = node.get(dns.rdatatype.CNAME)
            if cname is None:
                return dns.rcode.NOERROR, chain
            chain.append(cname)
            name = next(iter(cname)).target
        return dns.rcode.SERVFAIL, []

    def _is_empty_non_terminal(self, name: dns.name.Name) -> bool:
        return any(owner.is_subdomain(name) for owner in self._records)

    def _send_later(self, send: _Sender, data: bytes) -> None:
        if self.delay <= 0:
            send(data)
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._pending.discard(handle)
            send(data)

        handle = loop.call_later(self.delay, fire)
        self._pending.add(handle)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                self.tcp_queries += 1
                reply = self.respond(await reader.readexactly(length), udp=False)
                if reply is None:
                    continue
                if self.delay > 0:
                    await asyncio.sleep(self.delay)
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


class _Sender:
    def __init__(self, transport: asyncio.DatagramTransport, addr: tuple[str, int]) -> None:
        self.transport, self.addr = transport, addr

    def __call__(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.sendto(data, self.addr)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport is not a DatagramTransport subclass on 3.11.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        reply = self.server.respond(data, udp=True)
        if reply is not None:
            self.server._send_later(_Sender(self.transport, addr), reply)
