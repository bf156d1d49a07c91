"""The safety number as a QR code (UX.md "Safety number": groups of five digits *and* a QR code).

The code carries :meth:`softphone.security.safety.SafetyNumber.qr_payload` (both 256-bit half
digests), so it can only be drawn from the two certificates themselves: this phone's identity
and the peer certificate *that was presented in this call* (its SHA-256 is the one the
engine's ``PeerIdentity`` event names). :func:`safety_qr_payload` recomputes the number from
them and refuses (``None``) unless it equals the digits the engine reported: a QR code never
shows something other than the number beside it.
"""

from __future__ import annotations

import asyncio

from cryptography import x509
from PySide6.QtGui import QPixmap

from softphone.ua import fingerprint_sha256, qr_png, safety_number

__all__ = ["qr_pixmap", "qr_pixmap_async", "safety_qr_payload"]


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def safety_qr_payload(
    own_cert: x509.Certificate,
    own_aor: str,
    peer_cert: x509.Certificate,
    peer_aor: str,
    *,
    fingerprint: str,
    shown_number: str,
) -> bytes | None:
    """The QR payload of this call's safety number, or ``None`` when ``peer_cert`` is not the
    certificate with ``fingerprint`` (``AB:CD:…``) or the number differs from ``shown_number``
    (what the engine reported, any grouping)."""
    try:
        wanted = bytes.fromhex(fingerprint.replace(":", "").replace(" ", ""))
    except ValueError:
        return None
    if fingerprint_sha256(peer_cert) != wanted:
        return None
    try:
        number = safety_number(own_cert, own_aor, peer_cert, peer_aor)
    except ValueError:
        return None
    if number.digits != _digits(shown_number):
        return None
    return number.qr_payload()


def qr_pixmap(payload: bytes, *, scale: int = 4) -> QPixmap:
    """The QR code of ``payload`` (segno, error correction ≥ M, quiet zone of four modules)."""
    return _pixmap(qr_png(payload, scale=scale))


def _pixmap(png: bytes) -> QPixmap:
    pixmap = QPixmap()
    if not pixmap.loadFromData(png, "PNG"):
        raise ValueError("the QR code could not be drawn")
    return pixmap


async def qr_pixmap_async(payload: bytes, *, scale: int = 4) -> QPixmap:
    """:func:`qr_pixmap` without stalling the event loop (issue 7: never more than 20 ms):
    segno encodes and writes the PNG in a worker thread (50-65 ms of pure Python here, the
    GIL handed back every switch interval, 5 ms); only the QPixmap is made on the Qt thread,
    where pixmaps must be made. Callers check, when it returns, that the payload is still the
    one they show."""
    png = await asyncio.to_thread(qr_png, payload, scale=scale)
    return _pixmap(png)
