"""DTLS-SRTP (RFC 5763, RFC 5764): a DTLS endpoint that keys SRTP, over pyOpenSSL memory BIOs.

:class:`DtlsEndpoint` is sans-I/O in the aioquic style: datagrams in (:meth:`receive`),
datagrams out (every method returns the ones to send), time as an argument
(:meth:`get_timer`, :meth:`handle_timer`). The media session owns the socket and the clock.
OpenSSL keeps its own retransmission timer (RFC 6347 §4.2.4: 1 s, doubling); we only ask it how
long is left (``DTLSv1_get_timeout``) and tell it when that has passed
(``DTLSv1_handle_timeout``), so a lost flight is sent again. The whole handshake is bounded by
``handshake_timeout`` seconds of the caller's clock.

Security rules (RFC 5763 §5-§6.6, RFC 8122 §5):

* Each side presents a self-signed certificate (:class:`DtlsCertificate`, ECDSA P-256);
  what binds it to the call is its fingerprint in the SDP. The certificate the peer presents
  must hash to one of ``remote_fingerprints`` or the handshake fails
  (:class:`FingerprintMismatchError`), and no key is ever released. A peer that presents no
  certificate fails too (:class:`NoCertificateError`). Fail closed.
* The SRTP protection profile is negotiated by the ``use_srtp`` extension (RFC 5764 §4.1.2);
  the keys are the exporter's output ``EXTRACTOR-dtls_srtp``, split as
  ``client key | server key | client salt | server salt`` (RFC 5764 §4.2). The client sends
  with the client's key and salt.
* Once connected, the keys are fixed. Later DTLS records (the peer's retransmitted Finished,
  an alert, a forgery) are handed to OpenSSL, which answers retransmissions and drops bad
  records (RFC 6347 §4.1.2.7); nothing after the handshake can change the keys or end media.

Exceptions::

    DtlsError
     ├── FingerprintMismatchError   the certificate does not match a=fingerprint
     ├── NoCertificateError         the peer presented no certificate
     ├── DtlsTimeoutError           no handshake within handshake_timeout
     └── DtlsHandshakeError         an alert or a protocol failure during the handshake

Offer policy of the softphone (RFC 5763 §5, see also :mod:`softphone.sdp.policy`): an account
chooses how *its offers* are keyed: SDES (``RTP/SAVP`` + ``a=crypto``, the default) or
DTLS-SRTP (``UDP/TLS/RTP/SAVP`` + ``a=fingerprint`` + ``a=setup:actpass``). Offering both at
once would need two m-lines or RFC 5939 capability negotiation, which few peers implement;
we offer one, honestly. As answerer we accept whichever keying the offer carries, and answer
``a=setup:active`` to an ``actpass`` offer (we are the DTLS client).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from dataclasses import dataclass
from enum import Enum
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from pylibsrtp import Policy

from softphone.sdp.crypto import SrtpSuite
from softphone.sdp.fingerprint import DtlsRole, Fingerprint, verify_certificate

__all__ = [
    "DTLS_SUITES",
    "DtlsCertificate",
    "DtlsEndpoint",
    "DtlsError",
    "DtlsHandshakeError",
    "DtlsState",
    "DtlsTimeoutError",
    "FingerprintMismatchError",
    "NoCertificateError",
    "SrtpKeys",
    "is_dtls",
    "supported_suites",
]

_log = logging.getLogger(__name__)

#: RFC 5764 §4.1.2 / RFC 7714 §14.2 profile names (OpenSSL's spelling), our preference order:
#: authenticated encryption first, then the 80-bit tag every DTLS-SRTP stack supports.
DTLS_SUITES: tuple[tuple[bytes, SrtpSuite, int], ...] = (
    (b"SRTP_AEAD_AES_256_GCM", SrtpSuite.AEAD_AES_256_GCM, Policy.SRTP_PROFILE_AEAD_AES_256_GCM),
    (b"SRTP_AEAD_AES_128_GCM", SrtpSuite.AEAD_AES_128_GCM, Policy.SRTP_PROFILE_AEAD_AES_128_GCM),
    (
        b"SRTP_AES128_CM_SHA1_80",
        SrtpSuite.AES_CM_128_HMAC_SHA1_80,
        Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    ),
    (
        b"SRTP_AES128_CM_SHA1_32",
        SrtpSuite.AES_CM_128_HMAC_SHA1_32,
        Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    ),
)
_EXPORTER_LABEL = b"EXTRACTOR-dtls_srtp"  # RFC 5764 §4.2
_RECORD_HEADER = 13  # RFC 6347 §4.1: type, version, epoch, sequence number, length
_MTU = 1200  # payload bytes per datagram we send (safe below any path MTU seen in practice)
_CERT_LIFETIME = datetime.timedelta(days=30)


def is_dtls(data: bytes) -> bool:
    """RFC 7983 §7 (RFC 5764 §5.1.2): a first byte in 20..63 is DTLS."""
    return bool(data) and 20 <= data[0] <= 63


class DtlsError(Exception):
    """The DTLS handshake failed; ``reason`` says why in words a person can read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FingerprintMismatchError(DtlsError):
    """The peer's certificate does not hash to a fingerprint of its SDP (RFC 5763 §6.6)."""

    def __init__(self) -> None:
        super().__init__(
            "the media certificate does not match the fingerprint in the call setup — "
            "someone may be intercepting"
        )


class NoCertificateError(DtlsError):
    def __init__(self) -> None:
        super().__init__("the other phone presented no media certificate")


class DtlsTimeoutError(DtlsError):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"the media encryption handshake did not finish within {seconds:g} s")


class DtlsHandshakeError(DtlsError):
    pass


class DtlsState(Enum):
    NEW = "new"
    HANDSHAKING = "handshaking"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"  # the peer sent close_notify after the handshake (keys stay valid)


@dataclass(frozen=True, repr=False)
class SrtpKeys:
    """The SRTP suite and master key||salt per direction from the handshake. No keys in repr."""

    suite: SrtpSuite
    local_key_salt: bytes  # what we send with
    remote_key_salt: bytes  # what the peer sends with

    def __repr__(self) -> str:
        return f"SrtpKeys({self.suite.wire_name})"


@cache
def supported_suites() -> tuple[tuple[bytes, SrtpSuite], ...]:
    """The profiles both this OpenSSL (``use_srtp``) and this libsrtp build can run."""
    usable: list[tuple[bytes, SrtpSuite]] = []
    for name, suite, profile in DTLS_SUITES:
        try:
            Policy(srtp_profile=profile)
            SSL.Context(SSL.DTLS_METHOD).set_tlsext_use_srtp(name)
        except Exception as exc:  # noqa: BLE001 - any failure means "not in this build"
            _log.debug("SRTP profile %s not usable here: %s", name.decode(), exc)
            continue
        usable.append((name, suite))
    return tuple(usable)


class DtlsCertificate:
    """A self-signed ECDSA P-256 certificate for DTLS-SRTP (RFC 5763 §5: self-signed is the
    norm; the SDP fingerprint is what binds it). Made fresh per call, so calls cannot be
    linked by certificate."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self.key = key
        self.certificate = certificate
        self.der = certificate.public_bytes(serialization.Encoding.DER)

    @classmethod
    def generate(cls, common_name: str = "softphone") -> DtlsCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + _CERT_LIFETIME)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    def fingerprint(self, hash_function: str = "sha-256") -> Fingerprint:
        """For ``a=fingerprint`` (RFC 8122 §5; SHA-256 as RFC 8122 recommends)."""
        return Fingerprint.of_certificate(self.der, hash_function)

    def __repr__(self) -> str:
        return f"DtlsCertificate({self.fingerprint()})"


class DtlsEndpoint:
    """One side of a DTLS-SRTP handshake (see the module docstring).

    ``role`` comes from the offer/answer (RFC 5763 §5: ``a=setup:active`` is the client).
    Every method returns the datagrams to send to the peer, in order."""

    def __init__(
        self,
        role: DtlsRole,
        certificate: DtlsCertificate,
        remote_fingerprints: tuple[Fingerprint, ...],
        *,
        suites: tuple[SrtpSuite, ...] | None = None,
        handshake_timeout: float = 10.0,
        mtu: int = _MTU,
    ) -> None:
        profiles = [(n, s) for n, s in supported_suites() if suites is None or s in suites]
        if not profiles:
            raise ValueError("no SRTP protection profile usable for DTLS-SRTP")
        self.role = role
        self.certificate = certificate
        self.remote_fingerprints = remote_fingerprints
        self.handshake_timeout = handshake_timeout
        self.mtu = mtu
        self.state = DtlsState.NEW
        self.error: DtlsError | None = None
        self.keys: SrtpKeys | None = None
        self.peer_certificate: bytes | None = None  # DER, once the handshake is done
        self.records_after_handshake = 0  # DTLS records received once connected
        self._profiles = {name: suite for name, suite in profiles}
        self._deadline: float | None = None
        self._mismatch = False
        context = SSL.Context(SSL.DTLS_METHOD)
        context.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_RENEGOTIATION)
        context.use_certificate(certificate.certificate)
        context.use_privatekey(certificate.key)
        context.check_privatekey()
        # Self-signed by design: trust comes from the fingerprint, checked on the leaf here
        # (the handshake aborts with an alert on a mismatch) and again after the handshake.
        context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verify)
        context.set_tlsext_use_srtp(b":".join(name for name, _ in profiles))
        self._conn = SSL.Connection(context, None)
        if role is DtlsRole.CLIENT:
            self._conn.set_connect_state()
        else:
            self._conn.set_accept_state()

    def __repr__(self) -> str:
        return f"DtlsEndpoint({self.role.value}, {self.state.value})"

    # -- driving ---------------------------------------------------------------------------

    def start(self, now: float) -> list[bytes]:
        """Begin: the client sends its ClientHello; the server waits for one."""
        if self.state is not DtlsState.NEW:
            return []
        self.state = DtlsState.HANDSHAKING
        self._deadline = now + self.handshake_timeout
        return self._advance()

    def receive(self, data: bytes, now: float) -> list[bytes]:
        """One DTLS datagram from the peer (the caller has checked :func:`is_dtls` and the
        source address)."""
        if self.state is DtlsState.NEW:
            self.start(now)
        if self.state is DtlsState.FAILED:
            return []
        if self.state in (DtlsState.CONNECTED, DtlsState.CLOSED):
            self.records_after_handshake += 1
            return self._after_handshake(data)
        self._conn.bio_write(data)
        return self._advance()

    def get_timer(self, now: float) -> float | None:
        """When :meth:`handle_timer` should next run (caller's clock), or ``None``."""
        if self.state is not DtlsState.HANDSHAKING or self._deadline is None:
            return None
        left = self._conn.DTLSv1_get_timeout()
        if left is None:
            return self._deadline
        return min(now + left, self._deadline)

    def handle_timer(self, now: float) -> list[bytes]:
        """Retransmit a lost flight when OpenSSL's timer says so; fail after the bound."""
        if self.state is not DtlsState.HANDSHAKING:
            return []
        if self._deadline is not None and now >= self._deadline:
            self._fail(DtlsTimeoutError(self.handshake_timeout))
            return []
        try:
            self._conn.DTLSv1_handle_timeout()
        except SSL.Error as exc:
            self._fail(DtlsHandshakeError(f"media encryption handshake failed ({exc})"))
            return []
        return self._flush()

    def close(self) -> list[bytes]:
        """A close_notify for the peer (best effort) once connected."""
        if self.state is not DtlsState.CONNECTED:
            return []
        with contextlib.suppress(SSL.Error):
            self._conn.shutdown()
        self.state = DtlsState.CLOSED
        return self._flush()

    # -- internals -------------------------------------------------------------------------

    def _verify(
        self, _conn: SSL.Connection, cert: crypto.X509, _errno: int, depth: int, _ok: int
    ) -> bool:
        if depth != 0:
            return True  # a chain above the leaf is not what the fingerprint names
        der = cert.to_cryptography().public_bytes(serialization.Encoding.DER)
        if verify_certificate(self.remote_fingerprints, der):
            return True
        self._mismatch = True
        return False

    def _advance(self) -> list[bytes]:
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            return self._flush()
        except SSL.Error as exc:
            out = self._flush()  # the alert, so the peer stops too
            if self._mismatch:
                self._fail(FingerprintMismatchError())
            elif self._conn.get_peer_certificate() is None and "certificate" in str(exc):
                self._fail(NoCertificateError())
            else:
                self._fail(DtlsHandshakeError(f"media encryption handshake failed ({exc})"))
            return out
        out = self._flush()
        self._connected()
        return out

    def _connected(self) -> None:
        peer = self._conn.get_peer_certificate(as_cryptography=True)
        if peer is None:
            self._fail(NoCertificateError())
            return
        der = peer.public_bytes(serialization.Encoding.DER)
        if not verify_certificate(self.remote_fingerprints, der):
            self._fail(FingerprintMismatchError())
            return
        name = self._conn.get_selected_srtp_profile()
        suite = self._profiles.get(name)
        if suite is None:
            self._fail(DtlsHandshakeError("the other phone agreed on no SRTP profile (use_srtp)"))
            return
        key_len, salt_len = suite.key_length, suite.salt_length
        material = self._conn.export_keying_material(_EXPORTER_LABEL, 2 * (key_len + salt_len))
        # RFC 5764 §4.2: client_write_key | server_write_key | client_salt | server_salt.
        client_key, server_key = material[:key_len], material[key_len : 2 * key_len]
        salts = material[2 * key_len :]
        client_salt, server_salt = salts[:salt_len], salts[salt_len:]
        client, server = client_key + client_salt, server_key + server_salt
        if self.role is DtlsRole.CLIENT:
            self.keys = SrtpKeys(suite, client, server)
        else:
            self.keys = SrtpKeys(suite, server, client)
        self.peer_certificate = der
        self.state = DtlsState.CONNECTED
        _log.debug("DTLS-SRTP %s connected: %s", self.role.value, suite.wire_name)

    def _after_handshake(self, data: bytes) -> list[bytes]:
        self._conn.bio_write(data)
        try:
            self._conn.recv(2048)  # application data has no business here: ignored
        except SSL.ZeroReturnError:
            self.state = DtlsState.CLOSED
        except SSL.WantReadError:
            pass  # a retransmitted flight (answered by OpenSSL) or a dropped record
        except SSL.Error:
            pass  # a bad record: dropped; the keys are already fixed
        return self._flush()

    def _fail(self, error: DtlsError) -> None:
        self.state = DtlsState.FAILED
        self.error = error
        _log.info("DTLS-SRTP %s failed: %s", self.role.value, error.reason)

    def _flush(self) -> list[bytes]:
        """What OpenSSL wrote, as datagrams of whole records up to ``mtu`` bytes (a memory
        BIO keeps no datagram boundaries, so records are re-framed by their length field)."""
        pending = b""
        while True:
            try:
                chunk = self._conn.bio_read(65536)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            pending += chunk
        datagrams: list[bytes] = []
        current = b""
        offset = 0
        while offset + _RECORD_HEADER <= len(pending):
            length = int.from_bytes(pending[offset + 11 : offset + 13], "big")
            record = pending[offset : offset + _RECORD_HEADER + length]
            offset += _RECORD_HEADER + length
            if current and len(current) + len(record) > self.mtu:
                datagrams.append(current)
                current = b""
            current += record
        if current:
            datagrams.append(current)
        return datagrams
