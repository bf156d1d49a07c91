"""A ``sips:`` call across a chain of two proxies: ours and a real Kamailio (RFC 3261 §16, §26).

::

    alice ──TLS── our proxy (atlanta.test) ──TLS── Kamailio (example.test) ──TLS── bob
                  routes={"example.test": Kamailio}

alice registers at our proxy (``softphone.server``, in this process, a certificate for
``atlanta.test`` from a CA made here), bob at a real Kamailio (tests/interop/kamailio.py,
the lab PKI). Our proxy challenges alice's INVITE (407, RFC 3261 §22.3), takes her Digest
off, record-routes (§16.6 step 4) and forwards over TLS to Kamailio, verifying Kamailio's
certificate for ``example.test`` with the lab CA (``peer_anchors``, RFC 5922 §7); Kamailio
record-routes and reaches bob over his flow. The dialog's route set holds both proxies'
Record-Route values (§12.1.2), the audio goes both ways end to end (SRTP with SDES keys), and
the BYE follows the route set through both proxies (§12.2.1.1), from alice in one call and
from bob in another.

Kamailio's Record-Route is its listening address, ``sips:127.0.0.1:PORT;transport=tls;lr``,
a host our ``routes`` does not name: our proxy follows it as the next hop (RFC 3261 §16.12),
over the connection it already has to that address (the one it opened for ``example.test``),
or over a new one whose certificate must carry 127.0.0.1 as an iPAddress subjectAltName
(RFC 5922 §7.3), hence the ``good-ip`` profile. Kamailio cannot resolve ``atlanta.test`` (no
DNS here), so our proxy record-routes with its address too (``record_route_host``), and bob's
BYE reaches alice through both proxies.

Waits are bounded (WAIT), never timed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from softphone.media.tone import ToneSource
from softphone.server.config import ListenAddress, RegistrarConfig
from softphone.server.observe import ProxyView
from softphone.server.registrar import Registrar, running_registrar
from softphone.sip.message import Request
from softphone.sip.uri import SipURI
from softphone.ua.account import Account, ResolveEntry
from softphone.ua.call import Call, CallPhase
from softphone.ua.events import MediaStarted
from softphone.ua.useragent import UserAgent
from tests.interop.helpers import Recorder, account, heard, log_of, settle, states, wait_until
from tests.interop.kamailio import DEFAULT_USERS, KamailioServer
from tests.interop.pki import LabPKI
from tests.transport.certs import issue, make_ca
from tests.ua.test_registration import WAIT, EventLog

pytestmark = pytest.mark.interop

OUR_DOMAIN = "atlanta.test"
ALICE_PASSWORD = "alice-atlanta-secret"


@contextlib.asynccontextmanager
async def our_proxy(
    kamailio: KamailioServer, pki: LabPKI, ca_file: Path
) -> AsyncIterator[tuple[Registrar, ProxyView]]:
    """Our registrar/proxy for atlanta.test, routing example.test to Kamailio over TLS.

    ``ca_file`` receives the CA of our proxy's certificate (alice's trust anchor)."""
    ca = make_ca("Atlanta Test CA")
    ours = issue(ca, OUR_DOMAIN)
    ca_file.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    view = ProxyView(OUR_DOMAIN)
    config = RegistrarConfig(
        domain=OUR_DOMAIN,
        users={"alice": ALICE_PASSWORD},
        listen=(ListenAddress("127.0.0.1", 0, "tls"),),
        certificate_chain=ours.chain,
        private_key=ours.key,
        routes={kamailio.domain: f"{kamailio.host}:{kamailio.tls_port}"},
        peer_anchors=(pki.ca_cert,),
        # Kamailio reaches us through our Record-Route without DNS: sips:127.0.0.1:PORT
        record_route_host="127.0.0.1",
    )
    async with running_registrar(config, observer=view.observe) as registrar:
        yield registrar, view


def alice_account(registrar: Registrar, ca_file: Path) -> Account:
    return Account(
        aor=f"sips:alice@{OUR_DOMAIN}",
        registrar=f"sips:{OUR_DOMAIN}:{registrar.tls_port}",
        resolve=(ResolveEntry(OUR_DOMAIN, registrar.tls_port, "127.0.0.1"),),
        ca_file=ca_file,
    )


def route_uris(call: Call) -> list[SipURI]:
    assert call.dialog is not None
    uris = []
    for route in call.dialog.route_set:
        assert isinstance(route.uri, SipURI)
        uris.append(route.uri)
    return uris


async def test_sips_call_through_our_proxy_and_kamailio_audio_both_ways_and_bye_follows_route(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    interop_pki: LabPKI,
    tmp_path: Path,
) -> None:
    # good-ip: its certificate also names 127.0.0.1 (iPAddress SAN), the host of its
    # Record-Route, which our proxy checks when it opens a connection to that hop.
    kamailio = kamailio_factory(cert="good-ip")
    async with our_proxy(kamailio, interop_pki, tmp_path / "atlanta-ca.pem") as (proxy, view):
        incoming: list[Call] = []
        bob_heard = Recorder()

        def bob_takes(call: Call) -> None:
            call.source, call.sink = ToneSource(440), bob_heard
            incoming.append(call)

        alice_events, bob_events = EventLog(), EventLog()
        alice = ua_factory(
            alice_account(proxy, tmp_path / "atlanta-ca.pem"),
            on_event=alice_events,
            password=ALICE_PASSWORD,
        )
        bob = ua_factory(
            account(kamailio, "bob"),
            on_event=bob_events,
            password=DEFAULT_USERS["bob"],
            auto_answer=True,
            on_incoming_call=bob_takes,
        )
        await asyncio.gather(alice.register(), bob.register())
        assert proxy.bindings(f"sip:alice@{OUR_DOMAIN}")

        alice_heard = Recorder()
        call = await alice.call(
            f"sips:bob@{kamailio.domain}", source=ToneSource(1000), sink=alice_heard
        )
        await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
        await wait_until(lambda: bool(incoming), "bob's call")
        bob_call = incoming[0]
        await bob_call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
        assert call.challenges == 1  # our proxy's 407; Kamailio does not challenge a foreign From
        assert call.dialog is not None and call.dialog.secure

        # Both proxies are in the route set, each as its address: ours first for alice
        # (§12.1.2: reversed Record-Route), Kamailio's next; bob's is the mirror image.
        alice_route = route_uris(call)
        assert [(u.host, u.port) for u in alice_route] == [
            ("127.0.0.1", proxy.tls_port),
            (kamailio.host, kamailio.tls_port),
        ], alice_route
        assert [str(u) for u in route_uris(bob_call)] == [str(u) for u in reversed(alice_route)]

        # Audio both ways, end to end, encrypted.
        await wait_until(lambda: alice_heard.loud_frames() > 25, "alice hearing bob")
        await wait_until(lambda: bob_heard.loud_frames() > 25, "bob hearing alice")
        assert abs(heard(alice_heard) - 440) <= 20
        assert abs(heard(bob_heard) - 1000) <= 20
        for events in (alice_events, bob_events):
            started = await events.wait_for("media_started")
            assert isinstance(started, MediaStarted) and started.encrypted

        # Our connection to Kamailio goes away: alice's BYE must open a new one to the Route
        # hop 127.0.0.1:PORT, whose certificate is checked for that address.
        assert proxy.relay.peer_connections
        for conn in proxy.relay.peer_connections:
            conn.stream.close()
        await wait_until(lambda: not proxy.relay.peer_connections, "connection to Kamailio gone")

        # alice hangs up: the BYE goes through our proxy, then Kamailio, to bob.
        await call.hangup()
        assert call.phase is CallPhase.ENDED and call.reason == "hung up"
        await asyncio.wait_for(asyncio.shield(bob_call.ended), WAIT)
        assert bob_call.reason == "the other side hung up"
        assert states(alice_events) == ["calling", "ringing", "established", "ended"]
        hops = [c.peer for c in proxy.relay.peer_connections]
        assert hops == [(kamailio.host, kamailio.tls_port)], hops
        assert [c.domain for c in proxy.relay.peer_connections] == [kamailio.host]

        # Second call: bob hangs up; his BYE goes Kamailio → our proxy (by its address, from
        # our Record-Route) → alice.
        incoming.clear()
        call = await alice.call(f"sips:bob@{kamailio.domain}")
        await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
        await wait_until(lambda: bool(incoming), "bob's second call")
        bob_call = incoming[0]
        await bob_call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
        await bob_call.hangup()
        assert bob_call.reason == "hung up"
        await asyncio.wait_for(asyncio.shield(call.ended), WAIT)
        assert call.reason == "the other side hung up"

        await settle(kamailio)
        log = log_of(kamailio)
        assert "IN INVITE sips:bob@example.test" in log
        assert "IN ACK " in log and "IN BYE " in log and "OUT BYE " in log
        seen = [
            (m.message.method, str(m.message.uri))
            for m in view.messages
            if m.direction == "in" and isinstance(m.message, Request)
        ]
        assert ("INVITE", f"sips:bob@{kamailio.domain}") in seen, seen
        assert [method for method, _ in seen].count("BYE") == 2, seen


async def test_a_kamailio_certificate_without_its_address_stops_our_proxy_at_its_route(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    interop_pki: LabPKI,
    tmp_path: Path,
) -> None:
    """``good`` names example.test only: a new connection to Kamailio's Record-Route address
    (127.0.0.1) cannot be verified, so our proxy answers alice's BYE 502 with the reason and
    sends nothing over an unverified hop (RFC 5922 §7.3). bob's BYE still reaches alice
    (Kamailio to our address, then alice's flow)."""
    kamailio = kamailio_factory(cert="good")
    async with our_proxy(kamailio, interop_pki, tmp_path / "atlanta-ca.pem") as (proxy, view):
        incoming: list[Call] = []
        alice = ua_factory(
            alice_account(proxy, tmp_path / "atlanta-ca.pem"), password=ALICE_PASSWORD
        )
        bob = ua_factory(
            account(kamailio, "bob"),
            password=DEFAULT_USERS["bob"],
            auto_answer=True,
            on_incoming_call=incoming.append,
        )
        await asyncio.gather(alice.register(), bob.register())
        call = await alice.call(f"sips:bob@{kamailio.domain}")
        await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
        await wait_until(lambda: bool(incoming), "bob's call")
        bob_call = incoming[0]
        await bob_call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
        for conn in proxy.relay.peer_connections:  # the one verified as example.test
            conn.stream.close()
        await wait_until(lambda: not proxy.relay.peer_connections, "connection to Kamailio gone")

        await call.hangup()  # best effort: alice's side ends, the BYE does not get through
        reason = f"Bad Gateway: next hop 127.0.0.1:{kamailio.tls_port} is not 127.0.0.1"
        refused = [
            m.message
            for m in view.messages
            if m.direction == "out" and getattr(m.message, "status_code", 0) == 502
        ]
        assert [getattr(r, "reason", "") for r in refused] == [f"{reason} (NAME_MISMATCH)"]
        assert proxy.relay.peer_connections == []
        assert bob_call.phase is CallPhase.ESTABLISHED

        await bob_call.hangup()
        assert bob_call.reason == "hung up"
        bye_in = [
            m.message
            for m in view.messages
            if m.direction == "in" and isinstance(m.message, Request) and m.message.method == "BYE"
        ]
        assert len(bye_in) == 2, bye_in  # alice's (refused) and bob's (relayed to alice)
