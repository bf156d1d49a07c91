"""A minimal SIP-over-TLS (or TCP) probe client, standard library only.

It exists to test the interop harness itself (is Kamailio up, presenting the expected
certificate, challenging and accepting REGISTERs?). Product tests drive the softphone's own
engine instead; nothing here is meant to be a SIP implementation.

    with SipProbe.connect(port, cafile=ca) as probe:        # verifies example.test against ca
        probe.peer_fingerprint                              # SHA-256 of the server's DER cert
        challenge, final = probe.register("alice", "alice-secret-1")
"""

from __future__ import annotations

import hashlib
import re
import secrets
import select
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Challenge",
    "SipProbe",
    "SipResponse",
    "digest_authorization",
    "fetch_certificate",
    "parse_challenge",
]

DOMAIN = "example.test"
_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def _token(n: int = 10) -> str:
    return secrets.token_hex(n)[:n]


@dataclass
class SipResponse:
    """A parsed SIP message (response or request), headers in arrival order."""

    start_line: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    raw: bytes = b""

    @property
    def is_response(self) -> bool:
        return self.start_line.startswith("SIP/2.0 ")

    @property
    def status(self) -> int | None:
        return int(self.start_line.split()[1]) if self.is_response else None

    @property
    def reason(self) -> str:
        return self.start_line.split(" ", 2)[2] if self.is_response else ""

    def header_values(self, name: str) -> list[str]:
        compact = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact", "l": ""}
        wanted = name.lower()
        return [
            v for k, v in self.headers if k.lower() == wanted or compact.get(k.lower()) == wanted
        ]

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return values[0] if values else None


@dataclass
class Challenge:
    """One ``Digest`` challenge (WWW-/Proxy-Authenticate)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def algorithm(self) -> str:
        """As sent; empty when the challenge has no ``algorithm`` parameter (means MD5)."""
        return self.params.get("algorithm", "")

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def qop_options(self) -> list[str]:
        return [q.strip() for q in self.params.get("qop", "").split(",") if q.strip()]


def parse_challenge(value: str) -> Challenge:
    """``Digest realm="x", nonce="y", qop="auth"`` → Challenge (quoted commas kept)."""
    scheme, _, rest = value.strip().partition(" ")
    params: dict[str, str] = {}
    for match in re.finditer(r'\s*([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?', rest):
        key = match.group(1).lower()
        params[key] = match.group(2) if match.group(2) is not None else match.group(3)
    return Challenge(scheme=scheme, params=params)


def digest_authorization(
    challenge: Challenge,
    *,
    user: str,
    password: str,
    method: str,
    uri: str,
    algorithm: str | None = None,
    cnonce: str | None = None,
    nc: int = 1,
) -> str:
    """The ``Digest ...`` credentials value answering ``challenge`` (RFC 2617 / RFC 8760).

    ``algorithm`` defaults to the challenge's (MD5 when absent); qop=auth when offered.
    """
    algo = (algorithm or challenge.algorithm or "MD5").upper()
    if algo not in _HASHES:
        raise ValueError(f"unsupported digest algorithm {algo!r}")
    h = _HASHES[algo]

    def hx(text: str) -> str:
        return h(text.encode()).hexdigest()

    realm, nonce = challenge.realm, challenge.params.get("nonce", "")
    ha1 = hx(f"{user}:{realm}:{password}")
    ha2 = hx(f"{method}:{uri}")
    parts = [
        f'username="{user}"',
        f'realm="{realm}"',
        f'nonce="{nonce}"',
        f'uri="{uri}"',
    ]
    if "auth" in challenge.qop_options:
        cn = cnonce or _token(16)
        nc_text = f"{nc:08x}"
        response = hx(f"{ha1}:{nonce}:{nc_text}:{cn}:auth:{ha2}")
        parts += [f'response="{response}"', "qop=auth", f"nc={nc_text}", f'cnonce="{cn}"']
    else:
        parts.append(f'response="{hx(f"{ha1}:{nonce}:{ha2}")}"')
    if algorithm is not None or challenge.algorithm:
        parts.append(f"algorithm={algo}")
    if "opaque" in challenge.params:
        parts.append(f'opaque="{challenge.params["opaque"]}"')
    return "Digest " + ", ".join(parts)


def _client_context(cafile: Path | str | None, verify: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if verify:
        ctx.load_verify_locations(cafile=str(cafile)) if cafile else ctx.load_default_certs()
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def fetch_certificate(
    port: int, *, host: str = "127.0.0.1", server_hostname: str = DOMAIN, timeout: float = 5.0
) -> bytes:
    """The DER certificate the server presents, without verifying it."""
    ctx = _client_context(None, verify=False)
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        ctx.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        return tls.getpeercert(binary_form=True) or b""


class SipProbe:
    """One SIP connection (TLS by default) with a byte buffer and Content-Length framing."""

    def __init__(self, sock: socket.socket, *, transport: str = "TLS") -> None:
        self.sock = sock
        self.transport = transport
        self.local = sock.getsockname()[:2]
        self._buf = b""
        self.call_id = f"{_token(16)}@probe"
        self.from_tag = _token(8)
        self.cseq = 0

    @classmethod
    def connect(
        cls,
        port: int,
        *,
        host: str = "127.0.0.1",
        server_hostname: str = DOMAIN,
        cafile: Path | str | None = None,
        verify: bool = True,
        tls: bool = True,
        timeout: float = 5.0,
    ) -> SipProbe:
        """Connect; with ``tls`` the handshake verifies ``server_hostname`` against ``cafile``
        (raises :class:`ssl.SSLCertVerificationError` when it does not verify)."""
        raw = socket.create_connection((host, port), timeout=timeout)
        if not tls:
            return cls(raw, transport="TCP")
        try:
            wrapped = _client_context(cafile, verify).wrap_socket(
                raw, server_hostname=server_hostname
            )
        except BaseException:
            raw.close()
            raise
        return cls(wrapped, transport="TLS")

    # --- TLS facts ------------------------------------------------------------------------

    @property
    def peer_cert_der(self) -> bytes:
        assert isinstance(self.sock, ssl.SSLSocket)
        return self.sock.getpeercert(binary_form=True) or b""

    @property
    def peer_fingerprint(self) -> bytes:
        return hashlib.sha256(self.peer_cert_der).digest()

    @property
    def tls_version(self) -> str | None:
        return self.sock.version() if isinstance(self.sock, ssl.SSLSocket) else None

    # --- wire -----------------------------------------------------------------------------

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> SipProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, timeout: float = 5.0) -> SipResponse | None:
        """The next complete message, or None on timeout / connection closed."""
        self.sock.settimeout(timeout)
        while True:
            message = self._take()
            if message is not None:
                return message
            pending = self.sock.pending() if isinstance(self.sock, ssl.SSLSocket) else 0
            if not pending:
                ready, _, _ = select.select([self.sock], [], [], timeout)
                if not ready:
                    return None
            try:
                chunk = self.sock.recv(65535)
            except TimeoutError:
                return None
            if not chunk:
                return None
            self._buf += chunk

    def _take(self) -> SipResponse | None:
        self._buf = self._buf.lstrip(b"\r\n")
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self._buf[:end].decode(errors="replace")
        match = re.search(r"^(?:content-length|l)\s*:\s*(\d+)", head, re.I | re.M)
        length = int(match.group(1)) if match else 0
        if len(self._buf) < end + 4 + length:
            return None
        raw = self._buf[: end + 4 + length]
        self._buf = self._buf[end + 4 + length :]
        lines = head.split("\r\n")
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and headers:  # folded continuation
                name, value = headers[-1]
                headers[-1] = (name, value + " " + line.strip())
                continue
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        return SipResponse(lines[0], headers, raw[end + 4 :], raw)

    # --- requests -------------------------------------------------------------------------

    def build(
        self,
        method: str,
        ruri: str,
        *,
        from_uri: str,
        to_uri: str,
        contact: str | None = None,
        headers: list[str] | tuple[str, ...] = (),
        body: bytes = b"",
    ) -> bytes:
        self.cseq += 1
        host, port = self.local
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: SIP/2.0/{self.transport} {host}:{port};branch=z9hG4bK{_token(16)};rport",
            "Max-Forwards: 70",
            f"From: <{from_uri}>;tag={self.from_tag}",
            f"To: <{to_uri}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} {method}",
        ]
        if contact:
            lines.append(f"Contact: {contact}")
        lines += ["User-Agent: interop-harness-probe/1", *headers]
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def transact(self, request: bytes, timeout: float = 5.0) -> SipResponse | None:
        """Send ``request``; the first final response (provisional ones skipped)."""
        self.send(request)
        while True:
            message = self.recv(timeout)
            if message is None:
                return None
            if message.is_response and (message.status or 0) >= 200:
                return message

    def contact_uri(self, user: str) -> str:
        host, port = self.local
        scheme = "sips" if self.transport == "TLS" else "sip"
        return f"<{scheme}:{user}@{host}:{port};transport={self.transport.lower()}>"

    def register(
        self,
        user: str,
        password: str,
        *,
        domain: str = DOMAIN,
        expires: int = 300,
        algorithm: str | None = None,
    ) -> tuple[SipResponse | None, SipResponse | None]:
        """REGISTER, then answer a 401 with Digest credentials once.

        Returns (first response, response to the authenticated retry or None when the first
        was not a 401).
        """
        aor, ruri = f"sip:{user}@{domain}", f"sip:{domain}"
        contact = self.contact_uri(user)
        extra = [f"Expires: {expires}"]
        first = self.transact(
            self.build("REGISTER", ruri, headers=extra, from_uri=aor, to_uri=aor, contact=contact)
        )
        if first is None or first.status != 401:
            return first, None
        challenge = parse_challenge(first.header("WWW-Authenticate") or "")
        auth = digest_authorization(
            challenge,
            user=user,
            password=password,
            method="REGISTER",
            uri=ruri,
            algorithm=algorithm,
        )
        retry = self.build(
            "REGISTER",
            ruri,
            headers=[*extra, f"Authorization: {auth}"],
            from_uri=aor,
            to_uri=aor,
            contact=contact,
        )
        return first, self.transact(retry)

    def options(
        self, ruri: str = f"sip:{DOMAIN}", headers: tuple[str, ...] = ()
    ) -> SipResponse | None:
        uri = f"sip:probe@{DOMAIN}"
        return self.transact(
            self.build("OPTIONS", ruri, from_uri=uri, to_uri=ruri, headers=headers)
        )
