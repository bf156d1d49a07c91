"""DTLS-SRTP endpoints (RFC 5763/5764) in memory: handshake, exported keys, profile choice,
fingerprint mismatch (fail closed), retransmission of a lost flight, the handshake bound and
strangers' records after the handshake."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from softphone.media.dtls import (
    DtlsCertificate,
    DtlsEndpoint,
    DtlsState,
    DtlsTimeoutError,
    FingerprintMismatchError,
    is_dtls,
    supported_suites,
)
from softphone.media.srtp import SrtpContext
from softphone.sdp.crypto import SrtpSuite
from softphone.sdp.fingerprint import DtlsRole, Fingerprint

Drop = Callable[[DtlsEndpoint, bytes, int], bool]


def pair(**server_options: object) -> tuple[DtlsEndpoint, DtlsEndpoint]:
    a, b = DtlsCertificate.generate(), DtlsCertificate.generate()
    client = DtlsEndpoint(DtlsRole.CLIENT, a, (b.fingerprint(),))
    server = DtlsEndpoint(DtlsRole.SERVER, b, (a.fingerprint(),), **server_options)  # type: ignore[arg-type]
    return client, server


def run(
    client: DtlsEndpoint, server: DtlsEndpoint, now: float = 0.0, drop: Drop | None = None
) -> int:
    """Carry datagrams both ways until none is left; ``drop(dest, data, n)`` loses some."""
    server.start(now)
    queue = [(server, d) for d in client.start(now)]
    n = 0
    while queue:
        dest, data = queue.pop(0)
        n += 1
        if drop is not None and drop(dest, data, n):
            continue
        other = client if dest is server else server
        queue += [(other, d) for d in dest.receive(data, now)]
    return n


def test_handshake_exports_the_same_keys_crosswise() -> None:
    client, server = pair()
    run(client, server)
    assert client.state is DtlsState.CONNECTED and server.state is DtlsState.CONNECTED
    assert client.keys is not None and server.keys is not None
    assert client.keys.suite is server.keys.suite is SrtpSuite.AEAD_AES_256_GCM
    assert client.keys.local_key_salt == server.keys.remote_key_salt
    assert client.keys.remote_key_salt == server.keys.local_key_salt
    assert client.keys.local_key_salt != client.keys.remote_key_salt  # RFC 5764 §4.2
    assert len(client.keys.local_key_salt) == SrtpSuite.AEAD_AES_256_GCM.key_salt_length
    assert "key" not in repr(client.keys).lower().replace("srtpkeys", "")
    # the keys work: what the client protects the server can read, and the reverse
    tx = SrtpContext(client.keys.suite, client.keys.local_key_salt, client.keys.remote_key_salt)
    rx = SrtpContext(server.keys.suite, server.keys.local_key_salt, server.keys.remote_key_salt)
    rtp = bytes([0x80, 0, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4]) + b"hello"
    assert rx.unprotect(tx.protect(rtp)) == rtp
    assert tx.unprotect(rx.protect(rtp)) == rtp


@pytest.mark.parametrize("suite", [s for _, s in supported_suites()])
def test_the_profile_both_sides_can_run_is_chosen(suite: SrtpSuite) -> None:
    client, server = pair(suites=(suite,))
    run(client, server)
    assert client.keys is not None and server.keys is not None
    assert client.keys.suite is suite and server.keys.suite is suite
    assert len(server.keys.local_key_salt) == suite.key_salt_length


def test_a_certificate_that_does_not_match_the_fingerprint_fails_closed() -> None:
    a, b, mallory = (DtlsCertificate.generate() for _ in range(3))
    # the client was told (in SDP) to expect b, but "the server" presents mallory's cert
    client = DtlsEndpoint(DtlsRole.CLIENT, a, (b.fingerprint(),))
    server = DtlsEndpoint(DtlsRole.SERVER, mallory, (a.fingerprint(),))
    run(client, server)
    assert client.state is DtlsState.FAILED and client.keys is None
    assert isinstance(client.error, FingerprintMismatchError)
    assert "does not match the fingerprint" in client.error.reason
    assert server.state is not DtlsState.CONNECTED and server.keys is None  # got the alert


def test_the_server_checks_the_client_certificate_too() -> None:
    a, b, mallory = (DtlsCertificate.generate() for _ in range(3))
    client = DtlsEndpoint(DtlsRole.CLIENT, mallory, (b.fingerprint(),))
    server = DtlsEndpoint(DtlsRole.SERVER, b, (a.fingerprint(),))
    run(client, server)
    assert server.state is DtlsState.FAILED and server.keys is None
    assert isinstance(server.error, FingerprintMismatchError)
    assert server.keys is None


@pytest.mark.parametrize(
    "fingerprints",
    [(), (Fingerprint("md5", bytes(16)),), (Fingerprint("sha-256", bytes(32)),)],
    ids=["none", "unsupported-hash", "wrong-digest"],
)
def test_no_usable_fingerprint_means_no_keys(fingerprints: tuple[Fingerprint, ...]) -> None:
    a, b = DtlsCertificate.generate(), DtlsCertificate.generate()
    client = DtlsEndpoint(DtlsRole.CLIENT, a, fingerprints)
    server = DtlsEndpoint(DtlsRole.SERVER, b, (a.fingerprint(),))
    run(client, server)
    assert client.state is DtlsState.FAILED and client.keys is None


def test_a_lost_flight_is_sent_again_when_the_timer_fires() -> None:
    client, server = pair()
    first = client.start(0.0)
    server.start(0.0)
    assert first and all(is_dtls(d) for d in first)  # the ClientHello, lost on the way
    deadline = client.get_timer(0.0)
    assert deadline is not None and 0.0 < deadline <= client.handshake_timeout
    assert client.handle_timer(0.0) == []  # OpenSSL's timer has not run out yet
    resent: list[bytes] = []
    limit = time.monotonic() + 10.0
    while not resent and time.monotonic() < limit:  # OpenSSL's own clock: 1 s initially
        time.sleep(0.1)
        resent = client.handle_timer(1.0)
    assert resent, "the ClientHello was never retransmitted"
    queue = [(server, d) for d in resent]
    while queue:
        dest, data = queue.pop(0)
        other = client if dest is server else server
        queue += [(other, d) for d in dest.receive(data, 1.0)]
    assert client.state is DtlsState.CONNECTED and server.state is DtlsState.CONNECTED
    assert client.keys is not None and server.keys is not None
    assert client.keys.local_key_salt == server.keys.remote_key_salt


def test_the_servers_lost_finished_is_answered_again_after_the_handshake() -> None:
    """The server is done after sending its last flight; if that flight is lost, the
    client's retransmitted Finished must make the server send it again (RFC 6347 §4.2.4)."""
    client, server = pair()
    lost: list[bytes] = []

    def drop(dest: DtlsEndpoint, data: bytes, n: int) -> bool:
        if dest is client and server.state is DtlsState.CONNECTED and not lost:
            lost.append(data)
            return True
        return False

    run(client, server, drop=drop)
    assert lost and server.state is DtlsState.CONNECTED
    assert client.state is DtlsState.HANDSHAKING
    resent: list[bytes] = []
    limit = time.monotonic() + 10.0
    while not resent and time.monotonic() < limit:
        time.sleep(0.1)
        resent = client.handle_timer(1.0)
    assert resent
    answers = [a for d in resent for a in server.receive(d, 1.0)]
    assert answers, "the server did not retransmit its final flight"
    for data in answers:
        client.receive(data, 1.0)
    assert client.state is DtlsState.CONNECTED
    assert client.keys is not None and server.keys is not None
    assert client.keys.local_key_salt == server.keys.remote_key_salt


def test_no_handshake_within_the_bound_fails_with_a_reason() -> None:
    a, b = DtlsCertificate.generate(), DtlsCertificate.generate()
    client = DtlsEndpoint(DtlsRole.CLIENT, a, (b.fingerprint(),), handshake_timeout=10.0)
    client.start(100.0)
    deadline = client.get_timer(100.0)
    assert deadline is not None and deadline <= 110.0
    assert client.handle_timer(110.0) == []
    assert client.state is DtlsState.FAILED and isinstance(client.error, DtlsTimeoutError)
    assert "10 s" in client.error.reason
    assert client.get_timer(111.0) is None


def test_strangers_records_after_the_handshake_change_nothing() -> None:
    client, server = pair()
    run(client, server)
    assert server.keys is not None
    keys = server.keys
    # a stranger's ClientHello (another endpoint's first flight) and plain garbage records
    stranger = DtlsEndpoint(DtlsRole.CLIENT, DtlsCertificate.generate(), ())
    hello = stranger.start(0.0)
    forged = bytes([23, 0xFE, 0xFD, 0, 1]) + bytes(6) + (40).to_bytes(2, "big") + bytes(40)
    for data in [*hello, forged, bytes([22]) + b"\xff" * 5]:
        server.receive(data, 2.0)
    assert server.state is DtlsState.CONNECTED and server.keys is keys
    assert server.records_after_handshake == len(hello) + 2


@pytest.mark.parametrize(
    ("first", "expected"),
    [(0, False), (19, False), (20, True), (63, True), (64, False), (128, False)],
)
def test_rfc7983_first_byte_ranges(first: int, expected: bool) -> None:
    assert is_dtls(bytes([first, 0, 0])) is expected
    assert is_dtls(b"") is False


def test_the_certificate_is_ecdsa_p256_and_its_fingerprint_is_sha256() -> None:
    cert = DtlsCertificate.generate()
    fp = cert.fingerprint()
    assert fp.hash_function == "sha-256" and fp.matches(cert.der)
    assert cert.key.curve.name == "secp256r1"
    assert DtlsCertificate.generate().fingerprint() != fp  # fresh per call
