"""The UDP listeners of the registrar (RFC 3261 §18.1.2, §18.2, RFC 3581, RFC 5626 §4.4.2 STUN).

One message per datagram (:func:`~softphone.sip.parser.parse_message`); the top Via of each
request is stamped with ``received``/``rport`` and responses go where §18.2.2 and RFC 3581 say.
Requests go to the registrar's transaction layer (the proxy forwards over connections only:
a CONNECT over UDP is answered 400, draft-gurbani-sip-sipsec-01 §6.6 needs a connection).
See :mod:`softphone.server.registrar` for the rest of the behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from softphone.server.connection import loggable
from softphone.sip.errors import ParseError
from softphone.sip.message import Message, Response
from softphone.sip.parser import parse_message
from softphone.sip.transaction_layer import LayerAction, TransactionLayer
from softphone.transport.udp import (
    BINDING_REQUEST,
    MAX_DATAGRAM,
    DatagramEndpoint,
    StunError,
    error_response_for_raw,
    is_keepalive,
    is_stun,
    open_datagram_endpoint,
    parse_stun,
    response_destination,
    stamp_received,
    stun_binding_response,
)

__all__ = ["UDPListenerMixin", "UDPPeer"]

log = logging.getLogger("softphone.server.registrar")


@dataclass(eq=False)
class UDPPeer:
    """Where the responses of one server transaction received over UDP go (§18.2.2)."""

    flow: str
    endpoint: DatagramEndpoint
    source: tuple[str, int]
    transport: str = "udp"

    def send(self, data: bytes) -> bool:
        try:
            self.endpoint.sendto(data, self.source)
        except (OSError, RuntimeError) as exc:
            log.info("send on %s failed: %s", self.flow, exc)
            return False
        return True

    def send_response(self, response: Response) -> bool:
        try:
            self.endpoint.sendto(bytes(response), response_destination(response, self.source))
        except (OSError, RuntimeError) as exc:
            log.info("send on %s failed: %s", self.flow, exc)
            return False
        return True


class UDPListenerMixin:
    """Datagram handling for :class:`~softphone.server.registrar.Registrar`."""

    layer: TransactionLayer
    udp_dropped: int
    stun_answered: int

    def _run(self, actions: list[LayerAction], now: float, conn: UDPPeer | None) -> None:
        raise NotImplementedError

    def _observe(self, direction: str, peer: str, message: Message, data: bytes | None) -> None:
        raise NotImplementedError

    # -- UDP ----------------------------------------------------------------------------------

    async def _open_udp(self, host: str, port: int) -> DatagramEndpoint:
        holder: list[DatagramEndpoint] = []

        def on_datagram(data: bytes, source: tuple[str, int]) -> None:
            self._on_datagram(holder[0], data, source)

        endpoint = await open_datagram_endpoint(
            on_datagram, local_addr=(host, port), on_error=_log_udp_error
        )
        holder.append(endpoint)
        return endpoint

    def _on_datagram(
        self, endpoint: DatagramEndpoint, data: bytes, source: tuple[str, int]
    ) -> None:
        """One datagram on a UDP listener (see the module docstring); never raises."""
        try:
            self._handle_datagram(endpoint, data, source)
        except Exception:  # one bad datagram must not stop the listener
            self.udp_dropped += 1
            log.exception("error while handling a datagram from %s:%d", *source)

    def _handle_datagram(
        self, endpoint: DatagramEndpoint, data: bytes, source: tuple[str, int]
    ) -> None:
        where = f"udp:{source[0]}:{source[1]}"
        if is_stun(data):
            self._answer_stun(endpoint, data, source)
            return
        if is_keepalive(data):
            return
        peer = UDPPeer(where, endpoint, source)
        try:
            message = parse_message(data, max_size=MAX_DATAGRAM)
        except ParseError as exc:
            response = error_response_for_raw(data, exc)
            if response is None:
                self.udp_dropped += 1
                log.info("dropped an unparsable datagram from %s: %s", where, exc.reason)
            else:
                log.info("unparsable request from %s: %s", where, exc.reason)
                peer.send(bytes(response))  # to the source: its Via may be what broke
            return
        if isinstance(message, Response):
            self.udp_dropped += 1  # we send no requests: any response is stray (§18.1.2)
            return
        try:
            stamp_received(message, source)
        except ParseError as exc:
            response = error_response_for_raw(data, exc)
            if response is not None:
                peer.send(bytes(response))
            else:
                self.udp_dropped += 1
            return
        self._observe("in", f"{source[0]}:{source[1]}", message, data)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s from %s\n%s", message.method, message.uri, where, loggable(message))
        now = asyncio.get_running_loop().time()
        try:
            actions = self.layer.receive(message, now, reliable=False)
        except ParseError as exc:
            response = error_response_for_raw(data, exc)
            if response is not None:
                peer.send(bytes(response))
            else:
                self.udp_dropped += 1
            return
        self._run(actions, now, peer)

    def _answer_stun(
        self, endpoint: DatagramEndpoint, data: bytes, source: tuple[str, int]
    ) -> None:
        try:
            request = parse_stun(data)
        except StunError:
            self.udp_dropped += 1
            return
        if request.type != BINDING_REQUEST:
            self.udp_dropped += 1  # only Binding requests are served (RFC 5626 §8.4)
            return
        with contextlib.suppress(OSError, RuntimeError):
            endpoint.sendto(stun_binding_response(request, source), source)
            self.stun_answered += 1


def _log_udp_error(exc: Exception) -> None:
    # ICMP errors for datagrams we sent (a UA that went away): nothing to undo (§18.4).
    log.info("UDP error: %s", exc)
