"""RFC 3261 §12 dialogs: creation, route sets, strict routing, CSeq rules, forking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softphone.sip.dialog import (
    Dialog,
    DialogId,
    DialogSet,
    DialogState,
    new_call_id,
    new_tag,
)
from softphone.sip.errors import LocalProtocolError, RemoteProtocolError
from softphone.sip.headers import parse_via
from softphone.sip.message import Headers, Request, Response
from softphone.sip.parser import parse_message
from softphone.sip.uri import SipURI, parse_uri

CALL_ID = "a84b4c76e66710@pc33.atlanta.example.com"
ALICE_TAG = "1928301774"


def invite(
    *,
    uri: str = "sip:bob@biloxi.example.com",
    transport: str = "UDP",
    record_routes: tuple[str, ...] = (),
    cseq: int = 314159,
    contact: str | None = "<sip:alice@pc33.atlanta.example.com>",
) -> Request:
    headers = Headers()
    headers.add("Via", f"SIP/2.0/{transport} pc33.atlanta.example.com;branch=z9hG4bK776asdhds")
    for rr in record_routes:
        headers.add("Record-Route", rr)
    headers.add("Max-Forwards", "70")
    headers.add("From", f"Alice <sip:alice@atlanta.example.com>;tag={ALICE_TAG}")
    headers.add("To", "Bob <sip:bob@biloxi.example.com>")
    headers.add("Call-ID", CALL_ID)
    headers.add("CSeq", f"{cseq} INVITE")
    if contact is not None:
        headers.add("Contact", contact)
    return Request("INVITE", parse_uri(uri), headers)


def answer(
    request: Request,
    code: int,
    *,
    tag: str | None = "a6c85cf",
    contact: str | None = "<sip:bob@192.0.2.4>",
    record_routes: tuple[str, ...] | None = None,
) -> Response:
    response = Response.for_request(request, code, to_tag=tag)
    rrs = request.headers.get_all("Record-Route") if record_routes is None else record_routes
    for rr in rrs:
        response.headers.add("Record-Route", rr)
    if contact is not None:
        response.headers.add("Contact", contact)
    return response


def in_dialog(
    method: str,
    cseq: int,
    *,
    local_tag: str = "a6c85cf",
    remote_tag: str = ALICE_TAG,
    contact: str | None = None,
) -> Request:
    """A request Alice sends in the dialog, as Bob (the UAS) receives it."""
    headers = Headers()
    headers.add("Via", "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds7")
    headers.add("From", f"<sip:alice@atlanta.example.com>;tag={remote_tag}")
    headers.add("To", f"<sip:bob@biloxi.example.com>;tag={local_tag}")
    headers.add("Call-ID", CALL_ID)
    headers.add("CSeq", f"{cseq} {method}")
    if contact is not None:
        headers.add("Contact", contact)
    return Request(method, parse_uri("sip:bob@192.0.2.4"), headers)


RR = ("<sip:p2.biloxi.example.com;lr>", "<sip:p1.atlanta.example.com;lr>")


# -- creation --------------------------------------------------------------------------------


def test_uac_early_dialog_from_provisional_with_tag() -> None:
    request = invite(record_routes=RR)
    dialog = Dialog.from_uac(request, answer(request, 180))
    assert dialog.state is DialogState.EARLY
    assert dialog.id == DialogId(CALL_ID, ALICE_TAG, "a6c85cf")
    assert dialog.local_seq == 314159 and dialog.remote_seq is None
    assert str(dialog.remote_target) == "sip:bob@192.0.2.4"
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p1.atlanta.example.com;lr",
        "sip:p2.biloxi.example.com;lr",
    ]  # reversed Record-Route
    assert str(dialog.local_uri) == "sip:alice@atlanta.example.com"
    assert str(dialog.remote_uri) == "sip:bob@biloxi.example.com"
    assert dialog.secure is False
    assert dialog.is_uac


def test_uac_confirmed_dialog_from_2xx() -> None:
    request = invite()
    dialog = Dialog.from_uac(request, answer(request, 200))
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.route_set == []


@pytest.mark.parametrize(("code", "tag"), [(100, "x"), (180, None), (486, "x")])
def test_responses_that_create_no_dialog(code: int, tag: str | None) -> None:
    request = invite()
    with pytest.raises(LocalProtocolError):
        Dialog.from_uac(request, answer(request, code, tag=tag))


def test_2xx_without_to_tag_is_rfc2543_null_tag() -> None:
    request = invite()
    dialog = Dialog.from_uac(request, answer(request, 200, tag=None))
    assert dialog.remote_tag == ""
    bye = dialog.create_request("BYE")
    assert bye.to.tag is None


@pytest.mark.parametrize(
    ("uri", "transport", "over_tls", "secure"),
    [
        ("sips:bob@biloxi.example.com", "TLS", None, True),
        ("sips:bob@biloxi.example.com", "UDP", None, False),
        ("sip:bob@biloxi.example.com", "TLS", None, False),
        ("sips:bob@biloxi.example.com", "TCP", True, True),
        ("sips:bob@biloxi.example.com", "TLS", False, False),
    ],
)
def test_secure_flag_needs_tls_and_sips(
    uri: str, transport: str, over_tls: bool | None, secure: bool
) -> None:
    request = invite(uri=uri, transport=transport)
    assert Dialog.from_uac(request, answer(request, 200), over_tls=over_tls).secure is secure
    uas = Dialog.from_uas(request, new_tag(), "<sips:bob@192.0.2.4>", over_tls=over_tls)
    assert uas.secure is secure


def test_uas_dialog() -> None:
    request = invite(record_routes=RR)
    dialog = Dialog.from_uas(request, "bobtag", "<sip:bob@192.0.2.4>", early=True)
    assert dialog.state is DialogState.EARLY
    assert dialog.id == DialogId(CALL_ID, "bobtag", ALICE_TAG)
    assert dialog.remote_seq == 314159 and dialog.local_seq is None
    assert str(dialog.remote_target) == "sip:alice@pc33.atlanta.example.com"
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p2.biloxi.example.com;lr",
        "sip:p1.atlanta.example.com;lr",
    ]  # in order
    assert str(dialog.local_uri) == "sip:bob@biloxi.example.com"
    assert str(dialog.remote_uri) == "sip:alice@atlanta.example.com"
    dialog.confirm()
    assert dialog.state is DialogState.CONFIRMED
    with pytest.raises(RemoteProtocolError) as excinfo:
        Dialog.from_uas(invite(contact=None), "t", "<sip:bob@192.0.2.4>")
    assert excinfo.value.status_code == 400


# -- early -> confirmed, forking -------------------------------------------------------------


def test_early_dialog_confirmed_by_2xx_recomputes_route_set() -> None:
    request = invite()
    dialog = Dialog.from_uac(request, answer(request, 183, record_routes=("<sip:a.example;lr>",)))
    ok = answer(request, 200, contact="<sip:bob@198.51.100.7>", record_routes=RR)
    dialog.receive_response(ok)
    assert dialog.state is DialogState.CONFIRMED
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p1.atlanta.example.com;lr",
        "sip:p2.biloxi.example.com;lr",
    ]
    assert str(dialog.remote_target) == "sip:bob@198.51.100.7"


def test_early_dialog_terminated_by_non2xx() -> None:
    request = invite()
    dialog = Dialog.from_uac(request, answer(request, 180))
    dialog.receive_response(answer(request, 486))
    assert dialog.state is DialogState.TERMINATED


def test_forked_invite_creates_one_early_dialog_per_remote_tag() -> None:
    request = invite()
    dialogs = DialogSet(request)
    assert dialogs.receive_response(answer(request, 100, tag=None)) is None
    first = dialogs.receive_response(answer(request, 180, tag="fork1"))
    second = dialogs.receive_response(answer(request, 180, tag="fork2"))
    assert first is not None and second is not None and first is not second
    assert dialogs.receive_response(answer(request, 183, tag="fork1")) is first
    assert {d.remote_tag for d in dialogs.early} == {"fork1", "fork2"}
    confirmed = dialogs.receive_response(answer(request, 200, tag="fork2"))
    assert confirmed is second and second.state is DialogState.CONFIRMED
    assert first.state is DialogState.EARLY
    late = dialogs.receive_response(answer(request, 200, tag="fork3"))  # a 2xx from a new fork
    assert late is not None and late.state is DialogState.CONFIRMED
    assert len(dialogs.confirmed) == 2


def test_forked_invite_final_failure_ends_all_early_dialogs() -> None:
    request = invite()
    dialogs = DialogSet(request)
    a = dialogs.receive_response(answer(request, 180, tag="f1"))
    b = dialogs.receive_response(answer(request, 180, tag="f2"))
    assert dialogs.receive_response(answer(request, 480, tag="f3")) is None
    assert a is not None and b is not None
    assert a.state is b.state is DialogState.TERMINATED


# -- requests within the dialog (§12.2.1.1) --------------------------------------------------


def confirmed_uac(record_routes: tuple[str, ...] = RR) -> Dialog:
    request = invite(record_routes=record_routes)
    return Dialog.from_uac(request, answer(request, 200))


def test_create_request_loose_routing_and_cseq_increment() -> None:
    dialog = confirmed_uac()
    info = dialog.create_request("INFO")
    bye = dialog.create_request("BYE")
    assert (info.cseq.seq, bye.cseq.seq) == (314160, 314161)
    assert dialog.local_seq == 314161
    assert str(bye.uri) == "sip:bob@192.0.2.4"
    assert bye.headers.get_all("Route") == [
        "<sip:p1.atlanta.example.com;lr>",
        "<sip:p2.biloxi.example.com;lr>",
    ]
    assert bye.from_.tag == ALICE_TAG and bye.to.tag == "a6c85cf"
    assert str(bye.from_.uri) == "sip:alice@atlanta.example.com"
    assert str(bye.to.uri) == "sip:bob@biloxi.example.com"
    assert bye.call_id == CALL_ID
    assert bye.headers.get("Max-Forwards") == "70"
    assert "Contact" not in bye.headers  # BYE is not a target refresh
    reinvite = dialog.create_request("INVITE", body=b"v=0\r\n", content_type="application/sdp")
    assert reinvite.headers.get("Contact") == "<sip:alice@pc33.atlanta.example.com>"
    assert reinvite.content_type == "application/sdp" and reinvite.body == b"v=0\r\n"


def test_create_request_strict_routing() -> None:
    dialog = confirmed_uac(
        record_routes=(
            "<sip:p2.biloxi.example.com;lr>",
            "<sip:p1.atlanta.example.com;method=INVITE>",
        )
    )
    # reversed: the first route is p1, a strict router (no ;lr)
    bye = dialog.create_request("BYE")
    assert isinstance(bye.uri, SipURI)
    assert bye.uri.host == "p1.atlanta.example.com"
    assert "method" not in bye.uri.params  # not allowed in a Request-URI (§19.1.1)
    assert bye.headers.get_all("Route") == [
        "<sip:p2.biloxi.example.com;lr>",
        "<sip:bob@192.0.2.4>",  # remote target appended last
    ]


def test_in_dialog_requests_survive_the_wire() -> None:
    dialog = confirmed_uac()
    via = parse_via("SIP/2.0/UDP pc33.atlanta.example.com;rport")
    for request in (
        dialog.create_request("BYE", via=via),
        dialog.create_request("INVITE", via=via, body=b"v=0\r\n", content_type="application/sdp"),
    ):
        parsed = parse_message(bytes(request))
        assert isinstance(parsed, Request)
        assert parsed.headers.get_all("Route") == request.headers.get_all("Route")
        assert parsed.from_.tag == ALICE_TAG and parsed.to.tag == "a6c85cf"
        assert parsed.body == request.body


def test_create_request_via_gets_fresh_branch() -> None:
    dialog = confirmed_uac(record_routes=())
    via = parse_via("SIP/2.0/TLS pc33.atlanta.example.com")
    a = dialog.create_request("INFO", via=via)
    b = dialog.create_request("INFO", via=via)
    assert a.top_via.branch and a.top_via.branch.startswith("z9hG4bK")
    assert a.top_via.branch != b.top_via.branch
    assert "Via" not in dialog.create_request("INFO").headers
    assert a.headers.get_all("Route") == []


def test_ack_and_cancel_do_not_increment_cseq() -> None:
    dialog = confirmed_uac()
    assert dialog.create_request("ACK").cseq.seq == 314159
    assert dialog.create_request("CANCEL").cseq.seq == 314159
    assert dialog.local_seq == 314159


def test_uas_first_request_picks_initial_cseq() -> None:
    dialog = Dialog.from_uas(invite(), "bobtag", "<sip:bob@192.0.2.4>")
    bye = dialog.create_request("BYE")
    assert 0 < bye.cseq.seq < 2**31
    assert bye.from_.tag == "bobtag" and bye.to.tag == ALICE_TAG
    assert str(bye.uri) == "sip:alice@pc33.atlanta.example.com"
    assert dialog.create_request("INFO").cseq.seq == bye.cseq.seq + 1
    with pytest.raises(LocalProtocolError):
        Dialog.from_uas(invite(), "t", "<sip:bob@x>").create_request("ACK")


def test_create_ack_for_2xx() -> None:
    request = invite()
    ok = answer(request, 200)
    ok.headers.set(
        "Via",
        "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds"
        ";received=192.0.2.101;rport=5062",
    )
    dialog = Dialog.from_uac(request, ok)
    dialog.create_request("INFO")  # the ACK keeps the INVITE's number regardless
    ack = dialog.create_ack(ok)
    assert ack.method == "ACK"
    assert (ack.cseq.seq, ack.cseq.method) == (314159, "ACK")
    via = ack.top_via
    assert via.branch and via.branch.startswith("z9hG4bK") and via.branch != "z9hG4bK776asdhds"
    assert via.received is None and "rport" in via.params and via.params["rport"] is None
    assert ack.to.tag == "a6c85cf"
    assert str(ack.uri) == "sip:bob@192.0.2.4"
    with pytest.raises(LocalProtocolError):
        dialog.create_ack(answer(request, 486))


def test_terminated_dialog_sends_nothing() -> None:
    dialog = confirmed_uac()
    dialog.terminate()
    with pytest.raises(LocalProtocolError):
        dialog.create_request("BYE")
    with pytest.raises(LocalProtocolError):
        dialog.confirm()


# -- responses within the dialog (§12.2.1.2) -------------------------------------------------


def test_2xx_to_reinvite_refreshes_target_but_not_route_set() -> None:
    dialog = confirmed_uac()
    routes = [str(r) for r in dialog.route_set]
    reinvite = dialog.create_request("INVITE")
    ok = Response.for_request(reinvite, 200)
    ok.headers.add("Contact", "<sip:bob@203.0.113.9>")
    ok.headers.add("Record-Route", "<sip:evil.example.com;lr>")
    dialog.receive_response(ok)
    assert str(dialog.remote_target) == "sip:bob@203.0.113.9"
    assert [str(r) for r in dialog.route_set] == routes
    assert dialog.state is DialogState.CONFIRMED


@pytest.mark.parametrize("code", [408, 481])
def test_408_481_terminate_the_dialog(code: int) -> None:
    dialog = confirmed_uac()
    info = dialog.create_request("INFO")
    dialog.receive_response(Response.for_request(info, code))
    assert dialog.state is DialogState.TERMINATED


def test_2xx_to_bye_terminates_and_401_does_not() -> None:
    dialog = confirmed_uac()
    bye = dialog.create_request("BYE")
    dialog.receive_response(Response.for_request(bye, 401))
    assert dialog.state is DialogState.CONFIRMED
    bye = dialog.create_request("BYE")
    dialog.receive_response(Response.for_request(bye, 200))
    assert dialog.state is DialogState.TERMINATED


def test_response_of_another_dialog_is_refused() -> None:
    dialog = confirmed_uac()
    other = answer(invite(), 200, tag="someone-else")
    with pytest.raises(LocalProtocolError):
        dialog.receive_response(other)


# -- requests received in the dialog (§12.2.2) -----------------------------------------------


def confirmed_uas() -> Dialog:
    return Dialog.from_uas(invite(cseq=10), "a6c85cf", "<sip:bob@192.0.2.4>")


def test_receive_request_cseq_rules() -> None:
    dialog = confirmed_uas()
    dialog.receive_request(in_dialog("ACK", 10))
    assert dialog.remote_seq == 10
    dialog.receive_request(in_dialog("INFO", 12))  # gaps are fine
    assert dialog.remote_seq == 12
    with pytest.raises(RemoteProtocolError) as excinfo:
        dialog.receive_request(in_dialog("INFO", 11))
    assert excinfo.value.status_code == 500
    assert dialog.remote_seq == 12
    dialog.receive_request(in_dialog("CANCEL", 5))  # CANCEL/ACK are not checked
    assert dialog.remote_seq == 12


def test_uas_with_empty_remote_seq_takes_the_first() -> None:
    dialog = Dialog.from_uac(invite(), answer(invite(), 200))
    assert dialog.remote_seq is None
    bye = in_dialog("BYE", 1, local_tag=ALICE_TAG, remote_tag="a6c85cf")
    dialog.receive_request(bye)
    assert dialog.remote_seq == 1
    assert dialog.state is DialogState.TERMINATED


def test_target_refresh_on_reinvite_and_update_only() -> None:
    dialog = confirmed_uas()
    dialog.receive_request(in_dialog("INFO", 11, contact="<sip:alice@203.0.113.1>"))
    assert str(dialog.remote_target) == "sip:alice@pc33.atlanta.example.com"
    dialog.receive_request(in_dialog("INVITE", 12, contact="<sip:alice@203.0.113.2>"))
    assert str(dialog.remote_target) == "sip:alice@203.0.113.2"
    dialog.receive_request(in_dialog("UPDATE", 13, contact="<sip:alice@203.0.113.3>"))
    assert str(dialog.remote_target) == "sip:alice@203.0.113.3"
    dialog.receive_request(in_dialog("UPDATE", 14))  # no Contact: unchanged
    assert str(dialog.remote_target) == "sip:alice@203.0.113.3"


def test_bye_terminates_and_later_requests_get_481() -> None:
    dialog = confirmed_uas()
    dialog.receive_request(in_dialog("BYE", 11))
    assert dialog.state is DialogState.TERMINATED
    with pytest.raises(RemoteProtocolError) as excinfo:
        dialog.receive_request(in_dialog("INFO", 12))
    assert excinfo.value.status_code == 481


def test_request_for_another_dialog_gets_481() -> None:
    dialog = confirmed_uas()
    with pytest.raises(RemoteProtocolError) as excinfo:
        dialog.receive_request(in_dialog("INFO", 11, remote_tag="stranger"))
    assert excinfo.value.status_code == 481


def test_dialog_id_helpers() -> None:
    request = in_dialog("INFO", 3)
    assert DialogId.of_incoming_request(request) == confirmed_uas().id
    request = invite()
    assert DialogId.of_incoming_response(answer(request, 200)) == confirmed_uac().id


# -- identifiers -----------------------------------------------------------------------------


def test_tags_and_call_ids_have_entropy() -> None:
    tags = {new_tag() for _ in range(2000)}
    assert len(tags) == 2000
    assert all(len(t) * 4 >= 64 for t in tags)  # hex: >= 64 bits (§19.3 asks >= 32)
    assert new_call_id("pc33.example.com").endswith("@pc33.example.com")
    assert len({new_call_id() for _ in range(1000)}) == 1000


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["INFO", "UPDATE", "ACK", "OPTIONS"]), st.integers(0, 30)),
        max_size=30,
    )
)
def test_remote_seq_never_decreases(steps: list[tuple[str, int]]) -> None:
    dialog = confirmed_uas()
    for method, seq in steps:
        before = dialog.remote_seq
        assert before is not None
        try:
            dialog.receive_request(in_dialog(method, seq))
        except RemoteProtocolError as exc:
            assert exc.status_code == 500 and seq < before and method != "ACK"
            assert dialog.remote_seq == before
        else:
            assert method == "ACK" or seq >= before
        assert dialog.remote_seq is not None and dialog.remote_seq >= before
