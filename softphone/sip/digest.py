"""HTTP Digest authentication for SIP: algorithms, parsing, formatting and the client side.

Specifications: RFC 3261 §22 (Digest in SIP, 401/407 and the header fields), RFC 2617 §3
(MD5, MD5-sess, qop, nonce-count), RFC 2069 (no qop, kept for compatibility), RFC 7616
(SHA-256, SHA-512-256, userhash, username*, charset), RFC 8760 (the SHA-2 algorithms in SIP)
and RFC 5987 (the ``UTF-8''...`` encoding of ``username*``).

Everything here is pure: strings and bytes in, strings out. The request is described by its
method, its Request-URI exactly as written on the wire and its body bytes, so this module does
not depend on the message classes. The server side is in ``softphone.sip.digest_server``.

Errors (added to the tree of ``softphone.sip.errors``)::

    SipError
    ├── RemoteProtocolError
    │   └── ParseError                 a malformed challenge or credentials value
    └── DigestError
        ├── NoUsableChallengeError     no Digest challenge with an algorithm we support
        └── AuthenticationFailedError  the server re-challenged an answered realm (bad password)

RFC 7616 §3.9.2 erratum: the example printed for SHA-512-256 was computed with SHA-512
truncated to 256 bits. We implement SHA-512/256 of FIPS 180-4 (hashlib ``sha512_256``), which
is what the RFC specifies, so we do *not* reproduce the printed values.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from softphone.sip.errors import LocalProtocolError, ParseError, SipError

__all__ = [
    "REDACTED",
    "Algorithm",
    "AuthHeader",
    "AuthenticationFailedError",
    "Challenge",
    "Credentials",
    "DigestClient",
    "DigestError",
    "NoUsableChallengeError",
    "Qop",
    "compute_ha1",
    "compute_response",
    "compute_userhash",
    "format_credentials",
    "parse_challenges",
    "parse_credentials",
    "quote",
    "redact_authorization",
    "select_challenge",
    "select_challenges",
]

REDACTED = "…redacted…"


class DigestError(SipError):
    """Base class of the Digest authentication failures that are not parse errors."""


class NoUsableChallengeError(DigestError):
    """No Digest challenge offered an algorithm and qop we support (RFC 7616 §3.7)."""


class AuthenticationFailedError(DigestError):
    """The server challenged again, not stale, after we answered ``realm``: a wrong password.

    RFC 3261 §22.2/§22.3: a client must not loop resubmitting rejected credentials.
    """

    def __init__(self, realm: str, reason: str) -> None:
        super().__init__(f"authentication failed for realm {realm!r}: {reason}")
        self.realm = realm
        self.reason = reason


class Algorithm(Enum):
    """The Digest algorithms of RFC 2617 §3.2.1 and RFC 7616 §3.3 / RFC 8760 §2.2.

    ``value`` is the token as written in the ``algorithm`` parameter.
    """

    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA_256 = "SHA-256"
    SHA_256_SESS = "SHA-256-sess"
    SHA_512_256 = "SHA-512-256"
    SHA_512_256_SESS = "SHA-512-256-sess"

    @classmethod
    def from_token(cls, token: str) -> Algorithm | None:
        """The algorithm named ``token`` (case-insensitive, RFC 7616 §3.3), None if unknown."""
        return _ALGORITHM_BY_LOWER.get(token.lower())

    @property
    def hash_name(self) -> str:
        """The hashlib name; SHA-512-256 is FIPS 180-4 SHA-512/256, not truncated SHA-512."""
        return _HASH_NAMES[self.value.lower().removesuffix("-sess")]

    @property
    def is_session(self) -> bool:
        """True for the ``-sess`` variants, whose H(A1) also covers nonce and cnonce."""
        return self.value.endswith("-sess")

    @property
    def weak(self) -> bool:
        """MD5 is broken as a hash; RFC 8760 §3 keeps it only for backward compatibility."""
        return self.hash_name == "md5"

    @property
    def strength(self) -> int:
        """Preference order for the client (RFC 8760 §2.4): SHA-512-256 > SHA-256 > MD5."""
        return _STRENGTH[self.hash_name]


_ALGORITHM_BY_LOWER = {a.value.lower(): a for a in Algorithm}
_HASH_NAMES = {"md5": "md5", "sha-256": "sha256", "sha-512-256": "sha512_256"}
_STRENGTH = {"md5": 1, "sha256": 2, "sha512_256": 3}


class Qop(StrEnum):
    """Quality of protection (RFC 2617 §3.2.1): ``auth``, or ``auth-int`` also covering the body."""

    AUTH = "auth"
    AUTH_INT = "auth-int"


# --------------------------------------------------------------------------------------------
# The computations (RFC 2617 §3.2.2, RFC 7616 §3.4)


def _h(algorithm: Algorithm, data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    # usedforsecurity=False keeps MD5 available on FIPS-mode OpenSSL builds: MD5 is mandated
    # by the protocol here, its weakness is reported to the user through `.weak`.
    return hashlib.new(algorithm.hash_name, raw, usedforsecurity=False).hexdigest()


def compute_ha1(algorithm: Algorithm, username: str, realm: str, password: str) -> str:
    """H(username ":" realm ":" password), the value a server may store instead of the password.

    RFC 2617 §3.2.2.2 / RFC 7616 §3.4.2. For a ``-sess`` algorithm this is the stored part;
    ``compute_response`` adds nonce and cnonce. Strings are encoded as UTF-8 (RFC 7616 §4).
    """
    return _h(algorithm, f"{username}:{realm}:{password}")


def compute_userhash(algorithm: Algorithm, username: str, realm: str) -> str:
    """H(username ":" realm), sent as the user name when userhash=true (RFC 7616 §3.4.4)."""
    return _h(algorithm, f"{username}:{realm}")


def compute_response(
    algorithm: Algorithm,
    ha1: str,
    *,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
    body_hash: str | None = None,
) -> str:
    """The ``response`` value (RFC 2617 §3.2.2.1, RFC 7616 §3.4.1).

    ``ha1`` is ``compute_ha1(...)``; for ``-sess`` it becomes H(ha1:nonce:cnonce) here
    (RFC 7616 §3.4.2). With qop ``auth-int`` A2 includes H(entity-body) (RFC 2617 §3.2.2.3):
    the hash of ``body`` (empty body: the hash of the empty string) unless ``body_hash`` is
    given. Without qop the RFC 2069 form H(HA1:nonce:HA2) is used.
    """
    if algorithm.is_session:
        if cnonce is None:
            raise LocalProtocolError(f"{algorithm.value} needs a cnonce (so a qop)")
        ha1 = _h(algorithm, f"{ha1}:{nonce}:{cnonce}")
    if qop == Qop.AUTH_INT:
        entity = body_hash if body_hash is not None else _h(algorithm, body)
        ha2 = _h(algorithm, f"{method}:{uri}:{entity}")
    elif qop in (None, Qop.AUTH):
        ha2 = _h(algorithm, f"{method}:{uri}")
    else:
        raise LocalProtocolError(f"unsupported qop {qop!r}")
    if qop is None:
        return _h(algorithm, f"{ha1}:{nonce}:{ha2}")
    if nc is None or cnonce is None:
        raise LocalProtocolError("qop needs nc and cnonce")
    return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


# --------------------------------------------------------------------------------------------
# The auth-param lexer (RFC 3261 §25.1 token/quoted-string, RFC 7235 §2.1 challenge lists)

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_WS_RE = re.compile(r"[ \t]*")


@dataclass(frozen=True)
class _Param:
    name: str  # lower case
    value: str  # unquoted
    start: int  # span of the raw value in the text, for redaction
    end: int


@dataclass
class _RawAuth:
    scheme: str
    params: list[_Param] = field(default_factory=list)
    token68: str | None = None


class _Scanner:
    """A cursor over one header value; every failure is a ParseError (400)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def done(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self, char: str) -> bool:
        return self.text.startswith(char, self.pos)

    def skip_ws(self) -> bool:
        match = _WS_RE.match(self.text, self.pos)
        assert match is not None  # `*` always matches
        self.pos = match.end()
        return match.end() > match.start()

    def skip_separators(self) -> None:
        # RFC 7230 §7: a #list may contain empty elements ("a, , b").
        while True:
            self.skip_ws()
            if not self.peek(","):
                return
            self.pos += 1

    def token(self, what: str) -> str:
        match = _TOKEN_RE.match(self.text, self.pos)
        if match is None:
            raise ParseError(f"expected {what} at offset {self.pos}")
        self.pos = match.end()
        return match.group()

    def at_param(self) -> bool:
        match = _TOKEN_RE.match(self.text, self.pos)
        if match is None:
            return False
        rest = _WS_RE.match(self.text, match.end())
        assert rest is not None
        return self.text.startswith("=", rest.end())

    def token68(self) -> str | None:
        """A token68 (RFC 7235 §2.1) standing alone after the scheme, else None."""
        match = _TOKEN68_RE.match(self.text, self.pos)
        if match is None:
            return None
        after = _WS_RE.match(self.text, match.end())
        assert after is not None
        if after.end() < len(self.text) and self.text[after.end()] != ",":
            return None
        self.pos = after.end()
        return match.group()

    def quoted(self) -> str:
        assert self.peek('"')
        out: list[str] = []
        i = self.pos + 1
        while i < len(self.text):
            char = self.text[i]
            if char == '"':
                self.pos = i + 1
                return "".join(out)
            if char == "\\":
                i += 1
                if i >= len(self.text):
                    break
                char = self.text[i]
            if char in "\r\n" or (ord(char) < 0x20 and char != "\t") or char == "\x7f":
                raise ParseError("control character in quoted-string")
            out.append(char)
            i += 1
        raise ParseError("unterminated quoted-string")

    def param(self) -> _Param:
        name = self.token("auth-param name").lower()
        self.skip_ws()
        if not self.peek("="):
            raise ParseError(f"expected '=' after {name!r}")
        self.pos += 1
        self.skip_ws()
        start = self.pos
        value = self.quoted() if self.peek('"') else self.token(f"value of {name!r}")
        return _Param(name, value, start, self.pos)


def _parse_auth_list(text: str) -> list[_RawAuth]:
    """Split a WWW-Authenticate-like value into challenges (RFC 7235 §4.1, several per value)."""
    scanner = _Scanner(text)
    out: list[_RawAuth] = []
    scanner.skip_separators()
    while not scanner.done():
        raw = _RawAuth(scanner.token("auth scheme"))
        out.append(raw)
        spaced = scanner.skip_ws()
        if not scanner.done() and not scanner.peek(","):
            if not spaced:
                raise ParseError(f"expected whitespace after scheme {raw.scheme!r}")
            raw.token68 = scanner.token68()
            if raw.token68 is None:
                raw.params.append(scanner.param())
        while True:
            scanner.skip_ws()
            if scanner.done():
                return out
            if not scanner.peek(","):
                raise ParseError(f"expected ',' at offset {scanner.pos}")
            scanner.skip_separators()
            if scanner.done() or not scanner.at_param():
                break  # the next challenge starts here
            raw.params.append(scanner.param())
    return out


def _digest_params(raw: _RawAuth) -> dict[str, str]:
    """The parameters of one Digest challenge or credentials, names lower-cased, no repeats."""
    if raw.token68 is not None:
        raise ParseError("Digest takes auth-params, not a token68")
    params: dict[str, str] = {}
    for param in raw.params:
        if param.name in params:
            # RFC 7235 §2.1: each parameter name MUST only occur once per challenge.
            raise ParseError(f"repeated Digest parameter {param.name!r}")
        params[param.name] = param.value
    return params


def _require(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if value is None:
        raise ParseError(f"Digest {name} missing")
    return value


def quote(text: str) -> str:
    """A quoted-string (RFC 3261 §25.1) with ``\\`` before ``"`` and ``\\``.

    CR, LF and other controls cannot be carried: LocalProtocolError.
    """
    if any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in text):
        raise LocalProtocolError("control character cannot be sent in a quoted-string")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------------------------
# Challenges (RFC 3261 §22.1/§25.1 digest-cln, RFC 7616 §3.3)


@dataclass(frozen=True)
class Challenge:
    """One Digest challenge from a WWW-Authenticate or Proxy-Authenticate value.

    ``algorithm`` is None when the server named an algorithm we do not implement;
    ``algorithm_name`` keeps the name as sent (``MD5`` when absent, RFC 2617 §3.2.1).
    ``qop`` is None when absent (RFC 2069 mode), else the offered tokens in lower case.
    """

    realm: str
    nonce: str
    algorithm: Algorithm | None = Algorithm.MD5
    algorithm_name: str = "MD5"
    qop: tuple[str, ...] | None = None
    opaque: str | None = None
    stale: bool = False
    domain: tuple[str, ...] = ()
    userhash: bool = False
    charset_utf8: bool = False

    @property
    def supported(self) -> bool:
        """True when we can answer it: a known algorithm and a qop we implement (or none)."""
        if self.algorithm is None:
            return False
        if self.qop is None:
            # -sess needs a cnonce, which exists only with a qop (RFC 2617 §3.2.2).
            return not self.algorithm.is_session
        return any(q in (Qop.AUTH, Qop.AUTH_INT) for q in self.qop)

    @property
    def weak(self) -> bool:
        """True for MD5 and MD5-sess, so the UI can warn (RFC 8760 §3)."""
        return self.algorithm is not None and self.algorithm.weak


def _challenge_from_params(params: dict[str, str]) -> Challenge:
    algorithm_name = params.get("algorithm", "MD5")
    qop: tuple[str, ...] | None = None
    if "qop" in params:
        qop = tuple(q.strip().lower() for q in params["qop"].split(",") if q.strip())
        if not qop:
            raise ParseError("empty Digest qop list")
    return Challenge(
        realm=_require(params, "realm"),
        nonce=_require(params, "nonce"),
        algorithm=Algorithm.from_token(algorithm_name),
        algorithm_name=algorithm_name,
        qop=qop,
        opaque=params.get("opaque"),
        # RFC 7616 §3.3: anything other than TRUE (case-insensitive) means false.
        stale=params.get("stale", "").lower() == "true",
        domain=tuple(params.get("domain", "").split()),
        userhash=params.get("userhash", "").lower() == "true",
        charset_utf8=params.get("charset", "").lower() == "utf-8",
    )


def parse_challenges(value: str) -> list[Challenge]:
    """The Digest challenges in one WWW-Authenticate / Proxy-Authenticate value.

    RFC 7235 §4.1 allows several challenges in one value; other schemes are skipped. Raises
    ParseError when the value does not follow the grammar or a Digest challenge lacks realm or
    nonce. A challenge with an unknown algorithm is returned with ``algorithm=None``.
    """
    return [
        _challenge_from_params(_digest_params(raw))
        for raw in _parse_auth_list(value)
        if raw.scheme.lower() == "digest"
    ]


def _usable_challenges(values: Iterable[str]) -> list[Challenge]:
    usable: list[Challenge] = []
    problems: list[str] = []
    for value in values:
        try:
            challenges = parse_challenges(value)
        except ParseError as exc:
            # One malformed header must not hide a good one beside it; it is reported below.
            problems.append(f"malformed challenge ({exc.reason})")
            continue
        for challenge in challenges:
            if challenge.supported:
                usable.append(challenge)
            else:
                problems.append(f"unsupported algorithm/qop {challenge.algorithm_name!r}")
    if not usable:
        detail = "; ".join(problems) if problems else "no Digest challenge"
        raise NoUsableChallengeError(f"no usable Digest challenge: {detail}")
    return usable


def select_challenges(values: Iterable[str]) -> list[Challenge]:
    """The strongest supported challenge per realm, realms in order of first appearance.

    RFC 3261 §22.3: a forked request may collect challenges from several realms and the
    client answers each. Within a realm the strongest algorithm wins (RFC 8760 §2.4:
    SHA-512-256 > SHA-256 > MD5, ``-sess`` ranking with its base), ties going to the server's
    order. Raises NoUsableChallengeError when nothing is usable.
    """
    best: dict[str, Challenge] = {}
    for challenge in _usable_challenges(values):
        assert challenge.algorithm is not None
        current = best.get(challenge.realm)
        if current is None or challenge.algorithm.strength > _strength(current):
            best[challenge.realm] = challenge
    return list(best.values())


def _strength(challenge: Challenge) -> int:
    return challenge.algorithm.strength if challenge.algorithm is not None else 0


def select_challenge(values: Iterable[str]) -> Challenge:
    """The single strongest supported Digest challenge among ``values`` (RFC 8760 §2.4)."""
    usable = _usable_challenges(values)
    return max(usable, key=_strength)  # max keeps the first of equals: the server's preference


# --------------------------------------------------------------------------------------------
# Credentials (RFC 3261 §22.2/§25.1 dig-resp, RFC 7616 §3.4)

_NC_RE = re.compile(r"[0-9A-Fa-f]{8}")
# attr-char of RFC 5987 that are also SIP token characters, so username* stays a token.
_EXT_SAFE = "!+-._`~"


@dataclass(frozen=True)
class Credentials:
    """One Digest credentials value of Authorization / Proxy-Authorization.

    ``username`` is the user name (decoded from ``username*`` if that form was used), or the
    userhash when ``userhash`` is true. ``nc`` is the nonce-count as an int, None without qop.
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str = field(repr=False)
    algorithm_name: str = "MD5"
    qop: str | None = None
    nc: int | None = None
    cnonce: str | None = None
    opaque: str | None = None
    userhash: bool = False
    username_star: bool = False

    @property
    def algorithm(self) -> Algorithm | None:
        """The named algorithm, None if we do not implement it."""
        return Algorithm.from_token(self.algorithm_name)

    @property
    def nc_text(self) -> str | None:
        """The nonce-count as sent: 8 lower-case hex digits (RFC 2617 §3.2.2)."""
        return None if self.nc is None else f"{self.nc:08x}"


def _decode_ext_value(text: str) -> str:
    """RFC 5987 §3.2 ext-value ``charset'lang'pct-encoded`` (UTF-8 or ISO-8859-1)."""
    try:
        charset, _lang, encoded = text.split("'", 2)
    except ValueError:
        raise ParseError("username* is not an RFC 5987 ext-value") from None
    if charset.lower() not in ("utf-8", "iso-8859-1"):
        raise ParseError(f"username* charset {charset!r} not supported")
    try:
        return urllib.parse.unquote(encoded, encoding=charset, errors="strict")
    except UnicodeDecodeError:
        raise ParseError("username* is not valid in its charset") from None


def _encode_ext_value(text: str) -> str:
    return "UTF-8''" + urllib.parse.quote(text, safe=_EXT_SAFE, encoding="utf-8")


def parse_credentials(value: str) -> Credentials:
    """Parse one Digest credentials value (RFC 3261 §25.1 dig-resp, RFC 7616 §3.4).

    Raises ParseError for another scheme, a missing username/realm/nonce/uri/response, both
    ``username`` and ``username*`` (RFC 7616 §3.4), qop without nc/cnonce, or a bad nc.
    """
    raws = _parse_auth_list(value)
    if len(raws) != 1:
        raise ParseError("one credentials value expected")
    if raws[0].scheme.lower() != "digest":
        raise ParseError(f"not Digest credentials: {raws[0].scheme!r}")
    params = _digest_params(raws[0])
    if "username" in params and "username*" in params:
        raise ParseError("both username and username* present")
    if "username*" in params:
        username = _decode_ext_value(params["username*"])
    else:
        username = _require(params, "username")
    qop = params.get("qop")
    nc: int | None = None
    if qop is not None:
        qop = qop.lower()
        nc_text = _require(params, "nc")
        if not _NC_RE.fullmatch(nc_text):
            raise ParseError("nc is not 8 hex digits")
        nc = int(nc_text, 16)
        _require(params, "cnonce")
    return Credentials(
        username=username,
        realm=_require(params, "realm"),
        nonce=_require(params, "nonce"),
        uri=_require(params, "uri"),
        response=_require(params, "response").lower(),
        algorithm_name=params.get("algorithm", "MD5"),
        qop=qop,
        nc=nc,
        cnonce=params.get("cnonce"),
        opaque=params.get("opaque"),
        userhash=params.get("userhash", "").lower() == "true",
        username_star="username*" in params,
    )


def format_credentials(credentials: Credentials) -> str:
    """A ``Digest ...`` value for Authorization / Proxy-Authorization (RFC 3261 §22.4).

    Unquoted where the grammar wants tokens: algorithm, qop, nc, userhash (RFC 7616 §3.4).
    """
    if credentials.username_star:
        parts = [f"username*={_encode_ext_value(credentials.username)}"]
    else:
        parts = [f"username={quote(credentials.username)}"]
    parts += [
        f"realm={quote(credentials.realm)}",
        f"nonce={quote(credentials.nonce)}",
        f"uri={quote(credentials.uri)}",
        f"response={quote(credentials.response)}",
        f"algorithm={credentials.algorithm_name}",
    ]
    if credentials.qop is not None:
        parts += [f"qop={credentials.qop}", f"nc={credentials.nc_text}"]
        parts.append(f"cnonce={quote(credentials.cnonce or '')}")
    if credentials.opaque is not None:
        parts.append(f"opaque={quote(credentials.opaque)}")
    if credentials.userhash:
        parts.append("userhash=true")
    return "Digest " + ", ".join(parts)


_REDACT_FALLBACK_RE = re.compile(r'(?i)\b(response|cnonce)(\s*=\s*)("(?:[^"\\]|\\.)*"?|[^\s,]*)')


def redact_authorization(value: str) -> str:
    """The value with response, cnonce (and a userhash user name) replaced for logs.

    The response is a password-derived value open to an offline dictionary attack, hence
    kept out of logs; a userhash is there to hide the user name (RFC 7616 §3.4.4). A value
    that does not parse is still redacted, by pattern.
    """
    try:
        raws = _parse_auth_list(value)
    except ParseError:
        return _REDACT_FALLBACK_RE.sub(rf'\1\2"{REDACTED}"', value)
    spans: list[tuple[int, int]] = []
    for raw in raws:
        hashed = any(p.name == "userhash" and p.value.lower() == "true" for p in raw.params)
        secret = {"response", "cnonce"} | ({"username", "username*"} if hashed else set())
        spans += [(p.start, p.end) for p in raw.params if p.name in secret]
    for start, end in sorted(spans, reverse=True):
        value = f'{value[:start]}"{REDACTED}"{value[end:]}'
    return value


# --------------------------------------------------------------------------------------------
# The client (RFC 3261 §22.2, §22.3)


class _Secret:
    """Holds the password; never shows it in repr()/str() (a traceback or log line)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"


@dataclass(frozen=True)
class AuthHeader:
    """A header field to add to the retried request, e.g. ``("Authorization", "Digest ...")``.

    ``weak`` is true for MD5/MD5-sess, for the UI. repr() redacts the response.
    """

    name: str
    value: str = field(repr=False)
    realm: str
    algorithm: Algorithm
    weak: bool

    def __repr__(self) -> str:
        return (
            f"AuthHeader(name={self.name!r}, value={redact_authorization(self.value)!r}, "
            f"realm={self.realm!r}, algorithm={self.algorithm.value}, weak={self.weak})"
        )


@dataclass
class _RealmState:
    challenge: Challenge
    nc: int = 0
    # (nonce, nc) of the credentials computed in direct answer to `challenge`: if a request
    # carrying exactly these is challenged again without stale, the password is wrong.
    direct: tuple[str, int] | None = None
    last: tuple[str, int] | None = None
    stale_retries: int = 0


_HEADER_FOR_STATUS = {401: "Authorization", 407: "Proxy-Authorization"}
MAX_STALE_RETRIES = 2


class DigestClient:
    """Answers 401/407 challenges for one user and remembers them per realm (RFC 3261 §22).

    ``handle_challenge`` turns a challenge response into header fields for the retried
    request; ``authorize`` reuses the cached nonce with the next nonce-count so a REGISTER
    refresh or a new INVITE needs no extra round trip (RFC 3261 §22.3 permits this caching).
    ``cnonce_factory`` and ``prefer_auth_int`` exist for tests and policy.
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        cnonce_factory: Callable[[], str] | None = None,
        prefer_auth_int: bool = False,
    ) -> None:
        self.username = username
        self._password = _Secret(password)
        self._cnonce = cnonce_factory or (lambda: secrets.token_hex(16))
        self.prefer_auth_int = prefer_auth_int
        self._realms: dict[tuple[str, str], _RealmState] = {}

    def __repr__(self) -> str:
        realms = sorted(realm for _, realm in self._realms)
        return f"DigestClient(username={self.username!r}, realms={realms!r})"

    @property
    def realms(self) -> list[tuple[str, str]]:
        """(header name, realm) pairs for which a challenge is cached."""
        return list(self._realms)

    def forget(self, realm: str | None = None) -> None:
        """Drop the cached challenges (of one realm, or all)."""
        for key in [k for k in self._realms if realm is None or k[1] == realm]:
            del self._realms[key]

    def handle_challenge(
        self,
        status_code: int,
        values: Sequence[str],
        method: str,
        uri: str,
        body: bytes = b"",
        *,
        sent: Sequence[str] | None = None,
    ) -> list[AuthHeader]:
        """Header fields answering a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate).

        ``values`` are that response's challenge header values; ``method``/``uri``/``body``
        describe the request to resend. ``sent`` are the Authorization/Proxy-Authorization
        values the challenged request carried; None means "what this client produced last".
        Raises AuthenticationFailedError when a realm we answered directly comes back without
        stale=true (RFC 3261 §22.2: wrong password, do not loop), and after too many stale
        retries in a row; NoUsableChallengeError when nothing can be answered.
        """
        name = _HEADER_FOR_STATUS.get(status_code)
        if name is None:
            raise LocalProtocolError(f"{status_code} is not a 401 or 407 challenge")
        prior = self._prior_credentials(name, sent)
        headers: list[AuthHeader] = []
        for challenge in select_challenges(values):
            key = (name, challenge.realm)
            state = self._realms.get(key)
            stale_retries = self._check_loop(key, challenge, state, prior.get(challenge.realm))
            state = _RealmState(challenge, stale_retries=stale_retries)
            self._realms[key] = state
            headers.append(self._answer(name, state, method, uri, body))
            state.direct = state.last
        return headers

    def authorize(self, method: str, uri: str, body: bytes = b"") -> list[AuthHeader]:
        """Pre-emptive credentials from every cached challenge, with the next nonce-count."""
        return [
            self._answer(name, state, method, uri, body)
            for (name, _), state in self._realms.items()
        ]

    def _prior_credentials(
        self, name: str, sent: Sequence[str] | None
    ) -> dict[str, tuple[str, int]]:
        if sent is None:
            return {
                realm: state.last
                for (kind, realm), state in self._realms.items()
                if kind == name and state.last is not None
            }
        prior: dict[str, tuple[str, int]] = {}
        for value in sent:
            try:
                creds = parse_credentials(value)
            except ParseError:
                continue  # not ours to judge; it cannot match what we answered
            prior[creds.realm] = (creds.nonce, creds.nc or 0)
        return prior

    def _check_loop(
        self,
        key: tuple[str, str],
        challenge: Challenge,
        state: _RealmState | None,
        prior: tuple[str, int] | None,
    ) -> int:
        """The stale retry count for the new state; raises when the realm is failing."""
        if state is None or prior is None or prior != state.direct:
            # Unanswered realm, or pre-emptive credentials with an old nonce that the server
            # forgot: a fresh attempt is due (RFC 7616 §3.3 would say stale, not all do).
            return 0
        if not challenge.stale:
            del self._realms[key]
            raise AuthenticationFailedError(challenge.realm, "credentials rejected")
        if state.stale_retries >= MAX_STALE_RETRIES:
            del self._realms[key]
            raise AuthenticationFailedError(challenge.realm, "nonce stale again and again")
        return state.stale_retries + 1

    def _answer(
        self, name: str, state: _RealmState, method: str, uri: str, body: bytes
    ) -> AuthHeader:
        challenge = state.challenge
        algorithm = challenge.algorithm
        assert algorithm is not None  # only supported challenges are cached
        qop = self._choose_qop(challenge)
        username, password = self.username, self._password.get()
        # RFC 7616 §4 wants NFC with charset=UTF-8; SIP is UTF-8 throughout (RFC 3261 §25),
        # so we always normalise, as the server side does: the same typed name always works.
        username = unicodedata.normalize("NFC", username)
        password = unicodedata.normalize("NFC", password)
        state.nc += 1
        cnonce = self._cnonce() if qop is not None else None
        ha1 = compute_ha1(algorithm, username, challenge.realm, password)
        nc_text = f"{state.nc:08x}" if qop is not None else None
        response = compute_response(
            algorithm,
            ha1,
            nonce=challenge.nonce,
            method=method,
            uri=uri,
            qop=qop,
            nc=nc_text,
            cnonce=cnonce,
            body=body,
        )
        state.last = (challenge.nonce, state.nc if qop is not None else 0)
        sent_name, star = self._wire_username(challenge, algorithm, username)
        credentials = Credentials(
            username=sent_name,
            realm=challenge.realm,
            nonce=challenge.nonce,
            uri=uri,
            response=response,
            algorithm_name=algorithm.value,
            qop=qop,
            nc=state.nc if qop is not None else None,
            cnonce=cnonce,
            opaque=challenge.opaque,
            userhash=challenge.userhash,
            username_star=star,
        )
        return AuthHeader(
            name, format_credentials(credentials), challenge.realm, algorithm, algorithm.weak
        )

    def _choose_qop(self, challenge: Challenge) -> str | None:
        if challenge.qop is None:
            return None  # RFC 2069 compatibility: no qop, no nc, no cnonce
        offered = [q for q in (Qop.AUTH, Qop.AUTH_INT) if q in challenge.qop]
        if self.prefer_auth_int and Qop.AUTH_INT in offered:
            return Qop.AUTH_INT
        return offered[0]

    @staticmethod
    def _wire_username(
        challenge: Challenge, algorithm: Algorithm, username: str
    ) -> tuple[str, bool]:
        """The username parameter value and whether it goes as username* (RFC 7616 §3.4.4)."""
        if challenge.userhash:
            return compute_userhash(algorithm, username, challenge.realm), False
        unquotable = any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in username)
        # SIP's quoted-string admits UTF-8 (RFC 3261 §25.1), but without charset=UTF-8 the
        # server may not expect it: the RFC 5987 form then says the encoding explicitly.
        non_ascii = not username.isascii() and not challenge.charset_utf8
        return username, unquotable or non_ascii
