"""Parsing one whole SIP message from bytes (RFC 3261 §7, §25; RFC 4475; RFC 5118).

``parse_message`` is the hot path of every transport: it is written to be linear in the input
(every regex repetition possessive or confined to an atomic group, no repeated string
concatenation) and to raise nothing but ``ParseError``, whatever the bytes. The common shapes
(CRLF lines, "Name: value", the usual Via / name-addr / SIP URI / Request-Line) each take one
precompiled regex that checks everything the careful path would; anything else takes the
careful path. Nothing parsed is kept across calls.

What it accepts beyond the strict grammar, as RFC 3261 asks implementations to be liberal:
CRLFs before the start line (§7.5), bare LF line ends, line folding (§7.3.1), whitespace
before the colon of a header name (HCOLON), ``sip/2.0`` in any case (§7.1), a missing
Content-Length on a datagram (the rest of the datagram is the body, §18.3), bytes after the body
(ignored, §18.3), a missing Max-Forwards (RFC 2543 peers).

What it rejects, with the status a server answers (the rest of the message is never trusted):
505 for a SIP version other than 2.0; 413 over ``max_size``; 400 for anything else, including
a Request-Line with other than single spaces (RFC 4475 lwsstart, trws), a Request-URI in
``<>``, with LWS or with URI headers (ltgtruri, lwsruri, escruri), a status code that is not
three digits in 100..699 (bigcode), a Content-Length that is negative, not a number, larger
than the body, or given twice differently (ncl, clerr), a missing, repeated or malformed
To/From/CSeq/Call-ID/Via or Max-Forwards (§8.1.1; insuf, multi01, scalar02, badinv01), a CSeq
method that is not the request method (mismatch01, mismatch02), control characters or invalid
UTF-8 in the header section.
"""

from __future__ import annotations

import re

from softphone.sip.errors import ParseError
from softphone.sip.grammar import split_header_values
from softphone.sip.headers import Via, parse_cseq, parse_name_addr, parse_via
from softphone.sip.message import (
    _KEY_CACHE,
    Headers,
    Request,
    Response,
    _key_and_name,
    parse_max_forwards,
)
from softphone.sip.uri import _SIP_FAST_PATTERN, SipURI, _sip_from_fast, parse_uri

__all__ = ["parse_headers", "parse_message"]

_HEAD_END_RE = re.compile(rb"\n\r?\n")
# A translate() table that changes exactly the control characters other than HTAB, CR and LF
# (and DEL): bytes.translate returns its input object itself when no byte changed.
_MARK_CONTROLS = bytes(
    (byte + 1) % 256 if (byte < 0x20 and byte not in (0x09, 0x0A, 0x0D)) or byte == 0x7F else byte
    for byte in range(256)
)
# Control characters other than HTAB are not allowed in the header section (TEXT-UTF8, §25.1)
# except as the second half of a quoted-pair (RFC 4475 intmeth: "\<NUL>" in a display name).
# Deleting them and comparing lengths is several times faster than a regex search.
_CONTROL_CHARS = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_UNESCAPED_CONTROL_RE = re.compile(rb"(?<!\\)[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.I)
# absoluteURI-ish: a scheme, then visible ASCII without the characters that are never legal.
_REQUEST_URI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:[!#-;=?-~]+")
# callid = word [ "@" word ] (§25.1)
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID_RE = re.compile(f"{_WORD}+(?:@{_WORD}+)?+")
_MAX_LENGTH_DIGITS = 12
_new = object.__new__
_S_OR_S = ("S", "s")  # a Status-Line starts with SIP/ in any case (§7.1)
# The common shape of a Request-Line: token SP sip:/sips: URI (uri._SIP_FAST_PATTERN) SP SIP/2.0.
_REQUEST_LINE_FAST_RE = re.compile(
    r"([A-Za-z0-9\-.!%*_+`'~]++) (sips?):" + _SIP_FAST_PATTERN + " SIP/2\\.0"
)


def parse_message(data: bytes, *, max_size: int = 65536 * 4) -> Request | Response:
    """Parse one datagram or one framed message into a ``Request`` or ``Response``.

    Raises only ``ParseError``, whose ``status_code`` is the response to send: 505 for a
    version other than SIP/2.0, 413 when ``data`` exceeds ``max_size``, 400 otherwise (see
    the module docstring for the rules). The mandatory headers of §8.1.1 are parsed here;
    other typed headers are parsed when their accessor is used.
    """
    try:
        if type(data) is not bytes:
            data = bytes(data)
        if len(data) > max_size:
            raise ParseError(f"message of {len(data)} bytes exceeds {max_size}", 413)
        if data[:1] in (b"\r", b"\n"):
            data = data.lstrip(b"\r\n")  # §7.5: CRLFs before the start line are ignored
        # The common case: the header section ends at the first CRLFCRLF and holds no control
        # character and no CR or LF outside CRLF pairs. translate() with a table that changes
        # only the control characters other than HTAB, CR and LF returns its very input when
        # there is none; a CR or LF left inside a line after the split is a lone one. Folded
        # lines are recognised while the lines are read (_headers_from_lines); anything else,
        # and invalid UTF-8 (whose verdict may depend on where the lenient rules end the head),
        # goes the general way.
        head, sep, rest = data.partition(b"\r\n\r\n")
        lines: list[str] | None = None
        if sep:
            try:
                text = head.decode()  # UTF-8
            except UnicodeDecodeError:
                pass
            else:
                lines = text.split("\r\n")
                if head.translate(_MARK_CONTROLS) is not head:
                    lines = None
                else:
                    joined = "".join(lines)
                    if "\r" in joined or "\n" in joined:
                        lines = None
        if lines is None:
            lines, rest = _split_lenient(data)
            headers = _headers_from_lines(lines, 1)
        else:
            # ASCII without control characters but HTAB: str.strip() strips SP and HTAB only.
            headers = _headers_from_lines(lines, 1, text.isascii())
        start_line = lines[0]
        body = _body(headers, rest)
        if start_line[:1] in _S_OR_S and start_line[:4].upper() == "SIP/":
            return _response(start_line, headers, body)
        return _request(start_line, headers, body)
    except ParseError:
        raise
    except (ValueError, IndexError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        # A bug in a header parser must still end as a 400, never as a crash of the transport.
        raise ParseError(f"malformed message ({type(exc).__name__})") from exc


def _split_lenient(data: bytes) -> tuple[list[str], bytes]:
    """The general path of ``parse_message``: bare LF line ends, control characters in
    quoted-pairs.

    Returns the lines of the header section (start line first) and the rest of ``data``.
    """
    end = _HEAD_END_RE.search(data)
    if end is None:
        raise ParseError("no empty line after the header section")
    head = data[: end.start()]
    if head.endswith(b"\r"):
        head = head[:-1]
    if (
        len(head.translate(None, _CONTROL_CHARS)) != len(head)
        and _UNESCAPED_CONTROL_RE.search(head) is not None
    ):
        raise ParseError("control character in the header section")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("header section is not valid UTF-8") from None
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            raise ParseError("CR not followed by LF in the header section")
    return text.split("\n"), data[end.end() :]


def parse_headers(text: str) -> Headers:
    """Parse LF-separated header field lines (no start line, no empty line) into ``Headers``.

    Unfolds continuation lines (§7.3.1) to one SP; tolerates SP/HT before the colon.
    Used for the message header section and for MIME body parts (RFC 2046 §5.1).
    """
    if not text:
        return Headers._from_fields([])
    return _headers_from_lines(text.split("\n"), 0)


def _headers_from_lines(lines: list[str], first: int, plain: bool = False) -> Headers:
    """``Headers`` (with its lookup index) from the field lines ``lines[first:]``.

    ``plain`` says the lines are ASCII without control characters other than HTAB, so that
    ``str.strip()`` (cheaper) strips exactly SP and HTAB.

    Only the index is built here (lookup key -> first value, and for the keys that repeat,
    lookup key -> every value); ``Headers`` makes its ordered (key, name, value) triples from
    the same lines when it needs them. A continuation line (SP or HTAB first) is never a known
    header name, so it is noticed in the slow branch of the loop, which then starts again on
    the unfolded lines (§7.3.1).
    """
    if len(lines) <= first:
        return Headers._from_fields([])
    if lines[first][:1] in (" ", "\t"):
        raise ParseError("header section starts with a continuation line")
    index: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    keys = _KEY_CACHE
    for line in lines[first:] if first else lines:
        # "Name: value" is the usual spelling; a known name holds no ':', so when it is found
        # the first colon was the separator. strip() copies only if there is something to strip.
        name, colon, value = line.partition(": ")
        key = keys.get(name)
        if key is None:
            if line[:1] in (" ", "\t"):
                return _headers_from_lines(_unfold(lines[first:]), 0)
            name, colon, value = line.partition(":")
            if not colon:
                raise ParseError(f"header line without a colon: {line[:40]!r}")
            key = _key_and_name(name.rstrip(" \t"))[0]
        value = value.strip() if plain else value.strip(" \t")
        if key in index:
            values = multi.get(key)
            if values is None:
                multi[key] = [index[key], value]
            else:
                values.append(value)
        else:
            index[key] = value
    # Adopt the lines as they are: Headers makes its ordered (key, name, value) triples from
    # them (_fields_from_lines, splitting each line as above) only when something needs them.
    headers = _new(Headers)
    headers._field_list = None
    headers._lines = lines
    headers._first = first
    headers._index = index
    headers._multi = multi
    return headers


def _unfold(lines: list[str]) -> list[str]:
    """Join continuation lines to the line they continue, with one SP (§7.3.1)."""
    logical: list[str] = []
    parts: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            piece = line.strip(" \t")
            if piece:
                parts.append(piece)
            continue
        if parts:
            logical.append(" ".join(parts))
        parts = [line.rstrip(" \t")]
    if parts:
        logical.append(" ".join(parts))
    return logical


def _body(headers: Headers, rest: bytes) -> bytes:
    """The body: Content-Length bytes of ``rest``, or all of it if there is no Content-Length.

    ``headers`` has its index built (``_headers_from_lines``).
    """
    index = headers._index
    if index is None:  # never: _headers_from_lines builds it
        index = headers._lookup_index()
    value = index.get("content-length")
    if value is None:
        return rest  # a datagram without Content-Length: the rest is the body (§18.3)
    values = headers._multi.get("content-length")
    if values is not None and any(v != value for v in values):
        raise ParseError("conflicting Content-Length headers")
    if not (value.isascii() and value.isdigit()):
        raise ParseError(f"malformed Content-Length header {value[:20]!r}")
    length = int(value) if len(value) <= _MAX_LENGTH_DIGITS else len(rest) + 1
    if length > len(rest):
        raise ParseError(f"Content-Length {value[:20]} exceeds the {len(rest)} bytes of body")
    return rest[:length]


def _check_version(version: str) -> str:
    """'SIP/2.0' (case-insensitive, §7.1); 505 for another SIP version, 400 for garbage."""
    if version.upper() == "SIP/2.0":
        return "SIP/2.0"
    if _VERSION_RE.fullmatch(version) is not None:
        raise ParseError(f"SIP version {version[:20]} not supported", 505)
    raise ParseError(f"malformed SIP version {version[:20]!r}")


def _response(start_line: str, headers: Headers, body: bytes) -> Response:
    # Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (§7.2). The reason may be
    # empty (RFC 4475 noreason); a missing SP before an empty reason is tolerated.
    version, _, tail = start_line.partition(" ")
    version = _check_version(version)
    code, _, reason = tail.partition(" ")
    if not (len(code) == 3 and code.isascii() and code.isdigit() and "1" <= code[0] <= "6"):
        raise ParseError(f"malformed status code {code[:20]!r}")
    response = Response(int(code), reason, headers, body, version)
    _check_mandatory(response, None)
    return response


def _request(start_line: str, headers: Headers, body: bytes) -> Request:
    m = _REQUEST_LINE_FAST_RE.fullmatch(start_line)
    if m is not None:
        # The common shape, "METHOD sip:user@host;p=v SIP/2.0", checked by the regex.
        method, scheme, user, password, host, port_text, uri_params = m.groups()
        if port_text is None and password is None and uri_params.count(";") < 2:
            # What _sip_from_fast gives for no port and at most one parameter (";transport=tcp",
            # ";lr"), without the cost of calling it and the dataclass.
            sip_uri = _new(SipURI)
            sip_uri.scheme = scheme
            sip_uri.user = user
            sip_uri.password = None
            sip_uri.host = host
            sip_uri.port = None
            if uri_params:
                name, eq, value = uri_params[1:].partition("=")
                sip_uri.params = {name if name.islower() else name.lower(): value if eq else None}
            else:
                sip_uri.params = {}
            sip_uri.headers = {}
        else:
            sip_uri = _sip_from_fast(scheme, (user, password, host, port_text, uri_params))
        # Request(method, uri, headers, body) without the cost of calling the dataclass.
        request = _new(Request)
        request.method = method
        request.uri = sip_uri
        request.headers = headers
        request.body = body
        request.version = "SIP/2.0"
        _check_mandatory(request, method)
        return request
    # Request-Line = Method SP Request-URI SP SIP-Version (§7.1): exactly single spaces.
    parts = start_line.split(" ")
    if len(parts) != 3:
        raise ParseError(f"malformed Request-Line {start_line[:60]!r}")
    method, uri_text, version = parts
    if _TOKEN_RE.fullmatch(method) is None:
        raise ParseError(f"malformed method {method[:20]!r}")
    version = _check_version(version)
    if not uri_text.isascii() or _REQUEST_URI_RE.fullmatch(uri_text) is None:
        raise ParseError(f"malformed Request-URI {uri_text[:60]!r}")
    uri = parse_uri(uri_text)
    if isinstance(uri, SipURI) and uri.headers:
        # §19.1.1 table: URI headers are not allowed in a Request-URI (RFC 4475 escruri).
        raise ParseError("Request-URI contains URI headers")
    request = Request(method, uri, headers, body, version)
    _check_mandatory(request, method)
    return request


def _check_mandatory(message: Request | Response, method: str | None) -> None:
    """Parse the headers every message must carry (§8.1.1); hand the results to the message."""
    headers = message.headers
    index = headers._index
    if index is None:  # never: _headers_from_lines builds it
        index = headers._lookup_index()
    multi = headers._multi  # the keys that appear more than once
    call_id = index.get("call-id")
    cseq_raw = index.get("cseq")
    from_raw = index.get("from")
    to_raw = index.get("to")
    if (
        call_id is None
        or cseq_raw is None
        or from_raw is None
        or to_raw is None
        or (
            # Usually only Via repeats: then none of the four can.
            (len(multi) > 1 or (multi and "via" not in multi))
            and ("call-id" in multi or "cseq" in multi or "from" in multi or "to" in multi)
        )
    ):
        # Some header is missing or repeated: _one raises for it, naming it.
        call_id = _one(headers, "call-id", "Call-ID")
        cseq_raw = _one(headers, "cseq", "CSeq")
        from_raw = _one(headers, "from", "From")
        to_raw = _one(headers, "to", "To")
    top_via = index.get("via")
    if top_via is None:
        raise ParseError("missing Via header")
    via_lines = multi.get("via")
    max_forwards = index.get("max-forwards")
    if max_forwards is not None and "max-forwards" in multi:
        raise ParseError("more than one Max-Forwards header")
    if _CALL_ID_RE.fullmatch(call_id) is None:
        raise ParseError(f"malformed Call-ID header {call_id[:60]!r}")
    header = "CSeq"
    try:
        cseq = parse_cseq(cseq_raw)
        header = "From"
        from_ = parse_name_addr(from_raw)
        header = "To"
        to = parse_name_addr(to_raw)
    except ParseError as exc:
        raise ParseError(f"malformed {header} header: {exc.reason}", exc.status_code) from exc
    if method is not None and cseq.method != method:
        raise ParseError(f"CSeq method {cseq.method} does not match the {method} request")
    vias: list[Via] = []
    try:
        # parse_via_lines(via_lines or [top_via]) without the cost of the call.
        for line in via_lines or (top_via,):
            if "," in line:
                vias.extend(parse_via(value) for value in split_header_values(line))
            else:
                vias.append(parse_via(line))
    except ParseError as exc:
        raise ParseError(f"malformed Via header: {exc.reason}", exc.status_code) from exc
    message._handout_cseq = cseq
    message._handout_from = from_
    message._handout_to = to
    message._handout_via = vias
    if max_forwards is not None:
        message._handout_max_forwards = parse_max_forwards(max_forwards)
    message._handout_index = index


def _one(headers: Headers, key: str, name: str) -> str:
    """The value of a header that must appear exactly once (§8.1.1)."""
    values = headers._values(key)
    if not values:
        raise ParseError(f"missing {name} header")
    if len(values) > 1:
        raise ParseError(f"more than one {name} header")
    return values[0]
