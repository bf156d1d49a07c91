"""``pip install .`` gives a working ``softphone`` command: the wheel, built from this tree and
installed into a fresh venv, has every package, the resources, and no tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP_ID = "org.softphone.Softphone"
pytestmark = pytest.mark.slow


def run(*argv: str | Path, **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        [str(a) for a in argv], capture_output=True, text=True, check=False, **options
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources, and a
    # stale build/lib would put deleted modules back into the wheel.
    source = out / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("softphone", "ui", "resources"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    built = run(
        sys.executable, "-m", "pip", "wheel", source, "--no-deps", "-q", "-w", out,
        env=env, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("softphone-*.whl")
    return path


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the wheel installed (no deps). The dependencies (PySide6, cryptography,
    ...) are borrowed from the running interpreter's site-packages through a ``.pth`` line, so
    nothing is downloaded; the editable install there is not (its finder is a ``.pth`` of its
    own, which a path added this way never runs), and the tests check where softphone came from.
    """
    home = tmp_path_factory.mktemp("venv") / "v"
    venv.EnvBuilder(with_pip=False).create(home)
    python = home / "bin" / "python"
    installed = run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel,
        timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                    timeout=60).stdout.strip())  # fmt: skip
    (site / "zz_borrowed_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return home


def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def source_packages() -> set[str]:
    """Every folder of softphone/ and ui/ with Python modules: each must be in the wheel."""
    found = set()
    for top in ("softphone", "ui"):
        for path in (ROOT / top).rglob("*.py"):
            if "__pycache__" not in path.parts:
                found.add(path.parent.relative_to(ROOT).as_posix())
    return found


def test_wheel_has_every_package_the_resources_and_no_tests(wheel: Path) -> None:
    names = wheel_names(wheel)
    folders = {n.rsplit("/", 1)[0] for n in names if n.endswith(".py")}
    missing = source_packages() - folders
    assert not missing, f"packages missing from the wheel (add them to pyproject.toml): {missing}"
    assert "softphone/resources/sounds/ringtone.wav" in names
    assert f"softphone/resources/icons/hicolor/scalable/apps/{APP_ID}.svg" in names
    for size in (16, 22, 24, 32, 48, 64, 128, 256, 512):
        assert f"softphone/resources/icons/hicolor/{size}x{size}/apps/{APP_ID}.png" in names
    assert "softphone/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "packaging/"))]


def test_installed_command_runs_from_the_wheel(fresh_venv: Path) -> None:
    softphone = fresh_venv / "bin" / "softphone"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    helped = run(softphone, "--help", env=env, timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert "doctor" in helped.stdout and "gui" in helped.stdout
    doctor = run(softphone, "doctor", "--help", env=env, timeout=120)
    assert doctor.returncode == 0, doctor.stderr
    assert "--account" in doctor.stdout
    alias = run(fresh_venv / "bin" / "softphone-doctor", "--help", env=env, timeout=120)
    assert alias.returncode == 0 and "--only" in alias.stdout


def test_resources_and_code_come_from_the_installed_wheel(fresh_venv: Path) -> None:
    code = (
        "import importlib.resources as r, softphone, ui, softphone.resources as res\n"
        "root = r.files('softphone.resources')\n"
        "print(softphone.__file__); print(ui.__file__)\n"
        "print((root / res.RINGTONE).is_file())\n"
        "print(all((root / res.icon_name(s)).is_file() for s in (*res.ICON_SIZES, None)))\n"
        "import importlib.util; spec = importlib.util.find_spec('tests')\n"
        "print(spec.origin if spec else 'none')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = run(fresh_venv / "bin" / "python", "-c", code, env=env, cwd="/", timeout=120)
    assert result.returncode == 0, result.stderr
    softphone_file, ui_file, ringtone, icons, tests_origin = result.stdout.split()
    assert Path(softphone_file).is_relative_to(fresh_venv)
    assert Path(ui_file).is_relative_to(fresh_venv)
    assert (ringtone, icons) == ("True", "True")
    # Our tests are not installed (some third-party wheels do ship a top-level "tests").
    assert not Path(tests_origin).is_relative_to(fresh_venv)
