"""What a worker thread running Python costs the event loop's callbacks, by switch interval
(``python benchmarks/bench_gil.py``; issue 7: the loop never stalls 20 ms).

The desktop phone computes safety numbers (5200 SHA-512 rounds in a Python loop) and QR codes
in worker threads while its loop runs. A thread that wants the GIL waits up to the
interpreter's switch interval while another runs Python, so a loop callback that gives the GIL
up several times (each socket call does) can wait that long each time. A stand-in callback (30
sends and receives on a socket pair, a little Python between them) is timed 40 times alone and
40 times beside a worker computing safety numbers without end, at Python's default 5 ms and at
the 1 ms ``softphone.ua.hand_over_the_gil_promptly`` sets. Prints median and max wall and CPU
per callback; asserts nothing.
"""

from __future__ import annotations

import socket
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUNS = 40


def main() -> None:
    from softphone.gil import SWITCH_INTERVAL
    from softphone.security.safety import iterated_digest

    key = bytes(range(91))  # an EC P-256 SubjectPublicKeyInfo is 91 bytes

    def safety_number() -> None:  # both halves, from scratch (what the memo saves)
        iterated_digest(key, b"sip:alice@atlanta.test", version=0)
        iterated_digest(key, b"sip:bob@biloxi.test", version=0)

    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)

    def callback() -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.thread_time()
        for _ in range(30):
            ours.send(b"x" * 200)
            theirs.recv(4096)
            sum(range(2000))
        return (time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000

    def measure(worker_busy: bool) -> str:
        stop = threading.Event()

        def worker() -> None:
            while not stop.is_set():
                safety_number()

        thread = threading.Thread(target=worker, daemon=True)
        if worker_busy:
            thread.start()
            time.sleep(0.02)
        samples = [callback() for _ in range(RUNS)]
        stop.set()
        if worker_busy:
            thread.join()
        walls, cpus = [s[0] for s in samples], [s[1] for s in samples]
        return (
            f"wall median {statistics.median(walls):5.2f} max {max(walls):6.2f} ms, "
            f"CPU median {statistics.median(cpus):5.2f} ms"
        )

    start = time.perf_counter()
    safety_number()
    print(f"one safety number, from scratch: {(time.perf_counter() - start) * 1000:.1f} ms")
    previous = sys.getswitchinterval()
    try:
        for interval in (0.005, SWITCH_INTERVAL, 0.005, SWITCH_INTERVAL):
            sys.setswitchinterval(interval)
            print(f"switch interval {interval * 1000:g} ms:")
            print(f"  callback alone:                    {measure(False)}")
            print(f"  callback beside a safety number:   {measure(True)}")
    finally:
        sys.setswitchinterval(previous)


if __name__ == "__main__":
    main()
