"""The proxy (RFC 3261 §16) across two real TLS proxies: atlanta.test → biloxi.test."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from softphone.server.registrar import Registrar
from softphone.sip.dialog import new_tag
from softphone.sip.message import Request, Response
from softphone.sip.transaction_layer import make_cancel
from softphone.transport.stream import open_tls_connection
from softphone.transport.tls import TLSConfig
from tests.server.proxy_net import (
    Network,
    Phone,
    Pki,
    ack_for,
    answer,
    make_pki,
    trapezoid,
)

BOB = "sip:bob@biloxi.test"


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture
async def net(pki: Pki) -> AsyncIterator[Network]:
    async with trapezoid(pki) as network:
        yield network


async def registered(registrar: Registrar, user: str) -> Phone:
    phone = await Phone.connect(registrar, user)
    response = await phone.register()
    assert response.status_code == 200, response.reason
    assert response.headers.get("Require") == "outbound"
    return phone


async def test_invite_through_both_proxies_and_the_dialog_follows_the_route_set(
    net: Network,
) -> None:
    alice = await registered(net.atlanta, "alice")
    bob = await registered(net.biloxi, "bob")
    invite = alice.new_request("INVITE", BOB, body=b"v=0\r\n")
    invite.headers.add("Content-Type", "application/sdp")

    sent, received, response = await _invite(alice, bob, invite)
    first_407 = [s for s in net.atlanta_view.messages if s.direction == "out"]
    assert any(getattr(s.message, "status_code", 0) == 407 for s in first_407)
    # The INVITE bob received: both proxies' Vias on top of alice's, both Record-Routes,
    # and no Proxy-Authorization (alice's Digest username stays with atlanta).
    vias = received.vias
    assert [v.host for v in vias] == ["biloxi.test", "atlanta.test", "alice.invalid"]
    assert [str(r.uri) for r in received.record_routes] == [
        "sip:biloxi.test;transport=tls;lr",
        "sip:atlanta.test;transport=tls;lr",
    ]
    assert "Proxy-Authorization" in sent.headers
    assert "Proxy-Authorization" not in received.headers
    assert received.max_forwards == 68
    assert response.status_code == 200
    assert [str(r.uri) for r in response.record_routes] == [
        "sip:biloxi.test;transport=tls;lr",
        "sip:atlanta.test;transport=tls;lr",
    ]
    assert [v.host for v in response.vias] == ["alice.invalid"]

    # ACK and BYE from alice follow the route set (reversed Record-Route) to bob's contact.
    route = [("Route", v) for v in reversed(response.headers.get_all("Record-Route"))]
    to = response.headers.get("To") or ""
    contact = response.contacts[0].uri
    call_id = sent.call_id
    ack = alice.new_request(
        "ACK", str(contact), to=to, call_id=call_id, from_tag=sent.from_.tag, extra=route
    )
    ack.headers.set("CSeq", f"{sent.cseq.seq} ACK")
    alice.send(ack)
    got_ack = await bob.request_in()
    assert got_ack.method == "ACK" and got_ack.headers.get_all("Route") == []
    bye = alice.new_request(
        "BYE", str(contact), to=to, call_id=call_id, from_tag=sent.from_.tag, extra=route
    )
    alice.send(bye)
    got_bye = await bob.request_in()
    assert got_bye.method == "BYE"
    bob.send(answer(got_bye, 200, tag=response.to.tag or ""))
    assert (await alice.final()).status_code == 200

    # BYE from bob back to alice: bob's route set is the Record-Route in order.
    bob_route = [("Route", v) for v in received.headers.get_all("Record-Route")]
    bye_back = bob.new_request(
        "BYE",
        alice.contact_uri,
        to=received.headers.get("From"),
        call_id=call_id,
        from_tag=response.to.tag,
        extra=bob_route,
    )
    bob.send(bye_back)
    at_alice = await alice.request_in()
    assert at_alice.method == "BYE" and len(at_alice.vias) == 3
    alice.send(answer(at_alice, 200, tag=sent.from_.tag or ""))
    assert (await bob.final()).status_code == 200
    # What atlanta read: the INVITE with its SDP (a sips:/sip: call hides nothing from it).
    assert "INVITE" in net.atlanta_view.methods_read(call_id)
    assert net.atlanta_view.read_sdp(call_id)
    alice.close()
    bob.close()


async def _invite(alice: Phone, bob: Phone, invite: Request) -> tuple[Request, Request, Response]:
    """INVITE alice → bob: the 407 answered, bob rings then answers 200."""
    alice.send(invite)
    challenge = await alice.final()
    assert challenge.status_code == 407
    assert challenge.headers.get_all("Proxy-Authenticate")
    alice.send(ack_for(invite, challenge))
    headers = alice.digest.handle_challenge(
        407, challenge.headers.get_all("Proxy-Authenticate"), "INVITE", str(invite.uri)
    )
    again = alice.new_request(
        "INVITE",
        str(invite.uri),
        call_id=invite.call_id,
        from_tag=invite.from_.tag,
        body=invite.body,
    )
    for header in headers:
        again.headers.add(header.name, header.value)
    alice.send(again)
    received = await bob.request_in()
    assert received.method == "INVITE"
    tag = new_tag()
    bob.send(answer(received, 180, tag=tag))
    ringing = await alice.response()
    assert ringing.status_code == 180
    bob.send(answer(received, 200, tag=tag, contact=bob.contact_uri))
    return again, received, await alice.final()


async def test_cancel_reaches_the_callee_over_the_same_path(net: Network) -> None:
    alice = await registered(net.atlanta, "alice")
    bob = await registered(net.biloxi, "bob")
    first = alice.new_request("INVITE", BOB)
    alice.send(first)
    challenge = await alice.final()
    alice.send(ack_for(first, challenge))
    headers = alice.digest.handle_challenge(
        407, challenge.headers.get_all("Proxy-Authenticate"), "INVITE", BOB
    )
    invite = alice.new_request("INVITE", BOB)
    for header in headers:
        invite.headers.add(header.name, header.value)
    alice.send(invite)
    received = await bob.request_in()
    tag = new_tag()
    bob.send(answer(received, 180, tag=tag))
    assert (await alice.response()).status_code == 180
    cancel = make_cancel(invite)
    alice.send(cancel)
    got = await bob.request_in()
    assert got.method == "CANCEL"
    # §16.11: the CANCEL carries the branch of the INVITE at every hop.
    assert [v.branch for v in got.vias] == [v.branch for v in received.vias]
    bob.send(answer(got, 200, tag=tag))
    assert (await alice.response()).cseq.method == "CANCEL"
    bob.send(answer(received, 487, tag=tag))
    final = await alice.final()
    assert final.status_code == 487
    alice.send(ack_for(invite, final))
    ack = await bob.request_in()
    assert ack.method == "ACK" and ack.vias[0].branch == received.vias[0].branch
    alice.close()
    bob.close()


async def test_unknown_user_404_and_unregistered_user_480(net: Network) -> None:
    alice = await registered(net.atlanta, "alice")
    _, response = await alice.authenticated(alice.new_request("INVITE", "sip:zed@biloxi.test"))
    assert response.status_code == 404
    _, response = await alice.authenticated(alice.new_request("INVITE", "sip:carol@biloxi.test"))
    assert (response.status_code, response.reason) == (480, "Not Registered")
    # A local call needs no credentials (inbound to our domain) and gets 480 the same way.
    alice.send(alice.new_request("INVITE", "sip:carol@atlanta.test"))
    assert (await alice.final()).status_code == 480
    _, response = await alice.authenticated(alice.new_request("INVITE", "sip:x@nowhere.test"))
    assert response.status_code == 404 and "nowhere.test" in response.reason
    alice.close()


async def test_max_forwards_zero_is_483(net: Network) -> None:
    alice = await registered(net.atlanta, "alice")
    request = alice.new_request("INVITE", "sip:carol@atlanta.test")
    request.headers.set("Max-Forwards", "0")
    alice.send(request)
    assert (await alice.final()).status_code == 483
    alice.close()


async def test_wrong_password_is_challenged_again(net: Network) -> None:
    alice = await Phone.connect(net.atlanta, "alice", "not-the-password")
    from softphone.sip.digest import AuthenticationFailedError

    request = alice.new_request("INVITE", BOB)
    alice.send(request)
    first = await alice.final()
    assert first.status_code == 407
    headers = alice.digest.handle_challenge(
        407, first.headers.get_all("Proxy-Authenticate"), "INVITE", BOB
    )
    again = alice.new_request("INVITE", BOB)
    for header in headers:
        again.headers.add(header.name, header.value)
    alice.send(again)
    second = await alice.final()
    assert second.status_code == 407
    with pytest.raises(AuthenticationFailedError):
        alice.digest.handle_challenge(
            407, second.headers.get_all("Proxy-Authenticate"), "INVITE", BOB
        )
    alice.close()


async def test_unknown_proxy_require_is_420(net: Network) -> None:
    alice = await registered(net.atlanta, "alice")
    request = alice.new_request("INVITE", "sip:bob@atlanta.test", extra=[("Proxy-Require", "foo")])
    alice.send(request)
    response = await alice.final()
    assert response.status_code == 420
    assert response.headers.get("Unsupported") == "foo"
    alice.close()


async def test_a_peer_proxy_proven_by_its_client_certificate_is_not_challenged(
    net: Network,
) -> None:
    # biloxi's certificate as client certificate: a peer proxy (RFC 5922 §7.2), no 407.
    stream = await open_tls_connection(
        "127.0.0.1",
        net.atlanta.tls_port,
        TLSConfig.client(
            server_name="atlanta.test",
            certificate_chain=net.pki.biloxi.chain,
            private_key=net.pki.biloxi.key,
        ),
        timeout=10.0,
    )
    peer = Phone(stream, "bob", "biloxi.test", "bob-secret")
    peer.send(peer.new_request("INVITE", "sip:carol@biloxi.test"))
    response = await peer.final()
    assert (response.status_code, response.reason) == (480, "Not Registered")  # from biloxi
    # The same request from a client without a certificate is challenged.
    client = await Phone.connect(net.atlanta, "alice")
    client.send(client.new_request("INVITE", "sip:carol@biloxi.test"))
    assert (await client.final()).status_code == 407
    peer.close()
    client.close()


async def test_a_binding_without_outbound_is_reached_over_its_own_connection(
    net: Network,
) -> None:
    alice = await registered(net.atlanta, "alice")
    bob = await Phone.connect(net.biloxi, "bob")
    response = await bob.register(outbound=False)
    assert response.status_code == 200 and response.headers.get("Require") is None
    (binding,) = net.biloxi.bindings(BOB)
    assert binding.flow is None
    _, received, final = await _invite(alice, bob, alice.new_request("INVITE", BOB))
    assert str(received.uri) == str(binding.uri)  # §16.6 step 2: retargeted to the contact
    assert final.status_code == 200
    alice.close()
    bob.close()


async def test_logs_never_carry_proxy_authorization(
    net: Network, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="softphone.server")
    alice = await registered(net.atlanta, "alice")
    sent, response = await alice.authenticated(alice.new_request("INVITE", "sip:zed@biloxi.test"))
    assert response.status_code == 404
    credentials = sent.headers.get("Proxy-Authorization") or ""
    secret = credentials.split('response="', 1)[1].split('"', 1)[0]
    assert "Proxy-Authorization" in caplog.text  # logged, redacted
    assert secret not in caplog.text
    alice.close()
