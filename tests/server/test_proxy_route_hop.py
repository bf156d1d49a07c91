"""Following a Route to a proxy that ``routes`` does not name (RFC 3261 §16.12, §16.6 step 7;
RFC 5922 §7.3), and a Record-Route carrying our address (``record_route_host``).

Three real proxies on loopback TLS::

    alice ── atlanta.test ──(Route: biloxi)── biloxi.test ──── chicago.test ── carol
               routes biloxi        routes chicago, no Record-Route      record-routes
               record-routes                                         sip:127.0.0.1:PORT

The dialog's route set is atlanta's and chicago's Record-Route, both by address: atlanta has no
``routes`` entry and no connection for 127.0.0.1:chicago_port, so alice's ACK and BYE make it
open one and check chicago's certificate for the IP address (an iPAddress subjectAltName);
carol's BYE does the same from chicago to atlanta. With a certificate that does not carry the
address, the request is answered 502 with the reason and never sent over an unverified hop.
Plus the sans-I/O rules (ProxyCore) and the reuse of an open connection to the Route's address.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from softphone.server.cli import build_parser, config_from_args
from softphone.server.config import ConfigError, ListenAddress, RegistrarConfig
from softphone.server.location import LocationService
from softphone.server.proxy import ProxyCore, Reply, Source, ToDomain, ToFlow
from softphone.server.registrar import Registrar, running_registrar
from softphone.sip.dialog import new_tag
from softphone.sip.digest import DigestClient
from softphone.sip.message import Headers, Request, Response
from softphone.sip.uri import SipURI, parse_uri
from tests.server.proxy_net import (
    Phone,
    Pki,
    ack_for,
    answer,
    free_port,
    make_pki,
    proxy_config,
    trapezoid,
)
from tests.transport.certs import Identity

LOOPBACK = "127.0.0.1"
CAROL = "sip:carol@chicago.test"


def issue_with_sans(ca: Identity, cn: str, *sans: x509.GeneralName) -> Identity:
    """A leaf for ``cn`` signed by ``ca`` whose subjectAltName is exactly ``sans``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return Identity((cert, *ca.chain), key)


def with_ip(ca: Identity, domain: str) -> Identity:
    return issue_with_sans(
        ca, domain, x509.DNSName(domain), x509.IPAddress(ipaddress.ip_address(LOOPBACK))
    )


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@dataclass
class Chain:
    atlanta: Registrar
    biloxi: Registrar
    chicago: Registrar


@contextlib.asynccontextmanager
async def chain(pki: Pki, chicago_identity: Identity) -> AsyncIterator[Chain]:
    ports = {d: free_port() for d in ("atlanta.test", "biloxi.test", "chicago.test")}

    def listen(domain: str) -> tuple[ListenAddress, ...]:
        return (ListenAddress(LOOPBACK, ports[domain], "tls"),)

    def at(domain: str) -> str:
        return f"{LOOPBACK}:{ports[domain]}"

    atlanta = proxy_config(
        "atlanta.test",
        with_ip(pki.ca, "atlanta.test"),
        pki.ca,
        listen=listen("atlanta.test"),
        routes={"biloxi.test": at("biloxi.test")},
        record_route_host=LOOPBACK,
    )
    biloxi = proxy_config(
        "biloxi.test",
        pki.biloxi,
        pki.ca,
        listen=listen("biloxi.test"),
        routes={"chicago.test": at("chicago.test"), "atlanta.test": at("atlanta.test")},
        record_route=False,
    )
    chicago = proxy_config(
        "chicago.test",
        chicago_identity,
        pki.ca,
        listen=listen("chicago.test"),
        routes={"biloxi.test": at("biloxi.test")},
        record_route_host=LOOPBACK,
    )
    async with (
        running_registrar(atlanta) as a,
        running_registrar(biloxi) as b,
        running_registrar(chicago) as c,
    ):
        yield Chain(a, b, c)


async def registered(registrar: Registrar, user: str) -> Phone:
    phone = await Phone.connect(registrar, user)
    assert (await phone.register()).status_code == 200
    return phone


async def call_carol(alice: Phone, carol: Phone) -> tuple[Request, Request, Response]:
    """alice → carol with a pre-loaded Route to biloxi (RFC 3261 §8.1.2)."""
    return await invite(alice, carol, CAROL, [("Route", "<sip:biloxi.test;lr>")])


async def invite(
    caller: Phone, callee: Phone, uri: str, extra: list[tuple[str, str]]
) -> tuple[Request, Request, Response]:
    """INVITE answered by the callee with 200 after the caller's proxy's 407: the INVITE as
    sent with credentials, as the callee received it, and the 200 the caller got."""
    first = caller.new_request("INVITE", uri, extra=extra)
    caller.send(first)
    challenge = await caller.final()
    assert challenge.status_code == 407, challenge.reason
    caller.send(ack_for(first, challenge))
    again = caller.new_request(
        "INVITE", uri, call_id=first.call_id, from_tag=first.from_.tag, extra=extra
    )
    headers = DigestClient(caller.user, caller.password).handle_challenge(
        407, challenge.headers.get_all("Proxy-Authenticate"), "INVITE", uri
    )
    for header in headers:
        again.headers.add(header.name, header.value)
    caller.send(again)
    received = await callee.request_in()
    assert received.method == "INVITE"
    callee.send(answer(received, 200, tag=new_tag(), contact=callee.contact_uri))
    return again, received, await caller.final()


def in_dialog(
    phone: Phone, method: str, target: str, *, to: str, call_id: str, tag: str, route: list[str]
) -> Request:
    return phone.new_request(
        method,
        target,
        to=to,
        call_id=call_id,
        from_tag=tag,
        extra=[("Route", value) for value in route],
    )


async def test_in_dialog_requests_follow_record_routes_by_address_both_ways(pki: Pki) -> None:
    async with chain(pki, with_ip(pki.ca, "chicago.test")) as net:
        alice = await registered(net.atlanta, "alice")
        carol = await registered(net.chicago, "carol")
        sent, received, ok = await call_carol(alice, carol)
        assert ok.status_code == 200
        atlanta_port, chicago_port = net.atlanta.tls_port, net.chicago.tls_port
        record_routes = [str(r.uri) for r in received.record_routes]
        assert record_routes == [  # biloxi does not record-route
            f"sip:127.0.0.1:{chicago_port};transport=tls;lr",
            f"sip:127.0.0.1:{atlanta_port};transport=tls;lr",
        ]
        assert [c.domain for c in net.atlanta.relay.peer_connections] == ["biloxi.test"]

        # alice's ACK and BYE: atlanta pops itself, the next hop is chicago by address.
        route = list(reversed(ok.headers.get_all("Record-Route")))
        to, tag = ok.headers.get("To") or "", sent.from_.tag or ""
        contact = str(ok.contacts[0].uri)
        ack = in_dialog(alice, "ACK", contact, to=to, call_id=sent.call_id, tag=tag, route=route)
        ack.headers.set("CSeq", f"{sent.cseq.seq} ACK")
        alice.send(ack)
        got = await carol.request_in()
        assert got.method == "ACK" and got.headers.get_all("Route") == []
        assert [v.host for v in got.vias] == ["chicago.test", "atlanta.test", "alice.invalid"]
        hops = [(c.domain, c.peer) for c in net.atlanta.relay.peer_connections]
        assert ("127.0.0.1", (LOOPBACK, chicago_port)) in hops, hops

        bye = in_dialog(alice, "BYE", contact, to=to, call_id=sent.call_id, tag=tag, route=route)
        alice.send(bye)
        got = await carol.request_in()
        assert got.method == "BYE"
        carol.send(answer(got, 200, tag=ok.to.tag or ""))
        assert (await alice.final()).status_code == 200
        # one connection to chicago by address, reused for the BYE
        assert [c.peer for c in net.atlanta.relay.peer_connections].count(
            (LOOPBACK, chicago_port)
        ) == 1

        # carol's BYE of a second dialog: chicago pops itself, atlanta is reached by address.
        sent, received, ok = await call_carol(alice, carol)
        carol_route = received.headers.get_all("Record-Route")
        back = in_dialog(
            carol,
            "BYE",
            alice.contact_uri,
            to=received.headers.get("From") or "",
            call_id=sent.call_id,
            tag=ok.to.tag or "",
            route=carol_route,
        )
        carol.send(back)
        at_alice = await alice.request_in()
        assert at_alice.method == "BYE"
        assert [v.host for v in at_alice.vias] == ["atlanta.test", "chicago.test", "carol.invalid"]
        alice.send(answer(at_alice, 200, tag=tag))
        assert (await carol.final()).status_code == 200
        assert [c.peer for c in net.chicago.relay.peer_connections] == [(LOOPBACK, atlanta_port)]
        alice.close()
        carol.close()


@pytest.mark.parametrize(
    "sans",
    [
        pytest.param(lambda: [x509.DNSName("chicago.test")], id="no-address"),
        pytest.param(
            lambda: [x509.DNSName("chicago.test"), x509.DNSName(LOOPBACK)],
            id="address-spelled-as-dns-name",
        ),
        pytest.param(
            lambda: [
                x509.DNSName("chicago.test"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.2")),
            ],
            id="another-address",
        ),
    ],
)
async def test_a_route_hop_whose_certificate_lacks_its_address_is_502(
    pki: Pki, sans: object
) -> None:
    assert callable(sans)
    chicago = issue_with_sans(pki.ca, "chicago.test", *sans())
    async with chain(pki, chicago) as net:
        alice = await registered(net.atlanta, "alice")
        carol = await registered(net.chicago, "carol")
        sent, _received, ok = await call_carol(alice, carol)
        assert ok.status_code == 200
        route = list(reversed(ok.headers.get_all("Record-Route")))
        bye = in_dialog(
            alice,
            "BYE",
            str(ok.contacts[0].uri),
            to=ok.headers.get("To") or "",
            call_id=sent.call_id,
            tag=sent.from_.tag or "",
            route=route,
        )
        alice.send(bye)
        refused = await alice.final()
        assert refused.status_code == 502
        port = net.chicago.tls_port
        assert refused.reason == (
            f"Bad Gateway: next hop 127.0.0.1:{port} is not 127.0.0.1 (NAME_MISMATCH)"
        )
        assert all(c.peer != (LOOPBACK, port) for c in net.atlanta.relay.peer_connections)
        # atlanta keeps working: a new call still goes through.
        sent, _received, ok = await call_carol(alice, carol)
        assert ok.status_code == 200
        alice.close()
        carol.close()


async def test_an_open_connection_to_the_route_address_is_reused(pki: Pki) -> None:
    """Both trapezoid proxies record-route by address; atlanta's connection to biloxi carries
    alice's BYE (biloxi's certificate does not name 127.0.0.1: a new connection would be a
    502). biloxi has none to atlanta (atlanta connected to it) and atlanta's certificate does
    not name the address either: bob's BYE is refused with the reason."""
    async with trapezoid(pki, record_route_host=LOOPBACK) as net:
        alice = await registered(net.atlanta, "alice")
        bob = await registered(net.biloxi, "bob")
        sent, received, ok = await invite(alice, bob, "sip:bob@biloxi.test", [])
        assert ok.status_code == 200
        tag = ok.to.tag or ""
        route = list(reversed(ok.headers.get_all("Record-Route")))
        assert route[1] == f"<sip:127.0.0.1:{net.biloxi.tls_port};transport=tls;lr>"
        before = list(net.atlanta.relay.peer_connections)
        bye = in_dialog(
            alice,
            "BYE",
            bob.contact_uri,
            to=ok.headers.get("To") or "",
            call_id=sent.call_id,
            tag=sent.from_.tag or "",
            route=route,
        )
        alice.send(bye)
        got = await bob.request_in()
        assert got.method == "BYE"
        bob.send(answer(got, 200, tag=tag))
        assert (await alice.final()).status_code == 200
        assert net.atlanta.relay.peer_connections == before  # reused, none opened

        back = in_dialog(
            bob,
            "BYE",
            alice.contact_uri,
            to=received.headers.get("From") or "",
            call_id=sent.call_id,
            tag=tag,
            route=received.headers.get_all("Record-Route"),
        )
        bob.send(back)
        refused = await bob.final()
        assert refused.status_code == 502
        assert "is not 127.0.0.1 (NAME_MISMATCH)" in refused.reason
        alice.close()
        bob.close()


# -- sans-I/O: ProxyCore ----------------------------------------------------------------------

PEER = Source(2, "tls:127.0.0.1:5000#2", "tls", peer_proxy=True)


def core(**changes: object) -> ProxyCore:
    options: dict[str, object] = {
        "domain": "atlanta.test",
        "users": {"alice": "pw"},
        "routes": {"biloxi.test": "127.0.0.1:5071"},
    }
    options.update(changes)
    proxy = ProxyCore(RegistrarConfig(**options), LocationService(), secret=b"k" * 32)  # type: ignore[arg-type]
    proxy.addresses = {(LOOPBACK, 5061)}
    proxy.record_route_port = 5061
    return proxy


def bye(*routes: str, uri: str = "sip:bob@192.0.2.7:5099;transport=tls") -> Request:
    headers = Headers()
    headers.add("Via", "SIP/2.0/TLS ua.invalid;branch=z9hG4bKabc")
    headers.add("Max-Forwards", "70")
    headers.add("From", "<sip:alice@atlanta.test>;tag=1")
    headers.add("To", "<sip:bob@biloxi.test>;tag=2")
    headers.add("Call-ID", "c1")
    headers.add("CSeq", "2 BYE")
    for route in routes:
        headers.add("Route", route)
    return Request("BYE", parse_uri(uri), headers)


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ("<sips:127.0.0.1:5062;transport=tls;lr;ftag=x>", ("127.0.0.1", "127.0.0.1", 5062)),
        ("<sip:192.0.2.9;lr>", ("192.0.2.9", "192.0.2.9", 5061)),
        ("<sip:[2001:db8::1]:5071;transport=tls;lr>", ("2001:db8::1", "2001:db8::1", 5071)),
        ("<sip:proxy.chicago.test;transport=TLS;lr>", ("proxy.chicago.test",) * 2 + (5061,)),
    ],
)
def test_a_route_outside_routes_is_the_next_hop(route: str, expected: tuple[str, str, int]) -> None:
    ours = "<sip:127.0.0.1:5061;transport=tls;lr>"
    decision = core().route(bye(ours, route), 0.0, PEER)
    assert isinstance(decision, ToDomain), decision
    assert (decision.domain, decision.host, decision.port) == expected
    assert decision.route_hop
    assert [str(r) for r in decision.request.headers.get_all("Route")] == [route]


def test_a_route_in_routes_goes_to_the_configured_proxy() -> None:
    decision = core().route(bye("<sip:biloxi.test;lr>"), 0.0, PEER)
    assert isinstance(decision, ToDomain) and not decision.route_hop
    assert (decision.domain, decision.host, decision.port) == ("biloxi.test", LOOPBACK, 5071)


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_a_route_hop_over_another_transport_is_502(transport: str) -> None:
    decision = core().route(bye(f"<sip:192.0.2.9:5060;transport={transport};lr>"), 0.0, PEER)
    assert isinstance(decision, Reply)
    assert decision.response.status_code == 502
    assert decision.response.reason == (
        f"Bad Gateway: next hop 192.0.2.9 needs {transport.upper()}; "
        "this proxy forwards over TLS only"
    )


def test_no_route_and_a_foreign_request_uri_is_still_404() -> None:
    decision = core(authenticate_outgoing=False).route(bye(uri="sip:x@nowhere.test"), 0.0, PEER)
    assert isinstance(decision, Reply) and decision.response.status_code == 404


def test_record_route_host_carries_our_address_and_is_ours() -> None:
    proxy = core(record_route_host="192.0.2.1")
    assert proxy.record_route_uri(False) == "sip:192.0.2.1:5061;transport=tls;lr"
    assert proxy.record_route_uri(True) == "sips:192.0.2.1:5061;transport=tls;lr"
    assert proxy.is_ours(parse_uri("sip:192.0.2.1:5061;lr"))
    assert proxy.is_ours(parse_uri("sip:192.0.2.1;lr"))
    assert not proxy.is_ours(parse_uri("sip:192.0.2.1:5062;lr"))
    v6 = core(record_route_host="[2001:db8::2]")
    assert v6.record_route_uri(True) == "sips:[2001:db8::2]:5061;transport=tls;lr"
    assert core().record_route_uri(False) == "sip:atlanta.test;transport=tls;lr"
    invite = bye()
    invite.method = "INVITE"
    invite.headers.set("To", "<sip:bob@biloxi.test>")
    invite.headers.set("CSeq", "1 INVITE")
    invite.uri = parse_uri("sip:bob@biloxi.test")
    decision = proxy.route(invite, 0.0, PEER)
    assert isinstance(decision, ToDomain)
    record_route = decision.request.record_routes[0].uri
    assert isinstance(record_route, SipURI) and record_route.host == "192.0.2.1"


@pytest.mark.parametrize("bad", ["127.0.0.1:5061", "a b", "x;lr", "", "[::1"])
def test_record_route_host_must_be_a_bare_host(bad: str) -> None:
    with pytest.raises(ConfigError, match="record_route_host"):
        RegistrarConfig(domain="atlanta.test", record_route_host=bad)


def test_a_contact_decorated_by_another_proxy_still_reaches_its_binding() -> None:
    """Kamailio adds ``;alias=`` to contacts it forwards; RFC 3261 §19.1.4 ignores a parameter
    only one side has, so bob's BYE to alice's decorated contact finds her binding."""
    proxy = core()
    register = bye(uri="sip:atlanta.test")
    register.method = "REGISTER"
    register.headers.set("CSeq", "1 REGISTER")
    register.headers.set("To", "<sip:alice@atlanta.test>")
    register.headers.add(
        "Contact", '<sips:alice@127.0.0.1:58646;ob>;+sip.instance="<urn:x>";reg-id=1'
    )
    assert proxy.location.register(register, "sip:alice@atlanta.test", 0.0, flow="tls:f#9").ok
    request = bye(uri="sips:alice@127.0.0.1:58646;alias=127.0.0.1~42276~3")
    decision = proxy.route(request, 1.0, PEER)
    assert isinstance(decision, ToFlow), decision
    assert decision.flow == "tls:f#9"
    other = proxy.route(bye(uri="sips:alice@127.0.0.1:58647;alias=x"), 1.0, PEER)
    assert isinstance(other, Reply) and other.response.status_code == 404


def test_cli_record_route_host(tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    users.write_text('[users]\nalice = "pw"\n', encoding="utf-8")
    base = ["--domain", "atlanta.test", "--users", str(users)]
    args = build_parser().parse_args([*base, "--record-route-host", "192.0.2.1"])
    assert config_from_args(args).record_route_host == "192.0.2.1"
    assert config_from_args(build_parser().parse_args(base)).record_route_host is None
    bad = build_parser().parse_args([*base, "--record-route-host", "192.0.2.1:5061"])
    with pytest.raises(ConfigError, match="record_route_host"):
        config_from_args(bad)
