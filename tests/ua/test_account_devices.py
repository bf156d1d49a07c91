"""The account's sound devices (``input_device``/``output_device``): parsed, checked, saved and
read back, and what a UserAgent built from the account uses for its calls."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from softphone.ua.account import (
    Account,
    AccountError,
    load_account,
    parse_account,
    save_account,
)
from softphone.ua.useragent import UserAgent

AOR = 'aor = "sips:alice@example.com"\n'


def parse(text: str) -> Account:
    return parse_account(text, source="alice.toml", base_dir=Path("/nonexistent"))


def test_absent_devices_mean_no_sound_card_from_the_account() -> None:
    account = parse(AOR)
    assert account.input_device is None and account.output_device is None
    assert account.audio_devices is None


def test_devices_are_read_as_given() -> None:
    account = parse(AOR + 'input_device = "USB Headset: Mic (hw:1,0)"\noutput_device = "3"\n')
    assert account.input_device == "USB Headset: Mic (hw:1,0)"
    assert account.output_device == "3"
    assert account.audio_devices == ("USB Headset: Mic (hw:1,0)", "3")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('input_device = "pulse"\n', ("pulse", "default")),
        ('output_device = "pulse"\n', ("default", "pulse")),
        ('input_device = "default"\noutput_device = "default"\n', ("default", "default")),
    ],
)
def test_the_device_left_out_is_the_system_default(text: str, expected: tuple[str, str]) -> None:
    assert parse(AOR + text).audio_devices == expected


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (
            "input_device = 2\n",
            "input_device",
            "must be a string, not an integer",
        ),
        (
            'output_device = ""\n',
            "output_device",
            'must name a sound device (a name, part of one, an index or "default"), not be '
            "empty (leave the key out for no sound card)",
        ),
        (
            'input_device = "   "\n',
            "input_device",
            'must name a sound device (a name, part of one, an index or "default"), not be '
            "empty (leave the key out for no sound card)",
        ),
        (
            'output_device = "a\\nb"\n',
            "output_device",
            "must not contain control characters (such as a line break)",
        ),
        (
            'output_device = ["pulse"]\n',
            "output_device",
            "must be a string, not an array",
        ),
        (
            'input_devices = "pulse"\n',
            "input_devices",
            'unknown key (did you mean "input_device"?)',
        ),
        (
            'speaker = "pulse"\n',
            "speaker",
            None,  # unknown key: listed with every key, as before
        ),
    ],
)
def test_bad_devices_are_clear_account_errors(text: str, key: str, problem: str | None) -> None:
    with pytest.raises(AccountError) as info:
        parse(AOR + text)
    assert info.value.source == "alice.toml"
    assert info.value.key == key
    if problem is None:
        assert info.value.problem.startswith("unknown key; the keys are ")
        assert "input_device, output_device" in info.value.problem
    else:
        assert info.value.problem == problem


def test_an_account_built_in_code_is_checked_too() -> None:
    with pytest.raises(AccountError) as info:
        Account(aor="sips:alice@example.com", output_device="")
    assert info.value.key == "output_device"
    with pytest.raises(AccountError) as info:
        Account(aor="sips:alice@example.com", input_device=3)  # type: ignore[arg-type]
    assert info.value.key == "input_device"


def test_round_trip_keeps_the_devices(tmp_path: Path) -> None:
    path = tmp_path / "alice.toml"
    account = Account(
        aor="sips:alice@example.com",
        input_device='Mic "front" \\ (hw:1,0)',
        output_device="default",
    )
    save_account(path, account)
    text = path.read_text()
    assert tomllib.loads(text)["input_device"] == 'Mic "front" \\ (hw:1,0)'
    assert tomllib.loads(text)["output_device"] == "default"
    assert load_account(path) == account
    save_account(path, Account(aor="sips:alice@example.com"))
    assert "device" not in path.read_text()  # absent keys stay absent


# --- what a UserAgent makes of them ---------------------------------------------------------


def test_a_user_agent_without_audio_devices_uses_the_accounts(tmp_path: Path) -> None:
    account = Account(aor="sips:alice@example.com", input_device="pulse", output_device="2")
    ua = UserAgent(account, pin_store_path=tmp_path / "pins.json")
    assert ua.audio_devices == ("pulse", "2")
    # The account is read at each call: a new account (Settings saved) is used by the next.
    ua.account = Account(aor="sips:alice@example.com", output_device="Speakers")
    assert ua.audio_devices == ("default", "Speakers")
    ua.account = Account(aor="sips:alice@example.com")
    assert ua.audio_devices is None


def test_explicit_audio_devices_win_over_the_account(tmp_path: Path) -> None:
    account = Account(aor="sips:alice@example.com", input_device="pulse")
    ua = UserAgent(account, pin_store_path=tmp_path / "pins.json", audio_devices=("a", None))
    assert ua.audio_devices == ("a", None)
    off = UserAgent(account, pin_store_path=tmp_path / "pins2.json", audio_devices=None)
    assert off.audio_devices is None  # None given: no sound card, whatever the account says
    off.audio_devices = ("b", "c")
    assert off.audio_devices == ("b", "c")
