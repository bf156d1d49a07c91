"""The :class:`~softphone.ua.call.CallHost` of calls on the registration flow.

A :class:`~softphone.ua.call.Call` asks its host to send (an INVITE through a client
transaction, RFC 3261 §17.1.1; other requests, §17.1.2; an ACK for a 2xx with no transaction,
§17.1.1.3; responses through their server transaction, §17.2), for our Contact and Via, for the
Digest client of the calls, and emits its events through it. :class:`FlowCallHost` answers for
the user agent's registration flow (TLS to the first hop only: ``end_to_end`` is False); the
sipsec tunnel has its own host (:class:`~softphone.ua.sipsec.TunnelHost`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from softphone.sdp.policy import SrtpPolicy
from softphone.sip.digest import DigestClient
from softphone.sip.errors import LocalProtocolError
from softphone.sip.message import Request, Response
from softphone.sip.transaction import ServerTransaction
from softphone.sip.uri import SipURI
from softphone.transport.flow import Flow, FlowError
from softphone.ua.call import Call, CallError
from softphone.ua.events import Event
from softphone.ua.registration import RegistrationError
from softphone.ua.smime_call import SmimeSupport
from softphone.ua.sound import AudioDevices
from softphone.ua.upkeep import reliable

if TYPE_CHECKING:
    from softphone.ua.useragent import UserAgent

__all__ = ["FlowCallHost"]

log = logging.getLogger(__name__)


class FlowCallHost:
    """What a :class:`~softphone.ua.call.Call` may ask of its user agent (the
    :class:`~softphone.ua.call.CallHost` protocol), kept off the UA's public face."""

    def __init__(self, ua: UserAgent) -> None:
        self._ua = ua

    @property
    def account_aor(self) -> SipURI:
        return self._ua.account.aor_uri

    @property
    def srtp_policy(self) -> SrtpPolicy:
        return self._ua.account.srtp

    @property
    def media_keying(self) -> str:
        """The account's ``keying`` ("sdes" or "dtls-srtp"): how our offers key SRTP."""
        return str(self._ua.account.keying)

    @property
    def smime(self) -> SmimeSupport:
        """RFC 3261 §23 bodies for the calls on the registration flow."""
        return self._ua.smime

    @property
    def audio_devices(self) -> AudioDevices | None:
        return self._ua.audio_devices

    def call_digest(self) -> DigestClient:
        return self._ua._call_digest_client()

    def _flow(self) -> Flow | None:
        flow = self._ua.flow
        return None if flow is None or flow.is_closed else flow

    def flow_info(self) -> tuple[str, tuple[str, int]] | None:
        flow = self._flow()
        return None if flow is None else (flow.transport, flow.local_address)

    def contact_uri(self) -> SipURI:
        flow = self._flow()
        if flow is None:
            raise CallError("the connection to the server is gone")
        return self._ua._registration().contact_uri(flow.local_address, flow.transport)

    def start_invite(
        self,
        request: Request,
        on_response: Callable[[Response], None],
        on_failure: Callable[[str], None],
    ) -> None:
        ua, flow = self._ua, self._flow()
        if flow is None:
            on_failure("the connection to the server is gone")
            return
        now = asyncio.get_running_loop().time()
        tx, actions = ua._layer.send_request(request, now, reliable=reliable(flow))
        ua._invite_handlers[tx] = (on_response, on_failure)
        ua._tx_flow[tx] = flow
        ua._run(actions, flow)

    async def transact(self, request: Request) -> Response:
        flow = self._flow()
        if flow is None:
            raise CallError("the connection to the server is gone")
        try:
            return await self._ua._send_request(flow, request)
        except RegistrationError as exc:
            raise CallError(exc.reason) from exc

    def send_direct(self, message: Request) -> None:
        flow = self._flow()
        if flow is None:
            return
        try:
            flow.send(message)
        except FlowError as exc:
            log.info("could not send %s: %s", message.method, exc.reason)

    def respond(self, tx: ServerTransaction, response: Response) -> None:
        ua = self._ua
        flow = ua._tx_flow.get(tx) or self._flow()
        now = asyncio.get_running_loop().time()
        try:
            actions = ua._layer.send_response(response, now, transaction=tx)
        except LocalProtocolError as exc:
            log.info("cannot send %d: %s", response.status_code, exc)
            return
        ua._run(actions, flow)

    def emit(self, event: Event) -> None:
        self._ua._emit(event)

    def forget(self, call: Call) -> None:
        self._ua._forget_call(call)

    @property
    def end_to_end(self) -> bool:
        return False  # the registration flow: TLS to the first hop only
