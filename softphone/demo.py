"""``softphone demo``: the sipsec demonstration (draft-gurbani-sip-sipsec-01 §6.7, Figure 3).

``softphone demo --headless`` starts the embedded demo network
(:mod:`softphone.demo_network`: two domains, two proxies, alice and bob on loopback), places
the same call twice, as ``sips:`` and as ``sipsec:``, and prints for each the ladder diagram
and what each proxy saw (:mod:`softphone.demo_ladder`). It exits 1 when a proxy could read an
INVITE, SDP or key in the sipsec call, or when a call failed (draft §4 REQ 2).

``softphone demo`` with no option runs the GUI demo where there is a display and the GUI demo
exists, else the headless one. ``--preview`` prints the messages alice's phone would send,
built by the sans-I/O core without any network (also what runs while this build lacks the
network parts, and says so).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from softphone.sdp import LocalMedia, SrtpPolicy, build_offer, new_origin
from softphone.sip.dialog import new_call_id, new_tag
from softphone.sip.headers import NameAddr, Via
from softphone.sip.message import Headers, Request
from softphone.sip.transaction_layer import new_branch
from softphone.sip.uri import SipURI, parse_sipsec_uri, parse_uri, sipsec_request_uri

if TYPE_CHECKING:
    from softphone.demo_ladder import CallSummary
    from softphone.demo_network import DemoNetwork

# UX.md's vocabulary: one set of words everywhere.
SIGNALLING_HOP_BY_HOP = "Encrypted to each server; servers on the way can read it"
SIGNALLING_END_TO_END = "Encrypted end to end; servers only see that a call was set up"
AUDIO_KEYS_ON_HOPS = "Audio encrypted; every server on the way holds the key"
AUDIO_END_TO_END = "Audio encrypted end to end"

COMING = """\
Coming with the GUI: alice's and bob's phones side by side on the demo network, a "what the
proxies see" view, the trust dialog, and the safety numbers to compare.
Meanwhile: softphone demo --headless (the same calls, in the terminal).
"""

ALICE = "sips:alice@example.test"
ALICE_CONTACT = "sips:alice@127.0.0.1:5061;transport=tls"


def _base_headers(method: str, target: SipURI, cseq: int = 1) -> Headers:
    headers = Headers()
    headers.add("Via", str(Via("TLS", "127.0.0.1", 5061, {"branch": new_branch()})))
    headers.add("Max-Forwards", "70")
    headers.add("From", str(NameAddr(parse_uri(ALICE), params={"tag": new_tag()})))
    headers.add("To", str(NameAddr(target.copy(params={}, headers={}))))
    headers.add("Call-ID", new_call_id("example.test"))
    headers.add("CSeq", f"{cseq} {method}")
    return headers


def sips_invite() -> Request:
    """The INVITE of a ``sips:`` call, with an SDES offer: every proxy on the path reads it."""
    target = parse_uri("sips:bob@example.test")
    assert isinstance(target, SipURI)
    headers = _base_headers("INVITE", target)
    headers.add("Contact", f"<{ALICE_CONTACT}>")
    headers.add("Content-Type", "application/sdp")
    media = LocalMedia(address="127.0.0.1", port=40000, srtp=SrtpPolicy.MANDATORY)
    offer = build_offer(media, signalling_protected=True, origin=new_origin("alice", "127.0.0.1"))
    return Request("INVITE", target, headers, bytes(offer.sdp))


def sipsec_connect() -> Request:
    """The CONNECT a ``sipsec:`` URI becomes (draft-gurbani-sip-sipsec §6.2-6.4).

    It reveals no more than routing needs: no display name, no User-Agent, no Subject, no body.
    """
    target = sipsec_request_uri(parse_sipsec_uri("sipsec:bob@example.test"))
    headers = _base_headers("CONNECT", target)
    headers.add("Require", "sipsec")
    headers.add("Proxy-Require", "sipsec")
    return Request("CONNECT", target, headers)


def _show(message: Request) -> str:
    text = bytes(message).decode("utf-8", "replace")
    lines = []
    for raw in text.split("\r\n"):
        shown = raw
        if raw.startswith("a=crypto:"):
            # Show that the key is there in clear without printing a whole key to the terminal.
            head, _, key = raw.partition("inline:")
            shown = f"{head}inline:{key[:4]}...  <- the SRTP key, readable by this proxy"
        lines.append("    | " + shown)
    return "\n".join(lines).rstrip(" |\n")


def print_preview(out: TextIO) -> int:
    """The walk-through without a network: messages built by the SIP core, not sent."""
    print("Softphone terminal demo (preview: messages built by the SIP core, not sent)\n", file=out)
    print("1. alice calls sips:bob@example.test  - hop-by-hop TLS", file=out)
    print("   What each proxy on the way reads, after decrypting its TLS hop:", file=out)
    print(_show(sips_invite()), file=out)
    print(f"   Call setup: {SIGNALLING_HOP_BY_HOP}.", file=out)
    print(f"   Audio:      {AUDIO_KEYS_ON_HOPS}.\n", file=out)
    print("2. alice calls sipsec:bob@example.test  - end-to-end tunnel", file=out)
    print("   What each proxy on the way reads:", file=out)
    print(_show(sipsec_connect()), file=out)
    print(
        "    | ... then, after the 200 OK: TLS records between alice and bob, opaque to it.",
        file=out,
    )
    print("   The INVITE, the SDP and its keys travel inside the tunnel.", file=out)
    print(f"   Call setup: {SIGNALLING_END_TO_END}.", file=out)
    print(f"   Audio:      {AUDIO_END_TO_END}.\n", file=out)
    return 0


def gui_demo_available() -> bool:
    """Whether the GUI's demo exists in this build (the GUI issue adds ``ui.demo``)."""
    try:
        return importlib.util.find_spec("ui.demo") is not None
    except (ImportError, ValueError):
        return False


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


async def run_calls(
    out: TextIO,
    *,
    workdir: Path,
    color: bool = False,
    sabotage: str | None = None,
) -> int:
    """Start the demo network, place the ``sips:`` and the ``sipsec:`` call, print both, and
    return 0 only if every call worked and no proxy read the sipsec call's INVITE, SDP or keys.

    ``sabotage`` (tests): ``"sips-for-sipsec"`` places a ``sips:`` call where the sipsec call
    should be; ``"proxy-reads-tunnel"`` makes a proxy's view show the INVITE it must not read.
    """
    from softphone.demo_ladder import problems, render_call
    from softphone.demo_network import AnnounceAndAcceptOnce, DemoNetwork

    answerer = AnnounceAndAcceptOnce(out)
    failures: list[str] = []
    async with DemoNetwork.start(workdir, answerer=answerer, out=out) as net:
        print(
            "Demo network up: alice@atlanta.test and bob@biloxi.test registered over TLS.", file=out
        )
        if sabotage == "proxy-reads-tunnel":
            net.on_established = _leak_invite_into_view
        for kind in ("sips", "sipsec"):
            print(f"\nalice calls {kind}:bob@biloxi.test ...", file=out)
            placed = "sips" if (kind == "sipsec" and sabotage == "sips-for-sipsec") else kind
            run = await net.call(placed)
            summary = run.summary()
            if placed != kind:
                summary = _relabelled(summary, kind)
            print(render_call(summary, color=color), file=out)
            failures += problems(summary)
    print("", file=out)
    if failures:
        print(f"The demo FAILED ({len(failures)} problem(s)):", file=out)
        for problem in failures:
            print(f"  - {problem}", file=out)
        return 1
    print(
        "The demo succeeded: in the sipsec call no proxy could read the INVITE, the SDP or the",
        file=out,
    )
    print("keys; they relayed encrypted bytes between the two phones.", file=out)
    return 0


def _relabelled(summary: CallSummary, kind: str) -> CallSummary:
    return dataclasses.replace(summary, kind=kind)


def _leak_invite_into_view(net: DemoNetwork, kind: str) -> None:
    """Sabotage hook: a proxy that parsed the tunnel would have recorded the INVITE."""
    from softphone.server.observe import SipSeen
    from softphone.sip.parser import parse_message

    if kind != "sipsec":
        return
    invite = bytes(sips_invite())
    view = net.views["atlanta.test"]
    view.observe(SipSeen("atlanta.test", "in", "127.0.0.1:0", parse_message(invite), invite, 0.0))


def run_headless(
    out: TextIO | None = None,
    *,
    color: bool = False,
    workdir: Path | None = None,
    sabotage: str | None = None,
) -> int:
    """``softphone demo --headless``: the real calls, or the preview while this build lacks
    the network parts (said on stderr)."""
    from softphone.demo_network import missing_parts

    out = out or sys.stdout
    missing = missing_parts()
    if missing:
        print("The demo network is not yet available in this build:", file=sys.stderr)
        for part in missing:
            print(f"  - missing {part}", file=sys.stderr)
        print("Showing the preview instead.\n", file=sys.stderr)
        return print_preview(out)
    with tempfile.TemporaryDirectory(prefix="softphone-demo-") as tmp:
        return asyncio.run(
            run_calls(out, workdir=workdir or Path(tmp), color=color, sabotage=sabotage)
        )


def run_demo(*, gui: bool = False, headless: bool = False, color: bool | None = None) -> int:
    """Run the demo; returns the process exit status."""
    if gui or (not headless and has_display() and gui_demo_available()):
        if not gui_demo_available():
            print("softphone demo --gui: the GUI demo is not yet available.", file=sys.stderr)
            print(COMING, file=sys.stderr)
            return 2
        if not has_display() and not os.environ.get("QT_QPA_PLATFORM"):
            print(
                "softphone demo --gui: no display (DISPLAY/WAYLAND_DISPLAY unset). Run it on "
                "a desktop, or see the same calls in the terminal: softphone demo --headless",
                file=sys.stderr,
            )
            return 2
        module = importlib.import_module("ui.demo")
        status: int = module.main([])
        return status
    use_color = sys.stdout.isatty() if color is None else color
    return run_headless(sys.stdout, color=use_color)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="softphone demo",
        description="The sipsec demo: the same call as sips: and as sipsec: on an embedded "
        "network, and what each proxy could read. Exits 1 if a proxy could read the sipsec "
        "call's INVITE, SDP or keys.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--gui",
        action="store_true",
        help="open the GUI demo: both phones side by side and what the proxies see",
    )
    mode.add_argument(
        "--headless", action="store_true", help="run the calls and print ladders and reports"
    )
    mode.add_argument("--terminal", action="store_true", help="the same as --headless")
    mode.add_argument("--preview", action="store_true", help="only show the messages, no network")
    colour = parser.add_mutually_exclusive_group()
    colour.add_argument("--color", dest="color", action="store_true", default=None)
    colour.add_argument(
        "--no-color", dest="color", action="store_false", help="(default when not a terminal)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.preview:
        return print_preview(sys.stdout)
    return run_demo(gui=args.gui, headless=args.headless or args.terminal, color=args.color)


if __name__ == "__main__":
    sys.exit(main())
