from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from softphone.server.config import ListenAddress, RegistrarConfig
from softphone.server.registrar import Registrar, running_registrar
from tests.transport.certs import Identity, issue, make_ca

USERS = {"alice": "alice-secret", "bob": "bob-secret"}


@pytest.fixture(scope="session")
def identity() -> Identity:
    return issue(make_ca("Registrar Test CA"), "example.test")


def make_config(identity: Identity, **changes: object) -> RegistrarConfig:
    options: dict[str, object] = {
        "domain": "example.test",
        "users": USERS,
        "listen": (ListenAddress("127.0.0.1", 0, "tls"), ListenAddress("127.0.0.1", 0, "tcp")),
        "certificate_chain": identity.chain,
        "private_key": identity.key,
        "min_expires": 60,
        "max_expires": 3600,
        "default_expires": 3600,
    }
    options.update(changes)
    return RegistrarConfig(**options)  # type: ignore[arg-type]


@pytest.fixture
async def registrar(identity: Identity) -> AsyncIterator[Registrar]:
    async with running_registrar(make_config(identity)) as reg:
        yield reg
