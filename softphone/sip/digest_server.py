"""Digest authentication, server side: challenges and verification (RFC 3261 §22, RFC 7616).

A registrar, proxy or UAS builds one ``DigestServer`` per realm. ``challenge(now)`` gives the
header fields of a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate), one challenge per
offered algorithm in order of preference (RFC 8760 §2.4: SHA-256 before MD5).
``verify(method, uri, values, now, body)`` judges the credentials of a request and returns a
``Verdict``.

Nonces are stateless (RFC 7616 §5.4 suggests this shape): base64url of the issue time taken
from ``now``, 16 random bytes and an HMAC-SHA256 over both and the realm with a server
secret. A nonce whose MAC fails was not issued by us (FORGED_NONCE, challenge again with
stale=false); one older than ``nonce_lifetime`` with a correct response is STALE (challenge
with stale=true, RFC 7616 §3.3). The only state is the highest nonce-count seen per nonce in
use, for replay protection (RFC 2617 §3.2.2: nc must increase).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from softphone.sip.digest import (
    Algorithm,
    Challenge,
    Credentials,
    Qop,
    compute_ha1,
    compute_response,
    compute_userhash,
    parse_credentials,
    quote,
)
from softphone.sip.errors import LocalProtocolError, ParseError
from softphone.sip.uri import parse_uri

__all__ = [
    "CredentialStore",
    "DigestServer",
    "InMemoryCredentials",
    "Outcome",
    "Verdict",
    "format_challenge",
]


def format_challenge(challenge: Challenge) -> str:
    """A ``Digest ...`` value for WWW-Authenticate / Proxy-Authenticate (RFC 7616 §3.3)."""
    parts = [f"realm={quote(challenge.realm)}"]
    if challenge.domain:
        parts.append(f"domain={quote(' '.join(challenge.domain))}")
    parts.append(f"nonce={quote(challenge.nonce)}")
    if challenge.opaque is not None:
        parts.append(f"opaque={quote(challenge.opaque)}")
    if challenge.stale:
        parts.append("stale=true")
    parts.append(f"algorithm={challenge.algorithm_name}")
    if challenge.qop is not None:
        parts.append(f"qop={quote(','.join(challenge.qop))}")
    if challenge.charset_utf8:
        parts.append("charset=UTF-8")
    if challenge.userhash:
        parts.append("userhash=true")
    return "Digest " + ", ".join(parts)


class CredentialStore(Protocol):
    """Where the server finds H(A1) (RFC 2617 §3.2.2.2): no plaintext password needed."""

    def ha1(self, username: str, realm: str, algorithm: Algorithm) -> str | None:
        """H(username:realm:password) for this algorithm's hash, None for an unknown user."""

    def username_for_userhash(self, userhash: str, realm: str, algorithm: Algorithm) -> str | None:
        """The user whose H(username:realm) is ``userhash`` (RFC 7616 §3.4.4), or None."""


class InMemoryCredentials:
    """A dict-backed CredentialStore that keeps H(A1) per hash function, never the password."""

    def __init__(self) -> None:
        self._ha1: dict[tuple[str, str, str], str] = {}

    def __repr__(self) -> str:
        return f"InMemoryCredentials({len(self._ha1)} entries)"  # H(A1) is password-equivalent

    def add_password(
        self,
        username: str,
        realm: str,
        password: str,
        algorithms: Sequence[Algorithm] = tuple(Algorithm),
    ) -> None:
        """Store H(A1) for each algorithm's hash; the strings are taken in NFC (RFC 7616 §4)."""
        username = unicodedata.normalize("NFC", username)
        password = unicodedata.normalize("NFC", password)
        for algorithm in algorithms:
            self.add_ha1(
                username, realm, algorithm, compute_ha1(algorithm, username, realm, password)
            )

    def add_ha1(self, username: str, realm: str, algorithm: Algorithm, ha1: str) -> None:
        """Store a precomputed H(A1); ``-sess`` shares the entry of its base algorithm."""
        self._ha1[(username, realm, algorithm.hash_name)] = ha1.lower()

    def ha1(self, username: str, realm: str, algorithm: Algorithm) -> str | None:
        return self._ha1.get((username, realm, algorithm.hash_name))

    def username_for_userhash(self, userhash: str, realm: str, algorithm: Algorithm) -> str | None:
        for user, user_realm, hash_name in self._ha1:
            if user_realm != realm or hash_name != algorithm.hash_name:
                continue
            candidate = compute_userhash(algorithm, user, realm)
            if hmac.compare_digest(candidate.encode(), userhash.lower().encode()):
                return user
        return None


class Outcome(Enum):
    """What the server made of a request's credentials."""

    OK = "ok"
    NO_CREDENTIALS = "no credentials for this realm"
    STALE = "nonce expired"  # the response was right: challenge with stale=true
    BAD_CREDENTIALS = "wrong response"
    UNKNOWN_USER = "unknown user"
    FORGED_NONCE = "nonce not issued by us"
    REPLAY = "nonce-count not increasing"
    MISMATCH = "parameters do not match the challenge or the request"
    MALFORMED = "malformed credentials"


@dataclass(frozen=True)
class Verdict:
    """The result of ``DigestServer.verify``.

    ``status_code`` is the response to send when not OK: 401/407 with fresh challenges
    (``stale`` tells whether to set stale=true), or 400 for malformed credentials and for a
    uri that does not match the Request-URI (RFC 2617 §3.2.2.5).
    """

    outcome: Outcome
    status_code: int | None
    reason: str
    username: str | None = None
    algorithm: Algorithm | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def stale(self) -> bool:
        return self.outcome is Outcome.STALE


_NONCE_HEADER = struct.Struct(">q16s")  # issue time in ms, random
_MAC_SIZE = 32


class DigestServer:
    """Issues Digest challenges for one realm and verifies credentials (RFC 3261 §22.1, §22.3).

    ``proxy`` selects 407/Proxy-Authenticate/Proxy-Authorization over 401/WWW-Authenticate/
    Authorization. ``algorithms`` are offered in that order; ``qop`` empty means RFC 2069 mode
    (no nonce-count, so no replay protection within the nonce lifetime). ``secret`` and
    ``random_bytes`` are injectable for tests; ``now`` is always the caller's clock.
    """

    def __init__(
        self,
        realm: str,
        credentials: CredentialStore,
        *,
        proxy: bool = False,
        algorithms: Sequence[Algorithm] = (Algorithm.SHA_256, Algorithm.MD5),
        qop: Sequence[Qop] = (Qop.AUTH,),
        nonce_lifetime: float = 300.0,
        secret: bytes | None = None,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        userhash: bool = False,
        charset_utf8: bool = False,
        max_tracked_nonces: int = 100_000,
    ) -> None:
        if not algorithms:
            raise LocalProtocolError("offer at least one algorithm")
        if not qop and any(a.is_session for a in algorithms):
            raise LocalProtocolError("-sess algorithms need a qop (for the cnonce)")
        self.realm = realm
        self._store = credentials
        self.proxy = proxy
        self.algorithms = tuple(algorithms)
        self.qop = tuple(qop)
        self.nonce_lifetime = nonce_lifetime
        self._secret = secret if secret is not None else random_bytes(32)
        self._random = random_bytes
        self.userhash = userhash
        self.charset_utf8 = charset_utf8
        self._max_tracked = max_tracked_nonces
        self.opaque = self._mac(b"opaque")[:16].hex()
        self._nc_seen: dict[str, tuple[int, int]] = {}  # nonce -> (issued ms, highest nc)
        self._floor_ms: int | None = None  # nonces issued at or before this lost their nc record

    def __repr__(self) -> str:
        kind = "proxy" if self.proxy else "uas"
        names = [a.value for a in self.algorithms]
        return f"DigestServer(realm={self.realm!r}, {kind}, algorithms={names})"

    @property
    def status_code(self) -> int:
        """401 for a registrar/UAS, 407 for a proxy (RFC 3261 §22.1, §22.3)."""
        return 407 if self.proxy else 401

    @property
    def challenge_header(self) -> str:
        return "Proxy-Authenticate" if self.proxy else "WWW-Authenticate"

    @property
    def credentials_header(self) -> str:
        return "Proxy-Authorization" if self.proxy else "Authorization"

    # ---------------------------------------------------------------------------- challenges

    def challenge(self, now: float, *, stale: bool = False) -> list[tuple[str, str]]:
        """(header name, value) pairs: one challenge per algorithm, same nonce for all."""
        nonce = self.new_nonce(now)
        qop = tuple(str(q) for q in self.qop) or None
        return [
            (
                self.challenge_header,
                format_challenge(
                    Challenge(
                        realm=self.realm,
                        nonce=nonce,
                        algorithm=algorithm,
                        algorithm_name=algorithm.value,
                        qop=qop,
                        opaque=self.opaque,
                        stale=stale,
                        userhash=self.userhash,
                        charset_utf8=self.charset_utf8,
                    )
                ),
            )
            for algorithm in self.algorithms
        ]

    def new_nonce(self, now: float) -> str:
        """base64url(time ms, 16 random bytes, HMAC-SHA256(secret, both + realm))."""
        header = _NONCE_HEADER.pack(round(now * 1000), self._random(16))
        return base64.urlsafe_b64encode(header + self._mac(header)).rstrip(b"=").decode()

    def _mac(self, data: bytes) -> bytes:
        return hmac.new(self._secret, data + self.realm.encode(), hashlib.sha256).digest()

    def _nonce_time(self, nonce: str) -> int | None:
        """The issue time (ms) of a nonce we issued, None if forged or garbled."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _NONCE_HEADER.size + _MAC_SIZE:
            return None
        header, mac = raw[: _NONCE_HEADER.size], raw[_NONCE_HEADER.size :]
        if not hmac.compare_digest(mac, self._mac(header)):
            return None
        issued_ms: int = _NONCE_HEADER.unpack(header)[0]
        return issued_ms

    # ---------------------------------------------------------------------------- verification

    def verify(
        self, method: str, uri: str, values: Sequence[str], now: float, body: bytes = b""
    ) -> Verdict:
        """Judge the Authorization (or Proxy-Authorization) ``values`` of a request.

        ``uri`` is the Request-URI as received; the credentials' uri must equal it
        (RFC 2617 §3.2.2.5). Only credentials for our realm are considered (RFC 3261 §22.3:
        others may be for other proxies on the path).
        """
        try:
            creds = self._our_credentials(values)
        except ParseError as exc:
            return self._verdict(Outcome.MALFORMED, exc.reason)
        if creds is None:
            return self._verdict(Outcome.NO_CREDENTIALS, f"no credentials for {self.realm!r}")
        problem = self._check_parameters(creds, method, uri)
        if problem is not None:
            return problem
        algorithm = creds.algorithm
        assert algorithm is not None  # _check_parameters made sure it is one we offered
        issued_ms = self._nonce_time(creds.nonce)
        if issued_ms is None:
            return self._verdict(Outcome.FORGED_NONCE, "nonce MAC check failed", algorithm)
        username = self._username(creds, algorithm)
        ha1 = self._store.ha1(username, self.realm, algorithm) if username else None
        if username is None or ha1 is None:
            return self._verdict(Outcome.UNKNOWN_USER, "no such user", algorithm, username)
        expected = compute_response(
            algorithm,
            ha1,
            nonce=creds.nonce,
            method=method,
            uri=creds.uri,
            qop=creds.qop,
            nc=creds.nc_text,
            cnonce=creds.cnonce,
            body=body,
        )
        # compare_digest on bytes: on str it raises TypeError for non-ASCII input.
        if not hmac.compare_digest(expected.encode(), creds.response.encode()):
            return self._verdict(Outcome.BAD_CREDENTIALS, "wrong response", algorithm, username)
        return self._check_freshness(creds, issued_ms, now, algorithm, username)

    def _our_credentials(self, values: Sequence[str]) -> Credentials | None:
        for value in values:
            words = value.split(None, 1)
            if not words or words[0].lower() != "digest":
                continue  # another scheme: not ours to judge
            creds = parse_credentials(value)
            if creds.realm == self.realm:
                return creds
        return None

    def _check_parameters(self, creds: Credentials, method: str, uri: str) -> Verdict | None:
        algorithm = creds.algorithm
        if algorithm is None or algorithm not in self.algorithms:
            return self._verdict(
                Outcome.MISMATCH, f"algorithm {creds.algorithm_name!r} not offered"
            )
        if creds.uri != uri and not _same_uri(creds.uri, uri):
            # RFC 2617 §3.2.2.5: "the server SHOULD return 400 Bad Request".
            return self._verdict(
                Outcome.MISMATCH, "uri does not match the Request-URI", algorithm, status=400
            )
        if creds.qop is None:
            if self.qop:
                return self._verdict(Outcome.MISMATCH, "qop missing", algorithm)
        elif creds.qop not in self.qop:
            return self._verdict(Outcome.MISMATCH, f"qop {creds.qop!r} not offered", algorithm)
        if creds.opaque != self.opaque:
            return self._verdict(Outcome.MISMATCH, "opaque not echoed", algorithm)
        if creds.userhash != self.userhash:
            return self._verdict(Outcome.MISMATCH, "userhash does not match", algorithm)
        return None

    def _username(self, creds: Credentials, algorithm: Algorithm) -> str | None:
        if creds.userhash:
            return self._store.username_for_userhash(creds.username, self.realm, algorithm)
        # The store holds NFC names (RFC 7616 §4) and so does our client; accept others' forms.
        return unicodedata.normalize("NFC", creds.username)

    def _check_freshness(
        self, creds: Credentials, issued_ms: int, now: float, algorithm: Algorithm, user: str
    ) -> Verdict:
        """Expiry, then nonce-count replay; only reached with a correct response."""
        now_ms = round(now * 1000)
        age_ms = now_ms - issued_ms
        # A nonce "from the future" means our clock restarted: treat it as expired too.
        if age_ms < 0 or age_ms > self.nonce_lifetime * 1000:
            return self._verdict(Outcome.STALE, "nonce expired", algorithm, user)
        if creds.nc is None:
            return self._verdict(Outcome.OK, "ok (no qop: RFC 2069 mode)", algorithm, user)
        self._prune(now_ms)
        seen = self._nc_seen.get(creds.nonce)
        if seen is None and self._floor_ms is not None and issued_ms <= self._floor_ms:
            # Its record may have been evicted: we cannot rule out a replay, so ask for a
            # fresh nonce (costs the client one round trip, never a false OK).
            return self._verdict(Outcome.STALE, "nonce record evicted", algorithm, user)
        if seen is not None and creds.nc <= seen[1]:
            return self._verdict(
                Outcome.REPLAY, f"nc {creds.nc_text} already used", algorithm, user
            )
        self._nc_seen[creds.nonce] = (issued_ms, creds.nc)
        return self._verdict(Outcome.OK, "ok", algorithm, user)

    def _prune(self, now_ms: int) -> None:
        lifetime_ms = self.nonce_lifetime * 1000
        if len(self._nc_seen) < self._max_tracked:
            return
        for nonce, (issued_ms, _) in list(self._nc_seen.items()):
            if now_ms - issued_ms > lifetime_ms:
                del self._nc_seen[nonce]
        while len(self._nc_seen) >= self._max_tracked:
            nonce = next(iter(self._nc_seen))
            issued_ms, _ = self._nc_seen.pop(nonce)
            if self._floor_ms is None or issued_ms > self._floor_ms:
                self._floor_ms = issued_ms

    def _verdict(
        self,
        outcome: Outcome,
        reason: str,
        algorithm: Algorithm | None = None,
        username: str | None = None,
        *,
        status: int | None = None,
    ) -> Verdict:
        if outcome is Outcome.OK:
            status = None
        elif outcome is Outcome.MALFORMED:
            status = 400
        elif status is None:
            # A challenge again: an algorithm, qop or opaque we did not offer (or offered
            # before a restart changed the secret) is best fixed by a fresh challenge.
            status = self.status_code
        return Verdict(outcome, status, reason, username, algorithm)


def _same_uri(credentials_uri: str, request_uri: str) -> bool:
    """Whether the credentials' uri names the Request-URI, by RFC 3261 §19.1.4.

    The server may only have the Request-URI re-serialised (other percent-encoding, parameter
    case), while the client hashed the text it sent; the response is computed over the
    credentials' own uri, so accepting an equivalent form weakens nothing.
    """
    try:
        return parse_uri(credentials_uri) == parse_uri(request_uri)
    except ParseError:
        return False
