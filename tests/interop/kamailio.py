"""A real Kamailio (registrar + proxy, TLS, Digest) on loopback, started and stopped by the tests.

    server = KamailioServer(tmp_dir, pki, cert="good", users={"alice": "alice-secret-1"})
    server.start()            # kamailio -DD -E in the foreground, own runtime dir, log file
    server.tls_port           # 127.0.0.1:<random free port>, TLS, certificate from ``pki``
    server.restart(cert="selfsigned")   # same ports, another certificate
    server.stop()             # SIGTERM to its own process group (by PID), SIGKILL if it lingers

Nothing outside ``workdir`` is written (except a short-named socket dir under the system temp
dir when ``workdir`` is too deep for a unix socket path); nothing in /etc is read or changed;
no systemd. Works as root or as an ordinary user (all ports are unprivileged).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Literal

from tests.interop.pki import DOMAIN, CertFiles, LabPKI

__all__ = [
    "DEFAULT_USERS",
    "HOST",
    "KamailioError",
    "KamailioServer",
    "find_kamailio",
    "find_tls_module",
]

HOST = "127.0.0.1"
TEMPLATE = Path(__file__).with_name("kamailio.cfg.in")

#: The lab's users (same passwords as ../shared/peers).
DEFAULT_USERS: dict[str, str] = {
    "alice": "alice-secret-1",
    "bob": "bob-secret-2",
    "carol": "carol-secret-3",
    "dave": "dave-secret-4",
}

Algorithm = Literal["", "MD5", "SHA-256"]
ProxyRequire = Literal["check", "allow-sipsec", "ignore"]

# sanity_check flags: Kamailio's default (17895) does not look at Proxy-Require; +512 does.
_SANITY_DEFAULT = 17895
_SANITY_PROXY_REQUIRE = 512
_MAX_UNIX_PATH = 100


class KamailioError(RuntimeError):
    """Kamailio did not start (or did not stop); the message carries the log tail."""


def find_kamailio() -> str | None:
    """The kamailio binary: on PATH, or in the sbin dirs an ordinary user's PATH lacks."""
    found = shutil.which("kamailio")
    if found:
        return found
    for candidate in ("/usr/sbin/kamailio", "/usr/local/sbin/kamailio"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def find_tls_module(binary: str | None = None) -> str | None:
    """Path of Kamailio's ``tls.so`` (Debian: package kamailio-tls-modules), if installed."""
    prefixes = ["/usr", "/usr/local"]
    if binary:
        prefixes.insert(0, str(Path(binary).resolve().parent.parent))
    for prefix in prefixes:
        for pattern in ("lib/*/kamailio/modules/tls.so", "lib*/kamailio/modules/tls.so"):
            hits = glob.glob(os.path.join(prefix, pattern))
            if hits:
                return hits[0]
    return None


def _free_ports() -> tuple[int, int]:
    """(udp+tcp port, tls port): distinct, free right now on 127.0.0.1 (UDP and TCP both)."""
    held: list[socket.socket] = []
    try:
        sip_port = 0
        for _ in range(50):
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(tcp)
            tcp.bind((HOST, 0))
            port = tcp.getsockname()[1]
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                udp.bind((HOST, port))
            except OSError:
                udp.close()
                continue
            held.append(udp)
            sip_port = port
            break
        if not sip_port:
            raise KamailioError("no free UDP+TCP port pair on 127.0.0.1")
        tls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        held.append(tls)
        tls.bind((HOST, 0))
        return sip_port, tls.getsockname()[1]
    finally:
        for sock in held:
            sock.close()


def _dbtext_escape(value: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"db_text cannot hold {value!r}")
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _options_ping(tls_sock: ssl.SSLSocket, timeout: float) -> str:
    """Send OPTIONS sip:example.test on ``tls_sock``; the status line of the answer."""
    local_host, local_port = tls_sock.getsockname()[:2]
    tag = uuid.uuid4().hex[:8]
    request = (
        f"OPTIONS sip:{DOMAIN} SIP/2.0\r\n"
        f"Via: SIP/2.0/TLS {local_host}:{local_port};branch=z9hG4bK{uuid.uuid4().hex};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:ping@{DOMAIN}>;tag={tag}\r\n"
        f"To: <sip:{DOMAIN}>\r\n"
        f"Call-ID: {uuid.uuid4().hex}@harness\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    tls_sock.settimeout(timeout)
    tls_sock.sendall(request.encode())
    data = b""
    while b"\r\n" not in data:
        chunk = tls_sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


class KamailioServer:
    """One Kamailio instance: config, TLS certificate, db_text users, ports, process, log."""

    domain = DOMAIN
    host = HOST

    def __init__(
        self,
        workdir: Path,
        pki: LabPKI,
        *,
        cert: str = "good",
        users: Mapping[str, str] | None = None,
        algorithm: Algorithm = "",
        proxy_require: ProxyRequire = "check",
        require_client_cert: bool = False,
        debug: int = 2,
        binary: str | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki = pki
        self.cert_name = cert
        self.users: dict[str, str] = dict(DEFAULT_USERS if users is None else users)
        self.algorithm = algorithm
        self.proxy_require = proxy_require
        self.require_client_cert = require_client_cert
        self.debug = debug
        self.binary = binary or find_kamailio() or "kamailio"
        self.start_timeout = start_timeout
        self.udp_port, self.tls_port = _free_ports()
        self.tcp_port = self.udp_port
        self.cfg_path = self.workdir / "kamailio.cfg"
        self.tls_cfg_path = self.workdir / "tls.cfg"
        self.db_dir = self.workdir / "dbtext"
        self.log_path = self.workdir / "kamailio.log"
        self.pid_path = self.workdir / "kamailio.pid"
        self.run_dir = self.workdir / "run"
        self._short_dir: str | None = None
        if len(str(self.run_dir / "kamailio_ctl")) > _MAX_UNIX_PATH:
            self._short_dir = tempfile.mkdtemp(prefix="kam-")
            self.run_dir = Path(self._short_dir)
        self.ctl_socket = self.run_dir / "kamailio_ctl"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0
        self.starts = 0
        #: wall-clock seconds the last start() took until Kamailio answered OPTIONS over TLS
        self.last_start_seconds: float | None = None

    # --- what tests read ------------------------------------------------------------------

    @property
    def cert(self) -> CertFiles:
        """The certificate Kamailio presents (current profile)."""
        return self.pki.server(self.cert_name)

    @property
    def ca_cert_path(self) -> Path:
        return self.pki.ca_cert_path

    @property
    def server_cert_fingerprint(self) -> bytes:
        """SHA-256 over the DER of the presented certificate (32 bytes)."""
        return self.cert.fingerprint

    @property
    def server_cert_fingerprint_hex(self) -> str:
        return self.cert.fingerprint_hex

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def aor(self, user: str) -> str:
        return f"sip:{user}@{self.domain}"

    def log_text(self, *, current_run_only: bool = False) -> str:
        """Kamailio's log (stderr with -E); all runs, or only since the last start()."""
        if not self.log_path.exists():
            return ""
        data = self.log_path.read_bytes()
        if current_run_only:
            data = data[self._log_offset :]
        return data.decode(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def rpc(self, *command: str, timeout: float = 5.0) -> str:
        """Run a kamcmd RPC (e.g. ``rpc("ul.dump")``) against this instance's ctl socket."""
        kamcmd = shutil.which("kamcmd") or "/usr/sbin/kamcmd"
        result = subprocess.run(
            [kamcmd, "-s", f"unix:{self.ctl_socket}", *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise KamailioError(f"kamcmd {' '.join(command)} failed: {result.stderr.strip()}")
        return result.stdout

    def registered_contacts(self, user: str) -> list[str]:
        """Contact URIs Kamailio's usrloc holds for ``user`` (empty when not registered)."""
        try:
            out = self.rpc("ul.lookup", "location", user)
        except KamailioError as exc:
            if "404" in str(exc) or "not found" in str(exc).lower():
                return []
            raise
        return re.findall(r"^\s*Address:\s*(\S+)", out, re.M)

    # --- config ---------------------------------------------------------------------------

    def _render(self) -> None:
        if self.proxy_require == "ignore":
            sanity_flags, sanity_params = _SANITY_DEFAULT, ""
        elif self.proxy_require == "allow-sipsec":
            sanity_flags = _SANITY_DEFAULT + _SANITY_PROXY_REQUIRE
            sanity_params = 'modparam("sanity", "proxy_require", "sipsec")'
        else:
            sanity_flags, sanity_params = _SANITY_DEFAULT + _SANITY_PROXY_REQUIRE, ""
        values = {
            "DOMAIN": self.domain,
            "DEBUG": str(self.debug),
            "UDP_PORT": str(self.udp_port),
            "TCP_PORT": str(self.tcp_port),
            "TLS_PORT": str(self.tls_port),
            "CTL_SOCKET": str(self.ctl_socket),
            "TLS_CFG": str(self.tls_cfg_path),
            "DB_DIR": str(self.db_dir),
            "ALGORITHM": self.algorithm,
            "SANITY_FLAGS": str(sanity_flags),
            "SANITY_PARAMS": sanity_params,
        }
        text = TEMPLATE.read_text()
        for key, value in values.items():
            text = text.replace(f"@@{key}@@", value)
        leftover = re.findall(r"@@\w+@@", text)
        if leftover:
            raise KamailioError(f"kamailio.cfg.in: unreplaced placeholders {leftover}")
        self.cfg_path.write_text(text)

        verify = "yes" if self.require_client_cert else "no"
        self.tls_cfg_path.write_text(
            f"# generated by tests/interop/kamailio.py (certificate profile {self.cert_name})\n"
            "[server:default]\n"
            "method = TLSv1.2+\n"
            f"verify_certificate = {verify}\n"
            f"require_certificate = {verify}\n"
            f"certificate = {self.cert.cert_path}\n"
            f"private_key = {self.cert.key_path}\n"
            f"ca_list = {self.pki.ca_cert_path}\n"
            "\n"
            "[client:default]\n"
            "method = TLSv1.2+\n"
            "verify_certificate = no\n"
            "require_certificate = no\n"
        )

        self.db_dir.mkdir(exist_ok=True)
        rows = [
            f"{i}:{_dbtext_escape(user)}:{self.domain}:{_dbtext_escape(password)}::"
            for i, (user, password) in enumerate(self.users.items(), start=1)
        ]
        (self.db_dir / "subscriber").write_text(
            "id(int,auto) username(string) domain(string) password(string) "
            "ha1(string,null) ha1b(string,null) \n" + "".join(row + "\n" for row in rows)
        )
        (self.db_dir / "version").write_text(
            "id(int,auto) table_name(string) table_version(int) \n"
            "0:version:1\n0:subscriber:7\n0:location:9\n0:location_attrs:1\n"
        )

    # --- process --------------------------------------------------------------------------

    def start(self) -> None:
        """Render the config and start Kamailio; returns once it answers OPTIONS over TLS."""
        if self.running:
            raise KamailioError("already running")
        attempts = 1 if self.starts else 3  # first start: on a port race, take fresh ports
        for attempt in range(attempts):
            try:
                self._start_once()
                return
            except KamailioError as exc:
                if attempt + 1 < attempts and "Address already in use" in str(exc):
                    self.udp_port, self.tls_port = _free_ports()
                    self.tcp_port = self.udp_port
                    continue
                raise

    def _start_once(self) -> None:
        self._render()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.ctl_socket.unlink()
        self.starts += 1
        self._log = self.log_path.open("ab")
        self._log_offset = self._log.tell()
        header = f"===== harness: start #{self.starts}, certificate {self.cert_name} =====\n"
        self._log.write(header.encode())
        self._log.flush()
        args = [
            self.binary,
            "-DD",
            "-E",
            "-f",
            str(self.cfg_path),
            "-P",
            str(self.pid_path),
            "-Y",
            str(self.run_dir),
            "-m",
            "64",
            "-M",
            "8",
        ]
        began = time.monotonic()
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,  # its own process group: stop() signals exactly its tree
        )
        try:
            self._wait_ready(began)
        except BaseException:
            self.stop()
            raise
        self.last_start_seconds = time.monotonic() - began

    def _wait_ready(self, began: float) -> None:
        deadline = began + self.start_timeout
        last_error = "no attempt"
        expected = self.server_cert_fingerprint
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                time.sleep(0.05)  # let the last log lines land
                raise KamailioError(
                    f"kamailio exited with status {self._proc.returncode} during start "
                    f"(cfg {self.cfg_path}); log tail:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise KamailioError(
                    f"kamailio did not answer on tls:{HOST}:{self.tls_port} within "
                    f"{self.start_timeout} s (last: {last_error}); log tail:\n{self.log_tail()}"
                )
            try:
                status = self._probe(expected)
            except (OSError, ssl.SSLError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.05)
                continue
            if status.startswith("SIP/2.0 200"):
                return
            last_error = f"OPTIONS answered {status!r}"
            time.sleep(0.05)

    def _probe(self, expected_fingerprint: bytes) -> str:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection((HOST, self.tls_port), timeout=1.0) as raw,
            ctx.wrap_socket(raw, server_hostname=self.domain) as tls,
        ):
            der = tls.getpeercert(binary_form=True) or b""
            if hashlib.sha256(der).digest() != expected_fingerprint:
                raise KamailioError(
                    f"tls:{HOST}:{self.tls_port} presents a certificate that is not "
                    f"{self.cert_name!r}: another server on this port?"
                )
            return _options_ping(tls, timeout=1.0)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM Kamailio's process group (it is the leader), then SIGKILL; idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout)
            # workers of a main process that died first: same group, still ours
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()

    def restart(self, *, cert: str | None = None) -> None:
        """Stop, then start again on the same ports (optionally with another certificate)."""
        self.stop()
        if cert is not None:
            self.cert_name = cert
        self.start()

    def close(self) -> None:
        """stop() and remove the short socket dir, if one was needed."""
        self.stop()
        if self._short_dir is not None:
            shutil.rmtree(self._short_dir, ignore_errors=True)
            self._short_dir = None

    def __enter__(self) -> KamailioServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<KamailioServer pid={self.pid} tls={HOST}:{self.tls_port} "
            f"tcp/udp={HOST}:{self.tcp_port} cert={self.cert_name}>"
        )
