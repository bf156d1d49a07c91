"""The sound card's cost to its caller: opening and closing PortAudio streams (``python
benchmarks/bench_audio.py``).

Through a private headless PulseAudio with a null sink (tests/media/pulse.py), reached by
PortAudio through ALSA's pulse plugin, as on a desktop. For a microphone (``DeviceSource``) and
a speaker (``DeviceSink``) with 300 ms of audio flowing: the time to open, the time ``close()``
takes (PortAudio's ``stop()`` drains the buffers, then ``close()``), and what ``close_soon()``
costs its caller (the call's event loop, at hang-up: the drain runs on a thread of its own), and
how long until that thread is done. Median of ``ROUNDS``; prints figures, asserts nothing.

Then the media thread (softphone/media/thread.py) against a busy window: two Opus/SRTP sessions
on the media thread, and this (the "window's") thread running Python flat out for 2 s: how many
of the 100 packets due were sent meanwhile, what the receiver concealed and dropped, and its
jitter, with the interpreter's switch interval at 5 ms (Python's default) and at 1 ms (what
starting a media thread sets).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROUNDS = 3
FLOW = 0.3


def _ms(samples: list[float]) -> str:
    return f"{1000 * statistics.median(samples):7.1f} ms (max {1000 * max(samples):.1f})"


async def _busy_window(interval: float) -> str:
    import asyncio

    from softphone.media.rtp_session import MediaSession, reserve_ports
    from softphone.media.thread import shared_media_thread
    from softphone.media.tone import ToneSource
    from softphone.sdp.crypto import SrtpSuite
    from tests.interop.helpers import Recorder
    from tests.media.test_session import CODECS, negotiated_pair

    thread = shared_media_thread()
    thread.call(lambda: None)  # started (it lowers the interval)
    sys.setswitchinterval(interval)
    a_ports, b_ports = reserve_ports("127.0.0.1"), reserve_ports("127.0.0.1")
    neg_a, neg_b, _, _ = negotiated_pair(
        CODECS["opus"], a_ports, b_ports, suite=SrtpSuite.AEAD_AES_256_GCM
    )
    a = MediaSession(neg_a, ports=a_ports, source=ToneSource(1000), thread=thread)
    b = MediaSession(neg_b, ports=b_ports, source=ToneSource(440), sink=Recorder(), thread=thread)
    try:
        await a.start()
        await b.start()
        await asyncio.sleep(1.0)
        sent, before = a.packets_sent, b.statistics()
        end, x = time.perf_counter() + 2.0, 0
        while time.perf_counter() < end:  # the window's thread busy in Python
            for i in range(1000):
                x += i * i
        sent = a.packets_sent - sent
        await asyncio.sleep(0.5)
        after = b.statistics()
    finally:
        await a.stop()
        await b.stop()
    drops = {k: v - before.drops.get(k, 0) for k, v in after.drops.items()}
    return (
        f"switch interval {1000 * interval:g} ms: {sent} of 100 packets sent, "
        f"{after.concealed - before.concealed} frames concealed, drops {drops}, "
        f"jitter {after.jitter_ms:.1f} ms"
    )


def media_thread_vs_busy_window() -> None:
    import asyncio

    print("media thread while the window's thread runs Python flat out for 2 s:")
    previous = sys.getswitchinterval()
    try:
        for interval in (0.005, 0.001, 0.005, 0.001):
            print("  " + asyncio.run(_busy_window(interval)))
    finally:
        sys.setswitchinterval(previous)


def main() -> None:
    from softphone.media import devices
    from softphone.media.devices import DeviceSink, DeviceSource
    from tests.media.pulse import PulseUnavailable, start_private_pulse

    try:
        daemon = start_private_pulse()
    except PulseUnavailable as missing:
        print(f"sound card: not measured ({missing})")
        return
    os.environ.update(daemon.env)
    try:
        devices.rescan()
        print(
            "sound card through PulseAudio's null sink (kept rendering at 10 ms; ALSA pulse"
            " plugin), median of",
            ROUNDS,
        )
        kinds: list[tuple[str, Callable[[], DeviceSource | DeviceSink]]] = [
            ("microphone (DeviceSource)", lambda: DeviceSource("pulse")),
            ("speaker (DeviceSink)", lambda: DeviceSink("pulse")),
        ]
        for label, make in kinds:
            opened, closed, soon, drained = [], [], [], []
            for _ in range(ROUNDS):
                for way in ("close", "close_soon"):
                    t0 = time.perf_counter()
                    device = make()
                    opened.append(time.perf_counter() - t0)
                    time.sleep(FLOW)
                    t0 = time.perf_counter()
                    if way == "close":
                        device.close()
                        closed.append(time.perf_counter() - t0)
                    else:
                        device.close_soon()
                        soon.append(time.perf_counter() - t0)
                        devices.wait_closed()
                        drained.append(time.perf_counter() - t0)
            print(f"  {label}:")
            print(f"    open                                   {_ms(opened)}")
            print(f"    close(): stop (drain) + close          {_ms(closed)}")
            print(f"    close_soon(): what the caller waits    {_ms(soon)}")
            print(f"    close_soon(): until its thread is done {_ms(drained)}")
    finally:
        daemon.stop()


if __name__ == "__main__":
    main()
    media_thread_vs_busy_window()
