"""Plain helpers shared by the interop tests (the fixtures are in tests/interop/conftest.py).

What Kamailio saw is read from its log (``log_of``, after ``settle``) and its location table
(``contacts``); ``account_for``/``account`` build TLS accounts for its lab users; ``Recorder``,
``heard`` and ``states`` look at a call's audio and events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from softphone.media.tone import dominant_frequency, samples
from softphone.ua.account import Account, ResolveEntry
from softphone.ua.events import CallState
from tests.interop.kamailio import KamailioServer
from tests.ua.test_registration import WAIT, EventLog

USER = "alice"
PASSWORD = "alice-secret-1"  # tests/interop/kamailio.py DEFAULT_USERS


def account_for(server: KamailioServer) -> Account:
    return Account(
        aor=f"sips:{USER}@{server.domain}",
        registrar=f"sips:{server.domain}:{server.tls_port}",
        resolve=(ResolveEntry(server.domain, server.tls_port, "127.0.0.1"),),
        ca_file=server.ca_cert_path,
    )


def log_of(server: KamailioServer) -> str:
    return server.log_text(current_run_only=True)


async def contacts(server: KamailioServer) -> list[str]:
    return await asyncio.to_thread(server.registered_contacts, USER)


async def settle(server: KamailioServer) -> None:
    """A round trip through Kamailio's control socket: lets it finish logging what it got."""
    await asyncio.to_thread(server.rpc, "core.uptime")


SCAN = range(200, 3600, 20)


def account(server: KamailioServer, user: str, **changes: Any) -> Account:
    return Account(
        aor=f"sips:{user}@{server.domain}",
        registrar=f"sips:{server.domain}:{server.tls_port}",
        resolve=(ResolveEntry(server.domain, server.tls_port, "127.0.0.1"),),
        ca_file=server.ca_cert_path,
        **changes,
    )


class Recorder:
    """An AudioSink keeping every frame played, counting the loud ones as they come (tests
    poll that count every 20 ms: scanning every frame each time held the GIL long enough to
    starve a session on the media thread, and its audio broke up)."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self._loud = 0

    def write(self, pcm: bytes) -> None:
        self.frames.append(pcm)
        if max(samples(pcm), default=0) > 1000:
            self._loud += 1

    def loud_frames(self) -> int:
        """How many loud frames were written since the start or the last :meth:`clear`."""
        return self._loud

    def clear(self) -> None:
        """Forget what was played so far (the count too)."""
        self.frames.clear()
        self._loud = 0


#: heard(): a tone is looked for in windows of this many 20 ms frames...
HEARD_WINDOW = 15
#: ...among the last this many frames played, the latest window first.
HEARD_WITHIN = 100


def heard(rec: Recorder) -> float:
    """The frequency of the latest clear tone among the last HEARD_WITHIN frames played (2 s),
    in windows of HEARD_WINDOW frames stepping back 10 at a time. A machine that starves the
    test of CPU for a moment makes the receiver play a gap (concealment, silence) and the
    tone before it still counts; a tone that changed is found as the new one, which is later.
    Only the last window was looked at before: a CI run on a loaded machine found 300 ms of
    gap there (share 0.00) with the tone flowing before it."""
    frames = rec.frames[-HEARD_WITHIN:]
    best = 0.0
    for end in range(len(frames), min(HEARD_WINDOW, len(frames)) - 1, -10):
        window = frames[max(0, end - HEARD_WINDOW) : end]
        freq, share = dominant_frequency(samples(b"".join(window)), SCAN)
        if share > 0.3:
            return freq
        best = max(best, share)
    raise AssertionError(f"no clear tone (best share {best:.2f})")


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.02)


def states(events: EventLog) -> list[str]:
    return [e.state for e in events.events if isinstance(e, CallState)]
