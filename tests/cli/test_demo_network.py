"""The embedded demo network for real: two proxies, two phones, TLS on loopback, both calls.

These tests run the real registrar/proxies (softphone.server), the real user agents
(softphone.ua) with real TLS and SRTP on 127.0.0.1. While this build lacks a part the network
needs (softphone.demo_network.missing_parts), they skip with the part named, and fail under
CI=true, like a missing real peer (tests/conftest.py::require_peer).
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from softphone.demo import main, run_headless
from softphone.demo_ladder import END_TO_END_SIGNALLING, problems
from softphone.demo_network import DemoNetwork, missing_parts
from tests.conftest import require_peer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


def require_network() -> None:
    missing = missing_parts()
    require_peer(
        "the demo network",
        available=not missing,
        hint="this build lacks " + "; ".join(missing),
    )


@pytest.fixture
def network_parts() -> Iterator[None]:
    require_network()
    yield


async def test_both_calls_on_the_demo_network(network_parts: None, tmp_path: Path) -> None:
    out = io.StringIO()
    async with DemoNetwork.start(tmp_path, out=out) as net:
        sips = await asyncio.wait_for(net.call("sips"), 120)
        sipsec = await asyncio.wait_for(net.call("sipsec"), 120)

    # sips: every proxy decrypts its hop and reads the INVITE and the SRTP keys.
    assert sips.ok, sips.error
    for domain, view in sips.views.items():
        assert "INVITE" in view.methods_read(), domain
        assert view.read_sdp() and view.read_keys(), domain
    summary = sips.summary()
    assert all(p.crypto_line and "inline:" in p.crypto_line for p in summary.proxies)
    assert problems(summary) == []

    # sipsec: the proxies read the CONNECT only and relay opaque bytes.
    assert sipsec.ok, sipsec.error
    for domain, view in sipsec.views.items():
        methods = view.methods_read()
        assert "CONNECT" in methods and "INVITE" not in methods, (domain, methods)
        assert not view.read_sdp() and not view.read_keys(), domain
        assert view.opaque_bytes > 0, domain
    words = sipsec.words
    assert set(words) == {"alice", "bob"}
    assert all(w.signalling == END_TO_END_SIGNALLING for w in words.values())
    assert all(w.audio == "Audio encrypted end to end" for w in words.values())
    numbers = sipsec.safety_numbers
    assert numbers["alice"] is not None and numbers["alice"] == numbers["bob"]
    assert problems(sipsec.summary()) == []


def test_headless_demo_exits_0_and_prints_both_ladders(network_parts: None) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "softphone.cli", "demo", "--headless"],
        capture_output=True,
        text=True,
        check=False,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "== sips: alice calls sips:bob@biloxi.test ==" in out
    assert "== sipsec: alice calls sipsec:bob@biloxi.test ==" in out
    assert "goes transparent" in out and "opaque to proxies" in out
    assert "inline:" in out and "\x1b[" not in out  # no colour when not a terminal
    assert all(len(line) <= 100 for line in out.splitlines())
    assert out.isascii()
    assert "The demo succeeded" in out


@pytest.mark.parametrize("sabotage", ["sips-for-sipsec", "proxy-reads-tunnel"])
def test_a_sabotaged_demo_exits_non_zero(network_parts: None, sabotage: str) -> None:
    out = io.StringIO()
    status = run_headless(out, sabotage=sabotage)
    text = out.getvalue()
    assert status == 1, text
    assert "read the INVITE in the sipsec call" in text
    assert "The demo FAILED" in text


def test_preview_while_the_network_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("softphone.demo_network.missing_parts", lambda: ["proxy routing"])
    assert main(["--headless"]) == 0
    captured = capsys.readouterr()
    assert "not yet available in this build" in captured.err
    assert "missing proxy routing" in captured.err
    assert "preview" in captured.out and "sipsec" in captured.out


def test_gui_demo_says_not_yet_until_it_exists(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("softphone.demo.gui_demo_available", lambda: False)
    assert main(["--gui"]) == 2
    assert "not yet available" in capsys.readouterr().err
