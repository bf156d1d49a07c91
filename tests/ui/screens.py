"""Every call screen with sample engine events, for the screen tests and the screenshots.

``python -m tests.ui.screens OUTDIR SUFFIX`` saves each screen as ``OUTDIR/<name><SUFFIX>.png``
(run with ``QT_SCALE_FACTOR=2`` for the 200% shots). The events are the engine's own classes
(``softphone.ua.events``, ``softphone.ua.trace``); the call objects are :class:`FakeCall`, a
stand-in for widgets-only tests (the end-to-end test uses a real ``Call``).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import sys
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from softphone.security.safety import QR_PREFIX
from softphone.ua import HistoryEntry
from softphone.ua.call import AUDIO_WORDS, END_TO_END_SIGNALLING, CallError
from softphone.ua.events import CallState, MediaStarted, PeerIdentity, TunnelState
from softphone.ua.trace import TraceEntry

ALICE = "sips:alice@atlanta.test"
BOB = "sips:bob@biloxi.test"
SIPSEC_BOB = "sipsec:bob@biloxi.test"
#: A safety number's QR payload of the real size: the prefix, the version, two SHA-256 in hex.
SAFETY_QR = QR_PREFIX + b"1:" + b"0123456789ABCDEF" * 8
HOPS = "Encrypted to each server; servers on the way can read it"
SUITE = "AES_CM_128_HMAC_SHA1_80"
FP = ":".join(f"{(b * 37) % 256:02X}" for b in range(32))
SAFETY = " ".join(f"{(i * 7919) % 100000:05d}" for i in range(12))


class _Direction(Enum):
    OUTGOING = "outgoing"
    INCOMING = "incoming"


@dataclass
class FakeCall:
    """A call object for widget tests: records what the window asked of it."""

    call_id: str
    peer: str = BOB
    incoming: bool = False
    dtmf_ok: bool = True
    actions: list[str] = field(default_factory=list)
    muted: bool = False
    #: What ``levels()`` reports: (sent, received) dBFS, as the engine's Call.levels().
    sample_levels: tuple[float, float] = (-18.0, -31.0)

    @property
    def direction(self) -> _Direction:
        return _Direction.INCOMING if self.incoming else _Direction.OUTGOING

    async def hangup(self) -> None:
        self.actions.append("hangup")

    async def hold(self) -> None:
        self.actions.append("hold")

    async def resume(self) -> None:
        self.actions.append("resume")

    async def answer(self) -> None:
        self.actions.append("answer")

    def reject(self, code: int = 486) -> None:
        self.actions.append(f"reject {code}")

    def send_dtmf(self, digits: str) -> None:
        if not self.dtmf_ok:
            raise CallError("the other phone did not offer telephone-event (RFC 4733)")
        self.actions.append(f"dtmf {digits}")

    def set_muted(self, muted: bool) -> None:
        if muted != self.muted:
            self.actions.append("mute" if muted else "unmute")
        self.muted = muted

    def levels(self) -> tuple[float, float]:
        return (-math.inf if self.muted else self.sample_levels[0], self.sample_levels[1])


def sips_call_events(call_id: str = "c-sips") -> list[Any]:
    return [
        CallState(call_id, "outgoing", BOB, "calling"),
        CallState(call_id, "outgoing", BOB, "ringing"),
        CallState(call_id, "outgoing", BOB, "established"),
        MediaStarted(call_id, "opus", True, SUITE, "sdes", AUDIO_WORDS["sdes-hops"], HOPS),
    ]


def sipsec_call_events(call_id: str = "c-sipsec", state: str = "certificate") -> list[Any]:
    """A sipsec call to bob as the engine reports it: the call's peer is the dialled
    ``sipsec:`` address (the window's heading), the tunnel's and the identity's bob's address
    of record."""
    return [
        TunnelState("t-1", "outgoing", BOB, "connecting", call_id=call_id),
        CallState(call_id, "outgoing", SIPSEC_BOB, "calling"),
        TunnelState("t-1", "outgoing", BOB, "verified", call_id=call_id),
        PeerIdentity(call_id, "t-1", BOB, FP, state, SAFETY),
        CallState(call_id, "outgoing", SIPSEC_BOB, "established"),
        MediaStarted(
            call_id, "opus", True, SUITE, "sdes", AUDIO_WORDS["end-to-end"], END_TO_END_SIGNALLING
        ),
    ]


def raw(first: str, call_id: str, extra: str = "", body: str = "") -> bytes:
    text = f"{first}\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n{extra}"
    text += f"Content-Length: {len(body)}\r\n\r\n{body}"
    return text.encode()


def trace_entries(call_id: str = "c-sips") -> list[TraceEntry]:
    sdp = (
        "v=0\r\n"
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:c2VjcmV0LWtleS1tYXRlcmlhbC0xMjM0NTY3OA==\r\n"
    )
    auth = 'Proxy-Authorization: Digest username="alice", response="9f8e7d6c5b4a"\r\n'
    proxy = "proxy.atlanta.test:5061"
    invite = f"INVITE {BOB} SIP/2.0"
    return [
        TraceEntry(
            0.00,
            "sent",
            proxy,
            "CONNECT bob@biloxi.test SIP/2.0",
            raw("CONNECT bob@biloxi.test SIP/2.0", "t-1"),
            "tls-hop",
        ),
        TraceEntry(0.01, "sent", proxy, invite, raw(invite, call_id, "", sdp), "tls-hop"),
        TraceEntry(
            0.02,
            "received",
            proxy,
            "SIP/2.0 407 Proxy Authentication Required",
            raw("SIP/2.0 407 Proxy Authentication Required", call_id),
            "tls-hop",
        ),
        TraceEntry(0.03, "sent", proxy, invite, raw(invite, call_id, auth, sdp), "tls-hop"),
        TraceEntry(
            0.05,
            "received",
            proxy,
            "SIP/2.0 180 Ringing",
            raw("SIP/2.0 180 Ringing", call_id),
            "tls-hop",
        ),
        TraceEntry(
            0.20,
            "received",
            "biloxi phone",
            "SIP/2.0 200 OK",
            raw("SIP/2.0 200 OK", call_id),
            "sipsec-tunnel",
        ),
        TraceEntry(
            0.21,
            "sent",
            "biloxi phone",
            f"ACK {BOB} SIP/2.0",
            raw(f"ACK {BOB} SIP/2.0", call_id),
            "sipsec-tunnel",
        ),
        TraceEntry(
            0.30,
            "sent",
            "192.0.2.10:5060",
            "OPTIONS sip:x SIP/2.0",
            raw("OPTIONS sip:x SIP/2.0", call_id),
            "none",
        ),
    ]


def history_entries() -> list[HistoryEntry]:
    t = dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.UTC)
    return [
        HistoryEntry(
            "h1",
            "outgoing",
            BOB,
            t,
            t,
            95.0,
            "answered",
            True,
            END_TO_END_SIGNALLING,
            AUDIO_WORDS["end-to-end"],
            "verified",
        ),
        HistoryEntry(
            "h2",
            "incoming",
            "sips:carol@chicago.test",
            t - dt.timedelta(hours=2),
            t,
            42.0,
            "answered",
            True,
            HOPS,
            AUDIO_WORDS["sdes-hops"],
            "",
        ),
        HistoryEntry(
            "h3",
            "incoming",
            "sip:dave@example.test",
            t - dt.timedelta(days=1),
            None,
            None,
            "missed",
            True,
            "",
            "",
            "",
        ),
        HistoryEntry(
            "h4",
            "outgoing",
            "sips:erin@example.test",
            t - dt.timedelta(days=2),
            None,
            None,
            "busy",
            True,
            "",
            "",
            "",
        ),
    ]


def build(out: Path, suffix: str) -> list[Path]:
    """Build every screen, save it, return the files (a QApplication must not exist yet)."""
    from PySide6.QtWidgets import QApplication

    from tests.ui.shots import save_screens

    QApplication.instance() or QApplication(sys.argv[:1])  # before any widget is built
    return save_screens(screens(), out, suffix)


def screens() -> dict[str, Any]:
    """name -> a shown-ready widget with sample data."""
    from ui.bridge import EngineBridge
    from ui.call_presenters import LadderModel
    from ui.calls import CallManager
    from ui.main_window import MainWindow
    from ui.presenters import Protection

    result: dict[str, Any] = {}
    bridge = EngineBridge()
    window = MainWindow(bridge)
    window.add_account(ALICE)
    window.set_dial_text("sipsec:bob@biloxi.test")
    window.show_history(history_entries())
    result["main-window-dialer"] = window

    window2 = MainWindow(EngineBridge())
    window2.add_account(ALICE)
    window2.set_dial_text("bob@")
    window2._dial()
    result["main-window-dial-error"] = window2

    manager = CallManager(bridge, None, runner=lambda coro: coro.close())
    bridge.call_started.emit(ALICE, FakeCall("c-sips"), Protection.SIPS)
    for event in sips_call_events():
        bridge.on_event(ALICE, event)
    result["call-window-sips"] = manager.windows["c-sips"]
    manager.windows["c-sips"].poll_levels()  # the level bars as the 10 Hz poll shows them

    for event in sipsec_call_events():
        bridge.on_event(ALICE, event)
    bridge.call_started.emit(ALICE, FakeCall("c-sipsec", peer=SIPSEC_BOB), Protection.SIPSEC)
    result["call-window-sipsec"] = manager.windows["c-sipsec"]
    manager.windows["c-sipsec"].security.show_qr(SAFETY_QR)  # no loop here: drawn at once

    for event in sipsec_call_events("c-changed", "changed"):
        bridge.on_event(ALICE, event)
    bridge.call_started.emit(ALICE, FakeCall("c-changed", peer=SIPSEC_BOB), Protection.SIPSEC)
    result["call-window-changed"] = manager.windows["c-changed"]

    manager.windows["c-sips"].close()  # a call still going on: "Hang up?"
    result["call-window-hang-up-question"] = manager.windows["c-sips"].hang_up_question

    incoming = FakeCall("c-in", peer="sips:carol@chicago.test", incoming=True)
    bridge.on_event(ALICE, CallState("c-in", "incoming", incoming.peer, "ringing"))
    bridge.incoming_call.emit(ALICE, incoming)
    result["incoming-call-claimed"] = manager.incoming["c-in"]

    incoming2 = FakeCall("c-in2", peer=BOB, incoming=True)
    for event in (
        TunnelState("t-2", "incoming", BOB, "verified", call_id="c-in2"),
        CallState("c-in2", "incoming", BOB, "ringing"),
        PeerIdentity("c-in2", "t-2", BOB, FP, "verified", SAFETY),
    ):
        bridge.on_event(ALICE, event)
    bridge.incoming_call.emit(ALICE, incoming2)
    result["incoming-call-verified"] = manager.incoming["c-in2"]

    from ui.ladder import LadderWindow

    ladder = LadderWindow(
        LadderModel.from_entries(trace_entries(), call_ids={"c-sips", "t-1"}),
        title="SIP trace: call with sips:bob@biloxi.test",
    )
    ladder.view.select(3)
    result["sip-trace-ladder"] = ladder

    from softphone.ua import Account
    from ui.settings import SettingsDialog

    settings = SettingsDialog(Account(aor=ALICE, registrar="sips:atlanta.test"), None)
    settings.tabs.setCurrentIndex(1)
    result["settings-security"] = settings

    import tempfile

    from cryptography.hazmat.primitives.asymmetric import rsa

    from softphone.security.identity import new_identity
    from softphone.ua import AudioDevice, DeviceChoices, IdentityStore
    from softphone.ua.identity import summarise_identity
    from ui.call_window import set_level

    empty = IdentityStore(Path(tempfile.mkdtemp(prefix="screens-id-")))
    identity = SettingsDialog(Account(aor=ALICE), None, identity_store=empty)
    now = dt.datetime.now(dt.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    material = new_identity("sip:alice@atlanta.test", now=now, private_key=key)
    identity.show_identity(summarise_identity(material.cert, now=now))
    identity.tabs.setCurrentIndex(2)
    result["settings-identity"] = identity

    audio = SettingsDialog(Account(aor=ALICE), None, identity_store=empty)
    audio.tabs.blockSignals(True)  # a picture: no device is opened
    audio.tabs.setCurrentWidget(audio.audio_page)
    headset = AudioDevice(3, "USB headset", "ALSA", 1, 2, 48000.0)
    pulse = AudioDevice(5, "pulse", "ALSA", 32, 32, 44100.0, True, True)
    audio.show_devices(DeviceChoices((headset, pulse), (headset, pulse)))
    set_level(audio.input_level, -24.4)
    result["settings-audio"] = audio

    from ui.contacts_view import ContactsView

    contacts = ContactsView()
    ledger, own = sample_ledger()
    contacts.show_ledger(ledger, own)
    contacts.select("sip:bob@biloxi.test")
    contacts.resize(1000, 640)
    result["contacts-verified"] = contacts
    changed = ContactsView()
    changed.show_ledger(ledger, own)
    changed.select("sip:dave@example.test")
    changed.resize(1000, 640)
    result["contacts-changed"] = changed
    return result


@dataclass(frozen=True)
class OwnIdentity:
    """Our identity for the contacts view: a certificate and the AOR it names."""

    cert: Any
    aor: str


def sample_ledger() -> tuple[Any, OwnIdentity]:
    """A real trust ledger with one contact in each state (certificates from
    :mod:`tests.transport.certs`), and our own identity."""
    from softphone.security.ledger import Means, Seen, TrustLedger
    from tests.transport import certs

    t = dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.UTC)
    ledger = TrustLedger()
    ca = certs.make_ca("Example CA")
    bob = certs.self_signed("bob@biloxi.test").cert
    ledger.observe("sip:bob@biloxi.test", bob, Seen.SIPSEC, t - dt.timedelta(days=3))
    ledger.observe("sip:bob@biloxi.test", bob, Seen.SIPSEC, t - dt.timedelta(days=1))
    contact = ledger.contact("sip:bob@biloxi.test")
    assert contact.current is not None
    ledger.mark_verified("sip:bob@biloxi.test", contact.current, Means.SAFETY_NUMBER, t)
    ledger.observe("sip:carol@chicago.test", certs.self_signed("carol").cert, Seen.SIPSEC, t)
    erin = certs.self_signed("erin").cert
    ledger.observe("sip:erin@example.test", erin, Seen.SMIME, t - dt.timedelta(hours=5))
    ledger.observe("sip:erin@example.test", erin, Seen.SIPSEC, t)
    frank = ledger.observe("sip:frank@example.test", certs.issue(ca, "frank").cert, Seen.SMIME, t)
    ledger.mark_verified("sip:frank@example.test", frank.fingerprint, Means.CA_CHAIN, t)
    dave_old = certs.self_signed("dave").cert
    ledger.observe("sip:dave@example.test", dave_old, Seen.SIPSEC, t - dt.timedelta(days=30))
    old = ledger.contact("sip:dave@example.test").current
    assert old is not None
    ledger.mark_verified("sip:dave@example.test", old, Means.QR, t - dt.timedelta(days=29))
    ledger.observe("sip:dave@example.test", certs.self_signed("dave").cert, Seen.SIPSEC, t)
    own = OwnIdentity(certs.self_signed("alice@atlanta.test").cert, "sip:alice@atlanta.test")
    return ledger, own


if __name__ == "__main__":
    for saved in build(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else ""):
        print(saved)
