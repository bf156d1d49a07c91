"""The PyInstaller one-folder app (packaging/softphone.spec, ``make dist``) runs without a venv:
built once here, then started as a user would start it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from softphone import __version__
from tests.conftest import require_peer

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<tmp>/dist/softphone/softphone``, built from the spec (about 70 s on 2 cores)."""
    require_peer(
        "pyinstaller",
        available=importlib.util.find_spec("PyInstaller") is not None,
        hint="pip install -e '.[dist]'",
    )
    require_peer("objdump", hint="apt-get install binutils (PyInstaller needs it)")
    work = tmp_path_factory.mktemp("pyinstaller")
    built = subprocess.run(
        [str(Path(sys.executable).parent / "pyinstaller"), "--noconfirm", "--log-level",
         "ERROR", "--distpath", str(work / "dist"), "--workpath", str(work / "build"),
         str(ROOT / "packaging" / "softphone.spec")],
        capture_output=True, text=True, check=False, timeout=540, cwd=work,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-4000:]
    binary = work / "dist" / "softphone" / "softphone"
    assert binary.is_file()
    return binary


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """No venv, no PYTHONPATH, a home of its own (the app writes nothing of the developer's),
    and its own TMPDIR: the GUI's single-instance socket lives there, so a phone the developer
    has open does not catch this launch."""
    keep = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    own = {"HOME": str(home), "XDG_RUNTIME_DIR": str(home), "TMPDIR": str(home)}
    return {**keep, **own, **extra}


def test_bundle_holds_the_resources_and_the_qt_platforms(app: Path) -> None:
    internal = app.parent / "_internal"
    resources = internal / "softphone" / "resources"
    assert (resources / "sounds" / "ringtone.wav").is_file()
    assert (resources / "icons/hicolor/256x256/apps/org.softphone.Softphone.png").is_file()
    platforms = internal / "PySide6" / "Qt" / "plugins" / "platforms"
    assert (platforms / "libqoffscreen.so").is_file() and (platforms / "libqxcb.so").is_file()
    assert list(internal.glob("av*")) and list(internal.glob("pylibsrtp*"))


def test_frozen_command_and_doctor_run(app: Path, tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    version = subprocess.run(
        [str(app), "--version"], capture_output=True, text=True, check=False, env=env, timeout=120
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"softphone {__version__}"
    doctor = subprocess.run(
        [str(app), "doctor", "--only", "ca", "--only", "keyring"],
        capture_output=True, text=True, check=False, env=env, timeout=120,
    )  # fmt: skip
    lines = doctor.stdout.splitlines()
    assert any(line.split()[1:3] == ["Trusted", "CAs:"] for line in lines), doctor.stdout
    assert any("Password store:" in line for line in lines), doctor.stdout + doctor.stderr
    problems = any(line.startswith("PROBLEM") for line in lines)
    assert doctor.returncode == (1 if problems else 0)
    assert "Traceback" not in doctor.stderr


def test_frozen_gui_shows_its_window_offscreen(app: Path, tmp_path: Path) -> None:
    # `softphone gui --exit-after-show` exits 0 once Qt has exposed the main window: the
    # platform plugin, PySide6, qasync and the widgets all load from the bundle.
    env = clean_env(tmp_path, QT_QPA_PLATFORM="offscreen")
    shown = subprocess.run(
        [str(app), "gui", "--exit-after-show", "--no-single-instance"],
        capture_output=True, text=True, check=False, env=env, timeout=120,
    )  # fmt: skip
    text = shown.stdout + shown.stderr
    assert shown.returncode == 0, f"the app exited {shown.returncode}:\n{text}"
    assert "the main window was shown" in shown.stderr, text
    assert "Traceback" not in text and "could not load the Qt platform" not in text
