"""The in-call window: who, how long, mute, hold, the DTMF keypad, hang up, the audio level
and the security panel (UX.md's three answers).

It shows a :class:`~ui.call_presenters.CallPresenter` and acts on the engine's ``Call``
(duck-typed: ``hangup()``, and when this engine has them ``hold()``/``resume()``,
``send_dtmf(digits)``, ``set_muted(bool)``/``muted``, ``levels()`` polled at 10 Hz for the
microphone and speaker bars). A control whose engine piece is missing stays
visible, disabled, with a tooltip saying what is missing. Every action has a keyboard path:
Tab order, Alt+letter mnemonics, and the keypad's digits as shortcuts.

The window's first paint is split over three turns of the event loop (:meth:`CallWindow.
paintEvent`): the window with who, the status, the levels and the buttons; then the security
panel; then the keypad. Painted in one go it took 7-9 ms of the loop here, on top of showing
it, and that turn was the longest of a call's set-up (issue 7: the loop never stalls 20 ms).
The layout is done once, with every part in place, so nothing moves when a part appears.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any

import shiboken6
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QFont, QKeySequence, QPaintEvent, QShowEvent
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from softphone.ua import CallError, running_loop
from ui.call_presenters import CallPresenter, Level, keypad_digits
from ui.security_panel import SecurityPanel, set_style

__all__ = ["CallWindow", "Runner", "level_bar", "level_words", "set_level"]

log = logging.getLogger(__name__)

#: Schedules a coroutine (``asyncio.ensure_future`` under qasync).
Runner = Callable[[Coroutine[Any, Any, Any]], Any]

NOT_ANSWERED = "Available once the call is answered"
#: The level bars span LEVEL_FLOOR_DB..0 dBFS; below the floor reads "silent".
LEVEL_FLOOR_DB = -60
LEVEL_POLL_MS = 100
#: How long after an engine event a shown call window shows it, apart from its phase line
#: (:meth:`CallWindow.refresh`), with the event loop running: once for all the events that
#: came meanwhile. At the answer of a call, four or five events come within 20-40 ms, and
#: their refreshes (each followed by Qt's layout and paint of the window) ran in the same
#: busy stretch of the loop as the 200 OK's own work. benchmarks/bench_gui.py, sixteen sipsec
#: set-ups a row, the longest tick of each: median 17-21 ms before, 12.6-14.5 ms after on the
#: quieter rows (docs/benchmarks.md, stop 18). 30 ms is two frames at 60 Hz: nobody sees it.
REFRESH_DELAY_MS = 30


def level_words(dbfs: float) -> str:
    """A level in words for the bar's text: "-23 dBFS", or "silent" below the floor."""
    if not math.isfinite(dbfs) or dbfs < LEVEL_FLOOR_DB:
        return "silent"
    return f"{dbfs:.0f} dBFS"


def set_level(bar: QProgressBar, dbfs: float, words: str | None = None) -> None:
    """Show ``dbfs`` on ``bar``; the words go in its format and in the label beside it (its
    buddy's value label, see :func:`level_row`), outside the bar so they stay readable."""
    value = 0 if not math.isfinite(dbfs) else round(min(0.0, dbfs) - LEVEL_FLOOR_DB)
    bar.setValue(max(0, value))
    text = words if words is not None else level_words(dbfs)
    bar.setFormat(text)
    label = bar.property("value_label")
    if isinstance(label, QLabel):
        label.setText(text)


def level_bar(name: str) -> tuple[QProgressBar, QLabel]:
    """A level bar (-60..0 dBFS) with its value in words in a label beside it."""
    bar = QProgressBar()
    bar.setRange(0, -LEVEL_FLOOR_DB)
    bar.setTextVisible(False)
    bar.setAccessibleName(f"{name} level")
    value = QLabel()
    value.setMinimumWidth(value.fontMetrics().horizontalAdvance("-00 dBFS__"))
    bar.setProperty("value_label", value)
    set_level(bar, -math.inf)
    return bar, value


def _has(call: Any, *names: str) -> bool:
    return call is not None and all(callable(getattr(call, n, None)) for n in names)


class CallWindow(QWidget):
    """One call's window. :attr:`trace_requested` asks for the SIP trace of this call;
    :attr:`compare_requested` carries "We compared it" to whoever holds the ledger."""

    trace_requested = Signal(str)  # call_id
    compare_requested = Signal(str)  # call_id
    #: The window was closed (call_id): the manager lets an ended call's window go.
    closed = Signal(str)

    def __init__(
        self,
        presenter: CallPresenter | None = None,
        call: Any = None,
        *,
        runner: Runner | None = None,
        clock: Callable[[], float] = time.monotonic,
        ledger_missing: str = "",
        trace_missing: str = "",
        qr_source: Callable[[], bytes | None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        """``qr_source`` gives the safety number's QR payload once both certificates are
        known (``None`` until then). Without ``presenter``, a spare: the widgets are built
        (the costly part: 20-45 ms here) and :meth:`bind` gives it its call later."""
        super().__init__(parent, Qt.WindowType.Window)
        self.call = call
        self.runner: Runner = runner or asyncio.ensure_future
        self.clock = clock
        self.ledger_missing = ledger_missing
        self.trace_missing = trace_missing
        self.qr_source = qr_source
        self.muted = False
        self.resize(620, 800)

        column = QVBoxLayout(self)
        self.peer_label = QLabel()
        font = QFont(self.peer_label.font())
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        self.peer_label.setFont(font)
        self.peer_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        column.addWidget(self.peer_label)
        status = QHBoxLayout()
        self.phase_label = QLabel()
        self.timer_label = QLabel("0:00")
        self.timer_label.setAccessibleName("Call duration")
        status.addWidget(self.phase_label, 1)
        status.addWidget(self.timer_label)
        column.addLayout(status)

        column.addLayout(self._levels())
        column.addLayout(self._controls())
        column.addLayout(self._keypad())
        self.message = QLabel()
        self.message.setWordWrap(True)
        column.addWidget(self.message)

        self.security = SecurityPanel()
        self.security.compared.connect(lambda: self.compare_requested.emit(self.presenter.call_id))
        # Scrolled, never squeezed: a window lower than the panel needs (a small screen, 200 %,
        # a long reason) gets a scroll bar, not its last lines cut off.
        self.security_scroll = QScrollArea()
        self.security_scroll.setWidget(self.security)
        self.security_scroll.setWidgetResizable(True)
        self.security_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.security_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # See-through, as the panel was without it: the window's background shows, and a paint
        # of the panel is a paint of the window too (the staged first paint counts on that).
        self.security_scroll.viewport().setAutoFillBackground(False)
        self.security.setAutoFillBackground(False)
        column.addWidget(self.security_scroll, 1)

        self.ticker = QTimer(self)
        self.ticker.setInterval(1000)
        self.ticker.timeout.connect(self._tick)
        #: ~10 Hz poll of ``call.levels()`` while the call is established.
        self.level_poll = QTimer(self)
        self.level_poll.setInterval(LEVEL_POLL_MS)
        self.level_poll.timeout.connect(self.poll_levels)
        #: The parts still to be painted, one per turn after the first paint (module doc).
        self.unpainted: list[list[QWidget]] = []
        self._stage_on_show = False
        self._part_due = False
        #: A refresh is waiting for its turn (:meth:`refresh`).
        self.refresh_due = False
        #: "Hang up?" while it is asked (closing the window of a call still going on).
        self.hang_up_question: QMessageBox | None = None
        self._close_without_asking = False
        if presenter is not None:
            self.bind(presenter, call)

    def bind(self, presenter: CallPresenter, call: Any = None, **settings: Any) -> None:
        """Give this (spare) window its call; ``settings``: the keyword arguments of the
        constructor (``runner``, ``clock``, ``ledger_missing``, ``trace_missing``,
        ``qr_source``) that differ from what it was built with."""
        for name, value in settings.items():
            if name not in ("runner", "clock", "ledger_missing", "trace_missing", "qr_source"):
                raise TypeError(f"CallWindow.bind() got an unexpected keyword {name!r}")
            setattr(self, name, value)
        self.presenter = presenter
        self.call = call
        self.setWindowTitle(f"Call with {presenter.peer}")
        self.peer_label.setText(presenter.peer)
        self.ticker.start()
        self.refresh()
        self._stage_on_show = True

    # -- the first paint, in stages (module doc) --------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802  # Qt's name
        super().showEvent(event)
        if self._stage_on_show and not event.spontaneous():
            self._stage_on_show = False
            self.unpainted = [[self.security], [*self.keypad.values(), self.dtmf_sent]]
            for part in self.unpainted:
                for widget in part:
                    widget.setUpdatesEnabled(False)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802  # Qt's name
        super().paintEvent(event)
        if self.unpainted and not self._part_due:  # the next part once this paint is done
            self._part_due = True
            # 1 ms, not 0: work a timer woke first (softphone.ua.next_turn); the timer is the
            # window's, dropped if the window goes.
            QTimer.singleShot(1, self, self._paint_next_part)

    def _paint_next_part(self) -> None:
        self._part_due = False
        if self.unpainted:
            for widget in self.unpainted.pop(0):
                widget.setUpdatesEnabled(True)  # and update(): painted in the next paint

    def finish_painting(self) -> None:
        """Show everything now and paint every part in the next paint (what a screenshot
        wants at once)."""
        if self.refresh_due:
            self.refresh_now()
        while self.unpainted:
            self._paint_next_part()

    # -- building ------------------------------------------------------------------------

    def _levels(self) -> QGridLayout:
        """Two level bars with their value in words (never colour alone): what our
        microphone sends and what the speaker plays."""
        grid = QGridLayout()
        self.level_labels: list[QLabel] = []
        bars: list[QProgressBar] = []
        for row, name in enumerate(("Microphone", "Speaker")):
            label = QLabel(f"{name}:")
            bar, value = level_bar(name)
            label.setBuddy(bar)
            grid.addWidget(label, row, 0)
            grid.addWidget(bar, row, 1)
            grid.addWidget(value, row, 2)
            self.level_labels += [label, value]
            bars.append(bar)
        self.mic_bar, self.speaker_bar = bars
        grid.setColumnStretch(1, 1)
        return grid

    def _show_levels(self, visible: bool) -> None:
        for widget in (self.mic_bar, self.speaker_bar, *self.level_labels):
            widget.setVisible(visible)

    def poll_levels(self) -> None:
        """Read ``call.levels()`` (sent, received dBFS) into the two bars."""
        if not _has(self.call, "levels"):
            return
        try:
            sent, received = self.call.levels()
        except Exception:  # a level is decoration: never let it break the window
            log.exception("reading the audio levels failed")
            self.level_poll.stop()
            return
        if self.muted:
            set_level(self.mic_bar, -math.inf, "Muted")
        else:
            set_level(self.mic_bar, sent)
        set_level(self.speaker_bar, received)

    def _controls(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.mute_button = QPushButton("&Mute")
        self.mute_button.setCheckable(True)
        self.mute_button.toggled.connect(self._mute)
        self.hold_button = QPushButton("H&old")
        self.hold_button.setCheckable(True)
        self.hold_button.clicked.connect(self._hold)
        self.trace_button = QPushButton("SIP &trace…")
        self.trace_button.setToolTip("The messages of this call, who sent them to whom")
        self.trace_button.clicked.connect(lambda: self.trace_requested.emit(self.presenter.call_id))
        if self.trace_missing:
            self.trace_button.setEnabled(False)
            self.trace_button.setToolTip(self.trace_missing)
        self.hangup_button = QPushButton("&Hang up")
        self.hangup_button.setShortcut(QKeySequence("Ctrl+E"))
        self.hangup_button.setToolTip("End the call (Alt+H or Ctrl+E)")
        self.hangup_button.setStyleSheet(
            f"QPushButton {{ background: {Level.NONE.colour}; color: white; font-weight: bold;"
            " padding: 4px 12px; }"
            " QPushButton:disabled { background: #888; }"
            " QPushButton:focus { border: 2px solid black; }"
        )
        self.hangup_button.clicked.connect(self._hangup)
        for button in (self.mute_button, self.hold_button, self.trace_button):
            row.addWidget(button)
        row.addStretch(1)
        row.addWidget(self.hangup_button)
        return row

    def _keypad(self) -> QGridLayout:
        grid = QGridLayout()
        self.keypad: dict[str, QPushButton] = {}
        for i, digit in enumerate(keypad_digits()):
            button = QPushButton(digit)
            button.setShortcut(QKeySequence(digit))
            button.setAccessibleName(f"DTMF {digit}")
            button.clicked.connect(lambda _=False, d=digit: self._dtmf(d))
            grid.addWidget(button, i // 3, i % 3)
            self.keypad[digit] = button
        self.dtmf_sent = QLabel()
        self.dtmf_sent.setAccessibleName("Digits sent")
        grid.addWidget(self.dtmf_sent, 0, 3, 4, 1)
        return grid

    # -- showing ---------------------------------------------------------------------------

    def refresh(self) -> None:
        """Show the presenter's current state (after each event).

        A window on the screen, with the event loop running, shows the phase line ("In
        call") at once and the rest :data:`REFRESH_DELAY_MS` later, once for every event
        that came meanwhile (the security panel, the buttons, the levels): the engine's work
        on a burst of events and the window's layout and paint then no longer run in one
        busy stretch of the loop (issue 7: the loop never stalls 20 ms). An ended call, a
        window not shown yet (the spare being bound) and a bare widget (no loop) are shown
        whole at once."""
        p = self.presenter
        if p.phase != "ended" and self.isVisible() and running_loop() is not None:
            self.phase_label.setText(p.phase_words)
            if not self.refresh_due:
                self.refresh_due = True
                # The window's timer: dropped with the window if it goes meanwhile.
                QTimer.singleShot(REFRESH_DELAY_MS, self, self._refresh_later)
            return
        self.refresh_now()

    def _refresh_later(self) -> None:
        if self.refresh_due:  # not done meanwhile (finish_painting, an ended call)
            self.refresh_now()

    def refresh_now(self) -> None:
        """Show the presenter's current state, all of it, now."""
        self.refresh_due = False
        p = self.presenter
        self.phase_label.setText(p.phase_words)
        self.timer_label.setText(p.timer(self.clock()))
        levels = _has(self.call, "levels")
        self._show_levels(levels)
        if levels and p.phase == "established" and not self.level_poll.isActive():
            self.level_poll.start()
        elif p.phase != "established" and self.level_poll.isActive():
            self.level_poll.stop()
            self.poll_levels()
        self.security.show_model(p.panel(), ledger_missing=self.ledger_missing)
        if p.safety_number and self.security.qr_payload is None and self.qr_source is not None:
            self.security.show_qr(self.qr_source())
        if p.corrected:
            log.warning("call %s: the engine's words claimed too much: %s", p.call_id, p.corrected)
        established = p.phase == "established"
        ended = p.phase == "ended"
        self._enable(self.mute_button, established, _has(self.call, "set_muted"), "mute")
        engine_muted = getattr(self.call, "muted", None)
        if isinstance(engine_muted, bool) and engine_muted != self.muted:
            self.mute_button.setChecked(engine_muted)  # the engine's state wins
        self._enable(self.hold_button, established, _has(self.call, "hold", "resume"), "hold")
        self.hold_button.setText("Res&ume" if "us" in p.held_by else "H&old")
        self.hold_button.setChecked("us" in p.held_by)
        dtmf = _has(self.call, "send_dtmf")
        held = "us" in p.held_by
        for button in self.keypad.values():
            self._enable(button, established and not held, dtmf, "send DTMF")
            if established and held and dtmf:
                button.setToolTip("Not while the call is on hold")
        self.hangup_button.setEnabled(not ended and self.call is not None)
        if self.call is None:
            self.hangup_button.setToolTip("This window shows events only: no call to end")
        if ended:
            self.ticker.stop()
            self.level_poll.stop()
            self.setWindowTitle(f"Call with {p.peer} (ended)")
            if self.hang_up_question is not None:  # "Hang up?" is moot: close as asked
                box, self.hang_up_question = self.hang_up_question, None
                box.finished.disconnect()
                box.close()
                box.deleteLater()
                self.close()

    def _enable(self, button: QPushButton, now: bool, supported: bool, what: str) -> None:
        if not supported:
            button.setEnabled(False)
            button.setToolTip(f"This version of the engine cannot {what} yet")
            return
        button.setEnabled(now)
        button.setToolTip("" if now else NOT_ANSWERED)

    def _tick(self) -> None:
        self.timer_label.setText(self.presenter.timer(self.clock()))

    def say(self, text: str, level: Level | None = None) -> None:
        self.message.setText(text)
        set_style(self.message, f"color: {level.colour};" if level else "")

    # -- actions ---------------------------------------------------------------------------

    def _run(self, what: str, coro: Coroutine[Any, Any, Any]) -> None:
        async def guarded() -> None:
            words = ""
            try:
                await coro
            except CallError as exc:  # the call goes on (or has ended): say why in words
                log.info("%s failed: %s", what, exc.reason)
                words = f"Could not {what}: {exc.reason}"
            except Exception as exc:
                log.exception("%s failed unexpectedly", what)
                words = f"Could not {what}: an internal error ({type(exc).__name__})"
            if not shiboken6.isValid(self):  # closed after its call ended, and let go
                return
            if words:
                self.say(words, Level.NONE)
            self.refresh()

        self.runner(guarded())

    def _hangup(self) -> None:
        if self.call is not None and self.presenter.phase != "ended":
            self.hangup_button.setEnabled(False)
            self.say("Hanging up…")
            self._run("hang up", self.call.hangup())

    def _hold(self) -> None:
        if self.call is None:
            return
        if "us" in self.presenter.held_by:
            self._run("resume the call", self.call.resume())
        else:
            self._run("put the call on hold", self.call.hold())

    def _mute(self, on: bool) -> None:
        if not _has(self.call, "set_muted"):
            return
        try:
            self.call.set_muted(on)
        except CallError as exc:  # the engine's refusal is shown, not raised
            self.say(f"Could not {'mute' if on else 'unmute'}: {exc.reason}", Level.NONE)
            return
        self.muted = on
        self.mute_button.setText("Un&mute" if on else "&Mute")
        self.mute_button.setToolTip(
            "The other side hears silence until you unmute" if on else "Mute your microphone"
        )
        self.poll_levels()

    def _dtmf(self, digit: str) -> None:
        if not _has(self.call, "send_dtmf") or self.presenter.phase != "established":
            return
        try:
            self.call.send_dtmf(digit)
        except CallError as exc:  # e.g. the peer offered no telephone-event (RFC 4733)
            self.say(f"Could not send {digit}: {exc.reason}", Level.NONE)
            return
        self.dtmf_sent.setText((self.dtmf_sent.text() + digit)[-16:])

    # -- closing -----------------------------------------------------------------------------

    def live(self) -> bool:
        """Whether this window's call is still going on (the engine's call, not ended)."""
        presenter: CallPresenter | None = getattr(self, "presenter", None)
        return self.call is not None and presenter is not None and presenter.phase != "ended"

    def close_without_asking(self) -> None:
        """Close even with the call going on (the phone is closing and ends its calls)."""
        self._close_without_asking = True
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802  # Qt's name
        if self.live() and not self._close_without_asking:
            # A call with no window left would go on with no way to hang it up: ask. Not a
            # nested event loop (exec) inside this handler: the question is opened and
            # answered later, window-modal.
            event.ignore()
            self._ask_hang_up()
            return
        self.ticker.stop()
        self.level_poll.stop()
        super().closeEvent(event)
        if getattr(self, "presenter", None) is not None:
            self.closed.emit(self.presenter.call_id)

    def _ask_hang_up(self) -> None:
        if self.hang_up_question is not None:
            self.hang_up_question.raise_()
            return
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Hang up?")
        box.setText(f"The call with {self.presenter.peer} is still going on.")
        box.setInformativeText("Closing this window hangs it up.")
        hang_up = box.addButton("&Hang up", QMessageBox.ButtonRole.DestructiveRole)
        keep = box.addButton("&Keep the call", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(keep)
        box.setEscapeButton(keep)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.finished.connect(lambda _result: self._answered(box, box.clickedButton() is hang_up))
        self.hang_up_question = box
        box.open()

    def _answered(self, box: QMessageBox, hang_up: bool) -> None:
        self.hang_up_question = None
        box.deleteLater()
        if hang_up:
            self._hangup()
            self.close_without_asking()
