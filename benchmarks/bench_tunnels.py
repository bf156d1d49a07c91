"""The sipsec relay under load (``python benchmarks/bench_tunnels.py``): draft-gurbani-sip-sipsec-01
§6.6 tunnels through one proxy.

Setup, all on 127.0.0.1 with real TLS on every hop:

* the proxy: ``softphone proxy`` in its own process (so its RSS is its own), domain
  ``bench.test``, ``--route callee.test=...`` to the callee side, ``--peer-ca`` the bench CA;
* the callee side: one TLS server in this process presenting ``callee.test``; each connection
  the proxy opens gets the CONNECT, answers 200, then echoes every byte;
* the callers: one TLS connection to the proxy each, a CONNECT with ``Proxy-Require: sipsec``,
  then the 200; from then on the proxy splices the two connections.

Figures: the proxy's RSS growth per tunnel with 1,000 idle tunnels open (each tunnel is two
TLS connections in the proxy: caller side and callee side), and, with 50 tunnels echoing
concurrently, the round-trip time of a 200-byte message through the tunnel against the same
echo over a direct TLS connection to the callee server (the difference is what the relay adds
per round trip, i.e. two relayed messages). Prints; never asserts a time. The proxy process is
stopped by its PID before returning.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import serialization

from softphone.sip.dialog import new_call_id, new_tag
from softphone.sip.framing import StreamFramer
from softphone.sip.message import Headers, Request, Response
from softphone.sip.transaction_layer import new_branch
from softphone.sip.uri import parse_uri
from softphone.transport.stream import TLSStream, open_tls_connection, start_tls_server
from softphone.transport.tls import TLSConfig
from tests.transport.certs import Identity, issue, make_ca

IDLE_TUNNELS = 1000
ACTIVE_TUNNELS = 50
ECHOES = 20
MESSAGE = b"x" * 200
ROOT = Path(__file__).resolve().parent.parent


def _pem(identity: Identity, directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    cert.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in identity.chain))
    key.write_bytes(
        identity.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _connect_request() -> bytes:
    headers = Headers()
    headers.add("Via", f"SIP/2.0/TLS caller.invalid;branch={new_branch()}")
    headers.add("Max-Forwards", "70")
    headers.add("From", f"<sip:caller@bench.test>;tag={new_tag()}")
    headers.add("To", "<sip:callee@callee.test>")
    headers.add("Call-ID", new_call_id("bench.invalid"))
    headers.add("CSeq", "1 CONNECT")
    headers.add("Require", "sipsec")
    headers.add("Proxy-Require", "sipsec")
    return bytes(Request("CONNECT", parse_uri("sip:callee@callee.test"), headers))


async def _callee(stream: TLSStream) -> None:
    """The callee side: answer the CONNECT 200, then echo until EOF."""
    framer = StreamFramer()
    messages: list[object] = []
    while not messages:
        data = await stream.read()
        if not data:
            return
        messages = list(framer.feed(data))
    request = messages[0]
    assert isinstance(request, Request)
    stream.write(bytes(Response.for_request(request, 200, to_tag=new_tag())))
    while data := await stream.read():
        stream.write(data)


async def _open_tunnel(port: int) -> TLSStream:
    stream = await open_tls_connection(
        "127.0.0.1", port, TLSConfig.client(server_name="bench.test"), timeout=60
    )
    stream.write(_connect_request())
    framer = StreamFramer()
    while True:
        data = await asyncio.wait_for(stream.read(), 60)
        if not data:
            raise ConnectionError("proxy closed before the 200")
        for message in framer.feed(data):
            if isinstance(message, Response) and message.status_code >= 200:
                if message.status_code != 200:
                    raise ConnectionError(f"CONNECT got {message.status_code}")
                return stream


async def _echo_times(stream: TLSStream) -> list[float]:
    times = []
    for _ in range(ECHOES):
        start = time.perf_counter()
        stream.write(MESSAGE)
        got = b""
        while len(got) < len(MESSAGE):
            got += await asyncio.wait_for(stream.read(), 30)
        times.append(time.perf_counter() - start)
    return times


async def _direct(port: int) -> TLSStream:
    stream = await open_tls_connection(
        "127.0.0.1", port, TLSConfig.client(server_name="callee.test"), timeout=60
    )
    stream.write(_connect_request())
    framer = StreamFramer()
    while not framer.feed(await stream.read()):
        pass
    return stream


async def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 8192), hard), hard))
    ca = make_ca("Bench CA")
    proxy_id, callee_id = issue(ca, "bench.test"), issue(ca, "callee.test")
    callee_tls = TLSConfig.server(callee_id.chain, callee_id.key)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        cert, key = _pem(proxy_id, directory, "proxy")
        ca_file = directory / "ca.pem"
        ca_file.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
        users = directory / "users.toml"
        users.write_text('[users]\ncaller = "x"\n', encoding="utf-8")
        async with await start_tls_server("127.0.0.1", 0, callee_tls, _callee) as callee:
            argv = [
                "--domain", "bench.test", "--listen", "127.0.0.1:0", "--cert", str(cert),
                "--key", str(key), "--users", str(users), "--peer-ca", str(ca_file),
                "--route", f"callee.test=127.0.0.1:{callee.port}", "--no-authenticate-outgoing",
            ]  # fmt: skip
            code = f"import sys; from softphone.server.cli import main; sys.exit(main({argv!r}))"
            process = subprocess.Popen(
                [sys.executable, "-c", code],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            try:
                assert process.stdout is not None
                line = await asyncio.to_thread(process.stdout.readline)
                port = int(json.loads(line)["tls_port"])
                await _run(process.pid, port, callee.port)
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(process.wait, 10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


async def _run(pid: int, port: int, callee_port: int) -> None:
    # Warm up (first TLS handshakes, imports) so that the RSS baseline is the steady state.
    warm = [await _open_tunnel(port) for _ in range(5)]
    for stream in warm:
        stream.close()
    await asyncio.sleep(0.5)
    before = _rss_kib(pid)
    start = time.perf_counter()
    idle: list[TLSStream] = []
    for batch in range(0, IDLE_TUNNELS, 50):
        idle += await asyncio.gather(*(_open_tunnel(port) for _ in range(batch, batch + 50)))
    setup = time.perf_counter() - start
    await asyncio.sleep(0.5)
    after = _rss_kib(pid)
    per_tunnel = (after - before) / IDLE_TUNNELS
    print(f"proxy pid {pid}: {IDLE_TUNNELS} idle tunnels opened in {setup:.1f} s")
    print(
        f"proxy RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB: "
        f"{per_tunnel:.1f} KiB per tunnel (two TLS connections each)"
    )

    active = await asyncio.gather(*(_open_tunnel(port) for _ in range(ACTIVE_TUNNELS)))
    direct = await asyncio.gather(*(_direct(callee_port) for _ in range(ACTIVE_TUNNELS)))
    for label, streams in (("direct", direct), ("tunnel", active), ("direct", direct)):
        results = await asyncio.gather(*(_echo_times(s) for s in streams))
        flat = sorted(t for r in results for t in r)
        median = statistics.median(flat) * 1e3
        p90 = flat[int(len(flat) * 0.9)] * 1e3
        print(
            f"{label:6} echo of {len(MESSAGE)} B, {len(streams)} concurrent: "
            f"median {median:.2f} ms, p90 {p90:.2f} ms"
        )
        if label == "tunnel":
            tunnel_median = median
        else:
            direct_median = median
    added = tunnel_median - direct_median
    print(
        f"added by the relay under load: {added:.2f} ms per round trip "
        f"(~{added / 2:.2f} ms per relayed message), with {IDLE_TUNNELS} idle tunnels open"
    )
    # One stream alone (no queueing behind the other 49): the relay's own cost.
    alone = {}
    for label, stream in (("direct", direct[0]), ("tunnel", active[0]), ("direct", direct[0])):
        alone[label] = statistics.median(await _echo_times(stream)) * 1e3
    added = alone["tunnel"] - alone["direct"]
    print(
        f"one stream alone: direct {alone['direct']:.2f} ms, tunnel {alone['tunnel']:.2f} ms "
        f"per round trip: {added:.2f} ms added (~{added / 2:.2f} ms per relayed message)"
    )
    for stream in [*idle, *active, *direct]:
        with contextlib.suppress(Exception):
            stream.close()


if __name__ == "__main__":
    asyncio.run(main())
