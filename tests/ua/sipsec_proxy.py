"""A small scriptable sipsec proxy for tests (draft-gurbani-sip-sipsec-01 §6.6), honest or not.

One TLS server on 127.0.0.1 with a test-CA certificate for ``proxy.test``. It answers REGISTER
with 200 (``Supported: outbound``, no auth; pings get pongs), remembers which connection each
AOR registered on, and forwards a CONNECT to the callee's connection, relays the final response
and then splices bytes both ways without parsing (``honest``). Every byte it relays after a
CONNECT is kept in :attr:`SipsecProxy.tunnel_bytes`, so tests can prove it never saw an INVITE,
SDP or a key.

Modes (``proxy.mode``):

==================  ======================================================================
``honest``          forward, relay, splice
``answer:<code>``   answer the CONNECT itself with ``<code>`` (420, 405, 501, 403...)
``mitm``            (a) answer the CONNECT with 200 itself and terminate the nested TLS with
                    :attr:`mitm_identity` (a certificate claiming the callee's AOR)
``redirect:<aor>``  (b)/(c) forward the CONNECT to the connection ``<aor>`` registered on
``flip``            (d) flip one byte in the tunnel once the handshake has started
``non-transparent`` relay CONNECT/200, then answer the ClientHello with ``SIP/2.0 400``
``silent``          relay CONNECT/200, then swallow every byte
==================  ======================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError, PasswordSetError

from softphone.security.certificates import Identity as AorIdentity
from softphone.security.identity import IdentityMaterial
from softphone.sip.digest_server import DigestServer, InMemoryCredentials
from softphone.sip.framing import StreamFramer
from softphone.sip.message import Request, Response
from softphone.transport.stream import TLSServer, TLSStream, start_tls_server
from softphone.transport.tls import TLSConfig
from tests.transport import certs

PROXY_DOMAIN = "proxy.test"


def ca_identity(ca: certs.Identity, aor: str) -> IdentityMaterial:
    """A user identity (SAN URI ``aor``) issued by the test CA (RSA-2048: quick to make)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, aor)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(aor)]), False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return IdentityMaterial(cert, key)


@dataclass
class _Conn:
    stream: TLSStream
    framer: StreamFramer = field(default_factory=StreamFramer)
    splice_to: _Conn | None = None
    pending: asyncio.Future[Response] | None = None
    peer_for_pending: _Conn | None = None
    mode: str = "sip"  # sip | splice | swallow | answer-sip
    aor: str | None = None


class SipsecProxy:
    """See the module docstring. ``async with SipsecProxy(ca) as proxy: proxy.port``."""

    def __init__(self, ca: certs.Identity, *, mode: str = "honest") -> None:
        self.identity = certs.issue(ca, PROXY_DOMAIN)
        self.mode = mode
        self.mitm_identity: IdentityMaterial | None = None
        self.bindings: dict[str, _Conn] = {}
        self.registers: list[Request] = []
        self.connects: list[Request] = []
        self.connect_responses: list[int] = []
        #: Every byte relayed after a CONNECT's 2xx (both directions).
        self.tunnel_bytes = bytearray()
        self.mitm_streams: list[TLSStream] = []
        self._server: TLSServer | None = None
        self.flipped = False
        #: When set, a CONNECT without valid Proxy-Authorization gets a 407 (RFC 3261 §22.3).
        self.digest: DigestServer | None = None
        self.challenges = 0

    def require_digest(self, user: str, password: str) -> None:
        credentials = InMemoryCredentials()
        credentials.add_password(user, PROXY_DOMAIN, password)
        self.digest = DigestServer(PROXY_DOMAIN, credentials, proxy=True)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.port

    async def __aenter__(self) -> SipsecProxy:
        config = TLSConfig.server(self.identity.chain, self.identity.key)
        self._server = await start_tls_server("127.0.0.1", 0, config, self._serve)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    # -- one connection ---------------------------------------------------------------------

    async def _serve(self, stream: TLSStream) -> None:
        conn = _Conn(stream)
        with contextlib.suppress(Exception):
            while True:
                data = await stream.read()
                if not data:
                    break
                await self._received(conn, data)
        if conn.splice_to is not None:
            with contextlib.suppress(Exception):
                conn.splice_to.stream.close()
        for aor, bound in list(self.bindings.items()):
            if bound is conn:
                del self.bindings[aor]

    async def _received(self, conn: _Conn, data: bytes) -> None:
        if conn.mode == "splice":
            self._relay(conn, data)
            return
        if conn.mode == "swallow":
            self.tunnel_bytes += data
            return
        if conn.mode == "answer-sip":
            conn.stream.write(b"SIP/2.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        pings = conn.framer.pings
        messages = conn.framer.feed(data)
        for _ in range(conn.framer.pings - pings):
            conn.stream.write(b"\r\n")
        for i, message in enumerate(messages):
            if isinstance(message, Response):
                self._response(conn, message)
                if conn.mode == "splice":  # the 2xx to a CONNECT: what follows is the tunnel
                    rest = b"".join(bytes(m) for m in messages[i + 1 :])
                    rest += bytes(conn.framer._buffer)
                    if rest:
                        self._relay(conn, rest)
                    return
            elif message.method == "REGISTER":
                self._register(conn, message)
            elif message.method == "CONNECT":
                await self._connect(conn, message)
            else:
                conn.stream.write(bytes(Response.for_request(message, 501)))

    def _relay(self, conn: _Conn, data: bytes) -> None:
        self.tunnel_bytes += data
        if self.mode == "flip" and not self.flipped and len(self.tunnel_bytes) > 400:
            self.flipped = True
            data = data[:-1] + bytes([data[-1] ^ 0x01])
        if conn.splice_to is not None:
            conn.splice_to.stream.write(data)

    def _register(self, conn: _Conn, request: Request) -> None:
        self.registers.append(request)
        aor = request.to.uri
        key = f"{aor.user}@{aor.host}"  # type: ignore[union-attr]
        conn.aor = key
        self.bindings[key] = conn
        response = Response.for_request(request, 200, to_tag="proxytag")
        for contact in request.headers.get_all("Contact"):
            response.headers.add("Contact", contact + ";expires=600")
        response.headers.add("Supported", "outbound")
        conn.stream.write(bytes(response))

    def _response(self, conn: _Conn, response: Response) -> None:
        if conn.pending is not None and not conn.pending.done() and response.status_code >= 200:
            if 200 <= response.status_code < 300:
                assert conn.peer_for_pending is not None
                conn.mode, conn.splice_to = "splice", conn.peer_for_pending
            conn.pending.set_result(response)

    async def _connect(self, conn: _Conn, request: Request) -> None:
        self.connects.append(request)
        mode = self.mode
        if self.digest is not None:
            now = asyncio.get_running_loop().time()
            values = request.headers.get_all("Proxy-Authorization")
            if not self.digest.verify("CONNECT", str(request.uri), values, now).ok:
                self.challenges += 1
                response = Response.for_request(request, 407, to_tag="p1")
                for name, value in self.digest.challenge(now):
                    response.headers.add(name, value)
                conn.stream.write(bytes(response))
                return
        if mode.startswith("answer:"):
            code = int(mode.split(":")[1])
            conn.stream.write(bytes(Response.for_request(request, code, to_tag="p1")))
            self.connect_responses.append(code)
            return
        if mode == "mitm":
            await self._mitm(conn, request)
            return
        to = request.uri
        wanted = f"{to.user}@{to.host}"  # type: ignore[union-attr]
        if mode.startswith("redirect:"):
            wanted = mode.split(":", 1)[1]
        callee = self.bindings.get(wanted)
        if callee is None:
            conn.stream.write(bytes(Response.for_request(request, 404, to_tag="p1")))
            self.connect_responses.append(404)
            return
        # The callee's connection is read by its own task: its answer comes to this future.
        loop = asyncio.get_running_loop()
        callee.pending, callee.peer_for_pending = loop.create_future(), conn
        callee.stream.write(bytes(request))
        try:
            async with asyncio.timeout(30):
                response = await callee.pending
        except TimeoutError:
            response = Response.for_request(request, 408, to_tag="p1")
        self.connect_responses.append(response.status_code)
        if 200 <= response.status_code < 300:
            # The proxy drops the bindings of flows that became a tunnel (both ends).
            for aor in [a for a, c in self.bindings.items() if c in (conn, callee)]:
                del self.bindings[aor]
            if mode == "non-transparent":
                conn.mode = "answer-sip"
            elif mode == "silent":
                conn.mode = "swallow"
            else:
                conn.mode, conn.splice_to = "splice", callee
        conn.stream.write(bytes(response))

    async def _mitm(self, conn: _Conn, request: Request) -> None:
        """(a): answer the CONNECT and be the "callee" of the nested TLS ourselves."""
        assert self.mitm_identity is not None
        conn.mode = "mitm"
        self.connect_responses.append(200)
        conn.stream.write(bytes(Response.for_request(request, 200, to_tag="p1")))
        material = self.mitm_identity
        nested = conn.stream.upgrade(
            TLSConfig.server((material.cert,), material.key, request_client_certificate=True)
        )
        self.mitm_streams.append(nested)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await nested.handshake()
                while await nested.read():
                    pass


def aor_of(text: str) -> AorIdentity:
    return AorIdentity.aor(text)


class EnvKeyring(KeyringBackend):
    """For agent subprocesses in tests only: secrets from ``SOFTPHONE_TEST_KEYRING`` (JSON of
    ``"service|user": secret``), read-only. Selected with ``PYTHON_KEYRING_BACKEND=
    tests.ua.sipsec_proxy.EnvKeyring``; priority -1, never chosen by auto-detection."""

    priority = -1

    def get_password(self, service: str, username: str) -> str | None:
        data = json.loads(os.environ.get("SOFTPHONE_TEST_KEYRING", "{}"))
        value = data.get(f"{service}|{username}")
        return value if isinstance(value, str) else None

    def set_password(self, service: str, username: str, password: str) -> None:
        raise PasswordSetError("read-only test keyring")

    def delete_password(self, service: str, username: str) -> None:
        raise PasswordDeleteError("read-only test keyring")
