"""Instructions per full parse, ours against sippy, counted by callgrind (issue 2).

``python benchmarks/bench_parse_instructions.py [--low 200] [--high 1200]``

Wall-clock time on a shared machine is noisy; the number of instructions a parse executes is
not. For each parser this runs ``valgrind --tool=callgrind`` twice on this same script in
worker mode: 50 warm-up parses, then ``low`` (resp. ``high``) full parses as defined in
``bench_parse.py`` (``ours_full`` and sippy's ``full``). Everything but the loop is the same in
both runs, so ``(Ir(high) - Ir(low)) / (high - low)`` is the cost of one parse, start-up and
imports excluded. Prints the counts for ours and sippy side by side and their ratio; asserts
nothing. Without valgrind (or sippy) it says so and exits 0.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

_WARM_UP = 50
_TOTAL_RE = re.compile(rb"^(?:summary|totals):\s*([0-9]+)", re.M)


def _worker(which: str, count: int) -> None:
    import bench_parse

    func: Callable[[], object]
    if which == "ours":
        func = bench_parse.ours_full
    else:
        pair = bench_parse._sippy()
        if pair is None:
            raise SystemExit("sippy is not importable")
        func = pair[1]
    for _ in range(_WARM_UP):
        func()
    for _ in range(count):
        func()


def _instructions(which: str, count: int, workdir: str) -> int:
    """Total instructions (Ir) of one callgrind run of the worker."""
    out = os.path.join(workdir, f"callgrind.{which}.{count}")
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--worker",
            which,
            str(count),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    m = _TOTAL_RE.search(Path(out).read_bytes())
    if m is None:
        raise RuntimeError(f"no instruction total in {out}")
    return int(m.group(1))


def per_parse(which: str, low: int, high: int) -> float:
    """Instructions of one full parse: the difference of two runs over their parse counts."""
    with tempfile.TemporaryDirectory(prefix="bench-parse-cg-") as workdir:
        return (_instructions(which, high, workdir) - _instructions(which, low, workdir)) / (
            high - low
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--low", type=int, default=200)
    parser.add_argument("--high", type=int, default=1200)
    parser.add_argument("--only", choices=("ours", "sippy"))
    parser.add_argument("--worker", nargs=2, metavar=("WHICH", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker[0], int(args.worker[1]))
        return
    if shutil.which("valgrind") is None:
        print("valgrind not found: no instruction counts (apt-get install valgrind)")
        return
    import bench_parse

    contenders = ["ours"]
    if args.only != "ours":
        if bench_parse._sippy() is None:
            print("  sippy: not importable, skipped")
        else:
            contenders.append("sippy")
    if args.only == "sippy":
        contenders.remove("ours")
    print(
        f"INVITE of {len(bench_parse.INVITE)} bytes; instructions per full parse "
        f"(callgrind, ({args.high} - {args.low} parses) / {args.high - args.low})"
    )
    counts = {}
    for which in contenders:
        counts[which] = per_parse(which, args.low, args.high)
        print(f"  {which:<6} {counts[which] / 1000:8.1f}k instructions per parse")
    if "ours" in counts and "sippy" in counts:
        print(f"  -> ours executes {counts['sippy'] / counts['ours']:.2f}x fewer instructions")


if __name__ == "__main__":
    main()
