"""softphone.transport: TLS (sans-I/O over memory BIOs) and its asyncio byte-stream adapter.

- :mod:`softphone.transport.tls`: :class:`TLSConnection`, bytes in, events out; records
  certificate problems instead of failing on them.
- :mod:`softphone.transport.stream`: :class:`TCPStream`, :class:`TLSStream` (TLS over any byte
  stream, so sipsec's nested TLS is ``outer.upgrade(config)``), :func:`open_tls_connection`,
  :func:`start_tls_server`.
"""

from __future__ import annotations

from softphone.transport.stream import (
    ByteStream,
    TCPStream,
    TLSHandshakeError,
    TLSServer,
    TLSStream,
    TLSStreamError,
    open_tcp_connection,
    open_tls_connection,
    start_tls_server,
)
from softphone.transport.tls import (
    MAX_RECORD_PLAINTEXT,
    NO_PEER_CERTIFICATE,
    CloseNotify,
    DataReceived,
    Event,
    HandshakeComplete,
    TLSConfig,
    TLSConnection,
    TLSError,
    TLSRole,
    TLSState,
    TLSStateError,
    TLSVersion,
    VerifyRecord,
    verify_error_name,
)

__all__ = [
    "MAX_RECORD_PLAINTEXT",
    "NO_PEER_CERTIFICATE",
    "ByteStream",
    "CloseNotify",
    "DataReceived",
    "Event",
    "HandshakeComplete",
    "TCPStream",
    "TLSConfig",
    "TLSConnection",
    "TLSError",
    "TLSHandshakeError",
    "TLSRole",
    "TLSServer",
    "TLSState",
    "TLSStateError",
    "TLSStream",
    "TLSStreamError",
    "TLSVersion",
    "VerifyRecord",
    "open_tcp_connection",
    "open_tls_connection",
    "start_tls_server",
    "verify_error_name",
]
