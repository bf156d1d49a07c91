"""Sound-card audio in calls (softphone.ua.sound) and the agent's device flags.

Real parts: two UserAgents registered with our registrar/proxy over loopback TLS, SRTP media
on UDP, and PortAudio talking to a private headless PulseAudio (the ``pulse`` fixture of
tests/media/test_devices.py: one null sink whose monitor is the default source). Bob's phone
uses the sound card: what Alice sends is played into the null sink, comes back from its
monitor as Bob's microphone, and is sent back to Alice, who hears her own tone: the only way
it can reach her is through Bob's devices. Without pulseaudio the fixture calls
``require_peer`` (skips locally, fails under CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from softphone.agent import EXIT_OK, EXIT_USAGE, _audio_devices, build_parser, main
from softphone.media import devices as sound_devices
from softphone.media.devices import DeviceSink, DeviceSource
from softphone.media.tone import ToneSource
from softphone.server.config import RegistrarConfig
from softphone.server.registrar import running_registrar
from softphone.ua.account import Account, ResolveEntry
from softphone.ua.call import Call, CallPhase
from softphone.ua.events import CallState, Event
from softphone.ua.sound import FROM_ACCOUNT, AudioDevices, FromAccount, device_spec
from softphone.ua.useragent import UserAgent
from tests.interop.helpers import Recorder, heard
from tests.media import test_devices
from tests.transport import certs

pulse = test_devices.pulse

DOMAIN = "sound.test"
PASSWORDS = {"alice": "alice-sound-secret", "bob": "bob-sound-secret"}
WAIT = 30.0


@contextlib.asynccontextmanager
async def network(
    tmp: Path,
    bob_devices: AudioDevices | FromAccount | None,
    bob_account: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[UserAgent, UserAgent, list[Call], list[Event]]]:
    """Our registrar/proxy and two registered phones; Bob answers at once with the sound card
    ``bob_devices`` (FROM_ACCOUNT: the UserAgent is not given any; ``bob_account`` has more
    Account fields for Bob). Yields (alice, bob, bob's calls, bob's events)."""
    ca = certs.make_ca("Sound Test CA")
    leaf = certs.issue(ca, DOMAIN)
    ca_file = tmp / "ca.pem"
    ca_file.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    config = RegistrarConfig(
        domain=DOMAIN, users=PASSWORDS, certificate_chain=leaf.chain, private_key=leaf.key
    )
    bob_calls: list[Call] = []
    bob_events: list[Event] = []
    async with running_registrar(config) as registrar, contextlib.AsyncExitStack() as stack:
        phones = []
        for user in ("alice", "bob"):
            account = Account(
                aor=f"sips:{user}@{DOMAIN}",
                registrar=f"sips:{DOMAIN}:{registrar.tls_port}",
                resolve=(ResolveEntry(DOMAIN, registrar.tls_port, "127.0.0.1"),),
                ca_file=ca_file,
                **((bob_account or {}) if user == "bob" else {}),
            )
            options: dict[str, Any] = {}
            if user == "bob":
                options = {
                    "on_incoming_call": bob_calls.append,
                    "auto_answer": True,
                    "on_event": bob_events.append,
                }
                if bob_devices is not FROM_ACCOUNT:
                    options["audio_devices"] = bob_devices
            ua = UserAgent(
                account,
                password=PASSWORDS[user],
                pin_store_path=tmp / f"pins-{user}.json",
                anchors=(ca.cert,),
                **options,
            )
            stack.push_async_callback(ua.close)
            await ua.register()
            phones.append(ua)
        yield phones[0], phones[1], bob_calls, bob_events


async def wait_until(condition: Any, what: str) -> None:
    try:
        async with asyncio.timeout(WAIT):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def echo_call(
    alice: UserAgent, bob_calls: list[Call], hz: float
) -> tuple[Call, Call, DeviceSource, DeviceSink, Recorder]:
    """alice calls bob with an ``hz`` tone; bob (auto-answering through the null sink's
    ``pulse`` devices) sends it back: alice's call, bob's, his mic and speaker, what she heard."""
    heard_by_alice = Recorder()
    call = await alice.call(f"sips:bob@{DOMAIN}", source=ToneSource(hz), sink=heard_by_alice)
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await wait_until(lambda: bool(bob_calls), "bob's call")
    bob_call = bob_calls[0]
    await bob_call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    mic, speaker = bob_call.source, bob_call.sink
    assert isinstance(mic, DeviceSource) and isinstance(speaker, DeviceSink)
    assert mic.device.name == "pulse" and speaker.device.name == "pulse"
    # alice's tone went out of bob's speaker, into his microphone, and back to her.
    await wait_until(lambda: heard_by_alice.loud_frames() > 25, "alice hearing the echo")
    assert abs(heard(heard_by_alice) - hz) <= 20
    return call, bob_call, mic, speaker, heard_by_alice


async def test_a_call_through_the_sound_card_echoes_back(pulse: Path, tmp_path: Path) -> None:
    async with network(tmp_path, ("pulse", "pulse")) as (alice, _, bob_calls, _):
        call, bob_call, mic, speaker, _heard = await echo_call(alice, bob_calls, 1000)
        assert speaker.counters.frames > 0 and mic.counters.frames > 0
        stops: list[str] = []
        for device in (mic, speaker):
            stream = device._stream
            assert stream is not None
            original = stream.stop

            def stop(_original: Any = original) -> None:
                stops.append(threading.current_thread().name)
                _original()

            stream.stop = stop
        await call.hangup()
        await asyncio.wait_for(asyncio.shield(bob_call.ended), WAIT)
        assert mic.closed and speaker.closed  # released with the call
        assert sound_devices.wait_closed()
        # PortAudio's stop() drains the buffers (as long as the sound server takes): in
        # a thread of its own, never on the event loop (the window's, in the desktop phone).
        assert stops == ["sound-close", "sound-close"]


async def test_a_phone_uses_the_devices_its_account_names(pulse: Path, tmp_path: Path) -> None:
    """Settings saves input_device/output_device; a UserAgent built from that account (as
    the GUI builds it, without audio_devices=) opens them for its calls."""
    devices = {"input_device": "pulse", "output_device": "pulse"}
    async with network(tmp_path, FROM_ACCOUNT, devices) as (alice, bob, bob_calls, _):
        assert bob.audio_devices == ("pulse", "pulse")
        call, bob_call, mic, speaker, _heard = await echo_call(alice, bob_calls, 700)
        # Devices changed in Settings (a new account) apply to the next call, not this one.
        bob.account = dataclasses.replace(bob.account, input_device=None, output_device=None)
        assert bob.audio_devices is None
        assert bob_call.source is mic and not mic.closed
        await call.hangup()
        await asyncio.wait_for(asyncio.shield(bob_call.ended), WAIT)
        assert mic.closed and speaker.closed
        second = await alice.call(f"sips:bob@{DOMAIN}", source=ToneSource(700), sink=Recorder())
        await second.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
        await wait_until(lambda: len(bob_calls) == 2, "bob's second call")
        await bob_calls[1].wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
        assert not isinstance(bob_calls[1].source, DeviceSource)
        assert not isinstance(bob_calls[1].sink, DeviceSink)
        await second.hangup()


async def test_an_explicit_source_and_sink_win_over_the_sound_card(
    pulse: Path, tmp_path: Path
) -> None:
    async with network(tmp_path, None) as (alice, _, _, _):
        alice.audio_devices = ("pulse", "pulse")
        tone, recorder = ToneSource(440), Recorder()
        call = await alice.call(f"sips:bob@{DOMAIN}", source=tone, sink=recorder)
        await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
        assert call.source is tone and call.sink is recorder
        await call.hangup()


async def test_a_device_that_does_not_exist_ends_the_call_with_the_reason(
    tmp_path: Path,
) -> None:
    # No sound server needed: with or without PortAudio devices this name matches nothing.
    async with network(tmp_path, ("no-such-card-h13", None)) as (alice, bob, bob_calls, events):
        call = await alice.call(f"sips:bob@{DOMAIN}")
        await asyncio.wait_for(asyncio.shield(call.ended), WAIT)
        await wait_until(lambda: bool(bob_calls), "bob's call")
        bob_call = bob_calls[0]
        await asyncio.wait_for(asyncio.shield(bob_call.ended), WAIT)
        assert bob_call.reason.startswith("the sound card could not be used: "), bob_call.reason
        assert "no-such-card-h13" in bob_call.reason or "no audio input device" in bob_call.reason
        ended = [e for e in events if isinstance(e, CallState) and e.state == "ended"]
        assert [e.reason for e in ended] == [bob_call.reason]
        assert call.reason == "the other side hung up"
        # Bob's phone keeps working: without the broken device the next call is answered.
        bob.audio_devices = None
        again = await alice.call(f"sips:bob@{DOMAIN}")
        await again.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
        await again.hangup()


# -- the agent's flags --------------------------------------------------------------------------


def test_list_devices_prints_one_json_object_per_device(
    pulse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--list-devices"]) == EXIT_OK
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines and all(line["event"] == "audio_device" for line in lines)
    names = [line["name"] for line in lines]
    assert "pulse" in names
    assert {"index", "host_api", "max_input_channels", "max_output_channels"} <= set(lines[0])


def test_list_devices_runs_without_an_account(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--list-devices"])
    out, err = capsys.readouterr()
    # 0 with the devices there are (none without a sound server), 1 without PortAudio.
    assert code == EXIT_OK or "PortAudio" in err, err
    for line in out.splitlines():
        assert json.loads(line)["event"] == "audio_device"


def test_an_unknown_device_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    account = tmp_path / "alice.toml"
    account.write_text('aor = "sips:alice@sound.test"\nregistrar = "sips:sound.test"\n')
    code = main(["--account", str(account), "--output-device", "no-such-card-h13"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "cannot use the sound card" in err
    assert "no-such-card-h13" in err or "no audio output device" in err or "PortAudio" in err


def test_play_and_record_win_over_the_devices() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["--account", "a.toml", "--input-device", "mic", "--output-device", "2"]
    )
    assert _audio_devices(args) == ("mic", "2")
    args = parser.parse_args(
        ["--account", "a.toml", "--input-device", "mic", "--play", "x.wav", "--output-device", "2"]
    )
    assert _audio_devices(args) == (None, "2")
    args = parser.parse_args(["--account", "a.toml", "--output-device", "2", "--record", "y.wav"])
    assert _audio_devices(args) is None
    assert _audio_devices(parser.parse_args(["--account", "a.toml"])) is None
    assert device_spec(" Default ") is None and device_spec(" pulse ") == "pulse"


def test_the_device_flags_override_the_accounts() -> None:
    parser = build_parser()
    account = Account(aor="sips:alice@sound.test", input_device="Headset", output_device="hdmi")
    only_out = Account(aor="sips:alice@sound.test", output_device="hdmi")

    def devices(argv: list[str], acct: Account | None = account) -> AudioDevices | None:
        return _audio_devices(parser.parse_args(["--account", "a.toml", *argv]), acct)

    assert devices([]) == ("Headset", "hdmi")
    assert devices([], only_out) == ("default", "hdmi")  # the one left out: system default
    assert devices([], Account(aor="sips:alice@sound.test")) is None
    assert devices(["--input-device", "mic"]) == ("mic", "hdmi")
    assert devices(["--output-device", "2"]) == ("Headset", "2")
    assert devices(["--input-device", "mic", "--output-device", "2"]) == ("mic", "2")
    assert devices(["--play", "x.wav"]) == (None, "hdmi")
    assert devices(["--record", "y.wav", "--output-device", "2"]) == ("Headset", None)
    assert devices(["--play", "x.wav", "--record", "y.wav"]) is None


def test_an_account_device_that_does_not_exist_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    account = tmp_path / "alice.toml"
    account.write_text(
        'aor = "sips:alice@sound.test"\nregistrar = "sips:sound.test"\n'
        'output_device = "no-such-card-s11a"\n'
    )
    code = main(["--account", str(account)])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "cannot use the sound card (the account's input_device/output_device" in err
    assert "no-such-card-s11a" in err or "no audio output device" in err or "PortAudio" in err
