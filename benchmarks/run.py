"""Run every ``benchmarks/bench_*.py`` in turn (``make bench``).

Benchmarks print figures and ratios against a peer where one exists; they never assert a time.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).resolve().parent
    root = here.parent
    sys.path.insert(0, str(root))
    for path in sorted(here.glob("bench_*.py")):
        print(f"== {path.stem}")
        runpy.run_path(str(path), run_name="__main__")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
