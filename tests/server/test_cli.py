"""``softphone proxy`` (softphone.server.cli:main) as a real process, and the config files."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from softphone.security.certificates import fingerprint_hex
from softphone.server.cli import main
from softphone.server.config import ConfigError, ListenAddress, RegistrarConfig, load_users
from softphone.sip.digest import Algorithm, compute_ha1
from tests.server.client import WAIT, RawClient
from tests.transport.certs import Identity

ROOT = Path(__file__).resolve().parents[2]


def write_files(tmp_path: Path, identity: Identity) -> tuple[Path, Path, Path]:
    cert = tmp_path / "cert.pem"
    key = tmp_path / "key.pem"
    users = tmp_path / "users.toml"
    cert.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in identity.chain))
    key.write_bytes(
        identity.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    users.write_text('[users]\nalice = "alice-secret"\n', encoding="utf-8")
    return cert, key, users


async def test_proxy_prints_json_serves_and_stops_on_sigterm(
    tmp_path: Path, identity: Identity
) -> None:
    cert, key, users = write_files(tmp_path, identity)
    argv = [
        "--domain", "example.test", "--listen", "127.0.0.1:0", "--listen", "tcp:127.0.0.1:0",
        "--cert", str(cert), "--key", str(key), "--users", str(users),
    ]  # fmt: skip
    code = f"import sys; from softphone.server.cli import main; sys.exit(main({argv!r}))"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = json.loads(await asyncio.wait_for(process.stdout.readline(), WAIT))
        assert line["event"] == "listening"
        assert line["fingerprint_sha256"] == fingerprint_hex(identity.cert)
        assert {entry["transport"] for entry in line["listen"]} == {"tls", "tcp"}
        client = await RawClient.connect_tls(
            line["tls_port"], user="alice", password="alice-secret"
        )
        assert (await client.register()).status_code == 200
        client.close()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), WAIT) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_bad_configuration_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    users = tmp_path / "users.toml"
    users.write_text("[people]\n", encoding="utf-8")
    assert main(["--domain", "example.test", "--users", str(users)]) == 2
    assert "no [users] table" in capsys.readouterr().err


def test_missing_certificate_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    users = tmp_path / "users.toml"
    users.write_text('[users]\nalice = "x"\n', encoding="utf-8")
    assert main(["--domain", "example.test", "--users", str(users), "--listen", "127.0.0.1:0"]) == 2
    assert "certificate" in capsys.readouterr().err


def test_users_file_with_ha1(tmp_path: Path) -> None:
    ha1 = compute_ha1(Algorithm.MD5, "bob", "example.test", "pw")
    path = tmp_path / "users.toml"
    path.write_text(f'[users]\nalice = "a"\n[users.bob]\nha1-md5 = "{ha1}"\n', encoding="utf-8")
    users = load_users(path)
    assert users["alice"].password == "a"
    assert users["bob"].ha1 == {"md5": ha1}
    assert "a" not in repr(users["alice"]).replace("alice", "").replace("ha1", "")
    store = RegistrarConfig(domain="example.test", users=users).credentials()
    assert store.ha1("bob", "example.test", Algorithm.MD5) == ha1
    assert store.ha1("bob", "example.test", Algorithm.SHA_256) is None


@pytest.mark.parametrize(
    "text",
    [
        "[users]\nbob = 3\n",
        '[users.bob]\nha1-md5 = "xyz"\n',
        '[users.bob]\ncolour = "red"\n',
        "[users",
    ],
)
def test_bad_users_files(tmp_path: Path, text: str) -> None:
    path = tmp_path / "users.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError):
        load_users(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5061", ListenAddress("127.0.0.1", 5061, "tls")),
        ("tcp:127.0.0.1:5060", ListenAddress("127.0.0.1", 5060, "tcp")),
        ("[::1]:5061", ListenAddress("::1", 5061, "tls")),
    ],
)
def test_listen_address(text: str, expected: ListenAddress) -> None:
    assert ListenAddress.parse(text) == expected


@pytest.mark.parametrize(
    "changes",
    [{"min_expires": 0}, {"min_expires": 600, "default_expires": 300}, {"domain": "a b"}],
)
def test_config_validation(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        RegistrarConfig(**{"domain": "example.test", **changes})  # type: ignore[arg-type]
