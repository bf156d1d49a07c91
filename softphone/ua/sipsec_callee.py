"""The callee's side of a sipsec call (draft-gurbani-sip-sipsec-01 §6.5):
:func:`answer_connect`.

``Require: sipsec`` → the account's ``sipsec_accept`` policy (accept / reject / ask through
the ``tunnel_answerer`` hook; nobody to ask: 603) → 200, the flow detached → nested TLS server
*requesting* a client certificate → the caller's AOR is the one its certificate names (no
certificate: refused) → trust (``Purpose.CLIENT``) → the INVITE inside must come From that AOR
(:class:`~softphone.ua.tunnel.TunnelHost`) → the call rings showing
``sipsec:alice@atlanta.test``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from softphone.security.certificates import Identity
from softphone.security.identity import IdentityError, IdentityMaterial, identity_aor
from softphone.security.trust import Purpose
from softphone.sip.dialog import new_tag
from softphone.sip.errors import ParseError
from softphone.sip.message import Request, Response
from softphone.sip.transaction import (
    ServerTransaction,
)
from softphone.transport.flow import Flow
from softphone.ua.account import SipsecAccept
from softphone.ua.call import CallDirection, CallError

if TYPE_CHECKING:
    from softphone.ua.useragent import UserAgent

from softphone.ua.tunnel import (
    ANONYMOUS_URI,
    OPTION_TAG,
    IncomingTunnel,
    SipsecCallError,
    TunnelHost,
    handshake,
    record_in_ledger,
    tls_config,
    tunnel_state,
    warm_own_half,
    warm_safety_number,
    went_transparent,
)
from softphone.ua.turns import next_turn

__all__ = ["answer_connect"]

log = logging.getLogger(__name__)


async def answer_connect(
    ua: UserAgent, request: Request, tx: ServerTransaction, flow: Flow
) -> None:
    """A CONNECT that reached us on the registration flow (module docstring, callee)."""
    incoming = CallDirection.INCOMING
    tunnel_id = request.call_id
    try:
        claimed = str(request.from_.uri)
    except ParseError:
        claimed = "unknown"
    peer = claimed if claimed.startswith(("sip:", "sips:")) else ANONYMOUS_URI

    def reply(code: int, why: str = "") -> None:
        now = asyncio.get_running_loop().time()
        response = Response.for_request(request, code, to_tag=new_tag())
        if code == 420:
            response.headers.add("Unsupported", OPTION_TAG)
        if why:
            response.headers.add("Warning", f'399 softphone "{why}"')
        ua._run(ua._layer.send_response(response, now, transaction=tx), flow)

    required = [v.strip().lower() for v in request.headers.get_all("Require")]
    if OPTION_TAG not in required:
        reply(400, "CONNECT without Require: sipsec")
        return
    if ua._tunnel_busy or any(f is flow for f in ua._call_flow.values()):
        reply(486, "busy with another call")
        return
    try:
        identity = ua._sipsec_identity()
    except CallError as exc:
        reply(480, "no identity certificate for end-to-end calls")
        tunnel_state(ua, tunnel_id, incoming, peer, "failed", exc.reason)
        return
    warm_own_half(ua, identity)
    ua._tunnel_busy = True
    try:
        tunnel_state(ua, tunnel_id, incoming, peer, "connecting")
        if not await _policy_accepts(ua, IncomingTunnel(tunnel_id, claimed, flow.remote)):
            reply(603)
            tunnel_state(
                ua, tunnel_id, incoming, peer, "failed", "declined an end-to-end call (by us)"
            )
            return
        try:
            await _accept(ua, flow, tunnel_id, peer, identity, reply)
        except SipsecCallError as exc:
            tunnel_state(ua, tunnel_id, incoming, peer, "failed", exc.reason, went_transparent(exc))
    finally:
        ua._tunnel_busy = False


async def _policy_accepts(ua: UserAgent, offer: IncomingTunnel) -> bool:
    policy = ua.sipsec_policy or ua.account.sipsec_accept
    if policy is SipsecAccept.ACCEPT:
        return True
    if policy is SipsecAccept.REJECT or ua.tunnel_answerer is None:
        return False
    try:
        return bool(await ua.tunnel_answerer(offer))
    except Exception:  # a broken answerer means "no": the default
        log.exception("the tunnel answerer failed; declining")
        return False


async def _accept(  # noqa: PLR0917  # internal steps of one flow
    ua: UserAgent,
    flow: Flow,
    tunnel_id: str,
    peer: str,
    identity: IdentityMaterial,
    reply: Callable[[int], None],
) -> None:
    incoming = CallDirection.INCOMING
    await flow.pause_reading()  # the ClientHello that follows our 200 must not be read as SIP
    reply(200)
    stream, leftover = await flow.detach()
    ua._flow_taken(flow)
    nested = await handshake(
        ua, stream, leftover, tls_config(identity, server=True), flow, incoming
    )
    chain = nested.peer_chain()
    if not chain:
        nested.close()
        raise SipsecCallError("refused: the caller presented no certificate")
    try:
        peer_aor = identity_aor(chain[0])
    except IdentityError as exc:
        nested.close()
        raise SipsecCallError(f"refused: {exc}") from exc
    warm = warm_safety_number(identity, chain, peer_aor)  # in slices while we judge
    tunnel_state(ua, tunnel_id, incoming, peer_aor, "tunnel-open", "", True)
    ua.ledger.pin_verified(peer_aor)
    verdict, report = await ua.gate.check_identity(
        chain,
        Identity.aor(peer_aor),
        Purpose.CLIENT,
        nested.close,
        waiting_for=f"end-to-end call from {peer_aor}",
    )
    if not verdict.accepted:
        nested.close()
        raise SipsecCallError(f"not connected: {report.headline}")
    record_in_ledger(ua, peer_aor, report, nested.close)
    await next_turn()  # the ledger was read and written: the INVITE in a turn of its own
    # The INVITE rides on the caller's Finished: it is read once the host exists, by which
    # time the safety number its ringing shows is memoised (no 12-24 ms hash on the loop).
    with contextlib.suppress(Exception):  # its failure only means no number is shown
        await asyncio.shield(warm)
    tunnel = Flow(nested, flow.target, transport="TLS", connect_round_trips=0)
    TunnelHost(
        ua,
        tunnel,
        tunnel_id=tunnel_id,
        direction=incoming,
        peer_aor=peer_aor,
        report=report,
        identity=identity,
    )
    tunnel_state(ua, tunnel_id, incoming, peer_aor, "verified", "", True)
