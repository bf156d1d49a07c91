"""QR codes of safety numbers (segno): the PNG for the GUI and the text for a terminal both
carry exactly the symbol segno made for the payload, with error correction at least M.

No QR decoder is available offline, so the checks go the other way: decode our PNG and our
terminal text back into a module matrix and compare it with segno's matrix for the payload.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
import segno
from cryptography.hazmat.primitives import serialization

from softphone.security import safety
from softphone.security.safety import qr_code, qr_png, qr_text, safety_number
from tests.security.pki import make_self_signed, new_key

PAYLOAD = b"SOFTPHONE-SN:1:" + bytes(range(64)).hex().upper().encode()


def _png_matrix(data: bytes) -> list[list[int]]:
    """A 1-bit greyscale PNG (what segno writes) → rows of 1 (dark) / 0 (light)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, chunk = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    assert header is not None
    width, height, depth, colour, _, _, interlace = header
    assert (depth, colour, interlace) == (1, 0, 0)
    raw = zlib.decompress(idat)
    stride = (width + 7) // 8
    rows, previous = [], bytes(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]
        if kind == 2:  # "Up" (PNG §9.2): segno uses it for a row that repeats the last one
            line = bytes((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        else:
            assert kind == 0, f"PNG filter {kind} not expected from segno"
        previous = line
        bits = [(line[x // 8] >> (7 - x % 8)) & 1 for x in range(width)]
        rows.append([1 - b for b in bits])  # greyscale 0 is black: a dark module
    return rows


def _matrix(payload: bytes) -> list[list[int]]:
    return [[1 if m else 0 for m in row] for row in qr_code(payload).matrix]


def test_symbol_is_version_6_alphanumeric_with_at_least_m() -> None:
    qr = qr_code(PAYLOAD)
    assert qr.error in ("M", "Q", "H")
    assert qr.mode == "alphanumeric" and qr.version == 6 and qr.symbol_size(border=0) == (41, 41)


def test_segno_is_asked_for_at_least_m(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    real = segno.make

    def spy(content: Any, **kwargs: Any) -> segno.QRCode:
        calls.append(kwargs)
        return real(content, **kwargs)

    monkeypatch.setattr(safety.segno, "make", spy)
    qr_png(PAYLOAD)
    assert calls and str(calls[0]["error"]).upper() in ("M", "Q", "H")
    assert calls[0]["micro"] is False


def test_png_holds_exactly_the_symbol() -> None:
    assert _png_matrix(qr_png(PAYLOAD, scale=1, border=0)) == _matrix(PAYLOAD)
    big = _png_matrix(qr_png(PAYLOAD, scale=3))
    assert len(big) == len(big[0]) == (41 + 8) * 3  # four-module quiet zone each side
    assert all(v == 0 for v in big[0]) and big[12][12] == 1  # quiet, then the finder pattern


def _text_matrix(text: str, border: int, *, dark_background: bool) -> list[list[int]]:
    upper = {" ": 0, "\u2580": 1, "\u2584": 0, "\u2588": 1}
    lower = {" ": 0, "\u2580": 0, "\u2584": 1, "\u2588": 1}
    rows: list[list[int]] = []
    for line in text.splitlines():
        rows.append([upper[c] for c in line])
        rows.append([lower[c] for c in line])
    drawn = [row[border:-border] for row in rows[border : border + 41]]
    return [[(1 - v) if dark_background else v for v in row] for row in drawn]


@pytest.mark.parametrize("dark_background", [True, False])
def test_terminal_text_holds_exactly_the_symbol(dark_background: bool) -> None:
    text = qr_text(PAYLOAD, border=2, dark_background=dark_background)
    lines = text.splitlines()
    assert len(lines) == (41 + 4 + 1) // 2 and {len(line) for line in lines} == {45}
    assert _text_matrix(text, 2, dark_background=dark_background) == _matrix(PAYLOAD)


def test_terminal_text_is_stable() -> None:
    text = qr_text(PAYLOAD)
    assert "\x1b" not in text  # no colour codes
    assert qr_text(PAYLOAD) == text
    # The symbol of a fixed payload never changes (same segno, same options).
    assert (
        hashlib.sha256(text.encode()).hexdigest()
        == hashlib.sha256(qr_text(bytes(PAYLOAD)).encode()).hexdigest()
    )
    assert qr_text(PAYLOAD.replace(b"00", b"FF", 1)) != text


def test_cert_show_qr_prints_the_safety_number_and_its_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from softphone.cert_cli import main as cert_main

    me = make_self_signed(cn="alice", uris=["sip:alice@example.test"], key=new_key())
    peer = make_self_signed(cn="bob", uris=["sip:bob@example.test"], key=new_key())
    id_dir = tmp_path / "identity"
    id_dir.mkdir()
    (id_dir / "cert.pem").write_bytes(me.cert.public_bytes(serialization.Encoding.PEM))
    peer_file = tmp_path / "bob.pem"
    peer_file.write_bytes(peer.cert.public_bytes(serialization.Encoding.PEM))
    png = tmp_path / "sn.png"
    args = ["show", "--dir", str(id_dir), "--qr", "--peer-cert", str(peer_file), "--png", str(png)]
    assert cert_main(args) == 0
    out = capsys.readouterr().out
    number = safety_number(me.cert, "sip:alice@example.test", peer.cert, "sip:bob@example.test")
    assert "Safety number with sip:bob@example.test" in out
    for line in number.lines():
        assert line in out
    assert qr_text(number.qr_payload()) in out
    assert png.read_bytes() == qr_png(number.qr_payload())


def test_cert_show_qr_without_a_peer_says_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from softphone.cert_cli import main as cert_main

    me = make_self_signed(cn="alice", uris=["sip:alice@example.test"], key=new_key())
    id_dir = tmp_path / "identity"
    id_dir.mkdir()
    (id_dir / "cert.pem").write_bytes(me.cert.public_bytes(serialization.Encoding.PEM))
    assert cert_main(["show", "--dir", str(id_dir), "--qr"]) == 1
    assert "--with AOR" in capsys.readouterr().err
    ledger = tmp_path / "contacts.json"
    args = ["show", "--dir", str(id_dir), "--qr", "--with", "sip:x@y.test", "--ledger", str(ledger)]
    assert cert_main(args) == 1
    assert "no contact sip:x@y.test" in capsys.readouterr().err
