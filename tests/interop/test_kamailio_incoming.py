"""Requests to us reach the softphone on the flow its REGISTER went out on (RFC 5626 §3, §5.3).

The softphone's UserAgent registers alice with a real Kamailio over TLS; bob, a stdlib probe
(tests/interop/sipclient.py) on its own TLS connection, sends ``OPTIONS sip:alice@example.test``
through Kamailio, answering its 407 with Digest credentials (the config challenges requests
From its own domain). Kamailio's ``lookup("location")`` finds alice's binding (the source of
the REGISTER is remembered by ``fix_nated_register``) and ``t_relay`` forwards the OPTIONS.
The UA has no listening socket at all, so any delivery must reuse the registration's TLS
connection; the test checks that from both ends: the 200 leaves the UA on the very flow
object the REGISTER used, Kamailio logs the reply as coming from that flow's local port, and
Kamailio holds no TCP/TLS connection but alice's flow and bob's. Once the UA has unregistered,
Kamailio answers the same OPTIONS itself (404: no binding).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest

from softphone.sip.message import Message, Response
from softphone.ua.useragent import UserAgent
from tests.interop.helpers import account_for, contacts, log_of, settle
from tests.interop.kamailio import DEFAULT_USERS, KamailioServer
from tests.interop.sipclient import SipProbe, SipResponse, digest_authorization, parse_challenge
from tests.ua.test_registration import WAIT, EventLog

pytestmark = pytest.mark.interop

USER_ALICE = "alice"  # registered by the UserAgent
BOB = "bob"  # the probe sending OPTIONS to alice


def options_as_bob(
    server: KamailioServer, ruri: str
) -> tuple[SipResponse | None, SipResponse | None, int]:
    """OPTIONS ``ruri`` from bob on a fresh TLS connection: (first answer, answer to the
    Digest retry or None when the first was not a 407/401, Kamailio's count of open
    connections right after, bob's still included). Blocking: run it in a thread."""
    with SipProbe.connect(server.tls_port, cafile=server.ca_cert_path) as probe:
        from_uri = f"sip:{BOB}@{server.domain}"
        first = probe.transact(
            probe.build("OPTIONS", ruri, from_uri=from_uri, to_uri=ruri), timeout=WAIT
        )
        if first is None or first.status not in (401, 407):
            return first, None, open_connections(server)
        header = "Proxy-Authenticate" if first.status == 407 else "WWW-Authenticate"
        challenge = parse_challenge(first.header(header) or "")
        credentials = digest_authorization(
            challenge, user=BOB, password=DEFAULT_USERS[BOB], method="OPTIONS", uri=ruri
        )
        answer = "Proxy-Authorization" if first.status == 407 else "Authorization"
        retry = probe.build(
            "OPTIONS",
            ruri,
            from_uri=from_uri,
            to_uri=ruri,
            headers=[f"{answer}: {credentials}"],
        )
        final = probe.transact(retry, timeout=WAIT)
        return first, final, open_connections(server)


def open_connections(server: KamailioServer) -> int:
    """Kamailio's current number of TCP/TLS connections (``core.tcp_info``)."""
    match = re.search(r"opened_connections:\s*(\d+)", server.rpc("core.tcp_info"))
    assert match is not None
    return int(match.group(1))


async def test_options_to_registered_user_arrives_on_the_register_flow(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory()
    events = EventLog()
    ua = ua_factory(account_for(server), on_event=events)
    await ua.register()
    await events.wait_for("registered")
    assert len(await contacts(server)) == 1
    flow = ua.flow
    assert flow is not None and not flow.is_closed
    local_port = flow.local_address[1]

    sent: list[Message] = []
    send = flow.send

    def recording(message: Message) -> None:
        sent.append(message)
        send(message)

    flow.send = recording  # type: ignore[method-assign]
    connections_before = await asyncio.to_thread(open_connections, server)

    ruri = f"sip:{USER_ALICE}@{server.domain}"
    first, final, connections_during = await asyncio.to_thread(options_as_bob, server, ruri)

    # Kamailio wanted bob's credentials first (From is its own domain), then relayed.
    assert first is not None and first.status == 407, first and first.start_line
    assert final is not None, "no final answer to the authenticated OPTIONS"
    assert final.status == 200, final.start_line
    # The 200 is our UA's, not Kamailio's: only OPTIONS allowed, outbound supported, no
    # Kamailio Server header, and an 80-bit hex To-tag (softphone.sip.dialog.new_tag).
    assert final.header("Allow") == "OPTIONS"
    assert "outbound" in (final.header("Supported") or "")
    assert final.header("Server") is None
    to_tag = re.search(r";tag=([^;>\s]+)", final.header("To") or "")
    assert to_tag is not None and re.fullmatch(r"[0-9a-f]{20}", to_tag.group(1))

    # At the UA: the 200 left on the very flow the REGISTER used, which is still open.
    ours = [m for m in sent if isinstance(m, Response) and m.status_code == 200]
    assert len(ours) == 1
    assert ua.flow is flow and not flow.is_closed
    assert f";tag={to_tag.group(1)}" in str(ours[0].headers.get("To"))

    # At Kamailio: relayed to alice's binding, the reply came from the flow's local port, and
    # no connection was opened to reach alice: while bob's was open, alice's flow and bob's
    # were all there were.
    assert connections_during == connections_before + 1
    await settle(server)
    log = log_of(server)
    assert re.search(rf"OUT OPTIONS sips?:{USER_ALICE}@127\.0\.0\.1:{local_port}\b", log), log
    assert re.search(rf"RPL 200 .* from 127\.0\.0\.1:{local_port}/tls", log), log
    assert len(await contacts(server)) == 1  # still registered, on the same flow


async def test_options_after_unregister_is_answered_by_kamailio(
    kamailio_factory: Callable[..., KamailioServer], ua_factory: Callable[..., UserAgent]
) -> None:
    server = kamailio_factory()
    ua = ua_factory(account_for(server))
    await ua.register()
    ruri = f"sip:{USER_ALICE}@{server.domain}"
    _, before, _ = await asyncio.to_thread(options_as_bob, server, ruri)
    assert before is not None and before.status == 200

    await ua.close()  # unregisters (Expires 0), then closes the flow
    assert await contacts(server) == []
    first, final, _ = await asyncio.to_thread(options_as_bob, server, ruri)
    assert first is not None and first.status == 407
    # route[LOCATION]: lookup("location") found no binding (-1), so Kamailio says 404 itself
    assert final is not None, "no final answer to the authenticated OPTIONS"
    assert final.status == 404, final.start_line
    assert final.header("Server") == "kamailio-interop"  # Kamailio's own answer
