"""The one object between the engine and the widgets.

qasync runs the asyncio loop on the Qt thread, so the engine's callbacks already run where
widgets live; they still reach widgets only through Qt signals (STYLE.md, Electrum's
pattern), which keeps the engine free of Qt and the widgets free of the engine's timing.

- :meth:`EngineBridge.user_agent` builds a :class:`~softphone.ua.UserAgent` whose ``on_event``
  and trust ``answerer`` are this bridge; each event is emitted with the AOR it concerns.
- :meth:`EngineBridge.answer` is the answerer: it opens the trust dialog (never ``exec()``:
  a nested Qt loop would stall asyncio), awaits the person's answer as a future and returns
  it. If the engine stops waiting (the user agent closed), the dialog goes away unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from softphone.ua import (
    Account,
    ConnectionLost,
    ConnectionRestored,
    Event,
    Registered,
    RegistrationError,
    RegistrationFailed,
    TrustDecision,
    TrustDecisionRequired,
    TrustPolicy,
    TrustRequired,
    Unregistered,
    UserAgent,
)
from ui.presenters import TrustDialogModel
from ui.trust_dialog import TrustDialog

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

    # -- events ------------------------------------------------------------------------------

    def on_event(self, aor: str, event: Event) -> None:
        """Emit ``event`` (from the UA of ``aor``) as its own signal and as :attr:`any_event`."""
        name = self._SIGNALS.get(type(event))
        if name is not None:
            getattr(self, name).emit(aor, event)
        self.any_event.emit(aor, event)

    # -- trust questions ---------------------------------------------------------------------

    def answerer(self, aor: str) -> Callable[[TrustDecisionRequired], Any]:
        """The ``answerer`` for the user agent of ``aor``."""

        async def answer(required: TrustDecisionRequired) -> TrustDecision:
            return await self.answer(aor, required)

        return answer

    async def answer(self, aor: str, required: TrustDecisionRequired) -> TrustDecision:
        """Show the trust dialog for ``required`` and return the person's decision."""
        future: asyncio.Future[TrustDecision] = asyncio.get_running_loop().create_future()
        dialog = self.dialog_factory(TrustDialogModel.from_required(required), self.dialog_parent)

        def decided(decision: object) -> None:
            if not future.done():
                future.set_result(TrustDecision(decision))

        dialog.decided.connect(decided)
        self.open_dialogs[aor] = dialog
        dialog.open()  # window-modal and returns at once: asyncio keeps running
        self.trust_dialog_shown.emit(aor, dialog)
        try:
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
        aor = account.aor
        options.setdefault("trust_policy", TrustPolicy.ASK)
        return UserAgent(
            account,
            answerer=self.answerer(aor),
            on_event=lambda event: self.on_event(aor, event),
            **options,
        )

    def start(self, ua: UserAgent) -> asyncio.Task[None]:
        """Register ``ua`` in the background; failures arrive as events, not exceptions."""
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
