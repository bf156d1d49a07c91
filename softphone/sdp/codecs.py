"""RTP payload formats of an audio m-line: ``a=rtpmap``, ``a=fmtp``, ``a=ptime`` (RFC 8866 §6.6,
§6.15, §6.4) and the static payload types of RFC 3551 §6.

Two kinds of objects live here:

* :class:`RtpMap` / :class:`PayloadFormat` describe what an SDP *says* (parsed, exact);
* :class:`Codec` describes what *we* can do (a local capability), matched against a payload
  format by encoding name (case-insensitive), RTP clock rate and channel count.

G.722 is the classic quirk: it samples at 16 kHz but its RTP clock rate is 8000 because RFC 1890
got it wrong and RFC 3551 §4.5.2 kept the error for compatibility. ``rtpmap`` carries the RTP
clock (8000); :attr:`PayloadFormat.sample_rate` gives the real rate (16000).
"""

from __future__ import annotations

from dataclasses import dataclass

from softphone.sdp.errors import SdpParseError

__all__ = [
    "G722",
    "OPUS",
    "PCMA",
    "PCMU",
    "STATIC_PAYLOAD_TYPES",
    "TELEPHONE_EVENT",
    "Codec",
    "PayloadFormat",
    "RtpMap",
    "format_events",
    "parse_fmtp",
    "parse_fmtp_parameters",
    "parse_ptime",
    "parse_rtpmap",
    "parse_telephone_events",
]

_MAX_PT = 127
_FIRST_DYNAMIC_PT = 96


def _parse_int(text: str, what: str, *, low: int, high: int) -> int:
    # str.isdigit() accepts other Unicode digits ("²"); the grammar allows only ASCII DIGIT.
    if not text or len(text) > 10 or not (text.isascii() and text.isdigit()):
        raise SdpParseError(f"invalid {what}: {text!r}")
    value = int(text)
    if not low <= value <= high:
        raise SdpParseError(f"{what} out of range: {value}")
    return value


def parse_payload_type(text: str) -> int:
    """An RTP payload type number 0..127 (RFC 3550 §5.1: a 7-bit field)."""
    return _parse_int(text, "payload type", low=0, high=_MAX_PT)


@dataclass(frozen=True)
class RtpMap:
    """``a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]``
    (RFC 8866 §6.6). For audio the encoding parameter is the channel count."""

    payload_type: int
    encoding_name: str
    clock_rate: int
    channels: int | None = None

    def __str__(self) -> str:
        text = f"{self.payload_type} {self.encoding_name}/{self.clock_rate}"
        return text if self.channels is None else f"{text}/{self.channels}"


def parse_rtpmap(value: str) -> RtpMap:
    """Parse the value of an ``a=rtpmap`` attribute; :class:`SdpParseError` when malformed."""
    pt_text, sep, rest = value.partition(" ")
    if not sep:
        raise SdpParseError(f"malformed rtpmap: {value!r}")
    parts = rest.strip().split("/")
    if len(parts) not in (2, 3) or not parts[0] or not parts[0].isprintable() or " " in parts[0]:
        raise SdpParseError(f"malformed rtpmap: {value!r}")
    channels = None
    if len(parts) == 3:
        channels = _parse_int(parts[2], "rtpmap channels", low=1, high=255)
    return RtpMap(
        payload_type=parse_payload_type(pt_text),
        encoding_name=parts[0],
        clock_rate=_parse_int(parts[1], "rtpmap clock rate", low=1, high=10_000_000),
        channels=channels,
    )


def parse_fmtp(value: str) -> tuple[int, str]:
    """``a=fmtp:<format> <format specific parameters>`` (RFC 8866 §6.15) for an RTP format:
    the payload type and the parameter text, kept verbatim because its syntax is the codec's."""
    pt_text, _, params = value.partition(" ")
    return parse_payload_type(pt_text), params.strip()


def parse_fmtp_parameters(params: str) -> dict[str, str]:
    """The common ``name=value;name=value`` form of fmtp (opus RFC 7587 §7, RFC 4733 uses a
    bare event list instead, see :func:`parse_telephone_events`). Names are lower-cased."""
    result: dict[str, str] = {}
    for raw in params.split(";"):
        item = raw.strip()
        if not item:
            continue
        name, _, val = item.partition("=")
        result[name.strip().lower()] = val.strip()
    return result


_MAX_EVENT = 255


def parse_telephone_events(params: str) -> frozenset[int]:
    """RFC 4733 §7.1.1: the fmtp of telephone-event lists events as ``0-15,66,70``.

    An empty list means the RFC's default, 0-15 (the DTMF digits)."""
    text = params.strip()
    if not text:
        return frozenset(range(16))
    events: set[int] = set()
    for item in text.split(","):
        low_text, sep, high_text = item.strip().partition("-")
        low = _parse_int(low_text, "telephone-event", low=0, high=_MAX_EVENT)
        high = _parse_int(high_text, "telephone-event", low=0, high=_MAX_EVENT) if sep else low
        if high < low:
            raise SdpParseError(f"telephone-event range reversed: {item.strip()!r}")
        events.update(range(low, high + 1))
    return frozenset(events)


def format_events(events: frozenset[int]) -> str:
    """Inverse of :func:`parse_telephone_events`, collapsing runs: ``{0..16}`` -> ``"0-16"``."""
    ordered = sorted(events)
    out: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


def parse_ptime(value: str) -> int:
    """``a=ptime`` / ``a=maxptime`` in milliseconds (RFC 8866 §6.4, §6.5).

    Some phones write ``20.0``; the fraction is dropped (RTP timestamps need whole ms anyway)."""
    whole, _, frac = value.strip().partition(".")
    if frac and not (frac.isascii() and frac.isdigit()):
        raise SdpParseError(f"invalid packet time: {value!r}")
    return _parse_int(whole, "packet time", low=1, high=10_000)


#: RFC 3551 §6 Table 4: audio payload types with a fixed meaning, usable without ``a=rtpmap``.
STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {
    rm.payload_type: rm
    for rm in (
        RtpMap(0, "PCMU", 8000, 1),
        RtpMap(3, "GSM", 8000, 1),
        RtpMap(4, "G723", 8000, 1),
        RtpMap(5, "DVI4", 8000, 1),
        RtpMap(6, "DVI4", 16000, 1),
        RtpMap(7, "LPC", 8000, 1),
        RtpMap(8, "PCMA", 8000, 1),
        RtpMap(9, "G722", 8000, 1),
        RtpMap(10, "L16", 44100, 2),
        RtpMap(11, "L16", 44100, 1),
        RtpMap(12, "QCELP", 8000, 1),
        RtpMap(13, "CN", 8000, 1),
        RtpMap(14, "MPA", 90000, None),
        RtpMap(15, "G728", 8000, 1),
        RtpMap(16, "DVI4", 11025, 1),
        RtpMap(17, "DVI4", 22050, 1),
        RtpMap(18, "G729", 8000, 1),
    )
}


@dataclass(frozen=True)
class PayloadFormat:
    """One format of an m-line, resolved through ``a=rtpmap`` or the static table.

    ``fmtp`` is the raw parameter text or ``None`` when the SDP has no ``a=fmtp`` for it."""

    payload_type: int
    encoding_name: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None

    @property
    def name(self) -> str:
        """Encoding name lower-cased: names are case-insensitive (RFC 4855 §3)."""
        return self.encoding_name.lower()

    @property
    def sample_rate(self) -> int:
        """The codec's real sampling rate: 16000 for G.722 (RFC 3551 §4.5.2), else the clock."""
        return 16000 if self.name == "g722" and self.clock_rate == 8000 else self.clock_rate

    @property
    def is_telephone_event(self) -> bool:
        return self.name == "telephone-event"

    @property
    def rtpmap(self) -> RtpMap:
        # The channel count is written only when it is not the default of 1 (RFC 8866 §6.6);
        # opus is always /2 (RFC 7587 §7) so it keeps its "/2".
        channels = self.channels if self.channels != 1 else None
        return RtpMap(self.payload_type, self.encoding_name, self.clock_rate, channels)

    def with_payload_type(self, payload_type: int) -> PayloadFormat:
        return PayloadFormat(
            payload_type, self.encoding_name, self.clock_rate, self.channels, self.fmtp
        )


@dataclass(frozen=True)
class Codec:
    """A codec we can send and receive (a local capability, RFC 3264 §5).

    ``static_pt`` is the RFC 3551 payload type, ``None`` for a dynamic codec (RFC 3551 §3:
    96-127 assigned in the SDP). ``fmtp`` is what we put in our ``a=fmtp``."""

    encoding_name: str
    clock_rate: int
    channels: int = 1
    static_pt: int | None = None
    fmtp: str | None = None

    @property
    def name(self) -> str:
        return self.encoding_name.lower()

    def matches(self, fmt: PayloadFormat) -> bool:
        """Same codec: name (case-insensitive), RTP clock rate and channels (RFC 3264 §6.1)."""
        return (
            fmt.name == self.name
            and fmt.clock_rate == self.clock_rate
            and fmt.channels == self.channels
        )

    def payload_format(self, payload_type: int) -> PayloadFormat:
        return PayloadFormat(
            payload_type, self.encoding_name, self.clock_rate, self.channels, self.fmtp
        )


PCMU = Codec("PCMU", 8000, static_pt=0)
PCMA = Codec("PCMA", 8000, static_pt=8)
G722 = Codec("G722", 8000, static_pt=9)  # RTP clock 8000, sampled at 16 kHz (RFC 3551 §4.5.2)
OPUS = Codec("opus", 48000, 2, fmtp="useinbandfec=1")  # RFC 7587 §7: always opus/48000/2
TELEPHONE_EVENT = Codec("telephone-event", 8000, fmtp="0-16")  # RFC 4733: DTMF 0-15 and flash


def first_free_dynamic_pt(used: set[int]) -> int:
    """The lowest dynamic payload type (RFC 3551 §3) not in ``used``."""
    for pt in range(_FIRST_DYNAMIC_PT, _MAX_PT + 1):
        if pt not in used:
            return pt
    raise ValueError("no free dynamic payload type")
