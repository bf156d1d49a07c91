"""Render the application icon's PNG sizes from its SVG (reproducible: run it again, get the
same pixels). Usage: ``QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/make_icons.py``.

The SVG (``resources/icons/hicolor/scalable/apps/org.softphone.Softphone.svg``) is drawn by
hand for this project; the PNGs go beside it in the freedesktop hicolor layout
(``hicolor/<N>x<N>/apps/``, Icon Theme Specification), ready to copy to
``~/.local/share/icons`` or ``/usr/share/icons``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_ID = "org.softphone.Softphone"
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons" / "hicolor"
SVG = ICONS / "scalable" / "apps" / f"{APP_ID}.svg"


def png_path(size: int, root: Path = ICONS) -> Path:
    return root / f"{size}x{size}" / "apps" / f"{APP_ID}.png"


def render(size: int, svg: Path = SVG) -> object:
    """The icon as a ``QImage`` of ``size`` x ``size`` (a QGuiApplication must exist)."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"{svg} is not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    return image


def main(out: Path = ICONS) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])
    for size in SIZES:
        path = png_path(size, out)
        path.parent.mkdir(parents=True, exist_ok=True)
        image = render(size)
        if not image.save(str(path), "PNG"):  # type: ignore[attr-defined]
            print(f"make_icons: could not write {path}", file=sys.stderr)
            return 1
        print(path.relative_to(out.parent.parent) if out == ICONS else path)
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
