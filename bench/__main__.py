"""``python -m bench [--quick] [--only NAME] [--out DIR] [--profile]``.

Runs the groups (append, original, handlers, effects, load, sql), then writes
``RESULTS.md``, ``results.json`` and ``chart.png`` into ``--out`` (default:
this folder; with ``--quick``, a new temporary folder, so a quick run never
overwrites the committed results). Progress goes to stderr. Exits 1 when a
group failed (its rows say ``ERROR``), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import append, effects, handlers, load, original, sql
from .peers import optional
from .report import machine, now, write_chart, write_json, write_markdown
from .runner import CATALOG, Context, Row, skipped_row

GROUPS: dict[str, Callable[[Context], list[Row]]] = {
    "append": append.run,
    "original": original.run,
    "handlers": handlers.run,
    "effects": effects.run,
    "load": load.run,
    "sql": sql.run,
}

HERE = Path(__file__).resolve().parent


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark durability against the physical limits, its peers and the "
        "Rust original's algorithm; write RESULTS.md, results.json and chart.png.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, seconds: checks that the harness works (figures mean nothing)",
    )
    parser.add_argument(
        "--only",
        metavar="NAME",
        action="append",
        help="run only this group (append, original, handlers, effects, load, sql) or the group "
        "of this row id; repeat or separate with commas",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        help="where to write the results (default: bench/; with --quick, a new temporary folder)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile our side of every missed target with pyinstrument "
        "(profile-<row>.txt in --out; the main thread only: use py-spy for threads)",
    )
    parser.add_argument(
        "--keep-scratch", action="store_true", help="keep the scratch files (in --out)"
    )
    return parser.parse_args(argv)


def _selected(only: list[str] | None) -> list[str]:
    if not only:
        return list(GROUPS)
    by_row = {entry.id: entry.group for entry in CATALOG}
    chosen = set()
    for name in (part.strip() for item in only for part in item.split(",")):
        if name in GROUPS:
            chosen.add(name)
        elif name in by_row:
            chosen.add(by_row[name])
        else:
            names = ", ".join([*GROUPS, *by_row])
            print(f"python -m bench: unknown --only {name!r}; known: {names}", file=sys.stderr)
            raise SystemExit(2)
    return [group for group in GROUPS if group in chosen]


def _profile(ctx: Context, rows: list[Row]) -> None:
    if optional("pyinstrument") is None:
        ctx.log("--profile: pyinstrument is not installed (pip install -e '.[bench]')")
        return
    pyinstrument = optional("pyinstrument")
    assert pyinstrument is not None
    for row in rows:
        if row.status != "missed" or row.profile is None:
            continue
        ctx.log(f"profiling our side of {row.spec.id}")
        profiler = pyinstrument.Profiler(interval=0.0005)
        profiler.start()
        try:
            started = time.perf_counter()
            row.profile()  # one repetition, again until the profile has 2 s of samples
            while time.perf_counter() - started < 2.0:
                row.profile()
        except Exception:
            traceback.print_exc()
            ctx.log(f"profiling {row.spec.id} failed; no profile written")
            continue
        finally:
            profiler.stop()
        text = profiler.output_text(unicode=False, color=False, show_all=False)
        (ctx.out / f"profile-{row.spec.id}.txt").write_text(text, encoding="utf-8")


def main(argv: list[str]) -> int:
    args = _parse(argv)
    groups = _selected(args.only)
    if args.out is not None:
        out = args.out
    elif args.quick:
        out = Path(tempfile.mkdtemp(prefix="durability-bench-quick-"))
    else:
        out = HERE
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".scratch-", dir=out))
    ctx = Context(quick=args.quick, out=out, scratch=scratch, profile=args.profile)
    info = machine(scratch)
    date = now()
    started = time.perf_counter()
    ctx.log(f"{'quick' if args.quick else 'full'} run of {', '.join(groups)}; results in {out}")
    measured: dict[str, Row] = {}
    failed = False
    try:
        for group in groups:
            ctx.log(f"== {group}")
            try:
                for row in GROUPS[group](ctx):
                    measured[row.spec.id] = row
            except Exception as exc:
                failed = True
                traceback.print_exc()
                message = f"the {group} group failed: {type(exc).__name__}: {exc}"
                for entry in CATALOG:
                    if entry.group == group and entry.id not in measured:
                        measured[entry.id] = skipped_row(entry.id, message, "error")
        rows = [
            measured.get(entry.id) or skipped_row(entry.id, "not run (`--only`)", "not run")
            for entry in CATALOG
        ]
        seconds = time.perf_counter() - started
        _write(ctx, rows, info=info, date=date, seconds=seconds, only=args.only)
        if args.profile:
            _profile(ctx, rows)
    finally:
        if not args.keep_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    return 1 if failed else 0


def _write(
    ctx: Context,
    rows: list[Row],
    *,
    info: dict[str, Any],
    date: str,
    seconds: float,
    only: list[str] | None,
) -> None:
    out = ctx.out
    info["load_average"] += f" at start; {machine(out)['load_average']} at end"
    chart_note = write_chart(out / "chart.png", ctx)
    write_json(out / "results.json", rows, ctx=ctx, info=info, date=date, seconds=seconds)
    write_markdown(
        out / "RESULTS.md",
        rows,
        ctx=ctx,
        info=info,
        date=date,
        seconds=seconds,
        only=only,
        chart_note=chart_note,
    )
    for row in rows:
        if row.spec.target is not None:
            figure = "—" if row.figure is None else f"{row.figure:.3g}"
            ctx.log(f"{row.status:>8}  {figure:>9}  {row.spec.id}")
    ctx.log(
        f"wrote {out / 'RESULTS.md'}, {out / 'results.json'}"
        + ("" if chart_note else ", chart.png")
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
