"""ARCHITECTURE.md: ``ui/`` drives the engine through ``softphone.ua`` only (one façade), and
nothing in ``softphone/`` imports Qt."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_ui_imports_only_the_ua_facade() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "ui").glob("*.py"))
        for name in _imports(path)
        if name.startswith("softphone")
        and name != "softphone"
        and not (name == "softphone.ua" or name.startswith("softphone.ua."))
    ]
    assert offenders == []


def test_the_engine_never_imports_qt() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "softphone").rglob("*.py"))
        for name in _imports(path)
        if name.split(".")[0] in ("PySide6", "qasync", "shiboken6", "ui")
    ]
    assert offenders == []
