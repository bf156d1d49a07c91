"""Locating SIP servers (RFC 3263): from a ``sip:``/``sips:`` URI to an ordered list of targets.

:func:`locate` turns a URI into every ``(transport, IP address, port)`` worth trying, in the
order to try them (RFC 3263 §4.3: on failure the next one), each with the ``server_name`` the
TLS certificate must match: the domain the user asked for (RFC 5922 §4), never the SRV target.

The decision logic is pure and lives in small functions tested on their own:

- :func:`plan_lookup`: transport selection of §4.1 and the shortcuts of §4.2 (transport
  parameter, numeric host, explicit port, pinned names) → a :class:`Plan` of queries;
- :func:`select_naptr`: keep the NAPTR records we support (``SIPS+D2T``, ``SIP+D2T``,
  ``SIP+D2U``; for ``sips:`` only ``SIPS+D2T``), sorted by order then preference;
- :func:`order_srv`: RFC 2782 priority order with weighted random selection (injectable RNG);
- :func:`order_addresses`: AAAA before A (RFC 6724 default) or the other way round.

The asyncio part only asks DNS (``dns.asyncresolver``) what the plan says, in parallel where
it can: the NAPTR query and the SRV queries a missing NAPTR would lead to go out together, then
AAAA and A of every SRV target together, so a full NAPTR → SRV → A/AAAA resolution costs two
round trips when the NAPTR points at the usual ``_sips._tcp``/``_sip._tcp``/``_sip._udp`` names.

Security rules kept here, whatever DNS says:

- a ``sips:`` URI only ever yields TLS targets: ``SIP+D2T``/``SIP+D2U`` NAPTR records and the
  ``_sip._tcp``/``_sip._udp`` SRV names are never consulted, ``;transport=tcp`` means TLS over
  TCP and ``;transport=udp`` is refused (RFC 3261 §26.2.2; there is no SIPS over UDP);
- ``server_name`` is the URI's host, so a forged NAPTR/SRV answer can move the connection but
  cannot change which name the certificate must carry.

Account options (:class:`ResolverConfig`): ``nameserver = "127.0.0.1:5353"`` (else the system's
``/etc/resolv.conf``) and curl-style pins ``resolve = ["example.test:5061:127.0.0.1"]``: a pinned
``name:port`` is answered locally without DNS, for the URI's domain and for SRV target names.

Exceptions::

    ValueError
     └─ ResolverConfigError     a ``nameserver`` or ``resolve`` option that does not parse
    LocateError                 no target: ``.domain``, ``.failure`` (a :class:`LookupFailure`:
                                NXDOMAIN, no answer, timeout, server failure, ...), ``.query``
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdata
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.NAPTR
import dns.rdtypes.IN.SRV
import dns.resolver

from softphone.sip.errors import ParseError
from softphone.sip.uri import SipURI, validate_host

__all__ = [
    "DEFAULT_PORTS",
    "NAPTR_SERVICES",
    "AddressPin",
    "AddressQuery",
    "FoundBy",
    "LocateError",
    "LookupFailure",
    "Nameserver",
    "NaptrRecord",
    "Plan",
    "RandomSource",
    "ResolverConfig",
    "ResolverConfigError",
    "SrvQuery",
    "SrvRecord",
    "Target",
    "Transport",
    "locate",
    "order_addresses",
    "order_srv",
    "parse_nameserver",
    "parse_pin",
    "plan_lookup",
    "select_naptr",
    "srv_name",
]

logger = logging.getLogger(__name__)

Transport = Literal["UDP", "TCP", "TLS"]

#: RFC 3261 §19.1.2 default ports.
DEFAULT_PORTS: dict[Transport, int] = {"UDP": 5060, "TCP": 5060, "TLS": 5061}
#: RFC 3263 §4.1 NAPTR service fields and the transport each names.
NAPTR_SERVICES: dict[str, Transport] = {"SIPS+D2T": "TLS", "SIP+D2T": "TCP", "SIP+D2U": "UDP"}
_SRV_PREFIXES: dict[Transport, str] = {"TLS": "_sips._tcp", "TCP": "_sip._tcp", "UDP": "_sip._udp"}
_ALL_TRANSPORTS: tuple[Transport, ...] = ("TLS", "TCP", "UDP")


# -- errors ----------------------------------------------------------------------------------


class ResolverConfigError(ValueError):
    """A ``nameserver`` or ``resolve`` account option that does not parse."""


class LookupFailure(StrEnum):
    """Why a name gave no usable answer."""

    NXDOMAIN = "NXDOMAIN"  # the name does not exist
    NO_ANSWER = "no answer"  # the name exists without a record of that type
    TIMEOUT = "timeout"  # no nameserver answered in time
    SERVER_FAILURE = "server failure"  # SERVFAIL/REFUSED/garbage from every nameserver
    UNAVAILABLE = "unavailable"  # SRV target "." (RFC 2782: decidedly not available)
    UNUSABLE_URI = "unusable URI"  # a transport we must not or cannot use
    NO_RESOLVER = "no resolver"  # no nameserver configured and none in /etc/resolv.conf


class LocateError(Exception):
    """No target for ``domain``: ``failure`` says what failed, ``query`` which lookup."""

    def __init__(
        self, domain: str, failure: LookupFailure, detail: str, *, query: str | None = None
    ) -> None:
        super().__init__(f"cannot locate a SIP server for {domain}: {detail}")
        self.domain = domain
        self.failure = failure
        self.detail = detail
        self.query = query


# -- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Nameserver:
    """A DNS server to ask (UDP, TCP on truncation)."""

    address: str
    port: int = 53


@dataclass(frozen=True, slots=True)
class AddressPin:
    """curl-style ``name:port:address[,address...]``: answer ``name:port`` without DNS."""

    host: str
    port: int
    addresses: tuple[str, ...]


def _parse_port(text: str, what: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 65535:
        raise ResolverConfigError(f"{what}: bad port {text!r} (1-65535)")
    return int(text)


def _parse_ip(text: str, what: str) -> str:
    inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(inner))
    except ValueError:
        raise ResolverConfigError(f"{what}: {text!r} is not an IP address") from None


def parse_nameserver(text: str) -> Nameserver:
    """``"127.0.0.1:5353"``, ``"192.0.2.53"``, ``"[::1]:5353"`` or ``"::1"`` (port 53).

    A nameserver must be an IP address: a name would need a resolver to find the resolver.
    """
    what = f"nameserver {text!r}"
    text = text.strip()
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ResolverConfigError(f"{what}: missing ']'")
        address, rest = text[: close + 1], text[close + 1 :]
        if rest and not rest.startswith(":"):
            raise ResolverConfigError(f"{what}: junk after ']'")
        port = _parse_port(rest[1:], what) if rest else 53
        return Nameserver(_parse_ip(address, what), port)
    if text.count(":") == 1:
        address, _, port_text = text.partition(":")
        return Nameserver(_parse_ip(address, what), _parse_port(port_text, what))
    return Nameserver(_parse_ip(text, what), 53)


def parse_pin(text: str) -> AddressPin:
    """curl ``--resolve`` syntax: ``host:port:addr[,addr...]``, IPv6 addresses in brackets.

    ``"example.test:5061:127.0.0.1"``, ``"example.test:5061:[::1],127.0.0.1"``. curl's
    ``+host`` (timeout), ``-host`` (removal) and ``*`` (wildcard) forms are refused.
    """
    what = f"resolve {text!r}"
    parts = text.strip().split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise ResolverConfigError(f"{what}: expected host:port:address[,address...]")
    host_text, port_text, addresses_text = parts
    if host_text[0] in "+-*" or "*" in host_text:
        raise ResolverConfigError(f"{what}: curl's +, - and * forms are not supported")
    try:
        validate_host(host_text)
    except ParseError as exc:
        raise ResolverConfigError(f"{what}: {exc}") from None
    host = _normal_host(host_text)
    if _is_ip(host):
        raise ResolverConfigError(f"{what}: pin a name, not an address")
    addresses = tuple(_parse_ip(a.strip(), what) for a in addresses_text.split(","))
    return AddressPin(host, _parse_port(port_text, what), addresses)


@dataclass(frozen=True, slots=True)
class ResolverConfig:
    """How to ask DNS. ``transports`` are those we support, in our order of preference (used
    when DNS does not order them: no NAPTR); ``timeout`` bounds each query, retries included."""

    nameservers: tuple[Nameserver, ...] = ()
    pins: tuple[AddressPin, ...] = ()
    timeout: float = 2.0
    transports: tuple[Transport, ...] = _ALL_TRANSPORTS
    prefer_ipv6: bool = True

    def __post_init__(self) -> None:
        if not self.transports or any(t not in DEFAULT_PORTS for t in self.transports):
            raise ResolverConfigError(f"transports must be among UDP, TCP, TLS: {self.transports}")
        if not self.timeout > 0:
            raise ResolverConfigError(f"timeout must be positive: {self.timeout}")

    @classmethod
    def from_account(
        cls,
        *,
        nameserver: str | Sequence[str] | None = None,
        resolve: Iterable[str] = (),
        timeout: float = 2.0,
        transports: Sequence[Transport] = _ALL_TRANSPORTS,
        prefer_ipv6: bool = True,
    ) -> ResolverConfig:
        """From the account's ``nameserver`` and ``resolve`` strings; ``ResolverConfigError``
        names the option that does not parse."""
        if isinstance(nameserver, str):
            nameserver = [nameserver]
        return cls(
            nameservers=tuple(parse_nameserver(n) for n in nameserver or ()),
            pins=tuple(parse_pin(p) for p in resolve),
            timeout=timeout,
            transports=tuple(transports),
            prefer_ipv6=prefer_ipv6,
        )

    def pinned(self, host: str, port: int) -> tuple[str, ...]:
        """The pinned addresses of ``host:port`` (``()`` when not pinned)."""
        host = _normal_host(host)
        return tuple(a for p in self.pins if p.host == host and p.port == port for a in p.addresses)


# -- results ---------------------------------------------------------------------------------


class FoundBy(StrEnum):
    """The step that produced a target (for logs and for the user's "why this address")."""

    NUMERIC = "numeric host"
    PIN = "pin"
    NAPTR = "NAPTR+SRV"
    SRV = "SRV"
    ADDRESS = "A/AAAA"


@dataclass(frozen=True, slots=True)
class Target:
    """One place to send to. ``server_name`` is the name the TLS certificate must match (the
    URI's host); ``target_name`` is the name whose address this is (SRV target, for logs)."""

    transport: Transport
    host_ip: str
    port: int
    server_name: str
    target_name: str = ""
    found_by: FoundBy = FoundBy.ADDRESS

    def __str__(self) -> str:
        ip = f"[{self.host_ip}]" if ":" in self.host_ip else self.host_ip
        return (
            f"{self.transport} {ip}:{self.port} (server {self.server_name}, "
            f"{self.target_name} by {self.found_by})"
        )


# -- pure decision logic ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NaptrRecord:
    """A NAPTR record (RFC 3403 §4.1); names without the final dot, the root as ``"."``."""

    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str


@dataclass(frozen=True, slots=True)
class SrvRecord:
    """An SRV record (RFC 2782); ``target`` ``"."`` means "no service here"."""

    priority: int
    weight: int
    port: int
    target: str


@dataclass(frozen=True, slots=True)
class SrvQuery:
    """An SRV name to ask and the transport its targets are reached with."""

    transport: Transport
    name: str
    found_by: FoundBy = FoundBy.SRV


@dataclass(frozen=True, slots=True)
class AddressQuery:
    """An A/AAAA lookup of ``host``, its addresses used with ``transport`` and ``port``."""

    transport: Transport
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Plan:
    """What to ask DNS for one URI (RFC 3263 §4.1-4.2), decided before any query.

    - ``targets``: already final (numeric host, pinned domain); nothing to ask;
    - ``address``: A/AAAA only (explicit port);
    - otherwise NAPTR of ``domain`` when ``naptr`` (keeping only ``allowed`` transports), else
      or when no NAPTR is usable the SRV queries ``srv`` in order, and when no SRV exists the
      A/AAAA lookup ``fallback``.
    """

    domain: str
    server_name: str
    targets: tuple[Target, ...] = ()
    address: AddressQuery | None = None
    naptr: bool = False
    allowed: tuple[Transport, ...] = ()
    srv: tuple[SrvQuery, ...] = ()
    fallback: AddressQuery | None = None


def _normal_host(host: str) -> str:
    """Host as a DNS name or IP text: brackets off, final dot off, lower-case."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.rstrip(".").lower() or "."


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def srv_name(transport: Transport, domain: str) -> str:
    """``_sips._tcp.<domain>`` / ``_sip._tcp.<domain>`` / ``_sip._udp.<domain>``."""
    return f"{_SRV_PREFIXES[transport]}.{domain}"


def _transport_param(uri: SipURI, secure: bool, domain: str) -> Transport | None:
    """The transport the ``transport`` URI parameter asks for (RFC 3263 §4.1 first rule)."""
    value = uri.transport
    if value is None:
        return None
    if value == "udp":
        if secure:
            raise LocateError(
                domain,
                LookupFailure.UNUSABLE_URI,
                "a sips: URI cannot use transport=udp (SIPS means TLS, RFC 3261 §26.2.2)",
            )
        return "UDP"
    if value == "tcp":
        return "TLS" if secure else "TCP"  # sips over TCP is TLS over TCP
    if value == "tls":  # RFC 3261's deprecated transport=tls (RFC 5630 §3.2)
        return "TLS"
    raise LocateError(domain, LookupFailure.UNUSABLE_URI, f"unsupported transport={value}")


def _default_transport(secure: bool, supported: Sequence[Transport]) -> Transport:
    """§4.1 when nothing else decides: TLS (over TCP) for sips, UDP for sip when we support it."""
    if secure:
        return "TLS"
    return next(t for t in ("UDP", "TCP", "TLS") if t in supported)


def plan_lookup(uri: SipURI, config: ResolverConfig) -> Plan:
    """Decide the lookups for ``uri`` (RFC 3263 §4.1-4.2; TARGET is ``maddr`` if present).

    Raises :class:`LocateError` (``UNUSABLE_URI``) for a transport we must not or cannot use.
    """
    secure = uri.scheme.lower() == "sips"
    server_name = _normal_host(uri.host)
    maddr = uri.params.get("maddr")
    if maddr:
        try:
            validate_host(maddr)
        except ParseError as exc:
            raise LocateError(server_name, LookupFailure.UNUSABLE_URI, f"maddr: {exc}") from None
    domain = _normal_host(maddr or uri.host)
    explicit = _transport_param(uri, secure, domain)
    supported = config.transports
    if secure and "TLS" not in supported:
        raise LocateError(domain, LookupFailure.UNUSABLE_URI, "a sips: URI needs TLS")
    if explicit is not None and explicit not in supported:
        raise LocateError(domain, LookupFailure.UNUSABLE_URI, f"{explicit} is not enabled")
    allowed: tuple[Transport, ...] = (
        (explicit,) if explicit is not None else ("TLS",) if secure else supported
    )
    transport = explicit or _default_transport(secure, supported)

    if _is_ip(domain):
        port = uri.port or DEFAULT_PORTS[transport]
        target = Target(transport, domain, port, server_name, domain, FoundBy.NUMERIC)
        return Plan(domain, server_name, targets=(target,))
    if uri.port is not None:
        return Plan(domain, server_name, address=AddressQuery(transport, domain, uri.port))

    # A pinned domain is answered without DNS: each allowed transport whose default port is
    # pinned, in our order (explicit ports were handled above, by the address lookup).
    pinned = tuple(
        Target(t, ip, DEFAULT_PORTS[t], server_name, domain, FoundBy.PIN)
        for t in allowed
        for ip in config.pinned(domain, DEFAULT_PORTS[t])
    )
    if pinned:
        return Plan(domain, server_name, targets=pinned)
    return Plan(
        domain,
        server_name,
        naptr=explicit is None,
        allowed=allowed,
        srv=tuple(SrvQuery(t, srv_name(t, domain)) for t in allowed),
        fallback=AddressQuery(transport, domain, DEFAULT_PORTS[transport]),
    )


def select_naptr(records: Iterable[NaptrRecord], allowed: Sequence[Transport]) -> list[SrvQuery]:
    """The SRV queries NAPTR ``records`` lead to (RFC 3263 §4.1), best first.

    Keeps terminal ``"s"`` records whose service we support and ``allowed`` permits (only
    ``SIPS+D2T`` for sips), with a replacement and no regexp; sorted by order, then preference
    (RFC 3403 §4.1). All are kept, not only the lowest order: the rest are the failover list.
    """
    usable: list[NaptrRecord] = []
    for record in records:
        transport = NAPTR_SERVICES.get(record.service.upper())
        if (
            transport in allowed
            and record.flags.lower() == "s"
            and not record.regexp
            and record.replacement != "."
        ):
            usable.append(record)
    usable.sort(key=lambda r: (r.order, r.preference))
    queries: list[SrvQuery] = []
    for record in usable:
        query = SrvQuery(NAPTR_SERVICES[record.service.upper()], record.replacement, FoundBy.NAPTR)
        if query not in queries:
            queries.append(query)
    return queries


class RandomSource(Protocol):
    """What :func:`order_srv` needs from an RNG (``random.Random`` fits)."""

    def randint(self, a: int, b: int) -> int: ...


def order_srv(records: Iterable[SrvRecord], rng: RandomSource) -> list[SrvRecord]:
    """RFC 2782 order: ascending priority; within a priority, weighted random selection.

    Within one priority: weight-0 records first (then by target name, for reproducibility),
    running sums, a uniform number in ``[0, total]``, the first record whose running sum
    reaches it; removed, repeat. Records with target ``"."`` are dropped (no service there).
    """
    by_priority: dict[int, list[SrvRecord]] = {}
    for record in records:
        if record.target != ".":
            by_priority.setdefault(record.priority, []).append(record)
    ordered: list[SrvRecord] = []
    for priority in sorted(by_priority):
        # "Any order" but weight 0 first (RFC 2782); by name too, so that the same RNG gives
        # the same choice however the server shuffled the answer.
        group = sorted(by_priority[priority], key=lambda r: (r.weight != 0, r.target, r.port))
        while group:
            ordered.append(group.pop(_weighted_pick(group, rng)))
    return ordered


def _weighted_pick(group: Sequence[SrvRecord], rng: RandomSource) -> int:
    chosen = rng.randint(0, sum(r.weight for r in group))
    running = 0
    for index, record in enumerate(group):
        running += record.weight
        if running >= chosen:
            return index
    return len(group) - 1  # only an RNG outside [0, total] gets here


def order_addresses(ipv6: Iterable[str], ipv4: Iterable[str], *, prefer_ipv6: bool) -> list[str]:
    """Addresses to try for one name, without duplicates: one family, then the other."""
    first, second = (ipv6, ipv4) if prefer_ipv6 else (ipv4, ipv6)
    return list(dict.fromkeys([*first, *second]))


def _worst(failures: Sequence[tuple[str, LookupFailure]]) -> LookupFailure:
    kinds = {kind for _query, kind in failures}
    if len(kinds) == 1:
        return kinds.pop()
    for kind in (LookupFailure.TIMEOUT, LookupFailure.SERVER_FAILURE, LookupFailure.NXDOMAIN):
        if kind in kinds:
            return kind
    return LookupFailure.NO_ANSWER


# -- asyncio: the queries --------------------------------------------------------------------


@dataclass(slots=True)
class _Outcome:
    """One query's result: rdata, or why there is none."""

    records: list[dns.rdata.Rdata] = field(default_factory=list)
    failure: LookupFailure | None = None
    detail: str = ""


class _Querier:
    """Runs each (name, type) query once, in parallel, and remembers it for this locate()."""

    def __init__(self, resolver: dns.asyncresolver.Resolver) -> None:
        self._resolver = resolver
        self._tasks: dict[tuple[str, str], asyncio.Task[_Outcome]] = {}

    def start(self, name: str, rdtype: str) -> asyncio.Task[_Outcome]:
        key = (name, rdtype)
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(self._query(name, rdtype))
            self._tasks[key] = task
        return task

    async def get(self, name: str, rdtype: str) -> _Outcome:
        return await self.start(name, rdtype)

    async def _query(self, name: str, rdtype: str) -> _Outcome:
        qname = dns.name.from_text(name, origin=dns.name.root)
        try:
            answer = await self._resolver.resolve(qname, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            outcome = _Outcome(failure=LookupFailure.NXDOMAIN, detail="the name does not exist")
        except dns.resolver.NoAnswer:
            outcome = _Outcome(failure=LookupFailure.NO_ANSWER, detail=f"no {rdtype} record")
        except dns.exception.Timeout as exc:
            outcome = _Outcome(failure=LookupFailure.TIMEOUT, detail=str(exc))
        except dns.exception.DNSException as exc:  # NoNameservers, YXDOMAIN, bad answers
            outcome = _Outcome(failure=LookupFailure.SERVER_FAILURE, detail=str(exc))
        else:
            outcome = _Outcome(records=list(answer))
        logger.debug(
            "DNS %s %s: %s",
            rdtype,
            name,
            outcome.failure or f"{len(outcome.records)} record(s)",
        )
        return outcome

    async def aclose(self) -> None:
        pending = [task for task in self._tasks.values() if not task.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def _name_text(name: dns.name.Name) -> str:
    return "." if name == dns.name.root else name.to_text(omit_final_dot=True).lower()


def _naptrs(outcome: _Outcome) -> list[NaptrRecord]:
    return [
        NaptrRecord(
            r.order,
            r.preference,
            r.flags.decode("ascii", "replace"),
            r.service.decode("ascii", "replace"),
            r.regexp.decode("ascii", "replace"),
            _name_text(r.replacement),
        )
        for r in outcome.records
        if isinstance(r, dns.rdtypes.IN.NAPTR.NAPTR)
    ]


def _srvs(outcome: _Outcome) -> list[SrvRecord]:
    return [
        SrvRecord(r.priority, r.weight, r.port, _name_text(r.target))
        for r in outcome.records
        if isinstance(r, dns.rdtypes.IN.SRV.SRV)
    ]


def _ips(outcome: _Outcome) -> list[str]:
    return [
        str(r.address)
        for r in outcome.records
        if isinstance(r, (dns.rdtypes.IN.A.A, dns.rdtypes.IN.AAAA.AAAA))
    ]


def _make_resolver(config: ResolverConfig, domain: str) -> dns.asyncresolver.Resolver:
    if config.nameservers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(ns.address, ns.port) for ns in config.nameservers
        ]
    else:
        try:
            resolver = dns.asyncresolver.Resolver(configure=True)
        except dns.resolver.NoResolverConfiguration as exc:
            raise LocateError(
                domain, LookupFailure.NO_RESOLVER, f"no nameserver configured: {exc}"
            ) from exc
    resolver.timeout = config.timeout / 2  # per try: a lost datagram gets a second chance
    resolver.lifetime = config.timeout
    resolver.use_edns(0, 0, 1232)  # RFC 6891; 1232: the DNS flag day 2020 size
    return resolver


async def _addresses(
    querier: _Querier, config: ResolverConfig, host: str, port: int
) -> tuple[list[str], list[tuple[str, LookupFailure]]]:
    """The addresses of ``host`` for ``port``: the pin, else AAAA and A (asked together)."""
    pinned = config.pinned(host, port)
    if pinned:
        return list(pinned), []
    aaaa, a = await asyncio.gather(querier.get(host, "AAAA"), querier.get(host, "A"))
    failures = [
        (f"{rdtype} {host}", outcome.failure)
        for rdtype, outcome in (("AAAA", aaaa), ("A", a))
        if outcome.failure is not None
    ]
    return order_addresses(_ips(aaaa), _ips(a), prefer_ipv6=config.prefer_ipv6), failures


async def _resolve_all(
    querier: _Querier,
    config: ResolverConfig,
    plan: Plan,
    wanted: Sequence[tuple[AddressQuery, FoundBy]],
) -> list[Target]:
    """Every target of ``wanted`` resolved (for §4.3 failover), in order, without duplicates;
    ``LocateError`` when not one address was found."""
    results = await asyncio.gather(
        *(_addresses(querier, config, query.host, query.port) for query, _by in wanted)
    )
    targets: dict[tuple[str, str, int], Target] = {}
    failures: list[tuple[str, LookupFailure]] = []
    for (query, found_by), (addresses, failed) in zip(wanted, results, strict=True):
        failures += failed
        by = FoundBy.PIN if config.pinned(query.host, query.port) else found_by
        for ip in addresses:
            key = (query.transport, ip, query.port)
            target = Target(query.transport, ip, query.port, plan.server_name, query.host, by)
            targets.setdefault(key, target)
    if not targets:
        failure = _worst(failures) if failures else LookupFailure.NO_ANSWER
        detail = "; ".join(f"{q}: {kind}" for q, kind in failures) or "no address"
        raise LocateError(plan.domain, failure, detail, query=failures[0][0] if failures else None)
    return list(targets.values())


def _fail(plan: Plan, query: str, outcome: _Outcome) -> LocateError:
    assert outcome.failure is not None
    return LocateError(
        plan.domain,
        outcome.failure,
        f"{query}: {outcome.failure} ({outcome.detail})",
        query=query,
    )


async def locate(
    uri: SipURI, *, resolver_config: ResolverConfig, rng: RandomSource | None = None
) -> list[Target]:
    """RFC 3263 §4: the targets for ``uri``, best first, every one resolved (§4.3 failover).

    ``rng`` drives the RFC 2782 weighted selection (``random.Random(seed)`` in tests). Raises
    :class:`LocateError` when there is no target; partial failures (one SRV target without an
    address, a timed-out AAAA beside an A) only leave their targets out.
    """
    plan = plan_lookup(uri, resolver_config)
    if plan.targets:
        return list(plan.targets)
    rng = rng or random.Random()  # noqa: S311  # load balancing, not cryptography
    querier = _Querier(_make_resolver(resolver_config, plan.domain))
    try:
        if plan.address is not None:
            return await _resolve_all(
                querier, resolver_config, plan, [(plan.address, FoundBy.ADDRESS)]
            )
        return await _locate_domain(querier, resolver_config, plan, rng)
    except LocateError as exc:
        hint = _unused_pin_hint(uri, resolver_config)
        if hint is None:
            raise
        raise LocateError(
            exc.domain, exc.failure, f"{exc.detail}; {hint}", query=exc.query
        ) from exc
    finally:
        await querier.aclose()


def _unused_pin_hint(uri: SipURI, config: ResolverConfig) -> str | None:
    """Say so when a pin names this host at another port: curl-style pins match host *and*
    port, so a URI without that port never uses them, which surprises people."""
    host = uri.host.strip("[]").rstrip(".").lower()
    ports = sorted({p.port for p in config.pins if p.host == host and p.port != uri.port})
    if not ports:
        return None
    where = ", ".join(f"{host}:{port}" for port in ports)
    return (
        f"a resolve pin exists for {where} but pins match the port too: "
        f"name the port in the URI (e.g. {uri.scheme}:{host}:{ports[0]}) to use it"
    )


async def _locate_domain(
    querier: _Querier, config: ResolverConfig, plan: Plan, rng: RandomSource
) -> list[Target]:
    """NAPTR → SRV → A/AAAA with the §4.1/§4.2 fallbacks."""
    srv_queries: list[SrvQuery] = list(plan.srv)
    for query in srv_queries:  # prefetch: what a missing NAPTR leads to, and usually what it says
        querier.start(query.name, "SRV")
    if plan.naptr:
        naptr = await querier.get(plan.domain, "NAPTR")
        if naptr.failure not in (None, LookupFailure.NO_ANSWER):
            raise _fail(plan, f"NAPTR {plan.domain}", naptr)
        selected = select_naptr(_naptrs(naptr), plan.allowed)
        logger.debug("NAPTR %s → %s", plan.domain, [q.name for q in selected])
        srv_queries = selected or srv_queries

    outcomes = await asyncio.gather(*(querier.get(q.name, "SRV") for q in srv_queries))
    wanted: list[tuple[AddressQuery, FoundBy]] = []
    any_srv = False
    errors: list[tuple[str, _Outcome]] = []
    for query, outcome in zip(srv_queries, outcomes, strict=True):
        if outcome.failure in (LookupFailure.TIMEOUT, LookupFailure.SERVER_FAILURE):
            errors.append((f"SRV {query.name}", outcome))
        records = _srvs(outcome)
        any_srv = any_srv or bool(records)
        for record in order_srv(records, rng):
            address = AddressQuery(query.transport, record.target, record.port)
            wanted.append((address, query.found_by))
    if wanted:
        return await _resolve_all(querier, config, plan, wanted)
    if any_srv:  # only "." targets (RFC 2782): the domain says there is no such service
        raise LocateError(
            plan.domain,
            LookupFailure.UNAVAILABLE,
            "the SRV records say there is no SIP service (target '.')",
            query=f"SRV {srv_queries[0].name}",
        )
    if errors:  # an SRV might exist: do not guess a port from the A record
        raise _fail(plan, *errors[0])
    assert plan.fallback is not None
    return await _resolve_all(querier, config, plan, [(plan.fallback, FoundBy.ADDRESS)])
