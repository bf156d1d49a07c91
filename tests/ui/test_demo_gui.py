"""``softphone demo --gui``: the presenter's journey on the real demo network, clicked for real
(:mod:`tests.ui.demo_journey`), what the proxy panes say, the screenshots at 100% and 200%, and
the ``--exit-after-show`` smoke runs of ``softphone gui`` and the demo."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QFontDatabase

from softphone.demo import sips_invite
from softphone.security.ledger import ContactState
from softphone.server.observe import ProxyView, SipSeen, TunnelClosed, TunnelOpened
from softphone.sip.parser import parse_message
from tests.ui.demo_journey import Seen, journey
from tests.ui.shots import check_at_200_percent
from ui.demo_presenters import (
    CAN_READ_KEYS,
    CANNOT_READ,
    READ_TUNNEL,
    mark,
    masked_message,
    proxy_pane_model,
)

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
DOMAINS = ("atlanta.test", "biloxi.test")
pytestmark = pytest.mark.timeout(300)

_journey: dict[str, Any] = {}


@pytest.fixture
def seen(run_in_qasync: Any, tmp_path: Path) -> tuple[Seen, Path]:
    """The journey, run once for the tests of this module (it takes a few seconds)."""
    if "seen" not in _journey:
        workdir = tmp_path / "demo"
        result: list[Seen] = []

        async def go() -> None:
            result.append(await journey(workdir, SHOTS))

        run_in_qasync(go(), timeout=240)
        _journey["seen"], _journey["workdir"] = result[0], workdir
    return _journey["seen"], _journey["workdir"]


def test_sips_call_both_proxies_read_the_keys(seen: tuple[Seen, Path]) -> None:
    result, _ = seen
    for domain in DOMAINS:
        pane = result.panes[f"sips:{domain}"]
        text = result.pane_texts[f"sips:{domain}"]
        assert pane["headline"] == CAN_READ_KEYS
        assert "INVITE" in pane["methods"]
        assert "INVITE sips:bob@biloxi.test" in text
        offered = [line for line in text.splitlines() if "a=crypto:" in line]
        assert offered
        for crypto in offered:  # each key there, but masked
            key = crypto.split("inline:", 1)[1].split("|", 1)[0]
            assert re.fullmatch(r"[A-Za-z0-9+/=]{4}\*+", key), crypto
        assert "Digest" not in text or "credentials hidden" in text
    for phone in ("alice", "bob"):
        assert result.badges[f"sips:{phone}"] != "END TO END"  # UX.md: never for sips:


def test_both_calls_media_ran_on_the_media_thread(seen: tuple[Seen, Path]) -> None:
    """The phones' audio ran on the media thread, not on the window's loop (issue 7: the
    loop must not stall; softphone.media.thread), for both phones and both kinds of call."""
    result, _ = seen
    assert result.media_threads == {
        f"{kind}:{phone}": "softphone-media"
        for kind in ("sips", "sipsec")
        for phone in ("alice", "bob")
    }


def test_sipsec_call_proxies_see_only_connect_and_bytes(seen: tuple[Seen, Path]) -> None:
    result, _ = seen
    for domain in DOMAINS:
        pane = result.panes[f"sipsec:{domain}"]
        text = result.pane_texts[f"sipsec:{domain}"]
        assert pane["headline"] == CANNOT_READ
        assert set(pane["methods"]) <= {"CONNECT", "200 CONNECT"} and pane["methods"]
        assert not pane["read_invite"] and not pane["read_keys"]
        assert "INVITE" not in text and "a=crypto" not in text
        count = int(re.fullmatch(r"cannot read: ([\d,]+) bytes of encrypted tunnel",
                                 pane["counter"]).group(1).replace(",", ""))  # fmt: skip
        assert count > 0
    assert all(n > 0 for n in result.counters)
    for phone in ("alice", "bob"):
        assert result.badges[f"sipsec:{phone}"] == "END TO END"


def test_trust_dialogs_answered_safety_numbers_equal_and_marked_verified(
    seen: tuple[Seen, Path],
) -> None:
    from softphone.contacts import load_ledger

    result, workdir = seen
    assert set(result.trust_dialogs) == {"alice", "bob"}  # each phone asked about the other
    alice, bob = result.safety_numbers["alice"], result.safety_numbers["bob"]
    assert alice == bob and len(alice.split()) == 12
    assert "the same on both phones" in result.compare_label
    assert result.qr_shown == {"alice": True, "bob": True}
    for phone, peer in (("alice", "sip:bob@biloxi.test"), ("bob", "sip:alice@atlanta.test")):
        assert result.compared[phone].startswith("Recorded:"), result.compared[phone]
        ledger = load_ledger(workdir / phone / "contacts.json")
        assert ledger.state(peer) is ContactState.VERIFIED
        assert result.contacts[phone][peer] == "verified"  # the contacts tab says so


def test_screenshots_of_every_stage_at_100_and_200_percent(seen: tuple[Seen, Path]) -> None:
    assert "DejaVu Sans" in QFontDatabase.families()  # else the shots show boxes
    result, _ = seen
    assert len(result.shots) >= 10
    check_at_200_percent("tests.ui.demo_journey", result.shots, timeout=240)


# -- the proxy panes' words, from real messages ----------------------------------------------


def _seen(proxy: str, raw: bytes) -> SipSeen:
    return SipSeen(proxy, "in", "127.0.0.1:5061", parse_message(raw), raw, 0.0)


def test_masked_message_hides_the_key_and_credentials() -> None:
    invite = bytes(sips_invite())
    head, _, body = invite.partition(b"\r\n\r\n")
    with_auth = head + b'\r\nProxy-Authorization: Digest username="alice", response="abc"'
    lines = masked_message(with_auth + b"\r\n\r\n" + body)
    text = "\n".join(lines)
    assert 'response="abc"' not in text and "credentials hidden" in text
    key = re.search(rb"inline:([^|\s]+)", body)
    assert key is not None and key.group(1).decode() not in text
    assert any(line.startswith("a=crypto:") and "*" in line for line in lines)


def test_pane_says_the_proxy_read_the_tunnel_when_it_parsed_an_invite() -> None:
    view = ProxyView("atlanta.test")
    since = mark(view)
    view.observe(TunnelOpened("atlanta.test", 1, "a", "b", "sips:bob@biloxi.test", 0.0))
    view.add_relayed(1, 1200)
    clean = proxy_pane_model(view, "sipsec", since)
    assert clean.headline == CANNOT_READ and clean.opaque_bytes == 1200
    assert clean.counter == "cannot read: 1,200 bytes of encrypted tunnel"
    view.observe(_seen("atlanta.test", bytes(sips_invite())))  # a proxy that read inside
    leaked = proxy_pane_model(view, "sipsec", since)
    assert leaked.headline == READ_TUNNEL and leaked.level.name == "NONE"
    view.observe(TunnelClosed("atlanta.test", 1, 1000, 500, "ended", 1.0))
    assert proxy_pane_model(view, "sipsec", since).opaque_bytes == 1500


def test_pane_before_any_call_and_for_a_sips_call() -> None:
    view = ProxyView("biloxi.test")
    assert proxy_pane_model(view, "", None).headline == "No call yet"
    since = mark(view)
    view.observe(_seen("biloxi.test", bytes(sips_invite())))
    model = proxy_pane_model(view, "sips", since)
    assert model.headline == CAN_READ_KEYS and model.read_keys and model.key_line
    assert model.counter == ""


# -- smoke runs --------------------------------------------------------------------------------


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path),
           "XDG_RUNTIME_DIR": str(tmp_path), "TMPDIR": str(tmp_path)}  # fmt: skip
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def test_gui_exit_after_show(tmp_path: Path) -> None:
    args = ["-m", "softphone.cli", "gui", "--exit-after-show", "--no-single-instance"]
    done = _run(args, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "the main window was shown" in done.stderr


def test_demo_gui_exit_after_show_starts_the_network(tmp_path: Path) -> None:
    code = "import sys; from ui.demo import main; sys.exit(main(['--exit-after-show']))"
    done = _run(["-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr


def test_demo_gui_without_a_display_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from softphone.demo import run_demo

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert run_demo(gui=True) == 2
    err = capsys.readouterr().err
    assert "no display" in err and "softphone demo --headless" in err
