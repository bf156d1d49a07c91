"""Framing SIP messages on a byte stream (TCP, TLS, a sipsec tunnel).

RFC 3261 §18.3: on a stream the header section ends at the first empty line and the body is
exactly Content-Length bytes, so Content-Length is mandatory. RFC 5626 §3.5.1: between messages
a client sends a "ping" (CRLF CRLF) and the server answers a "pong" (CRLF).

Limits are enforced while bytes arrive, so a peer can make us hold at most one header section
(``max_header_bytes``) plus one body (``max_body_bytes``). The end of the header section is
searched for only in the bytes that arrived since the last search (plus a 3-byte overlap), so
feeding a message one byte at a time costs linear, not quadratic, time.
"""

from __future__ import annotations

import re

from softphone.sip.errors import LocalProtocolError, ParseError
from softphone.sip.message import Message
from softphone.sip.parser import parse_message

__all__ = ["FramingError", "StreamFramer"]

# End of the header section: an empty line, CRLF or (tolerated, as in the parser) bare LF.
_HEAD_END_RE = re.compile(rb"\n\r?\n")
# A Content-Length field line (long or compact form, any case, optional space before ':').
_CONTENT_LENGTH_RE = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.I | re.M)
_MAX_LENGTH_DIGITS = 12


class FramingError(ParseError):
    """A ``ParseError`` raised by ``StreamFramer.feed``.

    ``messages`` holds the messages completed by the same ``feed`` call before the error, so
    nothing that arrived intact is lost.

    ``recoverable`` tells the two kinds apart. False: the stream itself is broken (no usable
    Content-Length, a section over a limit) and the connection must be closed. True: one
    message was framed correctly but is not valid SIP; ``raw`` holds its bytes, the framer is
    still in step, and the caller answers it (400, or what ``status_code`` says) and goes on
    with ``feed(b"")`` to get the messages already buffered behind it — "a malformed message
    gets the right 4xx and the phone keeps working".
    """

    def __init__(
        self, reason: str, status_code: int = 400, *, recoverable: bool = False, raw: bytes = b""
    ) -> None:
        super().__init__(reason, status_code)
        self.messages: list[Message] = []
        self.recoverable = recoverable
        self.raw = raw


class _BadMessageError(Exception):
    """Internal: a framed message that did not parse."""

    def __init__(self, error: ParseError, raw: bytes) -> None:
        super().__init__(error.reason)
        self.error = error
        self.raw = raw


class StreamFramer:
    """Cut a byte stream into SIP messages by Content-Length (RFC 3261 §18.3).

    ``feed(data)`` returns the messages that ``data`` completed, in order. Keepalives between
    messages (RFC 5626 §3.5.1) are counted, not returned: CRLF CRLF adds one to ``pings`` (the
    caller should answer with one CRLF), a lone CRLF adds one to ``pongs``. A CRLF followed by
    nothing yet is counted as a pong at once (the common case: a pong arrives alone), so a ping
    split between two TCP segments is counted as two pongs.

    Every error raises ``FramingError`` (a ``ParseError``) with the status to answer: 400 for
    a missing, negative, non-numeric or conflicting Content-Length, 413 for a header section
    over ``max_header_bytes`` or a body over ``max_body_bytes``: then the framer is dead (the
    stream is out of sync, the connection must be closed; feeding it again raises
    ``LocalProtocolError``). A message that is framed correctly but is not valid SIP raises a
    *recoverable* ``FramingError`` with the parser's status code and the message's bytes, and
    the framer stays usable.
    """

    def __init__(self, *, max_header_bytes: int = 65536, max_body_bytes: int = 1 << 20) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.pings = 0
        self.pongs = 0
        self._buffer = bytearray()
        self._scan_from = 0  # where the next search for the empty line starts
        self._message_end: int | None = None  # known once the header section is complete
        self._dead: ParseError | None = None
        self._scanned = 0  # bytes examined by the header search: lets tests prove linearity

    @property
    def dead(self) -> bool:
        """True once an error has been raised."""
        return self._dead is not None

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        """Add ``data`` from the stream; return the messages it completed."""
        if self._dead is not None:
            raise LocalProtocolError(f"framer is dead after: {self._dead.reason}")
        self._buffer += data
        messages: list[Message] = []
        try:
            while True:
                message = self._next_message()
                if message is None:
                    return messages
                messages.append(message)
        except _BadMessageError as bad:
            recoverable = FramingError(
                bad.error.reason, bad.error.status_code, recoverable=True, raw=bad.raw
            )
            recoverable.messages = messages
            raise recoverable from bad.error
        except ParseError as exc:
            error = FramingError(exc.reason, exc.status_code)
            error.messages = messages
            self._dead = error
            self._buffer = bytearray()
            raise error from exc

    def _skip_keepalives(self) -> bool:
        """Consume CRLFs before a message; False if the buffer ends inside a possible ping."""
        buffer = self._buffer
        crlfs = 0
        while buffer[2 * crlfs : 2 * crlfs + 2] == b"\r\n":
            crlfs += 1
        rest = buffer[2 * crlfs : 2 * crlfs + 1]
        if rest == b"\r":
            return False  # "\r" then nothing: wait for the "\n"
        self.pings += crlfs // 2
        self.pongs += crlfs % 2
        if crlfs:
            del buffer[: 2 * crlfs]
        return True

    def _next_message(self) -> Message | None:
        buffer = self._buffer
        if self._message_end is None:
            if not self._skip_keepalives() or not buffer:
                self._scan_from = 0
                return None
            start = max(self._scan_from - 3, 0)
            self._scanned += len(buffer) - start
            match = _HEAD_END_RE.search(buffer, start)
            if match is None:
                if len(buffer) > self.max_header_bytes:
                    raise ParseError("header section too large", 413)
                self._scan_from = len(buffer)
                return None
            head_end = match.end()
            if head_end > self.max_header_bytes:
                raise ParseError("header section too large", 413)
            self._message_end = head_end + self._content_length(bytes(buffer[:head_end]))
        if len(buffer) < self._message_end:
            return None
        raw = bytes(buffer[: self._message_end])
        del buffer[: self._message_end]
        self._message_end = None
        self._scan_from = 0
        try:
            return parse_message(raw, max_size=len(raw))
        except ParseError as exc:
            raise _BadMessageError(exc, raw) from exc

    def _content_length(self, head: bytes) -> int:
        """The one Content-Length of a header section (RFC 3261 §18.3, §20.14)."""
        values = {m[1].strip(b" \t") for m in _CONTENT_LENGTH_RE.finditer(head)}
        if not values:
            raise ParseError("missing Content-Length header on a stream transport")
        if len(values) > 1:
            raise ParseError("conflicting Content-Length headers")
        value = values.pop()
        if not value.isdigit():
            raise ParseError(f"malformed Content-Length header {value[:20]!r}")
        if len(value) > _MAX_LENGTH_DIGITS or int(value) > self.max_body_bytes:
            raise ParseError("message body too large", 413)
        return int(value)
