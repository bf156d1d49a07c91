"""The registrar over real TLS (and TCP) sockets on 127.0.0.1, driven by a raw SIP client."""

from __future__ import annotations

import asyncio
import logging

import pytest

from softphone.server.registrar import Registrar
from softphone.sip.digest import AuthenticationFailedError, parse_challenges
from softphone.sip.message import Response
from softphone.sip.parser import parse_message
from tests.server.client import WAIT, RawClient

ALICE = "sip:alice@example.test"
INSTANCE = '"<urn:uuid:00000000-0000-1000-8000-00000000abcd>"'
OB_CONTACT = f"<sip:alice@client.invalid;transport=tls;ob>;+sip.instance={INSTANCE};reg-id=1"


async def alice(registrar: Registrar, **kwargs: object) -> RawClient:
    options: dict[str, object] = {"user": "alice", "password": "alice-secret"}
    options.update(kwargs)
    return await RawClient.connect_tls(registrar.tls_port, **options)


async def until(condition: object) -> None:
    """Wait (bounded) until ``condition()`` is true: the server reacts to a close by itself."""

    async def poll() -> None:
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), WAIT)


async def test_register_sha256_gets_200_with_contact_expires(registrar: Registrar) -> None:
    client = await alice(registrar)
    response = await client.register(expires=600)
    assert response.status_code == 200
    first = client.received[0]
    assert first.status_code == 401
    values = first.headers.get_all("WWW-Authenticate")
    algorithms = [c.algorithm_name for v in values for c in parse_challenges(v)]
    assert algorithms == ["SHA-256", "MD5"]  # RFC 8760 §2.4: strongest first
    assert "algorithm=SHA-256" in (client.sent[1].headers.get("Authorization") or "")
    assert response.headers.get_all("Contact") == [
        "<sip:alice@client.invalid;transport=tls>;expires=600"
    ]
    assert response.headers.get("Date") is not None
    assert response.to.tag is not None
    (binding,) = registrar.bindings(ALICE)
    assert binding.expires == 600
    client.close()


async def test_md5_only_client(registrar: Registrar) -> None:
    client = await alice(registrar)
    only_md5 = lambda values: [v for v in values if "algorithm=MD5" in v]  # noqa: E731
    response = await client.register(challenge_filter=only_md5)
    assert response.status_code == 200
    assert "algorithm=MD5" in (client.sent[1].headers.get("Authorization") or "")
    assert len(registrar.bindings(ALICE)) == 1
    client.close()


async def test_wrong_password_is_challenged_again_and_the_client_gives_up(
    registrar: Registrar,
) -> None:
    client = await alice(registrar, password="not-the-password")
    with pytest.raises(AuthenticationFailedError):
        await client.register()
    assert [r.status_code for r in client.received] == [401, 401]
    assert len(client.sent) == 2  # never a loop
    assert registrar.bindings(ALICE) == []
    client.close()


async def test_unknown_user_is_challenged_like_a_wrong_password(registrar: Registrar) -> None:
    client = await alice(registrar, user="mallory", aor_user="mallory", password="x")
    with pytest.raises(AuthenticationFailedError):
        await client.register()
    assert [r.status_code for r in client.received] == [401, 401]
    client.close()


async def test_username_must_match_the_aor(registrar: Registrar) -> None:
    client = await RawClient.connect_tls(
        registrar.tls_port, user="bob", password="bob-secret", aor_user="alice"
    )
    response = await client.register()
    assert response.status_code == 403
    assert registrar.bindings(ALICE) == []
    client.close()


async def test_interval_too_brief(registrar: Registrar) -> None:
    client = await alice(registrar)
    response = await client.register(expires=10)
    assert response.status_code == 423
    assert response.headers.get("Min-Expires") == "60"
    assert registrar.bindings(ALICE) == []
    client.close()


async def test_refresh_with_the_cached_nonce_takes_one_round_trip(registrar: Registrar) -> None:
    client = await alice(registrar)
    assert (await client.register(expires=600)).status_code == 200
    before = len(client.received)
    response = await client.register(preemptive=True, expires=900)
    assert response.status_code == 200
    assert len(client.received) == before + 1  # no new 401
    assert "nc=00000002" in (client.sent[-1].headers.get("Authorization") or "")
    assert [b.expires for b in registrar.bindings(ALICE)] == [900]
    client.close()


async def test_replayed_nonce_count_is_challenged(registrar: Registrar) -> None:
    client = await alice(registrar)
    assert (await client.register()).status_code == 200
    replay = client.request()
    replay.headers.add("Authorization", client.sent[-1].headers.get("Authorization") or "")
    client.send(replay)
    assert (await client.response()).status_code == 401
    client.close()


async def test_unregister_removes_the_binding(registrar: Registrar) -> None:
    client = await alice(registrar)
    assert (await client.register()).status_code == 200
    assert len(registrar.bindings(ALICE)) == 1
    response = await client.register(preemptive=True, expires=0)
    assert response.status_code == 200
    assert response.headers.get_all("Contact") == []
    assert registrar.bindings(ALICE) == []
    client.close()


async def test_wildcard_unregister(registrar: Registrar) -> None:
    client = await alice(registrar)
    await client.register(contacts=["<sip:a@h1>", "<sip:b@h2>"])
    assert len(registrar.bindings(ALICE)) == 2
    response = await client.register(preemptive=True, contacts=["*"], expires=0)
    assert response.status_code == 200
    assert registrar.bindings(ALICE) == []
    client.close()


async def test_unparsable_request_gets_400_and_the_connection_goes_on(
    registrar: Registrar,
) -> None:
    client = await alice(registrar)
    bad = bytes(client.request()).replace(b"Max-Forwards: 70", b"Max-Forwards: many")
    assert parse_message_fails(bad)
    client.send_bytes(bad)
    response = await client.response()
    assert response.status_code == 400
    assert response.call_id == client.call_id
    assert "Max-Forwards" in response.reason
    assert (await client.register()).status_code == 200
    client.close()


async def test_malformed_contact_gets_400_and_the_connection_goes_on(
    registrar: Registrar,
) -> None:
    client = await alice(registrar)
    response = await client.register(contacts=["<sip:alice@client.invalid>;expires=soon"])
    assert response.status_code == 400
    assert (await client.register(preemptive=True)).status_code == 200
    client.close()


async def test_two_requests_in_one_write_one_of_them_broken(registrar: Registrar) -> None:
    client = await alice(registrar)
    bad = bytes(client.request()).replace(b"Max-Forwards: 70", b"Max-Forwards: x")
    good = bytes(client.request("OPTIONS", contacts=()))
    client.send_bytes(bad + good)
    first, second = await client.response(), await client.response()
    assert (first.status_code, first.cseq.method) == (400, "REGISTER")
    assert (second.status_code, second.cseq.method) == (200, "OPTIONS")
    client.close()


async def test_broken_framing_closes_the_connection(registrar: Registrar) -> None:
    client = await alice(registrar)
    no_length = bytes(client.request()).replace(b"Content-Length: 0\r\n", b"")
    client.send_bytes(no_length)
    response = await client.response()
    assert response.status_code == 400
    with pytest.raises(ConnectionResetError):
        await client.receive()
    client.close()


async def test_good_then_broken_framing_in_one_write(registrar: Registrar) -> None:
    client = await alice(registrar)
    good = bytes(client.request("OPTIONS", contacts=()))
    no_length = bytes(client.request()).replace(b"Content-Length: 0\r\n", b"")
    client.send_bytes(good + no_length)
    first, second = await client.response(), await client.response()
    assert (first.status_code, first.cseq.method) == (200, "OPTIONS")
    assert (second.status_code, second.cseq.method) == (400, "REGISTER")
    with pytest.raises(ConnectionResetError):
        await client.receive()
    client.close()


async def test_two_bad_requests_between_good_ones_in_one_write(registrar: Registrar) -> None:
    client = await alice(registrar)
    ok1 = bytes(client.request("OPTIONS", contacts=()))
    bad1 = bytes(client.request()).replace(b"Max-Forwards: 70", b"Max-Forwards: x")
    bad2 = bytes(client.request()).replace(b"Max-Forwards: 70", b"Max-Forwards: y")
    ok2 = bytes(client.request("OPTIONS", contacts=()))
    client.send_bytes(ok1 + bad1 + b"\r\n\r\n" + bad2 + ok2)
    answers = [await client.response() for _ in range(4)]
    first = parse_message(ok1).cseq.seq  # the client numbers its requests 1, 2, 3...
    assert [(r.status_code, r.cseq.seq) for r in answers] == [
        (200, first),
        (400, first + 1),
        (400, first + 2),
        (200, first + 3),
    ]
    assert (await client.register()).status_code == 200
    client.close()


async def test_keepalive_ping_gets_a_pong(registrar: Registrar) -> None:
    client = await alice(registrar)
    client.send_bytes(b"\r\n\r\n")
    assert await client.read_raw() == b"\r\n"
    assert (await client.register()).status_code == 200  # still a working flow
    client.close()


async def test_outbound_flow_lost_removes_its_binding(registrar: Registrar) -> None:
    flow_client = await alice(registrar)
    response = await flow_client.register(contacts=[OB_CONTACT])
    assert response.status_code == 200
    assert response.headers.get("Require") == "outbound"
    plain = await alice(registrar)
    assert (await plain.register(contacts=["<sip:alice@desk.invalid>"])).status_code == 200
    assert len(registrar.bindings(ALICE)) == 2
    (outbound,) = [b for b in registrar.bindings(ALICE) if b.outbound]
    assert outbound.flow in registrar.flows
    flow_client.close()
    await until(lambda: len(registrar.bindings(ALICE)) == 1)
    (left,) = registrar.bindings(ALICE)
    assert not left.outbound
    plain.close()


async def test_reregistration_on_a_new_flow_replaces_the_old_one(registrar: Registrar) -> None:
    first = await alice(registrar)
    assert (await first.register(contacts=[OB_CONTACT])).status_code == 200
    second = await alice(registrar)  # the client reconnected (new Call-ID, new flow)
    assert (await second.register(contacts=[OB_CONTACT])).status_code == 200
    (binding,) = registrar.bindings(ALICE)
    first.close()
    await until(lambda: len(registrar.flows) == 1)
    assert [b.flow for b in registrar.bindings(ALICE)] == [binding.flow]
    second.close()


async def test_drop_flows_closes_connections_and_outbound_bindings(registrar: Registrar) -> None:
    client = await alice(registrar)
    assert (await client.register(contacts=[OB_CONTACT])).status_code == 200
    await registrar.drop_flows()
    assert registrar.bindings(ALICE) == []
    assert registrar.flows == []
    with pytest.raises(ConnectionResetError):
        await client.receive()


@pytest.mark.parametrize(
    ("method", "status"), [("OPTIONS", 200), ("INVITE", 405), ("MESSAGE", 405), ("FOO", 501)]
)
async def test_other_methods(registrar: Registrar, method: str, status: int) -> None:
    # Addressed to the registrar itself (no user): requests for users go to the proxy.
    client = await alice(registrar)
    client.send(client.request(method, contacts=(), uri="sip:example.test"))
    response = await client.response()
    assert response.status_code == status
    assert "REGISTER" in (response.headers.get("Allow") or "")
    client.close()


async def test_invite_answered_405_then_ack_is_absorbed(registrar: Registrar) -> None:
    client = await alice(registrar)
    invite = client.request("INVITE", uri="sip:example.test")
    client.send(invite)
    response = await client.response()
    assert response.status_code == 405
    ack = client.request("ACK", contacts=(), uri="sip:example.test")
    ack.headers.set("Via", invite.headers.get("Via") or "")
    ack.headers.set("CSeq", f"{invite.cseq.seq} ACK")
    ack.headers.set("To", response.headers.get("To") or "")
    client.send(ack)
    client.send(client.request("OPTIONS", contacts=()))
    assert (await client.response()).status_code == 200  # nothing came back for the ACK
    client.close()


async def test_register_for_another_domain_is_404(registrar: Registrar) -> None:
    client = await alice(registrar)
    client.send(client.request(uri="sip:elsewhere.test"))
    assert (await client.response()).status_code == 404
    client.close()


async def test_tcp_listener(registrar: Registrar) -> None:
    client = await RawClient.connect_tcp(registrar.tcp_port, user="alice", password="alice-secret")
    assert (await client.register()).status_code == 200
    client.send_bytes(b"\r\n\r\n")
    assert await client.read_raw() == b"\r\n"
    client.close()


async def test_logs_never_carry_the_digest_response(
    registrar: Registrar, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="softphone.server")
    client = await alice(registrar)
    assert (await client.register()).status_code == 200
    authorization = client.sent[1].headers.get("Authorization") or ""
    response_value = authorization.split('response="', 1)[1].split('"', 1)[0]
    cnonce = authorization.split('cnonce="', 1)[1].split('"', 1)[0]
    assert "Authorization" in caplog.text  # the header is logged, redacted
    assert response_value not in caplog.text
    assert cnonce not in caplog.text
    client.close()


def parse_message_fails(data: bytes) -> bool:
    try:
        parse_message(data)
    except Exception:  # noqa: BLE001
        return True
    return False


def test_response_helper_sanity() -> None:
    assert isinstance(
        parse_message(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS h;branch=z9hG4bKx\r\n"
            b"From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\n"
            b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ),
        Response,
    )
