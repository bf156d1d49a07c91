"""ProxyCore (sans-I/O routing decisions, RFC 3261 §16) and the proxy's CLI and config."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from softphone.server.cli import build_parser, config_from_args
from softphone.server.config import ConfigError, RegistrarConfig
from softphone.server.location import LocationService
from softphone.server.proxy import ProxyCore, Reply, Source, ToDomain, ToFlow
from softphone.sip.message import Headers, Request, Response
from softphone.sip.uri import SipURI, parse_uri
from tests.transport.certs import make_ca

CLIENT = Source(1, "tls:127.0.0.1:4000#1", "tls")
PEER = Source(2, "tls:127.0.0.1:5000#2", "tls", peer_proxy=True)


def core(**changes: object) -> ProxyCore:
    options: dict[str, object] = {
        "domain": "atlanta.test",
        "users": {"alice": "pw", "carol": "pw"},
        "routes": {"biloxi.test": "127.0.0.1:5071"},
    }
    options.update(changes)
    config = RegistrarConfig(**options)  # type: ignore[arg-type]
    return ProxyCore(config, LocationService(), secret=b"k" * 32)


def request(
    method: str,
    uri: str,
    *,
    extra: tuple[tuple[str, str], ...] = (),
    to_tag: str | None = None,
) -> Request:
    headers = Headers()
    headers.add("Via", "SIP/2.0/TLS ua.invalid;branch=z9hG4bKabc")
    headers.add("Max-Forwards", "70")
    headers.add("From", "<sip:alice@atlanta.test>;tag=1")
    headers.add("To", f"<{uri}>" + (f";tag={to_tag}" if to_tag else ""))
    headers.add("Call-ID", "c1")
    headers.add("CSeq", f"1 {method}")
    for name, value in extra:
        headers.add(name, value)
    return Request(method, parse_uri(uri), headers)


def test_peer_requests_to_other_domains_are_routed_without_challenge() -> None:
    decision = core().route(request("INVITE", "sip:bob@biloxi.test"), 0.0, PEER)
    assert isinstance(decision, ToDomain)
    assert (decision.domain, decision.host, decision.port) == ("biloxi.test", "127.0.0.1", 5071)
    forwarded = decision.request
    assert forwarded.max_forwards == 69
    record_route = forwarded.record_routes[0].uri
    assert isinstance(record_route, SipURI)
    assert record_route.params == {"transport": "tls", "lr": None}
    assert forwarded.vias[0].host == "atlanta.test"
    assert len(forwarded.vias) == 2


def test_client_requests_to_other_domains_get_407() -> None:
    decision = core().route(request("INVITE", "sip:bob@biloxi.test"), 0.0, CLIENT)
    assert isinstance(decision, Reply)
    assert decision.response.status_code == 407
    assert decision.response.headers.get_all("Proxy-Authenticate")


def test_no_challenge_when_authenticate_outgoing_is_off() -> None:
    proxy = core(authenticate_outgoing=False)
    decision = proxy.route(request("INVITE", "sip:bob@biloxi.test"), 0.0, CLIENT)
    assert isinstance(decision, ToDomain)


def test_in_dialog_requests_are_not_challenged_and_our_route_is_popped() -> None:
    routes = (("Route", "<sip:atlanta.test;transport=tls;lr>"),
              ("Route", "<sip:biloxi.test;transport=tls;lr>"))  # fmt: skip
    bye = request("BYE", "sip:bob@bob.invalid;transport=tls;ob", extra=routes, to_tag="x")
    decision = core().route(bye, 0.0, CLIENT)
    assert isinstance(decision, ToDomain)
    assert [str(r.uri) for r in decision.request.routes] == ["sip:biloxi.test;transport=tls;lr"]
    assert decision.request.record_routes == []  # only dialog-creating requests


@pytest.mark.parametrize(
    ("uri", "code", "reason"),
    [
        ("sip:zed@atlanta.test", 404, "User Not Found"),
        ("sip:carol@atlanta.test", 480, "Not Registered"),
        ("sip:x@nowhere.test", 404, "No route to nowhere.test"),
    ],
)
def test_targets_that_cannot_be_reached(uri: str, code: int, reason: str) -> None:
    decision = core(authenticate_outgoing=False).route(request("INVITE", uri), 0.0, CLIENT)
    assert isinstance(decision, Reply)
    assert (decision.response.status_code, decision.response.reason) == (code, reason)


def test_max_forwards_and_proxy_require() -> None:
    proxy = core()
    zero = request("INVITE", "sip:carol@atlanta.test", extra=(("Max-Forwards", "0"),))
    zero.headers.set("Max-Forwards", "0")
    decision = proxy.route(zero, 0.0, CLIENT)
    assert isinstance(decision, Reply) and decision.response.status_code == 483
    odd = request("INVITE", "sip:carol@atlanta.test", extra=(("Proxy-Require", "sipsec, x"),))
    decision = proxy.route(odd, 0.0, CLIENT)
    assert isinstance(decision, Reply) and decision.response.status_code == 420
    assert decision.response.headers.get("Unsupported") == "x"


def test_connect_rules() -> None:
    proxy = core(authenticate_outgoing=False)
    sipsec = (("Proxy-Require", "sipsec"),)
    udp = Source(3, "udp:127.0.0.1:9", "udp")
    decision = proxy.route(request("CONNECT", "sip:bob@biloxi.test", extra=sipsec), 0.0, udp)
    assert isinstance(decision, Reply) and decision.response.status_code == 400
    assert "connection" in decision.response.reason
    decision = proxy.route(request("CONNECT", "sip:bob@biloxi.test"), 0.0, CLIENT)
    assert isinstance(decision, Reply) and decision.response.status_code == 400
    decision = proxy.route(request("CONNECT", "sip:bob@biloxi.test", extra=sipsec), 0.0, CLIENT)
    assert isinstance(decision, ToDomain)
    assert decision.request.record_routes == []


def test_sips_needs_tls_all_the_way() -> None:
    proxy = core(authenticate_outgoing=False)
    tcp = Source(4, "tcp:127.0.0.1:9#4", "tcp")
    decision = proxy.route(request("INVITE", "sips:bob@biloxi.test"), 0.0, tcp)
    assert isinstance(decision, Reply) and decision.response.status_code == 480
    decision = proxy.route(request("INVITE", "sips:bob@biloxi.test"), 0.0, CLIENT)
    assert isinstance(decision, ToDomain)
    assert str(decision.request.record_routes[0].uri).startswith("sips:atlanta.test")


def test_our_realm_credentials_are_removed_others_kept() -> None:
    proxy = core(authenticate_outgoing=False)
    ours = 'Digest username="alice", realm="atlanta.test", nonce="n", uri="x", response="r"'
    theirs = 'Digest username="a2", realm="biloxi.test", nonce="n", uri="x", response="r"'
    invite = request(
        "INVITE",
        "sip:bob@biloxi.test",
        extra=(("Proxy-Authorization", ours), ("Proxy-Authorization", theirs)),
    )
    decision = proxy.route(invite, 0.0, CLIENT)
    assert isinstance(decision, ToDomain)
    assert decision.request.headers.get_all("Proxy-Authorization") == [theirs]


def test_responses_go_back_only_through_our_own_branch() -> None:
    proxy = core()
    decision = proxy.route(request("INVITE", "sip:bob@biloxi.test"), 0.0, PEER)
    assert isinstance(decision, ToDomain)
    response = Response.for_request(decision.request, 180, to_tag="t")
    upstream = proxy.response_target(response)
    assert upstream is not None and upstream.connection_id == PEER.connection_id
    assert [v.host for v in upstream.response.vias] == ["ua.invalid"]
    # A forged branch (another connection id) does not verify.
    forged = bytes(response).replace(b"z9hG4bKsp2.", b"z9hG4bKsp7.")
    from softphone.sip.parser import parse_message

    message = parse_message(forged)
    assert isinstance(message, Response)
    assert proxy.response_target(message) is None
    # CANCEL gets the INVITE's branch (§16.11).
    cancel = proxy.route(request("CANCEL", "sip:bob@biloxi.test"), 0.0, PEER)
    assert isinstance(cancel, ToDomain)
    assert cancel.request.vias[0].branch == decision.request.vias[0].branch


def test_local_user_goes_over_the_registered_flow_unless_busy() -> None:
    proxy = core()
    register = request(
        "REGISTER",
        "sip:atlanta.test",
        extra=(("Contact", '<sip:alice@a.invalid;ob>;+sip.instance="<urn:x>";reg-id=1'),),
    )
    register.headers.set("To", "<sip:alice@atlanta.test>")
    assert proxy.location.register(register, "sip:alice@atlanta.test", 0.0, flow="tls:f#9").ok
    decision = proxy.route(request("INVITE", "sip:alice@atlanta.test"), 1.0, PEER)
    assert isinstance(decision, ToFlow) and decision.flow == "tls:f#9"
    busy = proxy.route(
        request("INVITE", "sip:alice@atlanta.test"), 1.0, PEER, usable=lambda f: False
    )
    assert isinstance(busy, Reply) and busy.response.status_code == 480


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        RegistrarConfig(domain="a.test", routes={"b.test": "nohostport"})
    with pytest.raises(ConfigError):
        RegistrarConfig(domain="a.test", routes={"a.test": "127.0.0.1:5061"})
    with pytest.raises(ConfigError):
        RegistrarConfig(domain="a.test", tunnel_idle_timeout=0)
    assert RegistrarConfig(domain="a.test").tunnel_idle_timeout == 1800.0


def test_cli_proxy_options(tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    users.write_text('[users]\nalice = "pw"\n', encoding="utf-8")
    ca = tmp_path / "ca.pem"
    ca.write_bytes(make_ca("Peer CA").cert.public_bytes(serialization.Encoding.PEM))
    args = build_parser().parse_args(
        ["--domain", "atlanta.test", "--users", str(users),
         "--route", "biloxi.test=127.0.0.1:5071", "--route", "chicago.test=[::1]:5081",
         "--peer-ca", str(ca), "--tunnel-idle-timeout", "60", "--no-authenticate-outgoing"]
    )  # fmt: skip
    config = config_from_args(args)
    assert dict(config.routes) == {
        "biloxi.test": "127.0.0.1:5071",
        "chicago.test": "[::1]:5081",
    }
    assert len(config.peer_anchors) == 1
    assert config.tunnel_idle_timeout == 60.0
    assert config.authenticate_outgoing is False
    bad = build_parser().parse_args(["--domain", "a.test", "--users", str(users), "--route", "x"])
    with pytest.raises(ConfigError):
        config_from_args(bad)
