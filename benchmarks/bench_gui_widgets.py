"""The GUI's longest event-loop callbacks at call set-up, widget by widget (issue 7: the loop
never stalls 20 ms during a call). ``python benchmarks/bench_gui_widgets.py [N]``.

``QT_QPA_PLATFORM=offscreen``; the widgets are the real ones, fed the presenter models the
real screens use (the engine's own event classes, trust reports made by
:func:`softphone.security.trust.evaluate` from :mod:`tests.transport.certs` certificates, a
real trust ledger saved to a file and read back by :class:`softphone.ua.trustledger.LedgerKeeper`),
as in ``tests/ui/screens.py`` and ``tests/ui/conftest.py``; no network. Times are wall
``time.perf_counter`` ms; each figure is the median of ``N`` runs after one unmeasured warm-up,
with the max over those runs and the very first (cold) run beside it:

(a) ``TrustDialog``: construction from its model + ``open()`` (window-modal over a shown main
    window, as ``EngineBridge.answer`` does) + the first paint, forced with ``widget.grab()``
    (renders the dialog and every visible child into a pixmap: the paint Qt would do on the
    next turn). For the quiet variant (self-signed, wrong name) and the loud one (changed
    certificate); construction alone and open + grab alone (``EngineBridge.answer`` builds
    the dialog in one turn of the loop and opens it in the next); then opening the
    certificate details (toggle + grab).
(b) ``SecurityPanel.show_model`` of a sipsec call's panel model: a changed model (alternating
    between two calls' models) and an unchanged one (the same model again), each alone and
    followed by the paint (``grab()``).
(c) The main window's handling of one call event: ``EngineBridge._deliver`` of a
    ``PeerIdentity`` (the event that refreshes the contacts) and of a ``CallState`` to a
    ``MainWindow`` + ``CallManager`` with the call's window open, the History tab in front
    (contacts not on screen), then ``processEvents()`` (zero-delay timers and the paint).
    Then the contacts tab brought to the front (what a deferred refresh costs when it comes),
    after ``MainWindow.warm_hidden_tabs`` (done at idle after start-up).
(d) The call window at dialling: ``call_started`` (the presenter, the spare window bound:
    ``CallManager.open_call_window``), the later turn that shows it
    (``CallManager._show_later``), then ``processEvents()`` (its first paint), then each later
    turn that paints one more part of it (``CallWindow.unpainted``: the security panel, then
    the keypad); the spare is prepared untimed before each run, as the manager does when no
    call is going on. Then bob's side of a ``sipsec:`` call answered at once (auto-answer):
    the established ``CallState`` delivered after the call's earlier events (the presenter
    has its peer's identity and safety number), which binds the spare.
(e) The history list (``MainWindow.show_history``, what each call event that changes the
    call's entry does) with 100 and 500 calls in the history: one entry changed, then a new
    call on top with the oldest dropped; each + ``processEvents()``.
Prints figures; never asserts a time.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N = int(sys.argv[1]) if len(sys.argv) > 1 else 30


def timed(
    what: str, run: Callable[[int], Any], n: int = N, setup: Callable[[int], Any] | None = None
) -> None:
    """Print the median / max / first of ``run(i)`` in ms (``setup(i)`` untimed before)."""
    samples: list[float] = []
    for i in range(n + 1):
        if setup is not None:
            setup(i)
        start = time.perf_counter()
        run(i)
        samples.append((time.perf_counter() - start) * 1000)
    first, rest = samples[0], samples[1:]
    print(
        f"  {what:<58} median {statistics.median(rest):6.2f}  max {max(rest):6.2f}"
        f"  first {first:6.2f} ms"
    )


def questions() -> dict[str, Any]:
    """The quiet question (self-signed, wrong name) and the loud one (a pinned certificate
    changed), as the trust dialog's screenshots build them (tests/ui/trust_screens.py)."""
    from tests.ui.trust_screens import questions as asked

    made = asked()
    return {"quiet": made["self_signed_wrong_name"], "loud": made["changed"]}


def bench_trust_dialog(app: Any) -> None:
    from PySide6.QtWidgets import QMainWindow

    from ui.presenters import TrustDialogModel
    from ui.trust_dialog import TrustDialog

    print("(a) trust dialog: construction + open() + first paint (grab())")
    parent = QMainWindow()
    parent.resize(820, 600)
    parent.show()
    app.processEvents()
    dialogs: list[TrustDialog] = []

    def close_all(_: int = 0) -> None:
        for dialog in dialogs:
            dialog.dismiss()
            dialog.deleteLater()
        dialogs.clear()
        app.processEvents()

    for name, required in questions().items():
        model = TrustDialogModel.from_required(required)

        def build(_: int, model: TrustDialogModel = model) -> None:
            dialog = TrustDialog(model, parent)
            dialog.open()
            dialog.grab()
            dialogs.append(dialog)

        def construct(_: int, model: TrustDialogModel = model) -> None:
            dialogs.append(TrustDialog(model, parent))

        def open_built(_: int) -> None:
            dialogs[-1].open()
            dialogs[-1].grab()

        def built(i: int) -> None:
            close_all()
            construct(i)

        timed(f"{name}: construct + open + grab", build, setup=close_all)
        timed(f"{name}: construct only", construct, setup=close_all)
        timed(f"{name}: open + grab of a built one", open_built, setup=built)

        def details(_: int) -> None:
            dialogs[-1].details_button.click()
            dialogs[-1].grab()

        timed(f"{name}: then open the details (toggle + grab)", details, setup=build)
        close_all()
    parent.close()


def panel_models() -> list[Any]:
    """[established sipsec call, another established one, the first while still calling]."""
    from tests.ui.screens import sipsec_call_events
    from ui.call_presenters import CallPresenter

    models = []
    for call_id, state in (("c-1", "certificate"), ("c-2", "verified")):
        events = sipsec_call_events(call_id, state)
        presenter = CallPresenter(call_id, events[1].peer, "outgoing")
        for event in events:
            presenter.apply(event, 0.0)
        models.append(presenter.panel())
    calling = CallPresenter("c-1", events[1].peer, "outgoing")
    calling.apply(events[0], 0.0)
    calling.apply(events[1], 0.0)
    models.append(calling.panel())
    return models


def bench_security_panel(app: Any) -> None:
    from ui.security_panel import SecurityPanel

    print("(b) SecurityPanel.show_model (a sipsec call's model)")
    panel = SecurityPanel()
    panel.resize(600, 480)
    panel.show()
    app.processEvents()
    first, second, calling = panel_models()

    def was_calling(_: int) -> None:
        panel.show_model(calling)
        app.processEvents()

    timed(
        "calling -> established (fingerprint, number appear)",
        lambda _: panel.show_model(first),
        setup=was_calling,
    )
    timed(
        "calling -> established (fingerprint, number appear) + paint",
        lambda _: (panel.show_model(first), panel.grab()),
        setup=was_calling,
    )
    timed("changed model", lambda i: panel.show_model(second if i % 2 else first))
    timed(
        "changed model + paint (grab)",
        lambda i: (panel.show_model(second if i % 2 else first), panel.grab()),
    )
    panel.show_model(first)
    timed("unchanged model", lambda i: panel.show_model(first))
    timed("unchanged model + paint (grab)", lambda i: (panel.show_model(first), panel.grab()))
    panel.close()


def _main_window(app: Any, bridge: Any) -> tuple[Any, Any]:
    """alice's main window over ``bridge`` with its call manager (coroutines dropped), shown
    and painted: what (c) and (d) measure against."""
    from tests.ui.screens import ALICE
    from ui.calls import CallManager
    from ui.main_window import MainWindow

    window = MainWindow(bridge)
    window.add_account(ALICE)
    manager = CallManager(bridge, window, runner=lambda coro: coro.close())
    window.show()
    app.processEvents()
    return window, manager


def bench_main_window(app: Any) -> None:
    from PySide6.QtTest import QTest

    from softphone.contacts import save_ledger
    from softphone.ua.events import CallState, PeerIdentity
    from softphone.ua.trustledger import LedgerKeeper
    from tests.ui.screens import ALICE, BOB, FP, SAFETY, FakeCall, sample_ledger
    from ui.bridge import EngineBridge
    from ui.presenters import Protection

    print("(c) main window + call manager: one call event (contacts pane not on screen)")
    workdir = Path(tempfile.mkdtemp(prefix="bench-gui-widgets-"))
    ledger, own = sample_ledger()
    path = workdir / "contacts.json"
    save_ledger(path, ledger)
    bridge = EngineBridge()
    keeper = LedgerKeeper(path, workdir / "pins.json")
    bridge.user_agents[ALICE] = SimpleNamespace(ledger=keeper, identity=own)  # type: ignore[assignment]
    window, manager = _main_window(app, bridge)
    window.refresh_contacts(ALICE)
    window.warm_hidden_tabs()  # what the phone does at idle after start-up...
    QTest.qWait(100)  # ...one tab page a turn
    bridge.call_started.emit(ALICE, FakeCall("c-1"), Protection.SIPSEC)
    bridge._deliver(ALICE, CallState("c-1", "outgoing", BOB, "established"))
    app.processEvents()
    identity = PeerIdentity("c-1", "t-1", BOB, FP, "certificate", SAFETY)
    state = CallState("c-1", "outgoing", BOB, "established")
    timed("deliver PeerIdentity", lambda _: bridge._deliver(ALICE, identity))
    timed(
        "deliver PeerIdentity + processEvents",
        lambda _: (bridge._deliver(ALICE, identity), app.processEvents()),
    )
    timed("deliver CallState", lambda _: bridge._deliver(ALICE, state))
    timed(
        "deliver CallState + processEvents",
        lambda _: (bridge._deliver(ALICE, state), app.processEvents()),
    )

    def contacts_shown(i: int) -> None:
        window.tabs.setCurrentWidget(window.contacts_view)
        app.processEvents()

    def history_again(i: int) -> None:
        window.tabs.setCurrentIndex(0)
        bridge._deliver(ALICE, identity)
        app.processEvents()

    timed(
        "then the contacts tab brought to the front (+ processEvents)",
        contacts_shown,
        setup=history_again,
    )
    print(f"    contacts shown: {len(window.contacts_view.rows)} rows")
    manager.close_all()
    window.close()


def bench_call_window(app: Any) -> None:
    import dataclasses

    from tests.ui.screens import ALICE, FakeCall, sipsec_call_events
    from ui.bridge import EngineBridge
    from ui.presenters import Protection

    print("(d) the call window at dialling and at an auto-answer (spare prepared beforehand)")
    bridge = EngineBridge()
    window, manager = _main_window(app, bridge)

    def fresh(_: int) -> None:  # the last call's window gone, the next spare built
        for call_window in list(manager.windows.values()):
            call_window.close_without_asking()  # the call is still going on: no "Hang up?"
            call_window.deleteLater()
        manager.windows.clear()
        manager.presenters.clear()
        manager.calls.clear()
        manager._showing.clear()
        app.processEvents()
        manager.prepare_spare()

    def started(i: int) -> None:
        bridge.call_started.emit(ALICE, FakeCall(f"d-{i}"), Protection.SIPSEC)

    def shown(i: int) -> None:  # the later turn (a 1 ms timer): show()
        manager._show_later(f"d-{i}")

    def paint(_: int) -> None:
        app.processEvents()

    timed("call_started: the spare bound", started, setup=fresh)
    timed("the later turn: show()", shown, setup=lambda i: (fresh(i), started(i)))
    timed(
        "then processEvents: the first paint",
        paint,
        setup=lambda i: (fresh(i), started(i), shown(i)),
    )
    for part in ("security panel", "keypad"):

        def earlier_turns(i: int, left: int = 2 if part == "security panel" else 1) -> None:
            fresh(i)
            started(i)
            shown(i)
            app.processEvents()
            while len(manager.windows[f"d-{i}"].unpainted) > left:
                app.processEvents()

        def turn(i: int, left: int = 2 if part == "security panel" else 1) -> None:
            while len(manager.windows[f"d-{i}"].unpainted) >= left:
                app.processEvents()  # the timer that enables the part, then its paint
            app.processEvents()

        timed(f"then the turns that paint the {part}", turn, setup=earlier_turns)

    # bob's side of a sipsec call answered at once (auto-answer): every event up to the
    # answer has come (no window yet); the established CallState binds the spare.
    def incoming(i: int) -> list[Any]:
        return [
            dataclasses.replace(event, direction="incoming")
            if hasattr(event, "direction")
            else event
            for event in sipsec_call_events(f"a-{i}")
        ]

    answer: dict[int, Any] = {}  # run -> its established CallState, made before the timing

    def answered_so_far(i: int) -> None:
        fresh(i)
        *earlier, answer[i] = incoming(i)[:5]
        for event in earlier:
            bridge._deliver(ALICE, event)
        app.processEvents()

    timed(
        "auto-answer: the established CallState (the spare bound)",
        lambda i: bridge._deliver(ALICE, answer.pop(i)),
        setup=answered_so_far,
    )
    manager.close_all()
    window.close()


def bench_history(app: Any) -> None:
    import dataclasses

    from tests.ui.screens import history_entries
    from ui.bridge import EngineBridge

    print("(e) the history list at one call event (main window shown, History tab in front)")
    window, manager = _main_window(app, EngineBridge())
    base = history_entries()
    for size in (100, 500):
        entries = [dataclasses.replace(base[i % len(base)], call_id=f"h{i}") for i in range(size)]
        window.show_history(entries)
        app.processEvents()

        def changed(i: int, entries: list[Any] = entries) -> None:
            entries[0] = dataclasses.replace(entries[0], outcome=f"answered {i}")
            window.show_history(entries)
            app.processEvents()

        def new_call(i: int, entries: list[Any] = entries, size: int = size) -> None:
            entries.insert(0, dataclasses.replace(base[0], call_id=f"new-{size}-{i}"))
            del entries[size:]
            window.show_history(entries)
            app.processEvents()

        timed(f"{size} calls: one call's entry changed (+ processEvents)", changed)
        timed(f"{size} calls: a new call on top, the oldest gone (+ processEvents)", new_call)
    manager.close_all()
    window.close()


def _quiet(kind: Any, context: Any, message: str) -> None:
    if "does not support" not in message:  # the offscreen plugin's notes, once per window
        sys.stderr.write(message + "\n")


def main() -> None:
    from PySide6.QtCore import qInstallMessageHandler
    from PySide6.QtWidgets import QApplication

    qInstallMessageHandler(_quiet)

    app = QApplication.instance() or QApplication(sys.argv[:1])
    print(f"N = {N}, QT_QPA_PLATFORM={os.environ['QT_QPA_PLATFORM']}, wall ms")
    bench_trust_dialog(app)
    bench_security_panel(app)
    bench_main_window(app)
    bench_call_window(app)
    bench_history(app)


if __name__ == "__main__":
    main()
