"""ui.call_presenters without Qt: the dialer's rules, the security panel's words/colours/labels
and its weakest-of-three summary (a sips: call is never end to end), redaction, the ladder."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import ClassVar

import pytest

from softphone.ua import HistoryEntry
from softphone.ua.call import AUDIO_WORDS as ENGINE_AUDIO_WORDS
from softphone.ua.call import END_TO_END_SIGNALLING
from softphone.ua.events import CallState, MediaStarted
from ui.call_presenters import (
    AUDIO_WORDS,
    SIGNALLING_WORDS,
    CallPresenter,
    DialError,
    LadderModel,
    Level,
    call_id_of,
    history_row,
    parse_dial,
    redact_raw,
    rewrite_scheme,
    safety_number_groups,
    typed_protection,
)
from ui.presenters import Protection

BOB = "sips:bob@biloxi.test"
SUITE = "AES_CM_128_HMAC_SHA1_80"
FP = ":".join(f"{b:02X}" for b in range(32))
SAFETY = "".join(str(i % 10) for i in range(60))


@dataclass(frozen=True)
class TunnelState:
    name: ClassVar[str] = "tunnel_state"
    call_id: str
    state: str


@dataclass(frozen=True)
class PeerIdentity:
    name: ClassVar[str] = "peer_identity"
    call_id: str
    peer_aor: str
    fingerprint: str | None
    identity_state: str
    safety_number: str | None


@dataclass(frozen=True)
class TraceEntry:
    at: float
    direction: str
    peer: str
    first_line: str
    raw: bytes
    protection: str


def test_engine_and_ui_share_ux_words() -> None:
    assert AUDIO_WORDS == ENGINE_AUDIO_WORDS
    assert SIGNALLING_WORDS["end-to-end"] == END_TO_END_SIGNALLING


# --- dialer -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "protection", "uri"),
    [
        ("bob@biloxi.test", Protection.SIPSEC, "sipsec:bob@biloxi.test"),
        ("bob@biloxi.test", Protection.SIPS, "sips:bob@biloxi.test"),
        (" sip:bob@biloxi.test ", Protection.PLAIN, "sip:bob@biloxi.test"),
        (
            "sips:bob@biloxi.test;transport=tls",
            Protection.SIPS,
            "sips:bob@biloxi.test;transport=tls",
        ),
        ("tel:+1 555-1234", Protection.SIPS, "sips:+15551234@atlanta.test;user=phone"),
        ("sip:bob@biloxi.test", Protection.SIPSEC, "sipsec:bob@biloxi.test"),  # choice wins
    ],
)
def test_parse_dial(typed: str, protection: Protection, uri: str) -> None:
    target = parse_dial(typed, protection, "atlanta.test")
    assert target.uri == uri and target.protection is protection


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("", "Type who to call"),
        ("bob", "not an address"),
        ("http://x@y", "cannot be called"),
        ("mailto:bob@biloxi.test", "cannot be called"),
        ("tel:abc", "not a telephone number"),
        ("bob@ bad", "not an address"),
    ],
)
def test_parse_dial_refuses_in_words(typed: str, words: str) -> None:
    with pytest.raises(DialError, match=words):
        parse_dial(typed, Protection.SIPS, "atlanta.test")


def test_tel_needs_an_account() -> None:
    with pytest.raises(DialError, match="needs an account"):
        parse_dial("tel:+15551234", Protection.SIPS, None)


def test_scheme_and_choice_follow_each_other() -> None:
    assert typed_protection("sips:bob@x") is Protection.SIPS
    assert typed_protection("SIPSEC:bob@x") is Protection.SIPSEC
    assert typed_protection("sip:bob@x") is Protection.PLAIN
    assert typed_protection("bob@x") is None
    assert typed_protection("tel:+1") is None
    assert rewrite_scheme("sips:bob@x", Protection.SIPSEC) == "sipsec:bob@x"
    assert rewrite_scheme("bob@x", Protection.PLAIN) == "bob@x"


# --- the security panel ---------------------------------------------------------------------


def media(signalling: str, audio: str, keying: str = "sdes") -> MediaStarted:
    suite = None if keying == "none" else SUITE
    return MediaStarted("c1", "opus", keying != "none", suite, keying, audio, signalling)


def established(protection: Protection | None) -> CallPresenter:
    p = CallPresenter("c1", BOB, "outgoing", protection)
    p.apply(CallState("c1", "outgoing", BOB, "calling"), 0.0)
    p.apply(CallState("c1", "outgoing", BOB, "established"), 1.0)
    return p


def test_a_sips_call_is_partly_protected_and_never_end_to_end() -> None:
    p = established(Protection.SIPS)
    p.apply(media(SIGNALLING_WORDS["hops"], AUDIO_WORDS["sdes-hops"]), 1.0)
    panel = p.panel()
    assert panel.signalling.words == SIGNALLING_WORDS["hops"]
    assert panel.signalling.label == "SERVERS CAN READ" and panel.signalling.level is Level.WEAK
    assert panel.audio.words == AUDIO_WORDS["sdes-hops"]
    assert panel.summary == "Partly protected"
    assert "Keys travelled: across each TLS hop (every server on the way)" in panel.audio.details
    assert not any("end to end" in row.words for row in panel.rows)


@pytest.mark.parametrize("tunnel", [None, "verified"])
def test_a_sips_call_is_never_end_to_end_even_if_words_claim_it(tunnel: str | None) -> None:
    p = established(Protection.SIPS)
    if tunnel:
        p.apply(TunnelState("c1", tunnel), 1.0)
    p.apply(media(END_TO_END_SIGNALLING, AUDIO_WORDS["end-to-end"]), 1.0)
    p.apply(PeerIdentity("c1", BOB, FP, "verified", SAFETY), 1.0)
    panel = p.panel()
    assert "end to end" not in panel.signalling.words
    assert "end to end" not in panel.audio.words
    assert panel.summary == "Partly protected"
    assert "end to end" not in panel.summary
    assert panel.corrected  # the contradiction is said, not hidden


def test_a_sipsec_call_with_tunnel_and_verified_identity_is_best() -> None:
    p = established(Protection.SIPSEC)
    assert p.panel().signalling.label == "NOT YET"  # before the tunnel: no claim
    p.apply(TunnelState("c1", "verified"), 1.0)
    p.apply(media(END_TO_END_SIGNALLING, AUDIO_WORDS["end-to-end"]), 1.0)
    p.apply(PeerIdentity("c1", BOB, FP, "certificate", SAFETY), 1.0)
    panel = p.panel()
    assert panel.signalling.label == "END TO END" and panel.signalling.level is Level.BEST
    assert panel.identity.label == "CA-SIGNED"
    assert panel.summary == "Protected end to end; identity not verified"
    assert panel.summary_words.startswith("Who is on the other end:")
    assert panel.safety_number == (
        "01234 56789 01234 56789\n01234 56789 01234 56789\n01234 56789 01234 56789"
    )
    assert panel.fingerprint is not None and panel.fingerprint.startswith("0001 0203")
    assert panel.can_mark_verified
    p.marked_verified()
    panel = p.panel()
    assert panel.summary == "Protected end to end and verified"
    assert not panel.can_mark_verified
    assert "Keys travelled: inside the sipsec tunnel" in panel.audio.details


def test_changed_identity_makes_the_summary_loud() -> None:
    p = established(Protection.SIPSEC)
    p.apply(TunnelState("c1", "verified"), 1.0)
    p.apply(media(END_TO_END_SIGNALLING, AUDIO_WORDS["end-to-end"]), 1.0)
    p.apply(PeerIdentity("c1", BOB, FP, "changed", SAFETY), 1.0)
    panel = p.panel()
    assert panel.summary == "Not protected"
    assert panel.identity.label == "CHANGED" and panel.identity.colour == "#b22222"


def test_plain_call_is_not_protected() -> None:
    p = established(Protection.PLAIN)
    p.apply(media(SIGNALLING_WORDS["none"], AUDIO_WORDS["none"], "none"), 1.0)
    panel = p.panel()
    assert panel.summary == "Not protected"
    assert panel.summary_words == "Call setup: Call setup not encrypted"
    assert panel.audio.label == "NOT ENCRYPTED"
    assert "SRTP suite: none" in panel.audio.details


def test_each_row_has_a_text_label_beside_its_colour() -> None:
    for protection in Protection:
        panel = established(protection).panel()
        for row in panel.rows:
            assert row.label and row.words and row.colour


def test_timer_phase_and_events_of_other_calls() -> None:
    p = established(Protection.SIPS)
    assert p.phase_words == "In call"
    assert p.timer(1.0) == "0:00"
    assert p.timer(66.2) == "1:05"
    assert p.timer(3600 + 62) == "1:01:01"
    assert not p.apply(CallState("other", "outgoing", BOB, "ended"), 2.0)
    p.apply(CallState("c1", "outgoing", BOB, "ended", "the other side hung up"), 11.0)
    assert p.phase_words == "Call ended: the other side hung up"
    assert p.timer(500.0) == "0:10"  # frozen at the end


def test_safety_number_groups_of_five() -> None:
    assert safety_number_groups("12345 67890-11111", per_line=2) == "12345 67890\n11111"


# --- history --------------------------------------------------------------------------------


def test_history_row_summarises_protection() -> None:
    entry = HistoryEntry(
        "c1",
        "outgoing",
        BOB,
        dt.datetime(2026, 1, 2, 10, 0, tzinfo=dt.UTC),
        duration=75.0,
        outcome="answered",
        ended=True,
        signalling=SIGNALLING_WORDS["hops"],
        audio=AUDIO_WORDS["sdes-hops"],
    )
    row = history_row(entry, dt.UTC)
    assert row.direction == "↗ Outgoing"
    assert row.start == "2026-01-02 10:00" and row.duration == "1:15"
    assert row.protection == "Partly protected" and row.level is Level.WEAK


# --- trace ----------------------------------------------------------------------------------

INVITE = (
    b"INVITE sips:bob@biloxi.test SIP/2.0\r\n"
    b"Call-ID: abc@host\r\n"
    b'Proxy-Authorization: Digest username="alice", response="0123456789abcdef"\r\n'
    b'authorization: Digest username="alice", response="fedcba"\r\n'
    b"Content-Type: application/sdp\r\n\r\n"
    b"v=0\r\nk=clear:secretkey\r\n"
    b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 "
    b"inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:32\r\n"
)


def test_redaction_hides_credentials_and_keys() -> None:
    text = redact_raw(INVITE)
    assert "0123456789abcdef" not in text and "fedcba" not in text
    assert "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz" not in text
    assert "secretkey" not in text
    assert "Proxy-Authorization: Digest [redacted]" in text
    assert "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:[redacted]|2^20|1:32" in text
    assert "INVITE sips:bob@biloxi.test SIP/2.0" in text  # the rest stays readable


def test_ladder_columns_arrows_and_call_filter() -> None:
    entries = [
        TraceEntry(
            0.0,
            "sent",
            "proxy.atlanta.test",
            "INVITE sips:bob@biloxi.test SIP/2.0",
            INVITE,
            "tls-hop",
        ),
        TraceEntry(
            0.1,
            "received",
            "proxy.atlanta.test",
            "SIP/2.0 100 Trying",
            b"SIP/2.0 100 Trying\r\nCall-ID: abc@host\r\n\r\n",
            "tls-hop",
        ),
        TraceEntry(
            0.2,
            "received",
            "bob",
            "SIP/2.0 200 OK",
            b"SIP/2.0 200 OK\r\ni: abc@host\r\n\r\n",
            "sipsec-tunnel",
        ),
        TraceEntry(
            0.3,
            "sent",
            "proxy.atlanta.test",
            "OPTIONS x SIP/2.0",
            b"OPTIONS x SIP/2.0\r\nCall-ID: other\r\n\r\n",
            "none",
        ),
    ]
    model = LadderModel.from_entries(entries, call_ids={"abc@host"})
    assert model.parties == ["You", "proxy.atlanta.test", "bob"]
    assert [(a.source, a.target, a.label) for a in model.arrows] == [
        (0, 1, "INVITE"),
        (1, 0, "100 Trying"),
        (2, 0, "200 OK"),
    ]
    assert [a.marker for a in model.arrows] == [
        "TLS to this hop",
        "TLS to this hop",
        "sipsec tunnel",
    ]
    assert model.arrows[0].colour != model.arrows[2].colour
    assert "[redacted]" in model.arrows[0].raw
    assert call_id_of(b"SIP/2.0 200 OK\r\nCALL-ID: x\r\n\r\nCall-ID: y") == "x"


def test_incoming_inside_a_tunnel_is_end_to_end_before_media() -> None:
    p = CallPresenter("c9", BOB, "incoming")
    assert p.panel().signalling.label == "SERVERS CAN READ"  # a sips: peer, no tunnel
    p.apply(TunnelState("c9", "verified"), 0.0)
    assert p.panel().signalling.label == "END TO END"
    p.apply(TunnelState("c9", "closed"), 1.0)  # it stays so for this call
    assert p.panel().signalling.label == "END TO END"
    q = CallPresenter("c8", BOB, "incoming")
    q.apply(TunnelState("c8", "failed"), 0.0)
    assert q.panel().signalling.label != "END TO END"


def test_hold_and_downgrade_are_shown() -> None:
    p = established(Protection.SIPS)
    p.apply(media(SIGNALLING_WORDS["hops"], AUDIO_WORDS["sdes-hops"]), 1.0)

    @dataclass(frozen=True)
    class CallHeld:
        name: ClassVar[str] = "call_held"
        call_id: str
        by: str
        held: bool

    @dataclass(frozen=True)
    class MediaDowngraded:
        name: ClassVar[str] = "media_downgraded"
        call_id: str
        reason: str

    p.apply(CallHeld("c1", "peer", True), 2.0)
    assert p.phase_words == "The other side put the call on hold"
    p.apply(CallHeld("c1", "peer", False), 3.0)
    assert p.phase_words == "In call"
    p.apply(MediaDowngraded("c1", "the re-INVITE dropped SRTP"), 4.0)
    panel = p.panel()
    assert panel.audio.label == "NOT ENCRYPTED" and panel.summary == "Not protected"
    assert "Encryption dropped: the re-INVITE dropped SRTP" in panel.audio.details


def test_claimed_with_a_certificate_does_not_talk_of_digest() -> None:
    p = established(Protection.SIPSEC)
    p.apply(PeerIdentity("c1", BOB, FP, "claimed", SAFETY), 1.0)
    row = p.panel().identity
    assert row.label == "CLAIMED" and "vouched for by nobody" in row.words
    assert "Digest" not in row.words and row.details == ()
