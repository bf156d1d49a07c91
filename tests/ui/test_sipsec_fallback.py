"""A ``sipsec:`` call the path cannot carry (draft-gurbani-sip-sipsec-01 §6.6: here the proxy
answers the CONNECT 420) is never downgraded silently: the GUI phone says why, offers the same
address as ``sips:`` with what that gives away, and places that call only when the person
presses the button. A real UserAgent behind the test sipsec proxy, over TLS on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from softphone.security.identity import new_identity
from softphone.ua import Account, ResolveEntry
from softphone.ua.useragent import Backoff
from tests.transport import certs
from tests.ua.sipsec_proxy import PROXY_DOMAIN, SipsecProxy
from tests.ui.test_sipsec_journey import SHOTS, until
from ui.app import Phone
from ui.presenters import Protection


def test_a_refused_sipsec_call_offers_sips_and_places_it_only_when_asked(
    run_in_qasync: Callable[[Coroutine[Any, Any, None]], None], tmp_path: Path
) -> None:
    ca = certs.make_ca("GUI fallback CA")
    identity = new_identity("sip:alice@atlanta.test", now=dt.datetime.now(dt.UTC))

    async def scenario() -> None:
        async with SipsecProxy(ca, mode="answer:420") as proxy:
            phone = Phone(history_path=tmp_path / "history.json")
            placed: list[tuple[str, object]] = []
            phone.bridge.call_started.connect(
                lambda _aor, call, protection: placed.append((call.peer, protection))
            )
            try:
                phone.window.show()
                account = Account(
                    aor="sips:alice@atlanta.test",
                    registrar=f"sips:{PROXY_DOMAIN}:{proxy.port}",
                    resolve=(ResolveEntry(PROXY_DOMAIN, proxy.port, "127.0.0.1"),),
                )
                phone.add_account(
                    account,
                    pin_store_path=tmp_path / "pins.json",
                    anchors=(ca.cert,),
                    backoff=Backoff(base=0.05, cap=0.5),
                    identity=identity,
                    password="unused",
                )
                window = phone.window
                await until(lambda: window.view(account.aor).state == "Registered", "registered")
                window.set_dial_text("sipsec:bob@biloxi.test")
                QTest.mouseClick(window.call_button, Qt.MouseButton.LeftButton)
                await until(window.fallback_button.isVisible, "the sips: offer")
                assert window.dial_error.text().startswith("Could not call sipsec:bob@biloxi.test")
                # The agent's command-line flag is the agent's business, not the window's.
                assert "--fallback-sips" not in window.dial_error.text()
                words = window.fallback_words.text()
                assert "sips:bob@biloxi.test" in words
                assert "servers on the way can read it" in words and "not be end to end" in words
                window.grab().save(str(SHOTS / "sipsec-fallback-offer.png"))
                await asyncio.sleep(1.0)  # nobody pressed it: nothing was placed
                assert placed == []
                QTest.mouseClick(window.fallback_button, Qt.MouseButton.LeftButton)
                await until(lambda: placed, "the sips: call placed")
                assert placed == [("sips:bob@biloxi.test", Protection.SIPS)]
                assert not window.fallback_button.isVisible()
                assert window.dial.text() == "sips:bob@biloxi.test"
            finally:
                await phone.close()

    run_in_qasync(scenario())


def test_a_trust_refusal_is_never_offered_as_a_fallback(
    run_in_qasync: Callable[[Coroutine[Any, Any, None]], None], tmp_path: Path
) -> None:
    """Only failures the engine marks ``fallback_ok`` (the path, not the peer's certificate)."""
    from softphone.ua import CallError

    phone = Phone(history_path=tmp_path / "history.json")

    async def scenario() -> None:
        try:
            bridge = phone.bridge

            class RefusingUA:
                async def call(self, uri: str) -> None:
                    raise CallError("not connected: the certificate is not bob's")

            bridge.user_agents["sips:alice@atlanta.test"] = RefusingUA()  # type: ignore[assignment]
            phone.window.add_account("sips:alice@atlanta.test")
            phone.window.set_dial_text("sipsec:bob@biloxi.test")
            QTest.mouseClick(phone.window.call_button, Qt.MouseButton.LeftButton)
            await until(phone.window.dial_error.text, "the failure in words")
            await bridge.settled()
            assert not phone.window.fallback_button.isVisible()
        finally:
            await phone.close()

    run_in_qasync(scenario())
