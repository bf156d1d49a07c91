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
alice's BYE follows the route set back through both proxies (§12.2.1.1).

Waits are bounded (WAIT), never timed.

KNOWN_GAP: Kamailio's Record-Route is its listening address, ``sips:127.0.0.1:PORT;
transport=tls;lr``; our proxy forwards a Route only to a host named in ``routes`` (it does no
RFC 3263 lookups and, today, does not use the numeric host:port of a Route either), so without
the second ``routes`` entry below alice's ACK and BYE die at our proxy with "404 No route to
127.0.0.1" and bob's call never leaves "ringing"; with it, our proxy checks Kamailio's
certificate against the name "127.0.0.1" (RFC 5922 §7.2), hence the ``good-ip`` profile.
Calls from bob's side back to alice need Kamailio to resolve ``atlanta.test`` (our
Record-Route), which it cannot (no DNS here): only
alice ends the call in this test.
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
        routes={
            kamailio.domain: f"{kamailio.host}:{kamailio.tls_port}",
            # Kamailio record-routes with its listening address (sips:127.0.0.1:PORT): our
            # proxy routes a Route only by a host it has in ``routes`` (KNOWN_GAP).
            kamailio.host: f"{kamailio.host}:{kamailio.tls_port}",
        },
        peer_anchors=(pki.ca_cert,),
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


def route_hosts(call: Call) -> list[str]:
    assert call.dialog is not None
    hosts = []
    for route in call.dialog.route_set:
        assert isinstance(route.uri, SipURI)
        hosts.append(route.uri.host)
    return hosts


async def test_sips_call_through_our_proxy_and_kamailio_audio_both_ways_and_bye_follows_route(
    kamailio_factory: Callable[..., KamailioServer],
    ua_factory: Callable[..., UserAgent],
    interop_pki: LabPKI,
    tmp_path: Path,
) -> None:
    # good-ip: its certificate also names 127.0.0.1, the host of its Record-Route (KNOWN_GAP)
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

        # Both proxies are in the route set: ours first for alice (§12.1.2: reversed
        # Record-Route), Kamailio's (its listening address) next; bob's is the mirror image.
        alice_route = route_hosts(call)
        assert alice_route[0] == OUR_DOMAIN and len(alice_route) == 2, alice_route
        assert alice_route[1] in {kamailio.host, kamailio.domain}, alice_route
        assert route_hosts(bob_call) == list(reversed(alice_route))

        # Audio both ways, end to end, encrypted.
        await wait_until(lambda: alice_heard.loud_frames() > 25, "alice hearing bob")
        await wait_until(lambda: bob_heard.loud_frames() > 25, "bob hearing alice")
        assert abs(heard(alice_heard) - 440) <= 20
        assert abs(heard(bob_heard) - 1000) <= 20
        for events in (alice_events, bob_events):
            started = await events.wait_for("media_started")
            assert isinstance(started, MediaStarted) and started.encrypted

        # alice hangs up: the BYE goes through our proxy, then Kamailio, to bob.
        await call.hangup()
        assert call.phase is CallPhase.ENDED and call.reason == "hung up"
        await asyncio.wait_for(asyncio.shield(bob_call.ended), WAIT)
        assert bob_call.reason == "the other side hung up"
        assert states(alice_events) == ["calling", "ringing", "established", "ended"]
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
        assert "BYE" in [method for method, _ in seen], seen
