"""multipart/* message bodies (RFC 2046 §5.1, RFC 5621 for SIP, RFC 1847 for multipart/signed).

``parse_multipart(body, content_type)`` splits a body into ``BodyPart``s; ``build_multipart``
does the reverse and picks a boundary that occurs in no part. Each part keeps ``raw``, the
exact bytes of the entity between the delimiters (its header lines, the empty line and the
content): RFC 1847 §2.1 / RFC 5751 §3.5 make the signature of multipart/signed cover exactly
those bytes, so S/MIME verification must use ``raw``, never a re-serialisation.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from softphone.sip.errors import LocalProtocolError, ParseError
from softphone.sip.grammar import Params, format_params, parse_params
from softphone.sip.message import Headers
from softphone.sip.parser import parse_headers

__all__ = ["BodyPart", "build_multipart", "parse_content_type", "parse_multipart"]

# RFC 2046 §5.1.1: bchars, 1 to 70 characters, not ending in a space.
_BOUNDARY_RE = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_MEDIA_TYPE_RE = re.compile(r"[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)/([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*")
_HEAD_END_RE = re.compile(rb"\n\r?\n")
_MAX_PARTS = 1000


@dataclass(eq=False)
class BodyPart:
    """One body part (RFC 2046 §5.1): its MIME headers, its content, and its exact bytes."""

    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    raw: bytes = b""  # header lines + empty line + content, byte-exact as received

    @property
    def content_type(self) -> str:
        """Lower-case ``type/subtype``; ``text/plain`` when absent (RFC 2046 §5.1)."""
        value = self.headers.get("Content-Type")
        return "text/plain" if value is None else parse_content_type(value)[0]

    def to_bytes(self) -> bytes:
        """``raw`` if the part was parsed, else the headers, an empty line and the body."""
        if self.raw:
            return self.raw
        return self.headers.serialize().encode("utf-8") + b"\r\n" + self.body


def parse_content_type(value: str) -> tuple[str, Params]:
    """Split ``type/subtype;params`` (RFC 3261 §20.15) into the lower-case type and params."""
    media, _, params = value.partition(";")
    match = _MEDIA_TYPE_RE.fullmatch(media)
    if match is None:
        raise ParseError(f"malformed Content-Type {value[:60]!r}")
    return f"{match[1]}/{match[2]}".lower(), parse_params(";" + params if params else "")


def parse_multipart(body: bytes, content_type: str) -> list[BodyPart]:
    """Split a multipart body into its parts (RFC 2046 §5.1.1).

    ``content_type`` is the Content-Type value of the enclosing message or part; it must be
    ``multipart/*`` with a ``boundary``. The preamble before the first delimiter and the
    epilogue after the close delimiter are ignored; transport padding after a delimiter is
    allowed; CRLF or bare LF line ends. A part without headers starts with the empty line.
    Raises ``ParseError`` (400) for a missing boundary, no delimiter, or no close delimiter.
    """
    media, params = parse_content_type(content_type)
    if not media.startswith("multipart/"):
        raise ParseError(f"not a multipart Content-Type: {media}")
    boundary = params.get("boundary")
    if not boundary or _BOUNDARY_RE.fullmatch(boundary) is None:
        raise ParseError("multipart Content-Type without a valid boundary")
    dash = b"--" + boundary.encode("ascii")
    parts: list[BodyPart] = []
    part_start: int | None = None
    pos = 0
    while True:
        hit = body.find(dash, pos)
        if hit < 0:
            raise ParseError("multipart body without its close delimiter")
        pos = hit + len(dash)
        if hit != 0 and body[hit - 1 : hit] != b"\n":
            continue  # the boundary text inside a line is not a delimiter
        is_close = body[pos : pos + 2] == b"--"
        line_end = body.find(b"\n", pos)
        after = body[pos + 2 if is_close else pos : len(body) if line_end < 0 else line_end]
        if after.rstrip(b"\r").strip(b" \t"):
            continue  # "--boundary" followed by other text: part of the content
        if part_start is not None:
            end = hit - 1  # the CRLF before a delimiter belongs to the delimiter
            if end > part_start and body[end - 1 : end] == b"\r":
                end -= 1
            parts.append(_parse_part(body[part_start : max(end, part_start)]))
            if len(parts) > _MAX_PARTS:
                raise ParseError("too many body parts", 413)
        if is_close:
            break
        if line_end < 0:
            raise ParseError("multipart body without its close delimiter")
        part_start = pos = line_end + 1
    if not parts:
        raise ParseError("multipart body without any part")
    return parts


def _parse_part(raw: bytes) -> BodyPart:
    """One body part: headers up to the first empty line, then the content."""
    if raw[:1] == b"\n" or raw[:2] == b"\r\n":
        return BodyPart(Headers(), raw[2:] if raw[:1] == b"\r" else raw[1:], raw)
    end = _HEAD_END_RE.search(raw)
    if end is None:
        head, content = raw, b""  # headers only, empty content
    else:
        head, content = raw[: end.start()], raw[end.end() :]
    try:
        text = head.decode("utf-8").replace("\r\n", "\n").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ParseError("body part headers are not valid UTF-8") from None
    if "\r" in text:
        raise ParseError("stray CR in body part headers")
    return BodyPart(parse_headers(text), content, raw)


def build_multipart(
    parts: Iterable[BodyPart],
    subtype: str = "mixed",
    *,
    boundary: str | None = None,
    params: Params | None = None,
) -> tuple[str, bytes]:
    """Build a multipart body; return ``(content_type_value, body)`` (RFC 2046 §5.1.1).

    The boundary, when not given, is derived from a hash of the parts and lengthened until it
    occurs in none of them (RFC 2046 §5.1.1: it must not appear in the encapsulated data), so
    the result is deterministic. ``params`` adds Content-Type parameters, e.g. ``protocol`` and
    ``micalg`` for multipart/signed (RFC 1847 §2.1). Each part is written as ``to_bytes()``:
    a parsed part is reproduced byte-exact.
    """
    encoded = [part.to_bytes() for part in parts]
    if not encoded:
        raise LocalProtocolError("a multipart body needs at least one part")
    if boundary is None:
        boundary = _choose_boundary(encoded)
    elif _BOUNDARY_RE.fullmatch(boundary) is None or any(
        boundary.encode("ascii") in part for part in encoded
    ):
        raise LocalProtocolError(f"unusable multipart boundary {boundary!r}")
    dash = b"--" + boundary.encode("ascii")
    body = b"".join(dash + b"\r\n" + part + b"\r\n" for part in encoded) + dash + b"--\r\n"
    all_params: Params = {"boundary": boundary}
    all_params.update(params or {})
    return f"multipart/{subtype}{format_params(all_params)}", body


def _choose_boundary(encoded: list[bytes]) -> str:
    digest = hashlib.sha256()
    for part in encoded:
        digest.update(len(part).to_bytes(8, "big") + part)
    candidate = "sb-" + digest.hexdigest()[:32]
    counter = 0
    while any(candidate.encode("ascii") in part for part in encoded):
        counter += 1
        candidate = "sb-" + hashlib.sha256(f"{candidate}{counter}".encode()).hexdigest()[:40]
    return candidate
