"""``softphone doctor`` against our own registrar (real TLS on loopback), good and wrong-name
certificates, an unreachable one, and the machine checks (keyring, audio, CA store)."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import types
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from softphone import doctor
from softphone.security.certificates import fingerprint_groups
from softphone.server.config import ListenAddress, RegistrarConfig
from softphone.server.registrar import Registrar, running_registrar
from softphone.ua.secrets import SERVICE
from tests.keyrings import InMemoryKeyring, PlaintextKeyring
from tests.transport import certs

PASSWORD = "doctor-secret-7"
DOMAIN = "example.test"


@pytest.fixture(scope="module")
def ca() -> certs.Identity:
    return certs.make_ca("Doctor Test CA")


@pytest.fixture
def ca_file(tmp_path: Path, ca: certs.Identity) -> Path:
    path = tmp_path / "ca.pem"
    path.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    return path


RegistrarFactory = Callable[[certs.Identity], Any]


@pytest.fixture
async def start_registrar() -> AsyncIterator[Callable[..., Any]]:
    """``await start(identity)`` → a running registrar for example.test (TLS and TCP)."""
    running: list[Any] = []

    async def start(identity: certs.Identity) -> Registrar:
        config = RegistrarConfig(
            domain=DOMAIN,
            users={"alice": PASSWORD},
            listen=(ListenAddress("127.0.0.1", 0, "tls"), ListenAddress("127.0.0.1", 0, "tcp")),
            certificate_chain=identity.chain,
            private_key=identity.key,
        )
        manager = running_registrar(config)
        registrar = await manager.__aenter__()
        running.append(manager)
        return registrar

    yield start
    for manager in reversed(running):
        await manager.__aexit__(None, None, None)


def write_account(folder: Path, port: int, ca_file: Path | None, **extra: str) -> Path:
    lines = [
        f'aor = "sips:alice@{DOMAIN}"',
        f'registrar = "sips:{DOMAIN}:{port}"',
        f'resolve = ["{DOMAIN}:{port}:127.0.0.1"]',
    ]
    if ca_file is not None:
        lines.append(f'ca_file = "{ca_file}"')
    lines += [f'{key} = "{value}"' for key, value in extra.items()]
    path = folder / "alice.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def run_doctor(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = await doctor.amain(list(argv), out=out)
    return status, out.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stored(keyring: InMemoryKeyring) -> InMemoryKeyring:
    keyring.set_password(SERVICE, f"sips:alice@{DOMAIN}", PASSWORD)
    return keyring


# --- the registrar --------------------------------------------------------------------------


async def test_good_registrar_is_all_ok_with_its_fingerprint(
    start_registrar: Callable[..., Any],
    ca: certs.Identity,
    ca_file: Path,
    tmp_path: Path,
    memory_keyring: InMemoryKeyring,
) -> None:
    stored(memory_keyring)
    registrar = await start_registrar(certs.issue(ca, DOMAIN))
    account = write_account(tmp_path, registrar.tls_port, ca_file)
    status, out = await run_doctor(
        "--account", str(account), "--pin-store", str(tmp_path / "pins.json"),
        "--only", "account", "--only", "keyring", "--only", "ca",
    )  # fmt: skip
    assert status == 0, out
    assert "PROBLEM" not in out
    assert f"OK       Registrar connection: TLS 127.0.0.1:{registrar.tls_port}" in out
    assert "OK       Registrar certificate: The certificate is valid for example.test" in out
    assert registrar.fingerprint is not None
    groups = fingerprint_groups(bytes.fromhex(registrar.fingerprint.replace(":", "")))
    assert groups in out
    assert "OK       Password: found for sips:alice@example.test in the keyring" in out
    assert PASSWORD not in out
    assert out.rstrip().endswith("Everything checked is OK.")


async def test_wrong_name_certificate_is_a_problem_with_what_to_do(
    start_registrar: Callable[..., Any],
    ca: certs.Identity,
    ca_file: Path,
    tmp_path: Path,
    memory_keyring: InMemoryKeyring,
) -> None:
    stored(memory_keyring)
    registrar = await start_registrar(certs.issue(ca, "wrong.test"))
    account = write_account(tmp_path, registrar.tls_port, ca_file)
    status, out = await run_doctor(
        "--account", str(account), "--pin-store", str(tmp_path / "pins.json"),
        "--only", "account",
    )  # fmt: skip
    assert status == 1
    line = next(x for x in out.splitlines() if "Registrar certificate" in x)
    assert line.startswith("PROBLEM  Registrar certificate: This may not be example.test's")
    assert "wrong.test" in line
    assert registrar.fingerprint is not None
    assert fingerprint_groups(bytes.fromhex(registrar.fingerprint.replace(":", ""))) in line
    assert "What to do: if your provider confirms this fingerprint" in out
    assert out.rstrip().endswith("1 problem(s) found.")


async def test_unknown_ca_says_the_account_names_no_ca_file(
    start_registrar: Callable[..., Any], ca: certs.Identity, tmp_path: Path
) -> None:
    registrar = await start_registrar(certs.issue(ca, DOMAIN))
    account = write_account(tmp_path, registrar.tls_port, None)
    status, out = await run_doctor(
        "--account", str(account), "--pin-store", str(tmp_path / "pins.json"), "--only", "account"
    )
    assert status == 1
    assert "PROBLEM  Registrar certificate:" in out
    assert "(the account names no ca_file)" in out


async def test_unreachable_registrar_is_a_problem(tmp_path: Path, ca_file: Path) -> None:
    port = free_port()
    account = write_account(tmp_path, port, ca_file)
    status, out = await run_doctor(
        "--account", str(account), "--pin-store", str(tmp_path / "pins.json"),
        "--only", "account", "--timeout", "5",
    )  # fmt: skip
    assert status == 1
    assert f"OK       Registrar address: sips:example.test:{port} → TLS 127.0.0.1:{port}" in out
    assert (
        f"PROBLEM  Registrar connection: no registrar address answered: TLS 127.0.0.1:{port}" in out
    )
    assert "connection refused" in out
    assert "no firewall blocks the port" in out


async def test_unresolvable_registrar_is_a_problem(tmp_path: Path) -> None:
    account = tmp_path / "a.toml"
    # A nameserver that does not exist: the look-up fails, within the timeout.
    account.write_text(
        'aor = "sips:alice@nowhere.test"\nnameserver = ["127.0.0.1:9"]\n', encoding="utf-8"
    )
    status, out = await run_doctor(
        "--account", str(account), "--pin-store", str(tmp_path / "pins.json"),
        "--only", "account", "--timeout", "3",
    )  # fmt: skip
    assert status == 1
    assert "PROBLEM  Registrar address: sips:nowhere.test could not be found" in out


async def test_broken_account_file_is_a_problem(tmp_path: Path) -> None:
    account = tmp_path / "a.toml"
    account.write_text('aor = "sips:alice@example.test"\nsrtpp = "off"\n', encoding="utf-8")
    status, out = await run_doctor("--account", str(account), "--only", "account")
    assert status == 1
    assert "PROBLEM  Account file:" in out and "srtpp" in out
    missing = tmp_path / "missing.toml"
    status, out = await run_doctor("--account", str(missing), "--only", "account")
    assert status == 1 and "PROBLEM  Account file:" in out


async def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert (await run_doctor("--only", "account"))[0] == 2
    assert (await run_doctor("--only", "nonsense"))[0] == 2
    assert (await run_doctor("--timeout", "0"))[0] == 2


# --- keyring --------------------------------------------------------------------------------


def test_no_keyring_is_a_problem(fail_keyring: object) -> None:
    (verdict,) = doctor.check_keyring()
    assert not verdict.ok
    assert "no secure keyring" in verdict.what and "password_env" in verdict.todo


def test_plaintext_keyring_is_refused(install_keyring: Callable[[Any], None]) -> None:
    install_keyring(PlaintextKeyring())
    (verdict,) = doctor.check_keyring()
    assert not verdict.ok
    assert "keeps passwords in a file" in verdict.what


def test_secure_keyring_without_the_password_is_a_problem(
    memory_keyring: InMemoryKeyring, tmp_path: Path
) -> None:
    from softphone.ua.account import load_account

    account = load_account(write_account(tmp_path, 5061, None))
    store, password = doctor.check_keyring(account)
    assert store.ok and not password.ok
    assert "No password for sips:alice@example.test" in password.what


def test_password_env_needs_no_keyring(fail_keyring: object, tmp_path: Path) -> None:
    from softphone.ua.account import load_account

    account = load_account(write_account(tmp_path, 5061, None, password_env="DOCTOR_PW"))
    verdicts = doctor.check_keyring(account, environ={"DOCTOR_PW": PASSWORD})
    assert [v.ok for v in verdicts] == [True, True]
    assert "environment variable DOCTOR_PW" in verdicts[1].what
    unset = doctor.check_keyring(account, environ={})
    assert not unset[-1].ok and "DOCTOR_PW is not set" in unset[-1].what
    assert all(PASSWORD not in v.render() for v in verdicts + unset)


# --- audio and CA store -----------------------------------------------------------------------


def test_audio_not_installed_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import raises ImportError
    verdict = doctor.check_audio()
    assert not verdict.ok
    assert "audio input/output is not installed" in verdict.what
    assert "libportaudio2" in verdict.todo


@pytest.mark.parametrize(
    ("devices", "ok", "words"),
    [
        ([{"max_input_channels": 1, "max_output_channels": 2}], True, "1 input and 1 output"),
        ([{"max_input_channels": 0, "max_output_channels": 2}], False, "no microphone"),
        ([], False, "no microphone and no speaker"),
    ],
)
def test_audio_devices_are_counted(
    monkeypatch: pytest.MonkeyPatch, devices: list[dict[str, int]], ok: bool, words: str
) -> None:
    # PortAudio's device list as sounddevice gives it (no sound server on a test machine).
    fake = types.ModuleType("sounddevice")
    fake.query_devices = lambda: devices  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    verdict = doctor.check_audio()
    assert verdict.ok is ok
    assert words in verdict.what


def test_ca_store_missing_is_a_problem(tmp_path: Path) -> None:
    verdict = doctor.check_ca_store(tmp_path / "none.crt")
    assert not verdict.ok and "ca-certificates" in verdict.todo


def test_ca_store_read(tmp_path: Path, ca: certs.Identity) -> None:
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    verdict = doctor.check_ca_store(bundle)
    assert verdict.ok and "1 certificate authorities" in verdict.what


# --- the command ------------------------------------------------------------------------------


def test_doctor_is_a_subcommand_of_the_installed_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "softphone.cli", "doctor", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--account" in result.stdout and "--only" in result.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "softphone.cli", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert "doctor" in listed.stdout


def test_doctor_exits_1_on_a_problem_as_a_process(tmp_path: Path) -> None:
    account = tmp_path / "a.toml"
    account.write_text("aor = 1\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "softphone.cli", "doctor", "--account", str(account),
         "--only", "account"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout.startswith("PROBLEM  Account file:")
