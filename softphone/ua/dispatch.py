"""Requests and calls on the registration flow: the user agent's dispatch.

- RFC 5626 §3: the flow also carries requests to us. OPTIONS is answered 200 (with our
  certs-only body when S/MIME is on, RFC 3261 §23.2), a CONNECT opens a sipsec tunnel
  (draft-gurbani-sip-sipsec-01 §6.5, :func:`~softphone.ua.sipsec.answer_connect`), anything
  else nobody handles gets 501;
- RFC 3261 §13.3.1, §12.2.2, §9.2, §15.1.2: a new INVITE becomes an incoming
  :class:`~softphone.ua.call.Call` (S/MIME bodies judged first), in-dialog requests (BYE,
  re-INVITE, OPTIONS) and CANCEL go to their call, requests for no call get 481;
- RFC 3261 §11: :meth:`CallDispatch.options` asks a peer what it supports (and, §23.2, for
  its certificate); :meth:`CallDispatch.mark_verified` is the "We compared it" button.

:class:`CallDispatch` is a mixin of :class:`~softphone.ua.useragent.UserAgent`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, cast

from softphone.security.certificates import fingerprint_hex
from softphone.security.ledger import LedgerError
from softphone.security.pins import PinStoreError
from softphone.sip.dialog import DialogId, new_call_id, new_tag
from softphone.sip.digest import AuthenticationFailedError, DigestClient, NoUsableChallengeError
from softphone.sip.errors import ParseError, RemoteProtocolError
from softphone.sip.headers import NameAddr, Via
from softphone.sip.message import Headers, Request, Response
from softphone.sip.transaction import ServerTransaction, Transaction
from softphone.sip.transaction_layer import LayerAction, NewRequest, TransactionLayer, new_branch
from softphone.sip.uri import SipURI
from softphone.transport.flow import Flow
from softphone.ua.call import Call, CallDirection, CallError, CallPhase, parse_target
from softphone.ua.events import PeerIdentity
from softphone.ua.secrets import SecretsError, get_password
from softphone.ua.sipsec import answer_connect
from softphone.ua.smime_call import CallSmime, SmimeSupport

if TYPE_CHECKING:
    from softphone.media.thread import MediaThread
    from softphone.ua.account import Account
    from softphone.ua.callhost import FlowCallHost
    from softphone.ua.events import Event
    from softphone.ua.trustledger import LedgerKeeper
    from softphone.ua.useragent import UserAgent

__all__ = ["CallDispatch"]

log = logging.getLogger(__name__)

#: Methods we answer ourselves (Allow in our answers).
_ALLOWED = "OPTIONS"
#: How long closing waits for the calls to end.
_HANGUP_TIMEOUT = 5.0


class CallDispatch:
    """Requests on the flow and the calls they belong to (see the module docstring); mixed
    into :class:`~softphone.ua.useragent.UserAgent`."""

    if TYPE_CHECKING:
        account: Account
        ledger: LedgerKeeper
        smime: SmimeSupport
        flow: Flow | None
        calls: list[Call]
        on_incoming_call: Callable[[Call], None] | None
        auto_answer: bool
        media_timeout: float
        media_thread: MediaThread | None
        _password: str | None
        _closing: bool
        _layer: TransactionLayer
        _tx_flow: dict[Transaction, Flow]
        _call_flow: dict[Call, Flow]
        _call_host: FlowCallHost
        _call_digest: DigestClient | None
        _invite_handlers: dict[
            Transaction, tuple[Callable[[Response], None], Callable[[str], None]]
        ]
        _call_tasks: set[asyncio.Task[None]]
        _peer_identities: dict[Call, PeerIdentity]

        def _emit(self, event: Event) -> None: ...

        def _run(self, actions: list[LayerAction], flow: Flow | None) -> None: ...

    def _answer(self, action: NewRequest, flow: Flow, now: float) -> None:
        """Requests reaching us on the flow (RFC 5626 §3): OPTIONS 200, a CONNECT for a
        sipsec tunnel (draft-gurbani-sip-sipsec-01 §6.5), others 501."""
        if action.request.method == "CONNECT" and action.transaction is not None:
            self._tx_flow[action.transaction] = flow
            task = asyncio.ensure_future(
                # the mixin is only ever a UserAgent
                answer_connect(cast("UserAgent", self), action.request, action.transaction, flow)
            )
            self._call_tasks.add(task)
            task.add_done_callback(self._call_tasks.discard)
            return
        if self._call_request(action, flow, now):
            return
        tx = action.transaction
        if tx is None:
            return  # an ACK: nothing to answer
        request = action.request
        code = 200 if request.method == "OPTIONS" else 501
        response = Response.for_request(request, code, to_tag=new_tag())
        response.headers.add("Allow", _ALLOWED)
        if request.method == "OPTIONS":
            self._options_certificates(request, response)
        if self.account.outbound:
            response.headers.add("Supported", "outbound, path")
        self._tx_flow[tx] = flow
        self._run(self._layer.send_response(response, now, transaction=tx), flow)

    def _call_digest_client(self) -> DigestClient:
        """The Digest client of INVITEs and in-dialog requests (its own cache: a REGISTER
        must not carry Proxy-Authorization for the calls, nor an INVITE the REGISTER's)."""
        if self._call_digest is None:
            password = self._password
            if password is None:
                try:
                    password = get_password(self.account)
                except SecretsError as exc:
                    raise CallError(str(exc)) from exc
            self._call_digest = DigestClient(self.account.auth_username, password)
        return self._call_digest

    def _forget_call(self, call: Call) -> None:
        with contextlib.suppress(ValueError):
            self.calls.remove(call)
        self._call_flow.pop(call, None)
        self._peer_identities.pop(call, None)

    def peer_identity(self, call: Call) -> PeerIdentity | None:
        """Who is on the other end of a sipsec call, and how we know (None: not sipsec)."""
        return self._peer_identities.get(call)

    async def options(self, uri: str, *, timeout: float = 10.0, observe: bool = True) -> Response:
        """OPTIONS to ``uri`` outside any dialog (RFC 3261 §11) over the registered flow, with
        our certs-only body when S/MIME is on (§23.2: the answer carries the peer's). The
        certificates a 200 carries are recorded in the trust ledger. Returns the final
        response; ``CallError`` when not connected, ``TimeoutError`` after ``timeout``."""
        flow = self.flow
        if self._closing or flow is None or flow.is_closed:
            raise CallError("not connected to the registrar: register first")
        target = parse_target(uri, self.account.aor_uri)
        request = self._options_request(target, flow)
        digest = self._call_digest_client()
        for header in digest.authorize("OPTIONS", str(target)):
            request.headers.add(header.name, header.value)
        async with asyncio.timeout(timeout):
            response = await self._call_host.transact(request)
            if response.status_code in (401, 407):
                code = response.status_code
                challenge = "WWW-Authenticate" if code == 401 else "Proxy-Authenticate"
                answer = "Authorization" if code == 401 else "Proxy-Authorization"
                try:
                    auth = digest.handle_challenge(
                        code,
                        response.headers.get_all(challenge),
                        "OPTIONS",
                        str(target),
                        sent=request.headers.get_all(answer),
                    )
                except (AuthenticationFailedError, NoUsableChallengeError, ParseError) as exc:
                    raise CallError(f"OPTIONS to {target}: {exc}") from exc
                request = self._options_request(target, flow, cseq=2, call_id=request.call_id)
                for header in auth:
                    request.headers.add(header.name, header.value)
                response = await self._call_host.transact(request)
        if observe and 200 <= response.status_code < 300:
            self.smime.observe_certificates(response, str(target))
        return response

    def _options_request(
        self, target: SipURI, flow: Flow, *, cseq: int = 1, call_id: str | None = None
    ) -> Request:
        host, port = flow.local_address
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        headers = Headers()
        via = Via(flow.transport, host, port, {"branch": new_branch(), "rport": None})
        headers.add("Via", str(via))
        headers.add("Max-Forwards", "70")
        headers.add("From", str(NameAddr(self.account.aor_uri, params={"tag": new_tag()})))
        headers.add("To", str(NameAddr(target)))
        headers.add("Call-ID", call_id or new_call_id())
        headers.add("CSeq", f"{cseq} OPTIONS")
        headers.add("Accept", "application/sdp, application/pkcs7-mime")
        request = Request("OPTIONS", target, headers)
        if self.smime.enabled:
            with contextlib.suppress(CallError):
                self.smime.attach_certs(request)
        return request

    def _options_certificates(self, request: Request, response: Response) -> None:
        """§23.2: certificates in an OPTIONS are recorded; our own goes in the 200 when
        S/MIME is on."""
        if request.body:
            self.smime.observe_certificates(request)
        if self.smime.enabled:
            with contextlib.suppress(CallError):
                self.smime.attach_certs(response)

    def mark_verified(self, call_or_aor: Call | str, means: str = "safety-number") -> str:
        """The GUI's "We compared it" (UX.md "Safety number"): the peer's current certificate
        becomes verified in the trust ledger and pinned (so sipsec, S/MIME and DTLS alike
        treat it as verified), and a :class:`PeerIdentity` with ``identity_state="verified"``
        is emitted. Returns the contact's AOR. ``CallError`` when the contact has no
        certificate in the ledger or the ledger cannot be written."""
        known = self._peer_identities.get(call_or_aor) if isinstance(call_or_aor, Call) else None
        if known is not None:
            aor = known.peer_aor
        else:
            aor = call_or_aor.peer if isinstance(call_or_aor, Call) else call_or_aor
            if aor.startswith("sipsec:"):  # a sipsec call shows the scheme dialled (draft §6.2)
                aor = "sip:" + aor.removeprefix("sipsec:")
        try:
            contact = self.ledger.mark_verified(aor, means)
        except (LedgerError, OSError, PinStoreError) as exc:
            raise CallError(f"could not mark {aor} verified: {exc}") from exc
        assert contact.current is not None
        if known is not None:
            event = replace(known, identity_state="verified", ledger_state="verified")
            if isinstance(call_or_aor, Call):
                self._peer_identities[call_or_aor] = event
        else:
            call_id = call_or_aor.call_id if isinstance(call_or_aor, Call) else ""
            event = PeerIdentity(
                call_id=call_id,
                tunnel_id="",
                peer_aor=contact.aor,
                fingerprint=fingerprint_hex(contact.current),
                identity_state="verified",
                ledger_state="verified",
            )
        self._emit(event)
        return contact.aor

    async def _hangup_all(self) -> None:
        """Closing: every call ends (CANCEL or BYE, bounded wait)."""
        calls = list(self.calls)
        if not calls:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_HANGUP_TIMEOUT):
                await asyncio.gather(*(c.hangup() for c in calls), return_exceptions=True)

    def _fail_invite(self, tx: Transaction | None, reason: str) -> None:
        handlers = self._invite_handlers.get(tx) if tx is not None else None
        if handlers is not None:
            handlers[1](reason)

    def _call_of(self, request: Request) -> Call | None:
        try:
            wanted = DialogId.of_incoming_request(request)
        except ParseError:
            return None
        return next((c for c in self.calls if c.dialog_id == wanted), None)

    def _call_ack(self, ack: Request) -> None:
        call = self._call_of(ack)
        if call is not None:
            call.receive_ack(ack)

    def _call_request(self, action: NewRequest, flow: Flow, now: float) -> bool:
        """Requests of calls (RFC 3261 §12.2.2, §13.3, §9.2, §15.1.2); False: not ours."""
        request, tx = action.request, action.transaction
        method = request.method
        if tx is None:  # an ACK for a 2xx (its own transaction-less exchange)
            self._call_ack(request)
            return True
        self._tx_flow[tx] = flow
        if method == "CANCEL":
            call = next((c for c in self.calls if c.server_transaction is action.cancels), None)
            if action.cancels is None or call is None:
                self._reply(request, tx, 481, flow, now)
                return True
            self._reply(request, tx, 200, flow, now)
            call.receive_cancel()
            return True
        if request.to.tag is None:
            if method != "INVITE":
                return False
            self._incoming_call(request, tx, flow)
            return True
        call = self._call_of(request)
        if call is None:
            if method in ("BYE", "INVITE", "UPDATE", "INFO"):
                self._reply(request, tx, 481, flow, now)
                return True
            return False
        assert call.dialog is not None
        try:
            call.dialog.receive_request(request)
        except RemoteProtocolError as exc:
            self._reply(request, tx, exc.status_code, flow, now)
            return True
        if method == "BYE":
            call.receive_bye(request, tx)
        elif method == "OPTIONS":
            self._reply(request, tx, 200, flow, now)
        elif method == "INVITE":  # re-INVITE: hold, resume, new keys (RFC 3261 §14.2)
            call.receive_reinvite(request, tx)
        else:  # UPDATE (RFC 3311), INFO (RFC 6086): not implemented; the call goes on
            self._reply(request, tx, 501, flow, now)
        return True

    def _reply(
        self, request: Request, tx: ServerTransaction, code: int, flow: Flow, now: float
    ) -> None:
        response = Response.for_request(request, code, to_tag=new_tag())
        self._run(self._layer.send_response(response, now, transaction=tx), flow)

    def _incoming_call(self, request: Request, tx: ServerTransaction, flow: Flow) -> None:
        """An INVITE on the flow: a new incoming call (RFC 3261 §13.3.1)."""
        try:
            peer = str(request.from_.uri)
        except ParseError:
            peer = "unknown"
        call = Call(
            self._call_host,
            CallDirection.INCOMING,
            peer,
            media_timeout=self.media_timeout,
            media_thread=self.media_thread,
        )
        self.calls.append(call)
        self._call_flow[call] = flow
        content_type = (request.headers.get("Content-Type") or "application/sdp").lower()
        try:
            smime = self.smime.for_call(
                peer, incoming_body=not content_type.startswith("application/sdp")
            )
        except CallError as exc:
            call.start_refused(request, tx, 493, exc.reason)
            return
        if smime is not None:
            task = asyncio.ensure_future(self._incoming_protected(call, request, tx, flow, smime))
            self._call_tasks.add(task)
            task.add_done_callback(self._call_tasks.discard)
            return
        if not call.start_incoming(request, tx, flow.transport, flow.local_address):
            return
        self._ring(call)

    async def _incoming_protected(
        self, call: Call, request: Request, tx: ServerTransaction, flow: Flow, smime: CallSmime
    ) -> None:
        transport, local = flow.transport, flow.local_address
        if await call.start_incoming_protected(request, tx, transport, local, smime):
            self._ring(call)

    def _ring(self, call: Call) -> None:
        """A new incoming call rings: the hook, then auto-answer."""
        if self.on_incoming_call is not None:
            try:
                self.on_incoming_call(call)
            except Exception:  # a broken hook must not leave the caller ringing for ever
                log.exception("on_incoming_call failed")
        if self.auto_answer and call.phase is CallPhase.RINGING:
            task = asyncio.ensure_future(call.answer())
            self._call_tasks.add(task)
            task.add_done_callback(self._call_tasks.discard)
