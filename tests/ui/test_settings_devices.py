"""Settings → Audio saves the chosen microphone and speaker to the account file, shows the
saved choice when reopened (a device that is not plugged in as "not connected: <name>", kept),
and a UserAgent built from that account (as the GUI builds it) uses them for its calls.

Real parts: the account file written by the dialog and read back with ``load_account``; the
device lists of a private PulseAudio with a null sink through PortAudio (the ``pulse`` fixture
of tests/media/test_devices.py; require_peer when it cannot start). A call through the devices
an account names is proven in tests/ua/test_sound.py
(``test_a_phone_uses_the_devices_its_account_names``). The lists with a device that is not
there are built by hand: no sound server can unplug a headset on demand."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QComboBox
from pytestqt.qtbot import QtBot

from softphone.ua import Account, DeviceChoices, IdentityStore, load_account, save_account
from softphone.ua.audio import AudioDevice
from softphone.ua.useragent import UserAgent
from tests.media.test_devices import pulse  # noqa: F401  # the fixture
from ui.settings import SettingsDialog

Run = Callable[[Coroutine[Any, Any, None]], None]
WAIT = 20.0
AOR = "sips:alice@atlanta.test"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"


def account_file(tmp_path: Path, **fields: Any) -> Path:
    path = tmp_path / "alice.toml"
    save_account(path, Account(aor=AOR, registrar="sips:atlanta.test", **fields))
    return path


def dialog_for(qtbot: QtBot, tmp_path: Path, path: Path) -> SettingsDialog:
    dialog = SettingsDialog(load_account(path), path, identity_store=IdentityStore(tmp_path))
    qtbot.addWidget(dialog)
    return dialog


async def settle(dialog: SettingsDialog) -> None:
    while dialog.pending:
        await asyncio.wait_for(asyncio.shield(dialog.pending.pop(0)), WAIT)


def items(combo: QComboBox) -> list[tuple[str, object]]:
    return [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]


def device(index: int, name: str, *, inputs: int = 0, outputs: int = 0) -> AudioDevice:
    return AudioDevice(index, name, "ALSA", inputs, outputs, 48000.0)


HEADSET_MIC = device(2, "USB Headset: Audio (hw:1,0)", inputs=1)
SPEAKERS = device(3, "HDA Intel PCH: ALC3246 Analog (hw:0,0)", outputs=2)
CHOICES = DeviceChoices(inputs=(HEADSET_MIC,), outputs=(SPEAKERS,))


def test_chosen_devices_are_saved_reloaded_and_used_by_calls(
    qtbot: QtBot,
    tmp_path: Path,
    pulse: Path,  # noqa: F811
    run_in_qasync: Run,
) -> None:
    path = account_file(tmp_path)
    dialog = dialog_for(qtbot, tmp_path, path)

    async def choose_and_save() -> None:
        dialog.tabs.setCurrentWidget(dialog.audio_page)  # scans the real devices
        await settle(dialog)
        assert dialog.devices is not None and dialog.devices.problem == ""
        assert dialog.input_combo.currentData() == "default"  # nothing saved yet
        dialog.input_combo.setCurrentIndex(dialog.input_combo.findData("pulse"))
        dialog.output_combo.setCurrentIndex(dialog.output_combo.findData("pulse"))
        await settle(dialog)
        dialog.save()
        dialog.tabs.setCurrentIndex(0)  # closes the meter's device
        await settle(dialog)

    run_in_qasync(choose_and_save())
    assert dialog.message.text().startswith("Saved.")
    assert "Sound devices apply from the next call" in dialog.message.text()
    saved = load_account(path)
    assert (saved.input_device, saved.output_device) == ("pulse", "pulse")
    assert 'input_device = "pulse"' in path.read_text()

    again = dialog_for(qtbot, tmp_path, path)

    async def reopen() -> None:
        again.tabs.setCurrentWidget(again.audio_page)
        await settle(again)
        assert again.input_combo.currentData() == "pulse"
        assert again.output_combo.currentData() == "pulse"
        assert again.input_combo.currentText().startswith("pulse (")
        again.tabs.setCurrentIndex(0)
        await settle(again)

    run_in_qasync(reopen())
    # The GUI's UserAgent is built from the account without audio_devices= (ui/bridge.py).
    ua = UserAgent(saved, pin_store_path=tmp_path / "pins.json")
    assert ua.audio_devices == ("pulse", "pulse")


def test_system_default_is_saved_as_default(qtbot: QtBot, tmp_path: Path) -> None:
    path = account_file(tmp_path)
    dialog = dialog_for(qtbot, tmp_path, path)
    dialog.show_devices(CHOICES)
    assert dialog.input_combo.currentText() == "System default"
    dialog.save()
    saved = load_account(path)
    assert (saved.input_device, saved.output_device) == ("default", "default")
    assert UserAgent(saved, pin_store_path=tmp_path / "p.json").audio_devices == (
        "default",
        "default",
    )


def test_a_device_that_is_not_there_is_shown_and_kept(qtbot: QtBot, tmp_path: Path) -> None:
    path = account_file(tmp_path, input_device="Jabra Evolve 40", output_device="hw:0,0")
    dialog = dialog_for(qtbot, tmp_path, path)
    dialog.show_devices(CHOICES)
    # The microphone is unplugged: said, selected, and not replaced by the default.
    assert items(dialog.input_combo) == [
        ("System default", "default"),
        ("USB Headset: Audio (hw:1,0) (ALSA)", "USB Headset: Audio (hw:1,0)"),
        ("not connected: Jabra Evolve 40", "Jabra Evolve 40"),
    ]
    assert dialog.input_combo.currentText() == "not connected: Jabra Evolve 40"
    # The speaker was saved as part of its name: the one device containing it is selected.
    assert dialog.output_combo.currentData() == SPEAKERS.name
    dialog.output_combo.setCurrentIndex(0)
    dialog.save()
    saved = load_account(path)
    assert saved.input_device == "Jabra Evolve 40"  # kept
    assert saved.output_device == "default"


def test_the_test_tone_says_an_unplugged_speaker_is_not_connected(
    qtbot: QtBot, tmp_path: Path
) -> None:
    path = account_file(tmp_path, output_device="Bluetooth Speaker")
    dialog = dialog_for(qtbot, tmp_path, path)
    dialog.show_devices(CHOICES)
    assert dialog.output_combo.currentText() == "not connected: Bluetooth Speaker"
    assert dialog.input_combo.currentData() == "default"  # the one left out
    started: list[object] = []
    dialog.runner = started.append  # nothing may be started for a missing device
    dialog.play_tone()
    assert started == []
    assert dialog.message.text() == (
        "That speaker is not connected (Bluetooth Speaker): plug it in, or choose another."
    )


def test_an_index_spec_selects_that_device(qtbot: QtBot, tmp_path: Path) -> None:
    path = account_file(tmp_path, input_device="2", output_device="7")
    dialog = dialog_for(qtbot, tmp_path, path)
    dialog.show_devices(CHOICES)
    assert dialog.input_combo.currentData() == HEADSET_MIC.name
    assert dialog.output_combo.currentText() == "not connected: 7"


def test_without_the_audio_tab_saving_keeps_the_devices(qtbot: QtBot, tmp_path: Path) -> None:
    for fields in ({}, {"input_device": "Jabra", "output_device": "default"}):
        path = account_file(tmp_path, **fields)
        dialog = dialog_for(qtbot, tmp_path, path)
        dialog.save()  # the device lists were never filled
        saved = load_account(path)
        assert saved.input_device == fields.get("input_device")
        assert saved.output_device == fields.get("output_device")


def test_no_sound_system_keeps_the_saved_device(qtbot: QtBot, tmp_path: Path) -> None:
    path = account_file(tmp_path, input_device="Jabra")
    dialog = dialog_for(qtbot, tmp_path, path)
    dialog.show_devices(DeviceChoices(problem="PortAudio is not installed"))
    assert dialog.input_combo.currentText() == "not connected: Jabra"
    assert not dialog.input_combo.isEnabled()
    assert dialog.output_combo.count() == 0
    dialog.save()
    saved = load_account(path)
    assert (saved.input_device, saved.output_device) == ("Jabra", None)


def test_screenshot_of_the_audio_page(qtbot: QtBot, tmp_path: Path) -> None:
    path = account_file(tmp_path, input_device="Jabra Evolve 40")
    dialog = dialog_for(qtbot, tmp_path, path)
    dialog.tabs.blockSignals(True)  # show the page without scanning the real devices
    dialog.tabs.setCurrentWidget(dialog.audio_page)
    dialog.tabs.blockSignals(False)
    dialog.show_devices(CHOICES)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert dialog.devices_note.isVisible()
    assert "from the next call on" in dialog.devices_note.text()
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / "settings-audio.png"
    assert dialog.grab().save(str(shot))
    assert shot.stat().st_size > 0


def test_the_phone_gives_devices_saved_in_settings_to_its_running_user_agent(
    qtbot: QtBot, tmp_path: Path, run_in_qasync: Callable[[Coroutine[Any, Any, None]], None]
) -> None:
    """``ui.app.Phone`` connects the dialog's ``saved`` to the UA: the next call uses the
    devices; the registrar and the rest of the running account stay as they were."""
    from ui.app import Phone

    async def scenario() -> None:
        phone = Phone(history_path=tmp_path / "history.json")
        try:
            path = account_file(tmp_path)
            account = load_account(path)
            phone.account_path = path
            ua = phone.add_account(account, pin_store_path=tmp_path / "pins.json")
            assert ua.audio_devices is None
            phone.open_settings()
            dialog = phone.window.findChild(SettingsDialog)
            assert dialog is not None
            saved = Account(
                aor=AOR, registrar="sips:elsewhere.test", input_device="pulse", output_device=None
            )
            dialog.saved.emit(saved)
            assert ua.audio_devices == ("pulse", "default")
            assert ua.account.registrar == account.registrar  # not swapped under the UA
            dialog.close()
        finally:
            await phone.close()

    run_in_qasync(scenario())


def test_the_desktop_phone_uses_the_system_devices_unless_the_account_names_some() -> None:
    from ui.app import desktop_account

    plain = Account(aor=AOR, registrar="sips:atlanta.test")
    assert plain.audio_devices is None  # the agent and the tests: no sound card unless told
    assert desktop_account(plain).audio_devices == ("default", "default")
    named = Account(aor=AOR, registrar="sips:atlanta.test", input_device="pulse")
    assert desktop_account(named) is named
