"""The incoming-call window: who is calling, how that identity was established (UX.md: only
claimed, perhaps Digest-checked by our proxy / CA-signed / pinned / verified by safety number /
changed / unknown), who can read the call setup, and Accept / Decline.

Accept is focused (Enter, Alt+A); Decline is Escape or Alt+D. The window is not modal (a call
must not freeze the main window) and never uses ``exec()`` (a nested loop would stall asyncio).
A :class:`Ringtone` plays while it is open; the default is silent (no audio device needed).
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QFont
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ui.call_presenters import CallPresenter, incoming_identity
from ui.security_panel import badge_style, set_style

__all__ = ["IncomingCallWindow", "Ringtone", "SilentRingtone"]


class Ringtone(Protocol):
    """Something that rings while a call waits for an answer."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class SilentRingtone:
    """The ringtone when there is no audio: counts, so tests can see it was asked to ring."""

    def __init__(self) -> None:
        self.ringing = False
        self.starts = 0

    def start(self) -> None:
        self.ringing = True
        self.starts += 1

    def stop(self) -> None:
        self.ringing = False


class IncomingCallWindow(QDialog):
    """:attr:`accept_call` / :attr:`decline_call` carry the person's answer (the call id)."""

    accept_call = Signal(str)
    decline_call = Signal(str)

    def __init__(
        self,
        presenter: CallPresenter,
        *,
        ringtone: Ringtone | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.presenter = presenter
        self.ringtone = ringtone or SilentRingtone()
        self.answered = False
        self.setWindowTitle("Incoming call")
        self.setModal(False)
        self.resize(520, 300)

        column = QVBoxLayout(self)
        heading = QLabel("Incoming call from")
        column.addWidget(heading)
        self.caller = QLabel()
        font = QFont(self.caller.font())
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        self.caller.setFont(font)
        self.caller.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        column.addWidget(self.caller)

        column.addWidget(QLabel("<b>How we know who this is</b>"))
        identity_row = QHBoxLayout()
        self.identity_badge = QLabel()
        self.identity_words = QLabel()
        self.identity_words.setWordWrap(True)
        identity_row.addWidget(self.identity_badge, 0, Qt.AlignmentFlag.AlignTop)
        identity_row.addWidget(self.identity_words, 1)
        column.addLayout(identity_row)

        column.addWidget(QLabel("<b>Who can read the call setup</b>"))
        setup_row = QHBoxLayout()
        self.setup_badge = QLabel()
        self.setup_words = QLabel()
        self.setup_words.setWordWrap(True)
        setup_row.addWidget(self.setup_badge, 0, Qt.AlignmentFlag.AlignTop)
        setup_row.addWidget(self.setup_words, 1)
        column.addLayout(setup_row)
        column.addStretch(1)

        buttons = QHBoxLayout()
        self.decline_button = QPushButton("&Decline")
        self.accept_button = QPushButton("&Accept")
        self.accept_button.setDefault(True)
        buttons.addStretch(1)
        buttons.addWidget(self.decline_button)
        buttons.addWidget(self.accept_button)
        column.addLayout(buttons)
        self.decline_button.clicked.connect(self._decline)
        self.accept_button.clicked.connect(self._accept)
        self.refresh()

    def showEvent(self, event: object) -> None:  # noqa: N802  # Qt's name
        super().showEvent(event)  # type: ignore[arg-type]
        self.accept_button.setFocus()
        if not self.answered:
            self.ringtone.start()

    def refresh(self) -> None:
        """Show the presenter's current knowledge (a PeerIdentity may arrive while ringing)."""
        p = self.presenter
        self.caller.setText(p.peer if p.peer not in ("", "unknown") else "Unknown caller")
        label, words, level = incoming_identity(p)
        self.identity_badge.setText(label)
        set_style(self.identity_badge, badge_style(level))
        self.identity_words.setText(words)
        setup = p.panel().signalling
        self.setup_badge.setText(setup.label)
        set_style(self.setup_badge, badge_style(setup.level))
        self.setup_words.setText(setup.words)
        if p.phase == "ended" and not self.answered:
            self.answered = True
            self.ringtone.stop()
            self.caller.setText(f"{self.caller.text()} — {p.phase_words.lower()}")
            self.accept_button.setEnabled(False)
            self.decline_button.setText("&Close")

    def _accept(self) -> None:
        if self.answered:
            return
        self.answered = True
        self.accept_call.emit(self.presenter.call_id)
        self._finish()

    def _decline(self) -> None:
        if not self.answered:
            self.answered = True
            self.decline_call.emit(self.presenter.call_id)
        self._finish()

    def _finish(self) -> None:
        self.ringtone.stop()
        super().reject()  # hides the dialog (QDialog's own reject: no recursion)

    def reject(self) -> None:
        """Escape and the window's close button: an unanswered call is declined, never left
        ringing (QDialog routes both through reject)."""
        self._decline()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802  # Qt's name
        self.ringtone.stop()
        super().closeEvent(event)
