"""Packet capture on ``lo`` with the real dumpcap, read back with the real tshark, and the
checks that turn a capture into evidence: no plaintext SIP, and media that is SRTP.

    with Capture(tmp / "sip.pcapng", f"tcp port {server.tls_port}") as cap:
        ...                                   # the call
    packets = cap.packets()                   # tshark -T fields: ports and payload bytes
    assert plaintext_sip(packets) == []       # no "INVITE sip", "m=audio", "a=crypto" ...
    assert tls_record_types(stream_bytes(packets, a, b))   # every byte is a TLS record
    verdict = check_srtp(rtp_payloads, suite, key_salt, codec)
    verdict.assert_srtp(expected_hz=1000)     # >= 95 % authenticate, decrypts to the tone,
                                              # and the raw payloads do not decode to it

``check_srtp`` uses pylibsrtp directly (not the engine's :mod:`softphone.media.srtp`), keyed
with the master key and salt the engine negotiated (RFC 4568 §6.1: the sender's ``a=crypto``
keys what it sends). A capture of plain RTP fails :meth:`SrtpVerdict.assert_srtp`: nothing
authenticates, and the plain payloads decode to the tone (tests/interop/test_capture.py
shows both).

dumpcap runs as its own process, started by :meth:`Capture.start` and stopped by its PID with
SIGINT (dumpcap then flushes and closes the file).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from pylibsrtp import Error as SrtpError
from pylibsrtp import Policy, Session

from softphone.media.codecs import CodecPipeline
from softphone.media.tone import dominant_frequency, samples
from softphone.sdp.codecs import PayloadFormat
from softphone.sdp.crypto import SrtpSuite

__all__ = [
    "PLAINTEXT_MARKERS",
    "Capture",
    "CaptureError",
    "CapturedPacket",
    "SrtpVerdict",
    "check_srtp",
    "find_capture_tools",
    "plaintext_sip",
    "stream_bytes",
    "tls_record_types",
]

CAPTURE_HINT = "apt-get install tshark (or: make test as root)"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
#: What would show that SIP or its SDP crossed the wire in clear (RFC 3261 §7, RFC 4566, 4568).
PLAINTEXT_MARKERS = (
    b"INVITE sip",
    b"REGISTER sip",
    b"BYE sip",
    b"ACK sip",
    b"SIP/2.0 ",
    b"Via: SIP/2.0",
    b"m=audio",
    b"a=crypto",
    b"inline:",
)
TONES = range(200, 3600, 20)

_PROFILES = {
    SrtpSuite.AES_CM_128_HMAC_SHA1_80: Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    SrtpSuite.AES_CM_128_HMAC_SHA1_32: Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    SrtpSuite.AEAD_AES_128_GCM: Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    SrtpSuite.AEAD_AES_256_GCM: Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}


class CaptureError(RuntimeError):
    """dumpcap did not start or stop, or tshark could not read the file."""


def find_capture_tools() -> tuple[str, str] | None:
    """(dumpcap, tshark), or None when either is missing."""
    dumpcap, tshark = shutil.which("dumpcap"), shutil.which("tshark")
    if dumpcap is None or tshark is None:
        return None
    return dumpcap, tshark


@dataclass(frozen=True)
class CapturedPacket:
    """One TCP or UDP packet of the capture (payload may be empty: a bare ACK)."""

    frame: int
    transport: str  # "tcp" or "udp"
    src_port: int
    dst_port: int
    payload: bytes


class Capture:
    """``dumpcap -i lo -f FILTER -w PATH`` for the duration of a ``with`` block."""

    def __init__(self, path: Path, bpf_filter: str, *, interface: str = "lo") -> None:
        tools = find_capture_tools()
        if tools is None:
            raise CaptureError(f"dumpcap/tshark not installed: {CAPTURE_HINT}")
        self.dumpcap, self.tshark = tools
        self.path = path
        self.filter = bpf_filter
        self.interface = interface
        self.log_path = path.with_suffix(".dumpcap.log")
        self._process: subprocess.Popen[bytes] | None = None
        self._marker: socket.socket | None = None
        self.marker_port = 0

    def start(self) -> None:
        """Start dumpcap and return once it has seen a packet of ours: a datagram from our
        marker socket to itself (blocks: call it through ``asyncio.to_thread`` inside a
        running call). "Capturing on" alone is printed before the filter is live."""
        self._marker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._marker.bind(("127.0.0.1", 0))
        self.marker_port = int(self._marker.getsockname()[1])
        marker_filter = f"(udp src port {self.marker_port} and udp dst port {self.marker_port})"
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    self.dumpcap,
                    "-i",
                    self.interface,
                    "-f",
                    f"({self.filter}) or {marker_filter}",
                    "-w",
                    str(self.path),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_for_marker(0)
        except CaptureError:
            self.stop()
            raise

    def _captured(self) -> int:
        """dumpcap's own running count ("Packets: N" on stderr, printed about once a second)."""
        counts = re.findall(rb"Packets: (\d+)", self.log_path.read_bytes())
        return int(counts[-1]) if counts else 0

    def _wait_for_marker(self, before: int) -> None:
        """Send marker datagrams until dumpcap's count goes past ``before``."""
        assert self._marker is not None and self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise CaptureError(f"dumpcap exited: {self.log_tail()}")
            self._marker.sendto(b"capture-marker", ("127.0.0.1", self.marker_port))
            time.sleep(0.2)
            if self._captured() > before:
                return
        raise CaptureError(f"dumpcap saw none of our marker packets: {self.log_tail()}")

    def stop(self) -> None:
        """Drain, then SIGINT to dumpcap's PID (it writes what it holds and closes the file);
        SIGKILL if it has not gone after STOP_TIMEOUT. Draining: wait until dumpcap's count
        has moved past what it was when a fresh marker was sent (packets are read in order),
        so what was sent before stop() is in the file."""
        process, marker = self._process, self._marker
        if process is not None and process.poll() is None and marker is not None:
            with contextlib.suppress(CaptureError):
                time.sleep(0.2)
                self._wait_for_marker(self._captured())
        self._process, self._marker = None, None
        if marker is not None:
            marker.close()
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)

    def log_tail(self, chars: int = 800) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def __enter__(self) -> Capture:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def packets(self) -> list[CapturedPacket]:
        """Every TCP/UDP packet in the file, in capture order, through ``tshark -T fields``."""
        result = subprocess.run(
            [
                self.tshark,
                "-r",
                str(self.path),
                "-n",
                "-T",
                "fields",
                "-E",
                "separator=/t",
                "-e",
                "frame.number",
                "-e",
                "tcp.srcport",
                "-e",
                "tcp.dstport",
                "-e",
                "tcp.payload",
                "-e",
                "udp.srcport",
                "-e",
                "udp.dstport",
                "-e",
                "udp.payload",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise CaptureError(f"tshark could not read {self.path}: {result.stderr[-800:]}")
        out = []
        for line in result.stdout.splitlines():
            cols = line.split("\t")
            cols += [""] * (7 - len(cols))
            frame, tsrc, tdst, tpay, usrc, udst, upay = cols[:7]
            if tsrc:
                out.append(CapturedPacket(int(frame), "tcp", int(tsrc), int(tdst), _hex(tpay)))
            elif usrc and not (int(usrc) == int(udst) == self.marker_port):
                out.append(CapturedPacket(int(frame), "udp", int(usrc), int(udst), _hex(upay)))
        return out


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def plaintext_sip(packets: Iterable[CapturedPacket]) -> list[tuple[int, bytes]]:
    """(frame, marker) for every packet whose payload holds a plaintext SIP/SDP marker, plus
    markers split across TCP segments (searched in each direction's reassembled bytes, frame
    0)."""
    found: list[tuple[int, bytes]] = []
    flows: dict[tuple[str, int, int], bytearray] = {}
    for packet in packets:
        flows.setdefault((packet.transport, packet.src_port, packet.dst_port), bytearray()).extend(
            packet.payload
        )
        found += [(packet.frame, m) for m in PLAINTEXT_MARKERS if m in packet.payload]
    if not found:
        for data in flows.values():
            found += [(0, m) for m in PLAINTEXT_MARKERS if m in data]
    return found


def stream_bytes(packets: Iterable[CapturedPacket], src_port: int, dst_port: int) -> bytes:
    """The TCP payload from ``src_port`` to ``dst_port``, in capture order."""
    return b"".join(
        p.payload
        for p in packets
        if p.transport == "tcp" and p.src_port == src_port and p.dst_port == dst_port
    )


def tls_record_types(data: bytes) -> list[int]:
    """The content types of the TLS records that make up ``data`` (RFC 8446 §5.1); raises
    ``ValueError`` at the first byte that is not a record header, or a truncated record."""
    types: list[int] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 5:
            raise ValueError(f"truncated TLS record header at byte {pos}")
        kind, major, length = data[pos], data[pos + 1], int.from_bytes(data[pos + 3 : pos + 5])
        if kind not in (20, 21, 22, 23) or major != 3:
            raise ValueError(f"not a TLS record at byte {pos}: {data[pos : pos + 16]!r}")
        if pos + 5 + length > len(data):
            raise ValueError(f"TLS record at byte {pos} runs past the capture")
        types.append(kind)
        pos += 5 + length
    return types


def _is_rtcp(packet: bytes) -> bool:
    return len(packet) >= 2 and 192 <= packet[1] <= 223  # RFC 5761 §4


def _rtp_payload(packet: bytes) -> bytes:
    cc = packet[0] & 0x0F
    start = 12 + 4 * cc
    if packet[0] & 0x10 and len(packet) >= start + 4:
        start += 4 + 4 * int.from_bytes(packet[start + 2 : start + 4])
    return packet[start:]


@dataclass
class SrtpVerdict:
    """What :func:`check_srtp` found in one direction of a media stream."""

    rtp_packets: int = 0
    authenticated: int = 0
    rtcp_packets: int = 0
    rtcp_authenticated: int = 0
    decrypted_tone: float | None = None
    decrypted_share: float = 0.0
    plain_tone: float | None = None
    plain_share: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def authenticated_share(self) -> float:
        return self.authenticated / self.rtp_packets if self.rtp_packets else 0.0

    def assert_srtp(self, expected_hz: float, *, tolerance: float = 20.0) -> None:
        """The stream is SRTP under the given key: enough packets, >= 95 % authenticate,
        the decrypted audio is the expected tone, and the raw payloads are not."""
        problems = []
        if self.rtp_packets < 20:
            problems.append(f"only {self.rtp_packets} RTP packets captured")
        if self.authenticated_share < 0.95:
            problems.append(
                f"{self.authenticated}/{self.rtp_packets} packets authenticate "
                f"({self.failures or 'no failures'})"
            )
        if (
            self.decrypted_tone is None
            or abs(self.decrypted_tone - expected_hz) > tolerance
            or self.decrypted_share < 0.5
        ):
            problems.append(
                f"decrypted audio is not {expected_hz} Hz "
                f"({self.decrypted_tone} Hz, share {self.decrypted_share:.2f})"
            )
        if self.plain_tone is not None and (
            abs(self.plain_tone - expected_hz) <= tolerance and self.plain_share >= 0.5
        ):
            problems.append(
                f"the undecrypted payloads decode to the {expected_hz} Hz tone: plain RTP"
            )
        if problems:
            raise AssertionError("not SRTP with the negotiated key: " + "; ".join(problems))


def check_srtp(
    packets: Sequence[bytes],
    suite: SrtpSuite,
    key_salt: bytes,
    codec: PayloadFormat,
    *,
    candidates: Iterable[float] = TONES,
) -> SrtpVerdict:
    """Unprotect each captured datagram of one direction with ``key_salt`` (the sender's
    master key || salt, RFC 3711 §8.2), decode what authenticates with ``codec`` and find its
    tone; decode the same payloads *without* decryption for comparison."""
    verdict = SrtpVerdict()
    session = Session(
        Policy(key=key_salt, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=_PROFILES[suite])
    )
    clear_audio = CodecPipeline(codec)
    raw_audio = CodecPipeline(codec)
    decrypted: list[bytes] = []
    raw: list[bytes] = []
    for packet in packets:
        if len(packet) < 12 or packet[0] >> 6 != 2:
            verdict.failures["not-rtp"] = verdict.failures.get("not-rtp", 0) + 1
            continue
        if _is_rtcp(packet):
            verdict.rtcp_packets += 1
            try:
                session.unprotect_rtcp(packet)
            except (SrtpError, ValueError):
                continue
            verdict.rtcp_authenticated += 1
            continue
        verdict.rtp_packets += 1
        if packet[1] & 0x7F == codec.payload_type:
            raw.append(raw_audio.decode(_rtp_payload(packet)))
        try:
            clear = bytes(session.unprotect(packet))
        except (SrtpError, ValueError) as exc:
            verdict.failures[str(exc)] = verdict.failures.get(str(exc), 0) + 1
            continue
        verdict.authenticated += 1
        if clear[1] & 0x7F == codec.payload_type:
            decrypted.append(clear_audio.decode(_rtp_payload(clear)))
    verdict.decrypted_tone, verdict.decrypted_share = _tone(decrypted, candidates)
    verdict.plain_tone, verdict.plain_share = _tone(raw, candidates)
    return verdict


def _tone(frames: list[bytes], candidates: Iterable[float]) -> tuple[float | None, float]:
    pcm = b"".join(f for f in frames[-15:] if f)  # the last 300 ms: the decoders have settled
    if len(pcm) < 2 * 4800:
        return None, 0.0
    found, share = dominant_frequency(samples(pcm), candidates)
    return found, share
