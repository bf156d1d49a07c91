"""softphone.logs: the rotating log file, and no secret in it (issue 8)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from softphone.logs import (
    LOG_FILE_NAME,
    RedactingFilter,
    default_log_dir,
    log_trace,
    redact,
    setup_logging,
)
from softphone.server.config import RegistrarConfig
from softphone.server.registrar import running_registrar
from softphone.sip.digest import parse_credentials
from softphone.sip.message import Request, Response
from softphone.ua.account import Account, ResolveEntry
from softphone.ua.trace import TraceEntry, first_line_of
from softphone.ua.useragent import UserAgent
from tests.transport import certs

PASSWORD = "correct-horse-battery-1"
RESPONSE = "6629fae49393a05397450978507c4ef1"
CNONCE = "0a4f113b"
SRTP_KEY = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
MIKEY = "AQAFgM0XflABAAAAAAAAAAAAAAsAyO"

REGISTER = (
    "REGISTER sips:example.test SIP/2.0\r\n"
    "Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK776asdhds\r\n"
    'Authorization: Digest username="alice", realm="example.test", nonce="dcd98b71",'
    ' uri="sips:example.test", response="' + RESPONSE + '", algorithm=SHA-256,'
    ' cnonce="' + CNONCE + '", qop=auth, nc=00000001\r\n'
    "Proxy-Authorization: Basic YWxpY2U6Y29ycmVjdC1ob3JzZQ==\r\n"
    "Content-Length: 0\r\n\r\n"
)
SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/SAVP 0\r\n"
    f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{SRTP_KEY}|2^20|1:32\r\n"
    f"a=key-mgmt:mikey {MIKEY}\r\n"
)


@pytest.fixture
def private_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def key_body(pem: str) -> list[str]:
    """The base64 lines of a PEM block: none of them may appear in a log."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


@pytest.fixture
def log_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "log"
    for name in ("softphone", "ui"):  # leave no handler on the shared loggers
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if getattr(handler, "_softphone_installed", False):
                logger.removeHandler(handler)
                handler.close()
        logger.setLevel(logging.NOTSET)


# --- redact() --------------------------------------------------------------------------------


def test_digest_authorization_keeps_what_helps_and_loses_response_and_cnonce() -> None:
    out = redact(REGISTER)
    assert RESPONSE not in out and CNONCE not in out
    assert 'username="alice"' in out and 'realm="example.test"' in out
    assert "YWxpY2U6Y29ycmVjdC1ob3JzZQ" not in out  # Basic: user:password in base64
    assert "Proxy-Authorization: Basic …redacted…" in out
    assert out.startswith("REGISTER sips:example.test SIP/2.0\r\nVia:")


def test_sdes_and_mikey_keys_are_removed_but_the_sdp_stays_readable() -> None:
    out = redact(SDP)
    assert SRTP_KEY not in out and MIKEY not in out
    assert "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:…redacted…|2^20|1:32" in out
    assert "m=audio 4000 RTP/SAVP 0" in out


@pytest.mark.parametrize(
    "text",
    [
        f"password={PASSWORD}",
        f"password = '{PASSWORD}'",
        f'{{"password": "{PASSWORD}", "user": "alice"}}',
        f"SOFTPHONE_PASSWORD={PASSWORD} softphone agent",
        f"login with Passphrase: {PASSWORD}",
        f"secret={PASSWORD}&next=1",
    ],
)
def test_password_values_are_removed(text: str) -> None:
    out = redact(text)
    assert PASSWORD not in out
    assert "…redacted…" in out


def test_words_that_only_mention_a_password_are_left_alone() -> None:
    text = "No password for sips:alice@example.test in the keyring; set password_env = X"
    assert redact(text).startswith("No password for sips:alice@example.test in the keyring")


def test_pem_private_key_complete_or_cut_off(private_key_pem: str) -> None:
    out = redact(f"loaded identity:\n{private_key_pem}and a certificate")
    assert not any(line in out for line in key_body(private_key_pem))
    assert "-----BEGIN PRIVATE KEY----- …redacted… -----END PRIVATE KEY-----" in out
    assert out.endswith("and a certificate")
    cut = redact(private_key_pem[:120])
    assert not any(line[:40] in cut for line in key_body(private_key_pem)[:1])


def test_certificates_are_not_secrets() -> None:
    identity = certs.issue(certs.make_ca("Log Test CA"), "example.test")
    pem = identity.cert.public_bytes(serialization.Encoding.PEM).decode()
    assert redact(pem) == pem


def test_filter_redacts_a_record_with_arguments() -> None:
    record = logging.LogRecord("softphone.x", logging.INFO, __file__, 1, "got %s", (SDP,), None)
    assert RedactingFilter().filter(record)
    assert SRTP_KEY not in record.getMessage()


# --- the log file ------------------------------------------------------------------------------


def test_default_log_dir_is_the_platform_log_dir() -> None:
    import platformdirs

    assert default_log_dir() == Path(platformdirs.user_log_dir("softphone"))


def test_log_file_holds_the_messages_but_none_of_the_secrets(
    log_dir: Path, private_key_pem: str
) -> None:
    path = setup_logging(level=logging.DEBUG, directory=log_dir)
    assert path == log_dir / LOG_FILE_NAME
    log = logging.getLogger("softphone.test")
    log.debug("sent to 127.0.0.1:5061:\n%s", REGISTER)
    log.info("offer:\n%s", SDP)
    log.warning("identity file:\n%s", private_key_pem)
    log.info("account password=%s", PASSWORD)
    try:
        raise ValueError(f"bad config: password={PASSWORD} key inline:{SRTP_KEY}")
    except ValueError:
        log.exception("could not start")
    logging.getLogger("ui.main_window").info("window shown")
    for handler in logging.getLogger("softphone").handlers:
        handler.flush()

    text = path.read_text(encoding="utf-8")
    assert "REGISTER sips:example.test SIP/2.0" in text
    assert "a=crypto:1 AES_CM_128_HMAC_SHA1_80" in text
    assert "could not start" in text and "Traceback" in text
    assert "ui.main_window: window shown" in text
    secrets = [PASSWORD, RESPONSE, CNONCE, SRTP_KEY, MIKEY, *key_body(private_key_pem)]
    assert [s for s in secrets if s in text] == []


def test_log_rotates_and_keeps_five_old_files(log_dir: Path) -> None:
    path = setup_logging(directory=log_dir, max_bytes=2_000, backup_count=5)
    log = logging.getLogger("softphone.test")
    for i in range(400):
        log.info("line %04d %s", i, "x" * 60)
    names = sorted(p.name for p in log_dir.iterdir())
    assert names == [LOG_FILE_NAME] + [f"{LOG_FILE_NAME}.{i}" for i in range(1, 6)]
    assert all(p.stat().st_size <= 2_100 for p in log_dir.iterdir())
    assert "line 0399" in path.read_text()


def test_setting_up_twice_does_not_write_each_line_twice(log_dir: Path) -> None:
    setup_logging(directory=log_dir)
    path = setup_logging(directory=log_dir)
    logging.getLogger("softphone.test").warning("once")
    for handler in logging.getLogger("softphone").handlers:
        handler.flush()
    assert path.read_text().count("once") == 1


def test_unwritable_log_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError):
        setup_logging(directory=blocker / "log")


# --- a real registration, logged with its SIP trace -------------------------------------------


async def test_registration_log_and_trace_hold_no_password_nor_digest_response(
    log_dir: Path, tmp_path: Path
) -> None:
    ca = certs.make_ca("Log Test CA")
    server = certs.issue(ca, "example.test")
    seen: list[tuple[Request, Response | None]] = []
    config = RegistrarConfig(
        domain="example.test",
        users={"alice": PASSWORD},
        certificate_chain=server.chain,
        private_key=server.key,
    )
    path = setup_logging(level=logging.DEBUG, directory=log_dir)
    async with running_registrar(config) as registrar:
        handle = registrar.core.handle_request

        def recording(request: Request, now: float, **kwargs: Any) -> Response | None:
            response = handle(request, now, **kwargs)
            seen.append((request, response))
            # The registrar's side of the SIP trace, through the same callback a UA uses.
            for direction, message in (("received", request), ("sent", response)):
                if message is not None:
                    raw = bytes(message)
                    log_trace(
                        TraceEntry(now, direction, "client", first_line_of(message), raw, "tls-hop")
                    )
            return response

        registrar.core.handle_request = recording  # type: ignore[method-assign]
        account = Account(
            aor="sips:alice@example.test",
            registrar=f"sips:example.test:{registrar.tls_port}",
            resolve=(ResolveEntry("example.test", registrar.tls_port, "127.0.0.1"),),
        )
        ua = UserAgent(
            account,
            password=PASSWORD,
            anchors=(ca.cert,),
            pin_store_path=tmp_path / "pins.json",
        )
        try:
            await asyncio.wait_for(ua.register(), 20)
        finally:
            await ua.close()
    for handler in logging.getLogger("softphone").handlers:
        handler.flush()

    authorizations = [r.headers.get("Authorization") for r, _ in seen]
    credentials = [parse_credentials(a) for a in authorizations if a]
    assert credentials, "the UA sent no Authorization: the test would prove nothing"
    text = path.read_text(encoding="utf-8")
    assert "Authorization: Digest" in text  # the trace is in the log
    assert PASSWORD not in text
    for creds in credentials:
        assert creds.response and creds.response not in text
        assert creds.cnonce is None or creds.cnonce not in text
