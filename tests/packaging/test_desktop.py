"""The desktop integration files: the .desktop entry (Desktop Entry Specification 1.4) and
the AppStream metainfo, checked by the distributions' own validators."""

from __future__ import annotations

import configparser
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from softphone import __version__
from tests.conftest import require_peer

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
APP_ID = "org.softphone.Softphone"
DESKTOP = PACKAGING / f"{APP_ID}.desktop"
METAINFO = PACKAGING / f"{APP_ID}.metainfo.xml"
SCHEMES = ["x-scheme-handler/sip", "x-scheme-handler/sips", "x-scheme-handler/sipsec"]


def desktop_entry(path: Path = DESKTOP) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return dict(parser["Desktop Entry"])


def validate_desktop(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["desktop-file-validate", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def validate_metainfo(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["appstreamcli", "validate", "--no-net", "--explain", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_desktop_file_validates() -> None:
    require_peer("desktop-file-validate", hint="apt-get install desktop-file-utils")
    result = validate_desktop(DESKTOP)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in (result.stdout + result.stderr).lower()


def test_the_validator_would_catch_a_broken_file(tmp_path: Path) -> None:
    require_peer("desktop-file-validate", hint="apt-get install desktop-file-utils")
    broken = tmp_path / f"{APP_ID}.desktop"
    broken.write_text(DESKTOP.read_text().replace("Type=Application\n", ""), encoding="utf-8")
    assert validate_desktop(broken).returncode != 0


def test_desktop_file_opens_sip_sips_and_sipsec_links_with_the_gui() -> None:
    entry = desktop_entry()
    assert [m for m in entry["MimeType"].split(";") if m] == SCHEMES
    assert entry["Exec"] == "softphone gui %u"  # %u: one URL, the link clicked
    assert entry["Icon"] == APP_ID
    assert entry["Type"] == "Application" and entry["Terminal"] == "false"
    assert "Telephony" in entry["Categories"].split(";")


def test_metainfo_validates() -> None:
    require_peer("appstreamcli", hint="apt-get install appstream")
    result = validate_metainfo(METAINFO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_metainfo_validator_would_catch_a_broken_file(tmp_path: Path) -> None:
    require_peer("appstreamcli", hint="apt-get install appstream")
    broken = tmp_path / f"{APP_ID}.metainfo.xml"
    broken.write_text(METAINFO.read_text().replace("<summary>", "<summary>.<"), encoding="utf-8")
    assert validate_metainfo(broken).returncode != 0


def test_one_id_everywhere_and_the_release_is_this_version() -> None:
    root = ET.parse(METAINFO).getroot()  # our own file
    assert root.get("type") == "desktop-application"
    assert root.findtext("id") == APP_ID
    assert root.findtext("launchable") == DESKTOP.name
    assert root.findtext("icon") == desktop_entry()["Icon"]
    assert root.findtext("project_license") == "GPL-3.0-or-later"
    provided = [m.text for m in root.iterfind("provides/mediatype")]
    assert provided == SCHEMES
    assert root.findtext("provides/binary") == "softphone"
    versions = [r.get("version") for r in root.iterfind("releases/release")]
    assert versions[0] == __version__


@pytest.mark.parametrize("path", [DESKTOP, METAINFO])
def test_packaging_files_are_plain_utf8(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.isascii(), "a stray non-ASCII character (zero-width space?) in " + path.name
