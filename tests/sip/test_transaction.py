"""RFC 3261 §17 / RFC 6026 transaction machines, timers, matching and the transaction layer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softphone.sip.errors import LocalProtocolError
from softphone.sip.message import Headers, Request, Response
from softphone.sip.parser import parse_message
from softphone.sip.timers import Arm, Timer, TimerConfig, TimerSet
from softphone.sip.transaction import (
    Deliver,
    Event,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Send,
    Terminated,
    Timeout,
    Transaction,
    TransactionState,
    TransportError,
    make_non2xx_ack,
)
from softphone.sip.transaction_layer import (
    ClientKey,
    LegacyServerKey,
    NewRequest,
    ServerKey,
    StrayResponse,
    TransactionLayer,
    cancel_target_key,
    client_key,
    make_cancel,
    new_branch,
    server_key,
)
from softphone.sip.uri import parse_uri

S = TransactionState
BRANCH = "z9hG4bK74bf9"


def make_request(
    method: str = "INVITE",
    *,
    branch: str = BRANCH,
    host: str = "client.example.com",
    port: int | None = 5060,
    cseq: int = 1,
    cseq_method: str | None = None,
    uri: str = "sip:bob@biloxi.example.com",
    to_tag: str | None = None,
    routes: tuple[str, ...] = (),
    timestamp: str | None = None,
) -> Request:
    headers = Headers()
    sent_by = host if port is None else f"{host}:{port}"
    headers.add("Via", f"SIP/2.0/UDP {sent_by};branch={branch}")
    headers.add("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKproxy")
    for route in routes:
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    headers.add("From", "Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl")
    headers.add("To", "<sip:bob@biloxi.example.com>" + (f";tag={to_tag}" if to_tag else ""))
    headers.add("Call-ID", "3848276298220188511@atlanta.example.com")
    headers.add("CSeq", f"{cseq} {cseq_method or method}")
    headers.add("Contact", "<sip:alice@client.example.com>")
    if timestamp is not None:
        headers.add("Timestamp", timestamp)
    return Request(method, parse_uri(uri), headers)


def reply(request: Request, code: int, to_tag: str | None = "314159") -> Response:
    return Response.for_request(request, code, to_tag=to_tag)


def sends(actions: list) -> list:
    return [a.message for a in actions if isinstance(a, Send)]


def kinds(actions: list) -> list[type]:
    return [type(a) for a in actions]


# -- timers ----------------------------------------------------------------------------------


def test_timer_durations_follow_table_4() -> None:
    cfg = TimerConfig()
    unreliable = {t: cfg.initial(t, reliable=False) for t in Timer}
    assert unreliable == {
        Timer.A: 0.5,
        Timer.B: 32.0,
        Timer.D: 32.0,
        Timer.E: 0.5,
        Timer.F: 32.0,
        Timer.G: 0.5,
        Timer.H: 32.0,
        Timer.I: 5.0,
        Timer.J: 32.0,
        Timer.K: 5.0,
        Timer.L: 32.0,
        Timer.M: 32.0,
        Timer.TRYING: 0.2,
    }
    reliable = {t: cfg.initial(t, reliable=True) for t in Timer}
    for timer in (Timer.A, Timer.E, Timer.G):
        assert reliable[timer] is None
    for timer in (Timer.D, Timer.I, Timer.J, Timer.K):
        assert reliable[timer] == 0.0
    for timer in (Timer.B, Timer.F, Timer.H, Timer.L, Timer.M):
        assert reliable[timer] == 32.0


def test_timer_config_is_configurable_and_validated() -> None:
    cfg = TimerConfig(t1=0.1, t2=1.0, t4=2.0)
    assert cfg.initial(Timer.B, reliable=False) == pytest.approx(6.4)
    assert cfg.initial(Timer.K, reliable=False) == 2.0
    with pytest.raises(ValueError):
        TimerConfig(t1=5.0, t2=4.0)
    with pytest.raises(ValueError):
        TimerConfig(t4=-1)


def test_timer_set_pops_in_deadline_order() -> None:
    timers = TimerSet(TimerConfig(), reliable=False)
    timers.arm(Timer.B, Arm.START, 0.0)
    timers.arm(Timer.A, Arm.START, 0.0)
    assert timers.next_deadline() == 0.5
    assert timers.pop_expired(0.4) is None
    assert timers.pop_expired(40.0) is Timer.A
    assert timers.pop_expired(40.0) is Timer.B
    assert timers.pop_expired(40.0) is None


# -- table consistency -----------------------------------------------------------------------

MACHINES = [
    InviteClientTransaction,
    NonInviteClientTransaction,
    InviteServerTransaction,
    NonInviteServerTransaction,
]


@pytest.mark.parametrize("cls", MACHINES)
def test_tables_only_use_timers_their_states_run(cls: type[Transaction]) -> None:
    for (state, event), transition in cls.TABLE.items():
        assert state in cls.STATE_TIMERS and transition.to in cls.STATE_TIMERS
        if isinstance(event, Timer):
            assert event in cls.STATE_TIMERS[state], (state, event)
        for timer, arm in transition.timers:
            if arm is not Arm.STOP:
                assert timer in cls.STATE_TIMERS[transition.to], (state, event, timer)
        assert (S.TERMINATED, event) not in cls.TABLE


# -- INVITE client transaction (§17.1.1, RFC 6026 §7.2) --------------------------------------


def started_ict(*, reliable: bool = False, **kw: object) -> InviteClientTransaction:
    tx = InviteClientTransaction(make_request(**kw), reliable=reliable)  # type: ignore[arg-type]
    actions = tx.start(0.0)
    assert sends(actions) == [tx.request]
    return tx


def test_ict_timer_a_doubles_without_t2_cap_until_timer_b() -> None:
    tx = started_ict()
    assert tx.state is S.CALLING
    fired = []
    while (deadline := tx.next_deadline()) is not None:
        actions = tx.handle_timer(deadline)
        fired.append((deadline, kinds(actions)))
    retransmits = [t for t, k in fired if k == [Send]]
    assert retransmits == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # 4 s -> 8 s: not capped by T2
    assert fired[-1] == (32.0, [Timeout, Terminated])
    assert tx.state is S.TERMINATED


def test_ict_timer_b_reports_timeout_with_timer_name() -> None:
    tx = started_ict(reliable=True)
    assert tx.next_deadline() == 32.0  # no Timer A on a reliable transport
    actions = tx.handle_timer(32.0)
    assert actions == [Timeout(Timer.B), Terminated()]


def test_ict_provisional_moves_to_proceeding_and_stops_retransmissions() -> None:
    tx = started_ict()
    ringing = reply(tx.request, 180)
    assert tx.receive(ringing, 0.2) == [Deliver(ringing)]
    assert tx.state is S.PROCEEDING
    assert tx.next_deadline() is None
    assert tx.handle_timer(100.0) == []
    again = reply(tx.request, 183)
    assert tx.receive(again, 1.0) == [Deliver(again)]


@pytest.mark.parametrize("provisional_first", [False, True])
def test_ict_2xx_accepted_then_terminated_by_timer_m(provisional_first: bool) -> None:
    tx = started_ict()
    if provisional_first:
        tx.receive(reply(tx.request, 180), 0.1)
    ok = reply(tx.request, 200)
    assert tx.receive(ok, 1.0) == [Deliver(ok)]
    assert tx.state is S.ACCEPTED
    assert tx.next_deadline() == 33.0  # Timer M = 64*T1
    # retransmitted 2xx and a 2xx from another fork are both passed to the TU
    assert tx.receive(ok, 2.0) == [Deliver(ok)]
    fork = reply(tx.request, 200, to_tag="other-fork")
    assert tx.receive(fork, 3.0) == [Deliver(fork)]
    assert tx.receive(reply(tx.request, 180), 3.0) == []
    assert tx.receive(reply(tx.request, 486), 3.0) == []
    assert tx.handle_timer(32.9) == []
    assert tx.handle_timer(33.0) == [Terminated()]
    assert tx.state is S.TERMINATED
    assert tx.receive(ok, 40.0) == []


@pytest.mark.parametrize("provisional_first", [False, True])
def test_ict_non2xx_acked_completed_timer_d(provisional_first: bool) -> None:
    routes = ("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>")
    tx = started_ict(routes=routes)
    if provisional_first:
        tx.receive(reply(tx.request, 180), 0.1)
    busy = reply(tx.request, 486)
    actions = tx.receive(busy, 1.0)
    assert kinds(actions) == [Send, Deliver]
    assert actions[1] == Deliver(busy)
    ack = sends(actions)[0]
    assert tx.state is S.COMPLETED
    assert tx.next_deadline() == 33.0  # Timer D = 32 s
    # retransmitted final is re-ACKed (same ACK), not passed to the TU
    assert tx.receive(busy, 2.0) == [Send(ack)]
    assert tx.handle_timer(33.0) == [Terminated()]


def test_ict_ack_construction_per_17_1_1_3() -> None:
    invite = make_request(routes=("<sip:p1.example.com;lr>",), cseq=7)
    busy = reply(invite, 603, to_tag="xyz")
    ack = make_non2xx_ack(invite, busy)
    assert ack.method == "ACK"
    assert str(ack.uri) == str(invite.uri)
    assert ack.headers.get_all("Via") == [invite.headers.get_all("Via")[0]]
    assert ack.top_via.branch == BRANCH
    assert ack.to.tag == "xyz"
    assert ack.headers.get("From") == invite.headers.get("From")
    assert ack.call_id == invite.call_id
    assert (ack.cseq.seq, ack.cseq.method) == (7, "ACK")
    assert ack.headers.get_all("Route") == ["<sip:p1.example.com;lr>"]


def test_ict_reliable_non2xx_terminates_at_once() -> None:
    tx = started_ict(reliable=True)
    actions = tx.receive(reply(tx.request, 404), 0.3)
    assert kinds(actions) == [Send, Deliver, Terminated]
    assert tx.state is S.TERMINATED
    assert tx.next_deadline() is None


def test_ict_transport_error() -> None:
    tx = started_ict()
    assert tx.transport_error(0.1) == [TransportError(), Terminated()]
    assert tx.state is S.TERMINATED
    tx2 = started_ict()
    tx2.receive(reply(tx2.request, 500), 0.1)
    assert tx2.transport_error(0.2) == [TransportError(), Terminated()]


def test_client_transaction_misuse() -> None:
    tx = InviteClientTransaction(make_request(), reliable=False)
    with pytest.raises(LocalProtocolError):
        tx.receive(reply(tx.request, 180), 0.0)
    tx.start(0.0)
    with pytest.raises(LocalProtocolError):
        tx.start(0.0)


# -- non-INVITE client transaction (§17.1.2) -------------------------------------------------


def started_nict(*, reliable: bool = False) -> NonInviteClientTransaction:
    tx = NonInviteClientTransaction(make_request("OPTIONS"), reliable=reliable)
    assert sends(tx.start(0.0)) == [tx.request]
    assert tx.state is S.TRYING
    return tx


def test_nict_timer_e_caps_at_t2_until_timer_f() -> None:
    tx = started_nict()
    fired = []
    while (deadline := tx.next_deadline()) is not None:
        fired.append((deadline, kinds(tx.handle_timer(deadline))))
    retransmits = [t for t, k in fired if k == [Send]]
    assert retransmits[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]  # 0.5, 1, 2, 4, 4, 4
    assert fired[-1] == (32.0, [Timeout, Terminated])


def test_nict_timer_e_in_proceeding_uses_t2() -> None:
    tx = started_nict()
    tx.handle_timer(0.5)  # next E at 1.5 (interval 1 s)
    trying = reply(tx.request, 100, to_tag=None)
    assert tx.receive(trying, 0.6) == [Deliver(trying)]
    assert tx.state is S.PROCEEDING
    assert tx.next_deadline() == 1.5
    assert sends(tx.handle_timer(1.5)) == [tx.request]
    assert tx.next_deadline() == 5.5  # reset to T2
    tx.handle_timer(5.5)
    assert tx.next_deadline() == 9.5
    # a late caller gets one retransmission, not a burst: re-arming counts from ``now``
    assert kinds(tx.handle_timer(32.0)) == [Send, Timeout, Terminated]


@pytest.mark.parametrize("code", [200, 202, 404, 503, 603])
@pytest.mark.parametrize("provisional_first", [False, True])
def test_nict_final_completed_timer_k(code: int, provisional_first: bool) -> None:
    tx = started_nict()
    if provisional_first:
        tx.receive(reply(tx.request, 180), 0.1)
    final = reply(tx.request, code)
    assert tx.receive(final, 1.0) == [Deliver(final)]
    assert tx.state is S.COMPLETED
    assert tx.next_deadline() == 6.0  # Timer K = T4
    assert tx.receive(final, 2.0) == []  # absorbed
    assert tx.handle_timer(6.0) == [Terminated()]


def test_nict_reliable() -> None:
    tx = started_nict(reliable=True)
    assert tx.next_deadline() == 32.0  # no Timer E
    final = reply(tx.request, 200)
    assert tx.receive(final, 1.0) == [Deliver(final), Terminated()]


@pytest.mark.parametrize("proceeding", [False, True])
def test_nict_transport_error(proceeding: bool) -> None:
    tx = started_nict()
    if proceeding:
        tx.receive(reply(tx.request, 100, to_tag=None), 0.1)
    assert tx.transport_error(0.2) == [TransportError(), Terminated()]


# -- INVITE server transaction (§17.2.1, RFC 6026 §7.1) --------------------------------------


def ist(*, reliable: bool = False, now: float = 0.0) -> InviteServerTransaction:
    tx = InviteServerTransaction(make_request(timestamp="54"), now, reliable=reliable)
    assert tx.state is S.PROCEEDING
    return tx


def test_ist_sends_100_trying_after_200ms_of_tu_silence() -> None:
    tx = ist()
    assert tx.next_deadline() == pytest.approx(0.2)
    assert tx.receive(tx.request, 0.1) == []  # nothing to resend yet
    [trying] = sends(tx.handle_timer(0.2))
    assert trying.status_code == 100
    assert trying.headers.get("Timestamp") == "54"
    assert trying.to.tag is None
    assert trying.headers.get_all("Via") == tx.request.headers.get_all("Via")
    assert sends(tx.receive(tx.request, 0.5)) == [trying]  # retransmission -> last response


def test_ist_tu_provisional_cancels_automatic_trying() -> None:
    tx = ist()
    ringing = reply(tx.request, 180)
    assert tx.send_response(ringing, 0.1) == [Send(ringing)]
    assert tx.next_deadline() is None
    assert tx.handle_timer(0.3) == []
    assert tx.receive(tx.request, 0.5) == [Send(ringing)]
    assert tx.state is S.PROCEEDING


def test_ist_non2xx_timer_g_until_ack_then_confirmed_timer_i() -> None:
    tx = ist()
    busy = reply(tx.request, 486)
    assert tx.send_response(busy, 1.0) == [Send(busy)]
    assert tx.state is S.COMPLETED
    fired = []
    for _ in range(6):
        deadline = tx.next_deadline()
        assert deadline is not None
        assert sends(tx.handle_timer(deadline)) == [busy]
        fired.append(deadline)
    assert fired == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5]  # G: 0.5, 1, 2, 4, 4, 4 (capped)
    assert sends(tx.receive(tx.request, 17.0)) == [busy]  # INVITE retransmission
    ack = make_non2xx_ack(tx.request, busy)
    assert tx.receive(ack, 17.0) == []
    assert tx.state is S.CONFIRMED
    assert tx.next_deadline() == 22.0  # Timer I = T4
    assert tx.receive(ack, 18.0) == []  # absorbed
    assert tx.receive(tx.request, 18.0) == []
    assert tx.handle_timer(22.0) == [Terminated()]


def test_ist_timer_h_without_ack_times_out() -> None:
    tx = ist()
    tx.send_response(reply(tx.request, 500), 1.0)
    actions = tx.handle_timer(33.0)
    assert actions[-2:] == [Timeout(Timer.H), Terminated()]
    assert tx.state is S.TERMINATED


def test_ist_reliable_no_timer_g_and_immediate_timer_i() -> None:
    tx = ist(reliable=True)
    busy = reply(tx.request, 486)
    tx.send_response(busy, 1.0)
    assert tx.next_deadline() == 33.0  # only H
    ack = make_non2xx_ack(tx.request, busy)
    assert tx.receive(ack, 2.0) == [Terminated()]


def test_ist_2xx_accepted_absorbs_invites_passes_acks_timer_l() -> None:
    tx = ist()
    ok = reply(tx.request, 200)
    assert tx.send_response(ok, 1.0) == [Send(ok)]
    assert tx.state is S.ACCEPTED
    assert tx.next_deadline() == 33.0  # Timer L
    assert tx.receive(tx.request, 1.5) == []  # absorbed, not a new request
    assert tx.send_response(ok, 1.5) == [Send(ok)]  # the TU retransmits its 2xx
    ack = make_request("ACK", to_tag="314159")
    assert tx.receive(ack, 2.0) == [Deliver(ack)]
    assert tx.transport_error(2.5) == [TransportError()]
    assert tx.state is S.ACCEPTED
    with pytest.raises(LocalProtocolError):
        tx.send_response(reply(tx.request, 486), 3.0)
    assert tx.handle_timer(33.0) == [Terminated()]


def test_ist_tu_misuse_raises() -> None:
    tx = ist()
    tx.send_response(reply(tx.request, 486), 1.0)
    with pytest.raises(LocalProtocolError):
        tx.send_response(reply(tx.request, 180), 1.1)
    with pytest.raises(LocalProtocolError):
        tx.send_response(reply(tx.request, 200), 1.1)


@pytest.mark.parametrize("completed", [False, True])
def test_ist_transport_error(completed: bool) -> None:
    tx = ist()
    if completed:
        tx.send_response(reply(tx.request, 404), 0.1)
    assert tx.transport_error(0.2) == [TransportError(), Terminated()]


# -- non-INVITE server transaction (§17.2.2) -------------------------------------------------


def nist(*, reliable: bool = False) -> NonInviteServerTransaction:
    tx = NonInviteServerTransaction(make_request("BYE"), 0.0, reliable=reliable)
    assert tx.state is S.TRYING
    assert tx.next_deadline() is None
    return tx


def test_nist_full_path_unreliable() -> None:
    tx = nist()
    assert tx.receive(tx.request, 0.1) == []  # discarded in Trying
    trying = reply(tx.request, 100, to_tag=None)
    assert tx.send_response(trying, 0.2) == [Send(trying)]
    assert tx.state is S.PROCEEDING
    assert tx.receive(tx.request, 0.3) == [Send(trying)]
    ok = reply(tx.request, 200)
    assert tx.send_response(ok, 0.4) == [Send(ok)]
    assert tx.state is S.COMPLETED
    assert tx.receive(tx.request, 0.5) == [Send(ok)]
    assert tx.send_response(reply(tx.request, 500), 0.6) == []  # discarded (§17.2.2)
    assert tx.next_deadline() == pytest.approx(32.4)  # Timer J = 64*T1
    assert tx.handle_timer(32.4) == [Terminated()]


def test_nist_reliable_final_terminates_at_once() -> None:
    tx = nist(reliable=True)
    ok = reply(tx.request, 200)
    assert tx.send_response(ok, 0.1) == [Send(ok), Terminated()]


def test_nist_transport_error_and_terminated_misuse() -> None:
    tx = nist()
    tx.send_response(reply(tx.request, 180), 0.1)
    assert tx.transport_error(0.2) == [TransportError(), Terminated()]
    with pytest.raises(LocalProtocolError):
        tx.send_response(reply(tx.request, 200), 0.3)


# -- matching (§17.1.3, §17.2.3) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("other", "same"),
    [
        (make_request(), True),
        (make_request(host="CLIENT.example.COM"), True),  # hosts are case-insensitive
        (make_request(branch=BRANCH.upper().replace("Z9HG4BK", "z9hG4bK")), False),
        (make_request(host="other.example.com"), False),
        (make_request(port=5070), False),
        (make_request(port=None), False),  # absent port is not 5060
        (make_request("ACK", to_tag="314159"), True),  # ACK for non-2xx -> INVITE
        (make_request("CANCEL"), False),  # CANCEL has its own transaction
        (make_request("ACK", branch="z9hG4bKnew", to_tag="314159"), False),  # ACK for 2xx
        (make_request(branch="z9hG4bK74bf9x"), False),
    ],
)
def test_server_matching(other: Request, same: bool) -> None:
    assert (server_key(other) == server_key(make_request())) is same


def test_cancel_finds_the_invite_it_cancels() -> None:
    invite = make_request()
    cancel = make_cancel(invite)
    assert server_key(cancel) != server_key(invite)
    assert cancel_target_key(cancel) == server_key(invite)


def test_client_matching_by_branch_and_cseq_method() -> None:
    invite = make_request()
    key = client_key(invite)
    assert key == ClientKey(BRANCH, "INVITE")
    assert client_key(reply(invite, 180)) == key
    cancel_ok = reply(make_cancel(invite), 200)
    assert client_key(cancel_ok) == ClientKey(BRANCH, "CANCEL")
    assert client_key(reply(make_request(branch="z9hG4bKzz"), 200)) != key


def test_legacy_rfc2543_matching_without_magic_cookie() -> None:
    invite = make_request(branch="1234")
    key = server_key(invite)
    assert isinstance(key, LegacyServerKey)
    assert server_key(make_request(branch="1234")) == key  # retransmission
    assert server_key(make_request("ACK", branch="1234", to_tag="t")) == key
    assert server_key(make_request(branch="1234", cseq=2)) != key
    assert isinstance(server_key(make_request(branch="Z9HG4BK1")), LegacyServerKey)
    assert isinstance(server_key(make_request()), ServerKey)


def test_make_cancel_per_9_1() -> None:
    invite = make_request(routes=("<sip:p1.example.com;lr>",), cseq=3)
    cancel = make_cancel(invite)
    assert cancel.method == "CANCEL"
    assert str(cancel.uri) == str(invite.uri)
    assert cancel.headers.get_all("Via") == [invite.headers.get_all("Via")[0]]
    for name in ("From", "To", "Call-ID"):
        assert cancel.headers.get(name) == invite.headers.get(name)
    assert str(cancel.cseq) == "3 CANCEL"
    assert cancel.headers.get_all("Route") == ["<sip:p1.example.com;lr>"]
    with pytest.raises(LocalProtocolError):
        make_cancel(make_request("OPTIONS"))


def test_built_requests_survive_the_wire() -> None:
    invite = make_request(routes=("<sip:p1.example.com;lr>",))
    for built in (make_cancel(invite), make_non2xx_ack(invite, reply(invite, 486))):
        parsed = parse_message(bytes(built))
        assert isinstance(parsed, Request)
        assert parsed.method == built.method
        assert parsed.top_via.branch == BRANCH
        assert parsed.cseq == built.cseq
    trying = InviteServerTransaction(invite, 0.0, reliable=False).handle_timer(1.0)
    assert isinstance(parse_message(bytes(sends(trying)[0])), Response)


def test_new_branch_has_cookie_and_entropy() -> None:
    branches = {new_branch() for _ in range(1000)}
    assert len(branches) == 1000
    assert all(b.startswith("z9hG4bK") and len(b) >= 7 + 16 for b in branches)


# -- the transaction layer -------------------------------------------------------------------


def test_layer_server_side_flow() -> None:
    layer = TransactionLayer()
    invite = make_request()
    [new] = layer.receive(invite, 0.0, reliable=False)
    assert isinstance(new, NewRequest) and new.request is invite
    assert isinstance(new.transaction, InviteServerTransaction)
    assert layer.receive(make_request(), 0.1, reliable=False) == []  # retransmission absorbed
    cancel = make_cancel(invite)
    [cancel_new] = layer.receive(cancel, 0.15, reliable=False)
    assert isinstance(cancel_new, NewRequest)
    assert isinstance(cancel_new.transaction, NonInviteServerTransaction)
    assert cancel_new.cancels is new.transaction
    assert layer.send_response(reply(cancel, 200), 0.16) == [Send(layer_last(cancel_new))]
    terminated = reply(invite, 487)
    assert layer.send_response(terminated, 0.2) == [Send(terminated)]
    assert new.transaction.state is S.COMPLETED
    ack = make_non2xx_ack(invite, terminated)
    assert layer.receive(ack, 0.3, reliable=False) == []
    assert new.transaction.state is S.CONFIRMED
    assert len(layer) == 2
    actions = layer.handle_timer(100.0)
    assert kinds(actions) == [Terminated, Terminated]
    assert len(layer) == 0
    assert layer.next_deadline() is None


def layer_last(new: NewRequest) -> Response:
    assert new.transaction is not None and new.transaction.last_response is not None
    return new.transaction.last_response


def test_layer_ack_for_2xx_goes_to_tu_without_transaction() -> None:
    layer = TransactionLayer()
    layer.receive(make_request(), 0.0, reliable=True)
    layer.send_response(reply(make_request(), 200), 0.1)
    ack = make_request("ACK", branch="z9hG4bKack2xx", to_tag="314159")
    assert layer.receive(ack, 0.2, reliable=True) == [NewRequest(ack)]
    assert len(layer) == 1  # no transaction created for the ACK


def test_layer_cancel_without_invite_and_unknown_response() -> None:
    layer = TransactionLayer()
    [new] = layer.receive(make_cancel(make_request()), 0.0, reliable=False)
    assert isinstance(new, NewRequest) and new.cancels is None
    stray = reply(make_request(branch="z9hG4bKnobody"), 200)
    assert layer.receive(stray, 0.0, reliable=False) == [StrayResponse(stray)]
    with pytest.raises(LocalProtocolError):
        layer.send_response(reply(make_request(branch="z9hG4bKnobody"), 200), 0.0)


def test_layer_client_side_flow_and_cancel_routing() -> None:
    layer = TransactionLayer()
    invite = make_request(branch=layer.new_branch())
    ict, actions = layer.send_request(invite, 0.0, reliable=False)
    assert sends(actions) == [invite]
    cancel_tx, _ = layer.send_request(make_cancel(invite), 1.0, reliable=False)
    assert layer.next_deadline() == 0.5
    cancel_ok = reply(cancel_tx.request, 200)
    assert layer.receive(cancel_ok, 1.1, reliable=False) == [Deliver(cancel_ok)]
    assert cancel_tx.state is S.COMPLETED and ict.state is S.CALLING
    terminated = reply(invite, 487)
    actions = layer.receive(terminated, 1.2, reliable=False)
    assert kinds(actions) == [Send, Deliver]
    assert actions[1].transaction is ict
    with pytest.raises(LocalProtocolError):
        layer.send_request(invite, 2.0, reliable=False)  # same key still alive
    with pytest.raises(LocalProtocolError):
        layer.send_request(make_request("ACK", branch=new_branch()), 2.0, reliable=False)
    with pytest.raises(LocalProtocolError):
        layer.send_request(make_request(branch="nocookie"), 2.0, reliable=False)
    layer.handle_timer(40.0)
    assert len(layer) == 0
    assert layer.receive(terminated, 41.0, reliable=False) == [StrayResponse(terminated)]


def test_layer_transport_error_forgets_transaction() -> None:
    layer = TransactionLayer()
    tx, _ = layer.send_request(make_request("REGISTER"), 0.0, reliable=True)
    assert layer.transport_error(tx, 0.1) == [TransportError(), Terminated()]
    assert len(layer) == 0


def test_layer_legacy_response_lookup() -> None:
    layer = TransactionLayer()
    request = make_request("OPTIONS", branch="oldbranch")
    [new] = layer.receive(request, 0.0, reliable=False)
    assert isinstance(new, NewRequest)
    assert isinstance(new.transaction, NonInviteServerTransaction)
    ok = reply(request, 200)
    assert layer.send_response(ok, 0.1) == [Send(ok)]
    assert new.transaction.state is S.COMPLETED


# -- properties ------------------------------------------------------------------------------

RANK = {
    S.CALLING: 0,
    S.TRYING: 0,
    S.PROCEEDING: 1,
    S.COMPLETED: 2,
    S.ACCEPTED: 2,
    S.CONFIRMED: 3,
    S.TERMINATED: 4,
}

step = st.one_of(
    st.tuples(st.just("response"), st.sampled_from([100, 180, 183, 200, 202, 302, 486, 503])),
    st.tuples(st.just("tu"), st.sampled_from([100, 180, 200, 404, 603])),
    st.tuples(st.just("retransmit"), st.just(0)),
    st.tuples(st.just("ack"), st.just(0)),
    st.tuples(st.just("timer"), st.integers(0, 40_000)),  # milliseconds later
    st.tuples(st.just("transport-error"), st.just(0)),
)


def _apply(tx: Transaction, kind: str, value: int, now: float) -> list:
    if isinstance(tx, (InviteClientTransaction, NonInviteClientTransaction)):
        if kind == "response":
            return tx.receive(reply(tx.request, value), now)
        if kind == "timer":
            return tx.handle_timer(now)
        if kind == "transport-error":
            return tx.transport_error(now)
        return []
    assert isinstance(tx, (InviteServerTransaction, NonInviteServerTransaction))
    if kind == "tu":
        event = Event.TU_1XX if value < 200 else Event.TU_2XX if value < 300 else Event.TU_3XX_6XX
        if (tx.state, event) not in type(tx).TABLE:
            with pytest.raises(LocalProtocolError):
                tx.send_response(reply(tx.request, value), now)
            return []
        return tx.send_response(reply(tx.request, value), now)
    if kind == "retransmit":
        return tx.receive(tx.request, now)
    if kind == "ack":
        return tx.receive(make_request("ACK", to_tag="314159"), now)
    if kind == "timer":
        return tx.handle_timer(now)
    if kind == "transport-error":
        return tx.transport_error(now)
    return []


@settings(max_examples=300, deadline=None)
@given(
    cls=st.sampled_from(MACHINES),
    reliable=st.booleans(),
    steps=st.lists(step, max_size=40),
)
def test_random_interleavings_never_go_backwards(
    cls: type[Transaction], reliable: bool, steps: list[tuple[str, int]]
) -> None:
    now = 0.0
    tx: Transaction
    if cls in (InviteServerTransaction, NonInviteServerTransaction):
        tx = cls(
            make_request("INVITE" if cls is InviteServerTransaction else "BYE"),
            now,
            reliable=reliable,
        )  # type: ignore[call-arg]
    else:
        method = "INVITE" if cls is InviteClientTransaction else "OPTIONS"
        tx = cls(make_request(method), reliable=reliable)
        tx.start(now)  # type: ignore[attr-defined]
    terminated_seen = 0
    for kind, value in steps:
        if kind == "timer":
            now += value / 1000
        rank = RANK[tx.state]
        actions = _apply(tx, kind, value, now)
        assert RANK[tx.state] >= rank
        assert tx.state in type(tx).STATE_TIMERS
        terminated_seen += sum(isinstance(a, Terminated) for a in actions)
        deadline = tx.next_deadline()
        assert deadline is None or deadline >= now or kind != "timer"
        if tx.state is S.TERMINATED:
            assert deadline is None
    assert terminated_seen == (1 if tx.state is S.TERMINATED else 0)


@settings(max_examples=100, deadline=None)
@given(
    retransmits=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5000)), max_size=30),
    reliable=st.booleans(),
)
def test_layer_routes_retransmissions_to_one_transaction(
    retransmits: list[tuple[int, int]], reliable: bool
) -> None:
    layer = TransactionLayer()
    invite = make_request()
    now = 0.0
    new = layer.receive(invite, now, reliable=reliable)
    assert kinds(new) == [NewRequest]
    tx = new[0].transaction
    busy = reply(invite, 486)
    for what, delay in retransmits:
        now += delay / 1000
        if what == 0:
            was_terminated = tx.state is S.TERMINATED
            actions = layer.receive(make_request(), now, reliable=reliable)
            fresh = [a for a in actions if isinstance(a, NewRequest)]
            # only once the transaction is gone does a late INVITE make a new one
            assert bool(fresh) is was_terminated
            if fresh:
                tx = fresh[0].transaction
        elif what == 1 and tx.state is S.PROCEEDING:
            layer.send_response(busy, now)
        elif what == 2:
            layer.receive(make_non2xx_ack(invite, busy), now, reliable=reliable)
        else:
            layer.handle_timer(now)
        assert len(layer) <= 1
        assert (len(layer) == 1) is (tx.state is not S.TERMINATED)
