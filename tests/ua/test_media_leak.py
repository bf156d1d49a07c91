"""No media socket outlives its call: many calls in one event loop, through a real registrar/proxy
on loopback TLS, with real UDP media (SDES and DTLS-SRTP), then a second network in the same loop.

The bug this guards (found by benchmarks/bench_sipsec.py): a call ended while its
:class:`~softphone.media.rtp_session.MediaSession` was still starting (the BYE right behind the
ACK) closed the reserved socket under the transport being built. asyncio then logged
"Exception in callback _SelectorTransport._add_reader … Bad file descriptor", the transport and
its 20 ms loop lived on, and the next socket given the same descriptor number failed with
"File descriptor N is used by transport". The deterministic reproduction of that race is in
tests/media/test_session_lifecycle.py; this test drives whole calls the way people end them:
answered and hung up at once, refused before any media, ended during the DTLS handshake.

Every loop-level error goes through ``loop.set_exception_handler`` and is asserted absent; the
count of open descriptors (``/proc/self/fd``) must come back to where it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from softphone.server.config import RegistrarConfig
from softphone.server.registrar import running_registrar
from softphone.ua.account import Account, MediaKeying, ResolveEntry
from softphone.ua.call import Call, CallPhase
from softphone.ua.useragent import UserAgent
from tests.transport import certs

DOMAIN = "leak.test"
PASSWORDS = {"alice": "alice-leak-secret", "bob": "bob-leak-secret"}
WAIT = 20.0
ROUNDS = 3

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="counting descriptors needs /proc (Linux)"
)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@contextlib.asynccontextmanager
async def network(tmp: Path, keying: MediaKeying) -> AsyncIterator[tuple[UserAgent, UserAgent]]:
    """Our registrar/proxy for leak.test and two registered phones; bob answers at once except
    when a call's target is ``sips:refuse@…`` style (see :func:`bob_takes`)."""
    ca = certs.make_ca("Leak Test CA")
    leaf = certs.issue(ca, DOMAIN)
    tmp.mkdir(parents=True, exist_ok=True)
    ca_file = tmp / "ca.pem"
    ca_file.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    config = RegistrarConfig(
        domain=DOMAIN,
        users=PASSWORDS,
        certificate_chain=leaf.chain,
        private_key=leaf.key,
    )
    async with running_registrar(config) as registrar, contextlib.AsyncExitStack() as stack:
        phones = []
        for user in ("alice", "bob"):
            account = Account(
                aor=f"sips:{user}@{DOMAIN}",
                registrar=f"sips:{DOMAIN}:{registrar.tls_port}",
                resolve=(ResolveEntry(DOMAIN, registrar.tls_port, "127.0.0.1"),),
                ca_file=ca_file,
                keying=keying,
            )
            options: dict[str, Any] = {}
            if user == "bob":
                options = {"on_incoming_call": bob_takes, "auto_answer": True}
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
        yield phones[0], phones[1]


REFUSE_NEXT: list[bool] = []
BOB_CALLS: list[Call] = []


def bob_takes(call: Call) -> None:
    BOB_CALLS.append(call)
    if REFUSE_NEXT and REFUSE_NEXT.pop():
        call.reject(486)  # refused before any media: its reserved ports must go too


async def ended(call: Call) -> None:
    await asyncio.wait_for(asyncio.shield(call.ended), WAIT)


async def round_of_calls(alice: UserAgent) -> None:
    target = f"sips:bob@{DOMAIN}"
    # 1. answered, then hung up the moment it is established (bob's media may still start)
    call = await alice.call(target)
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await call.hangup()
    await ended(call)
    # 2. refused before media (486)
    REFUSE_NEXT.append(True)
    call = await alice.call(target)
    await ended(call)
    assert call.status_code == 486, call.reason
    # 3. cancelled while ringing or hung up right after the INVITE went out
    call = await alice.call(target)
    await call.hangup()
    await ended(call)
    # 4. a call that talks a little, then the callee ends it
    call = await alice.call(target)
    await call.wait_for(CallPhase.ESTABLISHED, timeout=WAIT)
    await asyncio.sleep(0.1)
    for bob_call in list(BOB_CALLS):
        if bob_call.phase is CallPhase.ESTABLISHED:
            await bob_call.hangup()
    await ended(call)
    for bob_call in BOB_CALLS:
        await ended(bob_call)
    BOB_CALLS.clear()


@pytest.mark.parametrize("keying", [MediaKeying.SDES, MediaKeying.DTLS_SRTP])
async def test_calls_in_one_loop_leave_no_descriptor_and_no_loop_error(
    keying: MediaKeying, tmp_path: Path
) -> None:
    loop = asyncio.get_running_loop()
    errors: list[str] = []

    def record(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        errors.append(f"{context.get('message')}: {context.get('exception')!r}")

    previous = loop.get_exception_handler()
    loop.set_exception_handler(record)
    REFUSE_NEXT.clear()
    BOB_CALLS.clear()
    try:
        gc.collect()
        before = open_fds()
        # Two networks one after the other in the same loop: descriptor numbers are reused.
        for index in range(2):
            async with network(tmp_path / f"net{index}", keying) as (alice, _bob):
                for _ in range(ROUNDS):
                    await round_of_calls(alice)
        for _ in range(20):  # transports close on the next loop iterations
            await asyncio.sleep(0.01)
        gc.collect()
        after = open_fds()
    finally:
        loop.set_exception_handler(previous)
    assert errors == []
    assert after == before, f"{after - before} descriptor(s) left open"
