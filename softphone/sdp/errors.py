"""Errors of the SDP layer, grafted onto the SIP core's tree (``softphone.sip.errors``)::

    SipError
    ├── LocalProtocolError          we were asked to do something unsafe or illegal
    │                               (e.g. SDES keys over unencrypted signalling)
    └── RemoteProtocolError
        ├── ParseError
        │   └── SdpParseError       the peer's bytes are not RFC 4566 / RFC 8866 SDP (400)
        └── NegotiationError        the peer's offer or answer cannot be accepted under RFC 3264
                                    or our SRTP policy (488 Not Acceptable Here)

The SIP layer answers an INVITE carrying a bad offer with ``status_code`` and ``reason``; a UAC
that receives an unacceptable answer ends the call (ACK then BYE) with the reason.
"""

from __future__ import annotations

from softphone.sip.errors import ParseError, RemoteProtocolError

__all__ = ["NegotiationError", "SdpParseError"]


class SdpParseError(ParseError):
    """The text is not a session description (RFC 8866 §9 grammar) or exceeds a size limit."""

    def __init__(self, reason: str, status_code: int = 400) -> None:
        super().__init__(reason, status_code)


class NegotiationError(RemoteProtocolError):
    """An offer or answer we refuse (RFC 3264 §6: 488 Not Acceptable Here, with the reason)."""

    def __init__(self, reason: str, status_code: int = 488) -> None:
        super().__init__(reason, status_code)
