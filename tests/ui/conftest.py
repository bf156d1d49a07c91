"""GUI tests: Qt offscreen, and real trust reports to put in front of the dialog.

``QT_QPA_PLATFORM`` must be set before the QApplication exists (pytest-qt creates it lazily,
in the ``qapp`` fixture), so it is set here, at import time, unless the caller chose one.
The reports are built by the engine's own :func:`~softphone.security.trust.evaluate` from
certificates made by :mod:`tests.transport.certs`, so the dialog is tested on the words the
engine really produces.
"""

from __future__ import annotations

import os

# Before Qt is imported below (the QApplication itself comes later, from qapp).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTEST_QT_API", "pyside6")

import asyncio
import datetime as dt
import gc
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import qasync
import shiboken6
from cryptography import x509
from PySide6.QtWidgets import QApplication

from softphone.security.certificates import Identity, fingerprint_sha256
from softphone.security.pins import Pin, PinReason, PinStore
from softphone.security.trust import TrustDecisionRequired, evaluate
from tests.transport import certs

DOMAIN = "example.test"


@dataclass(frozen=True)
class Questions:
    """One trust question of each kind the dialog must handle, for example.test."""

    wrong_name: TrustDecisionRequired  # trusted CA, issued for wrong.test
    self_signed: TrustDecisionRequired  # one problem: nobody vouches
    self_signed_wrong_name: TrustDecisionRequired  # several problems at once
    changed: TrustDecisionRequired  # a different certificate from the pinned one
    expired: TrustDecisionRequired  # closes at once


def _ask(
    chain: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    pins: PinStore | None = None,
) -> TrustDecisionRequired:
    now = dt.datetime.now(dt.UTC)
    report = evaluate(chain, Identity.domain(DOMAIN), now=now, anchors=anchors, pins=pins)
    return TrustDecisionRequired(report, f"registration to {DOMAIN}")


@pytest.fixture(scope="session")
def questions() -> Questions:
    ca = certs.make_ca("Softphone Test CA")
    anchors = (ca.cert,)
    pinned = certs.issue(ca, DOMAIN)
    pins = PinStore()
    pins.add(
        Identity.domain(DOMAIN),
        Pin(
            fingerprint_sha256(pinned.cert),
            dt.datetime.now(dt.UTC),
            PinReason.ALWAYS_TRUST,
            DOMAIN,
        ),
    )
    return Questions(
        wrong_name=_ask(certs.issue(ca, "wrong.test").chain, anchors),
        self_signed=_ask(certs.self_signed(DOMAIN).chain, anchors),
        self_signed_wrong_name=_ask(certs.self_signed("wrong.test").chain, anchors),
        changed=_ask(certs.self_signed(DOMAIN).chain, anchors, pins),
        expired=_ask(certs.issue(ca, DOMAIN, expired=True).chain, anchors),
    )


@pytest.fixture
def run_in_qasync(qapp: QApplication) -> Iterator[Callable[[Coroutine[Any, Any, None]], None]]:
    """Run a coroutine on a qasync loop over pytest-qt's QApplication (as ``main`` does)."""
    # Earlier tests' garbage, Qt objects in reference cycles among it, is collected here, on
    # the Qt thread: left to a collection that a worker thread of this test's loop happens to
    # trigger (asyncio.to_thread), ~QObject ran there, beside the Qt thread (a segfault in
    # qasync's call_soon_threadsafe signal, 3 runs in 14 of four test files here).
    gc.collect()
    quit_on_close = qapp.quitOnLastWindowClosed()
    qapp.setQuitOnLastWindowClosed(False)  # the loop stops when the coroutine ends
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)

    def run(coro: Coroutine[Any, Any, None], timeout: float = 60) -> None:
        loop.run_until_complete(asyncio.wait_for(coro, timeout))

    try:
        yield run
    finally:
        loop.close()
        # close() leaves the loop's call_later timers (wait_for's timeout among them)
        # registered on its QObject timer. Delete it now, in this thread: left to a garbage
        # collection that runs in a worker thread, ~QObject cannot stop them and one later
        # fires on freed memory (a segfault in pytest-qt's processEvents, tests later).
        shiboken6.delete(loop._timer)
        asyncio.set_event_loop(None)
        qapp.setQuitOnLastWindowClosed(quit_on_close)


async def refreshed(*windows: Any) -> None:
    """Wait until each call window has shown its last refresh in full (a shown window with a
    loop running shows the rest of an event ``REFRESH_DELAY_MS`` after its phase line)."""
    async with asyncio.timeout(5):
        while any(window.refresh_due for window in windows):
            await asyncio.sleep(0.005)
