"""``softphone demo``: the sipsec demonstration.

Today this is a terminal preview built by the real sans-I/O core: the messages alice's phone
would send for a ``sips:`` call and for a ``sipsec:`` call, and what a proxy on the way gets to
read in each case. The embedded demo network (registrar, two proxies, bob's phone on loopback)
and the GUI side by side arrive with later issues; the preview says so.
"""

from __future__ import annotations

import sys

from softphone.sdp import LocalMedia, SrtpPolicy, build_offer, new_origin
from softphone.sip.dialog import new_call_id, new_tag
from softphone.sip.headers import NameAddr, Via
from softphone.sip.message import Headers, Request
from softphone.sip.transaction_layer import new_branch
from softphone.sip.uri import SipURI, parse_sipsec_uri, parse_uri, sipsec_request_uri

# UX.md's vocabulary: one set of words everywhere.
SIGNALLING_HOP_BY_HOP = "Encrypted to each server; servers on the way can read it"
SIGNALLING_END_TO_END = "Encrypted end to end; servers only see that a call was set up"
AUDIO_KEYS_ON_HOPS = "Audio encrypted; every server on the way holds the key"
AUDIO_END_TO_END = "Audio encrypted end to end"

COMING = """\
Coming next in the demo:
  - an embedded network on loopback: a registrar, two proxies and bob's phone;
  - both calls placed for real, with a "what the proxies see" view fed by the proxies themselves;
  - the trust dialog, and the safety number both phones show.
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
            shown = f"{head}inline:{key[:10]}…  <- the SRTP key, readable by this proxy"
        lines.append("    | " + shown)
    return "\n".join(lines).rstrip(" |\n")


def run_demo(*, gui: bool = False) -> int:
    """Run the demo; returns the process exit status."""
    if gui:
        print("softphone demo --gui: the GUI demo is not yet available.", file=sys.stderr)
        print(COMING, file=sys.stderr)
        return 2
    print("Softphone terminal demo (preview: messages built by the SIP core, not sent yet)\n")
    print("1. alice calls sips:bob@example.test  — hop-by-hop TLS")
    print("   What each proxy on the way reads, after decrypting its TLS hop:")
    print(_show(sips_invite()))
    print(f"   Call setup: {SIGNALLING_HOP_BY_HOP}.")
    print(f"   Audio:      {AUDIO_KEYS_ON_HOPS}.\n")
    print("2. alice calls sipsec:bob@example.test  — end-to-end tunnel")
    print("   What each proxy on the way reads:")
    print(_show(sipsec_connect()))
    print("    | … then, after the 200 OK: TLS records between alice and bob, opaque to it.")
    print("   The INVITE, the SDP and its keys travel inside the tunnel.")
    print(f"   Call setup: {SIGNALLING_END_TO_END}.")
    print(f"   Audio:      {AUDIO_END_TO_END}.\n")
    print(COMING)
    return 0
