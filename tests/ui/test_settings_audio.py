"""Settings → Audio on real devices: a private PulseAudio daemon with a null sink (the fixture
of tests/media/test_devices.py; require_peer when it cannot start), reached through PortAudio
as on a desktop. The test tone played on the "pulse" output comes back on the sink's monitor,
which is the "pulse" input, so the dialog's live meter must rise while it plays; leaving the
tab closes the input device."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from pytestqt.qtbot import QtBot

from softphone.ua import Account, DeviceChoices, IdentityStore, scan_devices
from tests.media.test_devices import pulse  # noqa: F401  # the fixture
from ui.settings import SettingsDialog

Run = Callable[[Coroutine[Any, Any, None]], None]
WAIT = 20.0


async def settle(dialog: SettingsDialog) -> None:
    while dialog.pending:
        await asyncio.wait_for(asyncio.shield(dialog.pending.pop(0)), WAIT)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.02)


def test_devices_test_tone_and_live_input_level(
    qtbot: QtBot,
    tmp_path: Path,
    pulse: Path,  # noqa: F811
    run_in_qasync: Run,
) -> None:
    dialog = SettingsDialog(
        Account(aor="sips:alice@atlanta.test"), None, identity_store=IdentityStore(tmp_path)
    )
    qtbot.addWidget(dialog)
    assert dialog.meter is None  # nothing opened before the tab is shown

    async def scenario() -> None:
        dialog.tabs.setCurrentWidget(dialog.audio_page)
        await settle(dialog)
        assert dialog.devices is not None and dialog.devices.problem == ""
        inputs = [dialog.input_combo.itemData(i) for i in range(dialog.input_combo.count())]
        outputs = [dialog.output_combo.itemData(i) for i in range(dialog.output_combo.count())]
        assert inputs[0] == outputs[0] == "default" and "pulse" in inputs and "pulse" in outputs
        dialog.input_combo.setCurrentIndex(inputs.index("pulse"))  # reopens the meter
        dialog.output_combo.setCurrentIndex(outputs.index("pulse"))
        await settle(dialog)
        meter = dialog.meter
        assert meter is not None and meter.running and meter.device == "pulse"
        assert dialog.meter_poll.isActive()

        dialog.tone_button.click()  # -12 dBFS peak: about -15 dBFS RMS on the monitor

        def loud() -> bool:  # what the bar shows, read while the tone still plays
            dialog.poll_meter()
            return dialog.input_level.value() > 30  # above -30 dBFS

        try:
            await until(loud)
        except TimeoutError:  # say what the dialog showed (a flaky run must explain itself)
            meter_now = dialog.meter
            raise AssertionError(
                f"tone not heard: message {dialog.message.text()!r}, level "
                f"{dialog.input_level.text()!r}, meter "
                f"{None if meter_now is None else (meter_now.device, meter_now.running)}, "
                f"{meter.frames} frames read"
            ) from None
        assert dialog.input_level.text().endswith("dBFS")
        await settle(dialog)
        assert dialog.message.text() == "Test tone played."
        assert dialog.tone_button.isEnabled()

        dialog.tabs.setCurrentIndex(0)  # leaving the tab closes the microphone
        await settle(dialog)
        assert dialog.meter is None and not meter.running
        assert not dialog.meter_poll.isActive()
        assert dialog.input_level.text() == "silent" and meter.level_dbfs == -math.inf

    run_in_qasync(scenario())


def test_no_devices_is_said_in_words(qtbot: QtBot, tmp_path: Path) -> None:
    dialog = SettingsDialog(
        Account(aor="sips:alice@atlanta.test"), None, identity_store=IdentityStore(tmp_path)
    )
    qtbot.addWidget(dialog)
    dialog.show_devices(DeviceChoices(problem="PortAudio is not installed"))
    assert dialog.audio_problem.text() == "Sound devices: PortAudio is not installed."
    assert not dialog.tone_button.isEnabled()
    assert dialog.tone_button.toolTip() == "No speaker to play it on"
    assert not dialog.input_combo.isEnabled()


def test_scan_devices_never_raises(run_in_qasync: Run) -> None:
    async def scenario() -> None:
        found = await scan_devices()
        assert isinstance(found, DeviceChoices)
        assert found.problem or found.inputs or found.outputs  # a device or a reason

    run_in_qasync(scenario())
