"""``softphone agent`` placing and answering a call: two agent processes through a real
Kamailio over TLS (tests/interop/kamailio.py), SRTP audio end to end on 127.0.0.1.

bob auto-answers and records; alice calls, plays a 1000 Hz tone from a WAV file and hangs up
after 3 s. Both leave on ``--exit-after call-ended`` with status 0; their JSON lines carry the
call's states, ``media_started`` (encrypted, with the SRTP suite) and the final
``media_statistics``; bob's recording holds alice's tone (Goertzel). Waits are bounded.
"""

from __future__ import annotations

import asyncio
import os
import sys
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from softphone.media.codecs import INTERNAL_RATE
from softphone.media.tone import ToneSource, dominant_frequency, goertzel_power, samples
from softphone.media.wav import read_wav_mono
from tests.interop.kamailio import DEFAULT_USERS, KamailioServer
from tests.ua.test_agent import Agent

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
PASSWORD_ENV = "SOFTPHONE_TEST_PASSWORD"
SUITES = {
    "AEAD_AES_256_GCM",
    "AEAD_AES_128_GCM",
    "AES_CM_128_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_32",
}


def write_account(directory: Path, server: KamailioServer, user: str) -> Path:
    """The account file of ``user`` on ``server`` (what tests/interop build as Account)."""
    lines = [
        f'aor = "sips:{user}@{server.domain}"',
        f'registrar = "sips:{server.domain}:{server.tls_port}"',
        f'resolve = ["{server.domain}:{server.tls_port}:127.0.0.1"]',
        f'password_env = "{PASSWORD_ENV}"',
        f'ca_file = "{server.ca_cert_path}"',
    ]
    path = directory / f"{user}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_tone(path: Path, frequency: float, seconds: float = 1.0) -> None:
    tone = ToneSource(frequency)
    frames = b"".join(tone.read() for _ in range(round(seconds / 0.02)))
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(INTERNAL_RATE)
        wav.writeframes(frames)


@pytest.fixture
async def agent_runner(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    processes: list[asyncio.subprocess.Process] = []

    async def run(user: str, *args: str) -> Agent:
        env = dict(os.environ, **{PASSWORD_ENV: DEFAULT_USERS[user]})
        env["PYTHONPATH"] = str(ROOT)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "softphone.agent",
            *args,
            "--pin-store",
            str(tmp_path / f"{user}-pins.json"),
            stdin=asyncio.subprocess.DEVNULL,
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
            process.kill()  # only the agents this test started, by their own handles
            await process.wait()


def of(agent: Agent, name: str) -> list[dict[str, Any]]:
    return [line for line in agent.lines if line["event"] == name]


def states(agent: Agent) -> list[str]:
    return [line["state"] for line in of(agent, "call_state")]


async def test_agent_calls_agent_through_kamailio_with_srtp_and_records_the_tone(
    tmp_path: Path,
    kamailio_factory: Callable[..., KamailioServer],
    agent_runner: Callable[..., Any],
) -> None:
    server = kamailio_factory()
    tone, recording = tmp_path / "tone.wav", tmp_path / "bob.wav"
    write_tone(tone, 1000)
    bob = await agent_runner(
        "bob",
        "--account",
        str(write_account(tmp_path, server, "bob")),
        "--auto-answer",
        "--record",
        str(recording),
        "--exit-after",
        "call-ended",
        "--stats-interval",
        "1",
    )
    await bob.next_event("registered")
    alice = await agent_runner(
        "alice",
        "--account",
        str(write_account(tmp_path, server, "alice")),
        "--call",
        f"sips:bob@{server.domain}",
        "--play",
        str(tone),
        "--hangup-after",
        "3",
        "--exit-after",
        "call-ended",
    )
    await alice.next_event("registered")
    assert await alice.finish() == 0, alice.raw
    assert await bob.finish() == 0, bob.raw

    assert states(alice) == ["calling", "ringing", "established", "ended"]
    assert states(bob) == ["calling", "ringing", "established", "ended"]
    assert of(alice, "call_state")[-1]["reason"] == "hung up"
    assert of(bob, "call_state")[-1]["reason"] == "the other side hung up"
    assert of(alice, "call_state")[0]["direction"] == "outgoing"
    assert of(bob, "call_state")[0]["direction"] == "incoming"
    for agent in (alice, bob):
        (started,) = of(agent, "media_started")
        assert started["encrypted"] is True and started["keying"] == "sdes"
        assert started["srtp_suite"] in SUITES
        final = of(agent, "media_statistics")[-1]
        assert final["final"] is True and final["encrypted"] is True
        assert final["srtp_suite"] == started["srtp_suite"]
        assert final["packets_sent"] > 25 and final["packets_received"] > 25
        assert not final["drops"].get("auth")
        # the final statistics come just before the call's end
        at = next(i for i, line in enumerate(agent.lines) if line is final)
        assert agent.lines[at + 1]["event"] == "call_state"
        assert agent.lines[at + 1]["state"] == "ended"
        assert agent.names()[-1] == "unregistered"
    assert any(not line["final"] for line in of(bob, "media_statistics"))  # every 1 s

    # Nothing secret: no password, and no SRTP key (no a=crypto inline: material at all).
    for agent, user in ((alice, "alice"), (bob, "bob")):
        text = "".join(agent.raw)
        assert DEFAULT_USERS[user] not in text
        assert "inline:" not in text
        fields = {name for line in agent.lines for name in line}
        assert not {f for f in fields if "key" in f or "secret" in f} - {"keying"}

    # bob's recording holds alice's tone.
    pcm, rate = read_wav_mono(recording)
    assert rate == INTERNAL_RATE
    audio = samples(pcm)
    assert len(audio) > 2 * rate  # about 3 s of call
    middle = audio[len(audio) // 2 - rate // 4 : len(audio) // 2 + rate // 4]
    freq, share = dominant_frequency(middle, range(200, 3600, 20))
    assert share > 0.3 and abs(freq - 1000) <= 20
    assert goertzel_power(middle, 1000) > 100 * goertzel_power(middle, 440)
