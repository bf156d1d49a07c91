"""Work a widget's first showing would do mid-call, done ahead while nobody sees it (issue 7:
the loop never stalls 20 ms): every child polished (style sheets, fonts), the layout run, and
one paint into a pixmap that is thrown away, so Qt's caches are warm."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

__all__ = ["polish_and_paint"]


def polish_and_paint(widget: QWidget, *, create: bool = False) -> None:
    """Polish ``widget`` and its children, lay it out, make its platform window too when
    ``create`` (a window that will be shown), and paint it once where nobody sees it."""
    widget.ensurePolished()
    for child in widget.findChildren(QWidget):
        child.ensurePolished()
    layout = widget.layout()
    if layout is not None:
        layout.activate()
    if create:
        widget.create()
    widget.grab()
