"""The system tray icon: the phone in the tray, and a notification for an incoming call.

Only when the desktop has a tray (:meth:`QSystemTrayIcon.isSystemTrayAvailable`); otherwise
:meth:`Tray.create` returns None and nothing else changes (the incoming-call window still
opens). The icon is drawn here (a green disc with a handset-like bar), so no file is needed.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

__all__ = ["Tray", "phone_icon"]


def phone_icon() -> QIcon:
    pixmap = QPixmap(64, 64)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor("#17651a"))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawEllipse(2, 2, 60, 60)
    painter.setBrush(QColor("white"))
    painter.drawRoundedRect(16, 26, 32, 12, 6, 6)
    painter.end()
    return QIcon(pixmap)


class Tray(QSystemTrayIcon):
    def __init__(self, window: QWidget) -> None:
        super().__init__(phone_icon(), window)
        self.window = window
        self.setToolTip("Softphone")
        menu = QMenu(window)
        show = QAction("&Show the phone", menu)
        show.triggered.connect(self._show_window)
        quit_action = QAction("&Quit", menu)
        quit_action.triggered.connect(window.close)
        menu.addAction(show)
        menu.addAction(quit_action)
        self.setContextMenu(menu)
        self.activated.connect(lambda _reason: self._show_window())
        self.notifications: list[tuple[str, str]] = []

    @classmethod
    def create(cls, window: QWidget) -> Tray | None:
        """A shown tray icon, or None when the desktop has no tray."""
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return None
        tray = cls(window)
        tray.show()
        return tray

    def notify(self, title: str, text: str) -> None:
        self.notifications.append((title, text))
        self.showMessage(title, text, QSystemTrayIcon.MessageIcon.Information, 10_000)

    def _show_window(self) -> None:
        self.window.show()
        self.window.raise_()
        self.window.activateWindow()
