"""What a run leaves behind: ``RESULTS.md`` (the targets table, the context
rows, what was skipped and why, the peers' settings, the machine and the
date), ``results.json`` (every sample) and ``chart.png``."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from .peers import optional, version_of
from .runner import Context, Row, Series

__all__ = ["machine", "write_chart", "write_json", "write_markdown"]

REPO = Path(__file__).resolve().parent.parent
TIMES = "\u00d7"  # the multiplication sign


def _first_line(path: str, prefix: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as file:
            for line in file:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _filesystem(path: Path) -> str:
    """Device and type of the file system holding `path` (from /proc/mounts)."""
    best, found = "", "unknown"
    target = str(path.resolve())
    try:
        with open("/proc/mounts", encoding="utf-8") as file:
            for line in file:
                device, mount, kind, options = line.split()[:4]
                inside = target == mount or target.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, found = mount, f"{kind} on {device} (mounted at {mount}, {options})"
    except OSError:
        pass
    return found


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", "durability"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return result.stdout.strip() + (" (durability/ modified)" if dirty else "")


def machine(scratch: Path) -> dict[str, Any]:
    """What the figures were measured on."""
    memory = _first_line("/proc/meminfo", "MemTotal")
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        affinity = os.cpu_count() or 0
    versions = {
        name: version_of(name)
        for name in ("durability", "cbor2", "attrs", "cattrs", "eventsourcing", "dbos")
    }
    versions["matplotlib"] = version_of("matplotlib")
    versions["sqlite (library)"] = __import__("sqlite3").sqlite_version
    return {
        "platform": platform.platform(),
        "cpu": _first_line("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cores": f"{os.cpu_count()} (usable by this process: {affinity})",
        "memory": memory or "unknown",
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "disk": _filesystem(scratch),
        "load_average": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "commit": _git_commit(),
        "versions": versions,
    }


# -- formatting ----------------------------------------------------------------


def _number(value: float) -> str:
    if value != value:  # nan
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def fmt_value(value: float, unit: str) -> str:
    """A median with its unit: ``8,120 entries/s``, ``1.23 s``, ``540 MB``."""
    if unit == "s":
        if value < 1:
            return f"{value * 1000:.3g} ms"
        return f"{value:.3g} s"
    return f"{_number(value)} {unit}"


def fmt_figure(row: Row) -> str:
    if row.figure is None:
        return "—"
    if row.peer is None and row.ours is not None:  # an absolute row
        return fmt_value(row.figure, row.ours.unit)
    text = f"{_number(row.figure)}{TIMES}"
    if len(row.ratios) >= 4:
        low, _, high = statistics.quantiles(row.ratios, n=4)
        text += f"<br><sub>IQR {_number(low)} to {_number(high)}</sub>"
    return text


def _series(series: Series | None) -> str:
    if series is None:
        return "—"
    return f"{fmt_value(series.median, series.unit)}<br><sub>{series.label}</sub>"


_RESULT = {
    "met": "**met**",
    "missed": "**MISSED**",
    "info": "—",
    "skipped": "**SKIPPED**",
    "not run": "not run",
    "error": "**ERROR**",
}


def write_markdown(
    path: Path,
    rows: list[Row],
    *,
    ctx: Context,
    info: dict[str, Any],
    date: str,
    seconds: float,
    only: list[str] | None,
    chart_note: str | None,
) -> None:
    """RESULTS.md."""
    targets = [r for r in rows if r.spec.target is not None]
    context = [r for r in rows if r.spec.target is None]
    met = sum(r.status == "met" for r in targets)
    missed = sum(r.status == "missed" for r in targets)
    other = len(targets) - met - missed
    mode = "quick (`--quick`)" if ctx.quick else "full"
    lines = ["# `durability` benchmark results", ""]
    if ctx.quick:
        lines += [
            "> **QUICK MODE: tiny sizes. These figures only show that the harness runs; "
            "they say nothing about performance. Run `python -m bench` for real figures.**",
            "",
        ]
    lines += [
        f"Generated by `python -m bench` ({mode}) on {date}, in {seconds:.0f} s. "
        "Every figure is measured in this one run: a ratio between two sides run on the "
        "same machine and the same disk with their repetitions interleaved (the first side "
        "rotates every repetition), taken repetition by repetition, and the median of those "
        "ratios reported; absolute rows report the median over repetitions. The machine is "
        "shared and noisy: trust the ratios, not the absolute times.",
        "",
    ]
    if only:
        lines += [f"Only these were run (`--only`): {', '.join(only)}.", ""]
    lines += [
        f"**Targets: {met} met, {missed} missed"
        + (f", {other} not measured" if other else "")
        + f" (of {len(targets)}).**"
        + (
            " Where the time goes in each missed target, from profiles: [MISSES.md](MISSES.md)."
            if missed
            else ""
        ),
        "",
    ]
    skipped = [r for r in rows if r.status in ("skipped", "error")]
    if skipped or chart_note:
        lines += ["## Not measured: read this", ""]
        for row in skipped:
            lines.append(f"> **{row.status.upper()}: {row.spec.title}**: {row.note}")
            lines.append(">")
        if chart_note:
            lines.append(f"> **NO CHART**: {chart_note}")
        lines.append("")
    header = [
        "| # | measurement | ours (median) | peer (median) | figure | target | result |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += ["## Targets", "", *header]
    for i, row in enumerate(targets, 1):
        assert row.spec.target is not None
        lines.append(
            f"| {i} | {row.spec.title} | {_series(row.ours)} | {_series(row.peer)} | "
            f"{fmt_figure(row)} | {row.spec.target.text()} | {_RESULT[row.status]} |"
        )
    lines += ["", "## Context (no target)", "", *header]
    for i, row in enumerate(context, len(targets) + 1):
        lines.append(
            f"| {i} | {row.spec.title} | {_series(row.ours)} | {_series(row.peer)} | "
            f"{fmt_figure(row)} | — | {_RESULT[row.status]} |"
        )
    lines += ["", "## How each row was measured", ""]
    for i, row in enumerate(targets + context, 1):
        text = row.detail or "not measured"
        if row.note and row.status not in ("skipped", "error"):
            text += f". Note: {row.note}"
        if row.ratios:
            text += ". Per-repetition ratios: " + ", ".join(f"{r:.3g}" for r in row.ratios)
        lines.append(f"{i}. `{row.spec.id}`: {text}.")
    lines += ["", "## Peers and their settings", ""]
    if ctx.peers:
        lines += [f"- {name}: {text}" for name, text in sorted(ctx.peers.items())]
    else:
        lines.append("- none ran")
    lines += [
        "- raw baselines: `os.write` of the exact bytes the file WAL appends (captured from "
        "a scratch log), to a file opened with `O_APPEND`, then `os.fdatasync`; raw decode: "
        "`cbor2.loads` of the same entries as v1 artifacts",
        "- the original's algorithm: `bench/original.py`, a labelled baseline re-expressing "
        "the Rust original (reference 003) with the toolkit's codec",
        "",
        "## Machine",
        "",
        "| what | value |",
        "|---|---|",
    ]
    for key, value in info.items():
        if key == "versions":
            value = ", ".join(f"{k} {v or 'not installed'}" for k, v in value.items())
        lines.append(f"| {key.replace('_', ' ')} | {value} |")
    lines += ["", "## Chart", ""]
    if chart_note:
        lines.append(f"No chart: {chart_note}.")
    else:
        lines.append("![Append throughput and open + plan time versus WAL size](chart.png)")
    lines += [
        "",
        "## Reproduce",
        "",
        "    .venv/bin/pip install -e '.[dev,bench]'",
        "    .venv/bin/python -m bench                 # full run: writes bench/RESULTS.md,",
        "                                              # bench/results.json, bench/chart.png",
        "    .venv/bin/python -m bench --only append   # one group (append, original,",
        "                                              # handlers, effects, load, sql)",
        "                                              # or a row's group",
        "    .venv/bin/python -m bench --quick --out /tmp/b   # seconds; checks the harness",
        "    .venv/bin/python -m bench --only load --profile  # pyinstrument profile of each miss",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def write_json(
    path: Path, rows: list[Row], *, ctx: Context, info: dict[str, Any], date: str, seconds: float
) -> None:
    """results.json: every row, every sample, the chart's data, the machine."""
    data = {
        "date": date,
        "mode": "quick" if ctx.quick else "full",
        "seconds": seconds,
        "machine": info,
        "sizes": ctx.sizes.__dict__,
        "peers": ctx.peers,
        "rows": [row.as_json() for row in rows],
        "chart": ctx.chart,
    }
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def write_chart(path: Path, ctx: Context) -> str | None:
    """chart.png (append throughput and open + plan time versus WAL size);
    returns why there is none, or ``None``."""
    if optional("matplotlib") is None:
        return "matplotlib is not installed (pip install -e '.[bench]')"
    append, open_plan = ctx.chart.get("append"), ctx.chart.get("open_plan")
    if append is None or open_plan is None:
        return "the load group did not run (see `--only`)"
    matplotlib: Any = optional("matplotlib")
    matplotlib.use("Agg")
    plt: Any = optional("matplotlib.pyplot")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    left.plot(append["sizes"], append["ours"], "o-", label="durable append (fsync each)")
    if append["original_sizes"]:
        left.plot(
            append["original_sizes"],
            append["original"],
            "s--",
            label="BASELINE: original rewrite-per-append (no fsync)",
        )
    raw = ctx.chart.get("raw")
    if raw is not None:
        left.axhline(raw["y"], color="grey", linestyle=":", label=raw["label"])
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("entries already in the WAL")
    left.set_ylabel("appends per second")
    left.set_title("Append throughput vs WAL size")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    right.plot(
        open_plan["sizes"],
        open_plan["ours"],
        "o-",
        label=f"open + plan ({open_plan['suffix']:,}-entry suffix)",
    )
    right.plot(
        open_plan["sizes"], open_plan["raw"], "^:", label="raw cbor2 decode of the whole WAL"
    )
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("entries in the WAL")
    right.set_ylabel("seconds")
    right.set_title("Open + plan time vs WAL size")
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=8)
    mode = " (QUICK MODE: meaningless sizes)" if ctx.quick else ""
    fig.suptitle(f"durability: medians of one run{mode}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return None


def now() -> str:
    """The date and time, UTC."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
