"""The house rules about who may import what, checked on the source (see docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parents[2] / "bot"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _importers(prefix: str) -> set[str]:
    return {
        str(path.relative_to(BOT.parent))
        for path in BOT.rglob("*.py")
        if any(name == prefix or name.startswith(prefix + ".") for name in _imports(path))
    }


def test_only_storage_imports_the_orm_models() -> None:
    outside = {p for p in _importers("bot.storage.models") if not p.startswith("bot/storage/")}
    assert outside == set(), "use a repository function in bot/storage/ instead"


def test_only_the_telegram_channel_imports_telegram() -> None:
    assert _importers("telegram") == {"bot/channels/telegram.py"}


def test_the_shipped_package_never_imports_the_test_suite() -> None:
    assert _importers("tests") == set()
