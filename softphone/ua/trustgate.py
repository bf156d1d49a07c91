"""The trust gate: where a server's certificate is accepted, refused, or put to a person.

ARCHITECTURE.md: "Trust decisions are requests that the engine awaits (``TrustDecisionRequired``
event carrying a report and a future/callback) ... Nothing is ever accepted silently."
RFC 3261 §26.3.2.1: the REGISTER goes out only after the registrar's certificate is accepted.

:meth:`TrustGate.check` is a :data:`~softphone.transport.flow.PeerCheck`: the flow calls it
between the TLS handshake and the first SIP byte. It evaluates the chain for
``Identity.domain(server_name)`` (RFC 5922 §7) against the account's ``ca_file`` and the system
trust store and the pin store, then:

- a clean report, or a certificate pinned for that domain: go on, nobody is asked;
- a finding that can never be overridden (forged signature, no certificate): refused;
- anything else: a :class:`~softphone.ua.events.TrustRequired` event is emitted and the answer
  is awaited as an ``asyncio.Future``; the policy says who answers:

  ======================  ==============================================================
  policy                  answer
  ======================  ==============================================================
  ``reject``              "Don't connect" (the default button, UX.md)
  ``ask``                 the ``answerer`` coroutine (the GUI dialog, the agent's prompt,
                          a test fixture); with no answerer: "Don't connect"
  ``accept-once``         "Connect this time" (for unattended test set-ups)
  ======================  ==============================================================

  A certificate that *changed* since it was pinned is never answered by a policy, not even
  ``accept-once``: it is the loud warning and only a person (``ask``) may accept it.

An expired certificate (draft-gurbani-sip-tls-use-00 A.2.1, ``report.closes_at_once``) has its
connection closed before the question; if accepted, the flow reconnects and requires the same
certificate. "Always trust" pins the certificate (:func:`~softphone.security.trust.
apply_decision`) and writes the pin store atomically before the connection goes on.

Within one gate (one UserAgent), a certificate accepted once stays accepted for reconnecting to
the same domain, so a restarted registrar is registered with again "without user action";
a different certificate is a new question.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from softphone.security.certificates import Identity
from softphone.security.pins import PinStore, PinStoreError
from softphone.security.trust import (
    Purpose,
    TrustDecision,
    TrustDecisionError,
    TrustDecisionRequired,
    TrustReport,
    apply_decision,
    decide_automatically,
    evaluate,
)
from softphone.storage import load_pin_store, save_pin_store
from softphone.transport.flow import PeerVerdict
from softphone.ua.events import TrustRequired

__all__ = [
    "SYSTEM_CA_BUNDLE",
    "Answerer",
    "PendingDecision",
    "TrustGate",
    "TrustPolicy",
    "load_anchors",
    "system_anchors",
]

log = logging.getLogger(__name__)

#: Debian/Ubuntu's bundle of the system's trusted CAs (package ca-certificates).
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

#: Gets the question, returns the person's answer (may take as long as the person does).
Answerer = Callable[[TrustDecisionRequired], Awaitable[TrustDecision]]


class TrustPolicy(StrEnum):
    """Who answers a trust question (the agent's ``--on-untrusted``)."""

    REJECT = "reject"
    ASK = "ask"
    ACCEPT_ONCE = "accept-once"


@dataclass
class PendingDecision:
    """A question put to a person and the future its answer resolves."""

    required: TrustDecisionRequired
    future: asyncio.Future[TrustDecision]


@functools.cache
def system_anchors(bundle: Path = SYSTEM_CA_BUNDLE) -> tuple[x509.Certificate, ...]:
    """The system's trusted CAs ((): no bundle on this machine). Read once per process."""
    try:
        with warnings.catch_warnings():
            # A CA in the system bundle with a non-positive serial makes cryptography warn;
            # it is the distribution's certificate, nothing the person can act on.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            return tuple(x509.load_pem_x509_certificates(bundle.read_bytes()))
    except (OSError, ValueError) as exc:
        log.warning("cannot read the system CA bundle %s: %s", bundle, exc)
        return ()


def load_anchors(
    ca_file: Path | None, *, system: bool = True, bundle: Path = SYSTEM_CA_BUNDLE
) -> tuple[x509.Certificate, ...]:
    """The account's ``ca_file`` (PEM, one or more certificates) plus the system store."""
    anchors: list[x509.Certificate] = []
    if ca_file is not None:
        anchors += x509.load_pem_x509_certificates(Path(ca_file).read_bytes())
    if system and bundle.exists():
        anchors += system_anchors(bundle)
    return tuple(anchors)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TrustGate:
    """Decides about server certificates for one user agent (module docstring)."""

    def __init__(
        self,
        *,
        pin_store_path: Path,
        policy: TrustPolicy | str = TrustPolicy.ASK,
        answerer: Answerer | None = None,
        anchors: Sequence[x509.Certificate] = (),
        on_required: Callable[[TrustRequired], None] | None = None,
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self.pin_store_path = Path(pin_store_path)
        self.policy = TrustPolicy(policy)
        self.answerer = answerer
        self.anchors = tuple(anchors)
        self.on_required = on_required
        self._clock = clock
        #: Questions awaiting an answer right now.
        self.pending: list[PendingDecision] = []
        #: The last report evaluated (for the UI's details view and for tests).
        self.last_report: TrustReport | None = None
        self.questions_asked = 0
        self._accepted: set[tuple[str, bytes]] = set()  # (identity key, leaf SHA-256)

    async def check(
        self,
        chain: Sequence[x509.Certificate],
        server_name: str,
        close_now: Callable[[], None],
        *,
        waiting_for: str,
    ) -> PeerVerdict:
        """Decide about ``chain`` presented for ``server_name`` (see the module docstring)."""
        identity = Identity.domain(server_name)
        try:
            pins = load_pin_store(self.pin_store_path)  # re-read: another window may have pinned
        except (OSError, PinStoreError) as exc:
            # Fail closed: without the pins a changed certificate would look like a new one.
            return PeerVerdict(
                False, reason=f"Not connected: the trust store is unreadable ({exc})"
            )
        now = self._clock()
        report = evaluate(
            chain, identity, now=now, anchors=self.anchors, pins=pins, purpose=Purpose.SERVER
        )
        self.last_report = report
        automatic = decide_automatically(report)
        if automatic is TrustDecision.ACCEPT_ONCE:
            return PeerVerdict(True)
        if automatic is TrustDecision.REJECT:
            self._emit(TrustRequired.from_report(report, waiting_for))
            return PeerVerdict(False, reason=f"Not connected: {report.headline}")
        fingerprint = report.fingerprint
        assert fingerprint is not None  # a report with no certificate is never overridable
        if (identity.key, fingerprint) in self._accepted and not report.changed:
            return PeerVerdict(True)  # accepted earlier in this session: a reconnect
        if report.closes_at_once:
            close_now()  # draft-gurbani-sip-tls-use A.2.1: close first, then tell and ask
        required = TrustDecisionRequired(report, waiting_for)
        self._emit(TrustRequired.from_required(required))
        decision = await self._decide(required)
        return self._carry_out(pins, report, decision, now)

    async def check_identity(
        self,
        chain: Sequence[x509.Certificate],
        identity: Identity,
        purpose: Purpose,
        close_now: Callable[[], None],
        *,
        waiting_for: str,
    ) -> tuple[PeerVerdict, TrustReport]:
        """Decide about a sipsec peer's certificate for the AOR ``identity``
        (draft-gurbani-sip-sipsec-01 §6.4 for the callee's certificate, ``Purpose.SERVER``;
        §6.5 for the caller's, ``Purpose.CLIENT``): "If the UAC does not trust the identity of
        the UAS based on the information contained in the certificate, it MUST present this
        information to the user ... and allow it to make a decision".

        The same rules as :meth:`check`: a clean report or a pinned certificate goes on; a
        finding never overridable is refused; anything else is a question, and a changed pin
        is never answered by a policy. Returns the verdict and the report (for the identity
        state shown with the call). ``close_now`` is not called: the tunnel's owner closes
        it on a refusal (close_notify first)."""
        del close_now  # same signature as check(); nothing closes before the question here
        try:
            pins = load_pin_store(self.pin_store_path)
        except (OSError, PinStoreError) as exc:
            report = evaluate(chain, identity, now=self._clock(), anchors=self.anchors)
            reason = f"Not connected: the trust store is unreadable ({exc})"
            return PeerVerdict(False, reason=reason), report
        now = self._clock()
        report = evaluate(
            chain, identity, now=now, anchors=self.anchors, pins=pins, purpose=purpose
        )
        self.last_report = report
        automatic = decide_automatically(report)
        if automatic is TrustDecision.ACCEPT_ONCE:
            return PeerVerdict(True), report
        if automatic is TrustDecision.REJECT:
            self._emit(TrustRequired.from_report(report, waiting_for))
            return PeerVerdict(False, reason=f"Not connected: {report.headline}"), report
        required = TrustDecisionRequired(report, waiting_for)
        self._emit(TrustRequired.from_required(required))
        decision = await self._decide(required)
        verdict = self._carry_out(pins, report, decision, now)
        # A tunnel is never re-opened to the same certificate: no reconnect requirement.
        return PeerVerdict(verdict.accepted, verdict.reason), report

    async def _decide(self, required: TrustDecisionRequired) -> TrustDecision:
        if required.loud and self.policy is not TrustPolicy.ASK:
            log.warning("changed certificate for %s: only a person may accept it", required)
            return TrustDecision.REJECT
        if self.policy is TrustPolicy.REJECT:
            return TrustDecision.REJECT
        if self.policy is TrustPolicy.ACCEPT_ONCE:
            return TrustDecision.ACCEPT_ONCE
        if self.answerer is None:
            return TrustDecision.REJECT
        return await self._ask(required, self.answerer)

    async def _ask(self, required: TrustDecisionRequired, answerer: Answerer) -> TrustDecision:
        """Put the question to ``answerer`` and await the future its answer resolves."""
        future: asyncio.Future[TrustDecision] = asyncio.get_running_loop().create_future()
        pending = PendingDecision(required, future)
        self.pending.append(pending)
        self.questions_asked += 1

        async def run() -> None:
            try:
                answer = await answerer(required)
            except asyncio.CancelledError:
                raise
            except Exception:  # a broken dialog means "no answer": the default, don't connect
                log.exception("the trust answerer failed; not connecting")
                answer = TrustDecision.REJECT
            if not future.done():
                future.set_result(TrustDecision(answer))

        task = asyncio.ensure_future(run())
        try:
            return await future
        finally:
            self.pending.remove(pending)
            task.cancel()

    def _carry_out(
        self, pins: PinStore, report: TrustReport, decision: TrustDecision, now: dt.datetime
    ) -> PeerVerdict:
        if decision is TrustDecision.REJECT:
            return PeerVerdict(False, reason=f"Not connected: {report.headline}")
        try:
            apply_decision(pins, report, decision, now=now)
        except TrustDecisionError as exc:
            return PeerVerdict(False, reason=f"Not connected: {exc}")
        if decision is TrustDecision.ALWAYS_TRUST:
            try:
                save_pin_store(self.pin_store_path, pins)
            except OSError as exc:  # accepted for now; the person will be asked next time
                log.warning("could not save the trusted certificate: %s", exc)
        fingerprint = report.fingerprint
        assert fingerprint is not None
        self._accepted.add((report.identity.key, fingerprint))
        return PeerVerdict(True, reconnect_requiring=fingerprint if report.closes_at_once else None)

    def _emit(self, event: TrustRequired) -> None:
        if self.on_required is not None:
            self.on_required(event)
