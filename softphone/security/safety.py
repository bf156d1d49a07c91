"""Safety numbers: one number both phones of a call compute from both parties' certificates.

People read it to each other (12 groups of five digits) or scan it as a QR code; when it is the
same, nobody has put their own key between them, and "We compared it" marks the contact
verified for sipsec, S/MIME and DTLS fingerprints alike (UX.md "Safety number").

Derivation (Signal's numeric fingerprints, libsignal ``NumericFingerprintGenerator``)
---------------------------------------------------------------------------------------
For each party::

    h = version (2 bytes, big-endian) || SPKI || identifier
    repeat 5200 times:  h = SHA-512(h || SPKI)
    half digest = h[:32]
    digits = for each of the six 5-byte chunks of h[:30]:
             big-endian integer mod 100000, zero-padded to 5 digits      → 30 digits

``SPKI`` is the DER SubjectPublicKeyInfo of the certificate's key, so re-issuing a certificate
for the same key (renewal, a CA's certificate for a self-made key) keeps the number; the
``identifier`` is the AOR normalised to ``sip:user@host`` (host lower-cased, ``sips:`` →
``sip:``) in UTF-8. With ``version = 0`` and Signal's key and identifier encodings this is
exactly libsignal's algorithm (the tests check its published vector); ours hashes
:data:`SAFETY_NUMBER_VERSION`, so our numbers can never collide with Signal's.

The safety number is the two 30-digit halves in ascending order: caller and callee get the
same 60 digits whichever side they are on.

What is claimed, precisely
--------------------------
- A 5-digit group is a 40-bit value mod 10⁵ (bias below 10⁻⁷): log2(10⁵) ≈ 16.61 bits. A
  30-digit half carries ≈ 99.66 bits, the 60-digit number ≈ 199.3 bits; the QR code carries
  both 256-bit half digests.
- Substituting one party's key undetected needs a key whose half, *for that party's AOR*,
  equals the genuine half: a second preimage on ≈ 99.66 bits, i.e. about 2^99.66 key
  candidates, each costing 5200 SHA-512 computations (≈ 2^12.3) on top of making the key —
  about 2^112 SHA-512 computations in all, well above 100 bits of work. A full
  man-in-the-middle, who replaces both keys, needs two such second preimages.
- The AOR is hashed into each half, so the work cannot be shared between victims (no
  multi-target speed-up), and the same key used under two AORs gives two unrelated halves.
- A bare certificate fingerprint exchanged in the clear commits to nothing beforehand, which
  is why a short ZRTP-style SAS (16 to 20 bits) would not do here.
- Nothing is claimed about a person who does not compare, or compares only a few groups.

Errors::

    SecurityError
    └── SafetyNumberFormatError    (also ValueError) a scanned code that is not ours / newer
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import threading
from collections.abc import Generator
from dataclasses import dataclass
from typing import Final, TypeVar

import segno
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from softphone.security.certificates import Identity, SecurityError

__all__ = [
    "DIGITS_PER_HALF",
    "GROUP_SIZE",
    "HALF_DIGEST_BYTES",
    "ITERATIONS",
    "QR_PREFIX",
    "ROUNDS_PER_STEP",
    "SAFETY_NUMBER_VERSION",
    "SafetyNumber",
    "SafetyNumberFormatError",
    "SafetyNumberHalf",
    "compare_scanned",
    "digits_of",
    "format_groups",
    "iterated_digest",
    "iterated_digest_steps",
    "local_half",
    "local_half_steps",
    "memoised_safety_number",
    "parse_qr_payload",
    "qr_code",
    "qr_png",
    "qr_text",
    "safety_number",
    "safety_number_qr_payload",
    "safety_number_steps",
]

#: Hashed into every half and written into every QR payload; a change makes new numbers.
SAFETY_NUMBER_VERSION: Final = 1
#: libsignal's count: makes each guess at a look-alike key ~5200 times dearer.
ITERATIONS: Final = 5200
DIGITS_PER_HALF: Final = 30
GROUP_SIZE: Final = 5
#: How much of each half's SHA-512 the QR code carries (as Signal's scannable fingerprint).
HALF_DIGEST_BYTES: Final = 32
#: QR payloads read ``SOFTPHONE-SN:<version>:<HEX lower half><HEX higher half>``: only
#: characters of the QR alphanumeric mode, so any scanner gives the bytes back unchanged.
QR_PREFIX: Final = b"SOFTPHONE-SN:"

_CHUNK_BYTES: Final = 5
_CHUNK_MODULUS: Final = 10**GROUP_SIZE
_QR_PATTERN: Final = re.compile(
    rb"SOFTPHONE-SN:([0-9]{1,5}):([0-9A-F]{%d})" % (4 * HALF_DIGEST_BYTES)
)

PublicKeySource = x509.Certificate | CertificatePublicKeyTypes
_T = TypeVar("_T")


class SafetyNumberFormatError(SecurityError, ValueError):
    """A scanned code that is not a softphone safety number, or one of an unknown version."""


# --- the derivation -----------------------------------------------------------------------


def iterated_digest(
    key_bytes: bytes, identifier: bytes, *, version: int, iterations: int = ITERATIONS
) -> bytes:
    """The 64-byte iterated SHA-512 of libsignal's numeric fingerprint for one party."""
    steps = iterated_digest_steps(key_bytes, identifier, version=version, iterations=iterations)
    return _drain(steps)


#: Rounds of :func:`iterated_digest_steps` between two yields: ~0.15 ms of SHA-512 here.
ROUNDS_PER_STEP: Final = 64


def iterated_digest_steps(
    key_bytes: bytes,
    identifier: bytes,
    *,
    version: int,
    iterations: int = ITERATIONS,
    rounds: int = ROUNDS_PER_STEP,
) -> Generator[None, None, bytes]:
    """:func:`iterated_digest` ``rounds`` rounds at a time: it yields between them and returns
    the same 64 bytes. The phone runs the steps on its event loop, a millisecond of them per
    turn (:func:`softphone.ua.turns.run_in_slices`); in a worker thread, the rounds are pure
    Python and held the GIL against the loop: a 7 ms callback beside them took 17-19 ms
    (issue 7: the loop never stalls 20 ms)."""
    if not 0 <= version <= 0xFFFF:
        raise ValueError("version is an unsigned 16-bit number")
    if rounds < 1:
        raise ValueError("rounds must be positive")
    digest = version.to_bytes(2, "big") + key_bytes + identifier
    sha512 = hashlib.sha512
    left = iterations
    while left > 0:
        for _ in range(min(rounds, left)):
            digest = sha512(digest + key_bytes).digest()
        left -= rounds
        if left > 0:
            yield
    return digest


def _drain(steps: Generator[None, None, _T]) -> _T:
    """Every step of ``steps`` at once; its result."""
    while True:
        try:
            next(steps)
        except StopIteration as finished:
            return finished.value  # type: ignore[no-any-return]


def digits_of(digest: bytes) -> str:
    """30 decimal digits from the first 30 bytes of ``digest`` (six 5-byte chunks mod 10⁵)."""
    if len(digest) < DIGITS_PER_HALF:
        raise ValueError(f"need {DIGITS_PER_HALF} bytes, got {len(digest)}")
    return "".join(
        f"{int.from_bytes(digest[i : i + _CHUNK_BYTES], 'big') % _CHUNK_MODULUS:0{GROUP_SIZE}d}"
        for i in range(0, DIGITS_PER_HALF, _CHUNK_BYTES)
    )


def format_groups(digits: str, size: int = GROUP_SIZE) -> str:
    """``"12345 67890 ..."``: ``digits`` in groups of ``size``, easy to read aloud."""
    return " ".join(digits[i : i + size] for i in range(0, len(digits), size))


def _spki(source: PublicKeySource) -> bytes:
    key = source.public_key() if isinstance(source, x509.Certificate) else source
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class SafetyNumberHalf:
    """One party's contribution: their AOR (normalised), half digest and 30 digits."""

    aor: str
    digest: bytes
    digits: str

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(format_groups(self.digits).split())

    def __str__(self) -> str:
        return format_groups(self.digits)


def local_half(cert: PublicKeySource, aor: str) -> SafetyNumberHalf:
    """The half of every safety number that ``cert``'s key under ``aor`` contributes.

    ``aor`` may be ``sip:``, ``sips:`` or bare ``user@host``; it is normalised to
    ``sip:user@host`` first, so all three give the same half. Whether ``cert`` names ``aor``
    is the trust evaluation's business, not this function's.
    """
    return _drain(local_half_steps(cert, aor))


def local_half_steps(cert: PublicKeySource, aor: str) -> Generator[None, None, SafetyNumberHalf]:
    """:func:`local_half` in steps (:func:`iterated_digest_steps`); none for a memoised half.
    A bad AOR raises here, before any step."""
    return _half_steps(_spki(cert), str(Identity.aor(aor)))


def safety_number_steps(
    own_cert: PublicKeySource, own_aor: str, peer_cert: PublicKeySource, peer_aor: str
) -> Generator[None, None, SafetyNumber]:
    """:func:`safety_number` in steps: both halves' (:func:`local_half_steps`)."""
    own = yield from local_half_steps(own_cert, own_aor)
    peer = yield from local_half_steps(peer_cert, peer_aor)
    return SafetyNumber.from_halves(own, peer)


#: Memoised halves, (SubjectPublicKeyInfo DER, normalised AOR) -> half; oldest dropped first.
_HALVES: dict[tuple[bytes, str], SafetyNumberHalf] = {}
_HALVES_MAX: Final = 256
_HALVES_LOCK = threading.Lock()  # the CLI, tests and a worker may compute halves too


def _half_steps(spki: bytes, identifier: str) -> Generator[None, None, SafetyNumberHalf]:
    """Memoised: 5200 x SHA-512 costs ~12 ms here, and a phone asks again for the same two
    keys at every call, contact view and QR code (the event loop must not stall 20 ms,
    issue 7, so the engine works new halves out in slices first:
    :func:`memoised_safety_number`). The result depends only on the arguments, so a hit is
    always right."""
    key = (spki, identifier)
    with _HALVES_LOCK:
        known = _HALVES.get(key)
    if known is not None:
        return known
    digest = yield from iterated_digest_steps(
        spki, identifier.encode("utf-8"), version=SAFETY_NUMBER_VERSION
    )
    half = SafetyNumberHalf(identifier, digest[:HALF_DIGEST_BYTES], digits_of(digest))
    with _HALVES_LOCK:
        while len(_HALVES) >= _HALVES_MAX:
            del _HALVES[next(iter(_HALVES))]
        _HALVES[key] = half
    return half


@dataclass(frozen=True)
class SafetyNumber:
    """The 60 digits both phones show; ``halves`` in the order their digits appear."""

    digits: str
    groups: tuple[str, ...]
    version: int
    halves: tuple[SafetyNumberHalf, SafetyNumberHalf]

    @classmethod
    def from_halves(cls, a: SafetyNumberHalf, b: SafetyNumberHalf) -> SafetyNumber:
        low, high = sorted((a, b), key=lambda h: (h.digits, h.digest))
        digits = low.digits + high.digits
        return cls(digits, tuple(format_groups(digits).split()), SAFETY_NUMBER_VERSION, (low, high))

    def lines(self, per_line: int = 4) -> tuple[str, ...]:
        """Rows of ``per_line`` groups (three rows of four, as Signal lays them out)."""
        return tuple(
            " ".join(self.groups[i : i + per_line]) for i in range(0, len(self.groups), per_line)
        )

    def qr_payload(self) -> bytes:
        """What the QR code encodes: see :func:`safety_number_qr_payload`."""
        low, high = self.halves
        return b"%s%d:%s" % (
            QR_PREFIX,
            self.version,
            (low.digest + high.digest).hex().upper().encode("ascii"),
        )

    def matches_scanned(self, payload: bytes) -> bool:
        """Whether ``payload`` (scanned from the other phone) is this number; constant-time.

        Raises :class:`SafetyNumberFormatError` for a code that is not a safety number or has
        another version, so that the UI can say so instead of "does not match".
        """
        version, _, _ = parse_qr_payload(payload)
        if version != self.version:
            raise SafetyNumberFormatError(
                f"this code is a version {version} safety number; this phone makes version "
                f"{self.version}: update the older phone and compare again"
            )
        return hmac.compare_digest(payload.strip(), self.qr_payload())

    def __str__(self) -> str:
        return " ".join(self.groups)


def safety_number(
    own_cert: PublicKeySource, own_aor: str, peer_cert: PublicKeySource, peer_aor: str
) -> SafetyNumber:
    """The safety number of a call between two parties; symmetric in (own, peer)."""
    return SafetyNumber.from_halves(local_half(own_cert, own_aor), local_half(peer_cert, peer_aor))


def memoised_safety_number(
    own_cert: PublicKeySource, own_aor: str, peer_cert: PublicKeySource, peer_aor: str
) -> SafetyNumber | None:
    """:func:`safety_number` when both halves are already memoised (no hashing, microseconds:
    safe on an event loop), else ``None``: work it out in slices then
    (:func:`safety_number_steps`)."""
    with _HALVES_LOCK:
        own = _HALVES.get((_spki(own_cert), str(Identity.aor(own_aor))))
        peer = _HALVES.get((_spki(peer_cert), str(Identity.aor(peer_aor))))
    if own is None or peer is None:
        return None
    return SafetyNumber.from_halves(own, peer)


# --- QR codes -----------------------------------------------------------------------------


def safety_number_qr_payload(
    own_cert: PublicKeySource, own_aor: str, peer_cert: PublicKeySource, peer_aor: str
) -> bytes:
    """The bytes to put in the QR code: ``SOFTPHONE-SN:1:`` then both 32-byte half digests in
    upper-case hex, in the same order as the displayed halves (143 characters, QR version 6-M
    in alphanumeric mode).

    Both phones of a call produce the *same* payload, so scanning the other phone's code and
    comparing bytes (:func:`compare_scanned`) verifies both directions at once; the code
    carries 512 bits, far more than the 60 digits (a camera compares them for free).
    """
    return safety_number(own_cert, own_aor, peer_cert, peer_aor).qr_payload()


def parse_qr_payload(payload: bytes) -> tuple[int, bytes, bytes]:
    """``(version, lower half digest, higher half digest)``, or :class:`SafetyNumberFormatError`."""
    match = _QR_PATTERN.fullmatch(payload.strip())
    if match is None:
        raise SafetyNumberFormatError("this code is not a softphone safety number")
    both = bytes.fromhex(match.group(2).decode("ascii"))
    return int(match.group(1)), both[:HALF_DIGEST_BYTES], both[HALF_DIGEST_BYTES:]


def compare_scanned(
    payload: bytes,
    own_cert: PublicKeySource,
    own_aor: str,
    peer_cert: PublicKeySource,
    peer_aor: str,
) -> bool:
    """Whether the code scanned from the peer's phone shows the number this phone computes.

    ``False`` means the keys differ: someone may be in the middle. A code that is no safety
    number at all (or of another version) raises :class:`SafetyNumberFormatError`.
    """
    return safety_number(own_cert, own_aor, peer_cert, peer_aor).matches_scanned(payload)


# --- QR images (segno) -----------------------------------------------------------------------

#: ISO/IEC 18004 error correction: "M" restores ~15 % of the modules (a smudged screen, a
#: reflection); segno may raise it further when the version has room (``boost_error``).
QR_ERROR_CORRECTION: Final = "m"
#: Light modules around the symbol; ISO/IEC 18004 §7.3.8 asks for four.
QR_QUIET_ZONE: Final = 4


def qr_code(payload: bytes) -> segno.QRCode:
    """The QR symbol of a payload (:meth:`SafetyNumber.qr_payload`), error correction ≥ M.

    The payload is only ``SOFTPHONE-SN:`` digits and upper-case hex, so segno picks the
    alphanumeric mode: version 6 for a 143-character payload.
    """
    return segno.make(payload, error=QR_ERROR_CORRECTION, boost_error=True, micro=False)


def qr_png(payload: bytes, *, scale: int = 8, border: int = QR_QUIET_ZONE) -> bytes:
    """PNG bytes of the QR code (for the GUI): ``scale`` pixels per module, black on white."""
    buffer = io.BytesIO()
    qr_code(payload).save(buffer, kind="png", scale=scale, border=border)
    return buffer.getvalue()


def qr_text(payload: bytes, *, border: int = 2, dark_background: bool = True) -> str:
    """The QR code for a terminal: two module rows per line with Unicode half blocks.

    A terminal with a dark background shows a space as dark, so by default light modules are
    drawn (as ``qrencode -t UTF8`` does); ``dark_background=False`` draws the dark ones. The
    text depends on nothing but ``payload`` (no colour codes), so it can be compared.
    """
    matrix = [list(row) for row in qr_code(payload).matrix]
    width = len(matrix[0]) + 2 * border
    blank = [0] * width
    rows = [blank] * border + [[0] * border + r + [0] * border for r in matrix] + [blank] * border
    if len(rows) % 2:
        rows.append(blank)
    glyphs = {(False, False): " ", (True, False): "\u2580", (False, True): "\u2584"}
    glyphs[(True, True)] = "\u2588"
    lines = []
    for top, bottom in zip(rows[0::2], rows[1::2], strict=True):
        line = ""
        for upper, lower in zip(top, bottom, strict=True):
            # segno's matrix holds 1 for a dark module.
            draw_upper = (upper == 0) if dark_background else (upper != 0)
            draw_lower = (lower == 0) if dark_background else (lower != 0)
            line += glyphs[(draw_upper, draw_lower)]
        lines.append(line)
    return "\n".join(lines) + "\n"
