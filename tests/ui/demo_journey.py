"""The presenter's journey through the GUI demo (``softphone demo --gui``), clicked for real.

:func:`journey` opens :class:`ui.demo.DemoWindow` on the real embedded demo network (two TLS
proxies, alice's and bob's user agents on loopback), then, only by clicking: the ``sips:`` call
(bob accepts; both proxy panes say "can read the keys" over an INVITE with its masked
``a=crypto``), hang up; the ``sipsec:`` call (each phone's trust dialog answered "Connect this
time", bob accepts; the panes show only CONNECT / 200 and a growing byte counter; both call
windows show the same safety number and its QR code; "We compared it" on both), hang up.
It saves a screenshot of each stage as ``<shots>/demo-<stage><suffix>.png`` and returns what it
saw, for the test to judge.

``python -m tests.ui.demo_journey OUTDIR SUFFIX`` runs it in a process of its own (the tests
run it with ``QT_SCALE_FACTOR=2`` for the 200% screenshots).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QWidget

from tests.ui.shots import cut_labels

WAIT = 45.0


async def until(
    condition: Callable[[], Any], what: str, wait: float = WAIT, every: float = 0.03
) -> Any:
    """Poll ``condition`` every ``every`` seconds until it is truthy; fail saying ``what``
    after ``wait`` seconds."""
    try:
        async with asyncio.timeout(wait):
            while True:
                value = condition()
                if value:
                    return value
                await asyncio.sleep(every)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for: {what}") from None


def click(widget: QWidget) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


@dataclass
class Seen:
    """What the journey saw at each stage."""

    shots: list[Path] = field(default_factory=list)
    panes: dict[str, dict[str, Any]] = field(default_factory=dict)  # "sips:atlanta.test" -> model
    pane_texts: dict[str, str] = field(default_factory=dict)
    badges: dict[str, str] = field(default_factory=dict)  # "sips:alice" -> signalling badge
    trust_dialogs: list[str] = field(default_factory=list)  # phone names that asked
    safety_numbers: dict[str, str] = field(default_factory=dict)
    qr_shown: dict[str, bool] = field(default_factory=dict)
    counters: list[int] = field(default_factory=list)
    compared: dict[str, str] = field(default_factory=dict)  # phone -> status or why disabled
    compare_label: str = ""
    contacts: dict[str, dict[str, str]] = field(default_factory=dict)  # phone -> aor -> state
    #: "sips:alice" -> the thread the call's media ran on (softphone.media.thread), or "".
    media_threads: dict[str, str] = field(default_factory=dict)


def _media_thread(window: Any) -> str:
    thread = getattr(getattr(window.call, "media", None), "thread", None)
    return "" if thread is None else str(thread.name)


async def journey(workdir: Path, shots: Path, suffix: str = "") -> Seen:
    from ui.demo import open_demo

    seen = Seen()
    shots.mkdir(parents=True, exist_ok=True)

    def grab(widget: QWidget, name: str) -> None:
        path = shots / f"demo-{name}{suffix}.png"
        cut = cut_labels(widget)
        assert cut == [], f"{name}: labels drawn cut off: {cut}"
        assert widget.grab().save(str(path)), path
        seen.shots.append(path)

    async def shoot(widget: QWidget, name: str) -> None:
        await asyncio.sleep(0.15)  # let Qt run pending layouts (never processEvents in a task)
        grab(widget, name)

    async with open_demo(workdir) as demo:
        alice, bob = demo.phones["alice"], demo.phones["bob"]
        for pane in (alice, bob):
            await until(
                lambda p=pane: p.window.view(p.aor).state == "Registered", f"{pane.name} shown"
            )
        assert demo.sips_button.isEnabled() and demo.sipsec_button.isEnabled()
        await asyncio.sleep(0.3)
        await shoot(demo, "1-ready")

        def answer_incoming() -> bool:
            for dialog in list(bob.calls.incoming.values()):
                if dialog.isVisible() and dialog.accept_button.isEnabled():
                    click(dialog.accept_button)
                    return True
            return False

        def in_call(pane: Any) -> Any:
            for window in pane.calls.windows.values():
                if window.presenter.phase == "established" and window.presenter.audio_words:
                    return window
            return None

        # -- 1. sips: hop by hop ------------------------------------------------------------
        click(demo.sips_button)
        await until(lambda: bob.calls.incoming, "bob's phone rings (sips)")
        await until(lambda: any(d.isVisible() for d in bob.calls.incoming.values()), "ringing")
        await shoot(next(iter(bob.calls.incoming.values())), "2-sips-bob-rings")
        await until(answer_incoming, "bob accepts (sips)")
        windows = {}
        for pane in (alice, bob):
            windows[pane.name] = await until(lambda p=pane: in_call(p), f"{pane.name} in sips")

        def panes_read_keys() -> bool:
            demo.refresh()
            return all(p.model is not None and p.model.read_keys for p in demo.proxies.values())

        await until(panes_read_keys, "both proxy panes show the keys (sips)")
        for domain, pane in demo.proxies.items():
            assert pane.model is not None
            seen.panes[f"sips:{domain}"] = {
                "headline": pane.headline.text(),
                "methods": pane.model.methods,
                "counter": pane.counter.text(),
            }
            seen.pane_texts[f"sips:{domain}"] = pane.text.toPlainText()
        for name, window in windows.items():
            seen.badges[f"sips:{name}"] = window.security.signalling.badge.text()
            seen.media_threads[f"sips:{name}"] = _media_thread(window)
        await shoot(demo, "3-sips-proxies-read-keys")
        await shoot(windows["alice"], "4-sips-alice-call")
        click(demo.hangup_button)
        for name, window in windows.items():
            await until(lambda w=window: w.presenter.phase == "ended", f"{name} ended (sips)")

        # -- 2. sipsec: end to end ----------------------------------------------------------
        click(demo.sipsec_button)
        dialogs_seen: dict[int, int] = {}

        def answer_trust() -> None:
            for pane in (alice, bob):
                for dialog in list(pane.bridge.open_dialogs.values()):
                    if not dialog.isVisible():
                        continue
                    polls = dialogs_seen[id(dialog)] = dialogs_seen.get(id(dialog), 0) + 1
                    if polls < 5:
                        continue  # shown a few polls ago: laid out, as a person would see it
                    if pane.name not in seen.trust_dialogs:
                        grab(dialog, f"5-sipsec-trust-{pane.name}")
                    seen.trust_dialogs.append(pane.name)
                    click(dialog.once_button)

        def progress() -> Any:
            answer_trust()
            answer_incoming()
            error = alice.window.dial_error.text()
            if error:
                raise AssertionError(error)
            return in_call(alice) and in_call(bob)

        await until(progress, "the sipsec call is established on both phones")
        windows = {pane.name: in_call(pane) for pane in (alice, bob)}
        for name, window in windows.items():
            seen.media_threads[f"sipsec:{name}"] = _media_thread(window)

        def numbers() -> bool:
            demo.refresh()
            return all(w.security.safety_number.text() for w in windows.values())

        await until(numbers, "both phones show the safety number")

        def panes_opaque() -> bool:
            demo.refresh()
            return all(p.model is not None and p.model.opaque_bytes for p in demo.proxies.values())

        await until(panes_opaque, "both proxy panes count tunnel bytes")
        for domain, pane in demo.proxies.items():
            assert pane.model is not None
            seen.panes[f"sipsec:{domain}"] = {
                "headline": pane.headline.text(),
                "methods": pane.model.methods,
                "counter": pane.counter.text(),
                "read_invite": pane.model.read_invite,
                "read_keys": pane.model.read_keys,
            }
            seen.pane_texts[f"sipsec:{domain}"] = pane.text.toPlainText()
            seen.counters.append(pane.model.opaque_bytes)

        def qr_drawn() -> bool:  # drawn in a worker thread (ui.qr.qr_pixmap_async)
            return all(not w.security.qr.pixmap().isNull() for w in windows.values())

        await until(qr_drawn, "both phones draw the safety number's QR code")
        for name, window in windows.items():
            seen.badges[f"sipsec:{name}"] = window.security.signalling.badge.text()
            seen.safety_numbers[name] = window.security.safety_number.text()
            qr = getattr(window.security, "qr", None)
            seen.qr_shown[name] = bool(qr is not None and qr.isVisible() and qr.pixmap())
        seen.compare_label = demo.compare_label.text()
        await shoot(demo, "6-sipsec-proxies-see-bytes")
        for name, window in windows.items():
            await shoot(window, f"7-sipsec-{name}-call")

        for name, window in windows.items():
            button = window.security.compare_button
            if button.isEnabled():
                click(button)
                await until(lambda w=window: w.security.compare_status.text(), f"{name} recorded")
                seen.compared[name] = window.security.compare_status.text()
            else:
                seen.compared[name] = "disabled: " + button.toolTip()
        await shoot(windows["alice"], "8-sipsec-alice-compared")
        for pane in (alice, bob):
            pane.window.tabs.setCurrentWidget(pane.window.contacts_view)

        def contacts(pane: Any) -> dict[str, str]:
            rows = pane.window.contacts_view.rows
            return {row.aor: row.label for row in rows}

        await until(lambda: all(contacts(p) for p in (alice, bob)), "contacts on both phones")
        seen.contacts = {pane.name: contacts(pane) for pane in (alice, bob)}
        await shoot(demo, "8b-sipsec-contacts")
        click(demo.hangup_button)
        for name, window in windows.items():
            await until(lambda w=window: w.presenter.phase == "ended", f"{name} ended (sipsec)")
        await asyncio.sleep(0.3)
        demo.refresh()
        await shoot(demo, "9-after")
    return seen


def run_standalone(out: Path, suffix: str) -> Seen:
    """Run :func:`journey` in this process's own QApplication and qasync loop."""
    import tempfile

    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        with tempfile.TemporaryDirectory(prefix="demo-journey-") as tmp:
            return loop.run_until_complete(
                asyncio.wait_for(journey(Path(tmp), out, suffix), 4 * WAIT)
            )
    finally:
        loop.close()
        asyncio.set_event_loop(None)


if __name__ == "__main__":
    for path in run_standalone(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "").shots:
        print(path)
