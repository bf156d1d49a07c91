"""The pieces both ends of a sipsec call share (draft-gurbani-sip-sipsec-01 §6).

- :class:`TunnelHost`: the :class:`~softphone.ua.call.CallHost` of the call inside the tunnel
  (Figure 3 steps 12-17): its own transaction layer over the nested TLS, no Digest (no proxy
  in there), ``end_to_end`` True; the INVITE arriving inside must come From the AOR the
  caller's certificate names;
- the nested TLS handshake over the detached flow (:func:`handshake`, bounded by
  ``account.sipsec_handshake_timeout``; TLS 1.3, a client certificate asked for,
  :func:`tls_config`), the :class:`~softphone.ua.events.TunnelState` events
  (:func:`tunnel_state`), the accepted certificate recorded in the trust ledger
  (:func:`record_in_ledger`) and announced (:func:`emit_identity`);
- the words: :class:`SipsecCallError`, :func:`identity_state`, :func:`shown_peer`.

The caller's steps are in :mod:`softphone.ua.sipsec_caller`, the callee's in
:mod:`softphone.ua.sipsec_callee`; :mod:`softphone.ua.sipsec` is the public face.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from softphone.sdp.policy import SrtpPolicy
from softphone.security.certificates import Identity, InvalidIdentityError, fingerprint_hex
from softphone.security.identity import IdentityMaterial
from softphone.security.ledger import ContactState, Seen
from softphone.security.pins import PinReason, PinState
from softphone.security.safety import local_half_steps, safety_number
from softphone.security.trust import TrustReport
from softphone.sip.dialog import DialogId, new_tag
from softphone.sip.digest import (
    AuthHeader,
    DigestClient,
    NoUsableChallengeError,
)
from softphone.sip.errors import LocalProtocolError, ParseError, RemoteProtocolError
from softphone.sip.message import Message, Request, Response
from softphone.sip.transaction import (
    Deliver,
    Send,
    ServerTransaction,
    Terminated,
    Timeout,
    Transaction,
    TransportError,
)
from softphone.sip.transaction_layer import LayerAction, NewRequest, TransactionLayer
from softphone.sip.uri import SipURI
from softphone.transport.flow import Flow, FlowClosedError, FlowError
from softphone.transport.stream import TCPStream, TLSStream, TLSStreamError
from softphone.transport.tls import TLSConfig, TLSVersion
from softphone.ua.call import Call, CallDirection, CallError, CallPhase
from softphone.ua.events import Event, PeerIdentity, TrustRequired, TunnelState
from softphone.ua.sound import AudioDevices
from softphone.ua.timers import run_transaction_timers
from softphone.ua.trustledger import identity_state_of, safety_number_in_slices
from softphone.ua.turns import next_turn, run_in_slices

if TYPE_CHECKING:
    from cryptography import x509

    from softphone.ua.useragent import UserAgent


__all__ = [
    "ANONYMOUS_URI",
    "HANDSHAKE_LINE",
    "OPTION_TAG",
    "REREGISTER_WAIT",
    "IncomingTunnel",
    "SipsecCallError",
    "TunnelAnswerer",
    "TunnelHost",
    "emit_identity",
    "handshake",
    "identity_state",
    "is_sipsec_uri",
    "record_in_ledger",
    "shown_peer",
    "tls_config",
    "tunnel_state",
    "warm_own_half",
    "warm_safety_number",
    "went_transparent",
]

log = logging.getLogger(__name__)


#: RFC 3323 §4.1.1.3 style anonymous From for a CONNECT that reveals nothing.
ANONYMOUS_URI = "sip:anonymous@anonymous.invalid"
#: draft-gurbani-sip-sipsec-01 §8.3: the option tag.
OPTION_TAG = "sipsec"
HANDSHAKE_LINE = "TLS handshake (end to end)"
#: How long a sipsec call placed right after another waits for the new registration.
REREGISTER_WAIT = 10.0
#: How much of what came back through the tunnel is kept to explain a failed handshake.
_PEEK_BYTES = 200


@dataclass(frozen=True)
class IncomingTunnel:
    """What the ``tunnel_answerer`` is asked about (§6.5: "at this point, the UAS may not
    know who the sender is"): the CONNECT's Call-ID, its From as claimed (often anonymous),
    and the proxy it came through."""

    tunnel_id: str
    claimed_from: str
    via: str


#: Gets the question, returns True to accept the tunnel (then the caller's certificate is
#: still checked).
TunnelAnswerer = Callable[[IncomingTunnel], Awaitable[bool]]


class SipsecCallError(CallError):
    """A sipsec call that could not be set up; ``fallback_ok`` when a ``sips:`` call to the
    same address could still work (the path does not do sipsec), never for a trust refusal."""

    def __init__(self, reason: str, *, fallback_ok: bool = False) -> None:
        super().__init__(reason)
        self.fallback_ok = fallback_ok


def is_sipsec_uri(text: str) -> bool:
    return text.strip().lower().startswith("sipsec:")


def shown_peer(peer_aor: str) -> str:
    """What the person sees as the other end of a sipsec call (``Call.peer``, the call window,
    history): ``sipsec:bob@biloxi.test`` for the AOR ``sip:bob@biloxi.test``. Only the display
    keeps the scheme the person dialled; on the wire it is never sent (draft §6.2)."""
    _, _, rest = peer_aor.partition(":")
    return f"sipsec:{rest}"


def identity_state(report: TrustReport) -> str:
    """UX.md "Who is on the other end": the state of an accepted sipsec peer certificate."""
    if report.changed:
        return "changed"
    if report.pin_state is PinState.MATCHES:
        verified = any(
            p.reason is PinReason.VERIFIED_SAFETY_NUMBER and p.sha256 == report.fingerprint
            for p in report.pinned
        )
        return "verified" if verified else "seen-before"
    if not report.findings and report.anchored:
        return "certificate"
    return "claimed"


class _Peek:
    """A byte stream that keeps the first bytes read, to say what came back instead of TLS."""

    def __init__(self, lower: TLSStream | TCPStream, initial: bytes) -> None:
        self.lower = lower
        self.first = bytearray(initial[:_PEEK_BYTES])

    def write(self, data: bytes) -> None:
        self.lower.write(data)

    async def drain(self) -> None:
        await self.lower.drain()

    async def read(self) -> bytes:
        data = await self.lower.read()
        if len(self.first) < _PEEK_BYTES:
            self.first += data[: _PEEK_BYTES - len(self.first)]
        return data

    def close(self) -> None:
        self.lower.close()

    async def wait_closed(self) -> None:
        await self.lower.wait_closed()


class _NoDigest(DigestClient):
    """Inside the tunnel there is no proxy: a 401/407 there is answered by nobody."""

    def __init__(self) -> None:
        super().__init__("", "")

    def handle_challenge(
        self,
        status_code: int,
        values: Sequence[str],
        method: str,
        uri: str,
        body: bytes = b"",
        *,
        sent: Sequence[str] | None = None,
    ) -> list[AuthHeader]:
        raise NoUsableChallengeError("a challenge inside an end-to-end tunnel (no proxy there)")


# -- the call inside the tunnel -------------------------------------------------------------------


class TunnelHost:
    """A :class:`~softphone.ua.call.CallHost` bound to the tunnel's :class:`Flow` (the nested
    TLS) with its own transaction layer: ``end_to_end`` is True, no Digest."""

    def __init__(
        self,
        ua: UserAgent,
        flow: Flow,
        *,
        tunnel_id: str,
        direction: CallDirection,
        peer_aor: str,
        report: TrustReport,
        identity: IdentityMaterial,
    ) -> None:
        self._ua = ua
        self.flow = flow
        self.tunnel_id = tunnel_id
        self.direction = direction
        self.peer_aor = peer_aor
        self.report = report
        self.identity = identity
        self.call: Call | None = None
        self._layer = TransactionLayer()
        self._waiters: dict[Transaction, asyncio.Future[Response]] = {}
        self._invite_handlers: dict[
            Transaction, tuple[Callable[[Response], None], Callable[[str], None]]
        ] = {}
        self._wake = asyncio.Event()
        self._digest = _NoDigest()
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer = asyncio.ensure_future(self._timer_loop())
        ua._tunnels.add(self)
        flow.on_trace = ua._tracer(flow, "sipsec-tunnel")
        flow.start(self._on_message)
        flow.closed.add_done_callback(self._flow_closed)

    # -- CallHost -------------------------------------------------------------------------

    @property
    def account_aor(self) -> SipURI:
        return self._ua.account.aor_uri

    @property
    def srtp_policy(self) -> SrtpPolicy:
        return self._ua.account.srtp

    @property
    def media_keying(self) -> str:
        return str(self._ua.account.keying)

    @property
    def end_to_end(self) -> bool:
        return True

    @property
    def audio_devices(self) -> AudioDevices | None:
        return self._ua.audio_devices

    def call_digest(self) -> DigestClient:
        return self._digest

    def flow_info(self) -> tuple[str, tuple[str, int]] | None:
        if self.flow.is_closed:
            return None
        return ("TLS", self.flow.local_address)

    def contact_uri(self) -> SipURI:
        aor = self._ua.account.aor_uri
        host, port = self.flow.local_address
        host = f"[{host}]" if ":" in host else host
        return SipURI("sips", user=aor.user, host=host, port=port)

    def start_invite(
        self,
        request: Request,
        on_response: Callable[[Response], None],
        on_failure: Callable[[str], None],
    ) -> None:
        now = asyncio.get_running_loop().time()
        tx, actions = self._layer.send_request(request, now, reliable=True)
        self._invite_handlers[tx] = (on_response, on_failure)
        self._run(actions)

    async def transact(self, request: Request) -> Response:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Response] = loop.create_future()
        tx, actions = self._layer.send_request(request, loop.time(), reliable=True)
        self._waiters[tx] = future
        try:
            self._run(actions)
            return await future
        finally:
            self._waiters.pop(tx, None)

    def send_direct(self, message: Request) -> None:
        with contextlib.suppress(FlowError):
            self.flow.send(message)

    def respond(self, tx: ServerTransaction, response: Response) -> None:
        now = asyncio.get_running_loop().time()
        try:
            actions = self._layer.send_response(response, now, transaction=tx)
        except LocalProtocolError as exc:
            log.info("cannot send %d in the tunnel: %s", response.status_code, exc)
            return
        self._run(actions)

    def emit(self, event: Event) -> None:
        self._ua._emit(event)

    def forget(self, call: Call) -> None:
        """The call ended: the tunnel has done its work (one call per tunnel)."""
        self._ua._forget_call(call)
        self.close("the call ended")

    # -- the tunnel -----------------------------------------------------------------------

    def close(self, reason: str) -> None:
        """TLS close_notify on the nested TLS, then the outer connection (draft §6.1
        Figure 2: "TLS shutdown ... followed by a per-hop TCP disconnect")."""
        self.flow.close(reason)

    async def aclose(self, reason: str) -> None:
        await self.flow.aclose(reason)
        self._timer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._timer

    def _flow_closed(self, _: object) -> None:
        reason = self.flow.closed.result() if not self.flow.closed.cancelled() else "closed"
        self._timer.cancel()
        self._ua._tunnels.discard(self)
        call = self.call
        if call is not None and call.phase is not CallPhase.ENDED:
            call.flow_lost(reason)
        now = asyncio.get_running_loop().time()
        for tx in list(self._waiters) + list(self._invite_handlers):
            self._run(self._layer.transport_error(tx, now))
        self._ua._emit(
            TunnelState(
                self.tunnel_id,
                self.direction.value,
                self.peer_aor,
                "closed",
                reason,
                True,
                call.call_id if call is not None else "",
            )
        )

    def _on_message(self, message: Message) -> None:
        now = asyncio.get_running_loop().time()
        try:
            actions = self._layer.receive(message, now, reliable=True)
        except ParseError as exc:
            log.info("unusable message in the tunnel: %s", exc.reason)
            return
        self._run(actions)

    def _run(self, actions: list[LayerAction]) -> None:
        now = asyncio.get_running_loop().time()
        for action in actions:
            if isinstance(action, Send):
                try:
                    self.flow.send(action.message)
                except FlowClosedError:
                    if action.transaction is not None:
                        self._run(self._layer.transport_error(action.transaction, now))
            elif isinstance(action, Deliver):
                self._deliver(action)
            elif isinstance(action, Timeout | TransportError):
                why = (
                    "no answer (timed out)" if isinstance(action, Timeout) else "the tunnel failed"
                )
                self._fail(action.transaction, why)
            elif isinstance(action, Terminated):
                self._invite_handlers.pop(action.transaction, None)  # type: ignore[arg-type]
            elif isinstance(action, NewRequest):
                self._answer(action, now)
        self._wake.set()

    def _fail(self, tx: Transaction | None, reason: str) -> None:
        if tx is None:
            return
        handlers = self._invite_handlers.get(tx)
        if handlers is not None:
            handlers[1](reason)
        future = self._waiters.get(tx)
        if future is not None and not future.done():
            future.set_exception(CallError(reason))

    def _deliver(self, action: Deliver) -> None:
        message = action.message
        if isinstance(message, Request):
            if self.call is not None:
                self.call.receive_ack(message)
            return
        handlers = self._invite_handlers.get(action.transaction)  # type: ignore[arg-type]
        if handlers is not None:
            handlers[0](message)
            return
        future = self._waiters.get(action.transaction)  # type: ignore[arg-type]
        if future is not None and not future.done() and message.status_code >= 200:
            future.set_result(message)

    def _reply(self, request: Request, tx: ServerTransaction, code: int, why: str = "") -> None:
        response = Response.for_request(request, code, to_tag=new_tag())
        if why:
            response.headers.add("Warning", f'399 softphone "{why}"')
        self.respond(tx, response)

    def _answer(self, action: NewRequest, now: float) -> None:
        """Requests inside the tunnel (RFC 3261 §12.2.2, §13.3, §9.2, §15.1.2)."""
        request, tx, call = action.request, action.transaction, self.call
        if tx is None:  # the ACK for our 2xx
            if call is not None:
                call.receive_ack(request)
            return
        if request.method == "CANCEL":
            if (
                call is None
                or action.cancels is None
                or call.server_transaction is not action.cancels
            ):
                self._reply(request, tx, 481)
                return
            self._reply(request, tx, 200)
            call.receive_cancel()
            return
        if request.to.tag is None:
            if request.method == "INVITE":
                self._incoming_invite(request, tx)
            elif request.method == "OPTIONS":
                self._reply(request, tx, 200)
            else:
                self._reply(request, tx, 405)
            return
        if call is None or call.dialog is None or call.dialog_id != _dialog_of(request):
            self._reply(request, tx, 481)
            return
        try:
            call.dialog.receive_request(request)
        except RemoteProtocolError as exc:
            self._reply(request, tx, exc.status_code)
            return
        if request.method == "BYE":
            call.receive_bye(request, tx)
        elif request.method == "OPTIONS":
            self._reply(request, tx, 200)
        elif request.method == "INVITE":  # re-INVITE inside the tunnel: hold, resume (§14.2)
            call.receive_reinvite(request, tx)
        else:  # UPDATE (RFC 3311), INFO (RFC 6086): not implemented; the call goes on
            self._reply(request, tx, 501)

    def _incoming_invite(self, request: Request, tx: ServerTransaction) -> None:
        """The INVITE inside the tunnel (Figure 3 step 16-17): it must come From the AOR the
        caller's certificate names; then it rings like any call."""
        ua = self._ua
        if self.direction is not CallDirection.INCOMING or self.call is not None:
            self._reply(request, tx, 486 if self.call is not None else 403)
            return
        try:
            claimed = Identity.aor(str(request.from_.uri))
        except (ParseError, InvalidIdentityError):
            claimed = None
        if claimed is None or claimed != Identity.aor(self.peer_aor):
            self._reply(request, tx, 403, "From does not match the caller's certificate")
            return
        call = Call(
            self,
            CallDirection.INCOMING,
            shown_peer(self.peer_aor),
            media_timeout=ua.media_timeout,
            media_thread=ua.media_thread,
        )
        self.call = call
        ua.calls.append(call)
        if not call.start_incoming(request, tx, "TLS", self.flow.local_address):
            return
        emit_identity(ua, self, call)
        if ua.on_incoming_call is not None:
            try:
                ua.on_incoming_call(call)
            except Exception:  # a broken hook must not leave the caller ringing for ever
                log.exception("on_incoming_call failed")
        if ua.auto_answer and call.phase is CallPhase.RINGING:
            self._spawn(call.answer())

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _timer_loop(self) -> None:
        await run_transaction_timers(
            self._layer, self._wake, lambda now: self._run(self._layer.handle_timer(now))
        )


def _dialog_of(request: Request) -> DialogId | None:
    try:
        return DialogId.of_incoming_request(request)
    except ParseError:
        return None


def record_in_ledger(
    ua: UserAgent, peer_aor: str, report: TrustReport, close: Callable[[], None]
) -> None:
    """The accepted peer certificate goes into the trust ledger (``Seen.SIPSEC``). A person who
    accepted the loud "changed" question answered the ledger's change too; a ledger that
    still blocks (a verified contact's certificate changed and nobody was asked: the pins were
    out of step) stops the call before the INVITE, loudly."""
    leaf = report.leaf
    if leaf is None:
        return
    observation = ua.ledger.observe(peer_aor, leaf, Seen.SIPSEC, accepted_change=report.changed)
    if observation is not None and observation.must_block:
        ua._emit(replace(TrustRequired.from_report(report, f"call with {peer_aor}"), changed=True))
        close()
        raise SipsecCallError(
            f"not connected: {peer_aor} now presents another certificate than the one you "
            "verified; compare the safety number again before calling"
        )


def warm_safety_number(
    identity: IdentityMaterial, chain: Sequence[x509.Certificate], peer_aor: str
) -> asyncio.Future[str | None]:
    """Start working out the call's safety number, on the loop in slices, as soon as the
    nested handshake has given the peer's certificate, while the trust check runs: when
    :func:`emit_identity` asks, it is memoised (issue 7: the loop never stalls 20 ms)."""
    if not chain:
        done: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done
    return asyncio.ensure_future(
        safety_number_in_slices(identity.cert, identity.aor, chain[0], peer_aor)
    )


def warm_own_half(ua: UserAgent, identity: IdentityMaterial) -> None:
    """Our half of every safety number, worked out on the loop in slices while the CONNECT
    is on its way (memoised: once per identity), so that :func:`warm_safety_number` only has
    the peer's half left to do once the handshake is over."""

    async def warm() -> None:
        with contextlib.suppress(ValueError, InvalidIdentityError):
            await run_in_slices(local_half_steps(identity.cert, identity.aor))

    task = asyncio.ensure_future(warm())
    ua._call_tasks.add(task)
    task.add_done_callback(ua._call_tasks.discard)


def emit_identity(ua: UserAgent, host: TunnelHost, call: Call) -> None:
    report = host.report
    leaf = report.leaf
    number: str | None = None
    if leaf is not None:
        with contextlib.suppress(ValueError, InvalidIdentityError):
            number = str(safety_number(host.identity.cert, host.identity.aor, leaf, host.peer_aor))
    ledger_state = ua.ledger.state(host.peer_aor)
    state = identity_state(report)
    if ledger_state in (ContactState.VERIFIED, ContactState.CHANGED) and state != "changed":
        state = identity_state_of(ledger_state)
    event = PeerIdentity(
        call_id=call.call_id,
        tunnel_id=host.tunnel_id,
        peer_aor=host.peer_aor,
        fingerprint=fingerprint_hex(report.fingerprint) if report.fingerprint else "",
        identity_state=state,
        safety_number=number,
        ledger_state=identity_state_of(ledger_state),
    )
    ua._peer_identities[call] = event
    ua._emit(event)


# -- shared steps ---------------------------------------------------------------------------------


def tunnel_state(  # noqa: PLR0917  # internal steps of one flow
    ua: UserAgent,
    tunnel_id: str,
    direction: CallDirection,
    peer: str,
    state: str,
    reason: str = "",
    transparent: bool | None = None,
) -> None:
    ua._emit(TunnelState(tunnel_id, direction.value, peer, state, reason, transparent))


async def handshake(  # noqa: PLR0917  # internal steps of one flow
    ua: UserAgent,
    stream: TLSStream | TCPStream,
    leftover: bytes,
    config: TLSConfig,
    flow: Flow,
    direction: CallDirection,
) -> TLSStream:
    """The nested TLS (Figure 3 steps 10-11) within ``sipsec_handshake_timeout``; raises
    :class:`SipsecCallError` explaining a proxy that did not go transparent."""
    peek = _Peek(stream, leftover)
    # Our RSA-3072 signature and the peer's checks off the window's loop (5-7 ms a flight).
    nested = TLSStream(peek, config, initial_data=leftover, handshake_in_thread=True)
    timeout = ua.account.sipsec_handshake_timeout
    prefix = "the proxy forwarded the CONNECT but did not go transparent"
    try:
        await nested.handshake(timeout=timeout)
    except TimeoutError:
        nested.close()
        raise SipsecCallError(
            f"{prefix}: no end-to-end TLS answer within {timeout:g} s", fallback_ok=True
        ) from None
    except (TLSStreamError, OSError) as exc:
        nested.close()
        first = bytes(peek.first)
        if first.startswith(b"SIP/2.0") or first[:16].split(b" ")[0].isalpha():
            line = first.split(b"\r\n", 1)[0].decode("utf-8", "replace")[:80]
            raise SipsecCallError(
                f"{prefix}: it answered the end-to-end TLS handshake with SIP (“{line}”)",
                fallback_ok=True,
            ) from exc
        if not first:
            raise SipsecCallError(
                "the tunnel closed before the end-to-end TLS handshake completed "
                f"({getattr(exc, 'reason', exc)})",
                fallback_ok=direction is CallDirection.OUTGOING,
            ) from exc
        raise SipsecCallError(
            f"the end-to-end TLS handshake failed: what came back through the tunnel is not "
            f"the other phone's TLS ({getattr(exc, 'reason', exc)})"
        ) from exc
    ua._trace_line(flow, "sent" if direction is CallDirection.OUTGOING else "received")
    await next_turn()  # its last step (certificates checked, our signature) took 5 ms here
    return nested


def went_transparent(exc: SipsecCallError) -> bool | None:
    """For TunnelState: False when the proxy forwarded the CONNECT but did not go
    transparent (§6.6), None when the failure says nothing about it."""
    return False if "did not go transparent" in exc.reason else None


def tls_config(identity: IdentityMaterial, *, server: bool) -> TLSConfig:
    chain = (identity.cert, *identity.chain)
    if server:
        return TLSConfig.server(
            chain,
            identity.key,
            request_client_certificate=True,
            min_version=TLSVersion.TLSv1_3,
        )
    return TLSConfig.client(
        certificate_chain=chain, private_key=identity.key, min_version=TLSVersion.TLSv1_3
    )
