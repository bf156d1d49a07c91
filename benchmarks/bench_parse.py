"""Parse a typical INVITE: ours against sippy and sipmessage (``python benchmarks/bench_parse.py``).

"Full parse" means every header the transaction and dialog layers read has been turned into
its typed value:

- ours: ``parse_message`` + ``from_``, ``to``, ``vias``, ``cseq``, ``contacts``, ``call_id``,
  ``max_forwards``, ``content_type`` and the Request-URI fields;
- sippy: ``SipRequest(buf)`` + ``getBody()`` on every header (sippy parses header bodies
  lazily; ``getBody()`` forces it) + the Request-URI fields;
- sipmessage: ``Message.parse`` + the matching typed properties.

Prints microseconds per parse and the ratios; never asserts a time. CPU time on a shared
machine is noisy: ``benchmarks/bench_parse_instructions.py`` counts the instructions of the same
full parses under callgrind, which repeat exactly.
"""

from __future__ import annotations

import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from softphone.sip.message import Request
from softphone.sip.parser import parse_message
from softphone.sip.uri import SipURI

SDP = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 client.atlanta.example.com\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.101\r\n"
    b"t=0 0\r\n"
    b"m=audio 49172 RTP/AVP 0 8 97\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:97 telephone-event/8000\r\n"
)

INVITE = (
    b"INVITE sip:bob@biloxi.example.com;transport=tcp SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP proxy.atlanta.example.com:5060;branch=z9hG4bK2d4790.1;received=192.0.2.1\r\n"
    b"Via: SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;rport=5060\r\n"
    b"Max-Forwards: 69\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n'
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, MESSAGE, SUBSCRIBE, INFO\r\n"
    b"Supported: replaces, outbound, gruu, timer\r\n"
    b"User-Agent: Softphone/0.1 (bench)\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)


def ours_lazy() -> object:
    return parse_message(INVITE)


def ours_full() -> object:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    uri = msg.uri
    assert isinstance(uri, SipURI)
    touched = (
        msg.from_.tag,
        msg.to.uri,
        [via.branch for via in msg.vias],
        msg.cseq.seq,
        [c.uri for c in msg.contacts],
        msg.call_id,
        msg.max_forwards,
        msg.content_type,
        uri.user,
        uri.host,
        uri.port,
        uri.transport,
        msg.headers.get_all("Allow"),
        msg.headers.get_all("Supported"),
        msg.headers.get("User-Agent"),
    )
    return touched


def _sippy() -> tuple[Callable[[], object], Callable[[], object]] | None:
    try:
        from sippy.SipRequest import SipRequest  # optional: may be absent
    except ImportError:
        return None
    text = INVITE.decode()

    def lazy() -> object:
        return SipRequest(text)

    def full() -> object:
        req = SipRequest(text)
        for hf in req.headers:
            hf.getBody()
        ruri = req.getRURI()
        return ruri.username, ruri.host, ruri.port, req.body

    return lazy, full


def _sipmessage() -> tuple[Callable[[], object], Callable[[], object]] | None:
    try:
        from sipmessage import Message  # optional: may be absent
    except ImportError:
        return None

    def lazy() -> object:
        return Message.parse(INVITE)

    def full() -> object:
        msg = Message.parse(INVITE)
        return (
            msg.from_address,
            msg.to_address,
            msg.via,
            msg.cseq,
            msg.contact,
            msg.call_id,
            msg.max_forwards,
            msg.content_type,
            msg.uri.user,
            msg.uri.host,
            msg.uri.port,
            msg.supported,
        )

    return lazy, full


def measure(
    funcs: dict[str, Callable[[], object]], number: int = 1000, rounds: int = 15
) -> dict[str, float]:
    """Microseconds per call of each function: best of ``rounds``, the functions interleaved.

    CPU time of this process (``process_time``), not wall time, and interleaving, so that other
    work on a shared machine disturbs every contender alike; the minimum is the least noisy.
    """
    best = dict.fromkeys(funcs, float("inf"))
    for func in funcs.values():
        func()  # warm caches and fail early if broken
    for _ in range(rounds):
        for name, func in funcs.items():
            elapsed = min(timeit.repeat(func, number=number, repeat=1, timer=time.process_time))
            best[name] = min(best[name], elapsed / number * 1e6)
    return best


def main() -> None:
    print(f"INVITE of {len(INVITE)} bytes (body {len(SDP)}); us per parse, CPU time, best of 15")
    funcs: dict[str, Callable[[], object]] = {"ours lazy": ours_lazy, "ours full": ours_full}
    peers = []
    for name, factory in (("sippy", _sippy), ("sipmessage", _sipmessage)):
        pair = factory()
        if pair is None:
            print(f"  {name}: not importable, skipped")
            continue
        try:
            pair[0](), pair[1]()
        except Exception as exc:  # noqa: BLE001  # a peer's failure is reported, not fatal
            print(f"  {name}: failed: {exc!r}")
            continue
        funcs[f"{name} lazy"], funcs[f"{name} full"] = pair
        peers.append(name)
    us = measure(funcs)
    print(f"  {'softphone':<11} parse_message {us['ours lazy']:6.1f}   full {us['ours full']:6.1f}")
    for name in peers:
        lazy, full = us[f"{name} lazy"], us[f"{name} full"]
        print(
            f"  {name:<11} lazy          {lazy:6.1f}   full {full:6.1f}"
            f"   -> ours {full / us['ours full']:.2f}x faster on the full parse"
            f" ({lazy / us['ours lazy']:.2f}x lazy vs our parse_message)"
        )


if __name__ == "__main__":
    main()
