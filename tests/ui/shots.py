"""The 200% half of the screenshot tests: run a screens module again with ``QT_SCALE_FACTOR=2``
in a process of its own (the scale is fixed when Qt starts) and check each ``@2x`` shot is
really drawn at twice the size of its 100% twin."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLabel, QWidget

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
#: How long a shown screen is left to settle before its shot: a call window paints its parts
#: over a few turns of the loop (ui/call_window.py).
SETTLE_MS = 50


#: A label may be this many pixels short of what its text needs (rounding) before it is "cut".
SLACK = 1
#: Rounds of pending layout requests :func:`cut_labels` runs (a label in a scroll area in a tab
#: in a splitter is four layouts deep).
_LAYOUT_PASSES = 4


def cut_labels(window: QWidget) -> list[str]:
    """The shown labels of ``window`` too small for what they show: a word-wrapped text
    lower than its height for its width, another text or a picture smaller than it needs.
    Such a label is drawn cut off (the last line of the call window's security panel was, at
    stop 13, when the QR code took the height it needed). Each as ``"<text>": WxH, needs
    WxH``.

    The layouts Qt was already asked to redo are run first (only those posted events, never
    the event loop): a label whose text has just grown keeps its old size until then, and is
    never drawn that way. A journey that looked right after a text arrived in the same turn
    failed on that in CI."""
    for _ in range(_LAYOUT_PASSES):  # a layout redone may ask its parent's in turn
        QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
    found = []
    for label in window.findChildren(QLabel):
        if not label.isVisibleTo(window):
            continue
        have = label.size()
        contents = label.contentsRect().size()
        frame_w = have.width() - contents.width()
        frame_h = have.height() - contents.height()
        pixmap = label.pixmap()
        if pixmap is not None and not pixmap.isNull():
            ratio = pixmap.devicePixelRatio() or 1.0
            need_w = round(pixmap.width() / ratio) + frame_w
            need_h = round(pixmap.height() / ratio) + frame_h
            what = "a picture"
        elif label.text():
            if label.wordWrap():  # any width will do: the height it needs at this one
                need_w, need_h = 0, label.heightForWidth(have.width())
            else:
                need_w, need_h = label.sizeHint().width(), label.sizeHint().height()
            what = repr(" ".join(label.text().split())[:60])
        else:
            continue
        if have.width() + SLACK < need_w or have.height() + SLACK < need_h:
            found.append(f"{what}: {have.width()}x{have.height()}, needs {need_w}x{need_h}")
    return found


def save_screens(
    widgets: Mapping[str, QWidget],
    out: Path,
    suffix: str,
    *,
    done: Callable[[QWidget], object] = QWidget.close,
) -> list[Path]:
    """Show each widget, let it settle (``SETTLE_MS``), save it as ``out/<name><suffix>.png``,
    then ``done(widget)``; the files saved."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    saved = []
    for name, widget in widgets.items():
        widget.show()
        QTest.qWait(SETTLE_MS)
        cut = cut_labels(widget)
        assert not cut, f"{name}: labels drawn cut off: {cut}"
        path = out / f"{name}{suffix}.png"
        if not widget.grab().save(str(path)):
            raise OSError(f"could not save {path}")
        saved.append(path)
        done(widget)
    app.processEvents()
    return saved


def check_at_200_percent(module: str, shots_at_100: Iterable[Path], timeout: float = 120) -> None:
    """``python -m module SHOTS @2x`` at twice the scale; every shot of ``shots_at_100`` must
    have an ``@2x`` twin at least 2.5 times as large (4 times, less what re-wrapping saves)."""
    env = {**os.environ, "QT_SCALE_FACTOR": "2", "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-m", module, str(SHOTS), "@2x"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    for path in shots_at_100:
        double = path.with_name(path.stem + "@2x.png")
        small, big = QImage(str(path)), QImage(str(double))
        assert not small.isNull() and not big.isNull(), double
        # The area, not the width: a message box at 200 % is bounded by the (small) offscreen
        # screen and re-wraps its text, narrower and much taller (388x98 -> 420x280, 3.1
        # times the area). A shot drawn at 100 % again would be about 1 time.
        area = big.width() * big.height()
        assert area >= 2.5 * small.width() * small.height(), double
