"""A call's safety number is worked out on the event loop, a slice at a time (issue 7: the
loop never stalls 20 ms).

In a worker thread, the 5200 rounds of SHA-512 per new key are pure Python and hold the GIL
against the loop: beside them, a 7 ms callback of the desktop phone took 17-19 ms
(``benchmarks/bench_gui.py``, the trust question of a ``sipsec:`` call). These tests check
where the rounds run and that the loop gets its turns meanwhile."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from softphone.security import safety
from softphone.ua import safety_number_in_slices
from softphone.ua.tunnel import warm_own_half
from tests.transport import certs

ALICE, BOB = "sip:alice@atlanta.test", "sip:bob@biloxi.test"


@pytest.fixture
def rounds_seen(monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """The threads SHA-512 rounds of safety numbers ran in; nothing memoised beforehand."""
    seen: set[int] = set()

    def sha512(data: bytes = b"") -> Any:
        seen.add(threading.get_ident())
        return hashlib.sha512(data)

    monkeypatch.setattr(safety, "_HALVES", {})
    monkeypatch.setattr(safety, "hashlib", SimpleNamespace(sha512=sha512))
    return seen


async def test_a_new_safety_number_is_worked_out_on_the_loop_with_turns_between(
    rounds_seen: set[int],
) -> None:
    alice, bob = certs.self_signed("alice").cert, certs.self_signed("bob").cert
    ticks: list[bool] = []
    done = False

    async def ticker() -> None:
        while not done:
            await asyncio.sleep(0)
            ticks.append(done)

    task = asyncio.ensure_future(ticker())
    number = await safety_number_in_slices(alice, ALICE, bob, BOB)
    done = True
    await task
    assert number == str(safety.safety_number(alice, ALICE, bob, BOB))
    assert rounds_seen == {threading.get_ident()}  # the loop's thread, no worker
    assert ticks.count(False) >= 2  # the loop ran other work while it was worked out


async def test_our_half_is_warmed_on_the_loop(rounds_seen: set[int]) -> None:
    alice = certs.self_signed("alice").cert
    ua = SimpleNamespace(_call_tasks=set())
    warm_own_half(ua, SimpleNamespace(cert=alice, aor=ALICE))  # type: ignore[arg-type]
    assert len(ua._call_tasks) == 1
    await asyncio.gather(*ua._call_tasks)
    assert rounds_seen == {threading.get_ident()}
    assert safety.memoised_safety_number(alice, ALICE, alice, ALICE) is not None


async def test_a_bad_aor_gives_no_number(rounds_seen: set[int]) -> None:
    alice = certs.self_signed("alice").cert
    assert await safety_number_in_slices(alice, "not an aor", alice, BOB) is None
    assert rounds_seen == set()
