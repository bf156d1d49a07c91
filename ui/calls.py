"""The calls of the GUI: from the bridge's signals to the call windows, and back to the engine.

:class:`CallManager` keeps one :class:`~ui.call_presenters.CallPresenter` per call (made from
the first event that names it, so nothing is missed while ``UserAgent.call`` returns) and:

- places the calls the dialer asks for (:meth:`EngineBridge.place_call`), and shows a failure
  in the dialer, in words;
- opens the :class:`~ui.incoming.IncomingCallWindow` for an INVITE (ringtone, and a tray
  notification when a tray exists), answers or declines (603, RFC 3261 §21.6.2) as told;
- opens a :class:`~ui.call_window.CallWindow` per call, feeds it every event, and records
  "We compared it" through the bridge's ledger;
- records every call in the :class:`softphone.ua.CallHistory` and refreshes the history list;
- opens the SIP trace ladder of a call and keeps it live.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QWidget

from softphone.ua import CallError, CallHistory
from ui import trust_dialog
from ui.bridge import EngineBridge
from ui.call_presenters import CallPresenter, LadderModel, Level
from ui.call_window import CallWindow
from ui.incoming import IncomingCallWindow, Ringtone, SilentRingtone
from ui.ladder import LadderWindow
from ui.main_window import MainWindow
from ui.presenters import Protection
from ui.warming import polish_and_paint

__all__ = ["CallManager", "Notifier"]

log = logging.getLogger(__name__)

#: Shows a desktop notification (title, text); the tray's ``showMessage`` when there is one.
Notifier = Callable[[str, str], None]


#: How many released calls are remembered, to drop their late events.
RELEASED_KEPT = 256


class CallManager(QObject):
    def __init__(
        self,
        bridge: EngineBridge,
        window: MainWindow | None = None,
        *,
        history: CallHistory | None = None,
        ringtone: Ringtone | None = None,
        notify: Notifier | None = None,
        runner: Callable[[Coroutine[Any, Any, Any]], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        super().__init__(window)
        self.bridge = bridge
        self.window = window
        self.history = history
        self.ringtone = ringtone or SilentRingtone()
        self.notify = notify
        self.runner = runner or asyncio.ensure_future
        self.clock = clock
        self.wall_clock = wall_clock
        self.presenters: dict[str, CallPresenter] = {}
        self.calls: dict[str, Any] = {}
        self.aors: dict[str, str] = {}
        self.windows: dict[str, CallWindow] = {}
        self.incoming: dict[str, IncomingCallWindow] = {}
        self.ladders: dict[str, LadderWindow] = {}
        self._early: dict[str, list[Any]] = {}  # events of calls not yet seen begin
        #: Calls let go (:meth:`release`): their late events are dropped, not kept as early
        #: ones. The last RELEASED_KEPT, in order.
        self._released: dict[str, None] = {}
        #: Calls whose window is bound and will be shown in a later turn (:meth:`_on_started`).
        self._showing: set[str] = set()
        self._tunnels: dict[str, list[Any]] = {}  # tunnel events before their call_id
        #: A call window built while no call is going on (:meth:`prepare_spare`), so that
        #: opening one mid-call costs no 20-45 ms of widget building (issue 7: 20 ms).
        self.spare: CallWindow | None = None
        self._closed = False  # close_all(): no spare is built any more
        self._spare_timer = QTimer(self)  # a child: it goes with the manager, never fires late
        self._spare_timer.setSingleShot(True)
        self._spare_timer.timeout.connect(self.prepare_spare)
        bridge.call_event.connect(self._on_event)
        bridge.call_started.connect(self._on_started)
        bridge.call_failed.connect(self._on_failed)
        bridge.incoming_call.connect(self._on_incoming)
        bridge.trace.connect(self._on_trace)
        if window is not None:
            window.dial_requested.connect(self.dial)
            if history is not None:
                window.show_history(history.entries, history.problem)
        self.prepare_spare_soon(500)  # after start-up, before anyone can have dialled

    # -- placing --------------------------------------------------------------------------

    def dial(self, aor: str, uri: str, protection: object = None) -> None:
        self.bridge.place_call(aor, uri, protection)

    def _on_failed(self, aor: str, uri: str, reason: str) -> None:
        if self.window is not None:
            self.window.show_dial_error(f"Could not call {uri}: {reason}")

    def _on_started(self, aor: str, call: Any, protection: object) -> None:
        presenter = self._presenter_for_call(aor, call)
        if isinstance(protection, Protection):
            presenter.protection = protection
        self._open_in_two_turns(presenter.call_id)

    def _open_in_two_turns(self, call_id: str) -> CallWindow:
        """The call's window bound in this turn, shown in a later one: the turn that binds it
        (the dialling task's last step, the answer's event) no longer carries the window's
        show() (~3 ms, its platform window and ~150 widgets' show events) on top of the
        binding (issue 7: the loop never stalls 20 ms). Until then the window counts as
        shown, so a call that ends at once still shows how it ended."""
        window = self.open_call_window(call_id, show=False)
        self._showing.add(call_id)
        QTimer.singleShot(1, self, functools.partial(self._show_later, call_id))
        return window

    def _show_later(self, call_id: str) -> None:
        if call_id in self._showing:
            self._showing.discard(call_id)
            if call_id in self.windows:
                self.open_call_window(call_id)

    # -- events -----------------------------------------------------------------------------

    def _presenter_for_call(self, aor: str, call: Any) -> CallPresenter:
        call_id = str(call.call_id)
        presenter = self.presenters.get(call_id)
        if presenter is None:
            presenter = CallPresenter.from_call(call)
            self.presenters[call_id] = presenter
            for event in self._early.pop(call_id, []):
                presenter.apply(event, self.clock())
        self.calls[call_id] = call
        self.aors[call_id] = aor
        return presenter

    def _on_event(self, aor: str, event: Any) -> None:
        call_id = getattr(event, "call_id", "")
        tunnel_id = getattr(event, "tunnel_id", "")
        if not call_id:
            if tunnel_id:  # a tunnel event before its call is known: kept for the call
                self._tunnels.setdefault(tunnel_id, []).append(event)
            return
        for early in self._tunnels.pop(tunnel_id, []) if tunnel_id else []:
            self._on_event(aor, _with_call_id(early, call_id))
        changed = self.history is not None and self.history.record(event, self.wall_clock())
        if changed and self.window is not None and self.history is not None:
            self.window.show_history(self.history.entries, self.history.problem)
        if call_id in self._released:
            return  # a late event of a call whose windows are gone (the history has it)
        presenter = self.presenters.get(call_id)
        if presenter is None:
            if getattr(event, "name", "") != "call_state":
                self._early.setdefault(call_id, []).append(event)
                return
            presenter = CallPresenter(call_id, event.peer, event.direction)
            self.presenters[call_id] = presenter
            self.aors[call_id] = aor
            for early in self._early.pop(call_id, []):
                presenter.apply(early, self.clock())
        presenter.apply(event, self.clock())
        if (
            getattr(event, "name", "") == "call_state"
            and event.state == "established"
            and call_id not in self.windows
        ):
            self._open_in_two_turns(call_id)  # answered with no click that opened it: auto-answer
        for view in (self.windows.get(call_id), self.incoming.get(call_id)):
            if view is not None:
                view.refresh()
        if getattr(event, "name", "") == "call_state" and event.state == "ended":
            self.ringtone.stop()
            if not self._shown(call_id):  # missed, declined, or its window already closed
                self.release(call_id)
            self.prepare_spare_soon()

    # -- incoming ---------------------------------------------------------------------------

    def _on_incoming(self, aor: str, call: Any) -> None:
        presenter = self._presenter_for_call(aor, call)
        dialog = IncomingCallWindow(presenter, ringtone=self.ringtone, parent=self.window)
        dialog.accept_call.connect(self.accept)
        dialog.decline_call.connect(self.decline)
        # Closed (answered, declined, or a missed call's "Close"): hidden by now.
        dialog.finished.connect(lambda _result: self._window_closed(presenter.call_id))
        self.incoming[presenter.call_id] = dialog
        dialog.show()
        if self.notify is not None:
            self.notify("Incoming call", f"{presenter.peer} is calling")

    def accept(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is None:
            return
        window = self._open_in_two_turns(call_id)  # the click's turn also starts the answer

        async def answer() -> None:
            try:
                await call.answer()
            except CallError as exc:
                window.say(f"Could not answer: {exc.reason}", Level.NONE)

        self.runner(answer())

    def decline(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is None:
            return
        try:
            call.reject(603)  # RFC 3261 §21.6.2 Decline: the person does not want this call
        except CallError as exc:
            log.info("declining %s: %s", call_id, exc.reason)

    # -- windows ------------------------------------------------------------------------------

    def prepare_spare(self) -> None:
        """Build the next call's window now, while no call is going on (at start-up and
        after each call): a window built mid-call would stall the event loop."""
        if self._closed:
            return
        if self.spare is None and self._idle():
            spare = CallWindow()
            # What a first show() would otherwise do mid-call, the platform window included;
            # the paint nobody sees warms Qt's caches (first paint 7.4 -> 5.3 ms).
            polish_and_paint(spare, create=True)
            self.spare = spare
        if self.window is not None and not self.window.warmed:  # in turns of their own
            QTimer.singleShot(1, self, functools.partial(self.window.warm_hidden_tabs, self._idle))
        QTimer.singleShot(1, self, self._warm_trust_dialog)

    def _warm_trust_dialog(self) -> None:
        if self._idle():
            trust_dialog.warm_up()  # once per process

    def _idle(self) -> bool:
        """No call going on, and the phone not closing: the time for work done ahead."""
        return not self._closed and all(p.phase == "ended" for p in self.presenters.values())

    def prepare_spare_soon(self, delay_ms: int = 1000) -> None:
        """:meth:`prepare_spare` once the loop is idle again (a timer: nothing in between)."""
        self._spare_timer.start(delay_ms)

    def open_call_window(self, call_id: str, *, show: bool = True) -> CallWindow:
        """The call's window, made (the spare, bound to the call) if it has none, and shown
        and raised unless ``show`` is False."""
        window = self.windows.get(call_id)
        if window is None:
            presenter = self.presenters[call_id]
            aor = self.aors.get(call_id, "")
            settings: dict[str, Any] = {
                "runner": self.runner,
                "clock": self.clock,
                "ledger_missing": self.bridge.can_mark_verified(aor),
                "trace_missing": ""
                if self.bridge.traces_supported
                else "This version of the engine reports no SIP messages (no on_trace)",
                "qr_source": functools.partial(self._safety_qr, call_id),
            }
            window, self.spare = self.spare, None
            if window is None:
                window = CallWindow(presenter, self.calls.get(call_id), **settings)
            else:
                window.bind(presenter, self.calls.get(call_id), **settings)
            window.compare_requested.connect(self.compared)
            window.trace_requested.connect(self.open_ladder)
            window.closed.connect(functools.partial(self._window_closed, window=window))
            self.windows[call_id] = window
        elif window.call is None and call_id in self.calls:
            window.call = self.calls[call_id]  # the window opened on events before the Call came
            window.refresh()
        if show:
            self._showing.discard(call_id)
            window.show()
            window.raise_()
        return window

    # -- letting ended calls go -----------------------------------------------------------

    def _shown(self, call_id: str, but: QWidget | None = None) -> bool:
        """Whether a window of this call other than ``but`` (one being closed) is still on
        the screen: the call window, or the incoming one."""
        if call_id in self._showing:
            return True
        views = (self.windows.get(call_id), self.incoming.get(call_id))
        return any(view is not None and view is not but and view.isVisible() for view in views)

    def _window_closed(self, call_id: str, window: QWidget | None = None) -> None:
        presenter = self.presenters.get(call_id)
        ended = presenter is not None and presenter.phase == "ended"
        if ended and not self._shown(call_id, but=window):
            self.release(call_id)

    def release(self, call_id: str) -> None:
        """Let an ended call go once none of its windows is shown: its windows are deleted
        (on this, the Qt thread) and the engine's ``Call`` is no longer held. Before, every
        call of the phone's life kept its window (~150 widgets), presenter and ``Call``. Its
        SIP trace stays while that window is open; the history has the call."""
        self._released[call_id] = None
        self._showing.discard(call_id)
        while len(self._released) > RELEASED_KEPT:
            del self._released[next(iter(self._released))]
        for name in ("presenters", "calls", "aors", "_early"):
            getattr(self, name).pop(call_id, None)
        for views in (self.windows, self.incoming):
            view = views.pop(call_id, None)
            if view is not None:
                view.hide()
                view.deleteLater()
        self._drop_closed_ladders()

    def _drop_closed_ladders(self) -> None:
        for call_id in [c for c, ladder in self.ladders.items() if not ladder.isVisible()]:
            if call_id not in self.presenters:
                self.ladders.pop(call_id).deleteLater()

    def _safety_qr(self, call_id: str) -> bytes | None:
        p = self.presenters[call_id]
        return self.bridge.safety_qr(
            self.aors.get(call_id, ""), p.peer_aor, p.fingerprint or "", p.safety_number or ""
        )

    def compared(self, call_id: str) -> None:
        """ "We compared it": mark the peer verified in the ledger, then show it."""
        presenter = self.presenters[call_id]
        window = self.windows[call_id]
        if not presenter.fingerprint or not presenter.peer_aor:
            window.security.set_status("No certificate from the other phone to verify.", Level.NONE)
            return
        error = self.bridge.mark_verified(
            self.aors.get(call_id, ""),
            presenter.peer_aor,
            presenter.fingerprint,
            call=self.calls.get(call_id),
        )
        if error:
            window.security.set_status(f"Not recorded: {error}", Level.NONE)
            return
        presenter.marked_verified()
        window.refresh()
        window.security.set_status(
            f"Recorded: {presenter.peer_aor} is verified by safety number.", Level.BEST
        )

    def open_ladder(self, call_id: str) -> LadderWindow:
        self._drop_closed_ladders()
        ladder = self.ladders.get(call_id)
        if ladder is None:
            presenter = self.presenters[call_id]
            entries = self.bridge.traces.get(self.aors.get(call_id, ""), [])
            model = LadderModel.from_entries(entries, call_ids={call_id, *presenter.tunnel_ids})
            ladder = LadderWindow(model, title=f"SIP trace: call with {presenter.peer}")
            self.ladders[call_id] = ladder
        ladder.show()
        ladder.raise_()
        return ladder

    def _on_trace(self, aor: str, entry: Any) -> None:
        for call_id, ladder in self.ladders.items():
            presenter = self.presenters.get(call_id)
            if presenter is not None and ladder.model.call_ids is not None:
                ladder.model.call_ids |= presenter.tunnel_ids
            ladder.add(entry)

    def close_all(self) -> None:
        """Close every window; no spare is built afterwards (the phone is closing: the end
        of its calls started the timer, and a window built a second later, for nobody, cost
        20-45 ms of another phone's loop in the bench)."""
        self._closed = True
        self._spare_timer.stop()
        self._showing.clear()  # nothing shown once the phone closes
        # Copies: closing an ended call's window lets the call go (release) meanwhile.
        for window in list(self.windows.values()):
            window.close_without_asking()  # the phone ends its calls itself
        for view in [*self.incoming.values(), *self.ladders.values()]:
            view.close()
        if self.spare is not None:
            self.spare.deleteLater()
            self.spare = None


def _with_call_id(event: Any, call_id: str) -> Any:
    """A tunnel event that came before its call was known, now naming the call."""
    try:
        return dataclasses.replace(event, call_id=call_id)
    except (TypeError, ValueError):
        return event
