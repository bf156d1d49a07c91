"""Matching messages to transactions and the layer that owns them (RFC 3261 §17.1.3, §17.2.3).

Keys:

* a client transaction is found by the branch of the response's top Via and its CSeq method
  (§17.1.3): the CANCEL and the INVITE it cancels share a branch but not a method;
* a server transaction is found by the top Via's branch (when it starts with the magic cookie
  ``z9hG4bK``), its sent-by and the method, ACK counting as INVITE (§17.2.3). Branches compare
  case-sensitively (they are opaque tokens the client repeats byte for byte); a branch whose
  cookie is not exactly ``z9hG4bK`` is not RFC 3261-compliant and uses the RFC 2543
  fallback below. Sent-by hosts compare case-insensitively, an absent port differs from any
  explicit one (as in §19.1.4);
* the RFC 2543 fallback (§17.2.3, second half) keys on Request-URI, From tag, Call-ID, CSeq
  number, the whole top Via and the method (ACK as INVITE). It leaves out the To tag, which
  the ACK carries and the INVITE does not: looser than the RFC, good enough for old peers.

:class:`TransactionLayer` routes received messages to those transactions, creates server
transactions for new requests, reports what no transaction takes, and runs all their timers.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from softphone.sip.errors import LocalProtocolError
from softphone.sip.headers import MAGIC_COOKIE
from softphone.sip.message import Headers, Request, Response
from softphone.sip.timers import TimerConfig
from softphone.sip.transaction import (
    Action,
    ClientTransaction,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    ServerTransaction,
    Transaction,
    TransactionState,
)

__all__ = [
    "ClientKey",
    "LayerAction",
    "LegacyServerKey",
    "NewRequest",
    "ServerKey",
    "StrayResponse",
    "TransactionLayer",
    "cancel_target_key",
    "client_key",
    "has_magic_cookie",
    "make_cancel",
    "new_branch",
    "server_key",
]


@dataclass(frozen=True)
class ClientKey:
    """§17.1.3: top-Via branch and CSeq method."""

    branch: str
    method: str


@dataclass(frozen=True)
class ServerKey:
    """§17.2.3: top-Via branch (with the magic cookie), sent-by, method (ACK -> INVITE)."""

    branch: str
    host: str
    port: int | None
    method: str


@dataclass(frozen=True)
class LegacyServerKey:
    """§17.2.3 RFC 2543 fallback, for requests whose branch lacks the magic cookie."""

    request_uri: str
    from_tag: str | None
    call_id: str
    cseq: int
    top_via: str
    method: str


TransactionKey = ClientKey | ServerKey | LegacyServerKey


def new_branch() -> str:
    """A branch unique across space and time: the magic cookie and 80 random bits (§8.1.1.7)."""
    return MAGIC_COOKIE + secrets.token_hex(10)


def has_magic_cookie(branch: str | None) -> bool:
    """True if ``branch`` was made by an RFC 3261 element (§8.1.1.7, case-sensitive)."""
    return branch is not None and branch.startswith(MAGIC_COOKIE)


def client_key(message: Request | Response) -> ClientKey:
    """The client-transaction key of a request we send or a response we receive (§17.1.3).

    Raises ``ParseError`` (a ``RemoteProtocolError``) if Via or CSeq is missing or malformed,
    ``LocalProtocolError`` for a request of ours without a branch.
    """
    branch = message.top_via.branch
    if branch is None:
        if isinstance(message, Request):
            raise LocalProtocolError("a client transaction's request needs a Via branch")
        branch = ""
    return ClientKey(branch, message.cseq.method)


def server_key(request: Request, *, method: str | None = None) -> ServerKey | LegacyServerKey:
    """The server-transaction key of a received request (§17.2.3).

    ``method`` overrides the request's (used to find the INVITE a CANCEL cancels, §9.2);
    ACK maps to INVITE so that an ACK for a non-2xx final finds its INVITE transaction.
    """
    method = method or request.method
    if method == "ACK":
        method = "INVITE"
    via = request.top_via
    if has_magic_cookie(via.branch):
        assert via.branch is not None
        return ServerKey(via.branch, via.host.lower(), via.port, method)
    return LegacyServerKey(
        request_uri=str(request.uri),
        from_tag=request.from_.tag,
        call_id=request.call_id,
        cseq=request.cseq.seq,
        top_via=request.headers.get_all("Via")[0],
        method=method,
    )


def cancel_target_key(cancel: Request) -> ServerKey | LegacyServerKey:
    """The key of the INVITE server transaction a CANCEL refers to (§9.2)."""
    return server_key(cancel, method="INVITE")


def _response_server_key(response: Response) -> ServerKey | None:
    via = response.top_via
    if not has_magic_cookie(via.branch):
        return None
    assert via.branch is not None
    method = response.cseq.method
    return ServerKey(via.branch, via.host.lower(), via.port, method)


def make_cancel(invite: Request) -> Request:
    """A CANCEL for ``invite`` (RFC 3261 §9.1).

    Request-URI, Call-ID, From, To (tags included) and the CSeq number of the INVITE, method
    CANCEL; a single Via equal to the INVITE's top Via (so it has the same branch and reaches
    the same server transaction's neighbour); the INVITE's Route header fields.
    """
    if invite.method != "INVITE":
        raise LocalProtocolError("only an INVITE is cancelled (RFC 3261 §9.1)")
    headers = Headers()
    headers.add("Via", invite.headers.get_all("Via")[0])
    for route in invite.headers.get_all("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    for name in ("From", "To", "Call-ID"):
        value = invite.headers.get(name)
        if value is None:
            raise LocalProtocolError(f"the INVITE has no {name} header field")
        headers.add(name, value)
    headers.add("CSeq", f"{invite.cseq.seq} CANCEL")
    return Request("CANCEL", invite.uri, headers)


# -- what the layer reports besides the transactions' own actions ----------------------------


@dataclass(frozen=True)
class NewRequest:
    """A request no transaction matched; the TU must handle it (§17.2.3, §8.2).

    ``transaction`` is the server transaction created for it, through which the TU answers;
    it is ``None`` for an ACK (an ACK for a 2xx is its own, transaction-less exchange, §17.1.1.3,
    and goes to the TU core / dialog). For a CANCEL, ``cancels`` is the INVITE server
    transaction it refers to, if one exists (§9.2): else the TU answers 481.
    """

    request: Request
    transaction: ServerTransaction | None = field(default=None, compare=False)
    cancels: InviteServerTransaction | None = field(default=None, compare=False)


@dataclass(frozen=True)
class StrayResponse:
    """A response matching no client transaction (§18.1.2), e.g. a 2xx retransmission
    after Timer M. The TU decides: a UA core may re-ACK a 2xx of a dialog it knows."""

    response: Response


LayerAction = Action | NewRequest | StrayResponse


class TransactionLayer:
    """All transactions of one user agent, keyed by §17.1.3 / §17.2.3, and their timers.

    Every method returns actions; a :class:`~softphone.sip.transaction.Terminated` one means
    the layer has already forgotten that transaction.
    """

    def __init__(
        self,
        *,
        timers: TimerConfig | None = None,
        branch_factory: Callable[[], str] = new_branch,
    ) -> None:
        self.timers = timers or TimerConfig()
        self._branch_factory = branch_factory
        self._clients: dict[ClientKey, ClientTransaction] = {}
        self._servers: dict[ServerKey | LegacyServerKey, ServerTransaction] = {}

    def new_branch(self) -> str:
        return self._branch_factory()

    # -- client side -------------------------------------------------------------------------

    def send_request(
        self, request: Request, now: float, *, reliable: bool
    ) -> tuple[ClientTransaction, list[LayerAction]]:
        """Create the client transaction for ``request`` and start it (§17.1).

        The request must carry its top Via with a magic-cookie branch (see
        :meth:`new_branch`); an ACK cannot start a transaction (the ACK for a 2xx is sent
        directly by the TU, §17.1.1.3).
        """
        if request.method == "ACK":
            raise LocalProtocolError("ACK has no client transaction; send it directly")
        if not has_magic_cookie(request.top_via.branch):
            raise LocalProtocolError("request's top Via needs a z9hG4bK branch (§8.1.1.7)")
        key = client_key(request)
        if key in self._clients:
            raise LocalProtocolError(f"a client transaction with {key} already exists")
        cls = InviteClientTransaction if request.method == "INVITE" else NonInviteClientTransaction
        tx = cls(request, reliable=reliable, timers=self.timers)
        self._clients[key] = tx
        return tx, self._collect(tx.start(now))

    # -- receiving ---------------------------------------------------------------------------

    def receive(
        self, message: Request | Response, now: float, *, reliable: bool
    ) -> list[LayerAction]:
        """Route a received message (§18.1.2, §18.2.1 hand it here).

        A response goes to its client transaction or is reported as :class:`StrayResponse`.
        A request goes to its server transaction, or creates one and is reported as
        :class:`NewRequest` (an unmatched ACK creates none). Raises ``ParseError`` if the
        headers needed for matching (Via, CSeq, From, Call-ID) are missing or malformed.
        """
        if isinstance(message, Response):
            client = self._clients.get(client_key(message))
            if client is None:
                return [StrayResponse(message)]
            return self._collect(client.receive(message, now))
        key = server_key(message)
        server = self._servers.get(key)
        if server is not None:
            return self._collect(server.receive(message, now))
        if message.method == "ACK":
            return [NewRequest(message, None)]
        tx: ServerTransaction
        if message.method == "INVITE":
            tx = InviteServerTransaction(message, now, reliable=reliable, timers=self.timers)
        else:
            tx = NonInviteServerTransaction(message, now, reliable=reliable, timers=self.timers)
        self._servers[key] = tx
        cancels = self.cancel_target(message) if message.method == "CANCEL" else None
        return [NewRequest(message, tx, cancels)]

    def cancel_target(self, cancel: Request) -> InviteServerTransaction | None:
        """The live INVITE server transaction ``cancel`` refers to (§9.2), if any."""
        tx = self._servers.get(cancel_target_key(cancel))
        if isinstance(tx, InviteServerTransaction) and tx.state is not TransactionState.TERMINATED:
            return tx
        return None

    # -- server side -------------------------------------------------------------------------

    def send_response(
        self, response: Response, now: float, *, transaction: ServerTransaction | None = None
    ) -> list[LayerAction]:
        """Pass the TU's ``response`` to its server transaction.

        The transaction is ``transaction`` or the one whose key the response's top Via and
        CSeq method give; ``LocalProtocolError`` if there is none (a 2xx retransmitted after
        Timer L is the TU's to send directly, §13.3.1.4).
        """
        tx = transaction or self._find_server_for_response(response)
        if tx is None:
            raise LocalProtocolError("no server transaction for this response")
        return self._collect(tx.send_response(response, now))

    def _find_server_for_response(self, response: Response) -> ServerTransaction | None:
        key = _response_server_key(response)
        if key is not None:
            return self._servers.get(key)
        top_via = response.headers.get_all("Via")[:1]
        for tx in self._servers.values():
            request = tx.request
            if (
                request.headers.get_all("Via")[:1] == top_via
                and request.call_id == response.call_id
                and request.cseq == response.cseq
            ):
                return tx
        return None

    # -- transactions, timers, errors --------------------------------------------------------

    def transport_error(self, transaction: Transaction, now: float) -> list[LayerAction]:
        """The transport could not deliver a message of ``transaction``."""
        return self._collect(transaction.transport_error(now))

    def next_deadline(self) -> float | None:
        """The earliest timer deadline of all transactions, or None."""
        return min((d for tx in self for d in (tx.next_deadline(),) if d is not None), default=None)

    def handle_timer(self, now: float) -> list[LayerAction]:
        """Fire every timer due at ``now``, in each transaction."""
        actions: list[LayerAction] = []
        for tx in list(self):
            deadline = tx.next_deadline()
            if deadline is not None and deadline <= now:
                actions += tx.handle_timer(now)
        return self._collect(actions)

    def find_client(self, key: ClientKey) -> ClientTransaction | None:
        return self._clients.get(key)

    def find_server(self, key: ServerKey | LegacyServerKey) -> ServerTransaction | None:
        return self._servers.get(key)

    def __iter__(self) -> Iterator[Transaction]:
        yield from list(self._clients.values())
        yield from list(self._servers.values())

    def __len__(self) -> int:
        return len(self._clients) + len(self._servers)

    def _collect(self, actions: Sequence[LayerAction]) -> list[LayerAction]:
        """Forget terminated transactions (§17.1.1.2: destroyed the instant they terminate)."""
        self._clients = {
            k: t for k, t in self._clients.items() if t.state is not TransactionState.TERMINATED
        }
        self._servers = {
            k: t for k, t in self._servers.items() if t.state is not TransactionState.TERMINATED
        }
        return list(actions)
