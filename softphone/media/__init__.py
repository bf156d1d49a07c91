"""softphone.media: the RTP/SRTP loop of a call (ARCHITECTURE.md "SRTP media").

Own RTP loop over ``aiortc.codecs`` and ``aiortc.rtp.RtpPacket``, SRTP by ``pylibsrtp`` keyed
from SDES ``a=crypto`` (or from DTLS-SRTP keys passed in), own jitter buffer and RTCP.

==================  =================================================================
module              what
==================  =================================================================
``srtp``            :class:`SrtpContext` (suite -> libsrtp profile), typed drop reasons
``rtcp``            SR/RR/SDES/BYE, RFC 3550 A.1/A.3/A.8 statistics, RTT, RFC 5761 demux
``jitter``          adaptive play-out buffer, loss concealment (sans-I/O, ``now`` in)
``dtmf``            RFC 4733 telephone-event send and receive (sans-I/O)
``codecs``          PCMU, PCMA, G.722, opus at a 48 kHz internal rate, resampler
``tone`` / ``wav``  sources and sinks without a sound card; Goertzel tone detector
``rtp_session``     :class:`MediaSession`: sockets, symmetric RTP, latching, events
``thread``          the media thread: a session's loop off the caller's (the GUI's) loop
==================  =================================================================

Only ``rtp_session`` does I/O (asyncio UDP), on the caller's loop or the media thread's.
PCM everywhere is 16-bit mono at 48 kHz in 20 ms frames (960 samples).
"""

from __future__ import annotations

from softphone.media.codecs import INTERNAL_FRAME_SAMPLES, INTERNAL_RATE
from softphone.media.rtp_session import (
    DtmfReceived,
    MediaEvent,
    MediaResumed,
    MediaSession,
    MediaStatistics,
    MediaTimeout,
    ReservedPorts,
    SourceLatched,
    protection_for,
    reserve_ports,
)
from softphone.media.srtp import SUPPORTED_SUITES, DropReason, SrtpContext
from softphone.media.tone import AudioSink, FrameSource

__all__ = [
    "INTERNAL_FRAME_SAMPLES",
    "INTERNAL_RATE",
    "SUPPORTED_SUITES",
    "AudioSink",
    "DropReason",
    "DtmfReceived",
    "FrameSource",
    "MediaEvent",
    "MediaResumed",
    "MediaSession",
    "MediaStatistics",
    "MediaTimeout",
    "ReservedPorts",
    "SourceLatched",
    "SrtpContext",
    "protection_for",
    "reserve_ports",
]
