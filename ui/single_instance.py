"""One phone per user: a second ``softphone gui sips:bob@biloxi.test`` hands its URI to the
running phone (whose dialer opens with it) and exits.

A :class:`QLocalServer` named per user (a Unix socket / Windows named pipe, readable by that
user only: ``UserAccessOption``) receives one line of UTF-8: a ``sip:``, ``sips:``,
``sipsec:`` or ``tel:`` URI of at most :data:`MAX_URI` bytes. Anything else is dropped and
logged (bad input never reaches the dialer, and the phone keeps running).
"""

from __future__ import annotations

import getpass
import logging
import re

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

__all__ = ["MAX_URI", "InstanceServer", "acceptable_uri", "hand_off", "server_name"]

log = logging.getLogger(__name__)

MAX_URI = 2048
_URI = re.compile(r"^(sip|sips|sipsec|tel):[^\s<>\"]+$", re.IGNORECASE)


def server_name() -> str:
    """The per-user name of the running phone's socket."""
    user = re.sub(r"[^A-Za-z0-9_.-]", "_", getpass.getuser())
    return f"softphone-{user}"


def acceptable_uri(text: str) -> bool:
    """A URI the dialer may be opened with (sip:, sips:, sipsec:, tel:; one line, bounded)."""
    return len(text.encode("utf-8")) <= MAX_URI and bool(_URI.match(text))


def hand_off(uri: str, name: str | None = None, timeout_ms: int = 1000) -> bool:
    """Give ``uri`` to a running phone; False when none is listening (become the phone)."""
    socket = QLocalSocket()
    socket.connectToServer(name or server_name())
    if not socket.waitForConnected(timeout_ms):
        return False
    socket.write((uri + "\n").encode("utf-8"))
    delivered = socket.waitForBytesWritten(timeout_ms)
    socket.disconnectFromServer()
    return delivered


class InstanceServer(QObject):
    """Listens for hand-offs; :attr:`uri_received` carries each acceptable URI."""

    uri_received = Signal(str)

    def __init__(self, name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name or server_name()
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.server.newConnection.connect(self._accept)
        self.rejected: list[str] = []

    def listen(self) -> bool:
        """Start listening; a stale socket left by a crashed phone is removed first."""
        if self.server.listen(self.name):
            return True
        QLocalServer.removeServer(self.name)
        ok = self.server.listen(self.name)
        if not ok:
            log.warning("cannot listen for other launches: %s", self.server.errorString())
        return ok

    def close(self) -> None:
        self.server.close()

    def _accept(self) -> None:
        while self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()
            buffer = bytearray()

            def read(socket: QLocalSocket = socket, buffer: bytearray = buffer) -> None:
                buffer.extend(bytes(socket.readAll().data()))
                if len(buffer) > MAX_URI + 1:
                    self._reject("too long")
                    socket.abort()
                    return
                if b"\n" in buffer:
                    line = bytes(buffer).split(b"\n", 1)[0]
                    socket.disconnectFromServer()
                    self._deliver(line)

            socket.readyRead.connect(read)
            socket.disconnected.connect(socket.deleteLater)
            if socket.bytesAvailable():
                read()

    def _deliver(self, line: bytes) -> None:
        try:
            text = line.decode("utf-8").strip()
        except UnicodeDecodeError:
            self._reject("not UTF-8")
            return
        if not acceptable_uri(text):
            self._reject(f"not a sip:, sips:, sipsec: or tel: URI: {text[:80]!r}")
            return
        self.uri_received.emit(text)

    def _reject(self, why: str) -> None:
        self.rejected.append(why)
        log.warning("ignored a hand-off from another launch: %s", why)
