"""The whole journey of issue 7 with the real engine, two real phones and nothing faked:
alice's and bob's :class:`ui.app.Phone` (window, bridge, CallManager, UserAgent) register over
TLS on 127.0.0.1 with the scriptable sipsec proxy of the engine's tests; alice types
``sipsec:bob@biloxi.test`` and presses Call; each phone asks about the other's self-signed
identity in the trust dialog and the test clicks "Connect this time"; bob's incoming window
appears and is accepted; both call windows say "end to end" with the same safety number; alice
hangs up; both histories have the call. Every wait is bounded (:data:`WAIT`).
"""

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
from softphone.ua.account import SipsecAccept
from softphone.ua.useragent import Backoff
from tests.transport import certs
from tests.ua.sipsec_proxy import PROXY_DOMAIN, SipsecProxy
from tests.ui.conftest import refreshed
from tests.ui.demo_journey import until as poll
from tests.ui.shots import cut_labels
from ui.app import Phone
from ui.call_window import CallWindow

WAIT = 30.0
SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


async def until(condition: Callable[[], Any], what: str) -> Any:
    return await poll(condition, what, wait=WAIT, every=0.02)


def answer_trust_questions(*phones: Phone) -> int:
    """Click "Connect this time" in every open trust dialog; how many were clicked."""
    clicked = 0
    for phone in phones:
        for dialog in list(phone.bridge.open_dialogs.values()):
            if dialog.isVisible():
                QTest.mouseClick(dialog.once_button, Qt.MouseButton.LeftButton)
                clicked += 1
    return clicked


def test_sipsec_call_between_two_gui_phones(
    run_in_qasync: Callable[[Coroutine[Any, Any, None]], None], tmp_path: Path
) -> None:
    ca = certs.make_ca("GUI journey CA")
    now = dt.datetime.now(dt.UTC)
    identities = {
        "alice@atlanta.test": new_identity("sip:alice@atlanta.test", now=now),
        "bob@biloxi.test": new_identity("sip:bob@biloxi.test", now=now),
    }

    async def scenario() -> None:
        async with SipsecProxy(ca) as proxy:
            phones: dict[str, Phone] = {}
            try:
                for who, identity in identities.items():
                    phone = Phone(history_path=tmp_path / f"history-{who}.json")
                    phone.window.setWindowTitle(f"Softphone — {who}")
                    phone.window.show()
                    account = Account(
                        aor=f"sips:{who}",
                        registrar=f"sips:{PROXY_DOMAIN}:{proxy.port}",
                        resolve=(ResolveEntry(PROXY_DOMAIN, proxy.port, "127.0.0.1"),),
                        sipsec_accept=SipsecAccept.ACCEPT,
                    )
                    phone.add_account(
                        account,
                        pin_store_path=tmp_path / f"pins-{who}.json",
                        anchors=(ca.cert,),
                        backoff=Backoff(base=0.05, cap=0.5),
                        identity=identity,
                        password="unused",
                    )
                    phones[who] = phone
                alice, bob = phones["alice@atlanta.test"], phones["bob@biloxi.test"]
                for phone in (alice, bob):
                    aor = phone.user_agents[0].account.aor
                    await until(
                        lambda p=phone, a=aor: p.window.view(a).state == "Registered", "registered"
                    )

                alice.window.set_dial_text("sipsec:bob@biloxi.test")
                assert alice.window.selected_protection.value == "sipsec"
                QTest.mouseClick(alice.window.call_button, Qt.MouseButton.LeftButton)

                def bob_rings() -> bool:
                    answer_trust_questions(alice, bob)
                    if alice.window.dial_error.text():
                        raise AssertionError(alice.window.dial_error.text())
                    return bool(bob.calls.incoming)

                await until(bob_rings, "bob's phone rings")
                (incoming,) = bob.calls.incoming.values()
                await until(incoming.isVisible, "incoming window shown")
                bob.calls.incoming[incoming.presenter.call_id].grab().save(
                    str(SHOTS / "journey-bob-incoming.png")
                )
                QTest.mouseClick(incoming.accept_button, Qt.MouseButton.LeftButton)

                def established(phone: Phone) -> CallWindow | None:
                    answer_trust_questions(alice, bob)
                    for window in phone.calls.windows.values():
                        if window.presenter.phase == "established" and window.presenter.audio_words:
                            return window
                    return None

                alice_window = await until(lambda: established(alice), "alice in call")
                bob_window = await until(lambda: established(bob), "bob in call")
                await refreshed(alice_window, bob_window)  # shown whole a moment later
                for window in (alice_window, bob_window):
                    # The desktop phone's audio runs on the media thread, off this loop
                    # (ui.bridge: UserAgent(media_thread=True); softphone.media.thread).
                    assert window.call.media.thread.name == "softphone-media"
                    panel = window.security
                    assert panel.signalling.badge.text() == "END TO END"
                    assert panel.audio.words.text() == "Audio encrypted end to end"
                    assert "inside the sipsec tunnel" in panel.audio.details.text()
                await until(
                    lambda: (
                        alice_window.security.safety_number.text()
                        and bob_window.security.safety_number.text()
                    ),
                    "safety numbers on both phones",
                )
                assert (
                    alice_window.security.safety_number.text()
                    == bob_window.security.safety_number.text()
                )
                await until(
                    lambda: all(w.security.qr.isVisible() for w in (alice_window, bob_window)),
                    "the safety numbers' QR codes on both phones",
                )
                await asyncio.sleep(0.15)  # Qt's posted layout and paint
                for window in (alice_window, bob_window):
                    # stop 13: the audio row's last line was cut off once the QR code came
                    assert cut_labels(window) == [], window.presenter.call_id
                alice_window.grab().save(str(SHOTS / "journey-alice-in-call.png"))
                bob_window.grab().save(str(SHOTS / "journey-bob-in-call.png"))

                # Hold and resume from the call window: the re-INVITEs go inside the tunnel
                # (the tunnel refused them with 488 until stop 20: Hold always failed here).
                QTest.mouseClick(alice_window.hold_button, Qt.MouseButton.LeftButton)
                await until(lambda: alice_window.presenter.phase_words == "On hold", "held")
                await until(
                    lambda: (
                        bob_window.presenter.phase_words == "The other side put the call on hold"
                    ),
                    "bob told of the hold",
                )
                QTest.mouseClick(alice_window.hold_button, Qt.MouseButton.LeftButton)
                await until(lambda: not alice_window.presenter.held_by, "resumed")
                await until(lambda: not bob_window.presenter.held_by, "bob told of the resume")
                assert alice_window.presenter.phase == bob_window.presenter.phase == "established"

                QTest.mouseClick(alice_window.trace_button, Qt.MouseButton.LeftButton)
                ladder = alice.calls.ladders[alice_window.presenter.call_id]
                markers = {arrow.marker for arrow in ladder.model.arrows}
                labels = [arrow.label for arrow in ladder.model.arrows]
                assert "CONNECT" in labels and "INVITE" in labels, labels
                assert {"TLS to this hop", "sipsec tunnel"} <= markers
                invite = next(a for a in ladder.model.arrows if a.label == "INVITE")
                assert invite.marker == "sipsec tunnel"  # the INVITE went inside the tunnel
                invites = [a for a in ladder.model.arrows if a.label == "INVITE"]
                assert len(invites) == 3  # the call, hold, resume
                assert {a.marker for a in invites} == {"sipsec tunnel"}
                assert "inline:[redacted]" in invite.raw or "a=crypto" not in invite.raw
                ladder.view.select(invite.index)
                ladder.grab().save(str(SHOTS / "journey-alice-sip-trace.png"))

                QTest.mouseClick(alice_window.hangup_button, Qt.MouseButton.LeftButton)
                await until(lambda: alice_window.presenter.phase == "ended", "alice ended")
                await until(lambda: bob_window.presenter.phase == "ended", "bob ended")
                for phone, direction in ((alice, "outgoing"), (bob, "incoming")):
                    history = phone.calls.history
                    assert history is not None
                    entry = history.entries[0]
                    assert entry.direction == direction and entry.outcome.startswith("answered")
                    assert entry.audio == "Audio encrypted end to end"
                    item = phone.window.history_view.topLevelItem(0)
                    window = alice_window if phone is alice else bob_window
                    summary = window.security.summary_badge.text()
                    assert item.text(5) == f"● {summary}"  # as the call window said
                    assert window.presenter.corrected == ""  # no word was contradicted
                    assert window.security.signalling.badge.text() == "END TO END"
            finally:
                for phone in phones.values():
                    await phone.close()

    SHOTS.mkdir(parents=True, exist_ok=True)
    run_in_qasync(scenario())
