"""Fixtures for interop tests: a test PKI and real Kamailio instances on 127.0.0.1.

* ``interop_pki`` (session): :class:`~tests.interop.pki.LabPKI`, the test CA and the server
  certificate profiles ``good``, ``selfsigned``, ``unknownca``, ``wrongname``, ``expired``.
* ``kamailio_factory`` (function): ``kamailio_factory(cert="good", users={...},
  algorithm="" | "MD5" | "SHA-256", proxy_require="check" | "allow-sipsec" | "ignore",
  require_client_cert=False)`` → a started :class:`~tests.interop.kamailio.KamailioServer`;
  every server it made is stopped (by PID) when the test ends.
* ``kamailio`` (function): ``kamailio_factory()`` with the defaults (good certificate, users
  alice/bob/carol/dave with the lab passwords, MD5 challenges without ``algorithm=``).
* ``ua_factory`` (function): ``ua_factory(account, **options)`` → a
  :class:`~softphone.ua.useragent.UserAgent` trusting only the lab CA, closed when the test ends.

Plain helpers (accounts, Kamailio's log and location table, audio checks) are in
``tests/interop/helpers.py``.

When Kamailio or its TLS module is missing, the test skips (developer machine) or fails
(``CI=true``), see :func:`tests.conftest.require_peer`. When a test fails, the tail of each of
its Kamailio logs is attached to the report.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from softphone.ua.account import Account
from softphone.ua.useragent import Backoff, UserAgent
from tests.conftest import require_peer
from tests.interop.helpers import PASSWORD
from tests.interop.kamailio import KamailioServer, find_kamailio, find_tls_module
from tests.interop.pki import LabPKI

KAMAILIO_HINT = "apt-get install kamailio kamailio-tls-modules (or: make test as root)"
_SERVERS_ATTR = "_interop_kamailio_servers"

KamailioFactory = Callable[..., KamailioServer]


def require_kamailio() -> str:
    """The kamailio binary, after require_peer() for it and its TLS module."""
    binary = find_kamailio()
    require_peer("kamailio", available=binary is not None, hint=KAMAILIO_HINT)
    assert binary is not None
    require_peer(
        "kamailio-tls-modules",
        available=find_tls_module(binary) is not None,
        hint=KAMAILIO_HINT,
    )
    return binary


@pytest.fixture(scope="session")
def interop_pki(tmp_path_factory: pytest.TempPathFactory) -> LabPKI:
    return LabPKI.create(tmp_path_factory.mktemp("interop-pki"))


@pytest.fixture
def kamailio_factory(
    request: pytest.FixtureRequest, tmp_path: Path, interop_pki: LabPKI
) -> Iterator[KamailioFactory]:
    binary = require_kamailio()
    servers: list[KamailioServer] = []
    setattr(request.node, _SERVERS_ATTR, servers)

    def make(
        cert: str = "good", users: dict[str, str] | None = None, **options: Any
    ) -> KamailioServer:
        server = KamailioServer(
            tmp_path / f"kamailio{len(servers)}",
            interop_pki,
            cert=cert,
            users=users,
            binary=options.pop("binary", binary),
            **options,
        )
        servers.append(server)
        server.start()
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.close()


@pytest.fixture
def kamailio(kamailio_factory: KamailioFactory) -> KamailioServer:
    return kamailio_factory()


@pytest.fixture
async def ua_factory(tmp_path: Path) -> AsyncIterator[Callable[..., UserAgent]]:
    """UserAgents trusting only the lab CA (no system store), pins in tmp_path."""
    made: list[UserAgent] = []

    def make(account: Account, **options: Any) -> UserAgent:
        options.setdefault("pin_store_path", tmp_path / "pins.json")
        options.setdefault("password", PASSWORD)
        assert account.ca_file is not None
        options.setdefault(
            "anchors", tuple(x509.load_pem_x509_certificates(account.ca_file.read_bytes()))
        )
        options.setdefault("backoff", Backoff(base=0.2, cap=2.0))
        ua = UserAgent(account, **options)
        made.append(ua)
        return ua

    yield make
    for ua in made:
        await ua.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    servers: list[KamailioServer] = getattr(item, _SERVERS_ATTR, [])
    if report.failed and call.when in {"setup", "call"}:
        for index, server in enumerate(servers):
            report.sections.append(
                (f"kamailio{index} log tail ({server.log_path})", server.log_tail(60))
            )
    return report
