"""The top-level modules (each subcommand's entry point and what they import first) import on
their own, in a fresh interpreter: an import cycle between the façade (softphone.ua) and a module
it re-exports once broke ``import softphone.identity_store`` and so ``softphone cert``, while
every test that had imported softphone.ua first still passed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules() -> list[str]:
    top = [f"softphone.{p.stem}" for p in sorted((ROOT / "softphone").glob("*.py"))]
    packages = [
        f"softphone.{p.parent.name}" for p in sorted((ROOT / "softphone").glob("*/__init__.py"))
    ]
    return [m for m in top if not m.endswith(("__init__", "__main__"))] + packages + ["ui.app"]


def test_each_module_imports_first_in_a_fresh_interpreter() -> None:
    code = (
        "import importlib, subprocess, sys\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    r = subprocess.run([sys.executable, '-c', f'import {name}'], capture_output=True,"
        " text=True)\n"
        "    if r.returncode:\n"
        "        failed.append(name + ': ' + (r.stderr.strip().splitlines() or ['?'])[-1])\n"
        "print('\\n'.join(failed))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *_modules()],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert result.stdout.strip() == "", result.stdout
