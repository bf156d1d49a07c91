"""The trust ledger on the event loop (issue 7: the loop never stalls 20 ms during a call).

A sipsec or S/MIME call's set-up asks the user agent's :class:`~softphone.ua.trustledger.
LedgerKeeper` four to six times (pins, state, the certificate, the S/MIME preference) and
records the peer's certificate once (a save). This prints, per ledger size, what one question
costs when the file must be parsed (another program saved it) and when the parsed ledger is
kept (the file unchanged), and what one recorded certificate costs (serialise, write, fsync).

    python benchmarks/bench_ledger.py
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from softphone.contacts import load_ledger, save_ledger
from softphone.security.ledger import Seen, TrustLedger
from softphone.ua.trustledger import LedgerKeeper
from tests.transport import certs

SIZES = (20, 100, 500)
ROUNDS = 9


def _ms(action: Callable[[], object], before: Callable[[], object] = lambda: None) -> float:
    """The median of ROUNDS timed ``action()``, each after an untimed ``before()``."""
    times = []
    for _ in range(ROUNDS):
        before()
        began = time.perf_counter()
        action()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def _one_size(size: int, pool: list[x509.Certificate], caller: x509.Certificate) -> str:
    now = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        path = Path(tmp) / "contacts.json"
        ledger = TrustLedger()
        for i in range(size):
            ledger.observe(f"sips:user{i}@example.test", pool[i % len(pool)], Seen.MANUAL, now)
        save_ledger(path, ledger)
        keeper = LedgerKeeper(path, Path(tmp) / "pins.json")

        def someone_else_saved() -> None:  # as `softphone contacts` would
            save_ledger(path, load_ledger(path))

        def question() -> None:
            keeper.state("sips:user0@example.test")

        parsed = _ms(question, someone_else_saved)
        kept = _ms(question)
        record = _ms(lambda: keeper.observe("sips:alice@atlanta.test", caller, Seen.SIPSEC))
        kib = path.stat().st_size / 1024
    return (f"{size:>8}  {kib:>4.0f} KiB  {parsed:>13.2f} ms  {kept:>11.2f} ms  "
            f"{record:>17.2f} ms")  # fmt: skip


def main() -> None:
    ca = certs.make_ca("Bench ledger CA")
    pool = [certs.issue(ca, f"host{i}.test").cert for i in range(20)]
    caller = certs.issue(ca, "atlanta.test").cert
    print(f"{'contacts':>8}  {'file':>7}  {'question, parsed':>16}  {'question, kept':>14}  "
          f"{'record a certificate':>20}")  # fmt: skip
    for size in SIZES:
        print(_one_size(size, pool, caller))


if __name__ == "__main__":
    main()
