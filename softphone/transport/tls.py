"""Sans-I/O TLS: pyOpenSSL ``Connection`` over memory BIOs, bytes in, events out.

One adapter serves the outer hop (SIP over TLS, RFC 3261 §26.2) and the nested end-to-end TLS
that sipsec runs inside a CONNECT tunnel (draft-gurbani-sip-sipsec-01 §6.4-6.5): because a
:class:`TLSConnection` only ever sees bytes, the ciphertext of one connection can be the
application data of another (TLS-over-TLS is just stacking, as in trio's ``SSLStream``).

Contract::

    conn = TLSConnection(TLSConfig.client(server_name="proxy.example.com", ...))
    conn.start_handshake()                 # clients only; servers wait for a ClientHello
    lower.write(conn.data_to_send())       # ciphertext for the lower layer
    events = conn.receive_data(chunk)      # chunk from the lower layer; b"" means EOF
    lower.write(conn.data_to_send())       # after every receive_data: Finished, alerts,
                                           # close_notify and KeyUpdate replies are queued
    conn.send(b"INVITE ...")               # queued until the handshake completes
    conn.close()                           # queues close_notify

Events (frozen dataclasses): :class:`HandshakeComplete`, :class:`DataReceived`,
:class:`CloseNotify`, :class:`TLSError`. Protocol failures caused by the peer never escape as
exceptions: they become one :class:`TLSError` event and the connection is FAILED (any alert
OpenSSL produced is still in :meth:`TLSConnection.data_to_send`). Misuse by the caller (sending
after close) raises :class:`TLSStateError`.

Trust is *reported, not decided*. OpenSSL is told to verify the peer (so it builds the chain and
checks it against :attr:`TLSConfig.trust_anchors`), but the verify callback records every
``(depth, errno, reason)`` and answers "continue", so certificate problems never fail the
handshake. The peer chain and the records are exposed for the trust evaluator
(``softphone.security.trust``) and, through the engine, the user. Host name matching is also the
evaluator's job (pyOpenSSL exposes no ``X509_VERIFY_PARAM_set1_host``).

Round-trip floors (ARCHITECTURE.md): TLS 1.3 preferred (one flight before the client may send),
and each :meth:`TLSConnection.send` call is one ``SSL_write`` so a SIP message up to 16 KiB goes
out as one TLS record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import ipaddress
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from OpenSSL import SSL, crypto

__all__ = [
    "MAX_RECORD_PLAINTEXT",
    "NO_PEER_CERTIFICATE",
    "CloseNotify",
    "DataReceived",
    "Event",
    "HandshakeComplete",
    "PrivateKey",
    "TLSConfig",
    "TLSConnection",
    "TLSError",
    "TLSRole",
    "TLSState",
    "TLSStateError",
    "TLSVersion",
    "VerifyRecord",
    "verify_error_name",
]

#: Largest plaintext one TLS record carries (RFC 8446 §5.1): a SIP message up to this size is
#: written with one ``SSL_write`` and therefore leaves as one record.
MAX_RECORD_PLAINTEXT = 16384

#: Pseudo error number (not an X509_V_ERR code, those are >= 0) recorded at depth 0 when the
#: peer presented no certificate although one was asked for (server with
#: ``request_client_certificate``) or is always expected (a client talking to a server).
NO_PEER_CERTIFICATE = -1

# Reads drain OpenSSL's plaintext in chunks of this size; bigger than a record so one call
# usually empties it.
_READ_CHUNK = 65536

# TLS 1.2 suites: forward-secret AEAD only. TLS 1.3 suites stay at OpenSSL's defaults, which are
# all AEAD. Groups also stay at the library default (hybrid ML-KEM + X25519 first on OpenSSL
# 3.5+), which both ends share, so there is no HelloRetryRequest between two copies of us.
_TLS12_CIPHERS = b"ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"

#: Key types a TLS identity may use (what OpenSSL's ``use_privatekey`` takes, minus DSA).
PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)

_VERIFY_ERROR_NAMES: dict[int, str] = {
    value: "X509_V_" + name
    for name, value in vars(SSL.X509VerificationCodes).items()
    if name.isupper() and isinstance(value, int)
}
_VERIFY_ERROR_NAMES[NO_PEER_CERTIFICATE] = "NO_PEER_CERTIFICATE"


def verify_error_name(errno: int) -> str:
    """OpenSSL's name for a verify error: 18 → ``X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT``."""
    return _VERIFY_ERROR_NAMES.get(errno, f"X509_V_ERR_{errno}")


def _readable(name: str) -> str:
    # "X509_V_ERR_CERT_HAS_EXPIRED" -> "cert has expired": the words OpenSSL's own
    # X509_verify_cert_error_string uses, without reaching into pyOpenSSL's private bindings.
    words = name.removeprefix("X509_V_ERR_").removeprefix("X509_V_").replace("_", " ").lower()
    return words


class TLSRole(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class TLSVersion(enum.IntEnum):
    """Protocol versions we allow configuring (values are OpenSSL's)."""

    TLSv1_2 = SSL.TLS1_2_VERSION
    TLSv1_3 = SSL.TLS1_3_VERSION


class TLSState(enum.Enum):
    """States of :class:`TLSConnection` (one machine, transitions in ``_STATE_AFTER``)."""

    IDLE = "idle"  # client before start_handshake(), server before the first bytes
    HANDSHAKING = "handshaking"
    ESTABLISHED = "established"
    CLOSED = "closed"  # close() was called, or the peer's close_notify / EOF arrived
    FAILED = "failed"  # a TLSError event was emitted; nothing more will happen


@dataclass(frozen=True, slots=True)
class VerifyRecord:
    """One call of the verify callback that carried a problem.

    ``depth`` 0 is the peer's own certificate; ``errno`` is an X509_V_ERR code (e.g. 10 expired,
    18 self-signed leaf, 20 unable to get local issuer) or :data:`NO_PEER_CERTIFICATE`.
    """

    depth: int
    errno: int
    reason: str
    subject: str = ""

    @property
    def name(self) -> str:
        return verify_error_name(self.errno)


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    """The handshake finished. Nothing here says the peer is trusted: see ``verify_errors``."""

    version: str  # "TLSv1.3"
    cipher: str  # "TLS_AES_256_GCM_SHA384"
    alpn: bytes | None
    peer_chain: tuple[x509.Certificate, ...]  # leaf first; () if the peer sent none
    verify_errors: tuple[VerifyRecord, ...] = ()
    server_name: str | None = None  # SNI sent (client) or received (server)


@dataclass(frozen=True, slots=True)
class DataReceived:
    data: bytes


@dataclass(frozen=True, slots=True)
class CloseNotify:
    """The peer will send no more data.

    ``clean`` is False when the transport ended without a close_notify alert (a truncation the
    layer above must judge, e.g. by Content-Length).
    """

    clean: bool = True


@dataclass(frozen=True, slots=True)
class TLSError:
    """The connection failed; ``reason`` is readable ("handshake: wrong version number")."""

    reason: str


Event = HandshakeComplete | DataReceived | CloseNotify | TLSError


class TLSStateError(RuntimeError):
    """The caller used the connection in a state that does not allow it (a local bug)."""


@dataclass(frozen=True)
class TLSConfig:
    """Everything needed to build one side of a TLS connection.

    ``certificate_chain`` is leaf first; the private key matches the leaf. A client may have
    neither (then it answers a CertificateRequest with an empty Certificate). A server with
    ``request_client_certificate`` asks for (never requires) a client certificate and records
    whatever comes, for the trust evaluator. ``trust_anchors`` only feed OpenSSL's chain building
    so the recorded errors are meaningful; they accept nothing.
    """

    role: TLSRole
    server_name: str | None = None
    certificate_chain: tuple[x509.Certificate, ...] = ()
    private_key: PrivateKey | None = None
    request_client_certificate: bool = False
    trust_anchors: tuple[x509.Certificate, ...] = ()
    use_system_trust: bool = False
    min_version: TLSVersion = TLSVersion.TLSv1_2
    max_version: TLSVersion | None = None  # None: the newest OpenSSL has (TLS 1.3)
    alpn_protocols: tuple[bytes, ...] = ()
    tls12_ciphers: bytes = _TLS12_CIPHERS

    def __post_init__(self) -> None:
        if bool(self.certificate_chain) != (self.private_key is not None):
            raise ValueError("certificate_chain and private_key go together")
        if self.role is TLSRole.SERVER and not self.certificate_chain:
            raise ValueError("a TLS server needs a certificate and a private key")
        if self.max_version is not None and self.max_version < self.min_version:
            raise ValueError("max_version is below min_version")

    @classmethod
    def client(cls, server_name: str | None = None, **kwargs: object) -> TLSConfig:
        return cls(TLSRole.CLIENT, server_name, **kwargs)  # type: ignore[arg-type]  # kwargs are TLSConfig fields

    @classmethod
    def server(
        cls,
        certificate_chain: Sequence[x509.Certificate],
        private_key: PrivateKey,
        **kwargs: object,
    ) -> TLSConfig:
        return cls(
            TLSRole.SERVER,
            certificate_chain=tuple(certificate_chain),
            private_key=private_key,
            **kwargs,  # type: ignore[arg-type]  # kwargs are TLSConfig fields
        )

    @functools.cached_property
    def shared_context(self) -> SSL.Context:
        """One context per config, shared by its connections, and by the connections of an
        equal config whatever its ``server_name`` (set on each connection): building one
        (certificates and key loaded, the key checked) costs 0.5-1.3 ms, and a new
        registration flow after each sipsec tunnel, or each call's nested TLS, would build
        it again on the event loop (issue 7). The last :data:`_CONTEXTS_KEPT` are kept.

        Sharing is safe: verification records live on each :class:`TLSConnection` (the
        callback finds it through the connection's app data), not on the context, and
        nothing changes a context once it is made.
        """
        key = dataclasses.replace(self, server_name=None)
        with _CONTEXTS_LOCK:
            context = _CONTEXTS.get(key)
            if context is not None:
                _CONTEXTS.move_to_end(key)
                return context
        context = self.make_context()
        with _CONTEXTS_LOCK:
            _CONTEXTS[key] = context
            while len(_CONTEXTS) > _CONTEXTS_KEPT:
                _CONTEXTS.popitem(last=False)
        return context

    def make_context(self) -> SSL.Context:
        """A fresh ``SSL.Context`` for this configuration (the verify callback is attached)."""
        method = SSL.TLS_CLIENT_METHOD if self.role is TLSRole.CLIENT else SSL.TLS_SERVER_METHOD
        ctx = SSL.Context(method)
        ctx.set_min_proto_version(int(self.min_version))
        if self.max_version is not None:
            ctx.set_max_proto_version(int(self.max_version))
        ctx.set_cipher_list(self.tls12_ciphers)
        options = SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE
        # Renegotiation would make a read need a write (and it is a classic attack surface).
        options |= getattr(SSL, "OP_NO_RENEGOTIATION", 0)
        if self.role is TLSRole.SERVER:
            # We never resume sessions, so TLS 1.3 tickets are dead weight after the handshake
            # (about 1.3 KB when they embed a client certificate); OP_NO_TICKET shrinks them to
            # ~160 bytes of stateful session IDs.
            options |= SSL.OP_NO_TICKET
        ctx.set_options(options)
        # Idle connections (registration flows, sipsec tunnels waiting on a call) give their
        # 2 x ~34 KB of record buffers back between reads and writes.
        ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
        if self.certificate_chain:
            assert self.private_key is not None
            ctx.use_certificate(self.certificate_chain[0])
            for extra in self.certificate_chain[1:]:
                ctx.add_extra_chain_cert(extra)
            ctx.use_privatekey(self.private_key)
            ctx.check_privatekey()
        store = ctx.get_cert_store()
        assert store is not None
        for anchor in self.trust_anchors:
            store.add_cert(crypto.X509.from_cryptography(anchor))
        if self.use_system_trust:
            ctx.set_default_verify_paths()
        if self.role is TLSRole.CLIENT:
            ctx.set_verify(SSL.VERIFY_PEER, _record_verify)
        elif self.request_client_certificate:
            # VERIFY_PEER without FAIL_IF_NO_PEER_CERT: ask, never require (sipsec §6.5: the
            # UAS asks, and its user decides about whatever came back).
            ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_CLIENT_ONCE, _record_verify)
        else:
            ctx.set_verify(SSL.VERIFY_NONE)
        if self.alpn_protocols:
            if self.role is TLSRole.CLIENT:
                ctx.set_alpn_protos(list(self.alpn_protocols))
            else:
                ctx.set_alpn_select_callback(_alpn_selector(self.alpn_protocols))
        return ctx


def _alpn_selector(ours: tuple[bytes, ...]) -> SSL._ALPNSelectCallback:
    def select(_conn: SSL.Connection, offered: list[bytes]) -> bytes | SSL._NoOverlappingProtocols:
        for proto in ours:
            if proto in offered:
                return proto
        # No common protocol is not a reason to fail a SIP connection.
        return SSL.NO_OVERLAPPING_PROTOCOLS

    return select


def _record_verify(
    conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int
) -> bool:
    """Record the problem (if any) on the owning TLSConnection and always continue."""
    owner = conn.get_app_data()
    if errno != 0 and isinstance(owner, TLSConnection):
        try:
            subject = cert.to_cryptography().subject.rfc4514_string()
        except Exception:  # noqa: BLE001  # a malformed name must not hide the error itself
            subject = "<unreadable subject>"
        owner._record(VerifyRecord(depth, errno, _readable(verify_error_name(errno)), subject))
    return True  # never fail the handshake here: the trust evaluator and the user decide


def _ssl_reason(exc: SSL.Error) -> str:
    """Turn pyOpenSSL's ``[(lib, func, reason), ...]`` into "reason; reason"."""
    if isinstance(exc, SSL.SysCallError):
        errno, text = (*exc.args, None, None)[:2]
        return f"system call error {errno}: {text}" if errno != -1 else "unexpected EOF"
    parts: list[str] = []
    for arg in exc.args:
        if isinstance(arg, list):
            for item in arg:
                if isinstance(item, tuple) and item:
                    parts.append(str(item[-1]))
                else:
                    parts.append(str(item))
        elif arg:
            parts.append(str(arg))
    return "; ".join(p for p in parts if p) or type(exc).__name__


#: Contexts by configuration, ``server_name`` aside (:attr:`TLSConfig.shared_context`). The
#: lock: servers and the lab's peers run loops in other threads.
_CONTEXTS: OrderedDict[TLSConfig, SSL.Context] = OrderedDict()
_CONTEXTS_KEPT = 32
_CONTEXTS_LOCK = threading.Lock()


class TLSConnection:
    """One TLS endpoint over memory BIOs (see the module docstring for the contract)."""

    def __init__(self, config: TLSConfig, *, context: SSL.Context | None = None) -> None:
        """``context`` overrides ``config.shared_context`` (e.g. a context built elsewhere)."""
        self.config = config
        self._conn = SSL.Connection(context or config.shared_context, None)
        self._conn.set_app_data(self)
        self._state = TLSState.IDLE
        self._pending: list[bytes] = []  # application data sent before the handshake finished
        self._records: list[VerifyRecord] = []
        self._handshake: HandshakeComplete | None = None
        self._close_sent = False
        self._peer_done = False  # a CloseNotify event was emitted
        #: Keep sending after the peer's close_notify (see :meth:`send`); the sipsec relay
        #: sets it on both sides of a tunnel.
        self.allow_half_close = False
        if config.role is TLSRole.CLIENT:
            self._conn.set_connect_state()
            if config.server_name and not _is_ip_literal(config.server_name):
                # RFC 6066 §3: SNI carries host names only, never address literals.
                self._conn.set_tlsext_host_name(config.server_name.encode("idna"))
        else:
            self._conn.set_accept_state()

    # -- state -----------------------------------------------------------------------------

    @property
    def state(self) -> TLSState:
        return self._state

    @property
    def handshake_complete(self) -> HandshakeComplete | None:
        return self._handshake

    @property
    def verify_errors(self) -> tuple[VerifyRecord, ...]:
        """Every problem the verify callback saw, in the order OpenSSL reported them."""
        return tuple(self._records)

    def peer_chain(self) -> list[x509.Certificate]:
        """The certificates the peer sent, leaf first ([] if none or before the handshake)."""
        chain = self._conn.get_peer_cert_chain(as_cryptography=True) or []
        leaf = self._conn.get_peer_certificate(as_cryptography=True)
        # On a server OpenSSL leaves the client's leaf out of SSL_get_peer_cert_chain.
        if leaf is not None and (not chain or chain[0] != leaf):
            chain = [leaf, *chain]
        return chain

    def verified_chain(self) -> list[x509.Certificate]:
        """The chain OpenSSL built towards the trust anchors (partial when it failed)."""
        return self._conn.get_verified_chain(as_cryptography=True) or []

    def _record(self, record: VerifyRecord) -> None:
        self._records.append(record)

    # -- driving ---------------------------------------------------------------------------

    def start_handshake(self) -> None:
        """Client: produce the ClientHello (then read :meth:`data_to_send`)."""
        if self.config.role is not TLSRole.CLIENT:
            raise TLSStateError("only a client starts the handshake")
        if self._state is not TLSState.IDLE:
            raise TLSStateError(f"start_handshake() in state {self._state.value}")
        self._state = TLSState.HANDSHAKING
        events: list[Event] = []
        self._drive_handshake(events)
        # A ClientHello can only fail locally (bad config): surface it the same way.
        for ev in events:
            if isinstance(ev, TLSError):
                raise TLSStateError(ev.reason)

    def send(self, data: bytes) -> None:
        """Queue application data; each call becomes one record when it fits in 16 KiB.

        With :attr:`allow_half_close`, we may still send after the peer's close_notify until
        we close ourselves: in TLS 1.3 a close_notify closes one direction only (RFC 8446
        §6.1), which the sipsec relay needs to propagate a half-close
        (draft-gurbani-sip-sipsec §6.6). Otherwise the peer's close ends sending too."""
        half_closed = (
            self.allow_half_close
            and self._state is TLSState.CLOSED
            and self._peer_done
            and self._handshake is not None
        )
        if self._state is TLSState.FAILED or self._close_sent:
            raise TLSStateError(f"send() in state {self._state.value}")
        if self._state is TLSState.CLOSED and not half_closed:
            raise TLSStateError(f"send() in state {self._state.value}")
        if not data:
            return
        if self._state in (TLSState.ESTABLISHED, TLSState.CLOSED):
            self._write(data)
        else:
            self._pending.append(bytes(data))

    def data_to_send(self) -> bytes:
        """All ciphertext produced so far, for the lower layer (b"" if none)."""
        out = bytearray()
        while True:
            try:
                chunk = self._conn.bio_read(_READ_CHUNK)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed ciphertext from the lower layer; ``b""`` means the lower layer hit EOF."""
        events: list[Event] = []
        if self._state is TLSState.FAILED:
            return events
        if not data:
            self._on_transport_eof(events)
            return events
        if self._peer_done:
            return events  # bytes after the peer's close_notify mean nothing
        self._conn.bio_write(data)
        if self._state is TLSState.IDLE:
            if self.config.role is TLSRole.CLIENT:
                self._fail(events, "data from the server before the ClientHello was sent")
                return events
            self._state = TLSState.HANDSHAKING
        if self._state is TLSState.HANDSHAKING:
            self._drive_handshake(events)
        if self._state in (TLSState.ESTABLISHED, TLSState.CLOSED):
            self._drain_plaintext(events)
        return events

    def close(self) -> None:
        """Queue a close_notify (read :meth:`data_to_send`); idempotent.

        Before the handshake completes there is nothing to close cleanly: queued application
        data is dropped and the state becomes CLOSED with no bytes to send.
        """
        if self._close_sent or self._state is TLSState.FAILED:
            return
        self._close_sent = True
        self._pending.clear()
        if self._state in (TLSState.ESTABLISHED, TLSState.CLOSED):
            # The peer may already be gone; a missing close_notify is all we lose.
            with contextlib.suppress(SSL.Error):
                self._conn.shutdown()
        self._state = TLSState.CLOSED

    # -- internals -------------------------------------------------------------------------

    def _drive_handshake(self, events: list[Event]) -> None:
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            return
        except SSL.ZeroReturnError:
            self._fail(events, "handshake: peer sent close_notify")
            return
        except SSL.Error as exc:
            self._fail(events, f"handshake: {_ssl_reason(exc)}")
            return
        self._state = TLSState.ESTABLISHED
        peer = tuple(self.peer_chain())
        expect_cert = self.config.role is TLSRole.CLIENT or self.config.request_client_certificate
        if not peer and expect_cert:
            self._record(VerifyRecord(0, NO_PEER_CERTIFICATE, "peer sent no certificate"))
        alpn = self._conn.get_alpn_proto_negotiated() or None
        sni = self._conn.get_servername()
        self._handshake = HandshakeComplete(
            version=self._conn.get_protocol_version_name(),
            cipher=self._conn.get_cipher_name() or "",
            alpn=alpn,
            peer_chain=peer,
            verify_errors=tuple(self._records),
            server_name=sni.decode("idna") if sni else self.config.server_name,
        )
        events.append(self._handshake)
        # Flushed after the client's Finished so it rides in the same flight (sipsec: the
        # INVITE goes with the nested handshake's last client flight).
        pending, self._pending = self._pending, []
        for data in pending:
            self._write(data)

    def _drain_plaintext(self, events: list[Event]) -> None:
        # Post-handshake messages (TLS 1.3 NewSessionTicket, KeyUpdate) are consumed here: recv
        # handles them and raises WantReadError when no application data came with them.
        buf = bytearray()
        while True:
            try:
                chunk = self._conn.recv(_READ_CHUNK)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                if buf:
                    events.append(DataReceived(bytes(buf)))
                    buf.clear()
                self._state = TLSState.CLOSED
                self._peer_done = True
                events.append(CloseNotify(clean=True))
                break
            except SSL.Error as exc:
                if buf:
                    events.append(DataReceived(bytes(buf)))
                    buf.clear()
                self._fail(events, _ssl_reason(exc))
                break
            if not chunk:
                break
            buf += chunk
        if buf:
            events.append(DataReceived(bytes(buf)))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            # One SSL_write per 16 KiB: OpenSSL then emits exactly one record per call.
            n = self._conn.send(view[:MAX_RECORD_PLAINTEXT])
            view = view[n:]

    def _on_transport_eof(self, events: list[Event]) -> None:
        if self._state in (TLSState.IDLE, TLSState.HANDSHAKING):
            self._fail(events, "the connection closed during the TLS handshake")
        elif not self._peer_done:
            # ESTABLISHED, or CLOSED by us with no answer yet: the peer hung up without a
            # close_notify. Reported once, as unclean.
            self._state = TLSState.CLOSED
            self._peer_done = True
            events.append(CloseNotify(clean=False))

    def _fail(self, events: list[Event], reason: str) -> None:
        self._state = TLSState.FAILED
        self._pending.clear()
        events.append(TLSError(reason))


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True
