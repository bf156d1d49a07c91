from __future__ import annotations

import subprocess
import sys

import pytest

from softphone.cli import main


def test_help_lists_every_subcommand_and_says_what_is_missing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in ("gui", "demo", "agent", "proxy", "cert", "contacts", "doctor"):
        assert name in out
    assert "not yet" not in out  # every subcommand exists now


def test_gui_demo_without_a_display_says_how_to_see_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    assert main(["demo", "--gui"]) == 2
    assert "softphone demo --headless" in capsys.readouterr().err


def test_gui_subcommand_reaches_the_gui_without_qt_in_the_engine() -> None:
    # --help exits before Qt starts; the engine's own modules never import Qt.
    result = subprocess.run(
        [sys.executable, "-m", "softphone.cli", "gui", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0
    assert "--account" in result.stdout


def test_no_qt_import_in_the_engine() -> None:
    """ARCHITECTURE.md: nothing in softphone/ imports Qt (the GUI is reached by name only)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "softphone"
    offenders = [
        str(path.relative_to(root.parent))
        for path in root.rglob("*.py")
        if any(
            line.lstrip().startswith(("import PySide6", "from PySide6", "import qasync"))
            for line in path.read_text(encoding="utf-8").splitlines()
        )
    ]
    assert offenders == []


def test_terminal_demo_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--terminal"]) == 0
    assert "sipsec" in capsys.readouterr().out


def test_console_entry_point_is_installed() -> None:
    # `python -m softphone.cli` is what the console script calls; run it as a real process.
    result = subprocess.run(
        [sys.executable, "-m", "softphone.cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("softphone ")


def test_demo_preview_messages_say_what_each_proxy_reads() -> None:
    from softphone.demo import sips_invite, sipsec_connect
    from softphone.sip.parser import parse_message

    invite = parse_message(bytes(sips_invite()))
    assert invite.body.count(b"a=crypto:") >= 1  # the keys a sips: proxy can read

    wire = bytes(sipsec_connect())
    connect = parse_message(wire)
    assert wire.startswith(b"CONNECT sips:bob@example.test SIP/2.0\r\n")
    assert b"sipsec:" not in wire  # draft-gurbani-sip-sipsec §6.2: never on the wire
    assert connect.headers.get_all("Require") == ["sipsec"]
    assert connect.headers.get_all("Proxy-Require") == ["sipsec"]
    assert connect.body == b""
    for revealing in ("User-Agent", "Subject", "Content-Type"):
        assert revealing not in connect.headers
    assert connect.from_.display_name is None


def test_proxy_subcommand_reaches_the_registrar(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["proxy", "--help"])
    assert exc.value.code == 0
    assert "--domain" in capsys.readouterr().out
