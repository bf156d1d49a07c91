"""RFC 3263 server location against the in-process DNS server (127.0.0.1 only)."""

from __future__ import annotations

import collections
import random
import time
from collections.abc import AsyncIterator

import pytest

from softphone.sip.uri import SipURI, parse_uri
from softphone.transport.locate import (
    AddressPin,
    AddressQuery,
    FoundBy,
    LocateError,
    LookupFailure,
    Nameserver,
    NaptrRecord,
    ResolverConfig,
    ResolverConfigError,
    SrvQuery,
    SrvRecord,
    Target,
    _make_resolver,
    locate,
    order_addresses,
    order_srv,
    parse_nameserver,
    parse_pin,
    plan_lookup,
    select_naptr,
)
from tests.transport.dnsserver import DnsServer

ZONE = {
    # NAPTR for all three transports, plus an SCTP one we do not support (lowest order!).
    "naptr.test": {
        "NAPTR": [
            '5 50 "s" "SIP+D2S" "" _sip._sctp.naptr.test',
            '10 50 "s" "SIPS+D2T" "" _sips._tcp.naptr.test',
            '20 50 "s" "SIP+D2T" "" _sip._tcp.naptr.test',
            '30 50 "s" "SIP+D2U" "" _sip._udp.naptr.test',
        ],
        "A": ["127.0.0.13"],
    },
    "_sip._sctp.naptr.test": {"SRV": ["0 0 5060 sctp.naptr.test"]},
    "_sips._tcp.naptr.test": {"SRV": ["0 0 5061 tls.naptr.test"]},
    "_sip._tcp.naptr.test": {"SRV": ["0 0 5060 tcp.naptr.test"]},
    "_sip._udp.naptr.test": {"SRV": ["0 0 5060 udp.naptr.test"]},
    "sctp.naptr.test": {"A": ["127.0.0.9"]},
    "tls.naptr.test": {"A": ["127.0.0.10"]},
    "tcp.naptr.test": {"A": ["127.0.0.11"]},
    "udp.naptr.test": {"A": ["127.0.0.12"]},
    # NAPTR order wins over our preference; replacement names need not be the usual ones.
    "custom.test": {
        "NAPTR": [
            '20 10 "S" "SIPS+D2T" "" tls-srv.custom.test',
            '10 10 "S" "SIP+D2U" "" udp-srv.custom.test',
        ]
    },
    "udp-srv.custom.test": {"SRV": ["0 0 5070 u.custom.test"]},
    "tls-srv.custom.test": {"SRV": ["0 0 5071 t.custom.test"]},
    "u.custom.test": {"A": ["127.0.1.1"]},
    "t.custom.test": {"A": ["127.0.1.2"]},
    # NAPTR offering only UDP: a sips: URI must not take it.
    "udponly.test": {
        "NAPTR": ['10 10 "s" "SIP+D2U" "" _sip._udp.udponly.test'],
        "A": ["127.0.0.20"],
    },
    "_sip._udp.udponly.test": {"SRV": ["0 0 5060 u.udponly.test"]},
    "u.udponly.test": {"A": ["127.0.0.21"]},
    # SRV without NAPTR.
    "_sip._udp.srvonly.test": {"SRV": ["0 0 5060 a.srvonly.test"]},
    "_sips._tcp.srvonly.test": {"SRV": ["0 0 5061 b.srvonly.test"]},
    "a.srvonly.test": {"A": ["127.0.0.31"]},
    "b.srvonly.test": {"A": ["127.0.0.32"]},
    "srvonly.test": {"TXT": ['"no NAPTR here"']},
    # Only an address.
    "aonly.test": {"A": ["127.0.0.30"]},
    "alias.test": {"CNAME": ["aonly.test"]},
    "v6.test": {"A": ["127.0.0.40"], "AAAA": ["::1"]},
    "v6only.test": {"AAAA": ["::1"]},
    "empty.test": {"TXT": ['"nothing for SIP"']},
    # Priorities and weights (RFC 2782).
    "_sips._tcp.weights.test": {
        "SRV": [
            "10 0 5061 backup.weights.test",
            "1 60 5061 w60.weights.test",
            "1 30 5061 w30.weights.test",
            "1 10 5061 w10.weights.test",
        ]
    },
    "backup.weights.test": {"A": ["127.0.2.99"]},
    "w60.weights.test": {"A": ["127.0.2.60"]},
    "w30.weights.test": {"A": ["127.0.2.30"]},
    "w10.weights.test": {"A": ["127.0.2.10"]},
    # "." target: decidedly no service, even though an A record exists.
    "nosip.test": {"A": ["127.0.0.70"]},
    "_sips._tcp.nosip.test": {"SRV": ["0 0 0 ."]},
    # One SRV target has no address: the other is still used.
    "_sips._tcp.partial.test": {
        "SRV": ["0 0 5061 gone.partial.test", "1 0 5062 here.partial.test"]
    },
    "here.partial.test": {"A": ["127.0.0.80"]},
    # SRV target reached through a pin only.
    "_sips._tcp.srvpin.test": {"SRV": ["0 0 5061 hidden.srvpin.test"]},
    # A big answer: truncated over UDP, retried over TCP.
    "big.test": {"A": [f"127.0.3.{i}" for i in range(1, 121)]},
}


@pytest.fixture
async def dns_server() -> AsyncIterator[DnsServer]:
    async with DnsServer(ZONE) as server:
        yield server


def config_for(server: DnsServer, **options: object) -> ResolverConfig:
    return ResolverConfig.from_account(nameserver=server.address, **options)  # type: ignore[arg-type]


def sip(text: str) -> SipURI:
    uri = parse_uri(text)
    assert isinstance(uri, SipURI)
    return uri


def triples(targets: list[Target]) -> list[tuple[str, str, int]]:
    return [(t.transport, t.host_ip, t.port) for t in targets]


# -- the RFC 3263 table --------------------------------------------------------------------

SCENARIOS = [
    # NAPTR present: every supported transport in NAPTR order; SCTP (order 5) dropped.
    (
        "sip:naptr.test",
        [("TLS", "127.0.0.10", 5061), ("TCP", "127.0.0.11", 5060), ("UDP", "127.0.0.12", 5060)],
    ),
    # sips: only SIPS+D2T survives the NAPTR filter.
    ("sips:naptr.test", [("TLS", "127.0.0.10", 5061)]),
    # sips;transport=tcp is TLS over TCP: _sips._tcp, never _sip._tcp.
    ("sips:naptr.test;transport=tcp", [("TLS", "127.0.0.10", 5061)]),
    # transport parameter: that transport's SRV only.
    ("sip:naptr.test;transport=udp", [("UDP", "127.0.0.12", 5060)]),
    ("sip:naptr.test;transport=TCP", [("TCP", "127.0.0.11", 5060)]),
    ("sip:naptr.test;transport=tls", [("TLS", "127.0.0.10", 5061)]),
    # NAPTR order beats our own preference; replacement names are followed as given.
    ("sip:custom.test", [("UDP", "127.0.1.1", 5070), ("TLS", "127.0.1.2", 5071)]),
    # sips with a UDP-only NAPTR: no downgrade; fall back to _sips._tcp, then A on 5061.
    ("sips:udponly.test", [("TLS", "127.0.0.20", 5061)]),
    ("sip:udponly.test", [("UDP", "127.0.0.21", 5060)]),
    # SRV only: each supported transport, TLS first (our order), then UDP.
    ("sip:srvonly.test", [("TLS", "127.0.0.32", 5061), ("UDP", "127.0.0.31", 5060)]),
    ("sips:srvonly.test", [("TLS", "127.0.0.32", 5061)]),
    # A only: UDP 5060 for sip, TLS 5061 for sips, the transport parameter's default port.
    ("sip:aonly.test", [("UDP", "127.0.0.30", 5060)]),
    ("sips:aonly.test", [("TLS", "127.0.0.30", 5061)]),
    ("sip:aonly.test;transport=tcp", [("TCP", "127.0.0.30", 5060)]),
    ("sips:aonly.test;transport=tcp", [("TLS", "127.0.0.30", 5061)]),
    ("sip:alias.test", [("UDP", "127.0.0.30", 5060)]),
    # Explicit port: A/AAAA of the host itself, no NAPTR/SRV.
    ("sip:naptr.test:5070", [("UDP", "127.0.0.13", 5070)]),
    ("sips:aonly.test:5071", [("TLS", "127.0.0.30", 5071)]),
    ("sip:aonly.test:5072;transport=tcp", [("TCP", "127.0.0.30", 5072)]),
    # Numeric hosts: no DNS at all.
    ("sip:127.0.0.1", [("UDP", "127.0.0.1", 5060)]),
    ("sips:127.0.0.1", [("TLS", "127.0.0.1", 5061)]),
    ("sip:127.0.0.1:5080;transport=tcp", [("TCP", "127.0.0.1", 5080)]),
    ("sips:[::1]", [("TLS", "::1", 5061)]),
    ("sip:[::1]:5090", [("UDP", "::1", 5090)]),
    # maddr is the TARGET (RFC 3263 §4).
    ("sip:alice@naptr.test;maddr=127.0.0.60", [("UDP", "127.0.0.60", 5060)]),
    # IPv6: AAAA before A.
    ("sips:v6.test", [("TLS", "::1", 5061), ("TLS", "127.0.0.40", 5061)]),
    ("sip:v6only.test", [("UDP", "::1", 5060)]),
    # Partial: the SRV target without an address is skipped.
    ("sips:partial.test", [("TLS", "127.0.0.80", 5062)]),
]


@pytest.mark.parametrize(("uri", "expected"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
async def test_rfc3263_scenarios(
    dns_server: DnsServer, uri: str, expected: list[tuple[str, str, int]]
) -> None:
    targets = await locate(sip(uri), resolver_config=config_for(dns_server), rng=random.Random(1))
    assert triples(targets) == expected


async def test_truncated_answer_is_fetched_over_tcp(dns_server: DnsServer) -> None:
    targets = await locate(sip("sip:big.test:5060"), resolver_config=config_for(dns_server))
    assert sorted(triples(targets)) == sorted(("UDP", f"127.0.3.{i}", 5060) for i in range(1, 121))
    assert dns_server.tcp_queries >= 1


async def test_numeric_host_asks_no_dns(dns_server: DnsServer) -> None:
    targets = await locate(sip("sips:[::1]:5071"), resolver_config=config_for(dns_server))
    assert targets == [Target("TLS", "::1", 5071, "::1", "::1", FoundBy.NUMERIC)]
    assert dns_server.queries == []


async def test_explicit_port_asks_only_addresses(dns_server: DnsServer) -> None:
    await locate(sip("sip:naptr.test:5070"), resolver_config=config_for(dns_server))
    assert sorted(dns_server.queries) == [("naptr.test", "A"), ("naptr.test", "AAAA")]


async def test_transport_param_skips_naptr(dns_server: DnsServer) -> None:
    await locate(sip("sips:naptr.test;transport=tcp"), resolver_config=config_for(dns_server))
    assert not dns_server.queried("naptr.test", "NAPTR")
    assert not dns_server.queried("_sip._tcp.naptr.test", "SRV")
    assert dns_server.queried("_sips._tcp.naptr.test", "SRV")


async def test_sips_never_asks_for_plain_sip_records(dns_server: DnsServer) -> None:
    targets = await locate(sip("sips:udponly.test"), resolver_config=config_for(dns_server))
    assert {t.transport for t in targets} == {"TLS"}
    names = {name for name, _type in dns_server.queries}
    assert "_sip._udp.udponly.test" not in names
    assert "_sip._tcp.udponly.test" not in names


async def test_server_name_is_the_queried_domain_not_the_srv_target(
    dns_server: DnsServer,
) -> None:
    targets = await locate(sip("sips:bob@NAPTR.Test"), resolver_config=config_for(dns_server))
    assert targets == [
        Target("TLS", "127.0.0.10", 5061, "naptr.test", "tls.naptr.test", FoundBy.NAPTR)
    ]
    srv_only = await locate(sip("sips:srvonly.test"), resolver_config=config_for(dns_server))
    assert [(t.server_name, t.target_name, t.found_by) for t in srv_only] == [
        ("srvonly.test", "b.srvonly.test", FoundBy.SRV)
    ]
    alias = await locate(sip("sip:alias.test"), resolver_config=config_for(dns_server))
    assert alias[0].server_name == "alias.test"


async def test_maddr_keeps_the_uri_host_as_server_name(dns_server: DnsServer) -> None:
    targets = await locate(
        sip("sip:alice@naptr.test;maddr=127.0.0.60"), resolver_config=config_for(dns_server)
    )
    assert targets[0].server_name == "naptr.test"


async def test_each_query_is_sent_once(dns_server: DnsServer) -> None:
    await locate(sip("sip:naptr.test"), resolver_config=config_for(dns_server))
    counts = collections.Counter(dns_server.queries)
    assert counts[("_sips._tcp.naptr.test", "SRV")] == 1
    assert max(counts.values()) == 1


async def test_supported_transports_filter_naptr(dns_server: DnsServer) -> None:
    config = config_for(dns_server, transports=("TLS", "TCP"))
    targets = await locate(sip("sip:naptr.test"), resolver_config=config)
    assert [t.transport for t in targets] == ["TLS", "TCP"]
    # Without UDP, the §4.1 default transport of a sip: URI becomes TCP.
    assert triples(await locate(sip("sip:aonly.test"), resolver_config=config)) == [
        ("TCP", "127.0.0.30", 5060)
    ]


async def test_ipv4_first_when_asked(dns_server: DnsServer) -> None:
    config = config_for(dns_server, prefer_ipv6=False)
    targets = await locate(sip("sips:v6.test"), resolver_config=config)
    assert [t.host_ip for t in targets] == ["127.0.0.40", "::1"]


# -- SRV ordering (RFC 2782) -----------------------------------------------------------------


async def test_srv_priority_and_seeded_weights(dns_server: DnsServer) -> None:
    config = config_for(dns_server)
    first = await locate(sip("sips:weights.test"), resolver_config=config, rng=random.Random(7))
    again = await locate(sip("sips:weights.test"), resolver_config=config, rng=random.Random(7))
    assert triples(first) == triples(again)  # the RNG is the only source of variation
    assert first[-1].host_ip == "127.0.2.99"  # priority 10 after all of priority 1
    assert sorted(t.host_ip for t in first[:3]) == ["127.0.2.10", "127.0.2.30", "127.0.2.60"]
    seen = set()
    for seed in range(40):
        targets = await locate(
            sip("sips:weights.test"), resolver_config=config, rng=random.Random(seed)
        )
        seen.add(targets[0].host_ip)
        assert targets[-1].host_ip == "127.0.2.99"
    assert seen == {"127.0.2.10", "127.0.2.30", "127.0.2.60"}


class ScriptedRandom:
    """randint returns the scripted values and records the bounds it was asked for."""

    def __init__(self, *values: int) -> None:
        self.values = list(values)
        self.calls: list[tuple[int, int]] = []

    def randint(self, a: int, b: int) -> int:
        self.calls.append((a, b))
        return self.values.pop(0)


def test_order_srv_running_sums() -> None:
    records = [
        SrvRecord(0, 20, 5061, "b"),
        SrvRecord(0, 0, 5061, "zero"),
        SrvRecord(0, 10, 5061, "a"),
        SrvRecord(1, 5, 5061, "later"),
    ]
    # Weight 0 first, then by name: zero(0) a(10) b(30 running). 11 → b; then zero(0) a(10):
    # 0 → zero; then a alone.
    rng = ScriptedRandom(11, 0, 0, 0)
    assert [r.target for r in order_srv(records, rng)] == ["b", "zero", "a", "later"]
    assert rng.calls == [(0, 30), (0, 10), (0, 10), (0, 5)]
    # 10 reaches a's running sum exactly: a; then zero(0) b(20): 1 → b.
    assert [r.target for r in order_srv(records, ScriptedRandom(10, 1, 0, 0))] == [
        "a",
        "b",
        "zero",
        "later",
    ]
    # The input order does not matter (servers shuffle their answers).
    rng = ScriptedRandom(11, 0, 0, 0)
    assert [r.target for r in order_srv(reversed(records), rng)] == ["b", "zero", "a", "later"]


def test_order_srv_survives_an_rng_out_of_range() -> None:
    records = [SrvRecord(0, 1, 1, "a"), SrvRecord(0, 1, 1, "b")]
    assert [r.target for r in order_srv(records, ScriptedRandom(999, 999))] == ["b", "a"]


def test_order_srv_weight_distribution() -> None:
    records = [SrvRecord(0, 60, 1, "w60"), SrvRecord(0, 30, 1, "w30"), SrvRecord(0, 10, 1, "w10")]
    rng = random.Random(2024)
    firsts = collections.Counter(order_srv(records, rng)[0].target for _ in range(5000))
    assert 0.55 < firsts["w60"] / 5000 < 0.65
    assert 0.25 < firsts["w30"] / 5000 < 0.35
    assert 0.07 < firsts["w10"] / 5000 < 0.13


def test_order_srv_drops_dot_targets_and_sorts_priorities() -> None:
    records = [SrvRecord(5, 0, 1, "c"), SrvRecord(0, 0, 0, "."), SrvRecord(1, 0, 1, "b")]
    assert [r.target for r in order_srv(records, random.Random(0))] == ["b", "c"]


# -- NAPTR selection and the plan (pure) -----------------------------------------------------


def naptr(order: int, pref: int, service: str, replacement: str, **kw: str) -> NaptrRecord:
    return NaptrRecord(
        order, pref, kw.get("flags", "s"), service, kw.get("regexp", ""), replacement
    )


def test_select_naptr_filters_and_sorts() -> None:
    records = [
        naptr(20, 10, "SIP+D2U", "_sip._udp.x"),
        naptr(10, 90, "SIP+D2T", "_sip._tcp.x"),
        naptr(10, 10, "SIPS+D2T", "_sips._tcp.x"),
        naptr(1, 1, "SIP+D2S", "_sip._sctp.x"),  # SCTP: not supported
        naptr(1, 1, "SIPS+D2T", "a.x", flags="a"),  # not a terminal SRV step
        naptr(1, 1, "SIPS+D2T", ".", regexp="!^.*$!sip:x!"),  # regexp rewrite
        naptr(2, 1, "E2U+sip", "_sip._udp.x"),  # ENUM, not ours
        naptr(30, 1, "sips+d2t", "_sips._tcp.x"),  # duplicate (case-insensitive service)
    ]
    assert select_naptr(records, ("TLS", "TCP", "UDP")) == [
        SrvQuery("TLS", "_sips._tcp.x", FoundBy.NAPTR),
        SrvQuery("TCP", "_sip._tcp.x", FoundBy.NAPTR),
        SrvQuery("UDP", "_sip._udp.x", FoundBy.NAPTR),
    ]
    assert select_naptr(records, ("TLS",)) == [SrvQuery("TLS", "_sips._tcp.x", FoundBy.NAPTR)]
    assert select_naptr(records[:2], ("TLS",)) == []


def test_plan_for_a_domain() -> None:
    plan = plan_lookup(sip("sips:Example.TEST."), ResolverConfig())
    assert plan.naptr and plan.domain == plan.server_name == "example.test"
    assert plan.allowed == ("TLS",)
    assert plan.srv == (SrvQuery("TLS", "_sips._tcp.example.test"),)
    assert plan.fallback == AddressQuery("TLS", "example.test", 5061)
    plan = plan_lookup(sip("sip:example.test"), ResolverConfig())
    assert [q.name for q in plan.srv] == [
        "_sips._tcp.example.test",
        "_sip._tcp.example.test",
        "_sip._udp.example.test",
    ]
    assert plan.fallback == AddressQuery("UDP", "example.test", 5060)


@pytest.mark.parametrize(
    ("uri", "transports", "message"),
    [
        ("sips:example.test;transport=udp", ("TLS", "TCP", "UDP"), "transport=udp"),
        ("sip:example.test;transport=sctp", ("TLS", "TCP", "UDP"), "sctp"),
        ("sip:example.test;transport=ws", ("TLS", "TCP", "UDP"), "ws"),
        ("sip:example.test;transport=udp", ("TLS", "TCP"), "UDP is not enabled"),
        ("sips:example.test", ("TCP", "UDP"), "needs TLS"),
        ("sip:example.test;maddr=bad_host", ("TLS", "TCP", "UDP"), "maddr: bad host"),
    ],
)
def test_plan_refuses_unusable_transports(
    uri: str, transports: tuple[str, ...], message: str
) -> None:
    with pytest.raises(LocateError, match=message) as info:
        plan_lookup(sip(uri), ResolverConfig(transports=transports))  # type: ignore[arg-type]
    assert info.value.failure is LookupFailure.UNUSABLE_URI
    assert info.value.domain == "example.test"


def test_order_addresses() -> None:
    assert order_addresses(["::1"], ["127.0.0.1", "127.0.0.1"], prefer_ipv6=True) == [
        "::1",
        "127.0.0.1",
    ]
    assert order_addresses(["::1"], ["127.0.0.1"], prefer_ipv6=False) == ["127.0.0.1", "::1"]


# -- errors ----------------------------------------------------------------------------------


async def test_nxdomain(dns_server: DnsServer) -> None:
    with pytest.raises(LocateError) as info:
        await locate(sip("sip:alice@nosuch.test"), resolver_config=config_for(dns_server))
    assert info.value.failure is LookupFailure.NXDOMAIN
    assert info.value.domain == "nosuch.test"
    assert info.value.query == "NAPTR nosuch.test"
    assert "nosuch.test" in str(info.value) and "NXDOMAIN" in str(info.value)


async def test_a_pin_for_another_port_is_named_in_the_error(dns_server: DnsServer) -> None:
    """curl-style pins match the port too; a URI without it goes to DNS, and the error says
    which pin was passed over and how to use it (found by running the agent by hand)."""
    config = config_for(dns_server, resolve=["nosuch.test:15061:127.0.0.1"])
    with pytest.raises(LocateError) as info:
        await locate(sip("sips:alice@nosuch.test"), resolver_config=config)
    assert info.value.failure is LookupFailure.NXDOMAIN
    assert "nosuch.test:15061" in str(info.value)
    assert "sips:nosuch.test:15061" in str(info.value)
    # With the port named, the pin answers without DNS.
    [target] = await locate(sip("sips:nosuch.test:15061"), resolver_config=config)
    assert (target.host_ip, target.port, target.transport) == ("127.0.0.1", 15061, "TLS")


async def test_nxdomain_with_explicit_port(dns_server: DnsServer) -> None:
    with pytest.raises(LocateError) as info:
        await locate(sip("sip:nosuch.test:5060"), resolver_config=config_for(dns_server))
    assert info.value.failure is LookupFailure.NXDOMAIN


async def test_no_answer(dns_server: DnsServer) -> None:
    with pytest.raises(LocateError) as info:
        await locate(sip("sip:empty.test"), resolver_config=config_for(dns_server))
    assert info.value.failure is LookupFailure.NO_ANSWER
    assert "AAAA empty.test" in str(info.value) and "A empty.test" in str(info.value)


async def test_timeout(dns_server: DnsServer) -> None:
    dns_server.fault("naptr.test", "NAPTR", "drop")
    config = config_for(dns_server, timeout=0.3)
    started = time.perf_counter()
    with pytest.raises(LocateError) as info:
        await locate(sip("sip:naptr.test"), resolver_config=config)
    assert time.perf_counter() - started < 2.0
    assert info.value.failure is LookupFailure.TIMEOUT
    assert info.value.query == "NAPTR naptr.test"


async def test_server_failure(dns_server: DnsServer) -> None:
    dns_server.fault("naptr.test", None, "servfail")
    with pytest.raises(LocateError) as info:
        await locate(sip("sip:naptr.test"), resolver_config=config_for(dns_server))
    assert info.value.failure is LookupFailure.SERVER_FAILURE


async def test_srv_timeout_is_not_papered_over_with_an_a_record(dns_server: DnsServer) -> None:
    dns_server.fault("_sips._tcp.aonly.test", "SRV", "drop")
    config = config_for(dns_server, timeout=0.3)
    with pytest.raises(LocateError) as info:
        await locate(sip("sips:aonly.test"), resolver_config=config)
    assert info.value.failure is LookupFailure.TIMEOUT
    assert info.value.query == "SRV _sips._tcp.aonly.test"


async def test_a_timeout_beside_an_answer_keeps_the_answer(dns_server: DnsServer) -> None:
    dns_server.fault("v6.test", "AAAA", "drop")
    config = config_for(dns_server, timeout=0.3)
    targets = await locate(sip("sips:v6.test"), resolver_config=config)
    assert triples(targets) == [("TLS", "127.0.0.40", 5061)]


async def test_srv_dot_target_means_unavailable(dns_server: DnsServer) -> None:
    with pytest.raises(LocateError) as info:
        await locate(sip("sips:nosip.test"), resolver_config=config_for(dns_server))
    assert info.value.failure is LookupFailure.UNAVAILABLE
    assert not dns_server.queried("nosip.test", "A")


async def test_no_nameserver_answering() -> None:
    server = DnsServer({})
    await server.start()
    address = server.address
    await server.close()  # the port is now closed: ICMP refused or silence
    config = ResolverConfig.from_account(nameserver=address, timeout=0.3)
    with pytest.raises(LocateError) as info:
        await locate(sip("sips:example.test"), resolver_config=config)
    assert info.value.failure in (LookupFailure.TIMEOUT, LookupFailure.SERVER_FAILURE)


# -- pins ------------------------------------------------------------------------------------


async def test_pins_bypass_dns(dns_server: DnsServer) -> None:
    config = config_for(dns_server, resolve=["Pinned.test:5061:127.0.0.50,[::1]"])
    targets = await locate(sip("sips:alice@pinned.test"), resolver_config=config)
    assert targets == [
        Target("TLS", "127.0.0.50", 5061, "pinned.test", "pinned.test", FoundBy.PIN),
        Target("TLS", "::1", 5061, "pinned.test", "pinned.test", FoundBy.PIN),
    ]
    assert dns_server.queries == []


async def test_pin_on_port_5060_gives_tcp_and_udp(dns_server: DnsServer) -> None:
    config = config_for(dns_server, resolve=["pinned.test:5060:127.0.0.50"])
    targets = await locate(sip("sip:pinned.test"), resolver_config=config)
    assert triples(targets) == [("TCP", "127.0.0.50", 5060), ("UDP", "127.0.0.50", 5060)]
    # sips needs 5061: the 5060 pin does not apply, and DNS says there is no such domain.
    with pytest.raises(LocateError, match="NXDOMAIN"):
        await locate(sip("sips:pinned.test"), resolver_config=config)


async def test_pin_with_explicit_port(dns_server: DnsServer) -> None:
    config = config_for(dns_server, resolve=["pinned.test:5071:127.0.0.51"])
    targets = await locate(sip("sips:pinned.test:5071"), resolver_config=config)
    assert triples(targets) == [("TLS", "127.0.0.51", 5071)]
    assert targets[0].found_by is FoundBy.PIN
    assert dns_server.queries == []


async def test_pins_apply_to_srv_targets(dns_server: DnsServer) -> None:
    config = config_for(dns_server, resolve=["hidden.srvpin.test:5061:127.0.0.52"])
    targets = await locate(sip("sips:srvpin.test"), resolver_config=config)
    assert targets == [
        Target("TLS", "127.0.0.52", 5061, "srvpin.test", "hidden.srvpin.test", FoundBy.PIN)
    ]
    assert not dns_server.queried("hidden.srvpin.test", "A")
    assert not dns_server.queried("hidden.srvpin.test", "AAAA")


# -- account options -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5353", Nameserver("127.0.0.1", 5353)),
        ("192.0.2.53", Nameserver("192.0.2.53", 53)),
        ("[::1]:5353", Nameserver("::1", 5353)),
        ("[::1]", Nameserver("::1", 53)),
        ("2001:db8::53", Nameserver("2001:db8::53", 53)),
        (" 127.0.0.1:53 ", Nameserver("127.0.0.1", 53)),
    ],
)
def test_parse_nameserver(text: str, expected: Nameserver) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ns.example.test:53", "not an IP address"),
        ("127.0.0.1:0", "bad port"),
        ("127.0.0.1:65536", "bad port"),
        ("127.0.0.1:dns", "bad port"),
        ("[::1:53", "missing"),
        ("[::1]x53", "junk"),
        ("", "not an IP address"),
    ],
)
def test_parse_nameserver_errors(text: str, message: str) -> None:
    with pytest.raises(ResolverConfigError, match=message):
        parse_nameserver(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.test:5061:127.0.0.1", AddressPin("example.test", 5061, ("127.0.0.1",))),
        (
            "Example.Test.:5061:[::1],127.0.0.2",
            AddressPin("example.test", 5061, ("::1", "127.0.0.2")),
        ),
        ("example.test:5060:::1", AddressPin("example.test", 5060, ("::1",))),
    ],
)
def test_parse_pin(text: str, expected: AddressPin) -> None:
    assert parse_pin(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("example.test:5061", "host:port:address"),
        ("example.test::127.0.0.1", "host:port:address"),
        ("example.test:99999:127.0.0.1", "bad port"),
        ("example.test:5061:localhost", "not an IP address"),
        ("example.test:5061:127.0.0.1,", "not an IP address"),
        ("+example.test:5061:127.0.0.1", "not supported"),
        ("*:5061:127.0.0.1", "not supported"),
        ("bad_host:5061:127.0.0.1", "bad host"),
        ("127.0.0.1:5061:127.0.0.2", "pin a name"),
    ],
)
def test_parse_pin_errors(text: str, message: str) -> None:
    with pytest.raises(ResolverConfigError, match=message) as info:
        parse_pin(text)
    assert text.strip() in str(info.value)


def test_config_from_account() -> None:
    config = ResolverConfig.from_account(
        nameserver="127.0.0.1:5353", resolve=["example.test:5061:127.0.0.1"]
    )
    assert config.nameservers == (Nameserver("127.0.0.1", 5353),)
    assert config.pinned("EXAMPLE.test.", 5061) == ("127.0.0.1",)
    assert config.pinned("example.test", 5060) == ()
    with pytest.raises(ResolverConfigError, match="transports"):
        ResolverConfig(transports=("SCTP",))  # type: ignore[arg-type]
    with pytest.raises(ResolverConfigError, match="timeout"):
        ResolverConfig(timeout=0)


def test_resolver_uses_the_configured_nameserver_or_the_system() -> None:
    resolver = _make_resolver(ResolverConfig.from_account(nameserver="127.0.0.1:5353"), "x")
    assert [(ns.address, ns.port) for ns in resolver.nameservers] == [("127.0.0.1", 5353)]  # type: ignore[union-attr]
    assert resolver.lifetime == 2.0
    system = _make_resolver(ResolverConfig(), "x")  # /etc/resolv.conf, never contacted here
    assert system.nameservers


# -- round trips and time --------------------------------------------------------------------


async def test_full_resolution_takes_two_round_trips() -> None:
    """NAPTR and the usual SRV names go out together, then AAAA/A of the SRV targets."""
    delay = 0.1  # large beside the ~20 ms of CPU a resolution costs here
    async with DnsServer(ZONE, delay=delay) as server:
        config = config_for(server)
        started = time.perf_counter()
        targets = await locate(sip("sip:naptr.test"), resolver_config=config)
        elapsed = time.perf_counter() - started
    assert len(targets) == 3
    assert 2 * delay <= elapsed < 2.9 * delay, elapsed


async def test_full_resolution_time(dns_server: DnsServer) -> None:
    config = config_for(dns_server)
    await locate(sip("sips:naptr.test"), resolver_config=config)  # warm-up (imports, sockets)
    runs = 20
    started = time.perf_counter()
    for _ in range(runs):
        await locate(sip("sip:naptr.test"), resolver_config=config)
    per_run = (time.perf_counter() - started) / runs
    print(f"full NAPTR→SRV→A/AAAA resolution: {per_run * 1000:.1f} ms")
    assert per_run < 0.25
