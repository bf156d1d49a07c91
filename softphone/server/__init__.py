"""softphone.server: the engine's own registrar, proxy and sipsec relay.

- :mod:`softphone.server.config`: :class:`RegistrarConfig`, the users file.
- :mod:`softphone.server.location`: :class:`LocationService`, the pure binding rules of
  RFC 3261 §10.3 and RFC 5626 §6.
- :mod:`softphone.server.registrar`: :class:`RegistrarCore` (sans-I/O requests → responses),
  :class:`Registrar` (asyncio TLS/TCP listeners) and :func:`running_registrar`.
- :mod:`softphone.server.proxy`: :class:`ProxyCore`, sans-I/O routing (RFC 3261 §16).
- :mod:`softphone.server.relay`: :class:`ProxyRelay`, forwarding, next hops, CONNECT.
- :mod:`softphone.server.tunnel`: :class:`Tunnel`, the sipsec byte splice (draft §6.6).
- :mod:`softphone.server.observe`: what each proxy could read (the demo's report).
- :mod:`softphone.server.cli`: ``softphone proxy``.
"""

from __future__ import annotations

from softphone.server.config import ConfigError, ListenAddress, RegistrarConfig, UserEntry
from softphone.server.location import Binding, LocationService, RegisterResult, canonical_aor
from softphone.server.proxy import ProxyCore
from softphone.server.registrar import Registrar, RegistrarCore, running_registrar

__all__ = [
    "Binding",
    "ConfigError",
    "ListenAddress",
    "LocationService",
    "ProxyCore",
    "RegisterResult",
    "Registrar",
    "RegistrarConfig",
    "RegistrarCore",
    "UserEntry",
    "canonical_aor",
    "running_registrar",
]
