"""SIP messages: the header multi-dict, requests, responses and their serialisation.

RFC 3261 §7 (message structure), §7.3 (header fields: case-insensitive names, compact forms,
comma-separated lists), §8.2.6 (constructing a response), §20 (the header fields) and §21 (the
reason phrases).

A message keeps every header field line as raw text (``Headers``); the typed accessors
(``.via``, ``.cseq``, ``.from_`` ...) parse on demand with ``softphone.sip.headers`` and raise
``ParseError`` when the header is missing or malformed, so a server can answer 400 at the point
where it actually needs the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from softphone.sip.errors import LocalProtocolError, ParseError
from softphone.sip.grammar import split_header_values
from softphone.sip.headers import (
    CSeq,
    NameAddr,
    Via,
    parse_cseq,
    parse_name_addr,
    parse_via,
)
from softphone.sip.uri import URI

__all__ = [
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "REASON_PHRASES",
    "Headers",
    "Message",
    "Request",
    "Response",
    "canonical_name",
    "reason_phrase",
]

_T = TypeVar("_T")


def _words(text: str) -> list[str]:
    return text.split()


#: RFC 3261 §7.3.3 and the IANA registry: compact form -> canonical long name.
COMPACT_FORMS: dict[str, str] = {
    "i": "Call-ID",
    "m": "Contact",
    "f": "From",
    "t": "To",
    "v": "Via",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "s": "Subject",
    "k": "Supported",
    "o": "Event",  # RFC 6665
    "u": "Allow-Events",  # RFC 6665
    "r": "Refer-To",  # RFC 3515
    "b": "Referred-By",  # RFC 3892
    "x": "Session-Expires",  # RFC 4028
    "a": "Accept-Contact",  # RFC 3841
    "j": "Reject-Contact",  # RFC 3841
    "d": "Request-Disposition",  # RFC 3841
    "y": "Identity",  # RFC 8224
    "n": "Identity-Info",  # RFC 4474 (obsolete, still seen)
}

# Canonical spellings whose capitalisation is not simply "Title-Case" (Call-ID, CSeq,
# WWW-Authenticate ...) plus every other header we know, so output looks like RFC examples.
_KNOWN_NAMES = _words(
    "Accept Accept-Contact Accept-Encoding Accept-Language Accept-Resource-Priority Alert-"
    "Info Allow Allow-Events Answer-Mode Authentication-Info Authorization Call-ID Call-Info "
    "Contact Content-Disposition Content-Encoding Content-ID Content-Language Content-Length "
    "Content-Transfer-Encoding Content-Type CSeq Date Diversion Error-Info Event Expires "
    "Feature-Caps Flow-Timer From Geolocation History-Info Identity Identity-Info In-Reply-To "
    "Info-Package Join Max-Breadth Max-Forwards MIME-Version Min-Expires Min-SE Organization "
    "P-Access-Network-Info P-Asserted-Identity P-Associated-URI P-Called-Party-ID P-Charging-"
    "Vector P-Preferred-Identity Path Permission-Missing Priority Priv-Answer-Mode Privacy "
    "Proxy-Authenticate Proxy-Authorization Proxy-Require RAck Reason Record-Route Recv-Info "
    "Refer-Sub Refer-To Referred-By Reject-Contact Replaces Reply-To Request-Disposition "
    "Require Resource-Priority Retry-After Route RSeq Security-Client Security-Server "
    "Security-Verify Server Service-Route Session-Expires Session-ID SIP-ETag SIP-If-Match "
    "Subject Subscription-State Supported Suppress-If-Match Target-Dialog Timestamp To "
    "Trigger-Consent Unsupported User-Agent Via Warning WWW-Authenticate"
)

_CANONICAL: dict[str, str] = {n.lower(): n for n in _KNOWN_NAMES}
_CANONICAL.update(COMPACT_FORMS)

#: Headers whose field value is a comma-separated list (RFC 3261 §7.3.1): ``get_all`` splits
#: them. Deliberately absent: the challenge/credential headers (commas separate auth-params),
#: Date and Retry-After (commas inside the value), and every single-valued header.
LIST_HEADERS: frozenset[str] = frozenset(
    n.lower()
    for n in _words(
        "Accept Accept-Contact Accept-Encoding Accept-Language Accept-Resource-Priority Alert-"
        "Info Allow Allow-Events Call-Info Contact Content-Encoding Content-Language Diversion "
        "Error-Info Geolocation History-Info In-Reply-To P-Asserted-Identity P-Associated-URI "
        "P-Preferred-Identity Path Permission-Missing Proxy-Require Reason Record-Route Recv-Info "
        "Reject-Contact Request-Disposition Require Resource-Priority Route Security-Client "
        "Security-Server Security-Verify Service-Route Supported Trigger-Consent Unsupported Via "
        "Warning"
    )
)

# Header name as commonly written (canonical, lower case, compact in either case) -> (lookup
# key = lower-case long name, canonical name). A fixed table: other spellings are validated and
# mapped by _key_and_name each time they are met (nothing learnt from the wire is kept).
_NAME_CACHE: dict[str, tuple[str, str]] = {}
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
for _name in (*_KNOWN_NAMES, *COMPACT_FORMS.values()):
    _NAME_CACHE[_name] = _NAME_CACHE[_name.lower()] = (_name.lower(), _name)
for _compact, _name in COMPACT_FORMS.items():
    _NAME_CACHE[_compact] = _NAME_CACHE[_compact.upper()] = (_name.lower(), _name)


def _key_and_name(name: str) -> tuple[str, str]:
    """(lookup key, canonical name) of a header name; ParseError if it is not a token."""
    known = _NAME_CACHE.get(name)
    if known is not None:
        return known
    if _TOKEN_RE.fullmatch(name) is None:
        raise ParseError(f"invalid header name {name!r}")
    lower = name.lower()
    known = _NAME_CACHE.get(lower)
    if known is not None:
        return known
    canonical = _CANONICAL.get(lower, name)
    return canonical.lower(), canonical


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name (RFC 3261 §7.3.3, §20).

    ``"call-id"`` and ``"i"`` give ``"Call-ID"``, ``"www-authenticate"`` gives
    ``"WWW-Authenticate"``; a name we do not know is returned as given. Raises ``ParseError``
    if ``name`` is not a token.
    """
    return _key_and_name(name)[1]


_NO_VALUES: list[str] = []  # returned by Headers._lookup for an absent name; never mutated
_NO_MULTI: dict[str, list[str]] = {}  # Headers._multi before an index is built; never mutated
# Header name as commonly written -> lookup key (the first half of _NAME_CACHE's values).
_KEY_CACHE: dict[str, str] = {name: key_name[0] for name, key_name in _NAME_CACHE.items()}


def _fields_from_lines(lines: list[str], first: int) -> list[tuple[str, str, str]]:
    """(key, canonical name, value) of validated, unfolded field lines ``lines[first:]``.

    Splits each line exactly as the parser did when it built the index (``parser``), so the
    values are the same strings the index holds.
    """
    fields: list[tuple[str, str, str]] = []
    append = fields.append
    names = _NAME_CACHE
    for position in range(first, len(lines)):
        line = lines[position]
        name, _, value = line.partition(": ")
        key_name = names.get(name)
        if key_name is None:
            name, _, value = line.partition(":")
            key_name = _key_and_name(name.rstrip(" \t"))
        append((key_name[0], key_name[1], value.strip(" \t")))
    return fields


class Headers:
    """Ordered multi-dict of header field lines (RFC 3261 §7.3).

    Names are case-insensitive and a compact form is the same header as its long form; fields
    are stored and serialised under the canonical name. Values are raw text (one field line,
    unfolded, surrounding whitespace removed).
    """

    __slots__ = ("_field_list", "_first", "_index", "_lines", "_multi")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        # (key, canonical name, value) triples; None while they are still the parsed lines.
        self._field_list: list[tuple[str, str, str]] | None = []
        self._lines: list[str] = _NO_VALUES
        self._first = 0
        # The lookup index, built on first use and dropped (None) by any change: lookup key ->
        # first value, and in _multi lookup key -> every value for the keys that repeat.
        self._index: dict[str, str] | None = None
        self._multi: dict[str, list[str]] = _NO_MULTI
        for name, value in items:
            self.add(name, value)

    @property
    def _fields(self) -> list[tuple[str, str, str]]:
        """The (key, canonical name, value) triples, made from the parsed lines on first use."""
        fields = self._field_list
        if fields is None:
            fields = self._field_list = _fields_from_lines(self._lines, self._first)
            self._lines = _NO_VALUES
        return fields

    @_fields.setter
    def _fields(self, fields: list[tuple[str, str, str]]) -> None:
        self._field_list = fields
        self._lines = _NO_VALUES

    @classmethod
    def _from_fields(cls, fields: list[tuple[str, str, str]]) -> Headers:
        """Adopt already-validated (key, name, value) triples."""
        headers = cls.__new__(cls)
        headers._field_list = fields
        headers._lines = _NO_VALUES
        headers._first = 0
        headers._index = None
        headers._multi = _NO_MULTI
        return headers

    def _lookup_index(self) -> dict[str, str]:
        """Lookup key (lower-case long name) -> first raw value; also (re)builds ``_multi``."""
        index = self._index
        if index is None:
            index = {}
            multi: dict[str, list[str]] = {}
            for key, _, value in self._fields:
                if key in index:
                    values = multi.get(key)
                    if values is None:
                        multi[key] = [index[key], value]
                    else:
                        values.append(value)
                else:
                    index[key] = value
            self._multi = multi
            self._index = index
        return index

    def _values(self, key: str) -> list[str]:
        """Every raw value under the lookup ``key``, in order. The caller must not change it."""
        index = self._index
        if index is None:
            index = self._lookup_index()
        value = index.get(key)
        if value is None:
            return _NO_VALUES
        values = self._multi.get(key)
        return [value] if values is None else values

    def _lookup(self, name: str) -> list[str]:
        key = _KEY_CACHE.get(name)
        if key is None:
            key = _key_and_name(name)[0]
        return self._values(key)

    def get(self, name: str) -> str | None:
        """The raw value of the first field line called ``name``, or None."""
        key = _KEY_CACHE.get(name)
        if key is None:
            key = _key_and_name(name)[0]
        index = self._index
        if index is None:
            index = self._lookup_index()
        return index.get(key)

    def get_lines(self, name: str) -> list[str]:
        """The raw values of every field line called ``name``, not split at commas."""
        return list(self._lookup(name))

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``: field lines in order, list headers split at top-level commas.

        Splitting follows RFC 3261 §7.3.1 for the headers in ``LIST_HEADERS`` (commas inside
        quoted strings and ``<...>`` do not split); other headers give one value per field line.
        """
        key = _KEY_CACHE.get(name)
        if key is None:
            key = _key_and_name(name)[0]
        index = self._index
        if index is None:
            index = self._lookup_index()
        value = index.get(key)
        if value is None:
            return []
        values = self._multi.get(key)
        if values is None:
            if "," not in value or key not in LIST_HEADERS:
                return [value]
            if (
                '"' not in value
                and "<" not in value
                and "\t" not in value
                and " ," not in value
                and ",  " not in value
            ):
                # Stored values have no SP/HTAB around them; if every comma is followed by
                # exactly one SP and none by another, ", " splits exactly as the general rule.
                items = value.split(", ")
                if len(items) == value.count(",") + 1 and items[0]:
                    return items
            return split_header_values(value)
        if key not in LIST_HEADERS:
            return values.copy()
        result: list[str] = []
        for value in values:
            if "," in value:
                result.extend(split_header_values(value))
            else:
                result.append(value)
        return result

    @staticmethod
    def _check_value(value: str) -> str:
        # A CR or LF in a value would let a caller inject header lines (or a body).
        if "\r" in value or "\n" in value or "\x00" in value:
            raise LocalProtocolError(f"header value contains CR, LF or NUL: {value!r}")
        return value.strip(" \t")

    def _triple(self, name: str, value: str) -> tuple[str, str, str]:
        try:
            key, canonical = _key_and_name(name)
        except ParseError as exc:
            raise LocalProtocolError(exc.reason) from exc
        return key, canonical, self._check_value(value)

    def add(self, name: str, value: str) -> None:
        """Append a field line."""
        self._fields.append(self._triple(name, value))
        self._index = None

    def prepend(self, name: str, value: str) -> None:
        """Insert before the first field of that name, or at the top if there is none.

        This is how a proxy adds its Via (RFC 3261 §16.6 step 8).
        """
        triple = self._triple(name, value)
        for position, (key, _, _) in enumerate(self._fields):
            if key == triple[0]:
                self._fields.insert(position, triple)
                break
        else:
            self._fields.insert(0, triple)
        self._index = None

    def set(self, name: str, value: str) -> None:
        """Replace every field of that name by one, at the position of the first (or the end)."""
        triple = self._triple(name, value)
        fields: list[tuple[str, str, str]] = []
        placed = False
        for old in self._fields:
            if old[0] != triple[0]:
                fields.append(old)
            elif not placed:
                fields.append(triple)
                placed = True
        if not placed:
            fields.append(triple)
        self._fields = fields
        self._index = None

    def remove(self, name: str) -> None:
        """Remove every field of that name (no error if there is none)."""
        key = self._triple(name, "")[0]
        self._fields = [f for f in self._fields if f[0] != key]
        self._index = None

    def remove_first(self, name: str) -> str | None:
        """Remove the first value of a list header (or the first field line) and return it.

        For a list header whose first line holds several values only the first value goes,
        which is what a UAC does to the top Via of a response (RFC 3261 §18.1.2) or a proxy to
        the Route it consumed (§16.4).
        """
        key = self._triple(name, "")[0]
        for position, (k, canonical, value) in enumerate(self._fields):
            if k != key:
                continue
            values = split_header_values(value) if key in LIST_HEADERS else [value]
            if len(values) > 1:
                self._fields[position] = (k, canonical, ", ".join(values[1:]))
            else:
                del self._fields[position]
            self._index = None
            return values[0] if values else value
        return None

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            return bool(self._lookup(name))
        except ParseError:
            return False

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((name, value) for _, name, value in self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"

    def copy(self) -> Headers:
        """An independent copy (values are immutable strings, so a shallow list copy)."""
        return Headers._from_fields(list(self._fields))

    def serialize(self) -> str:
        """``Name: value`` lines each ending in CRLF, in order (RFC 3261 §7.3)."""
        return "".join(f"{name}: {value}\r\n" for _, name, value in self._fields)


# Content-Type values as nearly every message writes them: already lower-case type/subtype.
_COMMON_MEDIA_TYPES = frozenset(
    _words(
        "application/sdp application/pidf+xml application/dtmf-relay application/simple-message-"
        "summary application/sipfrag message/sipfrag text/plain multipart/mixed multipart/signed "
        "multipart/alternative application/pkcs7-mime application/pkcs7-signature"
    )
)
_MEDIA_TYPE_ONLY_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]++/[A-Za-z0-9\-.!%*_+`'~]++")
_MEDIA_TYPE_RE = re.compile(r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)")


class _MessageBase:
    """Typed accessors shared by ``Request`` and ``Response`` (RFC 3261 §20).

    Each raises ``ParseError`` (400) naming the header when it is missing or malformed. The
    parser validates the mandatory headers and leaves the objects it built in the
    ``_handout_*`` attributes, together with the identity of the header index they were parsed
    from: the first access takes that object (saving a second parse) provided the headers have
    not changed since (any change drops the index); later accesses parse again, so no two
    callers ever share a mutable object. (Class attributes, not dataclass fields: a message
    made by its constructor has none.)
    """

    headers: Headers
    body: bytes
    _handout_index: object = None
    _handout_cseq: CSeq | None = None
    _handout_from: NameAddr | None = None
    _handout_to: NameAddr | None = None
    _handout_via: list[Via] | None = None
    _handout_max_forwards: int | None = None

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise ParseError(f"missing {name} header")
        return value

    def _first(self, key: str) -> str | None:
        """The first raw value under the lookup key ``key`` (a lower-case long name), or None."""
        headers = self.headers
        index = headers._index
        if index is None:
            index = headers._lookup_index()
        return index.get(key)

    @property
    def call_id(self) -> str:
        """The Call-ID (RFC 3261 §20.8)."""
        index = self.headers._index
        value = index.get("call-id") if index is not None else self._first("call-id")
        if not value:
            raise ParseError("missing Call-ID header" if value is None else "empty Call-ID header")
        return value

    @property
    def cseq(self) -> CSeq:
        """The CSeq (RFC 3261 §20.16)."""
        handed = self._handout_cseq  # the parser's object, once (see the class docstring)
        if handed is not None and self.headers._index is self._handout_index:
            self._handout_cseq = None
            return handed
        return _parse_as("CSeq", parse_cseq, self._required("CSeq"))

    @property
    def from_(self) -> NameAddr:
        """The From header (RFC 3261 §20.20)."""
        handed = self._handout_from  # the parser's object, once (see the class docstring)
        if handed is not None and self.headers._index is self._handout_index:
            self._handout_from = None
            return handed
        return _parse_as("From", parse_name_addr, self._required("From"))

    @property
    def to(self) -> NameAddr:
        """The To header (RFC 3261 §20.39)."""
        handed = self._handout_to  # the parser's object, once (see the class docstring)
        if handed is not None and self.headers._index is self._handout_index:
            self._handout_to = None
            return handed
        return _parse_as("To", parse_name_addr, self._required("To"))

    @property
    def vias(self) -> list[Via]:
        """Every Via value, top first (RFC 3261 §20.42); ParseError if there is none."""
        handed = self._handout_via  # the parser's object, once (see the class docstring)
        if handed is not None and self.headers._index is self._handout_index:
            self._handout_via = None
            return handed
        lines = self.headers._lookup("Via")
        if not lines:
            raise ParseError("missing Via header")
        return parse_via_lines(lines)

    @property
    def top_via(self) -> Via:
        """The first Via value: the one a response is routed back by (RFC 3261 §18.2.2)."""
        return self.vias[0]

    @property
    def contacts(self) -> list[NameAddr]:
        """Contact values (RFC 3261 §20.10); ``[]`` if absent.

        ``Contact: *`` (the REGISTER wildcard, §10.2.2) also gives ``[]``: check
        ``contact_wildcard`` before reading "no Contact" as a query.
        """
        headers = self.headers
        index = headers._index
        if index is None:
            index = headers._lookup_index()
        value = index.get("contact")
        if value is None:
            return []
        if "contact" not in headers._multi and "," not in value and value != "*":
            # One value: what get_all and _name_addrs give, without building the list twice.
            try:
                return [parse_name_addr(value)]
            except ParseError as exc:
                reason = f"malformed Contact header: {exc.reason}"
                raise ParseError(reason, exc.status_code) from exc
        values = headers.get_all("Contact")
        if "*" in values:
            if len(values) > 1:
                raise ParseError("Contact: * mixed with other contacts")
            return []
        return _name_addrs("Contact", values)

    @property
    def contact_wildcard(self) -> bool:
        """True for ``Contact: *`` (RFC 3261 §10.2.2)."""
        return self.headers.get_all("Contact") == ["*"]

    @property
    def routes(self) -> list[NameAddr]:
        """Route values in order (RFC 3261 §20.34)."""
        return _name_addrs("Route", self.headers.get_all("Route"))

    @property
    def record_routes(self) -> list[NameAddr]:
        """Record-Route values in order (RFC 3261 §20.30)."""
        return _name_addrs("Record-Route", self.headers.get_all("Record-Route"))

    @property
    def content_type(self) -> str | None:
        """Lower-case ``type/subtype`` of the body without parameters (RFC 3261 §20.15)."""
        index = self.headers._index
        raw = index.get("content-type") if index is not None else self._first("content-type")
        if raw is None:
            return None
        if raw in _COMMON_MEDIA_TYPES:
            return raw
        if _MEDIA_TYPE_ONLY_RE.fullmatch(raw) is not None:
            return raw.lower()  # the common "type/subtype" without whitespace or parameters
        match = _MEDIA_TYPE_RE.match(raw)
        if match is None or raw[match.end() :].lstrip(" \t")[:1] not in ("", ";"):
            raise ParseError(f"malformed Content-Type header {raw!r}")
        return f"{match[1]}/{match[2]}".lower()

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards, 0..255 (RFC 3261 §20.22), or None if absent."""
        handed = self._handout_max_forwards  # the parser's object, once (see the class docstring)
        if handed is not None and self.headers._index is self._handout_index:
            self._handout_max_forwards = None
            return handed
        raw = self._first("max-forwards")
        return None if raw is None else parse_max_forwards(raw)

    def _serialize(self, start_line: str) -> bytes:
        # Content-Length always states the real body length (RFC 3261 §20.14): it replaces the
        # first Content-Length field in place (others are dropped) or is appended.
        body = self.body
        length = str(len(body))
        lines = [start_line]
        placed = False
        for key, name, value in self.headers._fields:
            if key != "content-length":
                lines.append(f"{name}: {value}")
            elif not placed:
                lines.append(f"{name}: {length}")
                placed = True
        if not placed:
            lines.append(f"Content-Length: {length}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8") + body


def _parse_as(header: str, parse: Callable[[str], _T], raw: str) -> _T:
    """Run a header parser and name the header in the error."""
    try:
        return parse(raw)
    except ParseError as exc:
        raise ParseError(f"malformed {header} header: {exc.reason}", exc.status_code) from exc


def _name_addrs(header: str, values: list[str]) -> list[NameAddr]:
    """Parse name-addr values, naming the header in the error."""
    try:
        return [parse_name_addr(value) for value in values]
    except ParseError as exc:
        raise ParseError(f"malformed {header} header: {exc.reason}", exc.status_code) from exc


def parse_via_lines(lines: Iterable[str]) -> list[Via]:
    """Parse Via field lines (each possibly a comma list) into Vias, top first (§20.42)."""
    vias: list[Via] = []
    try:
        for line in lines:
            if "," in line:
                vias.extend(parse_via(value) for value in split_header_values(line))
            else:
                vias.append(parse_via(line))
    except ParseError as exc:
        raise ParseError(f"malformed Via header: {exc.reason}", exc.status_code) from exc
    return vias


# "0".."255" -> the number: a fixed table, cheaper than int() on the hot path.
_MAX_FORWARDS_VALUES = {str(hops): hops for hops in range(256)}


def parse_max_forwards(raw: str) -> int:
    """Max-Forwards = 1*DIGIT in 0..255 (RFC 3261 §20.22)."""
    value = _MAX_FORWARDS_VALUES.get(raw)
    if value is not None:
        return value
    significant = raw.lstrip("0") or "0"  # "0068" is 68 (RFC 4475 wsinv)
    if not (raw.isascii() and raw.isdigit()) or len(significant) > 3 or int(significant) > 255:
        raise ParseError(f"malformed Max-Forwards header {raw[:20]!r}")
    return int(significant)


@dataclass(eq=False)
class Request(_MessageBase):
    """A SIP request (RFC 3261 §7.1). ``bytes(request)`` serialises it."""

    method: str  # case-sensitive; unknown methods are preserved
    uri: URI
    headers: Headers
    body: bytes = b""
    version: str = "SIP/2.0"

    def __bytes__(self) -> bytes:
        """Request-Line, headers in order, Content-Length from the body, CRLF, body (§7)."""
        return self._serialize(f"{self.method} {self.uri} {self.version}")

    def copy(self) -> Request:
        """An independent copy (headers copied; URI shared, treat it as immutable)."""
        return Request(self.method, self.uri, self.headers.copy(), self.body, self.version)


@dataclass(eq=False)
class Response(_MessageBase):
    """A SIP response (RFC 3261 §7.2). ``bytes(response)`` serialises it."""

    status_code: int  # 100..699
    reason: str
    headers: Headers
    body: bytes = b""
    version: str = "SIP/2.0"

    def __bytes__(self) -> bytes:
        """Status-Line, headers in order, Content-Length from the body, CRLF, body (§7)."""
        return self._serialize(f"{self.version} {self.status_code} {self.reason}")

    def copy(self) -> Response:
        """An independent copy (headers copied)."""
        return Response(self.status_code, self.reason, self.headers.copy(), self.body, self.version)

    @classmethod
    def for_request(
        cls,
        request: Request,
        status_code: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        body: bytes = b"",
    ) -> Response:
        """A response to ``request`` built per RFC 3261 §8.2.6.

        Copies every Via (in order), From, To, Call-ID and CSeq; for a 100 also Timestamp
        (§8.2.6.1). ``to_tag`` is added to To if To has no tag yet and the code is not 100
        (§8.2.6.2). ``reason`` defaults to the §21 phrase for the code.
        """
        if not 100 <= status_code <= 699:
            raise LocalProtocolError(f"status code {status_code} is not in 100..699")
        headers = Headers()
        for line in request.headers.get_lines("Via"):
            headers.add("Via", line)
        for name in ("From", "To", "Call-ID", "CSeq"):
            value = request.headers.get(name)
            if value is None:
                raise LocalProtocolError(f"request has no {name} header to copy")
            if name == "To" and to_tag and status_code != 100 and request.to.tag is None:
                value = f"{value};tag={to_tag}"
            headers.add(name, value)
        timestamp = request.headers.get("Timestamp")
        if status_code == 100 and timestamp is not None:
            headers.add("Timestamp", timestamp)
        return cls(status_code, reason or reason_phrase(status_code), headers, body)


Message = Request | Response

#: RFC 3261 §21 plus the codes later RFCs registered that a softphone meets.
REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",  # RFC 6228
    200: "OK",
    202: "Accepted",  # RFC 6665
    204: "No Notification",  # RFC 5839
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",  # RFC 3903
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",  # RFC 4412
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",  # RFC 4028
    423: "Interval Too Brief",
    428: "Use Identity Header",  # RFC 8224
    429: "Provide Referrer Identity",  # RFC 3892
    430: "Flow Failed",  # RFC 5626
    433: "Anonymity Disallowed",  # RFC 5079
    436: "Bad Identity Info",  # RFC 8224
    437: "Unsupported Credential",  # RFC 8224
    438: "Invalid Identity Header",  # RFC 8224
    439: "First Hop Lacks Outbound Support",  # RFC 5626
    440: "Max-Breadth Exceeded",  # RFC 5393
    469: "Bad Info Package",  # RFC 6086
    470: "Consent Needed",  # RFC 5360
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",  # RFC 6665
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",  # RFC 3329
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    555: "Push Notification Service Not Supported",  # RFC 8599
    580: "Precondition Failure",  # RFC 3312
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",  # RFC 8197
    608: "Rejected",  # RFC 8688
}

_CLASS_PHRASES = {
    1: "Provisional",
    2: "Success",
    3: "Redirection",
    4: "Client Error",
    5: "Server Error",
    6: "Global Failure",
}


def reason_phrase(status_code: int) -> str:
    """The RFC 3261 §21 reason phrase, or a generic one for the class (x00 treatment, §8.1.3.2)."""
    return REASON_PHRASES.get(status_code) or _CLASS_PHRASES.get(status_code // 100, "Unknown")
