"""The one object between the engine and the widgets.

qasync runs the asyncio loop on the Qt thread, so the engine's callbacks already run where
widgets live; they still reach widgets only through Qt signals (STYLE.md, Electrum's
pattern), which keeps the engine free of Qt and the widgets free of the engine's timing.

- :meth:`EngineBridge.user_agent` builds a :class:`~softphone.ua.UserAgent` whose ``on_event``
  and trust ``answerer`` are this bridge; each event is emitted with the AOR it concerns.
- :meth:`EngineBridge.answer` is the answerer: it opens the trust dialog (never ``exec()``:
  a nested Qt loop would stall asyncio), awaits the person's answer as a future and returns
  it. If the engine stops waiting (the user agent closed), the dialog goes away unanswered.
- Calls: :meth:`EngineBridge.place_call` runs ``UserAgent.call`` and reports
  :attr:`call_started` or :attr:`call_failed` (the reason in words); an INVITE arriving is
  :attr:`incoming_call`; every event about a call (``call_id``) is also :attr:`call_event`;
  each SIP message is :attr:`trace` when the engine can report them (``on_trace``).
- :meth:`EngineBridge.mark_verified` records "We compared it" in the engine's trust ledger
  when it has one (:meth:`EngineBridge.can_mark_verified` says whether, and why not).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import functools
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from softphone.ua import (
    TURN,
    Account,
    CallError,
    ConnectionLost,
    ConnectionRestored,
    Event,
    Registered,
    RegistrationFailed,
    TrustDecision,
    TrustDecisionRequired,
    TrustRequired,
    Unregistered,
    fingerprint_sha256,
    next_turn,
    running_loop,
)
from ui.presenters import TrustDialogModel
from ui.trust_dialog import TrustDialog

if TYPE_CHECKING:  # the engine proper is imported when the first account starts (cold start)
    from softphone.ua import UserAgent

__all__ = ["DialogFactory", "EngineBridge"]

log = logging.getLogger(__name__)

#: Builds the (not yet shown) dialog for a question; the bridge opens it.
DialogFactory = Callable[[TrustDialogModel, "QWidget | None"], TrustDialog]


class EngineBridge(QObject):
    """Engine events in, Qt signals out; trust questions in, dialogs out, decisions back.

    Every event signal carries ``(aor, event)``: the AOR of the account whose user agent
    emitted it (a :class:`TrustRequired` names a server, not an account).
    """

    any_event = Signal(str, object)  # every engine event (QObject.event is taken)
    registered = Signal(str, object)
    registration_failed = Signal(str, object)
    unregistered = Signal(str, object)
    trust_required = Signal(str, object)
    connection_lost = Signal(str, object)
    connection_restored = Signal(str, object)
    registering = Signal(str)  # the GUI asked the engine to register this AOR
    trust_dialog_shown = Signal(str, object)  # (aor, TrustDialog)
    trust_decided = Signal(str, object)  # (aor, TrustDecision)
    call_started = Signal(str, object, object)  # (aor, Call, Protection | None)
    call_failed = Signal(str, str, str)  # (aor, what was dialled, reason in words)
    #: A ``sipsec:`` call failed because the path does not do sipsec (draft §6.6: a proxy that
    #: refused it or did not go transparent), so ``sips:`` to the same address could still
    #: work: (aor, what was dialled, reason in words). Only ever offered, never done unasked.
    sips_fallback_offered = Signal(str, str, str)
    incoming_call = Signal(str, object)  # (aor, Call) ringing, waiting for accept/decline
    call_event = Signal(str, object)  # (aor, event) every event that names a call_id
    trace = Signal(str, object)  # (aor, TraceEntry)

    _SIGNALS: dict[type[Event], str] = {
        Registered: "registered",
        RegistrationFailed: "registration_failed",
        Unregistered: "unregistered",
        TrustRequired: "trust_required",
        ConnectionLost: "connection_lost",
        ConnectionRestored: "connection_restored",
    }

    def __init__(
        self,
        *,
        dialog_parent: QWidget | None = None,
        dialog_factory: DialogFactory | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.dialog_parent = dialog_parent
        self.dialog_factory: DialogFactory = dialog_factory or TrustDialog
        #: Dialogs waiting for an answer right now, by AOR (for the window and for tests).
        self.open_dialogs: dict[str, TrustDialog] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        #: The user agents this bridge built, by AOR (the dialer calls through them).
        self.user_agents: dict[str, UserAgent] = {}
        #: Every trace entry so far, by AOR (a ladder opened mid-call shows the start too).
        self.traces: dict[str, list[Any]] = {}
        #: Our own identity (certificate + key) by AOR, when the UA was given one: with the
        #: peer's certificate it draws the safety number's QR code.
        self.identities: dict[str, Any] = {}
        #: Leaf certificates the person was asked about, by SHA-256 (for the QR code).
        self.peer_certificates: dict[bytes, Any] = {}
        #: Engine events not yet handed to the widgets (:meth:`on_event`).
        self._pending: collections.deque[tuple[str, Event]] = collections.deque()
        self._delivering = False

    # -- events ------------------------------------------------------------------------------

    def on_event(self, aor: str, event: Event) -> None:
        """Emit ``event`` (from the UA of ``aor``) as its own signal and as :attr:`any_event`,
        on a later turn of the event loop when one runs: the engine's step that produced it
        (reading a response, starting media) and the widgets it updates are then separate
        callbacks, each shorter than both (issue 7: the loop never stalls 20 ms). In order,
        one event a turn, and ``TURN`` (1 ms) apart so that what a timer woke meanwhile runs
        in between (softphone.ua.next_turn). Without a running loop (a bare widget test), at
        once."""
        loop = running_loop()
        if loop is None:
            self._deliver(aor, event)
            return
        self._pending.append((aor, event))
        if not self._delivering:
            self._delivering = True
            loop.call_soon(self._deliver_next)

    def _deliver_next(self) -> None:
        aor, event = self._pending.popleft()
        try:
            self._deliver(aor, event)
        finally:
            if self._pending:
                asyncio.get_running_loop().call_later(TURN, self._deliver_next)
            else:
                self._delivering = False

    async def settled(self) -> None:
        """Wait until every engine event so far has reached the widgets."""
        while self._pending or self._delivering:
            await next_turn()

    def _deliver(self, aor: str, event: Event) -> None:
        name = self._SIGNALS.get(type(event))
        if name is not None:
            getattr(self, name).emit(aor, event)
        if isinstance(getattr(event, "call_id", None), str):
            self.call_event.emit(aor, event)
        self.any_event.emit(aor, event)

    def on_trace(self, aor: str, entry: Any) -> None:
        """A SIP message sent or received by the UA of ``aor`` (a ``TraceEntry``)."""
        entries = self.traces.setdefault(aor, [])
        entries.append(entry)
        del entries[:-2000]  # a long session keeps the last messages only
        self.trace.emit(aor, entry)

    # -- trust questions ---------------------------------------------------------------------

    def answerer(self, aor: str) -> Callable[[TrustDecisionRequired], Any]:
        """The ``answerer`` for the user agent of ``aor``."""

        async def answer(required: TrustDecisionRequired) -> TrustDecision:
            return await self.answer(aor, required)

        return answer

    async def answer(self, aor: str, required: TrustDecisionRequired) -> TrustDecision:
        """Show the trust dialog for ``required`` and return the person's decision."""
        future: asyncio.Future[TrustDecision] = asyncio.get_running_loop().create_future()
        leaf = getattr(required.report, "leaf", None)
        if leaf is not None:
            self.peer_certificates[fingerprint_sha256(leaf)] = leaf
        dialog = self.dialog_factory(TrustDialogModel.from_required(required), self.dialog_parent)

        def decided(decision: object) -> None:
            if not future.done():
                future.set_result(TrustDecision(decision))

        dialog.decided.connect(decided)
        try:
            # Built in this turn of the loop, opened (and painted) in a later one: two
            # callbacks, each shorter than both (issue 7: the loop never stalls 20 ms).
            await next_turn()
            self.open_dialogs[aor] = dialog
            dialog.open()  # window-modal and returns at once: asyncio keeps running
            self.trust_dialog_shown.emit(aor, dialog)
            decision = await future
        finally:
            if self.open_dialogs.get(aor) is dialog:
                del self.open_dialogs[aor]
            dialog.dismiss()  # no-op once answered; closes it if the engine stopped waiting
            dialog.deleteLater()
        self.trust_decided.emit(aor, decision)
        return decision

    # -- user agents -------------------------------------------------------------------------

    def user_agent(self, account: Account, **options: Any) -> UserAgent:
        """A :class:`UserAgent` for ``account`` that reports to this bridge and asks the
        person through it (``trust_policy`` ``ask``). ``options`` go to the constructor."""
        from softphone.ua import TrustPolicy, UserAgent  # the engine proper: after the window

        aor = account.aor
        if options.get("identity") is not None:
            self.identities[aor] = options["identity"]
        options.setdefault("trust_policy", TrustPolicy.ASK)
        # Calls' media on the media thread: a window painted here never delays a packet, and
        # a packet never stalls the window (softphone.media.thread).
        options.setdefault("media_thread", True)
        options.setdefault("on_incoming_call", lambda call: self.incoming_call.emit(aor, call))
        if "on_trace" in _ua_parameters():
            options.setdefault("on_trace", lambda entry: self.on_trace(aor, entry))
        ua = UserAgent(
            account,
            answerer=self.answerer(aor),
            on_event=lambda event: self.on_event(aor, event),
            **options,
        )
        self.user_agents[aor] = ua
        return ua

    # -- calls -------------------------------------------------------------------------------

    @property
    def traces_supported(self) -> bool:
        """Whether this engine's UserAgent reports SIP messages (``on_trace``)."""
        return "on_trace" in _ua_parameters()

    def place_call(
        self, aor: str, uri: str, protection: object = None
    ) -> asyncio.Task[object | None]:
        """Call ``uri`` from the UA of ``aor`` in the background: :attr:`call_started` with
        the ``Call``, or :attr:`call_failed` with the reason in words (never an exception)."""

        async def place() -> object | None:
            ua = self.user_agents.get(aor)
            if ua is None:
                self.call_failed.emit(aor, uri, "No account to call from: add one first.")
                return None
            try:
                call = await ua.call(uri)
            except CallError as exc:
                self.call_failed.emit(aor, uri, _sentence(exc.reason))
                if getattr(exc, "fallback_ok", False):  # SipsecCallError: never a trust refusal
                    self.sips_fallback_offered.emit(aor, uri, _sentence(exc.reason))
                return None
            except Exception as exc:
                log.exception("calling %s failed unexpectedly", uri)
                self.call_failed.emit(aor, uri, f"An internal error ({type(exc).__name__}).")
                return None
            # The call window opens in a later turn of the loop, not in the one that ends the
            # engine's dialling: two shorter stalls instead of one (issue 7: never 20 ms).
            await next_turn()
            self.call_started.emit(aor, call, protection)
            return call

        task = asyncio.ensure_future(place())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def can_mark_verified(self, aor: str) -> str:
        """ "" when "We compared it" can be recorded for calls of ``aor``; else why not."""
        ua = self.user_agents.get(aor)
        if ua is None:
            return "No account."
        if callable(getattr(ua, "mark_verified", None)):
            return ""
        ledger = getattr(ua, "ledger", None)
        if ledger is not None and callable(getattr(ledger, "mark_verified", None)):
            return ""
        return "This version of the engine keeps no trust ledger: nothing can be recorded yet."

    def mark_verified(
        self, aor: str, peer_aor: str, fingerprint: str, *, call: object = None
    ) -> str:
        """Record that the person compared the safety number for ``peer_aor`` (whose
        certificate has ``fingerprint``, ``AB:CD:...``) in ``call``; returns "" or the error in
        words. Uses ``UserAgent.mark_verified(call_or_aor, means="safety-number")`` when the
        engine has it (the call, so that the certificate of *this* call is the one marked),
        else the UA's ledger directly."""
        why_not = self.can_mark_verified(aor)
        if why_not:
            return why_not
        ua: Any = self.user_agents[aor]
        try:
            method = getattr(ua, "mark_verified", None)
            if callable(method):
                result = method(call if call is not None else peer_aor, means="safety-number")
                if inspect.isawaitable(result):
                    self._track(asyncio.ensure_future(result), f"marking {peer_aor} verified")
            else:
                digest = bytes.fromhex(fingerprint.replace(":", ""))
                ua.ledger.mark_verified(peer_aor, digest, "safety-number", dt.datetime.now(dt.UTC))
        except CallError as exc:
            log.warning("marking %s verified failed: %s", peer_aor, exc.reason)
            return _sentence(exc.reason)
        except (ValueError, OSError, LookupError) as exc:  # LedgerError: not its certificate…
            log.warning("marking %s verified failed: %s", peer_aor, exc)
            return _sentence(str(exc) or type(exc).__name__)
        return ""

    def safety_qr(self, aor: str, peer_aor: str, fingerprint: str, number: str) -> bytes | None:
        """The QR payload of the safety number ``number`` of a call of ``aor`` with
        ``peer_aor`` (certificate ``fingerprint``), when both certificates are known here:
        ours (:attr:`identities`) and the peer's (asked about, or in the UA's ledger)."""
        from ui.qr import safety_qr_payload

        own = self.own_identity(aor)
        if own is None or not fingerprint:
            return None
        try:
            digest = bytes.fromhex(fingerprint.replace(":", "").replace(" ", ""))
        except ValueError:
            return None
        peer = self.peer_certificates.get(digest) or _ledger_certificate(
            self.user_agents.get(aor), peer_aor, digest
        )
        if peer is None:
            return None
        return safety_qr_payload(
            own.cert, own.aor, peer, peer_aor, fingerprint=fingerprint, shown_number=number
        )

    def own_identity(self, aor: str) -> Any:
        """Our identity (``.cert``, ``.aor``) for ``aor``: the one the UA was given, else the
        UA's public ``identity`` when this engine has one; ``None`` when unknown."""
        known = self.identities.get(aor)
        if known is None:
            known = getattr(self.user_agents.get(aor), "identity", None)
        return known if getattr(known, "cert", None) is not None else None

    def contacts(self, aor: str) -> tuple[Any, Any, str, Any]:
        """``(ledger, own identity, problem, ledger path)`` for the contacts view of ``aor``:
        the UA's trust ledger as it is on disk now (``None`` and the reason in words when
        unreadable) and the file the view saves a contact's S/MIME setting to (``None``:
        unknown, the setting cannot be changed there)."""
        identity = self.own_identity(aor)
        keeper = getattr(self.user_agents.get(aor), "ledger", None)
        load = getattr(keeper, "load", None)
        path = getattr(keeper, "ledger_path", None)
        if not callable(load):
            return None, identity, "", None
        try:
            return load(), identity, "", path
        except (ValueError, OSError) as exc:  # LedgerError, CorruptLedgerError (kept aside)
            return None, identity, _sentence(f"The trust ledger could not be read: {exc}"), path

    def pin_store_path(self, aor: str) -> Any:
        """The pin store the UA of ``aor`` keeps beside its trust ledger (``None``: unknown):
        the contacts view updates it with the ledger, as ``softphone contacts`` does."""
        keeper = getattr(self.user_agents.get(aor), "ledger", None)
        return getattr(keeper, "pin_store_path", None)

    def _track(self, task: asyncio.Future[Any], what: str) -> None:
        def done(future: asyncio.Future[Any]) -> None:
            if not future.cancelled() and future.exception() is not None:
                log.warning("%s failed: %s", what, future.exception())

        task.add_done_callback(done)

    def start(self, ua: UserAgent) -> asyncio.Task[None]:
        """Register ``ua`` in the background; failures arrive as events, not exceptions."""
        from softphone.ua import RegistrationError

        aor = ua.account.aor
        self.registering.emit(aor)

        async def register() -> None:
            try:
                await ua.register()
            except RegistrationError:
                pass  # the engine reported it as a RegistrationFailed event
            except Exception:
                log.exception("registering %s failed unexpectedly", aor)
                self.on_event(
                    aor, RegistrationFailed(aor, "an internal error (see the log)", None, False)
                )

        task = asyncio.ensure_future(register())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def stop(self) -> None:
        """Cancel registrations still under way (before closing the user agents)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _ledger_certificate(ua: object, peer_aor: str, digest: bytes) -> Any:
    """The certificate with SHA-256 ``digest`` the UA's trust ledger holds for ``peer_aor``."""
    ledger = getattr(ua, "ledger", None)
    load = getattr(ledger, "load", None)  # softphone.ua.trustledger.LedgerKeeper
    try:
        ledger = load() if callable(load) else ledger
    except (ValueError, OSError):
        return None
    contact = None if ledger is None else ledger.get(peer_aor)
    record = None if contact is None else contact.record(digest)
    return None if record is None else record.certificate


@functools.cache  # inspect.signature took 0.6 ms of each call window's opening
def _ua_parameters() -> frozenset[str]:
    """The keyword arguments this engine's ``UserAgent`` takes (features vary by version)."""
    from softphone.ua import UserAgent

    try:
        return frozenset(inspect.signature(UserAgent).parameters)
    except (TypeError, ValueError):
        return frozenset()


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return "It failed."
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
