"""The certificate trust dialog (UX.md "Trust dialog wording").

The consequence first, then the reason (the headline), then every other problem, then what is
waiting and the certificate's SHA-256 fingerprint; the chain with each certificate's
fingerprint behind "Show certificate details" (Alt+D), made when first opened. "Don't
connect" is the default and focused button, so Enter and Escape never connect. A certificate
that *changed* since it was pinned is the loud variant: a red banner and a critical icon, and
no "Always trust" button until the details have been opened. All wording and the button rules
come from :class:`~ui.presenters.TrustDialogModel`; this module only lays them out.
"""

from __future__ import annotations

from typing import ClassVar

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase, QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLayout,
    QPushButton,
    QSizePolicy,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from softphone.ua import TrustDecision
from ui.presenters import ChainEntry, TrustButton, TrustDialogModel, wrap_groups
from ui.warming import polish_and_paint

__all__ = ["TrustDialog", "warm_up"]

_WIDTH = 620
_SHOW = "Show certificate &details"
_HIDE = "Hide certificate &details"
_LOUD_BANNER = (
    "QFrame#banner { background: #b3261e; border-radius: 4px; }"
    " QFrame#banner QLabel { color: white; }"
)
_QUIET_BANNER = (
    "QFrame#banner { background: #fff4e0; border: 1px solid #e0a030; border-radius: 4px; }"
)


def _label(text: str, *, bold: bool = False, selectable: bool = False) -> QLabel:
    label = QLabel(text)
    # Never squeezed below its height, and that height is the one for its width: a new
    # policy drops the height-for-width flag setWordWrap sets, and the layout then gave
    # each paragraph the height of its size hint, worked out at a narrower width (a blank
    # line under "… is paused until you decide.", two under the note).
    policy = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
    policy.setHeightForWidth(True)
    label.setSizePolicy(policy)
    label.setWordWrap(True)
    if bold:
        font = label.font()
        font.setBold(True)
        label.setFont(font)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def _monospace(text: str) -> QLabel:
    label = QLabel(text)
    label.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class TrustDialog(QDialog):
    """Asks whether to connect despite a certificate's problems; emits :attr:`decided` once."""

    decided = Signal(object)  # TrustDecision
    #: Whether :func:`warm_up` has run in this process.
    warmed: ClassVar[bool] = False

    def __init__(self, model: TrustDialogModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._answered = False
        self.setWindowTitle(model.title)
        self.setObjectName("trustDialog")
        # A fixed width makes every wrapped label's height exact (heightForWidth).
        self.setFixedWidth(_WIDTH)

        layout = QVBoxLayout(self)
        layout.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)  # see _fit
        layout.addWidget(self._banner())
        if model.comparison:
            layout.addLayout(self._comparison())
        if model.other_problems:
            # The headline is the first problem; the others follow it, none left out.
            layout.addWidget(_label("Also found:", bold=True))
            problems = QLabel(
                "<ul style='margin:0px; -qt-list-indent:1'>"
                + "".join(f"<li>{_escape(p)}</li>" for p in model.other_problems)
                + "</ul>"
            )
            problems.setObjectName("problems")
            problems.setWordWrap(True)
            problems.setTextFormat(Qt.TextFormat.RichText)
            layout.addWidget(problems)
        self.waiting_label = _label(model.waiting)
        layout.addWidget(self.waiting_label)
        if model.note:
            note = _label(model.note)
            note.setObjectName("note")
            layout.addWidget(note)
        if model.fingerprint and not model.comparison:  # the loud variant shows it compared
            form = QFormLayout()
            value = _monospace(wrap_groups(model.fingerprint))
            value.setObjectName("leafFingerprint")
            caption = QLabel("<b>Fingerprint (SHA-256):</b>")  # one line: no word wrap
            form.addRow(caption, value)
            layout.addLayout(form)

        self.details_button = QToolButton()
        self.details_button.setText(_SHOW)
        self.details_button.setCheckable(True)
        self.details_button.setArrowType(Qt.ArrowType.RightArrow)
        self.details_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.details_button.setAutoRaise(True)
        self.details_button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.details_button.toggled.connect(self._show_details)
        layout.addWidget(self.details_button)
        #: The chain, made the first time it is asked for (:meth:`_show_details`).
        self.details: QWidget | None = None
        self._column = layout

        layout.addStretch(1)  # spare height goes here, not between the paragraphs
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        layout.addWidget(line)
        layout.addLayout(self._buttons())
        self._update_buttons()

    def _fit(self) -> None:
        """Exactly as high as the words need at the fixed width. Qt's own minimum works the
        height out at a narrower width, where every paragraph wraps into more lines: the
        dialog opened with 45-60 px of blank under the details button."""
        height = self.heightForWidth(_WIDTH)
        self.setMinimumHeight(height)
        self.resize(_WIDTH, height)

    # -- building ----------------------------------------------------------------------------

    def _banner(self) -> QFrame:
        model = self.model
        banner = QFrame()
        banner.setObjectName("banner")
        banner.setStyleSheet(_LOUD_BANNER if model.loud else _QUIET_BANNER)
        row = QHBoxLayout(banner)
        row.setContentsMargins(12, 12, 12, 12)
        icon = QLabel()
        which = (
            QStyle.StandardPixmap.SP_MessageBoxCritical
            if model.loud
            else QStyle.StandardPixmap.SP_MessageBoxWarning
        )
        icon.setPixmap(self.style().standardIcon(which).pixmap(40, 40))
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        row.addWidget(icon)
        column = QVBoxLayout()
        self.title_label = _label(model.title, bold=True)
        self.title_label.setObjectName("title")
        font = self.title_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        self.title_label.setFont(font)
        column.addWidget(self.title_label)
        self.headline_label = _label(model.headline, selectable=True)
        self.headline_label.setObjectName("headline")
        column.addWidget(self.headline_label)
        row.addLayout(column, 1)
        return banner

    def _comparison(self) -> QFormLayout:
        form = QFormLayout()
        for caption, groups in self.model.comparison:
            value = _monospace(wrap_groups(groups))
            value.setObjectName("comparedFingerprint")
            form.addRow(_label(caption + ":", bold=True), value)
        return form

    def _details(self) -> QWidget:
        details = QWidget()
        details.setObjectName("details")
        column = QVBoxLayout(details)
        column.setContentsMargins(0, 0, 0, 0)
        for entry in self.model.chain:
            column.addWidget(self._certificate_box(entry))
        return details

    def _certificate_box(self, entry: ChainEntry) -> QGroupBox:
        box = QGroupBox(entry.title)
        form = QFormLayout(box)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Issued to:", _label(entry.subject, selectable=True))
        form.addRow("Issued by:", _label(entry.issuer, selectable=True))
        form.addRow("Valid:", _label(entry.valid))
        form.addRow("Key:", _label(entry.key))
        fingerprint = _monospace(entry.fingerprint_lines)
        fingerprint.setObjectName("fingerprint")
        form.addRow("SHA-256:", fingerprint)
        return box

    def _buttons(self) -> QHBoxLayout:
        model = self.model
        self.buttons: dict[TrustButton, QPushButton] = {}
        for which in TrustButton:
            button = QPushButton(model.label(which))
            button.setAutoDefault(False)
            button.clicked.connect(lambda _=False, w=which: self._choose(w.decision))
            self.buttons[which] = button
        self.reject_button = self.buttons[TrustButton.DONT_CONNECT]
        self.once_button = self.buttons[TrustButton.CONNECT_ONCE]
        self.always_button = self.buttons[TrustButton.ALWAYS_TRUST]
        default = self.buttons[model.default]
        default.setDefault(True)
        default.setAutoDefault(True)
        row = QHBoxLayout()
        # "Always" apart on the left, the default on the right where a hurried click lands.
        row.addWidget(self.always_button)
        row.addStretch(1)
        row.addWidget(self.once_button)
        row.addWidget(self.reject_button)
        return row

    # -- behaviour ---------------------------------------------------------------------------

    @property
    def details_open(self) -> bool:
        return self.details_button.isChecked()

    def _show_details(self, shown: bool) -> None:
        if shown and self.details is None:
            # Built on demand: a dozen widgets fewer to build, polish and lay out while the
            # engine waits for the answer (issue 7: the loop never stalls 20 ms).
            self.details = self._details()
            self._column.insertWidget(self._column.indexOf(self.details_button) + 1, self.details)
        if self.details is not None:
            self.details.setVisible(shown)
        self.details_button.setArrowType(
            Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow
        )
        self.details_button.setText(_HIDE if shown else _SHOW)
        self._update_buttons()
        self._fit()

    def _update_buttons(self) -> None:
        offered = self.model.buttons(details_open=self.details_open)
        for which, button in self.buttons.items():
            button.setVisible(which in offered)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802  # Qt's name
        super().showEvent(event)
        self._fit()  # polished by now: the fonts the words are measured in are final
        self.reject_button.setFocus(Qt.FocusReason.ActiveWindowFocusReason)

    def _choose(self, decision: TrustDecision) -> None:
        if decision not in {b.decision for b in self.model.buttons(details_open=self.details_open)}:
            return  # a hidden button cannot answer (belt and braces for the loud variant)
        self._answer(decision)
        accepted = decision is not TrustDecision.REJECT
        self.done((QDialog.DialogCode.Accepted if accepted else QDialog.DialogCode.Rejected).value)

    def _answer(self, decision: TrustDecision) -> None:
        if not self._answered:
            self._answered = True
            self.decided.emit(decision)

    def done(self, result: int) -> None:
        # Escape, the window's close button, anything but a choice: "Don't connect".
        self._answer(TrustDecision.REJECT)
        super().done(result)

    def dismiss(self) -> None:
        """Close without answering (the engine stopped waiting); no-op once answered."""
        if not self._answered:
            self._answered = True
            super().done(QDialog.DialogCode.Rejected.value)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def warm_up() -> bool:
    """Build, lay out and paint a trust dialog nobody sees, once per process; whether it did.

    What only the first dialog of a process pays: Qt loads its icon engine and image format
    plugins for the warning icon, the fixed-pitch font for the fingerprint, and parses the
    banner's style sheet. In a fresh process the first dialog took 12-24 ms to build and the
    next ones 1.7 ms. The call manager calls this while the phone is idle, so that a trust
    question at a call's set-up (a ``sipsec:`` call to a new contact) finds Qt's caches warm
    (issue 7: the loop never stalls 20 ms)."""
    if TrustDialog.warmed:
        return False
    TrustDialog.warmed = True
    model = TrustDialogModel(
        title="Is this really example.test?",
        headline="The certificate was issued by an authority this phone does not know.",
        problems=("The first problem.", "Another problem."),
        waiting="The call is paused until you decide.",
        note="A note.",
        chain=(),
        fingerprint="AB:CD:EF:01",
        identity="example.test",
        loud=False,
        overridable=True,
    )
    dialog = TrustDialog(model)
    polish_and_paint(dialog)
    dialog.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxCritical).pixmap(40, 40)
    dialog.deleteLater()
    return True
