"""Issue 8: a full call's log and SIP trace hold no secret — not the password, not the SRTP
keys, not the private key material. Both calls of the demo network (a ``sips:`` call, whose
INVITE carries SDES keys on every hop, and a ``sipsec:`` call) run with every logger at DEBUG
and every SIP message traced through :func:`softphone.logs.log_trace`; then the files are
searched for each secret the run really used."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from softphone.demo_network import DemoNetwork, DemoPhone, missing_parts
from softphone.logs import log_trace, setup_logging
from tests.conftest import require_peer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_INLINE = re.compile(rb"inline:([A-Za-z0-9+/=]{20,})")


def _key_lines(phone: DemoPhone) -> list[str]:
    pem = phone.identity.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


async def test_a_full_calls_log_and_trace_hold_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if missing_parts():
        require_peer("the demo network", available=False, hint="; ".join(missing_parts()))
    log_dir = tmp_path / "log"
    log_file = setup_logging(level=logging.DEBUG, directory=log_dir)
    traced: list[Any] = []
    original = DemoPhone.on_trace

    def on_trace(self: DemoPhone, entry: Any) -> None:
        traced.append(entry)
        log_trace(entry)
        original(self, entry)

    monkeypatch.setattr(DemoPhone, "on_trace", on_trace)
    try:
        async with DemoNetwork.start(tmp_path / "net") as net:
            passwords = [
                secret for (_service, _user), secret in net.keyring._store.items() if secret
            ]
            key_lines = _key_lines(net.alice) + _key_lines(net.bob)
            for kind in ("sips", "sipsec"):
                run = await net.call(kind=kind, talk_time=0.5)
                assert run.ok, run.error
    finally:
        for name in ("softphone", "ui"):
            for handler in logging.getLogger(name).handlers:
                handler.flush()

    srtp_keys = {m.group(1) for e in traced for m in _INLINE.finditer(e.raw)}
    assert srtp_keys, "the sips: call's INVITE carried SDES keys: the trace must have seen them"
    assert passwords and key_lines
    written = b"".join(p.read_bytes() for p in log_dir.iterdir())
    assert b"INVITE sips:bob@biloxi.test" in written  # the trace reached the log
    assert b"CONNECT" in written
    for secret in passwords:
        assert secret.encode() not in written, "a password reached the log"
    for key in srtp_keys:
        assert key not in written, "an SRTP key reached the log"
    for line in key_lines:
        assert line.encode() not in written, "private key material reached the log"
    assert log_file.exists()
