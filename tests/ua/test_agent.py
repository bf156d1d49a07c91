"""``softphone agent`` (softphone.agent:main) as a real process against our registrar.

The agent runs as ``python -m softphone.agent`` (the registrar runs in the test's event
loop); its stdout is read line by line as JSON. Waits are bounded, never timed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from softphone.agent import EXIT_USAGE, main
from softphone.storage import load_pin_store
from tests.ua import test_registration as shared

ROOT = Path(__file__).resolve().parents[2]
PASSWORD_ENV = "SOFTPHONE_TEST_PASSWORD"
WAIT = 30.0

# The shared fixtures (a test CA and certificates; a registrar that records what it saw).
lab = shared.lab
registrar_factory = shared.registrar_factory


def write_account(directory: Path, port: int, ca_file: Path | None) -> Path:
    lines = [
        f'aor = "sips:{shared.USER}@{shared.DOMAIN}"',
        f'registrar = "sips:{shared.DOMAIN}:{port}"',
        f'resolve = ["{shared.DOMAIN}:{port}:127.0.0.1"]',
        f'password_env = "{PASSWORD_ENV}"',
    ]
    if ca_file is not None:
        lines.append(f'ca_file = "{ca_file}"')
    path = directory / "alice.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Agent:
    """A running agent process: its JSON lines as they come, its exit status."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []

    async def next_event(self, name: str) -> dict[str, Any]:
        """Read lines until one with ``"event": name`` (bounded)."""
        assert self.process.stdout is not None
        async with asyncio.timeout(WAIT):
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    raise AssertionError(f"agent exited before {name!r}; got {self.raw}")
                self.raw.append(line.decode())
                data: dict[str, Any] = json.loads(line)
                self.lines.append(data)
                if data["event"] == name:
                    return data

    async def finish(self) -> int:
        assert self.process.stdout is not None
        async with asyncio.timeout(WAIT):
            rest = await self.process.stdout.read()
            code = await self.process.wait()
        for line in rest.decode().splitlines():
            self.raw.append(line)
            self.lines.append(json.loads(line))
        return code

    def names(self) -> list[str]:
        return [d["event"] for d in self.lines]


@pytest.fixture
async def agent_runner(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    processes: list[asyncio.subprocess.Process] = []

    async def run(*args: str, password: str = shared.PASSWORD, stdin: bool = False) -> Agent:
        env = dict(os.environ, **{PASSWORD_ENV: password})
        env["PYTHONPATH"] = str(ROOT)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "softphone.agent",
            *args,
            "--pin-store",
            str(tmp_path / "pins.json"),
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        processes.append(process)
        return Agent(process)

    yield run
    for process in processes:
        if process.returncode is None:
            process.kill()  # only the agent this test started, by its own handle
            await process.wait()


async def test_registers_prints_json_and_exits_0(
    tmp_path: Path, lab: shared.Lab, registrar_factory: Any, agent_runner: Any
) -> None:
    reg, _ = await registrar_factory(lab.good)
    account = write_account(tmp_path, reg.tls_port, lab.ca_file)
    agent = await agent_runner("--account", str(account), "--exit-after", "registered")
    registered = await agent.next_event("registered")
    assert registered["expires"] > 0
    assert registered["registrar_fingerprint"] == reg.fingerprint
    assert registered["algorithm"] == "SHA-256" and registered["weak"] is False
    assert await agent.finish() == 0
    assert agent.names()[-1] == "unregistered"  # it leaves cleanly
    assert reg.bindings(f"sips:{shared.USER}@{shared.DOMAIN}") == []
    assert shared.PASSWORD not in "".join(agent.raw)
    assert "instance_id" in account.read_text()  # RFC 5626 §4.1: kept across runs


async def test_wrong_password_exits_1_after_exactly_two_registers(
    tmp_path: Path, lab: shared.Lab, registrar_factory: Any, agent_runner: Any
) -> None:
    reg, seen = await registrar_factory(lab.good)
    account = write_account(tmp_path, reg.tls_port, lab.ca_file)
    agent = await agent_runner("--account", str(account), password="not-the-password")
    failed = await agent.next_event("registration_failed")
    assert failed["retrying"] is False and failed["status_code"] == 401
    assert await agent.finish() == 1
    assert len(seen.registers) == 2
    assert "not-the-password" not in "".join(agent.raw)


async def test_untrusted_certificate_with_reject_prints_the_report_and_exits_1(
    tmp_path: Path, lab: shared.Lab, registrar_factory: Any, agent_runner: Any
) -> None:
    reg, seen = await registrar_factory(lab.wrongname)
    account = write_account(tmp_path, reg.tls_port, lab.ca_file)
    agent = await agent_runner("--account", str(account), "--on-untrusted", "reject")
    trust = await agent.next_event("trust_required")
    assert trust["identity"].endswith(shared.DOMAIN)
    assert [p["problem"] for p in trust["problems"]] == ["name-mismatch"]
    assert "wrong.test" in trust["problems"][0]["message"]
    assert trust["fingerprint"] == reg.fingerprint
    assert trust["chain_subjects"] and trust["changed"] is False
    assert await agent.finish() == 1
    assert agent.names() == ["trust_required", "registration_failed"]
    assert seen.items == []


async def test_ask_always_pins_and_next_run_registers_without_asking(
    tmp_path: Path, lab: shared.Lab, registrar_factory: Any, agent_runner: Any
) -> None:
    reg, seen = await registrar_factory(lab.selfsigned)
    account = write_account(tmp_path, reg.tls_port, None)
    agent = await agent_runner(
        "--account",
        str(account),
        "--on-untrusted",
        "ask",
        "--exit-after",
        "registered",
        stdin=True,
    )
    await agent.next_event("trust_required")
    assert seen.items == []  # the question is pending: no REGISTER yet
    assert agent.process.stdin is not None
    agent.process.stdin.write(b"always\n")
    await agent.process.stdin.drain()
    await agent.next_event("registered")
    assert await agent.finish() == 0
    assert len(load_pin_store(tmp_path / "pins.json")) == 1

    again = await agent_runner(
        "--account", str(account), "--on-untrusted", "reject", "--exit-after", "registered"
    )
    await again.next_event("registered")
    assert await again.finish() == 0
    assert "trust_required" not in again.names()


async def test_ask_defaults_to_no(
    tmp_path: Path, lab: shared.Lab, registrar_factory: Any, agent_runner: Any
) -> None:
    reg, seen = await registrar_factory(lab.selfsigned)
    account = write_account(tmp_path, reg.tls_port, None)
    agent = await agent_runner("--account", str(account), "--on-untrusted", "ask", stdin=True)
    await agent.next_event("trust_required")
    assert agent.process.stdin is not None
    agent.process.stdin.write(b"\n")  # just Enter
    await agent.process.stdin.drain()
    assert await agent.finish() == 1
    assert seen.items == []


async def test_sigterm_unregisters_and_exits_0(
    tmp_path: Path, lab: shared.Lab, registrar_factory: Any, agent_runner: Any
) -> None:
    reg, seen = await registrar_factory(lab.good)
    account = write_account(tmp_path, reg.tls_port, lab.ca_file)
    agent = await agent_runner("--account", str(account))
    await agent.next_event("registered")
    assert len(reg.bindings(f"sips:{shared.USER}@{shared.DOMAIN}")) == 1
    agent.process.send_signal(signal.SIGTERM)
    assert await agent.finish() == 0
    assert agent.names()[-1] == "unregistered"
    assert reg.bindings(f"sips:{shared.USER}@{shared.DOMAIN}") == []
    assert seen.registers[-1].headers.get("Expires") == "0"


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == EXIT_USAGE  # --account is required
    assert main(["--account", str(tmp_path / "missing.toml")]) == EXIT_USAGE
    bad = tmp_path / "bad.toml"
    bad.write_text('aor = "sips:alice@example.test"\nsrtpp = "off"\n')
    assert main(["--account", str(bad)]) == EXIT_USAGE
    assert main(["--account", str(bad), "--on-untrusted", "sure"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "did you mean" in err and "--on-untrusted" in err


async def test_call_that_cannot_be_placed_prints_ended_and_exits_1(
    tmp_path: Path, lab: shared.Lab, registrar_factory: Any, agent_runner: Any
) -> None:
    reg, _ = await registrar_factory(lab.good)
    account = write_account(tmp_path, reg.tls_port, lab.ca_file)
    agent = await agent_runner("--account", str(account), "--call", "tel:123")
    await agent.next_event("registered")
    ended = await agent.next_event("call_state")
    assert ended["state"] == "ended" and ended["direction"] == "outgoing"
    assert ended["peer"] == "tel:123" and "not an address we can call" in ended["reason"]
    assert await agent.finish() == 1
    assert agent.names()[-1] == "unregistered"  # it still leaves cleanly
    assert reg.bindings(f"sips:{shared.USER}@{shared.DOMAIN}") == []


def test_call_options_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    account = write_account(tmp_path, 5061, None)
    base = ["--account", str(account)]
    assert main([*base, "--call", "bob", "--exit-after", "registered"]) == EXIT_USAGE
    assert main([*base, "--hangup-after", "0"]) == EXIT_USAGE
    assert main([*base, "--hangup-after", "soon"]) == EXIT_USAGE
    assert main([*base, "--stats-interval", "-1"]) == EXIT_USAGE
    assert main([*base, "--exit-after", "call-started"]) == EXIT_USAGE
    assert main([*base, "--play", str(tmp_path / "missing.wav")]) == EXIT_USAGE
    not_wav = tmp_path / "not.wav"
    not_wav.write_text("hello")
    assert main([*base, "--play", str(not_wav)]) == EXIT_USAGE
    assert main([*base, "--record", str(tmp_path / "no" / "such" / "dir.wav")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--call cannot be used with --exit-after registered" in err
    assert "cannot use the WAV file" in err


def test_help_describes_the_call_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for option in ("--call", "--auto-answer", "--play", "--record", "--hangup-after"):
        assert option in out
    assert "default: silence" in out
    assert "call-ended" in out


def test_dtmf_hold_and_keying_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    account = write_account(tmp_path, 5061, None)
    base = ["--account", str(account)]
    assert main([*base, "--dtmf", "12x"]) == EXIT_USAGE
    assert main([*base, "--dtmf", ""]) == EXIT_USAGE
    assert main([*base, "--dtmf-after", "-1"]) == EXIT_USAGE
    assert main([*base, "--resume-after", "2"]) == EXIT_USAGE
    assert main([*base, "--hold-after", "later"]) == EXIT_USAGE
    assert main([*base, "--keying", "zrtp"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "DTMF digits are 0-9 * # A-D, not '12x'" in err
    assert "--resume-after needs --hold-after" in err
    assert main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for option in ("--dtmf", "--dtmf-after", "--hold-after", "--resume-after", "--keying"):
        assert option in out
