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

Sound card (:mod:`softphone.ua.sound`): ``audio_devices=(input, output)`` opens PortAudio
devices for every call not given its own ``source``/``sink``, when its media starts, and
closes them when it ends; a device that fails ends that call with the reason. Left out, they
are the account's ``input_device``/``output_device``, read at each call.

Where the code is: this module holds the façade, the transaction layer and the flow;
:mod:`softphone.ua.upkeep` connects, registers and keeps the registration alive;
:mod:`softphone.ua.dispatch` answers requests on the flow and hands them to calls;
:mod:`softphone.ua.callhost` is what a call on the registration flow may ask of the UA.

Events go to ``on_event`` (a plain callable run in the event loop): they carry no secret.
Round trips (ARCHITECTURE.md floors): :attr:`Binding.round_trips` of a cold registration counts
TCP + TLS + every REGISTER exchange (4 with a challenge); a refresh on the open flow counts 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography import x509

from softphone.media.thread import MediaThread, shared_media_thread
from softphone.media.tone import AudioSink, FrameSource
from softphone.security.identity import IdentityError, IdentityMaterial
from softphone.sip.digest import DigestClient
from softphone.sip.errors import ParseError
from softphone.sip.message import Message, Request, Response
from softphone.sip.transaction import (
    Deliver,
    Send,
    Terminated,
    Timeout,
    Transaction,
    TransportError,
)
from softphone.sip.transaction_layer import LayerAction, NewRequest, TransactionLayer
from softphone.storage import default_pin_store_path
from softphone.transport.flow import (
    PONG_TIMEOUT,
    Flow,
    FlowClosedError,
    UDPTooLargeError,
)
from softphone.transport.locate import ResolverConfig
from softphone.ua.account import Account, SipsecAccept
from softphone.ua.call import Call, CallDirection, CallError, parse_target
from softphone.ua.callhost import FlowCallHost
from softphone.ua.dispatch import CallDispatch
from softphone.ua.events import (
    Event,
    PeerIdentity,
    Unregistered,
)
from softphone.ua.registration import (
    Binding,
    Registration,
    RegistrationError,
    RegistrationState,
    refresh_delay,
)
from softphone.ua.sipsec import (
    SipsecCallError,
    TunnelAnswerer,
    TunnelHost,
    dial,
    is_sipsec_uri,
)
from softphone.ua.smime_call import SmimeSupport
from softphone.ua.sound import FROM_ACCOUNT, AudioDevices, FromAccount
from softphone.ua.timers import run_transaction_timers
from softphone.ua.trace import Protection, TraceEntry, TraceHandler, first_line_of
from softphone.ua.trustgate import Answerer, TrustGate, TrustPolicy, load_anchors
from softphone.ua.trustledger import LedgerKeeper
from softphone.ua.upkeep import (
    DEFAULT_UDP_KEEPALIVE_INTERVAL,
    Backoff,
    RegistrationUpkeep,
    reliable,
)
from softphone.ua.upkeep import resolver_config as _resolver_config

__all__ = [
    "DEFAULT_UDP_KEEPALIVE_INTERVAL",
    "Backoff",
    "EventHandler",
    "IncomingCallHandler",
    "UserAgent",
]

log = logging.getLogger(__name__)

EventHandler = Callable[[Event], None]
IncomingCallHandler = Callable[[Call], None]

#: How long close() waits for the un-REGISTER before closing the flow anyway.
_UNREGISTER_TIMEOUT = 5.0


class UserAgent(RegistrationUpkeep, CallDispatch):
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
        media_thread: bool = False,
        identity: IdentityMaterial | None = None,
        tunnel_answerer: TunnelAnswerer | None = None,
        sipsec_policy: SipsecAccept | str | None = None,
        on_trace: TraceHandler | None = None,
        ledger_path: Path | None = None,
        audio_devices: AudioDevices | FromAccount | None = FROM_ACCOUNT,
    ) -> None:
        """``password`` defaults to the keyring or ``password_env``
        (:func:`~softphone.ua.secrets.get_password`), read when registering. ``anchors``
        default to the account's ``ca_file`` plus the system store; ``keepalive_interval`` to
        the registrar's Flow-Timer, else 120 s. ``ledger_path``: the trust ledger (issue 6),
        by default ``contacts.json`` beside the pin store (as :mod:`softphone.contacts`).
        ``audio_devices``: (input, output) sound-card specs for calls not given their own
        source/sink (:mod:`softphone.ua.sound`); None: no sound card; left out: the
        account's ``input_device``/``output_device`` (:attr:`audio_devices`). ``media_thread``:
        run calls' media on the process's media thread (softphone.media.thread; the desktop
        phone does, so that its window and its audio never wait for each other), else on this
        loop."""
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
        #: The thread calls' media run on (softphone.media.thread), or ``None``: this loop.
        self.media_thread: MediaThread | None = shared_media_thread() if media_thread else None
        self._audio_devices = audio_devices  # FROM_ACCOUNT: see the audio_devices property
        self.calls: list[Call] = []
        self._call_flow: dict[Call, Flow] = {}
        self._call_host = FlowCallHost(self)
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
        self._registration_waiters = 0  # calls waiting for the registration (upkeep)
        self._tunnels: set[TunnelHost] = set()
        self._peer_identities: dict[Call, PeerIdentity] = {}

    # -- public API ----------------------------------------------------------------------------

    @property
    def audio_devices(self) -> AudioDevices | None:
        """Sound-card (input, output) specs, opened per call when its media starts: those
        given to the constructor (or set here), else the account's (``input_device``/
        ``output_device``), read at each call so that a new :attr:`account` applies to the
        next call; a call in progress keeps its devices (:mod:`softphone.ua.sound`)."""
        if self._audio_devices is FROM_ACCOUNT:
            return self.account.audio_devices
        return self._audio_devices

    @audio_devices.setter
    def audio_devices(self, devices: AudioDevices | None) -> None:
        self._audio_devices = devices

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
            media_thread=self.media_thread,
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

    # -- transactions and the flow -----------------------------------------------------------

    async def _send_request(self, flow: Flow, request: Request) -> Response:
        """Run ``request`` through a client transaction on ``flow``; its final response."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Response] = loop.create_future()
        tx, actions = self._layer.send_request(request, loop.time(), reliable=reliable(flow))
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
            actions = self._layer.receive(message, now, reliable=reliable(flow))
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

    def _ensure_timer(self) -> None:
        if self._timer_task is None:
            self._timer_task = asyncio.ensure_future(self._timer_loop())

    async def _timer_loop(self) -> None:
        """Runs the transaction timers at ``next_deadline`` (sans-I/O layer, our clock)."""
        await run_transaction_timers(
            self._layer, self._wake, lambda now: self._run(self._layer.handle_timer(now), None)
        )

    def _emit(self, event: Event) -> None:
        log.debug("event %s", event.name)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a broken listener must not break the engine
                log.exception("event handler failed for %s", event.name)
