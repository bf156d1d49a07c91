"""The icons (hand-drawn SVG, PNGs rendered from it) and the ringtone are the project's own,
reproducible from packaging/make_icons.py and packaging/make_ringtone.py."""

from __future__ import annotations

import importlib.util
import os
import struct
import subprocess
import sys
import wave
import xml.etree.ElementTree as ET
from array import array
from pathlib import Path
from types import ModuleType

import pytest

from softphone.media.tone import goertzel_power

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = ROOT / "resources"
APP_ID = "org.softphone.Softphone"
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "packaging" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def png_header(path: Path) -> tuple[int, int, int]:
    """(width, height, colour type) from the IHDR chunk (PNG spec §11.2.2)."""
    data = path.read_bytes()[:26]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height, data[25]


def icon(size: int) -> Path:
    return RESOURCES / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png"


@pytest.mark.parametrize("size", SIZES)
def test_icon_at_every_usual_size_with_transparency(size: int) -> None:
    assert png_header(icon(size)) == (size, size, 6)  # 6: RGBA


def test_the_svg_is_a_drawing_not_an_embedded_picture() -> None:
    svg = RESOURCES / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg"
    root = ET.parse(svg).getroot()  # our own file
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox") == "0 0 256 256"
    assert not list(root.iter("{http://www.w3.org/2000/svg}image"))
    assert "data:" not in svg.read_text()


def test_pngs_are_what_make_icons_renders(tmp_path: Path) -> None:
    # In a child process: the script makes its own QGuiApplication.
    code = (
        "import sys, pathlib; sys.path.insert(0, 'packaging'); import make_icons; "
        f"sys.exit(make_icons.main(pathlib.Path({str(tmp_path)!r})))"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for size in SIZES:
        made = tmp_path / f"{size}x{size}" / "apps" / f"{APP_ID}.png"
        assert made.read_bytes() == icon(size).read_bytes(), f"{size}px differs: re-run make_icons"


# --- the ringtone ---------------------------------------------------------------------------

RINGTONE = RESOURCES / "sounds" / "ringtone.wav"


def ringtone_samples() -> tuple[array[int], wave._wave_params]:
    with wave.open(str(RINGTONE), "rb") as wav:
        params = wav.getparams()
        data = array("h")
        data.frombytes(wav.readframes(wav.getnframes()))
    if sys.byteorder == "big":
        data.byteswap()
    return data, params


def test_ringtone_is_48k_mono_16_bit_and_short() -> None:
    data, params = ringtone_samples()
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 48_000)
    assert 1.0 <= len(data) / 48_000 <= 5.0


def test_ringtone_loops_without_a_click_and_does_not_clip() -> None:
    data, _ = ringtone_samples()
    edge = 480  # 10 ms
    assert data[0] == 0 and max(abs(s) for s in data[:10]) < 0.01 * 32767  # 10 ms attack
    assert max(abs(s) for s in data[-edge:]) == 0  # ends in silence: loops cleanly
    assert 0.2 * 32767 < max(abs(s) for s in data) < 0.5 * 32767  # audible, far from clipping


def test_ringtone_is_two_tones_a_fifth_apart() -> None:
    data, _ = ringtone_samples()
    first = data[int(0.05 * 48_000) : int(0.25 * 48_000)]  # E5 alone
    second = data[int(0.32 * 48_000) : int(0.52 * 48_000)]  # B5 over the fading E5
    e5, b5, a4 = (goertzel_power(first, f) for f in (659.25, 987.77, 440.0))
    assert e5 > 100 * b5 and e5 > 100 * a4
    assert goertzel_power(second, 987.77) > goertzel_power(second, 659.25)


def test_ringtone_is_what_make_ringtone_synthesises() -> None:
    script = load_script("make_ringtone")
    data, _ = ringtone_samples()
    assert script.synthesise() == data
