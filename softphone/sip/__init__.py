"""The sans-I/O SIP core (RFC 3261): no sockets, no asyncio, no clock.

See ``docs/sip-core-api.md`` for the module map.
"""

from softphone.sip.errors import LocalProtocolError, ParseError, RemoteProtocolError, SipError

__all__ = ["LocalProtocolError", "ParseError", "RemoteProtocolError", "SipError"]
