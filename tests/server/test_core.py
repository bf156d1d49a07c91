"""RegistrarCore, the sans-I/O part: requests and ``now`` in, responses out."""

from __future__ import annotations

import pytest

from softphone.server.config import RegistrarConfig, UserEntry
from softphone.server.registrar import RegistrarCore, error_response_for_raw
from softphone.sip.digest import Algorithm, DigestClient, compute_ha1
from softphone.sip.errors import ParseError
from softphone.sip.message import Request, Response
from softphone.sip.parser import parse_message


def core(**changes: object) -> RegistrarCore:
    options: dict[str, object] = {"domain": "example.test", "users": {"alice": "pw"}}
    options.update(changes)
    return RegistrarCore(RegistrarConfig(**options))  # type: ignore[arg-type]


def request(
    method: str = "REGISTER",
    uri: str = "sip:example.test",
    *extra: str,
    to: str = "sip:alice@example.test",
    cseq: int = 1,
) -> Request:
    text = "\r\n".join(
        [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/TLS client.invalid;branch=z9hG4bK{method}{cseq}",
            "Max-Forwards: 70",
            f"From: <{to}>;tag=f",
            f"To: <{to}>",
            "Call-ID: core-test",
            f"CSeq: {cseq} {method}",
            *extra,
            "Content-Length: 0",
            "",
            "",
        ]
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def authorized(
    reg: RegistrarCore, client: DigestClient, now: float, *extra: str, cseq: int = 2
) -> Request:
    challenge = reg.handle_request(request(cseq=cseq - 1), now)
    assert challenge is not None and challenge.status_code == 401
    headers = client.handle_challenge(
        401, challenge.headers.get_all("WWW-Authenticate"), "REGISTER", "sip:example.test"
    )
    return request(
        "REGISTER",
        "sip:example.test",
        *extra,
        *(f"{h.name}: {h.value}" for h in headers),
        cseq=cseq,
    )


def answer(reg: RegistrarCore, req: Request, now: float = 0.0) -> Response:
    response = reg.handle_request(req, now, flow="f")
    assert response is not None
    return response


@pytest.mark.parametrize(
    ("req", "status"),
    [
        (request("OPTIONS", "sip:example.test"), 200),
        (request("OPTIONS", "tel:+12125551212"), 416),
        (request("BYE", "sip:bob@example.test"), 405),
        (request("FOO", "sip:bob@example.test"), 501),
        (request("CANCEL", "sip:bob@example.test"), 481),
        (request("OPTIONS", "sip:example.test", "Require: 100rel, outbound"), 420),
        (request("REGISTER", "sip:other.test"), 404),
        (request("REGISTER", "sip:example.test", to="sip:alice@other.test"), 404),
        (request("REGISTER", "sip:example.test", to="sip:example.test"), 404),
        (request("REGISTER", "sip:example.test"), 401),
    ],
)
def test_status_table(req: Request, status: int) -> None:
    response = answer(core(), req)
    assert response.status_code == status
    if status == 420:
        assert response.headers.get("Unsupported") == "100rel"
    if status in (405, 501):
        assert response.headers.get("Allow") == "REGISTER, OPTIONS, ACK, CANCEL"


def test_ack_gets_no_response() -> None:
    assert core().handle_request(request("ACK", "sip:bob@example.test"), 0.0) is None


def test_register_with_a_password_from_the_ha1_table() -> None:
    ha1 = compute_ha1(Algorithm.SHA_256, "alice", "example.test", "pw")
    reg = core(users={"alice": UserEntry(ha1={"sha256": ha1})}, algorithms=(Algorithm.SHA_256,))
    req = authorized(reg, DigestClient("alice", "pw"), 0.0, "Contact: <sip:a@h>")
    assert answer(reg, req).status_code == 200


def test_expired_nonce_is_challenged_with_stale() -> None:
    reg = core(nonce_lifetime=30.0)
    client = DigestClient("alice", "pw")
    req = authorized(reg, client, 0.0, "Contact: <sip:a@h>")
    assert answer(reg, req, 1.0).status_code == 200
    late = request("REGISTER", "sip:example.test", "Contact: <sip:a@h>", cseq=3)
    for header in client.authorize("REGISTER", "sip:example.test"):
        late.headers.add(header.name, header.value)
    response = answer(reg, late, 100.0)
    assert response.status_code == 401
    assert all("stale=true" in v for v in response.headers.get_all("WWW-Authenticate"))


def test_ok_response_carries_outbound_and_flow_timer() -> None:
    reg = core(flow_timer=120)
    contact = 'Contact: <sip:a@h;ob>;+sip.instance="<urn:uuid:1>";reg-id=1'
    response = answer(reg, authorized(reg, DigestClient("alice", "pw"), 0.0, contact))
    assert response.status_code == 200
    assert response.headers.get("Require") == "outbound"
    assert response.headers.get("Flow-Timer") == "120"
    assert reg.location.bindings("sip:alice@example.test", 0.0)[0].flow == "f"


def test_500_for_out_of_order_cseq_says_when_to_retry() -> None:
    reg = core()
    client = DigestClient("alice", "pw")
    assert (
        answer(reg, authorized(reg, client, 0.0, "Contact: <sip:a@h>", cseq=10)).status_code == 200
    )
    stale = request("REGISTER", "sip:example.test", "Contact: <sip:a@h>", cseq=9)
    for header in client.authorize("REGISTER", "sip:example.test"):
        stale.headers.add(header.name, header.value)
    response = answer(reg, stale)
    assert response.status_code == 500
    assert response.headers.get("Retry-After") is not None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            b"REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/TLS h;branch=z9hG4bK1\r\nCall-ID: c\r\n\r\n",
            400,
        ),
        (b"REGISTER sip:x SIP/2.0\r\nCall-ID: c\r\n\r\n", None),  # no Via: no way back
        (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS h\r\n\r\n", None),  # never answer a response
        (b"REGISTER sip:x SIP/2.0\r\nv: SIP/2.0/TLS h;branch=z9hG4bK1\r\ni: \x00\r\n\r\n", None),
    ],
)
def test_error_response_for_raw(raw: bytes, expected: int | None) -> None:
    response = error_response_for_raw(raw, ParseError("broken"))
    assert (response.status_code if response else None) == expected
    if response is not None:
        assert response.headers.get("Call-ID") == "c"
        assert "broken" in response.reason
