"""Issue 7, cold start: the GUI shows its window before the engine proper is imported.

``softphone.ua`` re-exports lazily (PEP 562), so importing the GUI (``ui.app``, which builds
the main window) must not pull in media (aiortc, PyAV), the user agent or S/MIME; those
arrive with the first account, after the window is shown. The figure itself (time to a
visible window) is measured in ``benchmarks/bench_gui.py``, never asserted here.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import softphone.ua

ROOT = Path(__file__).resolve().parents[2]

#: Modules that must not be loaded before the first account starts.
HEAVY = (
    "aiortc",
    "av",
    "softphone.media",
    "softphone.ua.useragent",
    "softphone.ua.call",
    "softphone.security.smime",
    "softphone.transport.flow",
)

_PROBE = """
import json, sys
import ui.app
from ui.app import Phone
print(json.dumps(sorted(sys.modules)))
"""


def test_importing_the_gui_leaves_the_engine_unloaded() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    ).stdout
    loaded = set(json.loads(out.splitlines()[-1]))
    early = sorted(
        name for name in loaded for heavy in HEAVY if name == heavy or name.startswith(heavy + ".")
    )
    assert early == []


def test_every_lazy_name_resolves_to_its_module_attribute() -> None:
    import importlib

    lazy = softphone.ua._LAZY
    assert set(lazy) == set(softphone.ua.__all__)
    for name, (module, attribute) in lazy.items():
        assert getattr(softphone.ua, name) is getattr(importlib.import_module(module), attribute)
    assert set(softphone.ua.__all__) <= set(dir(softphone.ua))


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        softphone.ua.NoSuchThing  # noqa: B018 - the access is the test
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:  # pragma: no cover - a failure
        raise AssertionError("softphone.ua.NoSuchThing resolved")


def test_the_type_checking_imports_match_the_lazy_table() -> None:
    """mypy reads the ``if TYPE_CHECKING:`` imports, Python the table: they must agree."""
    source = Path(softphone.ua.__file__).read_text(encoding="utf-8")
    seen: dict[str, tuple[str, str]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("softphone"):
            for alias in node.names:
                seen[alias.asname or alias.name] = (node.module, alias.name)
    assert seen == softphone.ua._LAZY
