"""The demo's renderer and verdict (softphone/demo_ladder.py): pure functions, exact text."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from softphone.demo_ladder import (
    END_TO_END_SIGNALLING,
    Arrow,
    CallSummary,
    Note,
    PhoneWords,
    ProxyReport,
    Span,
    mask_crypto_line,
    problems,
    proxy_report,
    render_call,
    render_ladder,
    render_report,
    short_first_line,
    slice_view,
    steps_from_proxy,
    steps_from_trace,
)
from softphone.server.observe import ProxyView, SipSeen, TunnelClosed, TunnelOpened
from softphone.sip.parser import parse_message

KEY = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
SDP = (
    "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/SAVP 0\r\n"
    f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\n"
)
HOPS = "Encrypted to each server; servers on the way can read it"
AUDIO_HOPS = "Audio encrypted; every server on the way holds the key"


def message(first: str, vias: int, method: str, body: str = "", call_id: str = "c1") -> bytes:
    lines = [first]
    lines += [f"Via: SIP/2.0/TLS 127.0.0.1:{5000 + i};branch=z9hG4bK{i}x" for i in range(vias)]
    lines += [
        "From: <sips:alice@atlanta.test>;tag=a",
        "To: <sips:bob@biloxi.test>",
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
        "Max-Forwards: 70",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def seen(
    proxy: str, direction: str, raw: bytes, at: float, peer: str = "127.0.0.1:40001"
) -> SipSeen:
    return SipSeen(proxy, direction, peer, parse_message(raw), raw, at)


INVITE = "INVITE sips:bob@biloxi.test SIP/2.0"
CONNECT = "CONNECT sips:bob@biloxi.test SIP/2.0"


def sips_view() -> ProxyView:
    view = ProxyView("atlanta.test")
    view.observe(seen("atlanta.test", "in", message(INVITE, 1, "INVITE", SDP), 1.0))
    view.observe(seen("atlanta.test", "out", message(INVITE, 2, "INVITE", SDP), 1.1))
    view.observe(seen("atlanta.test", "in", message("SIP/2.0 200 OK", 2, "INVITE", SDP), 2.0))
    view.observe(seen("atlanta.test", "out", message("SIP/2.0 200 OK", 1, "INVITE", SDP), 2.1))
    return view


def sipsec_view() -> ProxyView:
    view = ProxyView("atlanta.test")
    view.observe(seen("atlanta.test", "in", message(CONNECT, 1, "CONNECT"), 1.0))
    view.observe(seen("atlanta.test", "out", message(CONNECT, 2, "CONNECT"), 1.1))
    view.observe(seen("atlanta.test", "in", message("SIP/2.0 200 OK", 2, "CONNECT"), 2.0))
    view.observe(seen("atlanta.test", "out", message("SIP/2.0 200 OK", 1, "CONNECT"), 2.1))
    view.observe(TunnelOpened("atlanta.test", 7, "127.0.0.1:1", "127.0.0.1:2", "sips:bob", 2.2))
    view.add_relayed(7, 1000)
    view.observe(TunnelClosed("atlanta.test", 7, 3000, 2500, "closed by the caller", 9.0))
    return view


def test_ladder_is_drawn_like_figure_3() -> None:
    steps = [
        Arrow(1.0, "alice", "atlanta.test", "CONNECT sips:bob@biloxi.test"),
        Note(2.0, "atlanta.test", "goes transparent"),
        Span(3.0, "alice", "bob", "Tunnel established"),
        Arrow(4.0, "bob", "alice", "200 OK (INVITE)", "sipsec-tunnel"),
        Note(5.0, "bob", "checked the peer's certificate: accepted once"),
    ]
    # Given out of order: the ladder is in time order.
    text = render_ladder([steps[3], steps[0], steps[4], steps[2], steps[1]])
    pipes = "      |                       |                       |                       |"
    expected = [
        "    alice               atlanta.test             biloxi.test                 bob",
        pipes,
        "      |(1) CONNECT sips:bob@biloxi.test               |                       |",
        "      |---------------------->|                       |                       |",
        "      |                       |(2) goes transparent   |                       |",
        "      |(3) Tunnel established |                       |                       |",
        "      |" + "." * 71 + "|",
        "      |(4) 200 OK (INVITE)  [end-to-end TLS: opaque to proxies]               |",
        "      |<" + "=" * 70 + "|",
        pipes + "(5) checked the",
        pipes + "    peer's",
        pipes + "    certificate:",
        pipes + "    accepted once",
        pipes,
    ]
    assert text.split("\n") == expected


def test_colour_is_optional_and_never_the_only_sign() -> None:
    steps = [Arrow(1.0, "alice", "bob", "INVITE sips:bob@biloxi.test", "sipsec-tunnel")]
    plain = render_ladder(steps)
    coloured = render_ladder(steps, color=True)
    assert "\x1b[" not in plain and "\x1b[32m" in coloured
    assert "opaque to proxies" in plain and "=" * 10 in plain


def test_labels_never_run_past_100_columns() -> None:
    long = "INVITE sips:" + "b" * 200 + "@biloxi.test"
    text = render_ladder([Arrow(1.0, "biloxi.test", "bob", long), Note(2, "bob", "x" * 300)])
    assert max(len(line) for line in text.split("\n")) <= 100
    assert text.isascii()


@pytest.mark.parametrize(
    ("first", "method", "shown"),
    [
        ("INVITE sips:bob@biloxi.test SIP/2.0", None, "INVITE sips:bob@biloxi.test"),
        ("SIP/2.0 200 OK", "CONNECT", "200 OK (CONNECT)"),
        ("SIP/2.0 407 Proxy Authentication Required", None, "407 Proxy Authentication Required"),
    ],
)
def test_short_first_line(first: str, method: str | None, shown: str) -> None:
    assert short_first_line(first, method) == shown


def test_crypto_key_is_masked_after_four_characters() -> None:
    line = f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4"
    assert mask_crypto_line(line) == (
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNf" + "*" * 36 + "|2^20|1:4"
    )


def test_a_sips_proxy_view_reads_invite_sdp_and_keys() -> None:
    report = proxy_report(sips_view())
    assert report.methods == ("INVITE", "200 INVITE")
    assert report.read_invite and report.read_sdp and report.read_keys
    assert report.crypto_line is not None and KEY not in report.crypto_line
    assert report.crypto_line.startswith("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNf***")
    assert report.opaque_bytes == 0


def test_a_sipsec_proxy_view_reads_only_the_connect() -> None:
    report = proxy_report(sipsec_view())
    assert report.methods == ("CONNECT", "200 CONNECT")
    assert not (report.read_invite or report.read_sdp or report.read_keys)
    assert report.crypto_line is None
    assert report.opaque_bytes == 5500


def test_a_call_slice_counts_only_its_own_observations_and_tunnels() -> None:
    view = sipsec_view()
    start, before = len(view.observations), set(view.relayed)
    view.observe(seen("atlanta.test", "in", message(INVITE, 1, "INVITE", SDP, "c2"), 10.0))
    part = slice_view(view, start, before)
    assert part.methods_read() == ["INVITE"] and part.opaque_bytes == 0


def test_steps_from_a_proxy_go_to_the_right_columns() -> None:
    steps = steps_from_proxy(sipsec_view(), own_phone="alice", other_proxy="biloxi.test")
    arrows = [(s.src, s.dst, s.label) for s in steps if isinstance(s, Arrow)]
    assert arrows == [
        ("atlanta.test", "biloxi.test", "CONNECT sips:bob@biloxi.test"),
        ("atlanta.test", "alice", "200 OK (CONNECT)"),
    ]
    notes = [s.text for s in steps if isinstance(s, Note)]
    assert notes == ["goes transparent", "tunnel closed, 5500 bytes relayed unread"]
    # The other proxy's listening port decides before the Via stack does.
    view = ProxyView("biloxi.test")
    raw = message("SIP/2.0 200 OK", 1, "INVITE")
    view.observe(seen("biloxi.test", "out", raw, 1.0, peer="127.0.0.1:5999"))
    by_port = steps_from_proxy(view, own_phone="bob", other_proxy="atlanta.test", other_port=5999)
    assert [(s.src, s.dst) for s in by_port if isinstance(s, Arrow)] == [
        ("biloxi.test", "atlanta.test")
    ]


@dataclass(frozen=True)
class FakeTrace:
    at: float
    direction: str
    first_line: str
    raw: bytes
    protection: str
    peer: str = "127.0.0.1:5061"


def test_steps_from_a_phone_trace_draw_what_it_sent() -> None:
    entries = [
        FakeTrace(1.0, "sent", CONNECT, message(CONNECT, 1, "CONNECT"), "tls-hop"),
        FakeTrace(2.0, "received", "SIP/2.0 200 OK", b"", "tls-hop"),
        FakeTrace(3.0, "sent", INVITE, message(INVITE, 1, "INVITE", SDP), "sipsec-tunnel"),
        FakeTrace(
            4.0, "sent", "ACK sips:bob SIP/2.0", message("ACK x SIP/2.0", 1, "ACK"), "sipsec-tunnel"
        ),
    ]
    steps = steps_from_trace("alice", "atlanta.test", "bob", entries)
    assert steps == [
        Arrow(1.0, "alice", "atlanta.test", "CONNECT sips:bob@biloxi.test", "tls-hop"),
        Arrow(3.0, "alice", "bob", "INVITE sips:bob@biloxi.test", "sipsec-tunnel"),
        Arrow(4.0, "alice", "bob", "ACK sips:bob", "sipsec-tunnel"),
    ]


def sipsec_summary() -> CallSummary:
    clean = proxy_report(sipsec_view())
    return CallSummary(
        kind="sipsec",
        target="sipsec:bob@biloxi.test",
        ok=True,
        proxies=(clean, replace(clean, proxy="biloxi.test")),
        phones=(
            PhoneWords("alice", END_TO_END_SIGNALLING, "Audio encrypted end to end"),
            PhoneWords("bob", END_TO_END_SIGNALLING, "Audio encrypted end to end"),
        ),
        safety_numbers={"alice": "12345 67890", "bob": "12345 67890"},
    )


def test_a_clean_sipsec_call_has_no_problems() -> None:
    assert problems(sipsec_summary()) == []
    assert render_call(sipsec_summary()).endswith("\nOK")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"read_invite": True}, "atlanta.test read the INVITE in the sipsec call"),
        ({"read_sdp": True}, "atlanta.test read the SDP in the sipsec call"),
        ({"read_keys": True}, "atlanta.test read the SRTP keys in the sipsec call"),
        ({"opaque_bytes": 0}, "atlanta.test relayed no opaque bytes in the sipsec call"),
    ],
)
def test_a_proxy_reading_the_sipsec_call_is_a_problem(
    change: dict[str, object], problem: str
) -> None:
    summary = sipsec_summary()
    leaky = summary.proxies[0]
    if change.pop("read_invite", False):
        leaky = replace(leaky, methods=(*leaky.methods, "INVITE"))
    leaky = replace(leaky, **change)  # type: ignore[arg-type]
    found = problems(replace(summary, proxies=(leaky, summary.proxies[1])))
    assert found == [problem]
    assert f"PROBLEM: {problem}" in render_call(replace(summary, proxies=(leaky,)))


def test_other_sipsec_problems() -> None:
    summary = sipsec_summary()
    differ = replace(summary, safety_numbers={"alice": "1", "bob": "2"})
    assert problems(differ) == ["the safety numbers differ or are missing in the sipsec call"]
    hops = replace(summary, phones=(PhoneWords("bob", HOPS, AUDIO_HOPS),))
    assert problems(hops) == ["bob does not show end to end in the sipsec call"]
    failed = replace(summary, ok=False, error="408 Request Timeout")
    assert problems(failed) == ["the sipsec call failed: 408 Request Timeout"]


def test_a_sips_call_never_says_end_to_end() -> None:
    sips = CallSummary(
        "sips", "sips:bob@biloxi.test", True, phones=(PhoneWords("alice", HOPS, AUDIO_HOPS),)
    )
    assert problems(sips) == []
    boast = replace(sips, phones=(PhoneWords("alice", END_TO_END_SIGNALLING, AUDIO_HOPS),))
    assert problems(boast) == ["alice calls a sips: call end to end"]


def test_report_of_a_sips_call() -> None:
    report = proxy_report(sips_view())
    summary = CallSummary(
        "sips",
        "sips:bob@biloxi.test",
        True,
        proxies=(report,),
        phones=(PhoneWords("alice", HOPS, AUDIO_HOPS),),
    )
    assert render_report(summary).split("\n") == [
        "What each proxy saw (sips call to sips:bob@biloxi.test):",
        "  atlanta.test",
        "    SIP it read:         INVITE, 200 INVITE",
        "    read the INVITE:     yes",
        "    read the SDP:        yes",
        "    read the SRTP keys:  yes",
        "      a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNf" + "*" * 36,
        "    opaque bytes relayed: 0",
        "What each phone shows:",
        f"  alice: call setup: {HOPS}",
        f"         audio:      {AUDIO_HOPS}",
    ]


def test_report_of_a_sipsec_call_shows_both_safety_numbers() -> None:
    text = render_report(sipsec_summary())
    assert "    SIP it read:         CONNECT, 200 CONNECT" in text
    assert "    opaque bytes relayed: 5500" in text
    assert "  alice: 12345 67890\n  bob: 12345 67890\n  equal: yes" in text


def test_proxy_report_is_a_plain_record() -> None:
    r = ProxyReport("p", ("CONNECT",), False, False, None, 3)
    assert not r.read_invite


def test_registrations_are_not_part_of_a_call() -> None:
    view = ProxyView("atlanta.test")
    register = message("REGISTER sips:atlanta.test SIP/2.0", 1, "REGISTER")
    view.observe(seen("atlanta.test", "in", register, 1.0))
    view.observe(seen("atlanta.test", "in", message(CONNECT, 1, "CONNECT"), 2.0))
    assert slice_view(view, 0, ()).methods_read() == ["CONNECT"]
    trace = [FakeTrace(1.0, "sent", "REGISTER sips:atlanta.test SIP/2.0", register, "tls-hop")]
    assert steps_from_trace("alice", "atlanta.test", "bob", trace) == []


def test_a_long_key_is_masked_to_fit_the_line() -> None:
    line = "a=crypto:1 AEAD_AES_256_GCM inline:" + "k" * 60
    assert mask_crypto_line(line) == "a=crypto:1 AEAD_AES_256_GCM inline:kkkk" + "*" * 36
