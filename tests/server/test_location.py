"""The location service's binding rules (RFC 3261 §10.3, RFC 5626 §6), as tables."""

from __future__ import annotations

import pytest

from softphone.server.location import LocationService, canonical_aor
from softphone.sip.errors import ParseError
from softphone.sip.message import Request
from softphone.sip.parser import parse_message
from softphone.sip.uri import parse_uri

AOR = "sip:alice@example.test"
INSTANCE = '"<urn:uuid:00000000-0000-1000-8000-000000000001>"'


def register(
    *contacts: str,
    expires: int | str | None = None,
    call_id: str = "call-1",
    cseq: int = 1,
    extra: tuple[str, ...] = (),
    vias: int = 1,
) -> Request:
    lines = [
        "REGISTER sip:example.test SIP/2.0",
        *(f"Via: SIP/2.0/TLS host{i}.invalid;branch=z9hG4bK{i}x{cseq}" for i in range(vias)),
        "Max-Forwards: 70",
        "From: <sip:alice@example.test>;tag=1",
        "To: <sip:alice@example.test>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        *(f"Contact: {c}" for c in contacts),
        *([f"Expires: {expires}"] if expires is not None else []),
        *extra,
        "Content-Length: 0",
        "",
        "",
    ]
    message = parse_message("\r\n".join(lines).encode())
    assert isinstance(message, Request)
    return message


def service() -> LocationService:
    return LocationService(min_expires=60, max_expires=3600, default_expires=1800)


@pytest.mark.parametrize(
    ("contact", "header", "granted"),
    [
        ("<sip:a@192.0.2.1>;expires=120", None, 120),  # the contact parameter
        ("<sip:a@192.0.2.1>", 300, 300),  # else the Expires header
        ("<sip:a@192.0.2.1>;expires=120", 300, 120),  # the parameter wins over the header
        ("<sip:a@192.0.2.1>", None, 1800),  # else the default
        ("<sip:a@192.0.2.1>", 7200, 3600),  # clamped to max_expires
        ("<sip:a@192.0.2.1>;expires=99999999999999", None, 3600),  # huge: clamped
        ("<sip:a@192.0.2.1>;expires=60", None, 60),  # exactly the minimum is fine
    ],
)
def test_expiry_choice(contact: str, header: int | None, granted: int) -> None:
    result = service().register(register(contact, expires=header), AOR, 1000.0)
    assert result.status_code == 200
    assert [b.expires for b in result.bindings] == [granted]
    assert result.contacts[0].endswith(f";expires={granted}")


@pytest.mark.parametrize(
    ("contact", "header"),
    [("<sip:a@192.0.2.1>;expires=59", None), ("<sip:a@192.0.2.1>", 1), ("<sip:a@h>;expires=30", 0)],
)
def test_too_brief_is_423_with_min_expires(contact: str, header: int | None) -> None:
    locations = service()
    result = locations.register(register(contact, expires=header), AOR, 0.0)
    assert (result.status_code, result.min_expires) == (423, 60)
    assert locations.bindings(AOR, 0.0) == []


@pytest.mark.parametrize(
    ("contact", "header"),
    [("<sip:a@h>;expires=abc", None), ("<sip:a@h>", "-5"), ("<sip:a@h>", "1 2")],
)
def test_malformed_expiry_is_a_parse_error(contact: str, header: str | None) -> None:
    with pytest.raises(ParseError) as info:
        service().register(register(contact, expires=header), AOR, 0.0)
    assert info.value.status_code == 400


def test_200_lists_every_binding_with_the_time_left() -> None:
    locations = service()
    locations.register(register("<sip:a@192.0.2.1>;expires=600", cseq=1), AOR, 100.0)
    result = locations.register(
        register("<sip:b@192.0.2.2>;expires=300", call_id="call-2"), AOR, 250.0
    )
    assert result.status_code == 200
    assert list(result.contacts) == [
        "<sip:a@192.0.2.1>;expires=450",
        "<sip:b@192.0.2.2>;expires=300",
    ]


def test_query_without_contact_changes_nothing() -> None:
    locations = service()
    locations.register(register("<sip:a@192.0.2.1>;expires=600"), AOR, 0.0)
    result = locations.register(register(cseq=2), AOR, 10.0)
    assert list(result.contacts) == ["<sip:a@192.0.2.1>;expires=590"]


def test_bindings_expire_with_time() -> None:
    locations = service()
    locations.register(register("<sip:a@192.0.2.1>;expires=60"), AOR, 0.0)
    assert len(locations.bindings(AOR, 59.9)) == 1
    assert locations.bindings(AOR, 60.0) == []
    assert len(locations.expire(61.0)) == 1
    assert list(locations) == []


def test_refresh_updates_the_same_binding_by_uri_equality() -> None:
    locations = service()
    locations.register(register("<sip:a@192.0.2.1;transport=tls>;expires=600"), AOR, 0.0)
    # §19.1.4: the host compares case-insensitively, so this is the same contact.
    result = locations.register(
        register("<sip:a@192.0.2.1;TRANSPORT=tls>;expires=900", cseq=2), AOR, 100.0
    )
    assert [b.expires for b in result.bindings] == [900]


def test_unregister_one_contact_keeps_the_others() -> None:
    locations = service()
    locations.register(register("<sip:a@192.0.2.1>", "<sip:b@192.0.2.2>"), AOR, 0.0)
    result = locations.register(register("<sip:a@192.0.2.1>", expires=0, cseq=2), AOR, 1.0)
    assert [str(b.uri) for b in result.bindings] == ["sip:b@192.0.2.2"]


@pytest.mark.parametrize(
    ("call_id", "cseq", "status", "left"),
    [
        ("call-1", 6, 200, 0),  # same Call-ID, higher CSeq: removes
        ("call-1", 5, 500, 2),  # same Call-ID, equal CSeq: fails, nothing removed
        ("call-1", 4, 500, 2),  # lower: fails
        ("call-9", 1, 200, 0),  # another Call-ID: any CSeq goes
    ],
)
def test_wildcard_removal_and_ordering(call_id: str, cseq: int, status: int, left: int) -> None:
    locations = service()
    locations.register(register("<sip:a@h1>", "<sip:b@h2>", cseq=5), AOR, 0.0)
    result = locations.register(register("*", expires=0, call_id=call_id, cseq=cseq), AOR, 1.0)
    assert result.status_code == status
    assert len(locations.bindings(AOR, 1.0)) == left


@pytest.mark.parametrize("expires", [None, 60])
def test_wildcard_needs_expires_zero(expires: int | None) -> None:
    locations = service()
    locations.register(register("<sip:a@h1>"), AOR, 0.0)
    result = locations.register(register("*", expires=expires, cseq=2), AOR, 1.0)
    assert result.status_code == 400
    assert len(locations.bindings(AOR, 1.0)) == 1


@pytest.mark.parametrize(("cseq", "status"), [(3, 500), (2, 500), (4, 200)])
def test_cseq_ordering_within_a_call_id(cseq: int, status: int) -> None:
    locations = service()
    locations.register(register("<sip:a@h1>;expires=600", cseq=3), AOR, 0.0)
    result = locations.register(register("<sip:a@h1>;expires=900", cseq=cseq), AOR, 1.0)
    assert result.status_code == status
    assert [b.expires for b in locations.bindings(AOR, 1.0)] == [900 if status == 200 else 600]


def test_a_failing_update_commits_nothing() -> None:
    locations = service()
    locations.register(register("<sip:a@h1>", cseq=3), AOR, 0.0)
    # One new contact and one stale update in the same request: neither is applied.
    result = locations.register(register("<sip:new@h9>", "<sip:a@h1>", cseq=2), AOR, 1.0)
    assert result.status_code == 500
    assert [str(b.uri) for b in locations.bindings(AOR, 1.0)] == ["sip:a@h1"]


# -- RFC 5626 outbound ------------------------------------------------------------------------


def outbound(reg_id: int = 1, **kwargs: object) -> Request:
    contact = (
        f"<sip:alice@client.invalid;transport=tls;ob>;+sip.instance={INSTANCE};reg-id={reg_id}"
    )
    return register(contact, **kwargs)  # type: ignore[arg-type]


def test_outbound_binding_records_the_flow() -> None:
    locations = service()
    result = locations.register(outbound(expires=600), AOR, 0.0, flow="tls:a#1")
    assert result.status_code == 200
    assert result.outbound
    (binding,) = result.bindings
    assert (binding.instance, binding.reg_id, binding.flow) == (INSTANCE.strip('"'), 1, "tls:a#1")
    assert "+sip.instance=" in result.contacts[0]
    assert "reg-id=1" in result.contacts[0]


def test_same_instance_and_reg_id_move_to_the_new_flow() -> None:
    locations = service()
    locations.register(outbound(), AOR, 0.0, flow="flow-a")
    result = locations.register(outbound(call_id="call-2"), AOR, 5.0, flow="flow-b")
    assert [b.flow for b in result.bindings] == ["flow-b"]
    assert locations.flow_lost("flow-a") == []  # the old flow no longer owns it
    assert len(locations.bindings(AOR, 5.0)) == 1
    assert len(locations.flow_lost("flow-b")) == 1
    assert locations.bindings(AOR, 5.0) == []


def test_other_reg_id_is_another_binding() -> None:
    locations = service()
    locations.register(outbound(reg_id=1), AOR, 0.0, flow="flow-a")
    result = locations.register(outbound(reg_id=2, cseq=2), AOR, 0.0, flow="flow-b")
    assert sorted(b.reg_id or 0 for b in result.bindings) == [1, 2]


def test_a_lost_flow_keeps_plain_bindings() -> None:
    locations = service()
    locations.register(register("<sip:plain@h1>"), AOR, 0.0, flow="flow-a")
    locations.register(outbound(cseq=2), AOR, 0.0, flow="flow-a")
    gone = locations.flow_lost("flow-a")
    assert [b.reg_id for b in gone] == [1]
    assert [str(b.uri) for b in locations.bindings(AOR, 0.0)] == ["sip:plain@h1"]
    assert locations.bindings(AOR, 0.0)[0].flow is None


def test_reg_id_without_instance_is_ignored() -> None:
    result = service().register(register("<sip:a@h1>;reg-id=1"), AOR, 0.0, flow="f")
    assert result.status_code == 200
    assert not result.outbound
    assert result.bindings[0].flow is None


def test_two_registering_contacts_with_reg_id_is_400() -> None:
    request = register(f"<sip:a@h1>;+sip.instance={INSTANCE};reg-id=1", "<sip:b@h2>", expires=600)
    assert service().register(request, AOR, 0.0, flow="f").status_code == 400


def test_unregister_by_instance_and_reg_id() -> None:
    locations = service()
    locations.register(outbound(), AOR, 0.0, flow="f")
    result = locations.register(outbound(expires=0, cseq=2), AOR, 1.0, flow="f")
    assert result.status_code == 200
    assert locations.bindings(AOR, 1.0) == []


@pytest.mark.parametrize(
    ("extra", "status", "is_outbound"),
    [
        (("Supported: outbound",), 439, False),  # not first hop, asked for outbound: 439
        ((), 200, False),  # not first hop, not asked: reg-id ignored
        (("Path: <sip:edge.example.test;lr;ob>", "Supported: outbound, path"), 200, True),
    ],
)
def test_outbound_behind_another_hop(
    extra: tuple[str, ...], status: int, is_outbound: bool
) -> None:
    result = service().register(outbound(vias=2, extra=extra), AOR, 0.0, flow="f")
    assert result.status_code == status
    assert result.outbound is is_outbound
    if result.ok:
        assert (result.bindings[0].flow == "f") is is_outbound


@pytest.mark.parametrize(
    ("uri", "aor"),
    [
        ("sip:Alice@Example.TEST:5061;transport=tls", "sip:Alice@example.test"),
        ("sips:alice@example.test", "sip:alice@example.test"),
        ("sip:%61lice@example.test", "sip:alice@example.test"),
    ],
)
def test_canonical_aor(uri: str, aor: str) -> None:
    assert canonical_aor(parse_uri(uri)) == aor


@pytest.mark.parametrize("uri", ["sip:example.test", "tel:+12125551212"])
def test_canonical_aor_needs_a_user(uri: str) -> None:
    with pytest.raises(ParseError) as info:
        canonical_aor(parse_uri(uri))
    assert info.value.status_code == 404
