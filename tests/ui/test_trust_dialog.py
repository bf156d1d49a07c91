"""The trust dialog as widgets (pytest-qt, offscreen): defaults, the loud variant, answers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase, QPalette
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFrame, QLabel
from pytestqt.qtbot import QtBot

from softphone.ua import TrustDecision, fingerprint_groups
from tests.ui.conftest import Questions
from ui.presenters import TrustDialogModel
from ui.trust_dialog import TrustDialog

#: Where screenshots go (look at them: a PNG of boxes is non-empty too).
SHOTS = Path(os.environ.get("SOFTPHONE_UI_SHOTS", "/tmp"))


def make(qtbot: QtBot, required: object) -> TrustDialog:
    dialog = TrustDialog(TrustDialogModel.from_required(required))  # type: ignore[arg-type]
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


def label_texts(dialog: TrustDialog) -> str:
    return "\n".join(label.text() for label in dialog.findChildren(QLabel))


def test_fonts_are_installed(qapp: QApplication) -> None:
    # Without a font a screenshot is non-empty but shows boxes (ARCHITECTURE.md).
    assert QFontDatabase.families()


def test_dont_connect_is_default_and_focused(qtbot: QtBot, questions: Questions) -> None:
    dialog = make(qtbot, questions.wrong_name)
    assert dialog.reject_button.text() == "Don't connect"
    assert dialog.reject_button.isDefault()
    assert not dialog.once_button.isDefault() and not dialog.always_button.isDefault()
    assert dialog.focusWidget() is dialog.reject_button
    assert dialog.once_button.text() == "Connect this time"
    assert dialog.always_button.text() == "Always trust this certificate for example.test"
    assert dialog.always_button.isVisible()
    texts = label_texts(dialog)
    assert (
        "This may not be example.test's server. Its certificate was issued for wrong.test." in texts
    )
    assert "The registration to example.test is paused until you decide." in texts


def test_enter_does_not_connect(qtbot: QtBot, questions: Questions) -> None:
    dialog = make(qtbot, questions.self_signed)
    with qtbot.waitSignal(dialog.decided) as answer:
        QTest.keyClick(dialog, Qt.Key.Key_Return)
    assert answer.args == [TrustDecision.REJECT]
    assert not dialog.isVisible()


def test_escape_does_not_connect(qtbot: QtBot, questions: Questions) -> None:
    dialog = make(qtbot, questions.self_signed)
    with qtbot.waitSignal(dialog.decided) as answer:
        QTest.keyClick(dialog, Qt.Key.Key_Escape)
    assert answer.args == [TrustDecision.REJECT]


@pytest.mark.parametrize(
    ("button", "decision"),
    [
        ("once_button", TrustDecision.ACCEPT_ONCE),
        ("always_button", TrustDecision.ALWAYS_TRUST),
        ("reject_button", TrustDecision.REJECT),
    ],
)
def test_each_button_answers_once(
    qtbot: QtBot, questions: Questions, button: str, decision: TrustDecision
) -> None:
    dialog = make(qtbot, questions.self_signed)
    answers: list[object] = []
    dialog.decided.connect(answers.append)
    QTest.mouseClick(getattr(dialog, button), Qt.MouseButton.LeftButton)
    dialog.close()  # closing afterwards must not answer again
    assert answers == [decision]


def test_every_problem_is_shown(qtbot: QtBot, questions: Questions) -> None:
    dialog = make(qtbot, questions.self_signed_wrong_name)
    first, second = questions.self_signed_wrong_name.report.messages
    assert dialog.headline_label.text() == first  # the headline is the first problem...
    problems = dialog.findChild(QLabel, "problems")
    assert problems is not None
    assert "Also found:" in label_texts(dialog)
    assert second in problems.text()  # ...and every other one is listed under it
    assert first not in problems.text()


def test_changed_fingerprints_are_compared_side_by_side(qtbot: QtBot, questions: Questions) -> None:
    dialog = make(qtbot, questions.changed)
    report = questions.changed.report
    shown = [label.text().split() for label in dialog.findChildren(QLabel, "comparedFingerprint")]
    assert shown == [
        fingerprint_groups(report.pinned[0].sha256).split(),
        fingerprint_groups(report.fingerprint or b"").split(),
    ]
    assert "Trusted:" not in dialog.headline_label.text()
    # "Warning" once, in the red title; the engine's message below it does not repeat it.
    assert dialog.headline_label.text().startswith(f"{report.identity.value}'s server is")
    assert label_texts(dialog).count("Warning") == 1


def test_details_show_chain_and_fingerprints(qtbot: QtBot, questions: Questions) -> None:
    dialog = make(qtbot, questions.wrong_name)
    # Made on demand: nothing of the chain exists before the toggle (issue 7).
    assert dialog.details is None
    assert dialog.findChildren(QLabel, "fingerprint") == []
    assert "Softphone Test CA" not in label_texts(dialog)
    QTest.mouseClick(dialog.details_button, Qt.MouseButton.LeftButton)
    assert dialog.details is not None and dialog.details.isVisible()
    assert dialog.details_button.text() == "Hide certificate &details"
    fingerprints = [label.text() for label in dialog.details.findChildren(QLabel, "fingerprint")]
    summaries = questions.wrong_name.report.certificates
    assert len(fingerprints) == len(summaries) == 2
    for shown, cert in zip(fingerprints, summaries, strict=True):
        assert shown.split() == cert.fingerprint.split()  # groups of four, on two lines
    texts = label_texts(dialog)
    assert "wrong.test" in texts and "Softphone Test CA" in texts
    # Right under the toggle, not after the buttons.
    column = dialog.layout()
    assert column.indexOf(dialog.details) == column.indexOf(dialog.details_button) + 1
    dialog.grab().save(str(SHOTS / "ui-trust-dialog-details.png"))
    # Closed and opened again: the same widgets, hidden and shown (built once).
    details = dialog.details
    QTest.mouseClick(dialog.details_button, Qt.MouseButton.LeftButton)
    assert not details.isVisible()
    assert dialog.details_button.text() == "Show certificate &details"
    QTest.mouseClick(dialog.details_button, Qt.MouseButton.LeftButton)
    assert dialog.details is details and details.isVisible()
    assert len(dialog.findChildren(QLabel, "fingerprint")) == 2


def test_fingerprint_problems_and_buttons_are_there_at_once(
    qtbot: QtBot, questions: Questions
) -> None:
    dialog = make(qtbot, questions.self_signed_wrong_name)
    report = questions.self_signed_wrong_name.report
    leaf = dialog.findChild(QLabel, "leafFingerprint")
    assert leaf is not None and leaf.isVisible()
    assert leaf.text().split() == fingerprint_groups(report.fingerprint or b"").split()
    assert "<b>Fingerprint (SHA-256):</b>" in label_texts(dialog)
    problems = dialog.findChild(QLabel, "problems")
    assert problems is not None and problems.isVisible()
    for button in (dialog.reject_button, dialog.once_button, dialog.always_button):
        assert button.isVisible()
    assert dialog.details is None


def test_keyboard_reaches_the_details(qtbot: QtBot, questions: Questions) -> None:
    dialog = make(qtbot, questions.changed)
    assert dialog.focusWidget() is dialog.reject_button
    seen = []
    for _ in range(10):  # Tab from "Don't connect" comes round to the toggle
        QTest.keyClick(dialog.focusWidget(), Qt.Key.Key_Tab)
        seen.append(dialog.focusWidget())
        if dialog.focusWidget() is dialog.details_button:
            break
    assert dialog.focusWidget() is dialog.details_button, seen
    QTest.keyClick(dialog.details_button, Qt.Key.Key_Space)
    assert dialog.details is not None and dialog.details.isVisible()
    assert dialog.always_button.isVisible()  # the loud variant: only after the details
    QTest.keyClick(dialog.details_button, Qt.Key.Key_Space)
    assert not dialog.details.isVisible()


def test_alt_d_is_the_details_mnemonic_and_no_other(qtbot: QtBot, questions: Questions) -> None:
    # (QTest's key clicks do not reach Qt's shortcut map offscreen: the key is checked.)
    dialog = make(qtbot, questions.changed)
    assert dialog.details_button.shortcut().toString() == "Alt+D"
    for button in dialog.buttons.values():
        assert button.shortcut().toString() != "Alt+D", button.text()


def test_changed_variant_is_loud_and_hides_always_until_details(
    qtbot: QtBot, questions: Questions
) -> None:
    dialog = make(qtbot, questions.changed)
    assert dialog.windowTitle() == "Warning: the certificate of example.test changed"
    banner = dialog.findChild(QFrame, "banner")
    assert banner is not None and "#b3261e" in banner.styleSheet()
    for label in (dialog.title_label, dialog.headline_label):  # white words on the red
        assert label.palette().color(QPalette.ColorRole.WindowText).name() == "#ffffff"
    assert dialog.reject_button.isDefault()
    assert dialog.focusWidget() is dialog.reject_button
    assert not dialog.always_button.isVisible()
    assert dialog.once_button.isVisible()
    # A hidden button cannot answer even if something clicks it programmatically.
    answers: list[object] = []
    dialog.decided.connect(answers.append)
    dialog.always_button.click()
    assert answers == []
    assert dialog.grab().save(str(SHOTS / "ui-trust-dialog-changed.png"))
    QTest.mouseClick(dialog.details_button, Qt.MouseButton.LeftButton)
    assert dialog.always_button.isVisible()
    assert dialog.grab().save(str(SHOTS / "ui-trust-dialog-changed-details.png"))
    QTest.mouseClick(dialog.always_button, Qt.MouseButton.LeftButton)
    assert answers == [TrustDecision.ALWAYS_TRUST]


def test_quiet_variant_screenshot(qtbot: QtBot, questions: Questions) -> None:
    dialog = make(qtbot, questions.self_signed_wrong_name)
    assert dialog.grab().save(str(SHOTS / "ui-trust-dialog.png"))


def test_dismiss_closes_without_answering(qtbot: QtBot, questions: Questions) -> None:
    dialog = make(qtbot, questions.self_signed)
    answers: list[object] = []
    dialog.decided.connect(answers.append)
    dialog.dismiss()
    assert not dialog.isVisible()
    assert answers == []


def test_screenshots_at_100_and_200_percent(qapp: QApplication) -> None:
    # Each variant with its details closed and open, in build/screenshots/ (look at them).
    from tests.ui import trust_screens
    from tests.ui.shots import SHOTS as BUILD_SHOTS
    from tests.ui.shots import check_at_200_percent

    assert "DejaVu Sans" in QFontDatabase.families()  # else the shots show boxes
    BUILD_SHOTS.mkdir(parents=True, exist_ok=True)
    one = trust_screens.build(BUILD_SHOTS, "")
    assert [path.stem for path in one] == list(trust_screens.NAMES)
    # Open details make a taller dialog: the chain is really there in the picture.
    from PySide6.QtGui import QImage

    heights = {path.stem: QImage(str(path)).height() for path in one}
    assert heights["trust-dialog-changed-details"] > heights["trust-dialog-changed"] + 100
    check_at_200_percent("tests.ui.trust_screens", one)


@pytest.mark.parametrize("variant", ["wrong_name", "changed"])
def test_the_dialog_is_as_tall_as_its_words_and_no_paragraph_gets_blank_lines(
    qtbot: QtBot, questions: Questions, variant: str
) -> None:
    """Stop 15: the paragraphs made by ``_label`` lost the height-for-width flag (a new size
    policy set after ``setWordWrap``), so the layout gave each the height of its size hint,
    worked out at a narrower width: a blank line under "… is paused until you decide.", two
    under the note; and the dialog's minimum height, worked out the same way, left 45-60 px
    of blank under the details button. With the details closed and open."""
    dialog = make(qtbot, getattr(questions, variant))
    for details_open in (False, True):
        if details_open:
            QTest.mouseClick(dialog.details_button, Qt.MouseButton.LeftButton)
            QApplication.processEvents()
        assert dialog.height() == dialog.heightForWidth(dialog.width())
        column = dialog.layout()
        paragraphs = [column.itemAt(i).widget() for i in range(column.count())]
        paragraphs = [p for p in paragraphs if isinstance(p, QLabel) and p.isVisible()]
        assert paragraphs
        for label in paragraphs:  # (a form's caption rightly takes its row's height)
            needs = label.heightForWidth(label.width())
            assert label.height() <= needs + 1, (label.text()[:40], label.height(), needs)
