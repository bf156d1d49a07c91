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
import concurrent.futures
from collections import OrderedDict

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


#: segno's work for the codes drawn lately, by (payload, scale): the PNG, or the job making
#: it. Both ends of a call show the same code (the payload is the two halves in order), so
#: the demo's two phones draw it once; a contact's page and its call, the same.
_DRAWN: OrderedDict[tuple[bytes, int], concurrent.futures.Future[bytes]] = OrderedDict()
_DRAWN_KEPT = 8
#: One worker: two codes asked for at once are drawn one after the other, so no more than one
#: thread of pure Python holds the GIL against the event loop at a time.
_DRAWER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="qr")
# Its thread started now, at start-up: starting a thread makes the caller wait until it runs
# (milliseconds on a loaded machine), and the first code is asked for on the loop mid-call.
_DRAWER.submit(int)


def _png_job(payload: bytes, scale: int) -> concurrent.futures.Future[bytes]:
    key = (payload, scale)
    job = _DRAWN.get(key)
    if job is None or job.cancelled() or (job.done() and job.exception() is not None):
        job = _DRAWER.submit(qr_png, payload, scale=scale)
        _DRAWN[key] = job
        while len(_DRAWN) > _DRAWN_KEPT:
            _DRAWN.popitem(last=False)
    _DRAWN.move_to_end(key)
    return job


async def qr_pixmap_async(payload: bytes, *, scale: int = 4) -> QPixmap:
    """:func:`qr_pixmap` without stalling the event loop (issue 7: never more than 20 ms):
    segno encodes and writes the PNG in a worker thread (9-10 ms of CPU in pure Python here,
    the GIL handed back every switch interval); only the QPixmap is made on the Qt thread,
    where pixmaps must be made. A code drawn lately (or being drawn) is not drawn again.
    Callers check, when it returns, that the payload is still the one they show."""
    # Shielded: a caller that goes away (its window closed) leaves the job to the others.
    png = await asyncio.shield(asyncio.wrap_future(_png_job(payload, scale)))
    return _pixmap(png)
