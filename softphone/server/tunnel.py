"""The byte splice of a sipsec tunnel (draft-gurbani-sip-sipsec-01 §6.6).

After the 2xx to a CONNECT, the connection the CONNECT arrived on (*upstream*, towards the
caller) and the one it was forwarded on (*downstream*, towards the callee) go transparent:
each connection's read loop hands what it reads to :meth:`Tunnel.relay`, which writes it to
the other side unparsed and uninspected (the bytes are the endpoints' nested TLS). The proxy
never logs them; it counts them.

* Half-close: EOF (TCP FIN or TLS close_notify) from one side becomes a close_notify and FIN
  towards the other side (:func:`~softphone.server.connection.shutdown_write`); the other
  direction is relayed until it ends too; then both connections are closed. Bytes towards a
  TLS side that already sent its close_notify still go (TLS 1.3 closes one direction at a
  time, RFC 8446 §6.1): ``tests/server/test_proxy_sipsec.py`` checks bob's last bytes reach
  alice after she half-closed.
* Idle timeout (§6.6: "configurable per proxy with a minimum default value of 1800s"): no byte
  either way for ``idle_timeout`` seconds closes both sides.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from softphone.server.connection import Connection, shutdown_write
from softphone.server.observe import Observer, TunnelClosed, TunnelOpened
from softphone.transport.stream import TLSStream, TLSStreamError

__all__ = ["Tunnel"]

log = logging.getLogger(__name__)


class Tunnel:
    """Two connections spliced together (see the module docstring).

    ``bytes_up_to_down`` / ``bytes_down_to_up`` are live counters; ``on_relayed(tunnel_id,
    count)`` (e.g. :meth:`ProxyView.add_relayed`) is called for every chunk relayed.
    """

    def __init__(
        self,
        tunnel_id: int,
        upstream: Connection,
        downstream: Connection,
        *,
        proxy: str,
        request_uri: str,
        idle_timeout: float,
        observer: Observer | None = None,
        on_relayed: Callable[[int, int], None] | None = None,
        on_closed: Callable[[Tunnel], None] | None = None,
    ) -> None:
        self.id = tunnel_id
        self.upstream = upstream
        self.downstream = downstream
        self.proxy = proxy
        self.request_uri = request_uri
        self.idle_timeout = idle_timeout
        self.bytes_up_to_down = 0
        self.bytes_down_to_up = 0
        self.reason: str | None = None
        self._observer = observer
        self._on_relayed = on_relayed
        self._on_closed = on_closed
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._ended: set[int] = set()  # id() of the sides whose reading ended
        self.closed = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def total(self) -> int:
        return self.bytes_up_to_down + self.bytes_down_to_up

    def open(self) -> None:
        """Put both connections in tunnel mode and start the idle timer. Called in the same
        step (no await) as the write of the 2xx upstream, so no byte can be framed as SIP."""
        self.upstream.tunnel = self
        self.downstream.tunnel = self
        self.upstream.reserved_by = self.downstream.reserved_by = None
        for side in (self.upstream, self.downstream):
            if isinstance(side.stream, TLSStream):
                side.stream.tls.allow_half_close = True  # RFC 8446 §6.1: one direction at a time
        self._schedule(self.idle_timeout)
        self._emit(
            TunnelOpened(
                self.proxy,
                self.id,
                self.upstream.peer_name,
                self.downstream.peer_name,
                self.request_uri,
                self._loop.time(),
            )
        )
        log.info("tunnel %d open: %s <-> %s", self.id, self.upstream.flow, self.downstream.flow)

    def other(self, side: Connection) -> Connection:
        return self.downstream if side is self.upstream else self.upstream

    def relay_now(self, source: Connection, data: bytes) -> bool:
        """Write ``data`` read from ``source`` to the other side (no flow control); False
        when the other side cannot take it any more."""
        if not data or self.closed.is_set():
            return not self.closed.is_set()
        target = self.other(source)
        try:
            target.stream.write(data)
        except (OSError, RuntimeError, TLSStreamError) as exc:
            log.info("tunnel %d: write to %s failed: %s", self.id, target.flow, exc)
            self._end(target, "write failed")
            return False
        self._last = self._loop.time()
        if source is self.upstream:
            self.bytes_up_to_down += len(data)
        else:
            self.bytes_down_to_up += len(data)
        if self._on_relayed is not None:
            self._on_relayed(self.id, len(data))
        return True

    async def relay(self, source: Connection, data: bytes) -> bool:
        """Relay what ``source``'s read loop read; ``b""`` is its EOF. Returns False when
        ``source`` must stop reading (then wait for :attr:`closed`)."""
        if not data:
            self._end(source, "closed by the endpoints")
            return False
        if not self.relay_now(source, data):
            return False
        try:
            await self.other(source).stream.drain()  # push back on a fast sender
        except (OSError, RuntimeError, TLSStreamError) as exc:
            log.info("tunnel %d: drain failed: %s", self.id, exc)
            self.close("connection lost")
            return False
        return not self.closed.is_set()

    def source_failed(self, source: Connection, reason: str) -> None:
        """``source``'s read failed (reset, TLS error): the tunnel ends."""
        self.close(f"{source.flow}: {reason}")

    def _end(self, source: Connection, reason: str) -> None:
        if id(source) in self._ended:
            return
        self._ended.add(id(source))
        log.info("tunnel %d: %s finished sending", self.id, source.flow)
        shutdown_write(self.other(source).stream)
        if len(self._ended) == 2:
            self.close(reason)

    def close(self, reason: str) -> None:
        """Close both connections (idempotent) and report :class:`TunnelClosed`."""
        if self.closed.is_set():
            return
        self.reason = reason
        self.closed.set()
        if self._timer is not None:
            self._timer.cancel()
        for side in (self.upstream, self.downstream):
            side.stream.close()
        log.info(
            "tunnel %d closed (%s): %d bytes up, %d down",
            self.id,
            reason,
            self.bytes_up_to_down,
            self.bytes_down_to_up,
        )
        self._emit(
            TunnelClosed(
                self.proxy,
                self.id,
                self.bytes_up_to_down,
                self.bytes_down_to_up,
                reason,
                self._loop.time(),
            )
        )
        if self._on_closed is not None:
            self._on_closed(self)

    def _schedule(self, delay: float) -> None:
        self._timer = self._loop.call_later(max(delay, 0.0), self._check_idle)

    def _check_idle(self) -> None:
        idle = self._loop.time() - self._last
        if idle >= self.idle_timeout:
            self.close(f"idle timeout: no byte either way for {self.idle_timeout:g} s")
        else:
            self._schedule(self.idle_timeout - idle)

    def _emit(self, observation: TunnelOpened | TunnelClosed) -> None:
        if self._observer is not None:
            try:
                self._observer(observation)
            except Exception:  # an observer's bug must not break the relay
                log.exception("observer failed")
