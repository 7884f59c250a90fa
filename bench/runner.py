"""The tiny runner: sides timed in interleaved repetitions, medians, ratios,
targets, and the rows the report shows.

A *side* is one callable that runs one repetition of a workload and returns
the seconds it took (it times itself, so per-repetition setup stays out of
the figure). `interleave` runs every side of a comparison once per
repetition, rotating which goes first, so that a shared machine's drift hits
every side alike; a ratio is taken repetition by repetition and the figure
reported is the median of those ratios.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "CATALOG",
    "Context",
    "Row",
    "RowSpec",
    "Series",
    "Side",
    "Sizes",
    "Target",
    "interleave",
    "median",
    "ratio_row",
    "skipped_row",
    "timed",
]

Status = Literal["met", "missed", "info", "skipped", "not run", "error"]


def median(values: list[float]) -> float:
    """The median (``nan`` for no values)."""
    return statistics.median(values) if values else float("nan")


def timed(work: Callable[[], object]) -> float:
    """Seconds `work()` took (``time.perf_counter``)."""
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


@dataclass(frozen=True)
class Target:
    """A figure's target: ``figure >= value`` or ``figure <= value``."""

    op: Literal[">=", "<="]
    value: float
    unit: str  # "x" for ratios, else the figure's unit

    def met(self, figure: float) -> bool:
        """Whether `figure` meets the target."""
        return figure >= self.value if self.op == ">=" else figure <= self.value

    def text(self) -> str:
        """``≥ 0.8x`` (with a multiplication sign), ``≤ 200 MB``, ``≥ 500,000/s``."""
        sign = "≥" if self.op == ">=" else "≤"
        if self.unit == "x":
            return f"{sign} {self.value:g}\u00d7"
        return f"{sign} {self.value:,.0f} {self.unit}".replace(" /s", "/s")


@dataclass(frozen=True)
class RowSpec:
    """One row of the results table, before it is measured."""

    id: str
    group: str
    title: str
    target: Target | None = None


#: Every row the harness reports, in table order: the issue's targets first,
#: then figures reported without a target (context for the targets).
CATALOG: tuple[RowSpec, ...] = (
    RowSpec(
        "append_vs_raw",
        "append",
        "durable append, one fsync each, vs raw write+fdatasync",
        Target(">=", 0.8, "x"),
    ),
    RowSpec(
        "append_vs_sqlite",
        "append",
        "durable append vs sqlite3 WAL FULL, one commit each",
        Target(">=", 1.0, "x"),
    ),
    RowSpec(
        "batch64_vs_raw",
        "append",
        "`append_batch` of 64, durable, vs raw 64 writes per fdatasync",
        Target(">=", 0.5, "x"),
    ),
    RowSpec(
        "group8_vs_raw",
        "append",
        "group commit (SyncPolicy.GROUP), 8 threads each appending one entry at a time, "
        "vs the physical limit of 8 entries per flush",
        Target(">=", 0.6, "x"),
    ),
    RowSpec(
        "async256_vs_raw",
        "append",
        "group commit, 256 asyncio tasks appending concurrently "
        "(`FileAgreementWal.append_async`), vs raw 64 writes per fdatasync",
        Target(">=", 0.5, "x"),
    ),
    RowSpec(
        "vs_original_10k",
        "original",
        "vs the original's rewrite-per-append at 10,000 entries (ours durable, theirs not)",
        Target(">=", 100, "x"),
    ),
    RowSpec(
        "cold_load_1m",
        "load",
        "cold load of 1,000,000 entries vs raw cbor2 decode of the same entries (time ratio)",
        Target("<=", 2.5, "x"),
    ),
    RowSpec(
        "open_plan_1m_vs_10k",
        "load",
        "open + plan with a 10,000-entry suffix: 1M-entry WAL vs 10k-entry WAL (time ratio)",
        Target("<=", 2.0, "x"),
    ),
    RowSpec(
        "memory_vs_popo",
        "append",
        "in-memory append vs eventsourcing POPO recorder",
        Target(">=", 2.0, "x"),
    ),
    RowSpec(
        "wal_sync_100k_vs_1k",
        "handlers",
        "`wal_sync` rate with 100k entries already in the WAL vs with 1k",
        Target(">=", 0.8, "x"),
    ),
    RowSpec(
        "cache_get_100k",
        "handlers",
        "evidence cache get with 100k entries (FileEvidenceOutcomeCache)",
        Target(">=", 500_000, "/s"),
    ),
    RowSpec(
        "peak_rss_1m",
        "load",
        "peak RSS while scanning 1M entries (subprocess, minus an idle interpreter "
        "with the package imported)",
        Target("<=", 200, "MB"),
    ),
    RowSpec(
        "evidence_vs_dbos",
        "handlers",
        "durable evidence-cached effect (miss + binding) vs DBOS `@DBOS.step` "
        "(SQLite system database)",
        Target(">=", 20, "x"),
    ),
    RowSpec(
        "intent_miss_vs_put",
        "effects",
        "what intents add to an evidence-cached miss (no-op effect, file cache, durable, one "
        "thread): (miss with intents - miss without) vs one durable `put` (time ratio)",
        Target("<=", 1.25, "x"),
    ),
    # -- context, no target ---------------------------------------------------
    RowSpec(
        "append_nosync_vs_raw_write",
        "append",
        "append under SyncPolicy.NONE vs raw os.write of the same bytes, neither syncing "
        "(the toolkit's own cost per append, disk out of the picture)",
    ),
    RowSpec(
        "append_vs_raw_prealloc",
        "append",
        "durable append vs raw pwrite+fdatasync into preallocated space (the file's size "
        "never changes, as with sqlite's WAL file once it wraps)",
    ),
    RowSpec(
        "append_vs_es_sqlite",
        "append",
        "durable append vs eventsourcing SQLite recorder, one event per insert",
    ),
    RowSpec(
        "async256_64threads_vs_raw",
        "append",
        "group commit, 256 asyncio tasks via `asyncio.to_thread` on a 64-thread executor, "
        "vs raw 64 writes per fdatasync",
    ),
    RowSpec(
        "group8_vs_durable",
        "append",
        "group commit, 8 threads, vs durable append from one thread (group-commit gain)",
    ),
    RowSpec(
        "planner_vs_original",
        "original",
        "plan a 10,000-entry WAL (no checkpoint): ours vs the original's "
        "scan-the-suffix-per-operation planner",
    ),
    RowSpec(
        "memory_cache_get_100k",
        "handlers",
        "in-memory evidence cache get with 100k entries",
    ),
    RowSpec(
        "intent_miss_vs_put_group8",
        "effects",
        "what intents add to an evidence-cached miss, 8 threads on one file cache "
        "(SyncPolicy.GROUP): (miss with intents - miss without) vs one `put` (time ratio)",
    ),
    RowSpec(
        "sqlite_append_vs_file",
        "sql",
        "SQLite (`SqliteAgreementWal`, synchronous=FULL): durable append, one commit each, vs "
        "the file backend "
        "(`FileAgreementWal`, SyncPolicy.DURABLE), same run (rate ratio)",
    ),
    RowSpec(
        "sqlite_batch64_vs_file",
        "sql",
        "SQLite (`SqliteAgreementWal`, synchronous=FULL): `append_batch` of 64 vs the file "
        "backend's, same run (rate ratio)",
    ),
    RowSpec(
        "sqlite_cold_load_vs_file",
        "sql",
        "SQLite (`SqliteAgreementWal`, synchronous=FULL): cold load (open + load) of 20,000 "
        "entries vs the file backend's, "
        "same run (time ratio)",
    ),
    RowSpec(
        "sqlite_plan_vs_file",
        "sql",
        "SQLite (`SqliteAgreementWal`, synchronous=FULL): open + plan over a 20,000-entry WAL vs "
        "the file backend's, "
        "same run (time ratio)",
    ),
    RowSpec(
        "sqlite_4procs_vs_file",
        "sql",
        "SQLite (`SqliteAgreementWal`, synchronous=FULL): 4 processes appending to one WAL vs "
        "the file backend, "
        "same run (rate ratio)",
    ),
    RowSpec(
        "postgres_append_vs_file",
        "sql",
        "PostgreSQL (`PostgresAgreementWal`, private server, synchronous_commit=on): durable "
        "append, one commit each, vs the file backend "
        "(`FileAgreementWal`, SyncPolicy.DURABLE), same run (rate ratio)",
    ),
    RowSpec(
        "postgres_batch64_vs_file",
        "sql",
        "PostgreSQL (`PostgresAgreementWal`, private server, synchronous_commit=on): "
        "`append_batch` of 64 vs the file backend's, same run (rate ratio)",
    ),
    RowSpec(
        "postgres_cold_load_vs_file",
        "sql",
        "PostgreSQL (`PostgresAgreementWal`, private server, synchronous_commit=on): cold load "
        "(open + load) of 20,000 entries vs the file backend's, "
        "same run (time ratio)",
    ),
    RowSpec(
        "postgres_plan_vs_file",
        "sql",
        "PostgreSQL (`PostgresAgreementWal`, private server, synchronous_commit=on): open + plan "
        "over a 20,000-entry WAL vs the file backend's, "
        "same run (time ratio)",
    ),
    RowSpec(
        "postgres_4procs_vs_file",
        "sql",
        "PostgreSQL (`PostgresAgreementWal`, private server, synchronous_commit=on): 4 processes "
        "appending to one WAL vs the file backend, "
        "same run (rate ratio)",
    ),
)


@dataclass(frozen=True)
class Sizes:
    """How big each workload is (full mode uses the issue's sizes)."""

    #: Counted repetitions of the fast comparisons: many short ones, so
    #: that a shared disk's slow spells hit every side alike.
    reps: int
    warmup: int  # uncounted repetitions first
    appends: int  # durable single appends per repetition
    batches: int  # append_batch(64) calls per repetition
    group_per_thread: int  # entries each of 8 threads appends per repetition
    async_per_task: int  # entries each of 256 tasks appends per repetition
    memory_appends: int  # in-memory appends per repetition
    original_wal: int  # entries in the WAL the original rewrites per append
    original_appends: int  # the original's appends per repetition
    ours_at_original: int  # our durable appends per repetition at that size
    big_wal: int  # the cold-load / open+plan WAL
    suffix: int  # entries after the checkpoint
    load_reps: int  # repetitions of the big loads
    series: tuple[int, ...]  # WAL sizes for the chart
    series_appends: int  # durable appends per size for the chart
    original_series_max: int  # largest WAL the original is charted at
    walsync_big: int
    walsync_small: int
    walsyncs: int  # wal_sync calls per repetition
    cache_entries: int
    cache_gets: int  # gets per repetition
    dbos_steps: int  # steps (and evidence-cached effects) per repetition


FULL = Sizes(
    reps=31,
    warmup=2,
    appends=100,
    batches=10,
    group_per_thread=50,
    async_per_task=2,
    memory_appends=5_000,
    original_wal=10_000,
    original_appends=1,
    ours_at_original=50,
    big_wal=1_000_000,
    suffix=10_000,
    load_reps=5,
    series=(1_000, 10_000, 100_000, 1_000_000),
    series_appends=40,
    original_series_max=100_000,
    walsync_big=100_000,
    walsync_small=1_000,
    walsyncs=100,
    cache_entries=100_000,
    cache_gets=30_000,
    dbos_steps=50,
)

QUICK = Sizes(
    reps=2,
    warmup=0,
    appends=10,
    batches=2,
    group_per_thread=4,
    async_per_task=1,
    memory_appends=500,
    original_wal=200,
    original_appends=2,
    ours_at_original=10,
    big_wal=2_000,
    suffix=200,
    load_reps=1,
    series=(200, 2_000),
    series_appends=5,
    original_series_max=2_000,
    walsync_big=1_000,
    walsync_small=100,
    walsyncs=5,
    cache_entries=1_000,
    cache_gets=2_000,
    dbos_steps=5,
)


@dataclass
class Series:
    """One side's figures, one per counted repetition."""

    label: str
    unit: str  # "entries/s", "s", "MB", ...
    samples: list[float]

    @property
    def median(self) -> float:
        return median(self.samples)

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "unit": self.unit,
            "median": self.median,
            "min": min(self.samples) if self.samples else None,
            "max": max(self.samples) if self.samples else None,
            "samples": self.samples,
        }


@dataclass
class Side:
    """One side of a comparison: `run()` does one repetition of `ops`
    operations and returns the seconds it took."""

    label: str
    run: Callable[[], float]
    ops: float = 1.0
    unit: str = "entries/s"  # "s" for a side reported as time

    def value(self, seconds: float) -> float:
        """The repetition's figure: a rate, or the time itself."""
        return seconds if self.unit == "s" else self.ops / seconds


def interleave(ctx: Context, what: str, sides: list[Side], reps: int, warmup: int) -> list[Series]:
    """Run every side once per repetition (rotating who goes first), after
    `warmup` uncounted repetitions; return one `Series` per side."""
    samples: list[list[float]] = [[] for _ in sides]
    total = warmup + reps
    for rep in range(total):
        counted = rep >= warmup
        shift = rep % len(sides)
        order = list(range(len(sides)))[shift:] + list(range(len(sides)))[:shift]
        step = f"rep {rep - warmup + 1}/{reps}" if counted else f"warm-up {rep + 1}/{warmup}"
        ctx.log(f"{what}: {step}")
        for index in order:
            gc.collect()
            seconds = sides[index].run()
            if counted:
                samples[index].append(sides[index].value(seconds))
    return [Series(s.label, s.unit, values) for s, values in zip(sides, samples, strict=True)]


@dataclass
class Row:
    """A measured (or skipped) row."""

    spec: RowSpec
    status: Status
    figure: float | None = None
    ours: Series | None = None
    peer: Series | None = None
    ratios: list[float] = field(default_factory=list)
    detail: str = ""  # sizes and method
    note: str = ""  # why skipped, or a caveat
    #: Re-runs our side once (for ``--profile`` of a missed target).
    profile: Callable[[], object] | None = field(default=None, repr=False)

    def as_json(self) -> dict[str, Any]:
        target = self.spec.target
        return {
            "id": self.spec.id,
            "group": self.spec.group,
            "title": self.spec.title,
            "status": self.status,
            "figure": self.figure,
            "target": None
            if target is None
            else {"op": target.op, "value": target.value, "unit": target.unit},
            "ours": self.ours.as_json() if self.ours else None,
            "peer": self.peer.as_json() if self.peer else None,
            "per_repetition_ratios": self.ratios,
            "detail": self.detail,
            "note": self.note,
        }


def spec(row_id: str) -> RowSpec:
    """The catalog entry `row_id`."""
    for entry in CATALOG:
        if entry.id == row_id:
            return entry
    raise KeyError(row_id)


def _judge(row_spec: RowSpec, figure: float) -> Status:
    if row_spec.target is None:
        return "info"
    return "met" if row_spec.target.met(figure) else "missed"


def ratio_row(
    row_id: str,
    ours: Series,
    peer: Series,
    *,
    detail: str,
    note: str = "",
    profile: Callable[[], object] | None = None,
) -> Row:
    """A row whose figure is the median of per-repetition ``ours / peer``
    (rates: higher is better for us; times: lower is)."""
    ratios = [a / b for a, b in zip(ours.samples, peer.samples, strict=True)]
    figure = median(ratios)
    row_spec = spec(row_id)
    return Row(
        row_spec,
        _judge(row_spec, figure),
        figure,
        ours,
        peer,
        ratios,
        detail,
        note,
        profile,
    )


def absolute_row(
    row_id: str,
    ours: Series,
    *,
    detail: str,
    note: str = "",
    profile: Callable[[], object] | None = None,
) -> Row:
    """A row whose figure is the median of our own samples."""
    row_spec = spec(row_id)
    figure = ours.median
    return Row(row_spec, _judge(row_spec, figure), figure, ours, None, [], detail, note, profile)


def skipped_row(row_id: str, note: str, status: Status = "skipped") -> Row:
    """A row that could not be measured, and why."""
    return Row(spec(row_id), status, note=note)


class Context:
    """What every group gets: the mode, sizes, folders and shared results."""

    def __init__(self, *, quick: bool, out: Path, scratch: Path, profile: bool) -> None:
        self.quick = quick
        self.sizes = QUICK if quick else FULL
        self.out = out
        self.scratch = scratch
        self.profile = profile
        #: Series for the chart, by name: {"x": [...], "y": [...], "label": ...}.
        self.chart: dict[str, dict[str, Any]] = {}
        #: Facts about the peers (versions, settings), by peer.
        self.peers: dict[str, str] = {}
        #: Figures one group leaves for another (e.g. the raw fsync rate).
        self.shared: dict[str, float] = {}
        self._counter = 0
        self._started = time.perf_counter()

    def log(self, message: str) -> None:
        """Progress on stderr."""
        elapsed = time.perf_counter() - self._started
        print(f"[bench {elapsed:7.1f}s] {message}", file=sys.stderr, flush=True)

    def path(self, name: str) -> Path:
        """A new path in the scratch folder (nothing created)."""
        self._counter += 1
        return self.scratch / f"{self._counter:03d}-{name}"
