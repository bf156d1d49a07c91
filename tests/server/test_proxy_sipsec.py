"""The sipsec relay (draft-gurbani-sip-sipsec-01 §6.6) across two real TLS proxies: CONNECT,
2xx, then a real nested TLS handshake alice↔bob spliced through both proxies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from softphone.server.observe import SipSeen, TunnelClosed, TunnelOpened
from softphone.sip.dialog import new_tag
from softphone.sip.digest import DigestClient
from softphone.sip.message import Request, Response
from softphone.transport.stream import TLSStream
from softphone.transport.tls import TLSConfig
from tests.server.proxy_net import WAIT, Network, Phone, Pki, answer, make_pki, trapezoid

BOB = "sip:bob@biloxi.test"
SIPSEC = [("Require", "sipsec"), ("Proxy-Require", "sipsec")]
SECRET_LINE = (
    b"INVITE sip:bob@biloxi.test SIP/2.0 a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:TOPSECRET"
)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture
async def net(pki: Pki) -> AsyncIterator[Network]:
    async with trapezoid(pki, tunnel_idle_timeout=30.0) as network:
        yield network


async def registered(registrar: object, user: str) -> Phone:
    phone = await Phone.connect(registrar, user)  # type: ignore[arg-type]
    assert (await phone.register()).status_code == 200
    return phone


async def connect_request(alice: Phone, bob: Phone) -> tuple[Request, Request]:
    """CONNECT from alice (407 answered); returns (sent, as bob received it)."""
    request, response = await _connect(alice)
    assert response is None, response
    received = await bob.request_in()
    assert received.method == "CONNECT"
    return request, received


async def _connect(alice: Phone) -> tuple[Request, Response | None]:
    first = alice.new_request("CONNECT", BOB, extra=SIPSEC)
    first.headers.remove("Contact")
    alice.send(first)
    challenge = await alice.final()
    assert challenge.status_code == 407
    headers = alice.digest.handle_challenge(
        407, challenge.headers.get_all("Proxy-Authenticate"), "CONNECT", BOB
    )
    again = alice.new_request("CONNECT", BOB, extra=SIPSEC)
    again.headers.remove("Contact")
    for header in headers:
        again.headers.add(header.name, header.value)
    alice.send(again)
    return again, None


async def nested_tls(alice: Phone, bob: Phone, pki: Pki) -> tuple[TLSStream, TLSStream]:
    inner_alice = alice.stream.upgrade(
        TLSConfig.client(
            server_name="bob", certificate_chain=pki.alice.chain, private_key=pki.alice.key
        )
    )
    inner_bob = bob.stream.upgrade(
        TLSConfig.server(pki.bob.chain, pki.bob.key, request_client_certificate=True)
    )
    results = await asyncio.wait_for(
        asyncio.gather(inner_alice.handshake(), inner_bob.handshake()), WAIT
    )
    assert results[0].peer_chain[0] == pki.bob.cert  # alice sees bob's own certificate
    assert results[1].peer_chain[0] == pki.alice.cert
    return inner_alice, inner_bob


async def test_connect_then_nested_tls_through_both_proxies(net: Network, pki: Pki) -> None:
    alice = await registered(net.atlanta, "alice")
    bob = await registered(net.biloxi, "bob")
    _, received = await connect_request(alice, bob)
    assert "Proxy-Authorization" not in received.headers
    assert received.headers.get("Proxy-Require") == "sipsec"
    assert not received.record_routes  # CONNECT creates no dialog
    bob.send(answer(received, 200, tag=new_tag()))
    ok = await alice.final()
    assert ok.status_code == 200 and ok.cseq.method == "CONNECT"

    inner_alice, inner_bob = await nested_tls(alice, bob, pki)
    inner_alice.write(SECRET_LINE)
    assert await asyncio.wait_for(inner_bob.read(), WAIT) == SECRET_LINE
    inner_bob.write(b"SIP/2.0 200 OK (inside)")
    assert await asyncio.wait_for(inner_alice.read(), WAIT) == b"SIP/2.0 200 OK (inside)"

    for registrar, view in ((net.atlanta, net.atlanta_view), (net.biloxi, net.biloxi_view)):
        (tunnel,) = registrar.tunnels.values()
        assert tunnel.bytes_up_to_down > len(SECRET_LINE) + 200  # ClientHello, Finished...
        assert tunnel.bytes_down_to_up > 500  # ServerHello, certificate...
        assert view.opaque_bytes == tunnel.total
        read = view.methods_read()
        assert "INVITE" not in read
        assert [m for m in read if m != "REGISTER" and not m.endswith("REGISTER")] in (
            ["CONNECT", "200 CONNECT"],
            ["CONNECT", "CONNECT", "200 CONNECT"],  # atlanta also read the one it challenged
        )
        assert not any(b"TOPSECRET" in s.raw for s in view.messages)
        assert any(isinstance(o, TunnelOpened) for o in view.observations)
    # The flows that became tunnels no longer carry SIP: their bindings are gone.
    assert net.atlanta.bindings("sip:alice@atlanta.test") == []
    assert net.biloxi.bindings(BOB) == []

    # Half-close: alice ends her side; bob's side sees EOF through both proxies.
    inner_alice.close()
    assert await asyncio.wait_for(inner_bob.read(), WAIT) == b""
    assert inner_bob.clean_close  # alice's nested close_notify arrived intact
    inner_bob.close()

    async def both_closed() -> None:
        while net.atlanta.tunnels or net.biloxi.tunnels:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(both_closed(), WAIT)
    closed = [o for o in net.biloxi_view.observations if isinstance(o, TunnelClosed)]
    assert len(closed) == 1 and closed[0].bytes_up_to_down > 0


async def test_half_close_lets_the_other_direction_finish(net: Network, pki: Pki) -> None:
    """Draft §6.6 keeps the connection open "until the connection is explicitly torn down by
    either of the endpoints"; a half-close (TLS 1.3 close_notify + FIN, RFC 8446 §6.1) from
    alice ends only her direction: bob's last bytes still reach her through both proxies."""
    from softphone.server.connection import shutdown_write

    alice = await registered(net.atlanta, "alice")
    bob = await registered(net.biloxi, "bob")
    _, received = await connect_request(alice, bob)
    bob.send(answer(received, 200, tag=new_tag()))
    assert (await alice.final()).status_code == 200
    inner_alice, inner_bob = await nested_tls(alice, bob, pki)

    # bob's ends accept to go on writing after their peer closed (the proxies do it by
    # themselves for the tunnel's connections; endpoints choose).
    inner_bob.tls.allow_half_close = True
    assert isinstance(bob.stream, TLSStream)
    bob.stream.tls.allow_half_close = True
    shutdown_write(alice.stream)  # alice's outer hop: close_notify + FIN, still reading
    assert await asyncio.wait_for(inner_bob.read(), WAIT) == b""  # the EOF crossed both proxies
    inner_bob.write(b"SIP/2.0 200 OK (after alice half-closed)")
    got = await asyncio.wait_for(inner_alice.read(), WAIT)
    assert got == b"SIP/2.0 200 OK (after alice half-closed)"
    for registrar in (net.atlanta, net.biloxi):
        assert len(registrar.tunnels) == 1  # still open: only one direction ended
    bob.stream.close()

    async def both_closed() -> None:
        while net.atlanta.tunnels or net.biloxi.tunnels:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(both_closed(), WAIT)


async def test_idle_tunnel_is_closed(pki: Pki) -> None:
    async with trapezoid(pki, tunnel_idle_timeout=0.5) as net:
        alice = await registered(net.atlanta, "alice")
        bob = await registered(net.biloxi, "bob")
        _, received = await connect_request(alice, bob)
        bob.send(answer(received, 200, tag=new_tag()))
        assert (await alice.final()).status_code == 200
        assert await asyncio.wait_for(alice.stream.read(), WAIT) == b""  # closed for idleness
        assert await asyncio.wait_for(bob.stream.read(), WAIT) == b""

        async def both_closed() -> None:
            while net.atlanta.tunnels or net.biloxi.tunnels:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(both_closed(), WAIT)
        for view in (net.atlanta_view, net.biloxi_view):
            (closed,) = [o for o in view.observations if isinstance(o, TunnelClosed)]
            assert "idle" in closed.reason


async def test_486_to_connect_leaves_both_connections_usable(net: Network) -> None:
    alice = await registered(net.atlanta, "alice")
    bob = await registered(net.biloxi, "bob")
    _, received = await connect_request(alice, bob)
    bob.send(answer(received, 486, tag=new_tag()))
    assert (await alice.final()).status_code == 486
    assert net.atlanta.tunnels == {} and net.biloxi.tunnels == {}
    # SIP goes on over both: an OPTIONS alice → bob reaches bob's same connection.
    first = alice.new_request("OPTIONS", BOB)
    alice.send(first)
    challenge = await alice.final()
    assert challenge.status_code == 407
    again = alice.new_request("OPTIONS", BOB)
    for header in DigestClient("alice", "alice-secret").handle_challenge(
        407, challenge.headers.get_all("Proxy-Authenticate"), "OPTIONS", BOB
    ):
        again.headers.add(header.name, header.value)
    alice.send(again)
    got = await bob.request_in()
    assert got.method == "OPTIONS"
    bob.send(answer(got, 200, tag=new_tag()))
    assert (await alice.final()).status_code == 200


async def test_pending_connect_reserves_the_flow(net: Network) -> None:
    alice = await registered(net.atlanta, "alice")
    bob = await registered(net.biloxi, "bob")
    _, received = await connect_request(alice, bob)
    # Meanwhile someone else calls bob: his only flow is reserved by the pending CONNECT.
    carol = await Phone.connect(net.biloxi, "carol")
    carol.send(carol.new_request("INVITE", BOB))
    response = await carol.final()
    assert response.status_code == 480
    bob.send(answer(received, 200, tag=new_tag()))
    assert (await alice.final()).status_code == 200
    # bob got nothing but the CONNECT on that connection (no keep-alive pong either).
    bob.stream.write(b"\r\n\r\n")
    await asyncio.sleep(0.1)
    assert bob.inbox == []


async def test_connect_needs_proxy_require_sipsec(net: Network) -> None:
    alice = await registered(net.atlanta, "alice")
    request = alice.new_request("CONNECT", "sip:bob@atlanta.test", extra=[("Require", "sipsec")])
    alice.send(request)
    response = await alice.final()
    assert response.status_code == 400 and "Proxy-Require" in response.reason
    request = alice.new_request(
        "CONNECT", "sip:bob@atlanta.test", extra=[("Proxy-Require", "sipsec, frobnicate")]
    )
    alice.send(request)
    response = await alice.final()
    assert response.status_code == 420 and response.headers.get("Unsupported") == "frobnicate"


async def test_next_hop_with_a_certificate_for_another_domain_is_502(pki: Pki) -> None:
    wrong = __import__("tests.transport.certs", fromlist=["issue"]).issue(pki.ca, "evil.test")
    async with trapezoid(pki, biloxi_identity=wrong) as net:
        alice = await registered(net.atlanta, "alice")
        bob = await registered(net.biloxi, "bob")
        await _connect(alice)
        response = await alice.final()
        assert response.status_code == 502
        assert "biloxi.test" in response.reason
        assert not any(
            isinstance(s, SipSeen) and getattr(s.message, "method", "") == "CONNECT"
            for s in net.biloxi_view.observations
        )
        assert bob.inbox == []


async def test_unanswered_connect_times_out_with_408_and_releases_the_flows(
    net: Network,
) -> None:
    net.atlanta.relay.connect_timeout = 0.3
    net.biloxi.relay.connect_timeout = 0.6
    alice = await registered(net.atlanta, "alice")
    bob = await registered(net.biloxi, "bob")
    await connect_request(alice, bob)  # bob never answers
    response = await alice.final()
    assert response.status_code == 408
    # atlanta released alice's connection: SIP works on it again.
    alice.send(alice.new_request("OPTIONS", "sip:atlanta.test"))
    assert (await alice.final()).status_code == 200
    await asyncio.sleep(0.5)  # biloxi's own timer released bob's flow
    carol = await Phone.connect(net.biloxi, "carol")
    carol.send(carol.new_request("INVITE", BOB))
    assert (await bob.request_in()).method == "INVITE"
