"""``softphone demo --gui`` / ``make demo``: the sipsec demo a presenter runs without a terminal.

One window (draft-gurbani-sip-sipsec-01 §6.7, Figure 3, made visible):

- a presenter bar: "Call bob as sips: (hop by hop)", "Call bob as sipsec: (end to end)", "Hang
  up", and a caption saying what to notice at each stage;
- alice's and bob's phones side by side: each the real :class:`~ui.main_window.MainWindow`
  with its own :class:`~ui.bridge.EngineBridge` and :class:`~ui.calls.CallManager`, driving the
  real user agents of the embedded :class:`~softphone.demo_network.DemoNetwork` (two TLS
  proxies on loopback); bob's phone rings and the presenter accepts; call windows, trust
  dialogs and "We compared it" are the phone's own;
- "what the proxies see": one pane per proxy fed live by its
  :class:`~softphone.server.observe.ProxyView` (:mod:`ui.demo_presenters`).

Trust questions (draft §6.4/§6.5: the peer's self-signed identity) reach the trust dialog of
the phone that asks, through the network's ``answerer(phone_name, required)`` hook.

:func:`main` runs it in a qasync loop; :class:`DemoWindow` and :func:`open_demo` are what the
tests drive.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QFont, QFontDatabase
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from softphone.ua import CallHistory, TrustDecision, TrustDecisionRequired
from ui.bridge import EngineBridge
from ui.call_presenters import Level
from ui.calls import CallManager
from ui.demo_presenters import ProxyMark, ProxyPaneModel, mark, proxy_pane_model
from ui.main_window import MainWindow
from ui.presenters import Protection
from ui.security_panel import badge_style

__all__ = ["DemoWindow", "PhonePane", "ProxyPane", "main", "open_demo"]

log = logging.getLogger(__name__)

ALICE_DOMAIN, BOB_DOMAIN = "atlanta.test", "biloxi.test"
TARGETS = {"sips": f"sips:bob@{BOB_DOMAIN}", "sipsec": f"sipsec:bob@{BOB_DOMAIN}"}
#: How often the proxy panes look at their views (the counter is live, not a report).
REFRESH_MS = 250

CAPTION_START = (
    "<b>Two phones, two providers.</b> alice (atlanta.test) and bob (biloxi.test) are "
    "registered over TLS with their own proxy. Place the same call twice and watch the panes "
    "at the bottom: they show what each proxy can read."
)
CAPTION_STARTING = "Starting the demo network: two proxies, two phones, certificates…"
CAPTION = {
    "sips": (
        "<b>Hop by hop (sips:).</b> Accept the call on bob's phone. Each proxy decrypts TLS, "
        "<b>reads the INVITE and the SDP — the SRTP key included</b> — and re-encrypts it for "
        "the next hop: both panes say <i>“can read the keys”</i>. The call windows never say "
        "“end to end”. Hang up, then place the sipsec call."
    ),
    "sipsec": (
        "<b>End to end (sipsec:).</b> The proxies relay a CONNECT, then bytes they cannot "
        "decrypt (watch the counters). Each phone asks about the other's certificate — nobody "
        "vouches for it — click <i>“Connect this time”</i>, then accept on bob's phone. "
        "Read the safety numbers aloud: they are the same; press <i>“We compared it”</i> on "
        "both phones."
    ),
}


class ProxyPane(QGroupBox):
    """What one proxy sees: a verdict in words and colour, a counter, the messages it read."""

    def __init__(self, proxy: str, owner: str, parent: QWidget | None = None) -> None:
        super().__init__(f"What {proxy} sees ({owner}'s proxy)", parent)
        self.proxy = proxy
        column = QVBoxLayout(self)
        self.headline = QLabel()
        self.headline.setObjectName("proxyHeadline")
        font = QFont(self.headline.font())
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.headline.setFont(font)
        self.counter = QLabel()
        self.counter.setObjectName("opaqueCounter")
        fixed = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        big = QFont(fixed)
        big.setPointSizeF(fixed.pointSizeF() * 1.15)
        self.counter.setFont(big)
        self.keys = QLabel()
        self.keys.setObjectName("keysRead")
        self.keys.setFont(fixed)
        self.keys.setWordWrap(True)
        self.keys.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.keys.setStyleSheet(f"color: {Level.NONE.colour}; font-weight: bold;")
        self.keys.setVisible(False)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setFont(fixed)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setAccessibleName(f"Messages {proxy} read")
        top = QHBoxLayout()
        top.addWidget(self.headline, 0, Qt.AlignmentFlag.AlignLeft)
        top.addStretch(1)
        top.addWidget(self.counter, 0, Qt.AlignmentFlag.AlignRight)
        column.addLayout(top)
        column.addWidget(self.keys)
        column.addWidget(self.text, 1)
        self.model: ProxyPaneModel | None = None

    def show_model(self, model: ProxyPaneModel) -> None:
        if model == self.model:
            return
        self.model = model
        self.headline.setText(model.headline)
        self.headline.setStyleSheet(badge_style(model.level))
        self.counter.setText(model.counter)
        self.keys.setText(f"SRTP key it read: {model.key_line}" if model.key_line else "")
        self.keys.setVisible(bool(model.key_line))
        self.counter.setStyleSheet(f"color: {Level.BEST.colour};" if model.counter else "")
        text = "\n".join(model.lines) if model.lines else _idle_text(model)
        if text != self.text.toPlainText():
            self.text.setPlainText(text)


def _idle_text(model: ProxyPaneModel) -> str:
    if not model.kind:
        return "Place a call: the messages this proxy parses appear here."
    return "Nothing read yet for this call."


@dataclass
class PhonePane:
    """One phone of the demo: its window, bridge and calls (the GUI's own classes)."""

    name: str
    aor: str
    bridge: EngineBridge
    window: MainWindow
    calls: CallManager
    ua: Any = None


class DemoWindow(QMainWindow):
    """The presenter bar, the two phones side by side, and the proxies' panes."""

    closed = Signal()

    def __init__(self, workdir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workdir = workdir
        self.setWindowTitle("Softphone demo — sips: (hop by hop) and sipsec: (end to end)")
        self.resize(1440, 1040)
        self.phones = {
            "alice": self._phone("alice", f"sips:alice@{ALICE_DOMAIN}"),
            "bob": self._phone("bob", f"sips:bob@{BOB_DOMAIN}"),
        }
        self.proxies = {
            ALICE_DOMAIN: ProxyPane(ALICE_DOMAIN, "alice"),
            BOB_DOMAIN: ProxyPane(BOB_DOMAIN, "bob"),
        }
        self.net: Any = None  # softphone.demo_network.DemoNetwork, once started
        self.kind = ""
        self.marks: dict[str, ProxyMark] = {}
        self._placed_windows: set[int] = set()

        central = QWidget()
        column = QVBoxLayout(central)
        column.addWidget(self._presenter_bar())
        phones = QSplitter(Qt.Orientation.Horizontal)
        for name, pane in self.phones.items():
            box = QGroupBox(f"{name}'s phone — {pane.aor}")
            box.setObjectName(f"{name}Phone")
            inner = QVBoxLayout(box)
            inner.setContentsMargins(2, 2, 2, 2)
            inner.addWidget(pane.window)
            phones.addWidget(box)
        proxies = QSplitter(Qt.Orientation.Horizontal)
        for proxy_pane in self.proxies.values():
            proxies.addWidget(proxy_pane)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(phones)
        body.addWidget(proxies)
        body.setStretchFactor(0, 1)
        body.setStretchFactor(1, 1)
        body.setSizes([600, 380])
        column.addWidget(body, 1)
        self.setCentralWidget(central)
        self.statusBar().showMessage(CAPTION_STARTING)
        self.set_ready(False)

        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        self.refresh()

    # -- building ----------------------------------------------------------------------------

    def _phone(self, name: str, aor: str) -> PhonePane:
        bridge = EngineBridge()
        window = MainWindow(bridge)
        window.setWindowFlags(Qt.WindowType.Widget)  # a pane of this window, not a window
        window.setWindowTitle(f"Softphone — {name}")
        window.menuBar().setVisible(False)
        window.accounts.setMaximumHeight(64)  # one account each: room for the rest
        history = CallHistory.load(self.workdir / name / "history.json", background=True)
        calls = CallManager(bridge, window, history=history)
        bridge.call_started.connect(lambda _aor, call, _p: _give_tone(call, 440.0))
        return PhonePane(name, aor, bridge, window, calls)

    def _presenter_bar(self) -> QWidget:
        bar = QWidget()
        bar.setObjectName("presenterBar")
        column = QVBoxLayout(bar)
        column.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.sips_button = self._big_button(
            "Call bob as &sips: (hop by hop)", "alice calls sips:bob@biloxi.test", Level.WEAK
        )
        self.sips_button.clicked.connect(lambda: self.place("sips"))
        self.sipsec_button = self._big_button(
            "Call bob as sip&sec: (end to end)", "alice calls sipsec:bob@biloxi.test", Level.BEST
        )
        self.sipsec_button.clicked.connect(lambda: self.place("sipsec"))
        self.hangup_button = QPushButton("&Hang up")
        self.hangup_button.setToolTip("End every call of the demo")
        self.hangup_button.setMinimumHeight(self.sips_button.minimumHeight())
        self.hangup_button.clicked.connect(self.hang_up)
        row.addWidget(self.sips_button, 1)
        row.addWidget(self.sipsec_button, 1)
        row.addWidget(self.hangup_button)
        column.addLayout(row)
        self.caption = QLabel(CAPTION_START)
        self.caption.setObjectName("caption")
        self.caption.setWordWrap(True)
        self.caption.setTextFormat(Qt.TextFormat.RichText)
        self.compare_label = QLabel()
        self.compare_label.setObjectName("compareLabel")
        self.compare_label.setWordWrap(True)
        column.addWidget(self.caption)
        column.addWidget(self.compare_label)
        return bar

    def _big_button(self, text: str, tip: str, level: Level) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        font = QFont(button.font())
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        button.setFont(font)
        button.setMinimumHeight(48)
        button.setStyleSheet(
            f"QPushButton {{ background: {level.colour}; color: white; padding: 6px 16px;"
            " border-radius: 4px; }"
            " QPushButton:disabled { background: #888; }"
            " QPushButton:focus { border: 3px solid black; }"
        )
        return button

    # -- the network -------------------------------------------------------------------------

    async def answer(self, phone: str, required: TrustDecisionRequired) -> TrustDecision:
        """The network's trust hook: the asking phone's own trust dialog."""
        pane = self.phones[phone]
        return await pane.bridge.answer(pane.aor, required)

    def attach(self, net: Any) -> None:
        """Connect both phones to the started network's user agents (events and trace so
        far replayed, so each window shows its registration)."""
        self.net = net
        for name, pane in self.phones.items():
            phone = getattr(net, name)
            ua = phone.ua
            pane.ua, pane.aor = ua, str(ua.account.aor)
            pane.window.add_account(pane.aor)
            pane.bridge.user_agents[pane.aor] = ua
            pane.bridge.identities[pane.aor] = phone.identity
            ua.on_event = _tee(phone.on_event, functools.partial(pane.bridge.on_event, pane.aor))
            ua.on_trace = _tee(phone.on_trace, functools.partial(pane.bridge.on_trace, pane.aor))
            for _at, event in list(phone.events):
                pane.bridge.on_event(pane.aor, event)
            for entry in list(phone.traces):
                pane.bridge.on_trace(pane.aor, entry)
        for domain, registrar in getattr(net, "registrars", {}).items():
            relay = getattr(registrar, "relay", None)
            if relay is not None and getattr(relay, "on_relayed", None) is None:
                # A live count of the tunnel's bytes, not only the total at its end.
                relay.on_relayed = net.views[domain].add_relayed
        bob = self.phones["bob"]

        def ringing(call: Any, pane: PhonePane = bob) -> None:
            _give_tone(call, 660.0)
            net.bob.calls.append(call)
            pane.bridge.incoming_call.emit(pane.aor, call)

        bob.ua.auto_answer = False  # bob's phone rings; the presenter answers
        bob.ua.on_incoming_call = ringing
        self.phones["alice"].window.set_dial_text(TARGETS["sipsec"])
        self.statusBar().showMessage(
            "Demo network up: alice@atlanta.test and bob@biloxi.test registered over TLS."
        )
        self.set_ready(True)
        self.refresh()

    def set_ready(self, ready: bool) -> None:
        for button in (self.sips_button, self.sipsec_button, self.hangup_button):
            button.setEnabled(ready)
        if not ready:
            self.caption.setText(CAPTION_STARTING)
        elif not self.kind:
            self.caption.setText(CAPTION_START)

    def failed(self, reason: str) -> None:
        self.set_ready(False)
        self.caption.setText(f"<b>The demo network could not start:</b> {_escape(reason)}")
        self.statusBar().showMessage("The demo network could not start")

    # -- presenter actions -------------------------------------------------------------------

    def place(self, kind: str) -> None:
        """alice calls bob as ``kind`` through her dialer (the real Call button)."""
        if self.net is None:
            return
        self.hang_up()
        self.kind = kind
        self.marks = {domain: mark(view) for domain, view in self.net.views.items()}
        alice = self.phones["alice"]
        alice.window.set_dial_text(TARGETS[kind])
        protection = Protection.SIPS if kind == "sips" else Protection.SIPSEC
        assert alice.window.selected_protection is protection
        alice.window.call_button.click()
        self.caption.setText(CAPTION[kind])
        self.refresh()

    def hang_up(self) -> None:
        """End every call of both phones that has not ended."""
        for pane in self.phones.values():
            for window in list(pane.calls.windows.values()):
                if window.presenter.phase != "ended" and window.hangup_button.isEnabled():
                    window.hangup_button.click()
                elif window.presenter.phase == "ended":
                    window.close()
            for dialog in list(pane.calls.incoming.values()):
                if dialog.isVisible():
                    dialog.decline_button.click()

    # -- live refresh ------------------------------------------------------------------------

    def refresh(self) -> None:
        if self.net is not None:
            for domain, pane in self.proxies.items():
                view = self.net.views[domain]
                pane.show_model(proxy_pane_model(view, self.kind, self.marks.get(domain)))
        else:
            for pane in self.proxies.values():
                pane.show_model(
                    ProxyPaneModel(pane.proxy, "", "No call yet", Level.GOOD, (), (), False,
                                   False, 0, "")
                )  # fmt: skip
        self._place_call_windows()
        self._show_comparison()

    def safety_numbers(self) -> dict[str, str]:
        """The safety number each phone's current call window shows (if any)."""
        numbers = {}
        for name, pane in self.phones.items():
            for window in pane.calls.windows.values():
                text = window.security.safety_number.text()
                if text and window.presenter.phase != "ended":
                    numbers[name] = text
        return numbers

    def _show_comparison(self) -> None:
        numbers = self.safety_numbers()
        if len(numbers) < 2:
            self.compare_label.setText("")
            return
        same = numbers["alice"] == numbers["bob"]
        words = "the same on both phones" if same else "DIFFERENT: someone is in the middle"
        level = Level.BEST if same else Level.NONE
        self.compare_label.setText(
            f"<span style='color:{level.colour}'><b>Safety numbers: {words}.</b></span> "
            "Read them aloud to each other, then press “We compared it” on each phone."
        )

    def _place_call_windows(self) -> None:
        """Open each new call window over its own phone's half of the screen."""
        for pane in self.phones.values():
            for window in [*pane.calls.windows.values(), *pane.calls.incoming.values()]:
                if id(window) in self._placed_windows or not window.isVisible():
                    continue
                self._placed_windows.add(id(window))
                corner = pane.window.mapToGlobal(pane.window.rect().topLeft())
                window.move(corner.x() + 40, corner.y() + 60)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802  # Qt's name
        self.timer.stop()
        for pane in self.phones.values():
            pane.calls.close_all()
        super().closeEvent(event)
        self.closed.emit()


def _tee(first: Callable[[Any], None] | None, second: Callable[[Any], None]) -> Any:
    def both(item: Any) -> None:
        if first is not None:
            first(item)
        second(item)

    return both


def _give_tone(call: Any, frequency: float) -> None:
    """A tone to send (the demo has no microphone to rely on), if media has not started."""
    if getattr(call, "media", None) is not None or getattr(call, "source", None) is not None:
        return
    with contextlib.suppress(Exception):
        from softphone.ua.demo import LevelMeter, ToneSource

        call.source, call.sink = ToneSource(frequency), LevelMeter()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@contextlib.asynccontextmanager
async def open_demo(workdir: Path) -> AsyncIterator[DemoWindow]:
    """The demo window, shown, with the demo network started and attached; everything closed
    on exit (the network, the user agents, the windows). Qt and a running loop must exist."""
    from softphone.ua.demo import DemoNetwork

    window = DemoWindow(workdir)
    window.show()
    try:
        async with DemoNetwork.start(workdir, answerer=window.answer) as net:
            window.attach(net)
            try:
                yield window
            finally:
                window.net = None
                for pane in window.phones.values():
                    await pane.bridge.stop()
    finally:
        window.close()


async def run(workdir: Path, *, exit_after_show: bool = False) -> int:
    """Run the demo until its window is closed."""
    closed = asyncio.Event()
    try:
        async with open_demo(workdir) as window:
            window.closed.connect(closed.set)
            if exit_after_show:
                return 0
            await closed.wait()
    except RuntimeError as exc:  # the network could not start: say so in words
        print(f"softphone demo: {exc}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="softphone demo --gui",
        description="The sipsec demo in the GUI: alice's and bob's phones side by side and "
        "what the proxies see.",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the demo's files here (default: temp)"
    )
    parser.add_argument(
        "--exit-after-show",
        action="store_true",
        help="exit 0 once the network is up and the window shown (smoke test)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the GUI demo; returns the exit status."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName("Softphone")
    app.setApplicationDisplayName("Softphone demo")
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        with tempfile.TemporaryDirectory(prefix="softphone-demo-") as tmp:
            workdir = args.workdir or Path(tmp)
            return int(loop.run_until_complete(run(workdir, exit_after_show=args.exit_after_show)))
    finally:
        loop.close()
        asyncio.set_event_loop(None)
