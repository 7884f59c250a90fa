"""SQL backend rows: `SqliteAgreementWal` / `SqliteEvidenceOutcomeCache` and
`PostgresAgreementWal` / `PostgresEvidenceOutcomeCache` against the file
backend (`FileAgreementWal`, ``SyncPolicy.DURABLE``), every side measured in
the same run, interleaved repetition by repetition: durable append, batch
append (64), cold load, open + plan, and 4 processes appending to one WAL.

No targets: these rows are context (how much a database costs against the
file log). PostgreSQL runs on a private server started for the run (see
`bench.pg`) and stopped at its end; without Debian's binaries its rows are
skipped, saying so.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from durability import (
    DurableRecoveryPlan,
    FileAgreementWal,
    FileEvidenceOutcomeCache,
    PostgresAgreementWal,
    PostgresEvidenceOutcomeCache,
    SqliteAgreementWal,
    SqliteEvidenceOutcomeCache,
    SyncPolicy,
    WalEntry,
)

from .append import Batches
from .peers import optional
from .pg import PrivateServer, ServerUnavailable
from .runner import Context, Row, Series, Side, interleave, ratio_row, skipped_row
from .workload import Entries, cache_entry, fill

__all__ = ["ROWS", "run"]

PER_BATCH = 64
PROCESSES = 4
KINDS = ("sqlite", "postgres")
#: The row suffixes, in catalog order (row id = ``f"{kind}_{suffix}"``).
ROWS = ("append_vs_file", "batch64_vs_file", "cold_load_vs_file", "plan_vs_file", "4procs_vs_file")


@dataclass(frozen=True)
class SqlSizes:
    reps: int
    warmup: int
    appends: int  # durable single appends per repetition
    batches: int  # append_batch(64) calls per repetition
    load_entries: int  # entries in the cold-load / plan WAL
    cached_ops: int  # operations whose evidence outcome is in the plan's cache
    load_reps: int
    per_process: int  # appends by each of the 4 processes per repetition


FULL = SqlSizes(
    reps=7,
    warmup=1,
    appends=200,
    batches=10,
    load_entries=20_000,
    cached_ops=500,
    load_reps=5,
    per_process=50,
)
QUICK = SqlSizes(
    reps=2,
    warmup=0,
    appends=10,
    batches=2,
    load_entries=400,
    cached_ops=20,
    load_reps=1,
    per_process=3,
)

FILE_LABEL = "file backend (FileAgreementWal, SyncPolicy.DURABLE)"


@dataclass
class Backend:
    """How to open one backend's WAL and cache named `name`."""

    kind: str  # "file", "sqlite", "postgres"
    label: str
    where: str  # a folder (file), a database file (sqlite), a libpq URL (postgres)

    def wal(self, name: str, *, read_only: bool = False) -> Any:
        return open_wal(self.kind, self.where, name, read_only=read_only)

    def cache(self, name: str, *, read_only: bool = False) -> Any:
        if self.kind == "file":
            return FileEvidenceOutcomeCache(Path(self.where) / f"{name}.cache")
        if self.kind == "sqlite":
            return SqliteEvidenceOutcomeCache(self.where, name=name, read_only=read_only)
        return PostgresEvidenceOutcomeCache(self.where, name=name, read_only=read_only)


def open_wal(kind: str, where: str, name: str, *, read_only: bool = False) -> Any:
    """The WAL `name` of backend `kind` at `where` (durable settings)."""
    if kind == "file":
        path = Path(where) / f"{name}.log"
        if read_only:
            return FileAgreementWal(path, read_only=True)
        return FileAgreementWal(path, sync=SyncPolicy.DURABLE)
    if kind == "sqlite":
        return SqliteAgreementWal(where, name=name, read_only=read_only)
    return PostgresAgreementWal(where, name=name, read_only=read_only)


def _appender(wal: Any, work: Batches) -> Callable[[], float]:
    def side() -> float:
        batch: list[WalEntry] = work.next()
        append = wal.append
        start = time.perf_counter()
        for entry in batch:
            append(entry)
        return time.perf_counter() - start

    return side


def _batcher(wal: Any, work: Batches) -> Callable[[], float]:
    def side() -> float:
        batches: list[list[WalEntry]] = work.next()
        append_batch = wal.append_batch
        start = time.perf_counter()
        for batch in batches:
            append_batch(batch)
        return time.perf_counter() - start

    return side


def run(ctx: Context) -> list[Row]:
    """Every SQL row (PostgreSQL's skipped without a server)."""
    sizes = QUICK if ctx.quick else FULL
    folder = ctx.path("file-backend")
    folder.mkdir()
    backends = [
        Backend("file", FILE_LABEL, str(folder)),
        Backend(
            "sqlite",
            "SQLite (SqliteAgreementWal, synchronous=FULL)",
            str(ctx.path("sqlite-backend.db")),
        ),
    ]
    pg_note = ""
    server = PrivateServer()
    if optional("psycopg") is None:
        pg_note = "psycopg is not installed (pip install -e '.[postgres]')"
    else:
        try:
            ctx.log("sql: starting a private PostgreSQL server")
            url = server.start()
            backends.append(
                Backend(
                    "postgres",
                    "PostgreSQL (PostgresAgreementWal, synchronous_commit=on)",
                    url,
                )
            )
            ctx.peers["PostgreSQL"] = (
                f"{server.version.strip()}: private cluster on 127.0.0.1, fsync=on, "
                "synchronous_commit=on, shared_buffers=64MB, same disk as the file backend"
            )
        except ServerUnavailable as exc:
            pg_note = (
                "skipped: no PostgreSQL binaries (no /usr/lib/postgresql/*/bin/initdb)"
                if "no PostgreSQL binaries" in str(exc)
                else f"could not start PostgreSQL: {exc}"
            )
            server.stop()
    try:
        found: dict[str, list[Row]] = {kind: [] for kind in KINDS}
        for measure in (_appends, _batches, _cold_load_and_plan, _processes):
            for kind, rows in measure(ctx, sizes, backends).items():
                found[kind].extend(rows)
    finally:
        server.stop()
    rows = found["sqlite"]
    if found["postgres"]:
        rows += found["postgres"]
    else:
        rows += [skipped_row(f"postgres_{suffix}", pg_note) for suffix in ROWS]
    return rows


def _by_kind(
    backends: list[Backend], series: list[Series], row: str, detail: str
) -> dict[str, list[Row]]:
    """One row per SQL backend: its series against the file side (the first)."""
    return {
        b.kind: [ratio_row(f"{b.kind}_{row}", s, series[0], detail=detail)]
        for b, s in zip(backends[1:], series[1:], strict=True)
    }


def _appends(ctx: Context, sizes: SqlSizes, backends: list[Backend]) -> dict[str, list[Row]]:
    n, reps = sizes.appends, sizes.warmup + sizes.reps
    sides = []
    for b in backends:
        entries = Entries.unique(f"{b.kind}-append")
        work = Batches([entries.take(n) for _ in range(reps)])
        sides.append(Side(f"durable append, {b.label}", _appender(b.wal("append"), work), n))
    series = interleave(ctx, "sql: durable append", sides, sizes.reps, sizes.warmup)
    detail = (
        f"{n} appends per repetition, one commit (fsync) each, {sizes.reps} repetitions; "
        "figure = SQL backend's rate / file backend's rate"
    )
    return _by_kind(backends, series, "append_vs_file", detail)


def _batches(ctx: Context, sizes: SqlSizes, backends: list[Backend]) -> dict[str, list[Row]]:
    reps = sizes.warmup + sizes.reps
    per = sizes.batches * PER_BATCH
    sides = []
    for b in backends:
        entries = Entries.unique(f"{b.kind}-batch")
        work = Batches(
            [[entries.take(PER_BATCH) for _ in range(sizes.batches)] for _ in range(reps)]
        )
        sides.append(
            Side(f"append_batch of {PER_BATCH}, {b.label}", _batcher(b.wal("batch"), work), per)
        )
    series = interleave(ctx, "sql: append_batch(64)", sides, sizes.reps, sizes.warmup)
    detail = (
        f"{sizes.batches} batches of {PER_BATCH} per repetition, one commit each, "
        f"{sizes.reps} repetitions; figure = SQL rate / file rate"
    )
    return _by_kind(backends, series, "batch64_vs_file", detail)


def _build(ctx: Context, sizes: SqlSizes, b: Backend) -> None:
    """The `load` WAL of `load_entries` entries and a cache holding the
    outcomes of the last `cached_ops` operations' evidence."""
    n = sizes.load_entries
    ctx.log(f"sql: building a {n:,}-entry WAL in the {b.kind} backend")
    if b.kind == "file":
        with FileAgreementWal(Path(b.where) / "load.log", sync=SyncPolicy.NONE) as wal:
            fill(wal, Entries(), n)
    else:
        wal = b.wal("load")
        entries = Entries()
        for start in range(0, n, 1_000):
            wal.append_batch(entries.take(min(1_000, n - start)))
        wal.close()
    cache = b.cache("load")
    ops = n // 4
    for op in range(max(0, ops - sizes.cached_ops), ops):
        cache.put(cache_entry(f"op#{op}/cert"))
    if b.kind == "file":
        cache.sync()
    cache.close()


def _cold_load_and_plan(
    ctx: Context, sizes: SqlSizes, backends: list[Backend]
) -> dict[str, list[Row]]:
    n = sizes.load_entries
    for b in backends:
        _build(ctx, sizes, b)

    def loader(b: Backend) -> Callable[[], float]:
        def side() -> float:
            start = time.perf_counter()
            wal = b.wal("load", read_only=True)
            count = len(wal.load().entries)
            elapsed = time.perf_counter() - start
            wal.close()
            if count != n:
                raise RuntimeError(f"{b.kind}: loaded {count} entries, expected {n}")
            return elapsed

        return side

    def planner(b: Backend) -> Callable[[], float]:
        def side() -> float:
            start = time.perf_counter()
            wal = b.wal("load", read_only=True)
            cache = b.cache("load", read_only=True)
            plan = DurableRecoveryPlan.from_checkpoint(None, None, wal.load(), cache.load())
            elapsed = time.perf_counter() - start
            wal.close()
            cache.close()
            if not plan.decisions:
                raise RuntimeError(f"{b.kind}: no decisions planned")
            return elapsed

        return side

    loads = interleave(
        ctx,
        f"sql: cold load of {n:,} entries",
        [Side(f"open + load(), {b.label}", loader(b), unit="s") for b in backends],
        sizes.load_reps,
        0,
    )
    plans = interleave(
        ctx,
        f"sql: open + plan, {n:,}-entry WAL",
        [Side(f"open WAL + cache, load, plan, {b.label}", planner(b), unit="s") for b in backends],
        sizes.load_reps,
        0,
    )
    load_detail = (
        f"{n:,} entries; a new read-only WAL object (and connection) each time, page cache "
        f"warm; {sizes.load_reps} repetitions; figure = SQL time / file time (lower is better)"
    )
    plan_detail = (
        f"{n:,}-entry WAL, no checkpoint, {sizes.cached_ops} outcomes cached; open WAL and "
        f"cache, load both, plan; {sizes.load_reps} repetitions; figure = SQL time / file "
        "time (lower is better)"
    )
    rows = _by_kind(backends, loads, "cold_load_vs_file", load_detail)
    for kind, more in _by_kind(backends, plans, "plan_vs_file", plan_detail).items():
        rows[kind].extend(more)
    return rows


def _worker(
    kind: str,
    where: str,
    prefix: str,
    n: int,
    barrier: Any,
    results: Any,
) -> None:
    """One process: open the shared WAL, wait for the others, append `n`
    entries one at a time, report (start, end) in ``perf_counter`` time
    (CLOCK_MONOTONIC: one clock for every process)."""
    try:
        wal = open_wal(kind, where, "procs")
        batch = Entries(prefix).take(n)
        if kind != "file":
            wal.last_sequence  # noqa: B018 - connect before the clock starts
        barrier.wait()
        start = time.perf_counter()
        for entry in batch:
            wal.append(entry)
        end = time.perf_counter()
        wal.close()
        results.put((start, end, ""))
    except BaseException as exc:  # reported by the parent
        results.put((0.0, 0.0, f"{type(exc).__name__}: {exc}"))


def _processes(ctx: Context, sizes: SqlSizes, backends: list[Backend]) -> dict[str, list[Row]]:
    n = sizes.per_process
    spawn = multiprocessing.get_context("spawn")
    counter = [0]

    def side_of(b: Backend) -> Callable[[], float]:
        def side() -> float:
            counter[0] += 1
            barrier = spawn.Barrier(PROCESSES)
            results = spawn.Queue()
            workers = [
                spawn.Process(
                    target=_worker,
                    args=(b.kind, b.where, f"{b.kind}-r{counter[0]}-p{i}-", n, barrier, results),
                )
                for i in range(PROCESSES)
            ]
            for worker in workers:
                worker.start()
            spans = [results.get(timeout=300) for _ in workers]
            for worker in workers:
                worker.join()
            errors = [error for _, _, error in spans if error]
            if errors:
                raise RuntimeError(f"{b.kind}: a process failed: {errors[0]}")
            return max(end for _, end, _ in spans) - min(start for start, _, _ in spans)

        return side

    sides = [
        Side(f"{PROCESSES} processes appending, {b.label}", side_of(b), PROCESSES * n)
        for b in backends
    ]
    series = interleave(
        ctx, f"sql: {PROCESSES} processes appending", sides, sizes.reps, sizes.warmup
    )
    detail = (
        f"{PROCESSES} processes x {n} durable appends, one at a time, to one WAL, per "
        f"repetition (processes started before the clock); {sizes.reps} repetitions; "
        "figure = SQL rate / file rate"
    )
    return _by_kind(backends, series, "4procs_vs_file", detail)
