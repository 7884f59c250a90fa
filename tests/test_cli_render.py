"""durability.render: the CLI's text and JSON, pure and below the command line."""

from __future__ import annotations

import ast
from pathlib import Path

import durability
from durability import render

PACKAGE = Path(durability.__file__).resolve().parent


def _imported_modules(path: Path) -> set[str]:
    """Modules a source file imports, relative ones resolved inside the package."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = "durability" + (f".{base}" if base else "")
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_render_and_console_never_import_the_command_line() -> None:
    for name in ("render.py", "console.py"):
        imported = _imported_modules(PACKAGE / name)
        assert not {m for m in imported if m.startswith("durability.cli")}, (name, imported)


def test_command_line_modules_stay_near_400_lines() -> None:
    for name in ("cli.py", "render.py", "console.py"):
        lines = len((PACKAGE / name).read_text().splitlines())
        assert lines <= 420, f"{name} has {lines} lines"


def test_table_aligns_columns_and_prints_none_as_dash() -> None:
    assert render.table(("op", "level"), [("a", "soft_safe"), ("bb", None)]).splitlines() == [
        "op  level",
        "--  ---------",
        "a   soft_safe",
        "bb  -",
    ]


def test_a_clean_log_has_no_torn_tail() -> None:
    assert render.tail_json(None) is None
    assert render.tail_line(None) == "no torn tail"
    assert render.repair_lines({"wal.log": None, "evidence.log": None}) == []
