"""The caller's side of a sipsec call (draft-gurbani-sip-sipsec-01 §6.4): :func:`dial`.

CONNECT with ``Require``/``Proxy-Require: sipsec`` and an anonymous From over the
registration flow; 407 answered by the calls' Digest client on the same flow; a refusal
(420/405/501/403/404/480/486/603) in words; on 2xx the flow is detached and becomes the
tunnel, the nested TLS client handshake runs inside it, the callee's certificate is judged
for the dialled AOR (:class:`~softphone.ua.trustgate.TrustGate`), and the call is placed
inside the tunnel. The person sees ``sipsec:bob@biloxi.test`` (``Call.peer``); the INVITE
inside carries the ``sips:`` Request-URI (§6.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from softphone.media.tone import AudioSink, FrameSource
from softphone.security.certificates import Identity
from softphone.security.identity import IdentityMaterial
from softphone.security.trust import Purpose
from softphone.sip.dialog import new_call_id, new_tag
from softphone.sip.digest import (
    AuthenticationFailedError,
    NoUsableChallengeError,
)
from softphone.sip.errors import LocalProtocolError, ParseError
from softphone.sip.headers import NameAddr, Via
from softphone.sip.message import Headers, Request, Response
from softphone.sip.transaction_layer import new_branch
from softphone.sip.uri import SipURI, parse_sipsec_uri, sipsec_request_uri
from softphone.transport.flow import Flow
from softphone.ua.call import Call, CallDirection, CallError, ended_reason
from softphone.ua.events import TunnelState
from softphone.ua.registration import RegistrationError

if TYPE_CHECKING:
    from softphone.ua.useragent import UserAgent

from softphone.ua.tunnel import (
    ANONYMOUS_URI,
    OPTION_TAG,
    REREGISTER_WAIT,
    SipsecCallError,
    TunnelHost,
    emit_identity,
    handshake,
    record_in_ledger,
    shown_peer,
    tls_config,
    tunnel_state,
    warm_own_half,
    warm_safety_number,
    went_transparent,
)
from softphone.ua.turns import next_turn

__all__ = ["dial"]

log = logging.getLogger(__name__)


async def dial(
    ua: UserAgent,
    text: str,
    *,
    source: FrameSource | None = None,
    sink: AudioSink | None = None,
) -> Call:
    """Place a sipsec call to ``text`` (``sipsec:bob@biloxi.test``): returns the Call inside
    the tunnel, ``calling``; raises :class:`SipsecCallError` with the reason in words."""
    try:
        target = sipsec_request_uri(parse_sipsec_uri(text.strip()))
    except (ParseError, LocalProtocolError) as exc:
        raise CallError(f"not an address we can call end to end: {exc}") from exc
    if target.user is None:
        raise CallError("a sipsec address names a person: sipsec:user@domain")
    peer_aor = f"sip:{target.user}@{target.host}"
    identity = ua._sipsec_identity()
    warm_own_half(ua, identity)
    flow = ua.flow
    if ua._tunnel_busy or (flow is not None and any(f is flow for f in ua._call_flow.values())):
        raise CallError(
            "finish the current call first: an end-to-end (sipsec) call takes over the "
            "connection to the proxy"
        )
    if flow is not None and flow.detached and not ua._closing:
        # A previous tunnel took the flow and the new registration is under way: wait for it
        # (bounded) rather than fail a call placed right after the last one.
        with contextlib.suppress(TimeoutError):
            await ua._wait_registered(REREGISTER_WAIT)
        flow = ua.flow
    if flow is None or flow.is_closed or ua._closing:
        raise CallError("not connected to the registrar: register first")
    if flow.transport == "UDP":
        raise CallError("an end-to-end (sipsec) call needs a TCP or TLS connection to the proxy")
    tunnel_id = new_call_id()
    out = CallDirection.OUTGOING
    ua._tunnel_busy = True
    try:
        tunnel_state(ua, tunnel_id, out, peer_aor, "connecting")
        try:
            return await _dial(ua, flow, target, peer_aor, tunnel_id, identity, source, sink)
        except SipsecCallError as exc:
            tunnel_state(ua, tunnel_id, out, peer_aor, "failed", exc.reason, went_transparent(exc))
            raise
    finally:
        ua._tunnel_busy = False


async def _dial(  # noqa: PLR0917  # internal steps of one flow
    ua: UserAgent,
    flow: Flow,
    target: SipURI,
    peer_aor: str,
    tunnel_id: str,
    identity: IdentityMaterial,
    source: FrameSource | None,
    sink: AudioSink | None,
) -> Call:
    out = CallDirection.OUTGOING
    flow.stop_keepalive()  # a CRLF ping after the 200 would land inside the nested TLS
    try:
        response = await _connect(ua, flow, target, tunnel_id)
    except BaseException:
        ua._resume_keepalive(flow)
        raise
    if not 200 <= response.status_code < 300:
        ua._resume_keepalive(flow)
        raise _refused(ua, response, target)
    stream, leftover = await flow.detach()
    ua._flow_taken(flow)
    nested = await handshake(ua, stream, leftover, tls_config(identity, server=False), flow, out)
    warm = warm_safety_number(identity, nested.peer_chain(), peer_aor)  # while we judge
    tunnel_state(ua, tunnel_id, out, peer_aor, "tunnel-open", "", True)
    ua.ledger.pin_verified(peer_aor)  # a contact verified in the ledger is pinned: changed is loud
    verdict, report = await ua.gate.check_identity(
        nested.peer_chain(),
        Identity.aor(peer_aor),
        Purpose.SERVER,
        nested.close,
        waiting_for=f"end-to-end call to {peer_aor}",
    )
    if not verdict.accepted:
        nested.close()
        raise SipsecCallError(f"not connected: {report.headline}")
    record_in_ledger(ua, peer_aor, report, nested.close)
    await next_turn()  # the ledger was read and written: the INVITE in a turn of its own
    tunnel = Flow(nested, flow.target, transport="TLS", connect_round_trips=nested.handshake_waits)
    host = TunnelHost(
        ua,
        tunnel,
        tunnel_id=tunnel_id,
        direction=out,
        peer_aor=peer_aor,
        report=report,
        identity=identity,
    )
    # The safety number is ready before the INVITE leaves (the peer's half, ~12 ms worked out
    # on the loop in 1 ms slices since the trust check began; nothing once memoised):
    # PeerIdentity comes first, and emit_identity never hashes.
    with contextlib.suppress(Exception):  # its failure only means no number is shown
        await asyncio.shield(warm)
    # The person dialled sipsec:, and sees it; the INVITE inside still goes to the sips: URI.
    peer = shown_peer(peer_aor)
    call = Call(
        host,
        out,
        peer,
        source=source,
        sink=sink,
        media_timeout=ua.media_timeout,
        media_thread=ua.media_thread,
    )
    host.call = call
    ua.calls.append(call)
    try:
        call.start_outgoing(target)
    except BaseException:
        ua._forget_call(call)
        host.close("the call could not start")
        raise
    ua._emit(TunnelState(tunnel_id, out.value, peer_aor, "verified", "", True, call.call_id))
    emit_identity(ua, host, call)
    return call


def _connect_request(ua: UserAgent, flow: Flow, target: SipURI, tunnel_id: str) -> Request:
    """The CONNECT (draft §6.3-6.4): Request-Line, Require and Proxy-Require ``sipsec``, and
    only what routing needs; no body, no display name, User-Agent, Subject or Contact."""
    host, port = flow.local_address
    host = f"[{host}]" if ":" in host else host
    via = Via(flow.transport, host, port, {"branch": new_branch(), "rport": None})
    sender = ua.account.aor_uri if ua.account.sipsec_reveal_identity else ANONYMOUS_URI
    headers = Headers()
    headers.add("Via", str(via))
    headers.add("Max-Forwards", "70")
    headers.add("From", f"<{sender}>;tag={new_tag()}")
    headers.add("To", str(NameAddr(target)))
    headers.add("Call-ID", tunnel_id)
    headers.add("CSeq", "1 CONNECT")
    headers.add("Require", OPTION_TAG)
    headers.add("Proxy-Require", OPTION_TAG)
    return Request("CONNECT", target, headers)


async def _connect(ua: UserAgent, flow: Flow, target: SipURI, tunnel_id: str) -> Response:
    """CONNECT and its final response; a 407/401 answered once by Digest on the same flow
    (the cached challenge makes the next CONNECT pre-emptive)."""
    request = _connect_request(ua, flow, target, tunnel_id)
    digest = ua._call_digest
    if digest is not None:
        for header in digest.authorize("CONNECT", str(target)):
            request.headers.add(header.name, header.value)
    for _attempt in range(2):
        try:
            response = await ua._send_request(flow, request)
        except RegistrationError as exc:
            raise SipsecCallError(f"no answer to the CONNECT: {exc.reason}") from exc
        if response.status_code not in (401, 407):
            return response
        request = _answer_challenge(ua, request, response)
    return response


def _answer_challenge(ua: UserAgent, old: Request, response: Response) -> Request:
    code = response.status_code
    challenge = "WWW-Authenticate" if code == 401 else "Proxy-Authenticate"
    answer = "Authorization" if code == 401 else "Proxy-Authorization"
    try:
        auth = ua._call_digest_client().handle_challenge(
            code,
            response.headers.get_all(challenge),
            "CONNECT",
            str(old.uri),
            sent=old.headers.get_all(answer),
        )
    except AuthenticationFailedError as exc:
        raise SipsecCallError(f"the proxy did not accept our password (realm {exc.realm})") from exc
    except (NoUsableChallengeError, ParseError) as exc:
        raise SipsecCallError(f"the proxy asked for a login we cannot answer ({exc})") from exc
    headers = Headers()
    for name, value in old.headers:
        if name in ("Via", "CSeq", "Authorization", "Proxy-Authorization"):
            continue
        headers.add(name, value)
    top = old.top_via
    headers.prepend("Via", str(top.copy(params={**top.params, "branch": new_branch()})))
    headers.add("CSeq", f"{old.cseq.seq + 1} CONNECT")
    for header in auth:
        headers.add(header.name, header.value)
    return Request("CONNECT", old.uri, headers)


def _refused(ua: UserAgent, response: Response, target: SipURI) -> SipsecCallError:
    """A final non-2xx to the CONNECT, in words."""
    code, phrase = response.status_code, response.reason
    proxy = ua.account.registrar_uri.host
    # The words each front end shows; how to give the consent is theirs to add (the agent:
    # --fallback-sips; the GUI: its "Call with SIPS instead" button).
    retry = f"; to call with encryption to each server only, call sips:{target.user}@{target.host}"
    if code in (420, 405, 501):
        unsupported = response.headers.get("Unsupported")
        detail = f", unsupported: {unsupported}" if unsupported else ""
        return SipsecCallError(
            f"the proxy at {proxy} does not support end-to-end (sipsec) calls "
            f"({code} {phrase}{detail}){retry}",
            fallback_ok=True,
        )
    if code == 403:
        return SipsecCallError(
            f"the proxy at {proxy} refused the end-to-end call ({code} {phrase})"
        )
    if code == 603:
        return SipsecCallError(f"declined: the other phone refused the end-to-end call ({code})")
    return SipsecCallError(f"{ended_reason(response)} ({code} {phrase})")
