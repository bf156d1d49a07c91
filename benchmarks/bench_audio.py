"""The sound card's cost to its caller: opening and closing PortAudio streams (``python
benchmarks/bench_audio.py``).

Through a private headless PulseAudio with a null sink (tests/media/pulse.py), reached by
PortAudio through ALSA's pulse plugin, as on a desktop. For a microphone (``DeviceSource``) and
a speaker (``DeviceSink``) with 300 ms of audio flowing: the time to open, the time ``close()``
takes (PortAudio's ``stop()`` drains the buffers, then ``close()``), and what ``close_soon()``
costs its caller (the call's event loop, at hang-up: the drain runs on a thread of its own), and
how long until that thread is done. Median of ``ROUNDS``; prints figures, asserts nothing.
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
        print("sound card through PulseAudio's null sink (ALSA pulse plugin), median of", ROUNDS)
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
