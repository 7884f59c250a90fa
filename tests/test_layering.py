"""Data flows one way (STYLE.md §2): every import inside the package goes
down the layout below, never up or sideways. The table is the layout; a
module may import what it builds on and, transitively, what those build on.
A module missing from the table fails the test: place it first."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "durability"

#: module -> the modules it builds on (directly). `__init__` and `__main__`
#: of the root only re-export / start the CLI and may import anything.
LAYOUT: dict[str, tuple[str, ...]] = {
    "errors": (),
    "limits": (),
    "model": ("errors",),
    "fileio": ("errors", "limits"),
    "effects": ("model",),
    "artifact": ("model", "effects", "limits"),
    "structuring": ("artifact",),
    "codec": ("artifact", "structuring"),
    "schema_versions": ("codec", "limits"),
    "persisted": ("codec", "fileio", "schema_versions"),
    "tails": ("errors",),
    "framing": ("codec", "limits", "tails"),
    "index": ("artifact",),
    "intents": ("codec",),
    "digest": ("codec",),
    "decisions": ("model",),
    "explanation": ("artifact", "decisions"),
    "operation_recovery": ("artifact", "decisions", "explanation"),
    "planner": ("artifact", "index", "decisions", "intents", "operation_recovery"),
    "suffixplan": ("planner",),
    "replay": ("codec", "effects"),
    "backends": (),
    "backends.protocols": ("artifact", "index", "intents"),
    "backends.memory": ("backends.protocols", "index", "intents"),
    "backends.modes": (),
    "backends.group": (),
    "backends.logstate": ("framing", "persisted", "index", "intents", "backends.segindex"),
    "backends.logread": ("framing", "fileio", "backends.modes"),
    "backends.segindex": ("codec", "model"),
    "backends.logrepair": ("backends.logread", "backends.modes"),
    "backends.log": (
        "backends.group",
        "backends.logstate",
        "backends.logread",
        "backends.logrepair",
        "fileio",
    ),
    "backends.segments": ("backends.logstate", "backends.logread", "backends.segindex"),
    "backends.seglog": ("backends.log", "backends.segments"),
    "backends.inspection": (
        "backends.logread",
        "backends.logstate",
        "backends.modes",
        "backends.segments",
    ),
    "backends.filelog": ("backends.log",),
    "backends.filewal": ("backends.filelog", "backends.seglog", "index"),
    "backends.file": (
        "backends.filelog",
        "backends.filewal",
        "backends.inspection",
        "index",
        "intents",
    ),
    "backends.sqlschema": (),
    "backends.sql": ("codec", "backends.sqlschema"),
    "backends.sqltx": ("backends.sql", "intents"),
    "backends.sqlwal": ("backends.sql", "backends.protocols", "index"),
    "backends.sqlcache": ("backends.sqltx", "backends.protocols"),
    "backends.sqlite": ("backends.sqlwal", "backends.sqlcache"),
    "backends.postgres": ("backends.sqlwal", "backends.sqlcache"),
    "urls": ("backends.file", "backends.sqlite", "backends.postgres"),
    "handlers": ("backends.protocols", "effects", "index"),
    "effectflow": ("intents", "digest"),
    "evidence": ("backends.protocols", "effectflow", "effects", "index"),
    "decorators": ("handlers", "evidence"),
    "locate": ("backends.file", "backends.protocols", "explanation"),
    "repair_scan": ("backends.logread", "backends.logstate", "backends.modes"),
    "repair": ("repair_scan", "backends.inspection", "verify"),
    "store": (
        "backends.file",
        "backends.memory",
        "urls",
        "handlers",
        "evidence",
        "planner",
        "locate",
        "suffixplan",
    ),
    "demo_worker": ("store",),
    "demo": ("demo_worker",),
    "reading": ("urls",),
    "verify": ("reading", "planner", "suffixplan"),
    "migrate": ("reading",),
    "render_segments": ("backends.file",),
    "render": ("store", "verify", "render_segments"),
    "render_explain": ("render",),
    "render_repair": ("render", "repair"),
    "render_actions": ("render", "demo", "migrate"),
    "console": ("backends.modes",),
    "commands": ("store", "render", "render_explain", "console", "verify"),
    "cli_effects": ("store", "urls", "console"),
    "cli_repair": ("render_repair", "urls", "console"),
    "rationale": ("planner", "errors"),
    "report": ("store", "rationale"),
    "report_script": (),
    "report_html": ("report", "report_script"),
    "cli_report": ("report_html", "console", "reading"),
    "cli": (
        "commands",
        "demo",
        "migrate",
        "render_actions",
        "cli_effects",
        "cli_report",
        "cli_repair",
    ),
    "testing": (
        "testing.strategies",
        "testing.contract",
        "testing.machine",
        "testing.crashtest",
        "testing.faults",
    ),
    "testing.strategies": ("artifact", "persisted"),
    "testing._case": (),
    "testing._builders": ("artifact", "intents"),
    "testing._wal_contract": ("backends.protocols", "testing._builders", "testing._case"),
    "testing._intent_contract": (
        "backends.protocols",
        "testing._builders",
        "testing._case",
        "intents",
    ),
    "testing._cache_contract": (
        "backends.protocols",
        "testing._builders",
        "testing._intent_contract",
    ),
    "testing.contract": ("testing._wal_contract", "testing._cache_contract"),
    "testing.machine": ("backends.memory", "testing.strategies"),
    "testing.powerloss": ("fileio",),
    "testing.timedkill": (),
    "testing.crashreport": ("testing.powerloss",),
    "testing.crashtest": ("fileio", "testing.powerloss", "testing.crashreport"),
    "testing.faults": ("fileio", "testing.powerloss", "testing.timedkill", "backends.file"),
}
ROOT_ENTRY_POINTS = {"__init__", "__main__"}


def allowed(layout: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    """Each module's transitive closure of what it builds on."""
    closure: dict[str, set[str]] = {}

    def visit(module: str, trail: tuple[str, ...]) -> set[str]:
        if module in closure:
            return closure[module]
        assert module not in trail, f"the layout has a cycle: {' -> '.join((*trail, module))}"
        reach: set[str] = set()
        for below in layout[module]:
            reach |= {below, *visit(below, (*trail, module))}
        closure[module] = reach
        return reach

    for module in layout:
        visit(module, ())
    return closure


def module_name(path: Path) -> str:
    """``durability/backends/file.py`` -> ``backends.file``; a package's
    ``__init__.py`` -> the package (``testing``), the root's -> ``__init__``."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """The package modules `path` imports (top level or inside functions)."""
    name = module_name(path)
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    if name == "__init__":
        package = []
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.split(".")[0] == "durability":
                target = node.module.split(".")[1:]
            else:
                continue
            candidates = [".".join(target)] if target else []
            candidates += [".".join([*target, alias.name]) for alias in node.names]
            found |= {c for c in candidates if c and _exists(c)}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "durability" and len(parts) > 1:
                    found.add(".".join(parts[1:]))
    return found


def _exists(module: str) -> bool:
    base = PACKAGE.joinpath(*module.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def violations(
    graph: Mapping[str, Iterable[str]], layout: Mapping[str, Iterable[str]]
) -> list[str]:
    """Every import in `graph` (module -> imported modules) that `layout` forbids."""
    reach = allowed(layout)
    problems = []
    for module, imported in sorted(graph.items()):
        if module in ROOT_ENTRY_POINTS:
            continue
        if module not in layout:
            problems.append(f"{module} is not in the layout: place it in LAYOUT first")
            continue
        for target in sorted(imported):
            if target != module and target not in reach[module]:
                problems.append(f"{module} imports {target}, which is not below it")
    return problems


def package_graph() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in sorted(PACKAGE.rglob("*.py"))}


def test_every_import_goes_down_the_layout() -> None:
    assert violations(package_graph(), LAYOUT) == []


def test_a_back_import_is_caught() -> None:
    graph = package_graph()
    graph["codec"] = {*graph["codec"], "store"}  # codec reaching up to the store
    graph["model"] = {*graph["model"], "effects"}  # up by one layer
    added = set(violations(graph, LAYOUT)) - set(violations(package_graph(), LAYOUT))
    assert sorted(added) == [
        "codec imports store, which is not below it",
        "model imports effects, which is not below it",
    ]


def test_a_new_module_must_be_placed() -> None:
    assert violations({"shiny": {"errors"}}, LAYOUT) == [
        "shiny is not in the layout: place it in LAYOUT first"
    ]


def test_no_module_is_over_about_400_lines() -> None:
    sizes = {
        module_name(path): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")
    }
    assert {module: n for module, n in sizes.items() if n > 420} == {}


def test_the_graph_reads_relative_and_absolute_imports() -> None:
    graph = package_graph()
    assert "backends.filelog" in graph["backends.file"]  # from .filelog import ...
    assert "fileio" in graph["backends.log"]  # from ..fileio import ...
    assert "demo" in graph["cli"]  # imported inside a function
