"""``softphone agent --call sipsec:...`` as a real process (draft-gurbani-sip-sipsec-01 §6.4):
alice is the agent, bob a UserAgent in the test's event loop, both behind the scriptable
sipsec proxy (tests/ua/sipsec_proxy.py). The agent's identity lives in its identity store
(XDG_DATA_HOME in tmp_path) with the passphrase in a read-only test keyring."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import keyring
import pytest

from softphone.identity_store import IDENTITY_SERVICE, IdentityStore
from softphone.security.identity import new_identity
from softphone.security.trust import TrustDecision
from softphone.ua.call import CallError, CallPhase
from softphone.ua.events import PeerIdentity
from tests.keyrings import InMemoryKeyring
from tests.ua.sipsec_proxy import PROXY_DOMAIN, SipsecProxy
from tests.ua.test_agent import ROOT, Agent
from tests.ua.test_sipsec import WAIT, Lab, lab, party, proxy, wait_until

__all__ = ["lab", "party", "proxy"]  # fixtures shared with test_sipsec.py

import asyncio  # after the fixture re-exports, kept together for readability


@pytest.fixture
async def sipsec_agent(
    tmp_path: Path, lab: Lab, memory_keyring: InMemoryKeyring, proxy: SipsecProxy
) -> AsyncIterator[Callable[..., Any]]:
    """``await run(*args)`` → an agent for alice@atlanta.test with a stored identity."""
    data_home = tmp_path / "data"
    store = IdentityStore(data_home / "softphone" / "identity")
    store.save(new_identity("sip:alice@atlanta.test", now=dt.datetime.now(dt.UTC)))
    passphrase = keyring.get_password(IDENTITY_SERVICE, "sip:alice@atlanta.test")
    assert passphrase
    account = tmp_path / "alice.toml"
    account.write_text(
        "\n".join(
            [
                'aor = "sips:alice@atlanta.test"',
                f'registrar = "sips:{PROXY_DOMAIN}:{proxy.port}"',
                f'resolve = ["{PROXY_DOMAIN}:{proxy.port}:127.0.0.1"]',
                'password_env = "SOFTPHONE_TEST_PASSWORD"',
                f'ca_file = "{lab.ca_file}"',
                "sipsec_handshake_timeout = 2",
            ]
        )
        + "\n"
    )
    processes: list[asyncio.subprocess.Process] = []

    async def run(*args: str, stdin: int = asyncio.subprocess.DEVNULL) -> Agent:
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            XDG_DATA_HOME=str(data_home),
            SOFTPHONE_TEST_PASSWORD="unused",
            PYTHON_KEYRING_BACKEND="tests.ua.sipsec_proxy.EnvKeyring",
            SOFTPHONE_TEST_KEYRING=json.dumps(
                {f"{IDENTITY_SERVICE}|sip:alice@atlanta.test": passphrase}
            ),
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "softphone.agent",
            "--account",
            str(account),
            "--pin-store",
            str(tmp_path / "agent-pins.json"),
            *args,
            stdin=stdin,
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


async def test_agent_places_a_sipsec_call_and_prints_the_tunnel_and_identity(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab, sipsec_agent: Any
) -> None:
    bob = await party("bob@biloxi.test", lab.bob, TrustDecision.ACCEPT_ONCE)
    agent = await sipsec_agent(
        "--call", "sipsec:bob@biloxi.test", "--hangup-after", "1", "--on-untrusted", "accept-once"
    )
    identity = await agent.next_event("peer_identity")
    assert identity["peer_aor"] == "sip:bob@biloxi.test"
    assert identity["identity_state"] == "claimed"
    assert len(identity["safety_number"].split(" ")) == 12
    started = await agent.next_event("media_started")
    assert started["signalling"] == "Encrypted end to end; servers only see that a call was set up"
    assert started["audio"] == "Audio encrypted end to end"
    assert await agent.finish() == 0
    states = [d["state"] for d in agent.lines if d["event"] == "tunnel_state"]
    assert states[:3] == ["connecting", "tunnel-open", "verified"]
    await wait_until(lambda: bool(bob.incoming), "bob's call")
    assert bob.incoming[0].peer == "sipsec:alice@atlanta.test"
    await asyncio.wait_for(asyncio.shield(bob.incoming[0].ended), WAIT)
    assert bob.incoming[0].phase is CallPhase.ENDED
    b_id = bob.events.of("peer_identity")[0]
    assert isinstance(b_id, PeerIdentity) and b_id.safety_number == identity["safety_number"]
    assert b"INVITE" not in bytes(proxy.tunnel_bytes)


async def test_agent_explains_a_proxy_without_sipsec_and_exits_1(
    proxy: SipsecProxy, sipsec_agent: Any
) -> None:
    proxy.mode = "answer:420"
    agent = await sipsec_agent("--call", "sipsec:bob@biloxi.test")
    ended = await agent.next_event("call_state")
    assert ended["state"] == "ended"
    assert "does not support end-to-end (sipsec) calls (420" in ended["reason"]
    assert "--fallback-sips" in ended["reason"]
    assert await agent.finish() == 1
    failed = [d for d in agent.lines if d["event"] == "tunnel_state"][-1]
    assert failed["state"] == "failed"


async def test_agent_sipsec_policy_ask_without_a_terminal_declines_and_says_why(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab, sipsec_agent: Any
) -> None:
    agent = await sipsec_agent("--sipsec-policy", "ask", "--auto-answer")
    await agent.next_event("registered")
    bob = await party("bob@biloxi.test", lab.bob, TrustDecision.ACCEPT_ONCE)
    with pytest.raises(CallError) as refused:
        await bob.ua.call("sipsec:alice@atlanta.test")
    assert "603" in refused.value.reason or "declined" in refused.value.reason
    failed = await agent.next_event("tunnel_state")
    while failed["state"] != "failed":
        failed = await agent.next_event("tunnel_state")
    assert failed["reason"] == "declined an end-to-end call (by us)"
    agent.process.terminate()  # the agent this test started, by its own handle
    assert await agent.finish() == 0
    assert agent.process.stderr is not None
    stderr = (await agent.process.stderr.read()).decode()
    assert "needs a terminal to ask on" in stderr


async def test_agent_sipsec_policy_ask_on_a_terminal_asks_and_yes_takes_the_call(
    party: Callable[..., Any], proxy: SipsecProxy, lab: Lab, sipsec_agent: Any
) -> None:
    controller, terminal = os.openpty()  # the agent's stdin is a terminal: it may ask
    try:
        agent = await sipsec_agent(
            "--sipsec-policy",
            "ask",
            "--auto-answer",
            "--on-untrusted",
            "accept-once",
            "--exit-after",
            "call-ended",
            stdin=terminal,
        )
        await agent.next_event("registered")
        bob = await party("bob@biloxi.test", lab.bob, TrustDecision.ACCEPT_ONCE)
        calling = asyncio.ensure_future(bob.ua.call("sipsec:alice@atlanta.test"))
        connecting = await agent.next_event("tunnel_state")
        assert connecting["state"] == "connecting"
        os.write(controller, b"y\n")  # the person answers the question on the terminal
        call = await asyncio.wait_for(calling, WAIT)
        await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
        identity = await agent.next_event("peer_identity")
        assert identity["peer_aor"] == "sip:bob@biloxi.test"
        assert identity["ledger_state"] == "claimed" and identity["fingerprint"]
        await call.hangup()
        assert await agent.finish() == 0
        assert agent.process.stderr is not None
        stderr = (await agent.process.stderr.read()).decode()
        assert "An end-to-end (sipsec) call is coming in" in stderr
    finally:
        os.close(controller)
        os.close(terminal)
