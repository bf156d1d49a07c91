"""SIP dialogs (RFC 3261 §12): state, in-dialog request construction, and forking.

A dialog is the peer-to-peer relationship an INVITE (or SUBSCRIBE/REFER) sets up, identified
by Call-ID, local tag and remote tag (§12). Its state (§12.1.1, §12.1.2)::

    local / remote sequence number   CSeq numbers, the remote one may be empty (None)
    local / remote URI               From / To of the creating request, seen from our side
    remote target                    the peer's Contact URI: where in-dialog requests go
    route set                        Record-Route, reversed for the UAC, in order for the UAS
    secure                           request over TLS with a sips Request-URI (§12.1.1)

States: EARLY (created by a 101-199 with a To tag), CONFIRMED (a 2xx), TERMINATED (BYE,
non-2xx final for an early dialog, 481/408 to an in-dialog request, §12.3, §12.2.1.2).

:class:`DialogSet` holds the several early dialogs one forked INVITE can create (§12.1.2,
§13.2.2.4: one per distinct remote tag). Nothing here does I/O; requests are built, not sent.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from softphone.sip.errors import LocalProtocolError, RemoteProtocolError
from softphone.sip.headers import CSeq, NameAddr, Via, parse_name_addr
from softphone.sip.message import Headers, Request, Response
from softphone.sip.transaction_layer import new_branch
from softphone.sip.uri import URI, SipURI

__all__ = [
    "TARGET_REFRESH_METHODS",
    "Dialog",
    "DialogId",
    "DialogSet",
    "DialogState",
    "new_call_id",
    "new_tag",
]

#: Requests whose Contact replaces the remote target (RFC 3261 §12.2 re-INVITE, RFC 3311
#: UPDATE, RFC 6665 SUBSCRIBE and NOTIFY).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY"})

_SECURE_TRANSPORTS = frozenset({"TLS", "WSS", "TLS-SCTP"})
# RFC 3261 §19.1.1 table: uri-parameters and headers not allowed in a Request-URI.
_NOT_IN_REQUEST_URI = frozenset({"method"})


def new_tag() -> str:
    """A tag with 80 random bits (RFC 3261 §19.3 asks for at least 32)."""
    return secrets.token_hex(10)


def new_call_id(host: str | None = None) -> str:
    """A Call-ID with 128 random bits, optionally ``@host`` (RFC 3261 §8.1.1.4)."""
    local = secrets.token_hex(16)
    return f"{local}@{host}" if host else local


def _initial_seq() -> int:
    """An initial local CSeq number below 2**31 with room to grow (§8.1.1.5)."""
    return secrets.randbelow(2**30) + 1


class DialogState(enum.Enum):
    """RFC 3261 §12: early, confirmed, and (our name for) over."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True)
class DialogId:
    """Call-ID, local tag, remote tag (§12). A missing tag (RFC 2543 peer) is ``""``."""

    call_id: str
    local_tag: str
    remote_tag: str

    @classmethod
    def of_incoming_request(cls, request: Request) -> DialogId:
        """The id of the dialog a received request belongs to (§12.2.2): To tag is ours."""
        return cls(request.call_id, request.to.tag or "", request.from_.tag or "")

    @classmethod
    def of_incoming_response(cls, response: Response) -> DialogId:
        """The id of the dialog a response to our request belongs to: From tag is ours."""
        return cls(response.call_id, response.from_.tag or "", response.to.tag or "")


def _is_secure(request: Request, over_tls: bool | None) -> bool:
    """§12.1.1, §12.1.2: sent/received over TLS and the Request-URI is a sips URI."""
    if over_tls is None:
        over_tls = request.top_via.transport in _SECURE_TRANSPORTS
    return over_tls and isinstance(request.uri, SipURI) and request.uri.is_secure


def _as_name_addr(contact: NameAddr | URI | str) -> NameAddr:
    if isinstance(contact, NameAddr):
        return contact
    if isinstance(contact, str):
        return parse_name_addr(contact)
    return NameAddr(contact)


@dataclass(eq=False)
class Dialog:
    """The state of one dialog (RFC 3261 §12.1) and the requests sent in it (§12.2).

    Build one with :meth:`from_uac` or :meth:`from_uas`.
    """

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: URI
    remote_uri: URI
    remote_target: URI
    route_set: list[NameAddr]
    local_seq: int | None
    remote_seq: int | None
    secure: bool
    state: DialogState
    is_uac: bool
    local_target: NameAddr | None = None  # our Contact, sent in target refresh requests
    creating_cseq: CSeq | None = None  # CSeq of the request that created the dialog

    @property
    def id(self) -> DialogId:
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    # -- creation (§12.1) --------------------------------------------------------------------

    @classmethod
    def from_uac(
        cls, request: Request, response: Response, *, over_tls: bool | None = None
    ) -> Dialog:
        """The dialog a response to our ``request`` creates (RFC 3261 §12.1.2).

        ``response`` is a 101-199 with a To tag (early dialog) or a 2xx (confirmed; a missing
        To tag is taken as ``""`` for RFC 2543 peers). The route set is the response's
        Record-Route reversed, the remote target its Contact (the Request-URI when a
        non-compliant peer left Contact out). ``over_tls`` defaults to the top Via's transport.
        """
        code = response.status_code
        to_tag = response.to.tag
        if not (101 <= code <= 299) or (code < 200 and not to_tag):
            raise LocalProtocolError(f"a {code} without a To tag does not create a dialog")
        local_tag = request.from_.tag
        if not local_tag:
            raise LocalProtocolError("our request has no From tag (§8.1.1.3)")
        contacts = response.contacts
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=to_tag or "",
            local_uri=request.from_.uri,
            remote_uri=request.to.uri,
            remote_target=contacts[0].uri if contacts else request.uri,
            route_set=list(reversed(response.record_routes)),
            local_seq=request.cseq.seq,
            remote_seq=None,
            secure=_is_secure(request, over_tls),
            state=DialogState.EARLY if code < 200 else DialogState.CONFIRMED,
            is_uac=True,
            local_target=next(iter(request.contacts), None),
            creating_cseq=request.cseq,
        )

    @classmethod
    def from_uas(
        cls,
        request: Request,
        local_tag: str,
        contact: NameAddr | URI | str,
        *,
        early: bool = False,
        over_tls: bool | None = None,
    ) -> Dialog:
        """The dialog our response to ``request`` creates (RFC 3261 §12.1.1).

        ``local_tag`` is the To tag of our response, ``contact`` its Contact (our target).
        ``early`` for a 101-199 response; call :meth:`confirm` when the 2xx goes out. The
        route set is the request's Record-Route in order, the remote target its Contact
        (``RemoteProtocolError`` 400 if it has none, §8.1.1.8).
        """
        contacts = request.contacts
        if not contacts:
            raise RemoteProtocolError("dialog-creating request without Contact", 400)
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_.tag or "",
            local_uri=request.to.uri,
            remote_uri=request.from_.uri,
            remote_target=contacts[0].uri,
            route_set=list(request.record_routes),
            local_seq=None,
            remote_seq=request.cseq.seq,
            secure=_is_secure(request, over_tls),
            state=DialogState.EARLY if early else DialogState.CONFIRMED,
            is_uac=False,
            local_target=_as_name_addr(contact),
            creating_cseq=request.cseq,
        )

    # -- state changes -----------------------------------------------------------------------

    def _enter(self, state: DialogState) -> None:
        if self.state is not DialogState.TERMINATED:
            self.state = state

    def confirm(self) -> None:
        """An early dialog becomes confirmed (UAS: our 2xx is sent, §12.1.1)."""
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError("dialog already terminated")
        self._enter(DialogState.CONFIRMED)

    def terminate(self) -> None:
        """End the dialog (BYE sent or received, early dialog failed, §12.3, §15)."""
        self._enter(DialogState.TERMINATED)

    # -- UAC side: requests in the dialog (§12.2.1) -------------------------------------------

    def create_request(
        self,
        method: str,
        *,
        via: Via | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """A request within the dialog (RFC 3261 §12.2.1.1).

        The local CSeq number is incremented (chosen at random first if empty, §8.1.1.5),
        except for ACK and CANCEL which reuse it (prefer :meth:`create_ack` and
        ``transaction_layer.make_cancel``). To/From carry the remote/local URI and tags;
        Request-URI and Route follow the route set: loose routing (first route has ``;lr``)
        keeps the remote target as Request-URI; strict routing puts the first route there and
        appends the remote target as last Route. Target refresh requests carry our Contact.
        ``via``, when given, becomes the only Via, with a new branch if it has none;
        otherwise the transport layer adds the Via.
        """
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError(f"cannot send {method} in a terminated dialog")
        if method in ("ACK", "CANCEL"):
            if self.local_seq is None:
                raise LocalProtocolError(f"{method} needs an earlier request in the dialog")
            seq = self.local_seq
        else:
            seq = _initial_seq() if self.local_seq is None else self.local_seq + 1
            if seq >= 2**31:
                raise LocalProtocolError("local CSeq number exhausted (§8.1.1.5)")
            self.local_seq = seq
        return self._build(
            method, seq=seq, via=via, extra=headers, body=body, content_type=content_type
        )

    def create_ack(
        self,
        response: Response,
        *,
        via: Via | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """The ACK for a 2xx to an INVITE in this dialog (RFC 3261 §13.2.2.4).

        Built like any in-dialog request, with the INVITE's CSeq number and a new branch:
        ``via`` if given, else the response's top Via (our own, minus ``received`` and the
        ``rport`` value the server filled in). Credentials the INVITE carried are the
        caller's to pass in ``headers`` (§22).
        """
        cseq = response.cseq
        if cseq.method != "INVITE" or not 200 <= response.status_code < 300:
            raise LocalProtocolError("create_ack is for 2xx responses to INVITE")
        if via is None:
            params = dict(response.top_via.params)
            params.pop("received", None)
            if "rport" in params:
                params["rport"] = None
            params["branch"] = new_branch()
            via = response.top_via.copy(params=params)
        return self._build(
            "ACK", seq=cseq.seq, via=via, extra=headers, body=body, content_type=content_type
        )

    def _request_uri_and_routes(self) -> tuple[URI, list[str]]:
        """§12.2.1.1: loose routing, or strict routing when the first route has no ``lr``."""
        if not self.route_set:
            return self.remote_target, []
        first = self.route_set[0].uri
        if not isinstance(first, SipURI) or "lr" in first.params:
            return self.remote_target, [str(route) for route in self.route_set]
        params = {k: v for k, v in first.params.items() if k not in _NOT_IN_REQUEST_URI}
        uri = first.copy(params=params, headers={})
        routes = [str(route) for route in self.route_set[1:]]
        routes.append(str(NameAddr(self.remote_target)))
        return uri, routes

    def _build(
        self,
        method: str,
        *,
        seq: int,
        via: Via | None,
        extra: Iterable[tuple[str, str]],
        body: bytes,
        content_type: str | None,
    ) -> Request:
        uri, routes = self._request_uri_and_routes()
        headers = Headers()
        if via is not None:
            if via.branch is None:
                via = via.copy(params={**via.params, "branch": new_branch()})
            headers.add("Via", str(via))
        for route in routes:
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", str(NameAddr(self.local_uri, params=_tag(self.local_tag))))
        headers.add("To", str(NameAddr(self.remote_uri, params=_tag(self.remote_tag))))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{seq} {method}")
        if method in TARGET_REFRESH_METHODS and self.local_target is not None:
            headers.add("Contact", str(self.local_target))
        for name, value in extra:
            headers.add(name, value)
        if content_type is not None:
            headers.add("Content-Type", content_type)
        return Request(method, uri, headers, body)

    def receive_response(self, response: Response) -> None:
        """Update the dialog from a response to a request of ours in it (§12.1.2, §12.2.1.2).

        The 2xx to the creating INVITE confirms an early dialog and recomputes its route set;
        a 2xx to a target refresh request replaces the remote target; a 300-699 to the
        creating request ends an early dialog; 481 or 408 ends the dialog; a 2xx to BYE too.
        """
        if DialogId.of_incoming_response(response) != self.id:
            raise LocalProtocolError("response does not belong to this dialog")
        code, cseq = response.status_code, response.cseq
        creating = self.is_uac and cseq == self.creating_cseq
        failed_early = self.state is DialogState.EARLY and creating and code >= 300
        if failed_early or code in (408, 481):
            self.terminate()
        elif 200 <= code < 300:
            if self.state is DialogState.EARLY and creating:
                self.route_set = list(reversed(response.record_routes))
                self.confirm()
            if cseq.method in TARGET_REFRESH_METHODS and response.contacts:
                self.remote_target = response.contacts[0].uri
            if cseq.method == "BYE":
                self.terminate()

    # -- UAS side: requests received in the dialog (§12.2.2) ---------------------------------

    def receive_request(self, request: Request) -> None:
        """Check and apply a request received in this dialog (RFC 3261 §12.2.2).

        Raises ``RemoteProtocolError`` with the status to answer: 481 if the dialog is not
        this one or is over, 500 if the CSeq number is lower than the remote sequence number
        (out of order). Otherwise records the CSeq number, takes the Contact of a target
        refresh request as the new remote target, and ends the dialog on BYE. ACK and CANCEL
        carry the INVITE's number and do not move the remote sequence number.
        """
        if DialogId.of_incoming_request(request) != self.id:
            raise RemoteProtocolError("request does not match the dialog", 481)
        if self.state is DialogState.TERMINATED:
            raise RemoteProtocolError("dialog is terminated", 481)
        method, seq = request.method, request.cseq.seq
        if method not in ("ACK", "CANCEL"):
            if self.remote_seq is not None and seq < self.remote_seq:
                raise RemoteProtocolError("CSeq lower than the remote sequence number", 500)
            self.remote_seq = seq
        if method in TARGET_REFRESH_METHODS:
            contacts = request.contacts
            if contacts:
                self.remote_target = contacts[0].uri
        if method == "BYE":
            self.terminate()


def _tag(tag: str) -> dict[str, str | None]:
    return {"tag": tag} if tag else {}


class DialogSet:
    """The dialogs one INVITE of ours creates: one per remote tag when it forks (§12.1.2).

    Feed every response of the INVITE client transaction to :meth:`receive_response`.
    """

    def __init__(self, request: Request, *, over_tls: bool | None = None) -> None:
        self.request = request
        self.over_tls = over_tls
        self.dialogs: dict[str, Dialog] = {}

    def receive_response(self, response: Response) -> Dialog | None:
        """The dialog this response creates or updates, or None (§13.2.2).

        A 101-299 with a new To tag creates a dialog (early or confirmed); one with a known
        tag updates it; a 300-699 terminates every early dialog (§13.2.2.3, §12.3).
        """
        code = response.status_code
        if code >= 300:
            for dialog in self.dialogs.values():
                if dialog.state is DialogState.EARLY:
                    dialog.terminate()
            return None
        tag = response.to.tag
        if code < 101 or (code < 200 and not tag):
            return None
        known = self.dialogs.get(tag or "")
        if known is not None:
            known.receive_response(response)
            return known
        dialog = Dialog.from_uac(self.request, response, over_tls=self.over_tls)
        self.dialogs[dialog.remote_tag] = dialog
        return dialog

    @property
    def confirmed(self) -> list[Dialog]:
        return [d for d in self.dialogs.values() if d.state is DialogState.CONFIRMED]

    @property
    def early(self) -> list[Dialog]:
        return [d for d in self.dialogs.values() if d.state is DialogState.EARLY]
