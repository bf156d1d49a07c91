"""Cold TLS registration and refresh in round trips (``python benchmarks/bench_register.py``).

The target (docs: ARCHITECTURE.md, round-trip floors): a cold registration costs 4 RTT
(TCP 1 + TLS 1.3 1 + REGISTER/401 1 + REGISTER/200 1) and a refresh on the open connection
with the cached nonce 1 RTT. This kernel has no netem, so every client reaches its registrar
through :mod:`benchmarks.delay_relay` on 127.0.0.1, a one-way delay of D ms each way
(RTT = 2 D). The relay models the TCP handshake's round trip (no client byte reaches the
server before SYN + SYN/ACK would have); ACK-clocked stalls (Nagle) are not reproduced.

Registrars: ours (:func:`softphone.server.registrar.running_registrar`, in this process) and a
real Kamailio when installed (``tests/interop/kamailio.py``, certificates from
``tests/interop/pki.py``, Digest MD5 as Kamailio does by default).

Clients, and what "cold" and "refresh" mean for each:

* ours: :class:`~softphone.ua.useragent.UserAgent`; cold = ``register()`` called → the
  ``Registered`` event; refresh = ``ua.refresh()`` on the open flow, start → end.
* baresip (when on PATH): generated config, driven over ``ctrl_tcp``: ``uanew <account>``
  adds and registers the account; cold = the relay accepted its connection → the relay
  delivered the server's last flight before baresip reported ``REGISTER_OK``. No refresh:
  baresip 1.0.0 has no re-register command and its own timer waits for 90 % of the interval.
* linphonec (when on PATH): generated linphonerc; cold = accept → the last server flight
  before it printed "Registration ... successful"; no refresh (no command for it either).

Two more columns, read from the bytes at the relay: ``TLS``, the version in the server's
ServerHello (a TLS 1.2 fallback costs a round trip), and ``split``, how many client flights
came in more than one write (each costs a round trip over a real link when Nagle is on; the
relay's kernel ACKs at once, so that stall does not show in the times here).

Each figure is the median of several repetitions, divided by the RTT. Prints a table; never
asserts a time. Every process it starts is stopped by its PID before it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography import x509

from benchmarks.delay_relay import DelayRelay, RelayedConnection
from softphone.server.config import ListenAddress, RegistrarConfig, load_identity
from softphone.server.registrar import running_registrar
from softphone.ua.account import Account, ResolveEntry
from softphone.ua.events import Event, Registered
from softphone.ua.useragent import UserAgent
from tests.interop.kamailio import KamailioError, KamailioServer, find_kamailio, find_tls_module
from tests.interop.pki import DOMAIN, LabPKI

USER, PASSWORD = "alice", "alice-secret-1"
DELAYS_MS = (25.0, 50.0)  # one-way; RTT 50 and 100 ms
REPS_OURS = 5
REPS_PEER = 3
TARGET = (4.0, 1.0)
WAIT = 10.0
NOT_INSTALLED = "not installed (make test installs it as root once the calls issue lands)"


@dataclass
class Row:
    client: str
    server: str
    delay_ms: float
    cold: list[float] = field(default_factory=list)  # seconds
    refresh: list[float] = field(default_factory=list)
    counted: tuple[int, int] | None = None  # the engine's own Binding.round_trips
    tls: str = "-"  # the version the server chose (its ServerHello, read at the relay)
    split: int = 0  # client flights sent in more than one write (see split_flights)
    note: str = ""

    def observe(self, conn: RelayedConnection, until: float) -> None:
        self.tls = tls_version(bytes(conn.data["s2c"]))
        self.split = max(self.split, split_flights(conn, until))

    @property
    def rtt(self) -> float:
        return 2 * self.delay_ms / 1000.0


def tls_version(server_bytes: bytes) -> str:
    """The TLS version in the server's first record, a ServerHello (RFC 8446 §4.1.3: TLS 1.3
    says so in supported_versions, the legacy field stays 1.2)."""
    names = {0x0304: "1.3", 0x0303: "1.2", 0x0302: "1.1", 0x0301: "1.0"}
    if len(server_bytes) < 9 or server_bytes[0] != 22 or server_bytes[5] != 2:
        return "?"
    hello = server_bytes[9 : 5 + int.from_bytes(server_bytes[3:5], "big")]
    version = int.from_bytes(hello[0:2], "big")
    pos = 2 + 32
    if pos >= len(hello):
        return "?"
    pos += 1 + hello[pos] + 2 + 1  # session id, cipher suite, compression method
    end = pos + 2 + int.from_bytes(hello[pos : pos + 2], "big")
    pos += 2
    while pos + 4 <= min(end, len(hello)):
        kind = int.from_bytes(hello[pos : pos + 2], "big")
        size = int.from_bytes(hello[pos + 2 : pos + 4], "big")
        if kind == 43 and size == 2:  # supported_versions
            version = int.from_bytes(hello[pos + 4 : pos + 6], "big")
        pos += 4 + size
    return names.get(version, hex(version))


def split_flights(conn: RelayedConnection, until: float) -> int:
    """Client flights (what it sent between two answers) that reached the relay as more than
    one chunk, up to ``until``. Over a real link each costs a round trip when the client
    leaves Nagle's algorithm on (the second write waits for the ACK of the first); the relay's
    kernel ACKs at once, so here it costs nothing: this column is the evidence."""
    split = chunks = 0
    for t, direction, _ in conn.trace:
        if t > until:
            break
        if direction == "c2s":
            chunks += 1
        elif direction == "s2c":
            split += chunks > 1
            chunks = 0
    return split + (chunks > 1)


@dataclass
class Server:
    name: str
    port: int  # TLS, on 127.0.0.1
    ca_file: Path


# ------------------------------------------------------------------------------ our client


async def measure_ours(server: Server, delay_ms: float, reps: int, tmp: Path) -> Row:
    row = Row("softphone", server.name, delay_ms)
    anchors = tuple(x509.load_pem_x509_certificates(server.ca_file.read_bytes()))
    async with DelayRelay("127.0.0.1", server.port, delay_ms) as relay:
        account = Account(
            aor=f"sips:{USER}@{DOMAIN}",
            registrar=f"sips:{DOMAIN}:{relay.port}",
            resolve=(ResolveEntry(DOMAIN, relay.port, "127.0.0.1"),),
            ca_file=server.ca_file,
        )
        for _ in range(reps):
            registered: list[float] = []

            def on_event(event: Event, seen: list[float] = registered) -> None:
                if isinstance(event, Registered):
                    seen.append(time.monotonic())

            ua = UserAgent(
                account,
                pin_store_path=tmp / "pins.json",
                password=PASSWORD,
                anchors=anchors,
                on_event=on_event,
                refresh_after=lambda _: 3600.0,  # refreshes are ours to start here
            )
            try:
                async with asyncio.timeout(WAIT):
                    began = time.monotonic()
                    cold = await ua.register()
                    row.cold.append(registered[0] - began)
                    row.observe(relay.connections[-1], registered[0])
                    began = time.monotonic()
                    warm = await ua.refresh()
                    row.refresh.append(time.monotonic() - began)
                row.counted = (cold.round_trips, warm.round_trips)
            except (Exception, TimeoutError) as exc:  # noqa: BLE001  # reported, not fatal
                row.note = f"failed: {exc!r}"[:120]
                break
            finally:
                with contextlib.suppress(Exception):
                    await ua.close()
    return row


# ------------------------------------------------------------------------------ peers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def last_server_flight(relay: DelayRelay, index: int, before: float) -> float | None:
    """When the relay delivered its last server→client chunk on connection ``index`` before
    ``before``: the flight that carried the 200 the client then reported."""
    if index >= len(relay.connections):
        return None
    times = [t for t, n in relay.connections[index].chunks("s2c") if t <= before]
    return times[-1] if times else None


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM its process group (it leads one), then SIGKILL; by PID, never by name."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 3.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class Netstrings:
    """baresip's ctrl_tcp: netstring-framed JSON both ways."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def send(self, command: str, params: str = "") -> None:
        body = json.dumps({"command": command, "params": params, "token": "b"}).encode()
        self.writer.write(str(len(body)).encode() + b":" + body + b",")

    async def next(self) -> dict[str, object]:
        size = int((await self.reader.readuntil(b":"))[:-1])
        body = await self.reader.readexactly(size + 1)
        value = json.loads(body[:-1])
        return value if isinstance(value, dict) else {}

    async def until_event(self, kind: str, fail: str) -> float:
        while True:
            message = await self.next()
            if message.get("event") and message.get("type") == kind:
                return time.monotonic()
            if message.get("event") and message.get("type") == fail:
                raise RuntimeError(f"{fail}: {message.get('param', '')}")


def baresip_module_dir(binary: str) -> Path:
    return Path(binary).resolve().parent.parent / "lib" / "baresip" / "modules"


async def baresip_once(binary: str, server: Server, relay: DelayRelay, tmp: Path, row: Row) -> None:
    home = Path(tempfile.mkdtemp(prefix="baresip-", dir=tmp))
    ctrl_port, sip_port = free_port(), free_port()
    modules = baresip_module_dir(binary)
    (home / "config").write_text(
        "poll_method\tepoll\n"
        f"sip_listen\t127.0.0.1:{sip_port}\n"
        f"sip_cafile\t{server.ca_file}\n"
        f"module_path\t{modules}\n"
        "module_app\taccount.so\n"
        "module_app\tmenu.so\n"
        "module_app\tctrl_tcp.so\n"
        f"ctrl_tcp_listen\t127.0.0.1:{ctrl_port}\n"
        "audio_player\tnone\naudio_source\tnone\naudio_alert\tnone\n"
    )
    # no account at start: ``uanew`` adds (and registers) it once ctrl_tcp is ours
    (home / "accounts").write_text("")
    account = (
        f"<sip:{USER}@{DOMAIN};transport=tls>;auth_pass={PASSWORD};"
        f'outbound="sip:127.0.0.1:{relay.port};transport=tls";regint=600'
    )
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-f",
        str(home),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=(home / "out.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(WAIT):
            while True:
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", ctrl_port)
                    break
                except OSError:
                    if proc.returncode is not None:
                        raise RuntimeError("baresip exited") from None
                    await asyncio.sleep(0.02)
            ctrl = Netstrings(reader, writer)
            index = len(relay.connections)
            ctrl.send("uanew", account)
            seen = await ctrl.until_event("REGISTER_OK", "REGISTER_FAIL")
            accepted = relay.connections[index].accepted_at
            end = last_server_flight(relay, index, seen)
            row.cold.append((end or seen) - accepted)
            row.observe(relay.connections[index], end or seen)
    finally:
        if writer is not None:
            writer.close()
        await stop_process(proc)


def linphonerc(home: Path, server: Server, relay: DelayRelay) -> str:
    return (
        "[sip]\n"
        "sip_port=0\nsip_tcp_port=0\n"
        f"sip_tls_port={free_port()}\n"
        "bind_address=127.0.0.1\n"
        "default_proxy=0\n"
        "verify_server_certs=1\nverify_server_cn=0\n"
        f"root_ca={server.ca_file}\n"
        "register_only_when_network_is_up=0\nauto_net_state_mon=0\nping_with_options=0\n"
        "use_ipv6=0\nguess_hostname=0\ndns_srv_enabled=0\nkeepalive_period=0\n"
        "[net]\nforce_ice_disablement=1\n"
        "[sound]\necho_cancellation=0\n"
        "[video]\ncapture=0\ndisplay=0\n"
        f"[storage]\nuri={home}/linphone.db\n"
        "[proxy_0]\n"
        f"reg_proxy=<sip:127.0.0.1:{relay.port};transport=tls>\n"
        f"reg_identity=sips:{USER}@{DOMAIN}\n"
        "reg_expires=600\nreg_sendregister=1\npublish=0\n"
        "[auth_info_0]\n"
        f"username={USER}\npasswd={PASSWORD}\nrealm={DOMAIN}\ndomain={DOMAIN}\n"
    )


async def linphonec_once(
    binary: str, server: Server, relay: DelayRelay, tmp: Path, row: Row
) -> None:
    home = Path(tempfile.mkdtemp(prefix="linphonec-", dir=tmp))
    (home / "linphonerc").write_text(linphonerc(home, server, relay))
    log = home / "linphone.log"
    # linphonec's own prints are held in a buffer when stdout is not a terminal: watch its log
    # for the registration state instead (as tests/interop/linphone.py does).
    argv = [binary, "-c", str(home / "linphonerc"), "-d", "6", "-l", str(log)]
    index = len(relay.connections)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,  # kept open: linphonec quits at EOF
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "HOME": str(home)},
    )
    try:
        async with asyncio.timeout(WAIT):
            while True:
                text = log.read_text(errors="replace") if log.exists() else ""
                if "LinphoneRegistrationOk" in text or "LinphoneRegistrationFailed" in text:
                    seen = time.monotonic()
                    break
                if proc.returncode is not None:
                    raise RuntimeError("linphonec exited before registering")
                await asyncio.sleep(0.005)
        if "LinphoneRegistrationFailed" in text:
            raise RuntimeError("linphonec: registration failed (see its log)")
        accepted = relay.connections[index].accepted_at
        end = last_server_flight(relay, index, seen)
        row.cold.append((end or seen) - accepted)
        row.observe(relay.connections[index], end or seen)
    finally:
        await stop_process(proc)


async def measure_peer(
    name: str,
    *,
    once: Callable[[str, Server, DelayRelay, Path, Row], Awaitable[None]],
    server: Server,
    delay_ms: float,
    reps: int,
    tmp: Path,
) -> Row:
    row = Row(name, server.name, delay_ms)
    binary = shutil.which(name)
    if binary is None:
        row.note = NOT_INSTALLED
        return row
    async with DelayRelay("127.0.0.1", server.port, delay_ms) as relay:
        for _ in range(reps):
            try:
                await once(binary, server, relay, tmp, row)
            except (Exception, TimeoutError) as exc:  # noqa: BLE001  # reported, not fatal
                row.note = f"failed: {exc!r}"[:120]
                break
    return row


# ------------------------------------------------------------------------------ servers


def start_kamailio(pki: LabPKI, tmp: Path) -> tuple[KamailioServer | None, str]:
    binary = find_kamailio()
    if binary is None:
        return None, "kamailio: not installed (apt-get install kamailio kamailio-tls-modules)"
    if find_tls_module(binary) is None:
        return None, "kamailio: no TLS module (apt-get install kamailio-tls-modules)"
    server = KamailioServer(tmp / "kamailio", pki, users={USER: PASSWORD}, binary=binary)
    try:
        server.start()
    except KamailioError as exc:
        server.close()
        return None, f"kamailio: failed to start: {str(exc).splitlines()[0]}"
    return server, ""


def fmt(values: list[float], rtt: float) -> tuple[str, str]:
    if not values:
        return "-", "-"
    median = statistics.median(values)
    return f"{median * 1000:.1f}", f"{median / rtt:.2f}"


def print_table(rows: list[Row]) -> None:
    head = (
        f"  {'client':<10} {'registrar':<9} {'RTT ms':>6} {'cold ms':>8} {'cold RTT':>8}"
        f" {'refresh ms':>10} {'refr RTT':>8}  target  TLS  split"
    )
    print(head)
    for row in rows:
        cold_ms, cold_rtt = fmt(row.cold, row.rtt)
        ref_ms, ref_rtt = fmt(row.refresh, row.rtt)
        line = (
            f"  {row.client:<10} {row.server:<9} {row.rtt * 1000:>6.0f} {cold_ms:>8} {cold_rtt:>8}"
            f" {ref_ms:>10} {ref_rtt:>8}  {TARGET[0]:.0f} / {TARGET[1]:.0f}"
            f"   {row.tls:>3}  {row.split if row.cold else '-':>5}"
        )
        extra = []
        if row.cold:
            extra.append(f"n={len(row.cold)}")
        if row.counted:
            extra.append(f"engine counted {row.counted[0]} / {row.counted[1]}")
        if row.cold and not row.refresh and not row.note:
            extra.append("no refresh command")
        if row.note:
            extra.append(row.note)
        print(line + ("   " + "; ".join(extra) if extra else ""))


async def run(pki: LabPKI, kamailio: KamailioServer | None, tmp: Path) -> list[Row]:
    chain, key = load_identity(pki.server("good").cert_path, pki.server("good").key_path)
    config = RegistrarConfig(
        domain=DOMAIN,
        users={USER: PASSWORD},
        listen=(ListenAddress("127.0.0.1", 0, "tls"),),
        certificate_chain=chain,
        private_key=key,
    )
    rows: list[Row] = []
    async with running_registrar(config) as registrar:
        servers = [Server("ours", registrar.tls_port, pki.ca_cert_path)]
        if kamailio is not None:
            servers.append(Server("kamailio", kamailio.tls_port, pki.ca_cert_path))
        for delay_ms in DELAYS_MS:
            for server in servers:
                rows.append(await measure_ours(server, delay_ms, REPS_OURS, tmp))
            # the peers register with Kamailio where there is one (their usual registrar)
            peer_server = servers[-1]
            rows.append(
                await measure_peer(
                    "baresip",
                    once=baresip_once,
                    server=peer_server,
                    delay_ms=delay_ms,
                    reps=REPS_PEER,
                    tmp=tmp,
                )
            )
            rows.append(
                await measure_peer(
                    "linphonec",
                    once=linphonec_once,
                    server=peer_server,
                    delay_ms=delay_ms,
                    reps=REPS_PEER,
                    tmp=tmp,
                )
            )
    return rows


def main() -> None:
    print(
        "TLS registration through a delay relay on 127.0.0.1 (one-way delay D, RTT 2D);"
        " medians; RTT = ms / RTT"
    )
    with tempfile.TemporaryDirectory(prefix="bench-register-") as name:
        tmp = Path(name)
        pki = LabPKI.create(tmp / "pki")
        kamailio, why = start_kamailio(pki, tmp)
        if why:
            print(f"  {why}")
        try:
            rows = asyncio.run(run(pki, kamailio, tmp))
        finally:
            if kamailio is not None:
                kamailio.close()
    print_table(rows)
    print(
        "  cold = register() -> Registered (ours) or relay accept -> last server flight before"
        " the peer reported it; refresh on the open connection\n"
        "  split = client flights written in more than one write: over a real link each adds"
        " an RTT when Nagle is on (the relay ACKs at once, so not in these times); through"
        " ../shared/peers/tools/delayline.py baresip and linphone took 5 RTT cold"
    )


if __name__ == "__main__":
    main()
