"""SIP transactions: the four state machines of RFC 3261 §17 as updated by RFC 6026.

Sans-I/O, after h11's ``_state.py`` and aioquic: every machine is one transition table, a
``(state, event) -> Transition`` mapping, and time is an argument. Input is a message or a
timer firing at the ``now`` the caller supplies; output is a list of actions the I/O layer
and the transaction user (TU) carry out::

    Send(message)        put this request/response on the wire (§17.1.1.2, §17.2.1, §18)
    Deliver(message)     hand this response (client) / ACK (server) to the TU
    Timeout(timer)       Timer B, F or H fired: the TU should act as on a 408 (§8.1.3.1)
    TransportError()     the transport failed for this transaction (§17.1.4, §17.2.4)
    Terminated()         the transaction is over; forget it

The machines (states and timers per RFC 3261 §17 and RFC 6026 §7)::

    InviteClientTransaction      CALLING -> PROCEEDING -> COMPLETED | ACCEPTED -> TERMINATED
    NonInviteClientTransaction   TRYING -> PROCEEDING -> COMPLETED -> TERMINATED
    InviteServerTransaction      PROCEEDING -> COMPLETED -> CONFIRMED | ACCEPTED -> TERMINATED
    NonInviteServerTransaction   TRYING -> PROCEEDING -> COMPLETED -> TERMINATED

A network event a table does not list for the current state is absorbed (SIP is robust to
stray retransmissions); a TU event it does not list raises :class:`LocalProtocolError`.
Matching messages to transactions lives in :mod:`softphone.sip.transaction_layer`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from softphone.sip.errors import LocalProtocolError
from softphone.sip.message import Headers, Request, Response
from softphone.sip.timers import Arm, Timer, TimerConfig, TimerSet

__all__ = [
    "Action",
    "ClientTransaction",
    "Deliver",
    "Event",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "Op",
    "Send",
    "ServerTransaction",
    "Terminated",
    "Timeout",
    "Transaction",
    "TransactionState",
    "Transition",
    "TransportError",
    "make_non2xx_ack",
]


class TransactionState(enum.Enum):
    """States of the transaction machines (RFC 3261 §17 figures 5-8, RFC 6026 §7)."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


CALLING = TransactionState.CALLING
TRYING = TransactionState.TRYING
PROCEEDING = TransactionState.PROCEEDING
COMPLETED = TransactionState.COMPLETED
CONFIRMED = TransactionState.CONFIRMED
ACCEPTED = TransactionState.ACCEPTED
TERMINATED = TransactionState.TERMINATED


class Event(enum.Enum):
    """Inputs of the machines other than timers (timers are keyed by :class:`Timer`)."""

    START = "start"  # client: the TU hands over the request
    RESPONSE_1XX = "1xx received"
    RESPONSE_2XX = "2xx received"
    RESPONSE_3XX_6XX = "300-699 received"
    REQUEST = "request retransmission received"  # server
    ACK = "ACK received"  # INVITE server
    TU_1XX = "1xx from TU"
    TU_2XX = "2xx from TU"
    TU_3XX_6XX = "300-699 from TU"
    TRANSPORT_ERROR = "transport error"


_TU_EVENTS = frozenset({Event.START, Event.TU_1XX, Event.TU_2XX, Event.TU_3XX_6XX})


class Op(enum.Enum):
    """The effects a transition performs, in the order listed in the table row."""

    SEND_REQUEST = "send request"  # (re)transmit the request
    SEND_ACK = "send ACK"  # the §17.1.1.3 ACK for a non-2xx final response
    SEND_RESPONSE = "send response"  # the response the TU passed; remembered
    RESEND_RESPONSE = "resend last response"
    SEND_TRYING = "send 100 Trying"  # §17.2.1, when the TU is silent for 200 ms
    DELIVER = "deliver to TU"
    TIMEOUT = "inform TU of timeout"
    REPORT_TRANSPORT_ERROR = "inform TU of transport error"


@dataclass(frozen=True)
class Transition:
    """One row of a transition table: the next state, effects, and timer changes."""

    to: TransactionState
    ops: tuple[Op, ...] = ()
    timers: tuple[tuple[Timer, Arm], ...] = ()


def _t(to: TransactionState, *ops: Op, **timers: Arm) -> Transition:
    return Transition(to, ops, tuple((Timer[name], arm) for name, arm in timers.items()))


# -- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Transmit ``message`` (for a server transaction, per §18.2.2 to the top Via)."""

    message: Request | Response
    transaction: Transaction | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Deliver:
    """Pass ``message`` to the TU: a response (client) or an ACK in ACCEPTED (server)."""

    message: Request | Response
    transaction: Transaction | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Timeout:
    """Timer B, F (no final response) or H (no ACK) fired; §8.1.3.1: treat as a 408."""

    timer: Timer
    transaction: Transaction | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class TransportError:
    """The transport reported a failure for this transaction (§17.1.4, §17.2.4)."""

    transaction: Transaction | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Terminated:
    """The transaction reached TERMINATED and must be destroyed (§17.1.1.2)."""

    transaction: Transaction | None = field(default=None, compare=False, repr=False)


Action = Send | Deliver | Timeout | TransportError | Terminated


# -- messages the transactions build themselves ----------------------------------------------


def make_non2xx_ack(request: Request, response: Response) -> Request:
    """The ACK a client INVITE transaction sends for a 300-699 response (RFC 3261 §17.1.1.3).

    Request-URI, Call-ID, From and CSeq number of the original INVITE; To of the response
    (with its tag); one Via equal to the INVITE's top Via (same branch); the INVITE's Route
    header fields.
    """
    headers = Headers()
    headers.add("Via", request.headers.get_all("Via")[0])
    for route in request.headers.get_all("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    headers.add("From", _required(request.headers, "From"))
    headers.add("To", _required(response.headers, "To"))
    headers.add("Call-ID", _required(request.headers, "Call-ID"))
    headers.add("CSeq", f"{request.cseq.seq} ACK")
    return Request("ACK", request.uri, headers)


def _required(headers: Headers, name: str) -> str:
    value = headers.get(name)
    if value is None:
        raise LocalProtocolError(f"message has no {name} header field")
    return value


# -- the engine shared by the four machines --------------------------------------------------


class Transaction:
    """A transaction: one request, a transition table, and the timers it runs.

    Subclasses supply ``TABLE`` (the complete transition table), ``STATE_TIMERS`` (the
    timers that may run in each state: entering a state cancels the others) and
    ``INITIAL``.
    """

    TABLE: ClassVar[Mapping[tuple[TransactionState, Event | Timer], Transition]]
    STATE_TIMERS: ClassVar[Mapping[TransactionState, frozenset[Timer]]]
    INITIAL: ClassVar[TransactionState]

    def __init__(
        self, request: Request, *, reliable: bool, timers: TimerConfig | None = None
    ) -> None:
        self.request = request
        self.reliable = reliable
        self.state = self.INITIAL
        self._timers = TimerSet(timers or TimerConfig(), reliable)
        self._last_response: Response | None = None
        self._ack: Request | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request.method} {self.state.name}>"

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def last_response(self) -> Response | None:
        """The last response sent (server) or received final/provisional (client)."""
        return self._last_response

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next be called, or None if no timer runs."""
        return self._timers.next_deadline()

    def handle_timer(self, now: float) -> list[Action]:
        """Fire, in deadline order, every timer due at ``now``."""
        actions: list[Action] = []
        while (timer := self._timers.pop_expired(now)) is not None:
            actions += self._dispatch(timer, now, None)
        return actions

    def transport_error(self, now: float) -> list[Action]:
        """The transport failed to send for this transaction (§17.1.4, §17.2.4)."""
        return self._dispatch(Event.TRANSPORT_ERROR, now, None)

    def _dispatch(
        self, event: Event | Timer, now: float, message: Request | Response | None
    ) -> list[Action]:
        transition = self.TABLE.get((self.state, event))
        if transition is None:
            if event in _TU_EVENTS:
                raise LocalProtocolError(
                    f"{type(self).__name__}: cannot handle {event.value!r} in {self.state.name}"
                )
            return []  # absorbed: stray retransmission or late event
        actions = [
            a for op in transition.ops if (a := self._perform(op, event, message)) is not None
        ]
        if transition.to is not self.state:
            self.state = transition.to
            self._timers.keep_only(self.STATE_TIMERS[self.state])
        immediate = [t for t, arm in transition.timers if self._timers.arm(t, arm, now)]
        if self.state is TERMINATED:
            self._timers.clear()
            actions.append(Terminated(self))
        for timer in immediate:  # zero durations (D, I, J, K on reliable transports)
            if self._timers.deadlines.pop(timer, None) is not None:
                actions += self._dispatch(timer, now, None)
        return actions

    def _perform(
        self, op: Op, event: Event | Timer, message: Request | Response | None
    ) -> Action | None:
        if op is Op.SEND_REQUEST:
            return Send(self.request, self)
        if op is Op.SEND_ACK:
            if self._ack is None:
                assert isinstance(message, Response)
                self._ack = make_non2xx_ack(self.request, message)
            return Send(self._ack, self)
        if op is Op.SEND_RESPONSE:
            assert isinstance(message, Response)
            self._last_response = message
            return Send(message, self)
        if op is Op.RESEND_RESPONSE:
            return None if self._last_response is None else Send(self._last_response, self)
        if op is Op.SEND_TRYING:
            self._last_response = Response.for_request(self.request, 100)
            return Send(self._last_response, self)
        if op is Op.DELIVER:
            assert message is not None
            if isinstance(message, Response):
                self._last_response = message
            return Deliver(message, self)
        if op is Op.TIMEOUT:
            assert isinstance(event, Timer)
            return Timeout(event, self)
        return TransportError(self)


class ClientTransaction(Transaction):
    """A client transaction (§17.1): sends the request, receives responses."""

    def __init__(
        self, request: Request, *, reliable: bool, timers: TimerConfig | None = None
    ) -> None:
        super().__init__(request, reliable=reliable, timers=timers)
        self._started = False

    def start(self, now: float) -> list[Action]:
        """Send the request and start the timers (§17.1.1.2, §17.1.2.2)."""
        if self._started:
            raise LocalProtocolError("client transaction already started")
        self._started = True
        return self._dispatch(Event.START, now, self.request)

    def receive(self, response: Response, now: float) -> list[Action]:
        """A response matched to this transaction (§17.1.3) arrived."""
        if not self._started:
            raise LocalProtocolError("client transaction not started")
        code = response.status_code
        if code < 200:
            event = Event.RESPONSE_1XX
        elif code < 300:
            event = Event.RESPONSE_2XX
        else:
            event = Event.RESPONSE_3XX_6XX
        return self._dispatch(event, now, response)


class ServerTransaction(Transaction):
    """A server transaction (§17.2): created by a request; sends the TU's responses."""

    def __init__(
        self,
        request: Request,
        now: float,
        *,
        reliable: bool,
        timers: TimerConfig | None = None,
    ) -> None:
        super().__init__(request, reliable=reliable, timers=timers)
        self.created = now

    def receive(self, request: Request, now: float) -> list[Action]:
        """A request matched to this transaction (§17.2.3): a retransmission or an ACK."""
        event = Event.ACK if request.method == "ACK" else Event.REQUEST
        return self._dispatch(event, now, request)

    def send_response(self, response: Response, now: float) -> list[Action]:
        """The TU passes a response for this transaction's request."""
        code = response.status_code
        if code < 200:
            event = Event.TU_1XX
        elif code < 300:
            event = Event.TU_2XX
        else:
            event = Event.TU_3XX_6XX
        return self._dispatch(event, now, response)


# -- the four machines -----------------------------------------------------------------------

_START, _STOP, _DOUBLE, _CAPPED = Arm.START, Arm.STOP, Arm.DOUBLE, Arm.DOUBLE_CAPPED
_1XX, _2XX, _FAIL = Event.RESPONSE_1XX, Event.RESPONSE_2XX, Event.RESPONSE_3XX_6XX
_TU1, _TU2, _TUF = Event.TU_1XX, Event.TU_2XX, Event.TU_3XX_6XX
_ERR = Event.TRANSPORT_ERROR
_SEND_REQ, _DELIVER, _ACK = Op.SEND_REQUEST, Op.DELIVER, Op.SEND_ACK
_SEND, _RESEND, _REPORT = Op.SEND_RESPONSE, Op.RESEND_RESPONSE, Op.REPORT_TRANSPORT_ERROR


class InviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.1 (figure 5) with RFC 6026 §7.2's Accepted state.

    The ACK for 300-699 is built and resent here (§17.1.1.3); the ACK for a 2xx is the
    TU's (dialog's) job, so every 2xx, retransmitted or from another fork, is delivered
    while ACCEPTED lasts (Timer M). Timer B only runs in CALLING: once a provisional has
    arrived, how long to wait for the callee is the TU's decision.
    """

    INITIAL = CALLING
    STATE_TIMERS: ClassVar[Mapping[TransactionState, frozenset[Timer]]] = {
        CALLING: frozenset({Timer.A, Timer.B}),
        PROCEEDING: frozenset(),
        COMPLETED: frozenset({Timer.D}),
        ACCEPTED: frozenset({Timer.M}),
        TERMINATED: frozenset(),
    }
    TABLE: ClassVar[Mapping[tuple[TransactionState, Event | Timer], Transition]] = {
        (CALLING, Event.START): _t(CALLING, _SEND_REQ, A=_START, B=_START),
        (CALLING, Timer.A): _t(CALLING, _SEND_REQ, A=_DOUBLE),
        (CALLING, Timer.B): _t(TERMINATED, Op.TIMEOUT),
        (CALLING, _1XX): _t(PROCEEDING, _DELIVER),
        (CALLING, _2XX): _t(ACCEPTED, _DELIVER, M=_START),
        (CALLING, _FAIL): _t(COMPLETED, _ACK, _DELIVER, D=_START),
        (CALLING, _ERR): _t(TERMINATED, _REPORT),
        (PROCEEDING, _1XX): _t(PROCEEDING, _DELIVER),
        (PROCEEDING, _2XX): _t(ACCEPTED, _DELIVER, M=_START),
        (PROCEEDING, _FAIL): _t(COMPLETED, _ACK, _DELIVER, D=_START),
        (COMPLETED, _FAIL): _t(COMPLETED, _ACK),
        (COMPLETED, Timer.D): _t(TERMINATED),
        (COMPLETED, _ERR): _t(TERMINATED, _REPORT),
        (ACCEPTED, _2XX): _t(ACCEPTED, _DELIVER),
        (ACCEPTED, Timer.M): _t(TERMINATED),
    }


class NonInviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.2 (figure 6): Timer E backs off to T2, Timer F times out."""

    INITIAL = TRYING
    STATE_TIMERS: ClassVar[Mapping[TransactionState, frozenset[Timer]]] = {
        TRYING: frozenset({Timer.E, Timer.F}),
        PROCEEDING: frozenset({Timer.E, Timer.F}),
        COMPLETED: frozenset({Timer.K}),
        TERMINATED: frozenset(),
    }
    TABLE: ClassVar[Mapping[tuple[TransactionState, Event | Timer], Transition]] = {
        (TRYING, Event.START): _t(TRYING, _SEND_REQ, E=_START, F=_START),
        (TRYING, Timer.E): _t(TRYING, _SEND_REQ, E=_CAPPED),
        (TRYING, Timer.F): _t(TERMINATED, Op.TIMEOUT),
        (TRYING, _1XX): _t(PROCEEDING, _DELIVER),
        (TRYING, _2XX): _t(COMPLETED, _DELIVER, K=_START),
        (TRYING, _FAIL): _t(COMPLETED, _DELIVER, K=_START),
        (TRYING, _ERR): _t(TERMINATED, _REPORT),
        (PROCEEDING, Timer.E): _t(PROCEEDING, _SEND_REQ, E=Arm.T2),
        (PROCEEDING, Timer.F): _t(TERMINATED, Op.TIMEOUT),
        (PROCEEDING, _1XX): _t(PROCEEDING, _DELIVER),
        (PROCEEDING, _2XX): _t(COMPLETED, _DELIVER, K=_START),
        (PROCEEDING, _FAIL): _t(COMPLETED, _DELIVER, K=_START),
        (PROCEEDING, _ERR): _t(TERMINATED, _REPORT),
        (COMPLETED, Timer.K): _t(TERMINATED),
    }


class InviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.1 (figure 7) with RFC 6026 §7.1's Accepted state.

    Sends 100 Trying itself if the TU has not sent a provisional within 200 ms (the
    ``TRYING`` timer). A 2xx moves to ACCEPTED: the TU retransmits its 2xx through
    :meth:`send_response`, INVITE retransmissions are absorbed and ACKs that match are
    delivered, until Timer L. A transport error there is reported but does not end the
    transaction, as RFC 6026 figure 7 draws it.
    """

    INITIAL = PROCEEDING
    STATE_TIMERS: ClassVar[Mapping[TransactionState, frozenset[Timer]]] = {
        PROCEEDING: frozenset({Timer.TRYING}),
        COMPLETED: frozenset({Timer.G, Timer.H}),
        CONFIRMED: frozenset({Timer.I}),
        ACCEPTED: frozenset({Timer.L}),
        TERMINATED: frozenset(),
    }
    TABLE: ClassVar[Mapping[tuple[TransactionState, Event | Timer], Transition]] = {
        (PROCEEDING, Timer.TRYING): _t(PROCEEDING, Op.SEND_TRYING),
        (PROCEEDING, Event.REQUEST): _t(PROCEEDING, _RESEND),
        (PROCEEDING, _TU1): _t(PROCEEDING, _SEND, TRYING=_STOP),
        (PROCEEDING, _TU2): _t(ACCEPTED, _SEND, L=_START),
        (PROCEEDING, _TUF): _t(COMPLETED, _SEND, G=_START, H=_START),
        (PROCEEDING, _ERR): _t(TERMINATED, _REPORT),
        (COMPLETED, Event.REQUEST): _t(COMPLETED, _RESEND),
        (COMPLETED, Timer.G): _t(COMPLETED, _RESEND, G=_CAPPED),
        (COMPLETED, Timer.H): _t(TERMINATED, Op.TIMEOUT),
        (COMPLETED, Event.ACK): _t(CONFIRMED, I=_START),
        (COMPLETED, _ERR): _t(TERMINATED, _REPORT),
        (CONFIRMED, Event.ACK): _t(CONFIRMED),
        (CONFIRMED, Timer.I): _t(TERMINATED),
        (ACCEPTED, Event.REQUEST): _t(ACCEPTED),
        (ACCEPTED, Event.ACK): _t(ACCEPTED, _DELIVER),
        (ACCEPTED, _TU2): _t(ACCEPTED, _SEND),
        (ACCEPTED, _ERR): _t(ACCEPTED, _REPORT),
        (ACCEPTED, Timer.L): _t(TERMINATED),
    }

    def __init__(
        self,
        request: Request,
        now: float,
        *,
        reliable: bool,
        timers: TimerConfig | None = None,
    ) -> None:
        super().__init__(request, now, reliable=reliable, timers=timers)
        self._timers.arm(Timer.TRYING, Arm.START, now)


class NonInviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.2 (figure 8).

    Retransmissions are discarded in TRYING and answered with the last response after;
    final responses the TU passes in COMPLETED are discarded, as the RFC requires.
    """

    INITIAL = TRYING
    STATE_TIMERS: ClassVar[Mapping[TransactionState, frozenset[Timer]]] = {
        TRYING: frozenset(),
        PROCEEDING: frozenset(),
        COMPLETED: frozenset({Timer.J}),
        TERMINATED: frozenset(),
    }
    TABLE: ClassVar[Mapping[tuple[TransactionState, Event | Timer], Transition]] = {
        (TRYING, Event.REQUEST): _t(TRYING),
        (TRYING, _TU1): _t(PROCEEDING, _SEND),
        (TRYING, _TU2): _t(COMPLETED, _SEND, J=_START),
        (TRYING, _TUF): _t(COMPLETED, _SEND, J=_START),
        (PROCEEDING, Event.REQUEST): _t(PROCEEDING, _RESEND),
        (PROCEEDING, _TU1): _t(PROCEEDING, _SEND),
        (PROCEEDING, _TU2): _t(COMPLETED, _SEND, J=_START),
        (PROCEEDING, _TUF): _t(COMPLETED, _SEND, J=_START),
        (PROCEEDING, _ERR): _t(TERMINATED, _REPORT),
        (COMPLETED, Event.REQUEST): _t(COMPLETED, _RESEND),
        (COMPLETED, _TU1): _t(COMPLETED),
        (COMPLETED, _TU2): _t(COMPLETED),
        (COMPLETED, _TUF): _t(COMPLETED),
        (COMPLETED, Timer.J): _t(TERMINATED),
        (COMPLETED, _ERR): _t(TERMINATED, _REPORT),
    }
