"""Registration upkeep of the user agent: connect, register, refresh, re-establish.

The steps (RFC numbers as in :mod:`softphone.ua.useragent`'s docstring):

- RFC 3263 §4.3: the registrar's targets tried in order (:func:`~softphone.transport.locate.
  locate`), the TLS certificate put to the :class:`~softphone.ua.trustgate.TrustGate` before
  the first SIP byte (RFC 3261 §26.3.2.1);
- RFC 3261 §10.2: REGISTER, its challenges and retries (:class:`~softphone.ua.registration.
  Registration` judges, this module sends); the refresh before the interval ends (§10.2.4) on
  the same flow;
- RFC 5626 §4.4-4.5: keep-alives on the flow, and after a loss a new flow with exponential
  backoff (:class:`Backoff`); a flow that became a sipsec tunnel (draft-gurbani-sip-sipsec-01
  §6.6) is replaced at once.

:class:`RegistrationUpkeep` is a mixin of :class:`~softphone.ua.useragent.UserAgent`: the
state it works on (``flow``, ``binding``, ``state``, the transaction layer) is the UA's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509

from softphone.security.certificates import fingerprint_hex
from softphone.sip.digest import DigestClient
from softphone.transport.flow import (
    DEFAULT_KEEPALIVE_INTERVAL,
    Flow,
    FlowError,
    PeerVerdict,
    TrustRefusedError,
    open_flow,
)
from softphone.transport.locate import LocateError, ResolverConfig, Transport, locate
from softphone.ua.account import Account, new_instance_id
from softphone.ua.account import Transport as AccountTransport
from softphone.ua.callstate import CallDirection, CallPhase
from softphone.ua.events import ConnectionLost, ConnectionRestored, Registered, RegistrationFailed
from softphone.ua.registration import (
    Binding,
    Failed,
    Registration,
    RegistrationError,
    RegistrationState,
)
from softphone.ua.secrets import SecretsError, get_password

if TYPE_CHECKING:
    from softphone.sip.message import Message, Request, Response
    from softphone.ua.call import Call
    from softphone.ua.events import Event
    from softphone.ua.trace import Protection
    from softphone.ua.trustgate import TrustGate

__all__ = [
    "DEFAULT_UDP_KEEPALIVE_INTERVAL",
    "Backoff",
    "RegistrationUpkeep",
    "flow_transport",
    "reliable",
    "resolver_config",
]

log = logging.getLogger(__name__)

#: RFC 5626 §4.4.1: without a Flow-Timer, keep-alives over a connectionless transport go
#: about every 24-29 s (NAT UDP mappings are short-lived); 80-100 % of this.
DEFAULT_UDP_KEEPALIVE_INTERVAL = 29.0
#: After a sipsec tunnel takes the registration flow, the new registration waits (at most
#: this long) for the tunnel's call to get its answer: a TCP + TLS handshake and a REGISTER
#: racing the nested TLS handshake for the CPU delay the call (benchmarks/bench_sipsec.py).
TUNNEL_SETUP_GRACE = 2.0
#: ... and, once it has its answer, this much longer: the answer's own work (the ACK, starting
#: the media, the call window of a desktop phone) goes first, not beside a TCP + TLS handshake
#: and a REGISTER on the same event loop (issue 7: the loop never stalls 20 ms during a call;
#: benchmarks/bench_gui.py). A call that needs the new registration cuts the wait short.
TUNNEL_SETTLE = 0.5
#: A callee whose tunnel is set up registers again while its phone rings and the person
#: decides, once it has rung this long: an answer that comes sooner (auto-answer) is a call
#: of ours like a placed one, and its own work goes first (TUNNEL_SETTLE).
RING_QUIET = 0.25


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


class RegistrationUpkeep:
    """Connecting, registering and keeping the registration alive (see the module
    docstring); mixed into :class:`~softphone.ua.useragent.UserAgent`."""

    if TYPE_CHECKING:
        account: Account
        gate: TrustGate
        flow: Flow | None
        binding: Binding | None
        state: RegistrationState
        registration: Registration | None
        keepalive_interval: float | None
        pong_timeout: float
        refresh_after: Callable[[int], float]
        backoff: Backoff
        _password: str | None
        _resolver_config: ResolverConfig
        _lock: asyncio.Lock
        _closing: bool
        _keepalive_on: Flow | None
        _maintain_task: asyncio.Task[None] | None
        _tunnel_busy: bool
        _registration_waiters: int
        calls: list[Call]

        @property
        def secure(self) -> bool: ...

        def _emit(self, event: Event) -> None: ...

        async def _send_request(self, flow: Flow, request: Request) -> Response: ...

        def _on_message(self, flow: Flow, message: Message) -> None: ...

        def _flow_closed(self, flow: Flow) -> None: ...

        def _tracer(self, flow: Flow, protection: Protection) -> Callable[[str, Message], None]: ...

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
            self._emit(ConnectionRestored(self.account.aor, flow.remote, flow_transport(flow)))
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
                transport=flow_transport(flow),
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
                # proxy dropped its bindings: register again on a new connection once the
                # tunnel's call has had its answer for TUNNEL_SETTLE (all in all no later than
                # TUNNEL_SETUP_GRACE, so a call still ringing then does not keep us away).
                await self._tunnel_setup_done(TUNNEL_SETUP_GRACE, TUNNEL_SETTLE)
                if not await self._re_establish(flow.remote, announce=False):
                    return
                continue
            self._emit(ConnectionLost(self.account.aor, flow.remote, flow_transport(flow), reason))
            if not await self._re_establish(flow.remote):
                return

    async def _tunnel_setup_done(self, limit: float, settle: float) -> None:
        """Wait until no end-to-end call is being set up (tunnel, trust check, INVITE not yet
        answered), and ``settle`` seconds more while an end-to-end call of ours goes on (one
        we placed, or one we answered); or ``limit`` seconds in all. At once when a call is
        waiting for the registration (:meth:`_wait_registered`).

        A callee's tunnel is set up when its INVITE has come (the phone rings): it registers
        again once it has rung :data:`RING_QUIET`, while the person decides, and is reachable
        again before the answer. Answered sooner (auto-answer), the call settles first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        settling_since: float | None = None  # set up, with a call of ours going on
        ringing_since: float | None = None  # an incoming call rings, nothing of ours goes on
        while not self._closing and loop.time() < deadline and not self._registration_waiters:
            now = loop.time()
            setting_up = self._tunnel_busy or any(
                c.phase is CallPhase.CALLING and c.end_to_end for c in self.calls
            )
            ours = any(
                c.end_to_end
                and c.phase is not CallPhase.ENDED
                and (c.direction is CallDirection.OUTGOING or c.phase is CallPhase.ESTABLISHED)
                for c in self.calls
            )
            ringing = any(
                c.end_to_end
                and c.direction is CallDirection.INCOMING
                and c.phase is CallPhase.RINGING
                for c in self.calls
            )
            if setting_up:
                settling_since = None
            elif ringing and not ours:  # a person deciding (or an auto-answer on its way)
                ringing_since = now if ringing_since is None else ringing_since
                if now - ringing_since >= RING_QUIET:
                    return
            elif not ours:
                return  # a dial that failed, a call declined: nothing of ours to let go first
            elif settling_since is None:
                settling_since = now
            if settling_since is not None and now - settling_since >= settle:
                return
            await asyncio.sleep(0.02)

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
        """Until registered on a live flow again (after a tunnel took the last one); the new
        registration no longer waits for the last call to settle (:data:`TUNNEL_SETTLE`)."""
        self._registration_waiters += 1
        try:
            async with asyncio.timeout(timeout):
                while not (
                    self.state is RegistrationState.REGISTERED
                    and self.flow is not None
                    and not self.flow.is_closed
                ):
                    await asyncio.sleep(0.05)
        finally:
            self._registration_waiters -= 1


def flow_transport(flow: Flow) -> AccountTransport:
    return AccountTransport(flow.transport.lower())


def reliable(flow: Flow) -> bool:
    """RFC 3261 §17.1.1.2: only UDP is an unreliable transport (Timer A/E/G retransmit)."""
    return flow.transport != "UDP"


def resolver_config(account: Account) -> ResolverConfig:
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
