"""A real baresip (Debian's 1.0) on 127.0.0.1 as a SIP peer, driven through ctrl_tcp.

    peer = BaresipPeer(tmp_dir, server, user="carol", password="carol-secret-3", tone=600)
    peer.start()                  # baresip -f <tmp_dir> -s; waits for REGISTER_OK
    peer.dial("sip:alice@example.test")  # baresip adds ;transport=tls
    peer.wait_event("CALL_ESTABLISHED")
    peer.hangup(); peer.wait_event("CALL_CLOSED")
    peer.received_wav()           # what baresip decoded from the peer (sndfile's *-dec.wav)
    peer.stop()                   # SIGTERM to its own process group (by PID), SIGKILL if it lingers

Recipe from ../shared/peers (the lab): baresip 1.0 cannot register or dial ``sips:`` URIs, so
the AOR is ``sip:<user>@example.test;transport=tls`` and the outbound proxy is Kamailio's TLS
port by IP (no DNS for example.test needed). Media: SDES-SRTP mandatory (``srtp-mand``;
``mediaenc="dtls_srtp"`` loads the ``dtls_srtp`` module and keys SRTP by DTLS instead), the
microphone is ``ausine`` (a sine at ``tone`` Hz), the speaker is ALSA's ``null`` PCM, and the
``sndfile`` module dumps sent (``-enc``) and received (``-dec``) audio as wav files.
baresip 1.0 does not verify the server certificate (``sip_cafile`` is given anyway).
Control: ctrl_tcp, netstring-framed JSON (``<len>:<json>,``): commands
``{"command", "params", "token"}``, replies ``"response": true``, events ``"event": true``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import wave
from pathlib import Path
from typing import IO, Any

from tests.interop.kamailio import HOST, KamailioServer

__all__ = ["BaresipError", "BaresipPeer", "find_baresip", "find_module_dir"]

MODULE_DIRS = ("/usr/lib/baresip/modules", "/usr/local/lib/baresip/modules")
NEEDED_MODULES = ("g711", "alsa", "ausine", "sndfile", "srtp", "ctrl_tcp", "account", "menu")


class BaresipError(RuntimeError):
    """baresip did not start, register or answer; the message carries the log tail."""


def find_baresip() -> str | None:
    return shutil.which("baresip")


def find_module_dir() -> str | None:
    """The directory with the modules we need (Debian: package baresip-core)."""
    for d in MODULE_DIRS:
        if all(os.path.exists(os.path.join(d, f"{m}.so")) for m in NEEDED_MODULES):
            return d
    return None


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                return False
    return True


def _free_sip_port() -> int:
    """A port p with p (UDP+TCP) and p+1 (baresip's TLS listener) free."""
    for _ in range(100):
        p = _free_tcp_port()
        if p < 65000 and _port_free(p) and _port_free(p + 1):
            return p
    raise BaresipError("no free port pair for baresip's sip_listen")


def _free_rtp_range(width: int = 20) -> tuple[int, int]:
    for _ in range(100):
        base = _free_tcp_port() & ~1
        if base + width < 65000 and all(_port_free(p) for p in range(base, base + width)):
            return base, base + width
    raise BaresipError("no free RTP port range for baresip")


class BaresipPeer:
    """One baresip process with one account, its config dir, log, ctrl_tcp connection."""

    def __init__(
        self,
        workdir: Path,
        server: KamailioServer,
        *,
        user: str = "carol",
        password: str = "carol-secret-3",
        tone: int = 600,
        mediaenc: str = "srtp-mand",
        answermode: str = "auto",
        binary: str | None = None,
        timeout: float = 15.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.server = server
        self.user = user
        self.password = password
        self.tone = tone
        self.mediaenc = mediaenc
        self.answermode = answermode
        self.binary = binary or find_baresip() or "baresip"
        self.module_dir = find_module_dir() or MODULE_DIRS[0]
        self.timeout = timeout
        self.sip_port = _free_sip_port()
        self.rtp_ports = _free_rtp_range()
        self.ctrl_port = _free_tcp_port()
        self.rec_dir = self.workdir / "rec"
        self.log_path = self.workdir / "baresip.log"
        self.aor = f"sip:{user}@{server.domain};transport=tls"
        self.events: list[dict[str, Any]] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._sock: socket.socket | None = None
        self._buf = b""
        self._token = 0

    # ---- files ---------------------------------------------------------------------------
    def write_config(self) -> None:
        self.rec_dir.mkdir(exist_ok=True)
        lo, hi = self.rtp_ports
        # DTLS-SRTP (mediaenc=dtls_srtp) is its own module beside srtp (RFC 5763/5764)
        dtls = "module\t\t\tdtls_srtp.so\n" if self.mediaenc == "dtls_srtp" else ""
        config = f"""\
poll_method		epoll
sip_listen		{HOST}:{self.sip_port}
sip_cafile		{self.server.ca_cert_path}
call_local_timeout	120
call_max_calls		4
audio_source		ausine,{self.tone}
audio_player		alsa,null
audio_alert		alsa,null
ausrc_srate		48000
ausrc_channels		2
audio_level		no
rtp_tos			0
rtp_ports		{lo}-{hi}
rtcp_mux		no
jitter_buffer_delay	5-10
net_interface		{HOST}
module_path		{self.module_dir}
module			g711.so
module			alsa.so
module			ausine.so
module			sndfile.so
snd_path		{self.rec_dir}
module			srtp.so
{dtls}module_tmp		uuid.so
module_tmp		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		{HOST}:{self.ctrl_port}
"""
        (self.workdir / "config").write_text(config)
        outbound = f"sip:{HOST}:{self.server.tls_port};transport=tls"
        accounts = (
            f'<{self.aor}>;auth_pass={self.password};outbound="{outbound}"'
            f";mediaenc={self.mediaenc};regint=600;answermode={self.answermode}\n"
        )
        (self.workdir / "accounts").write_text(accounts)
        (self.workdir / "contacts").write_text("")

    # ---- process -------------------------------------------------------------------------
    def start(self) -> None:
        self.write_config()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [self.binary, "-f", str(self.workdir), "-s"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
        )
        try:
            self._connect()
            self.wait_registered()
        except BaseException:
            self.stop()
            raise

    def _connect(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            self._check_alive()
            try:
                self._sock = socket.create_connection((HOST, self.ctrl_port), timeout=1)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise BaresipError(f"ctrl_tcp not listening\n{self.log_tail()}") from None
                time.sleep(0.05)

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise BaresipError(f"baresip exited ({self._proc.returncode})\n{self.log_tail()}")

    def wait_registered(self) -> None:
        """REGISTER_OK (event), or ``reginfo`` saying OK (the event may predate ctrl_tcp)."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if any(e.get("type") == "REGISTER_OK" for e in self.events):
                return
            if any(e.get("type") == "REGISTER_FAIL" for e in self.events):
                raise BaresipError(f"REGISTER failed: {self.events}\n{self.log_tail()}")
            reply = self.command("reginfo")
            if "OK" in str(reply.get("data", "")):
                return
            self._pump(0.3)
        raise BaresipError(f"not registered\n{self.log_tail()}")

    def stop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    close = stop

    # ---- ctrl_tcp --------------------------------------------------------------------------
    def _send(self, command: str, params: str = "") -> str:
        assert self._sock is not None, "not started"
        self._token += 1
        token = f"t{self._token}"
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._sock.sendall(str(len(body)).encode() + b":" + body + b",")
        return token

    def _read_one(self, timeout: float) -> dict[str, Any] | None:
        assert self._sock is not None, "not started"
        deadline = time.monotonic() + timeout
        while True:
            colon = self._buf.find(b":")
            if colon > 0:
                n = int(self._buf[:colon])
                if len(self._buf) >= colon + n + 2:
                    msg = self._buf[colon + 1 : colon + 1 + n]
                    self._buf = self._buf[colon + n + 2 :]
                    parsed: dict[str, Any] = json.loads(msg)
                    if parsed.get("event"):
                        self.events.append(parsed)
                    return parsed
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._sock.settimeout(left)
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                return None
            if not data:
                raise BaresipError(f"ctrl_tcp connection closed\n{self.log_tail()}")
            self._buf += data

    def _pump(self, timeout: float) -> None:
        """Read whatever arrives within ``timeout`` (events are kept in ``self.events``)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if self._read_one(left) is None:
                return

    def command(self, command: str, params: str = "") -> dict[str, Any]:
        """Send one command, return its reply (``ok``, ``data``); events meanwhile are kept."""
        token = self._send(command, params)
        deadline = time.monotonic() + self.timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self._read_one(left)
            if msg is not None and msg.get("response") and msg.get("token") == token:
                return msg
        raise BaresipError(f"no reply to {command!r}\n{self.log_tail()}")

    def wait_event(
        self, kind: str, timeout: float | None = None, *, since: int = 0
    ) -> dict[str, Any]:
        """The first event of type ``kind`` (index >= ``since`` in ``events``), waiting for it."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            for event in self.events[since:]:
                if event.get("type") == kind:
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [e.get("type") for e in self.events]
                raise BaresipError(f"no {kind} event (saw {seen})\n{self.log_tail()}")
            self._check_alive()
            self._read_one(min(left, 0.5))

    def dial(self, uri: str) -> dict[str, Any]:
        return self._ok(self.command("dial", uri), "dial")

    def answer(self) -> dict[str, Any]:
        return self._ok(self.command("accept"), "accept")

    def hangup(self) -> dict[str, Any]:
        return self.command("hangup")

    def _ok(self, reply: dict[str, Any], what: str) -> dict[str, Any]:
        if not reply.get("ok"):
            raise BaresipError(f"{what} failed: {reply}\n{self.log_tail()}")
        return reply

    # ---- results ---------------------------------------------------------------------------
    def received_wav(self) -> Path:
        """sndfile's dump of what baresip decoded (the newest ``*-dec.wav``)."""
        files = sorted(self.rec_dir.glob("*-dec.wav"), key=lambda p: p.stat().st_mtime)
        if not files:
            raise BaresipError(f"no *-dec.wav in {self.rec_dir}\n{self.log_tail()}")
        return files[-1]

    @staticmethod
    def read_mono(path: Path) -> tuple[bytes, int]:
        """(16-bit mono PCM of the first channel, sample rate) of a wav file."""
        with wave.open(str(path)) as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            raw = w.readframes(w.getnframes())
        assert width == 2, f"{path}: {width * 8}-bit samples"
        if channels > 1:
            step = 2 * channels
            raw = b"".join(raw[i : i + 2] for i in range(0, len(raw), step))
        return raw, rate

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])
