"""Scripted mutation testing (issue 13, suite 8): not collected by pytest.

Each mutant changes one thing in one module (a comparison flipped, ``and``
for ``or``, a ``not`` dropped, a constant off by one, ``True`` for
``False``, a statement replaced by ``pass``), is written into a scratch copy
of the package, and the tests that cover that module run against it (``-x``,
so a killed mutant stops at its first failure). A mutant the tests pass is a
*survivor*: a change of behaviour nothing noticed, or an equivalent mutant.

    .venv/bin/python tests/reliability/mutate.py                   # every target
    .venv/bin/python tests/reliability/mutate.py planner index     # some targets
    .venv/bin/python tests/reliability/mutate.py --jobs 2 --report mutants.json
    .venv/bin/python tests/reliability/mutate.py --retry mutants.json   # survivors only

Prints one line per survivor (module, line, what changed) and the score,
killed / (killed + survived); ``--report`` writes every result as JSON.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: module file -> the tests that cover it.
TARGETS: dict[str, list[str]] = {
    "framing": [
        "tests/test_framing.py",
        "tests/reliability/test_mutation_killers.py",
        "tests/reliability/test_power_loss.py",
        "tests/reliability/test_corruption.py",
        "tests/backends/test_file.py",
    ],
    "backends/log": [
        "tests/reliability/test_mutation_killers.py",
        "tests/backends/test_file.py",
        "tests/backends/test_file_instances.py",
        "tests/backends/test_file_read_only.py",
        "tests/reliability/test_fault_injection.py",
        "tests/reliability/test_power_loss.py",
        "tests/reliability/test_concurrency.py",
    ],
    "index": [
        "tests/reliability/test_mutation_killers.py",
        "tests/test_handlers.py",
        "tests/backends/test_memory.py",
        "tests/backends/test_file.py",
    ],
    "planner": [
        "tests/reliability/test_mutation_killers.py",
        "tests/test_planner.py",
        "property_tests/test_planner_props.py",
        "tests/test_store.py",
    ],
    "handlers": [
        "tests/reliability/test_mutation_killers.py",
        "tests/test_handlers.py",
        "tests/backends/test_file_instances.py",
    ],
    "evidence": [
        "tests/reliability/test_mutation_killers.py",
        "tests/test_evidence.py",
        "tests/test_handlers.py",
    ],
}

_FLIP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}


@dataclass
class Mutant:
    module: str
    index: int
    line: int
    change: str
    outcome: str = ""
    seconds: float = 0.0


def _docstring(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _sites(tree: ast.Module) -> Iterator[tuple[ast.AST, str, str]]:
    """(node, kind, description) for every place a mutation applies."""
    in_function: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            in_function |= {id(n) for n in ast.walk(fn) if n is not fn}
    for node in ast.walk(tree):
        if id(node) not in in_function:
            continue  # module level: constants, tables, classes' bodies
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _FLIP:
                    yield node, f"cmp{i}", f"{type(op).__name__} -> {_FLIP[type(op)].__name__}"
        elif isinstance(node, ast.BoolOp):
            yield (
                node,
                "bool",
                f"{type(node.op).__name__} -> {'Or' if isinstance(node.op, ast.And) else 'And'}",
            )
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield node, "not", "drop `not`"
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            yield node, "bool-const", f"{node.value} -> {not node.value}"
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            yield node, "int+1", f"{node.value} -> {node.value + 1}"
            if node.value:
                yield node, "int-1", f"{node.value} -> {node.value - 1}"
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
            yield node, "arith", "+ <-> -"
        elif (
            isinstance(node, ast.stmt)
            and not _docstring(node)
            and not isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Pass
            )
        ):
            yield node, "delete", f"`{ast.unparse(node).splitlines()[0][:60]}` -> pass"


def _apply(node: ast.AST, kind: str) -> ast.AST:
    if kind.startswith("cmp"):
        i = int(kind[3:])
        assert isinstance(node, ast.Compare)
        node.ops[i] = _FLIP[type(node.ops[i])]()
        return node
    if kind == "bool":
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        return node
    if kind == "not":
        assert isinstance(node, ast.UnaryOp)
        return node.operand
    if kind == "bool-const":
        assert isinstance(node, ast.Constant)
        node.value = not node.value
        return node
    if kind in ("int+1", "int-1"):
        assert isinstance(node, ast.Constant)
        node.value += 1 if kind == "int+1" else -1
        return node
    if kind == "arith":
        assert isinstance(node, ast.BinOp)
        node.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
        return node
    return ast.copy_location(ast.Pass(), node)


class _Replace(ast.NodeTransformer):
    """Replace one node (by identity) with its mutation."""

    def __init__(self, target: ast.AST, kind: str) -> None:
        self.target, self.kind = target, kind

    def visit(self, node: ast.AST) -> ast.AST:
        if node is self.target:
            return _apply(node, self.kind)
        return super().visit(node)


def mutants(module: str) -> Iterator[tuple[Mutant, str]]:
    """Every mutant of `module` and its source."""
    tree = ast.parse((ROOT / "durability" / f"{module}.py").read_text())
    count = sum(1 for _ in _sites(tree))
    for index in range(count):
        mutated = copy.deepcopy(tree)
        node, kind, change = list(_sites(mutated))[index]
        line = getattr(node, "lineno", 0)
        mutated = _Replace(node, kind).visit(mutated)
        ast.fix_missing_locations(mutated)
        yield Mutant(module, index, line, change), ast.unparse(mutated)


def scratch() -> Path:
    """A copy of the package beside links to the tests, specs and config."""
    root = Path(tempfile.mkdtemp(prefix="durability-mutant-"))
    shutil.copytree(ROOT / "durability", root / "durability")
    for name in ("tests", "property_tests", "specs", "README.md", "pyproject.toml"):
        (root / name).symlink_to(ROOT / name)
    return root


def run(mutant: Mutant, source: str, root: Path, timeout: float) -> Mutant:
    target = root / "durability" / f"{mutant.module}.py"
    original = (ROOT / "durability" / f"{mutant.module}.py").read_text()
    target.write_text(source)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-x",
                "-q",
                "-p",
                "no:warnings",
                *TARGETS[mutant.module],
            ],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True,
            timeout=timeout,
        )
        mutant.outcome = "survived" if done.returncode == 0 else "killed"
    except subprocess.TimeoutExpired:
        mutant.outcome = "killed (timeout)"
    finally:
        target.write_text(original)
    mutant.seconds = round(time.monotonic() - started, 1)
    return mutant


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", default=list(TARGETS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--report", type=Path)
    parser.add_argument("--list", action="store_true", help="only count the mutants")
    parser.add_argument(
        "--retry", type=Path, help="a --report of an earlier run: run its survivors again"
    )
    args = parser.parse_args()
    work = [(m, s) for target in args.targets for m, s in mutants(target)]
    if args.retry:
        earlier = json.loads(args.retry.read_text())
        survivors = {(m["module"], m["index"]) for m in earlier if m["outcome"] == "survived"}
        work = [(m, s) for m, s in work if (m.module, m.index) in survivors]
    if args.list:
        for target in args.targets:
            print(target, sum(1 for m, _ in work if m.module == target))
        return 0
    roots = [scratch() for _ in range(args.jobs)]
    results: list[Mutant] = []

    def worker(slot: int) -> None:
        for i in range(slot, len(work), args.jobs):
            mutant = run(*work[i], roots[slot], args.timeout)
            results.append(mutant)
            if mutant.outcome == "survived":
                print(f"SURVIVED {mutant.module}.py:{mutant.line} {mutant.change}", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(worker, range(args.jobs)))
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)
    if args.retry:  # the earlier run's kills count; its survivors are what ran now
        again = {(m.module, m.index) for m in results}
        results += [Mutant(**m) for m in earlier if (m["module"], m["index"]) not in again]
    killed = sum(1 for m in results if m.outcome.startswith("killed"))
    for target in args.targets:
        mine = [m for m in results if m.module == target]
        dead = sum(1 for m in mine if m.outcome.startswith("killed"))
        print(f"{target}: {dead}/{len(mine)} killed")
    print(f"score: {killed}/{len(results)} = {killed / max(1, len(results)):.1%}")
    if args.report:
        args.report.write_text(json.dumps([asdict(m) for m in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
