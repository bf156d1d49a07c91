"""The user agent: the one façade the GUI, the headless agent and the demo drive.

For now it registers one account over one RFC 5626 flow and keeps the registration alive::

    ua = UserAgent(account, pin_store_path=path, trust_policy="ask", answerer=ask, on_event=cb)
    binding = await ua.register()     # locate, TCP, TLS, certificate decision, REGISTER/401/200
    ...                               # refreshes on the same flow; re-registers after a loss
    await ua.unregister()             # Expires: 0
    await ua.close()                  # unregisters first if still registered

What happens, with the RFC for each step:

1. RFC 3263: :func:`~softphone.transport.locate.locate` orders the registrar's targets; each
   is tried in turn (§4.3). ``sips:`` yields TLS targets only and the flow refuses anything else.
2. RFC 3261 §26.3.2.1: the TLS flow asks the :class:`~softphone.ua.trustgate.TrustGate` about
   the certificate before the first SIP byte; a refusal ends the attempt (no retry loop).
3. RFC 3261 §10.2: REGISTER through the transaction layer (reliable transport: no
   retransmissions, Timer F still bounds the wait); 401/407 answered by Digest, 423 retried
   with Min-Expires, 403 or a wrong password reported once, never retried by themselves.
4. RFC 3261 §10.2.4: the refresh is due before the granted interval ends
   (:func:`~softphone.ua.registration.refresh_delay`) and goes on the same flow with
   pre-emptive credentials (nc+1): one round trip.
5. RFC 5626 §4.4-4.5: keep-alive pings on the flow; when the flow fails (no pong, EOF, a reset,
   a registrar restart) a :class:`ConnectionLost` event, then a new flow and a new REGISTER with
   exponential backoff (1 s, 2 s, 4 s … 60 s, times a random 50-100 %), then
   :class:`ConnectionRestored` and :class:`Registered` again.
6. Requests arriving on the flow are answered (RFC 5626 §3: the flow also carries requests to
   us): OPTIONS with 200, INVITE, ACK, CANCEL and BYE by the calls (:mod:`softphone.ua.call`;
   CANCEL or BYE for no call: 481), anything else with 501 for now.

Calls (:mod:`softphone.ua.call`) go over the same flow::

    call = await ua.call("sips:bob@example.test", source=mic, sink=speaker)
    await call.wait_for(CallPhase.ESTABLISHED); ...; await call.hangup()

An INVITE arriving on the flow becomes a :class:`~softphone.ua.call.Call` handed to
``on_incoming_call`` (which may set its ``source``/``sink``, :meth:`~softphone.ua.call.Call.
reject` it or keep it to :meth:`~softphone.ua.call.Call.answer` later); with ``auto_answer``
it is answered at once. 407/401 to an INVITE are answered from a Digest client of the calls
(kept apart from the REGISTER one so that neither request carries the other's credentials);
its cached challenge lets the next INVITE carry credentials pre-emptively.

End-to-end calls (draft-gurbani-sip-sipsec-01 §6, :mod:`softphone.ua.sipsec`)::

    call = await ua.call("sipsec:bob@biloxi.test")   # CONNECT, nested TLS, trust, INVITE inside

take over the registration flow (it becomes the tunnel) and then register again on a new
connection in the background. A CONNECT arriving on the flow is answered by the account's
``sipsec_accept`` policy (or ``sipsec_policy=``; ``tunnel_answerer`` answers "ask"). The
identity certificate is ``identity=`` or the one in the identity store. ``on_trace`` receives
a :class:`~softphone.ua.trace.TraceEntry` for every SIP message on any flow and for each
end-to-end TLS handshake; :class:`~softphone.ua.events.TunnelState` and
:class:`~softphone.ua.events.PeerIdentity` events say what the tunnel and the peer are.

The trust ledger (issue 6, :mod:`softphone.ua.trustledger`; ``ledger_path=``, by default
``contacts.json`` beside the pin store) records every certificate a peer shows, in sipsec calls
and in S/MIME bodies; a contact verified in it is pinned before its next sipsec call, so a
changed certificate is a loud question before any INVITE. :meth:`UserAgent.mark_verified` is
the "We compared it" button. With the account's ``smime`` setting (RFC 3261 §23,
:mod:`softphone.ua.smime_call`) the SDP of calls travels signed or signed and encrypted; an
OPTIONS (:meth:`UserAgent.options`, and the 200 we answer) carries our certs-only body (§23.2).

UDP (``sip:`` registrars only; :class:`~softphone.transport.flow.UDPFlow`): used when the
account lists ``"udp"`` in ``transport`` or, with no ``transport`` list, when the registrar URI
says ``;transport=udp`` (it is never picked by itself: TLS, then TCP, is the default order).
The transactions run unreliable (RFC 3261 §17.1.2: Timer E retransmits the REGISTER, Timer F
ends it), the Via says ``UDP`` with ``rport`` (RFC 3581) and the Contact ``transport=udp``. A
REGISTER over 1300 bytes is refused with a clear, non-retryable error (RFC 3261 §18.1.1: use
TCP or TLS). Keep-alives are STUN Binding requests (RFC 5626 §4.4.2) every 80-100 % of the
Flow-Timer (else about 24-29 s); when the registrar never answers STUN (Kamailio without its
stun module, say) the flow keeps no pings and the binding is kept by the refresh REGISTERs
only. A lost UDP flow (STUN unanswered after the registrar had answered, a changed
XOR-MAPPED-ADDRESS, an ICMP port unreachable) is re-established like a lost connection.

Events go to ``on_event`` (a plain callable run in the event loop): they carry no secret.
Round trips (ARCHITECTURE.md floors): :attr:`Binding.round_trips` of a cold registration counts
TCP + TLS + every REGISTER exchange (4 with a challenge); a refresh on the open flow counts 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509

from softphone.media.tone import AudioSink, FrameSource
from softphone.sdp.policy import SrtpPolicy
from softphone.security.certificates import fingerprint_hex
from softphone.security.identity import IdentityError, IdentityMaterial
from softphone.security.ledger import LedgerError
from softphone.security.pins import PinStoreError
from softphone.sip.dialog import DialogId, new_call_id, new_tag
from softphone.sip.digest import AuthenticationFailedError, DigestClient, NoUsableChallengeError
from softphone.sip.errors import LocalProtocolError, ParseError, RemoteProtocolError
from softphone.sip.headers import NameAddr, Via
from softphone.sip.message import Headers, Message, Request, Response
from softphone.sip.transaction import (
    Deliver,
    Send,
    ServerTransaction,
    Terminated,
    Timeout,
    Transaction,
    TransportError,
)
from softphone.sip.transaction_layer import LayerAction, NewRequest, TransactionLayer, new_branch
from softphone.sip.uri import SipURI
from softphone.storage import default_pin_store_path
from softphone.transport.flow import (
    DEFAULT_KEEPALIVE_INTERVAL,
    PONG_TIMEOUT,
    Flow,
    FlowClosedError,
    FlowError,
    PeerVerdict,
    TrustRefusedError,
    UDPTooLargeError,
    open_flow,
)
from softphone.transport.locate import LocateError, ResolverConfig, Transport, locate
from softphone.ua.account import Account, SipsecAccept, new_instance_id
from softphone.ua.account import Transport as AccountTransport
from softphone.ua.call import Call, CallDirection, CallError, CallPhase, parse_target
from softphone.ua.events import (
    ConnectionLost,
    ConnectionRestored,
    Event,
    PeerIdentity,
    Registered,
    RegistrationFailed,
    Unregistered,
)
from softphone.ua.registration import (
    Binding,
    Failed,
    Registration,
    RegistrationError,
    RegistrationState,
    refresh_delay,
)
from softphone.ua.secrets import SecretsError, get_password
from softphone.ua.sipsec import (
    SipsecCallError,
    TunnelAnswerer,
    TunnelHost,
    answer_connect,
    dial,
    is_sipsec_uri,
)
from softphone.ua.smime_call import CallSmime, SmimeSupport
from softphone.ua.trace import Protection, TraceEntry, TraceHandler, first_line_of
from softphone.ua.trustgate import Answerer, TrustGate, TrustPolicy, load_anchors
from softphone.ua.trustledger import LedgerKeeper

__all__ = ["Backoff", "EventHandler", "IncomingCallHandler", "UserAgent"]

log = logging.getLogger(__name__)

EventHandler = Callable[[Event], None]
IncomingCallHandler = Callable[[Call], None]

#: Methods we answer ourselves (Allow in our answers).
_ALLOWED = "OPTIONS"
#: How long close() waits for the un-REGISTER before closing the flow anyway.
_UNREGISTER_TIMEOUT = 5.0
#: RFC 5626 §4.4.1: without a Flow-Timer, keep-alives over a connectionless transport go
#: about every 24-29 s (NAT UDP mappings are short-lived); 80-100 % of this.
DEFAULT_UDP_KEEPALIVE_INTERVAL = 29.0


@dataclass(frozen=True)
class Backoff:
    """RFC 5626 §4.5: wait ``min(cap, base * 2**(failures-1))`` times a random 50-100 %."""

    base: float = 1.0
    cap: float = 60.0

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        if failures <= 0:
            return 0.0
        r = rng or random.Random()  # noqa: S311  # spreading reconnects, not cryptography
        return min(self.cap, self.base * 2.0 ** (failures - 1)) * r.uniform(0.5, 1.0)


class UserAgent:
    """Registers ``account`` and keeps it registered (see the module docstring)."""

    def __init__(
        self,
        account: Account,
        *,
        pin_store_path: Path | None = None,
        trust_policy: TrustPolicy | str = TrustPolicy.ASK,
        answerer: Answerer | None = None,
        on_event: EventHandler | None = None,
        password: str | None = None,
        resolver_config: ResolverConfig | None = None,
        anchors: Sequence[x509.Certificate] | None = None,
        keepalive_interval: float | None = None,
        pong_timeout: float = PONG_TIMEOUT,
        refresh_after: Callable[[int], float] = refresh_delay,
        backoff: Backoff | None = None,
        on_incoming_call: IncomingCallHandler | None = None,
        auto_answer: bool = False,
        media_timeout: float = 30.0,
        identity: IdentityMaterial | None = None,
        tunnel_answerer: TunnelAnswerer | None = None,
        sipsec_policy: SipsecAccept | str | None = None,
        on_trace: TraceHandler | None = None,
        ledger_path: Path | None = None,
    ) -> None:
        """``password`` defaults to the keyring or ``password_env``
        (:func:`~softphone.ua.secrets.get_password`), read when registering. ``anchors``
        default to the account's ``ca_file`` plus the system store; ``keepalive_interval`` to
        the registrar's Flow-Timer, else 120 s. ``ledger_path``: the trust ledger (issue 6),
        by default ``contacts.json`` beside the pin store (as :mod:`softphone.contacts`)."""
        self.account = account
        self.on_event = on_event
        pins_path = pin_store_path or default_pin_store_path()
        #: The trust ledger and the pins beside it (softphone.ua.trustledger).
        self.ledger = LedgerKeeper(ledger_path or pins_path.parent / "contacts.json", pins_path)
        #: RFC 3261 §23 S/MIME bodies in calls, per ``account.smime`` (softphone.ua.smime_call).
        self.smime = SmimeSupport(self)
        self.gate = TrustGate(
            pin_store_path=pins_path,
            policy=trust_policy,
            answerer=answerer,
            anchors=load_anchors(account.ca_file) if anchors is None else anchors,
            on_required=self._emit,
        )
        self._password = password
        self._resolver_config = resolver_config or _resolver_config(account)
        self.keepalive_interval = keepalive_interval
        self.pong_timeout = pong_timeout
        self.refresh_after = refresh_after
        self.backoff = backoff or Backoff()
        self.registration: Registration | None = None
        self.state = RegistrationState.UNREGISTERED
        self.binding: Binding | None = None
        self.flow: Flow | None = None
        self._layer = TransactionLayer()
        self._waiters: dict[Transaction, asyncio.Future[Response]] = {}
        self._tx_flow: dict[Transaction, Flow] = {}
        self._lock = asyncio.Lock()  # one REGISTER exchange at a time (CSeq order, §10.2)
        self._wake = asyncio.Event()
        self._timer_task: asyncio.Task[None] | None = None
        self._maintain_task: asyncio.Task[None] | None = None
        self._closing = False
        self._keepalive_on: Flow | None = None  # the flow whose keep-alive task runs
        # -- calls (softphone.ua.call) --
        self.on_incoming_call = on_incoming_call
        self.auto_answer = auto_answer
        self.media_timeout = media_timeout
        self.calls: list[Call] = []
        self._call_flow: dict[Call, Flow] = {}
        self._call_host = _CallHost(self)
        self._call_digest: DigestClient | None = None
        self._invite_handlers: dict[
            Transaction, tuple[Callable[[Response], None], Callable[[str], None]]
        ] = {}
        self._call_tasks: set[asyncio.Task[None]] = set()
        # -- sipsec (softphone.ua.sipsec) --
        self._identity = identity
        self.tunnel_answerer = tunnel_answerer
        #: Overrides the account's ``sipsec_accept`` (the agent's ``--sipsec-policy``).
        self.sipsec_policy = None if sipsec_policy is None else SipsecAccept(sipsec_policy)
        self.on_trace = on_trace
        self._tunnel_busy = False
        self._tunnels: set[TunnelHost] = set()
        self._peer_identities: dict[Call, PeerIdentity] = {}

    # -- public API ----------------------------------------------------------------------------

    @property
    def secure(self) -> bool:
        """``sips:``: TLS to the registrar, never anything else (RFC 3261 §26.2.2)."""
        return self.account.secure or self.account.registrar_uri.scheme == "sips"

    async def call(
        self,
        uri: str,
        *,
        source: FrameSource | None = None,
        sink: AudioSink | None = None,
        allow_sips_fallback: bool = False,
    ) -> Call:
        """Call ``uri`` (``sips:bob@example.test``, or just ``bob``) over the registered flow;
        the :class:`~softphone.ua.call.Call` returned is ``calling``. Raises
        :class:`~softphone.ua.call.CallError` when not registered, or when SRTP is mandatory
        and the flow is not TLS (no keys in clear SDP, no call without SRTP).

        ``sipsec:bob@biloxi.test`` (draft-gurbani-sip-sipsec-01 §6.4, :mod:`softphone.ua.
        sipsec`): returns once the tunnel is open, its certificate accepted and the INVITE
        sent inside it; a :class:`~softphone.ua.sipsec.SipsecCallError` says why not. When the
        path does not do sipsec and ``allow_sips_fallback`` (the person's explicit consent),
        the same address is then called as ``sips:`` (encrypted to each server only)."""
        if is_sipsec_uri(uri):
            try:
                return await dial(self, uri, source=source, sink=sink)
            except SipsecCallError as exc:
                if not (allow_sips_fallback and exc.fallback_ok):
                    raise
                log.info("sipsec failed (%s); falling back to sips: as agreed", exc.reason)
                await self._wait_registered()
                fallback = "sips:" + uri.strip().split(":", 1)[1]
                return await self.call(fallback, source=source, sink=sink)
        flow = self.flow
        if self._closing or flow is None or flow.is_closed:
            raise CallError("not connected to the registrar: register first")
        target = parse_target(uri, self.account.aor_uri)
        smime = self.smime.for_call(str(target))
        if smime is not None and smime.mode.value == "sign+encrypt" and smime.peer_cert is None:
            await self.smime.fetch_certificate(str(target), smime)  # §23.2
            if self._closing or flow.is_closed:
                raise CallError("the connection to the server closed")
        call = Call(
            self._call_host,
            CallDirection.OUTGOING,
            str(target),
            source=source,
            sink=sink,
            media_timeout=self.media_timeout,
        )
        self.calls.append(call)
        self._call_flow[call] = flow
        try:
            call.start_outgoing(target, smime=smime)
        except BaseException:
            self._forget_call(call)
            raise
        return call

    async def register(self) -> Binding:
        """Register (or return the live binding). On failure a :class:`RegistrationFailed`
        event is emitted (``retrying`` false) and :class:`RegistrationError` raised."""
        if self._closing:
            raise RegistrationError("the user agent is closed", retryable=False)
        if self.state is RegistrationState.REGISTERED and self.binding is not None:
            return self.binding
        self._ensure_timer()
        self.state = RegistrationState.REGISTERING
        try:
            binding = await self._connect_and_register()
        except RegistrationError as exc:
            self._failed(exc, retrying=False)
            raise
        self._maintain_task = asyncio.ensure_future(self._maintain())
        return binding

    async def refresh(self) -> Binding:
        """Refresh the registration now, on the open flow (what the timer does)."""
        flow, binding = self.flow, self.binding
        if flow is None or flow.is_closed or binding is None:
            raise RegistrationError("not registered", retryable=False)
        binding = await self._exchange(flow, expires=None)
        self._registered(flow, binding)
        return binding

    async def unregister(self) -> None:
        """Remove our binding (RFC 3261 §10.2.2: Expires 0 for our Contact)."""
        await self._stop_maintenance()
        flow = self.flow
        if self.state is not RegistrationState.REGISTERED or flow is None or flow.is_closed:
            self.state = RegistrationState.UNREGISTERED
            return
        try:
            await self._exchange(flow, expires=0)
        except RegistrationError as exc:
            self._failed(exc, retrying=False, what="Unregistering failed")
            raise
        finally:
            self.binding = None
        self.state = RegistrationState.UNREGISTERED
        self._emit(Unregistered(self.account.aor, "unregistered at your request"))

    async def close(self) -> None:
        """Unregister if registered (bounded wait), then close the flow and every task."""
        if self._closing:
            return
        await self._hangup_all()
        try:
            if self.state is RegistrationState.REGISTERED:
                async with asyncio.timeout(_UNREGISTER_TIMEOUT):
                    await self.unregister()
        except (RegistrationError, TimeoutError) as exc:
            log.info("closing without a clean unregister: %s", exc)
        finally:
            self._closing = True
            await self._stop_maintenance()
            for tunnel in list(self._tunnels):
                await tunnel.aclose("the user agent closed")
            if self.flow is not None:
                await self.flow.aclose("the user agent closed")
            if self._timer_task is not None:
                self._timer_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._timer_task
            self.state = RegistrationState.CLOSED

    async def __aenter__(self) -> UserAgent:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- connecting and registering ------------------------------------------------------------

    def _registration(self) -> Registration:
        if self.registration is None:
            password = self._password
            if password is None:
                try:
                    password = get_password(self.account)
                except SecretsError as exc:
                    raise RegistrationError(str(exc), retryable=False) from exc
            digest = DigestClient(self.account.auth_username, password)
            instance = self.account.instance_id
            if instance is None and self.account.outbound:
                instance = new_instance_id()  # stable for this UA's life only
            self.registration = Registration(self.account, digest, instance_id=instance)
        return self.registration

    async def _connect_and_register(self, *, restoring: str | None = None) -> Binding:
        """A new flow and a REGISTER on it; ``restoring`` is the lost flow's remote."""
        self._registration()
        flow = await self._connect()
        if restoring is not None:
            self._emit(ConnectionRestored(self.account.aor, flow.remote, _transport(flow)))
        try:
            binding = await self._exchange(flow, expires=None)
        except BaseException:
            flow.close("registration failed")
            raise
        binding = dataclasses.replace(
            binding, round_trips=binding.round_trips + flow.connect_round_trips
        )
        self._registered(flow, binding)
        return binding

    async def _connect(self) -> Flow:
        """RFC 3263 targets in order (§4.3 failover); the first flow that opens and whose
        certificate is accepted is kept."""
        try:
            targets = await locate(
                self.account.registrar_uri, resolver_config=self._resolver_config
            )
        except LocateError as exc:
            raise RegistrationError(str(exc), retryable=True) from exc
        problems: list[str] = []
        for target in targets:
            try:
                flow = await open_flow(
                    target,
                    secure=self.secure,
                    check_peer=self._check_peer,
                    pong_timeout=self.pong_timeout,
                )
            except TrustRefusedError as exc:
                raise RegistrationError(exc.reason, retryable=False) from exc
            except FlowError as exc:
                problems.append(exc.reason)
                continue
            self._adopt(flow)
            return flow
        raise RegistrationError(
            "Cannot reach the registrar: " + "; ".join(problems or ["no address to try"]),
            retryable=True,
        )

    async def _check_peer(
        self, chain: Sequence[x509.Certificate], server_name: str, close_now: Callable[[], None]
    ) -> PeerVerdict:
        return await self.gate.check(
            chain, server_name, close_now, waiting_for=f"registration to {server_name}"
        )

    def _adopt(self, flow: Flow) -> None:
        old, self.flow = self.flow, flow
        if old is not None and old is not flow:
            old.close("replaced by a new connection")
        flow.on_trace = self._tracer(flow, "tls-hop" if flow.transport == "TLS" else "none")
        flow.start(lambda message: self._on_message(flow, message))
        flow.closed.add_done_callback(lambda _: self._flow_closed(flow))

    async def _exchange(self, flow: Flow, *, expires: int | None) -> Binding:
        """One REGISTER and its challenges/retries on ``flow`` → the binding granted."""
        registration = self._registration()
        async with self._lock:
            local = flow.local_address
            request = registration.build(local, flow.transport, expires=expires)
            round_trips = 0
            while True:
                response = await self._send_request(flow, request)
                round_trips += 1
                outcome = registration.judge(request, response, local, flow.transport)
                if isinstance(outcome, Binding):
                    return dataclasses.replace(outcome, round_trips=round_trips)
                if isinstance(outcome, Failed):
                    raise outcome.error
                request = outcome.request

    def _registered(self, flow: Flow, binding: Binding) -> None:
        first_on_flow = self._keepalive_on is not flow
        self.binding = binding
        self.state = RegistrationState.REGISTERED
        if self.account.outbound and first_on_flow:
            default = (
                DEFAULT_UDP_KEEPALIVE_INTERVAL
                if flow.transport == "UDP"
                else DEFAULT_KEEPALIVE_INTERVAL
            )
            interval = binding.flow_timer or self.keepalive_interval or default
            flow.start_keepalive(interval, expect_pong=True if binding.outbound else None)
            self._keepalive_on = flow
        fingerprint = flow.peer_fingerprint
        self._emit(
            Registered(
                aor=self.account.aor,
                expires=binding.expires,
                registrar=str(self.account.registrar_uri),
                registrar_fingerprint=fingerprint_hex(fingerprint) if fingerprint else None,
                transport=_transport(flow),
                algorithm=binding.algorithm,
                weak=binding.weak,
            )
        )

    # -- keeping it alive ------------------------------------------------------------------------

    async def _maintain(self) -> None:
        """Refresh before expiry; after a flow failure, re-establish with backoff."""
        while not self._closing:
            flow, binding = self.flow, self.binding
            assert flow is not None and binding is not None
            reason: str | None = None
            try:
                async with asyncio.timeout(self.refresh_after(binding.expires)):
                    reason = await asyncio.shield(flow.closed)
            except TimeoutError:
                try:
                    self._registered(flow, await self._exchange(flow, expires=None))
                    continue
                except RegistrationError as exc:
                    if not exc.retryable:
                        self._failed(exc, retrying=False)
                        flow.close("registration refused")
                        return
                    flow.close(f"refreshing failed ({exc.reason})")
                    reason = exc.reason
            self.state = RegistrationState.REGISTERING
            if flow.detached:
                # draft-gurbani-sip-sipsec-01 §6.6: the flow became a sipsec tunnel and the
                # proxy dropped its bindings: register again on a new connection, at once.
                if not await self._re_establish(flow.remote, announce=False):
                    return
                continue
            self._emit(ConnectionLost(self.account.aor, flow.remote, _transport(flow), reason))
            if not await self._re_establish(flow.remote):
                return

    async def _re_establish(self, remote: str, *, announce: bool = True) -> bool:
        failures = 0
        while not self._closing:
            await asyncio.sleep(self.backoff.delay(failures))
            try:
                await self._connect_and_register(restoring=remote if announce else None)
                return True
            except RegistrationError as exc:
                if not exc.retryable:
                    self._failed(exc, retrying=False)
                    return False
                failures += 1
                self._failed(exc, retrying=True)
        return False

    async def _stop_maintenance(self) -> None:
        task, self._maintain_task = self._maintain_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _failed(self, exc: RegistrationError, *, retrying: bool, what: str = "") -> None:
        if not retrying:
            self.state = RegistrationState.FAILED
        status = exc.status_code if exc.status_code and 300 <= exc.status_code <= 699 else None
        reason = f"{what}: {exc.reason}" if what else exc.reason
        self._emit(RegistrationFailed(self.account.aor, reason, status, retrying))

    # -- transactions and the flow -----------------------------------------------------------

    async def _send_request(self, flow: Flow, request: Request) -> Response:
        """Run ``request`` through a client transaction on ``flow``; its final response."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Response] = loop.create_future()
        tx, actions = self._layer.send_request(request, loop.time(), reliable=_reliable(flow))
        self._waiters[tx] = future
        self._tx_flow[tx] = flow
        try:
            self._run(actions, flow)
            return await future
        finally:
            self._waiters.pop(tx, None)

    def _on_message(self, flow: Flow, message: Message) -> None:
        now = asyncio.get_running_loop().time()
        try:
            actions = self._layer.receive(message, now, reliable=_reliable(flow))
        except ParseError as exc:
            log.info("unusable message from %s: %s", flow.remote, exc.reason)
            return
        self._run(actions, flow)

    def _run(self, actions: list[LayerAction], flow: Flow | None) -> None:
        now = asyncio.get_running_loop().time()
        for action in actions:
            if isinstance(action, Send):
                self._send(action, flow, now)
            elif isinstance(action, Deliver):
                self._deliver(action)
            elif isinstance(action, Timeout):
                self._fail_invite(action.transaction, "no answer (timed out)")
                self._fail_waiter(action.transaction, "no answer from the registrar (timed out)")
            elif isinstance(action, TransportError):
                self._fail_invite(action.transaction, "the connection to the server failed")
                self._fail_waiter(action.transaction, "the connection to the registrar failed")
            elif isinstance(action, Terminated):
                self._tx_flow.pop(action.transaction, None)  # type: ignore[arg-type]
                self._invite_handlers.pop(action.transaction, None)  # type: ignore[arg-type]
            elif isinstance(action, NewRequest) and flow is not None:
                self._answer(action, flow, now)
        self._wake.set()

    def _send(self, action: Send, flow: Flow | None, now: float) -> None:
        tx = action.transaction
        target = self._tx_flow.get(tx) if tx is not None else None
        target = target or flow
        try:
            if target is None:
                raise FlowClosedError("no connection")
            target.send(action.message)
        except UDPTooLargeError as exc:
            # RFC 3261 §18.1.1: not over UDP. Retrying the same request would not shrink it.
            log.info("not sending over UDP: %s", exc.reason)
            if tx is not None:
                self._fail_waiter(tx, exc.reason, retryable=False)
                self._run(self._layer.transport_error(tx, now), flow)
        except FlowClosedError:
            if tx is not None:
                self._run(self._layer.transport_error(tx, now), flow)

    def _deliver(self, action: Deliver) -> None:
        message = action.message
        if isinstance(message, Request):  # an ACK the INVITE server transaction matched
            self._call_ack(message)
            return
        handlers = self._invite_handlers.get(action.transaction)  # type: ignore[arg-type]
        if handlers is not None:
            handlers[0](message)
            return
        if not isinstance(message, Response) or message.status_code < 200:
            return  # provisional responses change nothing for REGISTER
        future = self._waiters.get(action.transaction)  # type: ignore[arg-type]
        if future is not None and not future.done():
            future.set_result(message)

    def _fail_waiter(self, tx: Transaction | None, reason: str, *, retryable: bool = True) -> None:
        future = self._waiters.get(tx) if tx is not None else None
        if future is not None and not future.done():
            future.set_exception(RegistrationError(reason, retryable=retryable))

    def _flow_closed(self, flow: Flow) -> None:
        """Fail the transactions still waiting on a flow that is gone (RFC 3261 §17.1.4)."""
        if self._timer_task is None:
            return
        now = asyncio.get_running_loop().time()
        for tx in [t for t, f in self._tx_flow.items() if f is flow and t in self._waiters]:
            self._run(self._layer.transport_error(tx, now), None)
        for tx in [t for t, f in self._tx_flow.items() if f is flow and t in self._invite_handlers]:
            self._run(self._layer.transport_error(tx, now), None)
        reason = flow.closed.result() if flow.closed.done() else "closed"
        for call in [c for c, f in self._call_flow.items() if f is flow]:
            call.flow_lost(reason)

    def _answer(self, action: NewRequest, flow: Flow, now: float) -> None:
        """Requests reaching us on the flow (RFC 5626 §3): OPTIONS 200, a CONNECT for a
        sipsec tunnel (draft-gurbani-sip-sipsec-01 §6.5), others 501."""
        if action.request.method == "CONNECT" and action.transaction is not None:
            self._tx_flow[action.transaction] = flow
            task = asyncio.ensure_future(
                answer_connect(self, action.request, action.transaction, flow)
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

    # -- calls ---------------------------------------------------------------------------------

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

    # -- sipsec (softphone.ua.sipsec) ----------------------------------------------------------

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

    def _sipsec_identity(self) -> IdentityMaterial:
        """The user's identity certificate and key (loaded once from the identity store)."""
        if self._identity is None:
            # Imported here: softphone.identity_store imports softphone.ua (secrets).
            from softphone.identity_store import IdentityStore, IdentityStoreError

            try:
                self._identity = IdentityStore.default().load()
            except (IdentityStoreError, IdentityError, OSError) as exc:
                raise CallError(f"create your identity first: softphone cert new ({exc})") from exc
        return self._identity

    def _flow_taken(self, flow: Flow) -> None:
        """The registration flow became a tunnel: its keep-alive is gone with it."""
        if self._keepalive_on is flow:
            self._keepalive_on = None

    def _resume_keepalive(self, flow: Flow) -> None:
        """A CONNECT that did not open a tunnel: the flow goes on as before."""
        binding = self.binding
        if flow.is_closed or binding is None or not self.account.outbound:
            return
        interval = binding.flow_timer or self.keepalive_interval or DEFAULT_KEEPALIVE_INTERVAL
        flow.start_keepalive(interval, expect_pong=True if binding.outbound else None)

    async def _wait_registered(self, timeout: float = 30.0) -> None:
        """Until registered on a live flow again (after a tunnel took the last one)."""
        async with asyncio.timeout(timeout):
            while not (
                self.state is RegistrationState.REGISTERED
                and self.flow is not None
                and not self.flow.is_closed
            ):
                await asyncio.sleep(0.05)

    def _tracer(self, flow: Flow, protection: Protection) -> Callable[[str, Message], None]:
        def trace(direction: str, message: Message) -> None:
            if self.on_trace is None:
                return
            self.on_trace(
                TraceEntry(
                    at=asyncio.get_running_loop().time(),
                    direction="sent" if direction == "sent" else "received",
                    peer=flow.remote,
                    first_line=first_line_of(message),
                    raw=bytes(message),
                    protection=protection,
                )
            )

        return trace

    def _trace_line(self, flow: Flow, direction: str) -> None:
        """The nested TLS handshake as one arrow of the ladder (Figure 3 steps 10-11)."""
        if self.on_trace is None:
            return
        with contextlib.suppress(Exception):
            self.on_trace(
                TraceEntry(
                    at=asyncio.get_running_loop().time(),
                    direction="sent" if direction == "sent" else "received",
                    peer=flow.remote,
                    first_line="TLS handshake (end to end)",
                    raw=b"",
                    protection="sipsec-tunnel",
                )
            )

    async def _hangup_all(self) -> None:
        """Closing: every call ends (CANCEL or BYE, bounded wait)."""
        calls = list(self.calls)
        if not calls:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_UNREGISTER_TIMEOUT):
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
        call = Call(self._call_host, CallDirection.INCOMING, peer, media_timeout=self.media_timeout)
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

    def _ensure_timer(self) -> None:
        if self._timer_task is None:
            self._timer_task = asyncio.ensure_future(self._timer_loop())

    async def _timer_loop(self) -> None:
        """Runs the transaction timers at ``next_deadline`` (sans-I/O layer, our clock)."""
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            deadline = self._layer.next_deadline()
            delay = None if deadline is None else max(0.0, deadline - loop.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            now = loop.time()
            deadline = self._layer.next_deadline()
            if deadline is not None and deadline <= now:
                self._run(self._layer.handle_timer(now), None)

    def _emit(self, event: Event) -> None:
        log.debug("event %s", event.name)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a broken listener must not break the engine
                log.exception("event handler failed for %s", event.name)


class _CallHost:
    """What a :class:`~softphone.ua.call.Call` may ask of its user agent (the
    :class:`~softphone.ua.call.CallHost` protocol), kept off the UA's public face."""

    def __init__(self, ua: UserAgent) -> None:
        self._ua = ua

    @property
    def account_aor(self) -> SipURI:
        return self._ua.account.aor_uri

    @property
    def srtp_policy(self) -> SrtpPolicy:
        return self._ua.account.srtp

    @property
    def media_keying(self) -> str:
        """The account's ``keying`` ("sdes" or "dtls-srtp"): how our offers key SRTP."""
        return str(self._ua.account.keying)

    @property
    def smime(self) -> SmimeSupport:
        """RFC 3261 §23 bodies for the calls on the registration flow."""
        return self._ua.smime

    def call_digest(self) -> DigestClient:
        return self._ua._call_digest_client()

    def _flow(self) -> Flow | None:
        flow = self._ua.flow
        return None if flow is None or flow.is_closed else flow

    def flow_info(self) -> tuple[str, tuple[str, int]] | None:
        flow = self._flow()
        return None if flow is None else (flow.transport, flow.local_address)

    def contact_uri(self) -> SipURI:
        flow = self._flow()
        if flow is None:
            raise CallError("the connection to the server is gone")
        return self._ua._registration().contact_uri(flow.local_address, flow.transport)

    def start_invite(
        self,
        request: Request,
        on_response: Callable[[Response], None],
        on_failure: Callable[[str], None],
    ) -> None:
        ua, flow = self._ua, self._flow()
        if flow is None:
            on_failure("the connection to the server is gone")
            return
        now = asyncio.get_running_loop().time()
        tx, actions = ua._layer.send_request(request, now, reliable=_reliable(flow))
        ua._invite_handlers[tx] = (on_response, on_failure)
        ua._tx_flow[tx] = flow
        ua._run(actions, flow)

    async def transact(self, request: Request) -> Response:
        flow = self._flow()
        if flow is None:
            raise CallError("the connection to the server is gone")
        try:
            return await self._ua._send_request(flow, request)
        except RegistrationError as exc:
            raise CallError(exc.reason) from exc

    def send_direct(self, message: Request) -> None:
        flow = self._flow()
        if flow is None:
            return
        try:
            flow.send(message)
        except FlowError as exc:
            log.info("could not send %s: %s", message.method, exc.reason)

    def respond(self, tx: ServerTransaction, response: Response) -> None:
        ua = self._ua
        flow = ua._tx_flow.get(tx) or self._flow()
        now = asyncio.get_running_loop().time()
        try:
            actions = ua._layer.send_response(response, now, transaction=tx)
        except LocalProtocolError as exc:
            log.info("cannot send %d: %s", response.status_code, exc)
            return
        ua._run(actions, flow)

    def emit(self, event: Event) -> None:
        self._ua._emit(event)

    def forget(self, call: Call) -> None:
        self._ua._forget_call(call)

    @property
    def end_to_end(self) -> bool:
        return False  # the registration flow: TLS to the first hop only


def _transport(flow: Flow) -> AccountTransport:
    return AccountTransport(flow.transport.lower())


def _reliable(flow: Flow) -> bool:
    """RFC 3261 §17.1.1.2: only UDP is an unreliable transport (Timer A/E/G retransmit)."""
    return flow.transport != "UDP"


def _resolver_config(account: Account) -> ResolverConfig:
    """The account's ``nameserver``/``resolve``/``transport`` as RFC 3263 look-up options.

    ``sips:`` looks for TLS only. Without a ``transport`` list: TLS, then TCP, and UDP only
    when the registrar URI asks for it (``;transport=udp``): UDP is never chosen by itself.
    """
    secure = account.secure or account.registrar_uri.scheme == "sips"
    default = [AccountTransport.TLS, AccountTransport.TCP]
    if account.registrar_uri.transport == "udp":
        default.append(AccountTransport.UDP)
    wanted: list[Transport] = []
    for t in account.transport or default:
        if t is AccountTransport.TLS:
            wanted.append("TLS")
        elif t is AccountTransport.TCP and not secure:
            wanted.append("TCP")
        elif t is AccountTransport.UDP and not secure:
            wanted.append("UDP")
    return ResolverConfig.from_account(
        nameserver=[str(n) for n in account.nameserver],
        resolve=[str(r) for r in account.resolve],
        transports=wanted or ["TLS"],
    )
