"""Who owns a media socket, and when it is closed: :class:`ReservedPorts` until a transport
adopts it, the transport after that; :meth:`MediaSession.stop` wins over a :meth:`start` still
in progress (the call ended while its media was starting) and returns once every socket is
closed.

The bug these tests pin down: ``stop()`` during ``start()`` closed the reserved socket under the
transport asyncio was building. asyncio then logged "Exception in callback
_SelectorTransport._add_reader … Bad file descriptor", the session's 20 ms loop and transport
lived on, and the next socket to get that descriptor number failed with "File descriptor N is
used by transport". Each test runs in the real event loop on loopback UDP and records every
loop-level error through ``loop.set_exception_handler``.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from softphone.media.dtls import DtlsCertificate, DtlsEndpoint, DtlsError
from softphone.media.rtp_session import MediaSession, ReservedPorts, reserve_ports
from softphone.sdp.fingerprint import DtlsRole
from tests.media.test_dtls_session import negotiated as dtls_negotiated
from tests.media.test_session import CODECS, HOST, negotiated_pair

ROUNDS = 20


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[str]]:
    """Every error the running loop reports (callbacks that raised, unclosed transports)."""
    loop = asyncio.get_running_loop()
    errors: list[str] = []

    def record(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        errors.append(f"{context.get('message')}: {context.get('exception')!r}")

    previous = loop.get_exception_handler()
    loop.set_exception_handler(record)
    yield errors
    loop.set_exception_handler(previous)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def plain_session(*, rtcp_mux: bool = True) -> tuple[MediaSession, ReservedPorts, ReservedPorts]:
    ours = reserve_ports(HOST, rtcp=not rtcp_mux)
    theirs = reserve_ports(HOST, rtcp=not rtcp_mux)
    mine, _, _, _ = negotiated_pair(CODECS["PCMU"], theirs, ours, suite=None, rtcp_mux=rtcp_mux)
    return MediaSession(mine, ports=ours), ours, theirs


def session_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "media-session"]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.parametrize("rtcp_mux", [True, False])
async def test_stop_during_start_wins_and_closes_every_socket(
    loop_errors: list[str], rtcp_mux: bool
) -> None:
    before = open_fds()
    for _ in range(ROUNDS):
        session, ours, theirs = plain_session(rtcp_mux=rtcp_mux)
        starting = asyncio.ensure_future(session.start())
        await asyncio.sleep(0)  # start() is inside create_datagram_endpoint now
        await session.stop()  # the BYE right behind the ACK
        await starting
        assert session.stopped and ours.closed
        theirs.close()
    await settle()
    assert loop_errors == []
    assert session_tasks() == []
    assert open_fds() == before


async def test_stop_before_start_closes_the_reservation_and_start_then_does_nothing(
    loop_errors: list[str],
) -> None:
    session, ours, theirs = plain_session()
    await session.stop()
    assert ours.closed
    await session.start()  # a call ended before its media task ran
    assert session_tasks() == []
    await session.stop()  # twice is fine
    theirs.close()
    assert loop_errors == []


async def test_a_late_release_of_the_reservation_leaves_the_running_session_alone(
    loop_errors: list[str],
) -> None:
    """The call releasing its ports after media started must not close the transport's socket
    (that descriptor would be reused under a live transport)."""
    session, ours, theirs = plain_session()
    await session.start()
    ours.close()  # e.g. a call's _release_media() after the session took the sockets
    assert not ours.closed
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        peer.sendto(b"\x80" + bytes(11), (HOST, ours.rtp_port))  # still open, still ours
        await settle()
    finally:
        peer.close()
    await session.stop()
    assert ours.closed
    theirs.close()
    assert loop_errors == []


async def test_a_closed_reservation_cannot_be_started(loop_errors: list[str]) -> None:
    session, ours, theirs = plain_session()
    ours.rtp.close()  # released by someone else before media started
    with pytest.raises(RuntimeError, match="closed before media started"):
        await session.start()
    await session.stop()
    theirs.close()
    assert loop_errors == []


async def test_start_twice_is_refused(loop_errors: list[str]) -> None:
    session, _ours, theirs = plain_session()
    await session.start()
    with pytest.raises(RuntimeError, match="twice"):
        await session.start()
    await session.stop()
    theirs.close()
    assert loop_errors == []


async def test_a_call_ended_during_the_dtls_handshake_closes_its_socket(
    loop_errors: list[str],
) -> None:
    """The peer never answers the ClientHello; the call ends mid-handshake (and once while
    start() itself is still running): wait_secured() says why, nothing stays open."""
    before = open_fds()
    ours_cert, theirs_cert = DtlsCertificate.generate(), DtlsCertificate.generate()
    for during_start in (False, True):
        ours, theirs = reserve_ports(HOST), reserve_ports(HOST)
        session = MediaSession(
            dtls_negotiated(theirs, theirs_cert.fingerprint(), DtlsRole.CLIENT),
            ports=ours,
            dtls=DtlsEndpoint(DtlsRole.CLIENT, ours_cert, (theirs_cert.fingerprint(),)),
        )
        starting = asyncio.ensure_future(session.start())
        if during_start:
            await asyncio.sleep(0)
        else:
            await starting
            assert theirs.rtp.recv(4096)[0] == 22  # the ClientHello went out (a handshake)
        await session.stop()
        await starting
        with pytest.raises(DtlsError, match="ended before media was secured"):
            await session.wait_secured()
        assert ours.closed
        theirs.close()
    await settle()
    assert session_tasks() == []
    assert loop_errors == []
    assert open_fds() == before
