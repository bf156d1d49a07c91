"""A real linphonec (linphone-cli, liblinphone 5.1) on 127.0.0.1 as a SIP peer, driven by a FIFO.

    peer = LinphonePeer(tmp_dir, server, user="dave", password="dave-secret-4", tone=700)
    peer.start()                     # linphonec -c <rc> -a; waits for RegistrationOk in its log
    peer.record(tmp_dir / "rx.wav")  # what linphone hears goes there (closed when the call ends)
    peer.command("call sips:alice@example.test")
    peer.wait_call_state("StreamsRunning")
    peer.command("terminate"); peer.wait_call_state("Released")
    peer.stop()                      # "quit", then SIGTERM/SIGKILL to its own process group (PID)

Recipe from ../shared/peers (the lab): stdin is a FIFO opened read-write (``0<>cmd.fifo``,
never EOF), the "sound card" is wav files (``soundcard use files``, ``play``, ``record``),
SDES-SRTP mandatory, the server certificate verified against our CA *and* by name.
linphone resolves names itself (no DNS for example.test here), so the proxy is reached by IP
and the server must present a certificate naming 127.0.0.1 (``LabPKI`` profile ``good-ip``).
HOME is the work dir, so nothing of the user's linphone state is read or written.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
import wave
from pathlib import Path
from typing import IO

from tests.interop.kamailio import HOST, KamailioServer

__all__ = ["LinphoneError", "LinphonePeer", "find_linphonec", "write_tone_wav"]


class LinphoneError(RuntimeError):
    """linphonec did not start, register or call; the message carries the output tail."""


def find_linphonec() -> str | None:
    return shutil.which("linphonec")


def write_tone_wav(path: Path, freq: float, seconds: float = 60.0, rate: int = 8000) -> Path:
    """A 16-bit mono sine at ``freq`` Hz, half scale."""
    n = int(seconds * rate)
    pcm = struct.pack(
        f"<{n}h", *(int(16000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(n))
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return path


def _port_free(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _free_range(width: int) -> tuple[int, int]:
    for _ in range(100):
        base = _free_port() & ~1
        if base + width < 65000 and all(_port_free(p) for p in range(base, base + width)):
            return base, base + width - 1
    raise LinphoneError("no free port range for linphonec")


class LinphonePeer:
    """One linphonec process with one account, its rc file, FIFO, output and log."""

    def __init__(
        self,
        workdir: Path,
        server: KamailioServer,
        *,
        user: str = "dave",
        password: str = "dave-secret-4",
        tone: int = 700,
        media_encryption: str = "srtp",
        auto_answer: bool = True,
        binary: str | None = None,
        timeout: float = 20.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.server = server
        self.user = user
        self.password = password
        self.tone = tone
        self.media_encryption = media_encryption
        self.auto_answer = auto_answer
        self.binary = binary or find_linphonec() or "linphonec"
        self.timeout = timeout
        self.sip_tls_port = _free_range(1)[0]
        self.rtp_ports = _free_range(20)
        self.vrtp_ports = _free_range(20)
        self.rc_path = self.workdir / "linphonerc"
        self.fifo_path = self.workdir / "cmd.fifo"
        self.out_path = self.workdir / "linphonec.out"
        self.log_path = self.workdir / "linphone.log"
        self.play_path = self.workdir / f"play_{tone}.wav"
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None
        self._fifo_fd: int | None = None

    # ---- files ---------------------------------------------------------------------------
    def write_config(self) -> None:
        domain = self.server.domain
        proxy = f"sip:{HOST}:{self.server.tls_port};transport=tls"
        self.rc_path.write_text(
            f"""\
[sip]
sip_port=0
sip_tcp_port=0
sip_tls_port={self.sip_tls_port}
bind_address={HOST}
default_proxy=0
verify_server_certs=1
verify_server_cn=1
root_ca={self.server.ca_cert_path}
media_encryption={self.media_encryption}
media_encryption_mandatory=1
register_only_when_network_is_up=0
auto_net_state_mon=0
ping_with_options=0
use_ipv6=0
guess_hostname=0
dns_srv_enabled=0
keepalive_period=0
contact=sip:{self.user}@{HOST}

[net]
mtu=1300
force_ice_disablement=1

[rtp]
audio_rtp_port={self.rtp_ports[0]}-{self.rtp_ports[1]}
video_rtp_port={self.vrtp_ports[0]}-{self.vrtp_ports[1]}
rtcp_mux=0

[sound]
echocancellation=0

[video]
capture=0
display=0
automatically_initiate=0
automatically_accept=0

[misc]
uuid=00000000-0000-4000-8000-00000000da7e

[storage]
uri={self.workdir}/linphone.db

[proxy_0]
reg_proxy=<{proxy}>
reg_route=<{proxy};lr>
reg_identity=sips:{self.user}@{domain}
reg_expires=600
reg_sendregister=1
publish=0
dial_escape_plus=0
avpf=0

[auth_info_0]
username={self.user}
passwd={self.password}
realm={domain}
domain={domain}
"""
        )

    # ---- process -------------------------------------------------------------------------
    def start(self) -> None:
        self.write_config()
        write_tone_wav(self.play_path, self.tone)
        with contextlib.suppress(FileNotFoundError):
            self.fifo_path.unlink()
        os.mkfifo(self.fifo_path)
        # read-write: the open does not block and linphonec never sees EOF on its stdin
        self._fifo_fd = os.open(self.fifo_path, os.O_RDWR)
        self._out = open(self.out_path, "ab")  # noqa: SIM115 - closed in stop()
        args = [self.binary, "-c", str(self.rc_path), "-d", "6", "-l", str(self.log_path)]
        if self.auto_answer:
            args.append("-a")
        env = dict(os.environ, HOME=str(self.workdir), XDG_DATA_HOME=str(self.workdir / "data"))
        env["XDG_CONFIG_HOME"] = str(self.workdir / "config")
        self._proc = subprocess.Popen(
            args,
            stdin=self._fifo_fd,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=env,
            start_new_session=True,
        )
        try:
            self.wait_log(
                r"to \[LinphoneRegistrationOk\]", fail_on=r"to \[LinphoneRegistrationFailed\]"
            )
            self.command("soundcard use files")
            self.command(f"play {self.play_path}")
        except BaseException:
            self.stop()
            raise

    def command(self, line: str) -> None:
        """One linphonec command line, written to its FIFO."""
        self._check_alive()
        assert self._fifo_fd is not None, "not started"
        os.write(self._fifo_fd, line.encode() + b"\n")
        time.sleep(0.2)  # linphonec polls stdin; keep commands apart

    def record(self, path: Path) -> None:
        self.command(f"record {path}")

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise LinphoneError(
                f"linphonec exited ({self._proc.returncode})\n{self.out_tail()}\n{self.log_tail()}"
            )

    def wait_log(
        self,
        pattern: str,
        timeout: float | None = None,
        *,
        since: int = 0,
        fail_on: str | None = None,
    ) -> str:
        """The first line of linphone's log (from char ``since`` on) matching regex ``pattern``.

        linphonec's stdout is block-buffered into a file, so states are read from its log
        (``-d 6 -l``), e.g. ``CallSession [..] moving from state .. to LinphoneCallStreamsRunning``.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        want = re.compile(pattern)
        bad = re.compile(fail_on) if fail_on else None
        while True:
            for line in self.log_text()[since:].splitlines():
                if bad is not None and bad.search(line):
                    raise LinphoneError(f"{line!r}\n{self.log_tail()}")
                if want.search(line):
                    return line
            if time.monotonic() > deadline:
                raise LinphoneError(f"no {pattern!r} in linphone's log\n{self.log_tail()}")
            self._check_alive()
            time.sleep(0.1)

    def wait_call_state(self, state: str, timeout: float | None = None, *, since: int = 0) -> str:
        """Wait for a call to move to ``LinphoneCall<state>`` (e.g. ``StreamsRunning``)."""
        return self.wait_log(rf"CallSession \[.*to LinphoneCall{state}\b", timeout, since=since)

    def log_offset(self) -> int:
        return len(self.log_text())

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            if self._fifo_fd is not None:
                with contextlib.suppress(OSError):
                    os.write(self._fifo_fd, b"quit\n")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
        if self._fifo_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fifo_fd)
            self._fifo_fd = None
        if self._out is not None:
            self._out.close()
            self._out = None

    close = stop

    # ---- results ---------------------------------------------------------------------------
    def out_text(self) -> str:
        try:
            return self.out_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def out_tail(self, lines: int = 40) -> str:
        return "\n".join(self.out_text().splitlines()[-lines:])

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])
