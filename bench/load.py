"""Load rows: cold load of a big WAL against raw ``cbor2`` decoding of the
same entries, open + plan against WAL size, peak memory of a scan, and the
chart's series (append throughput and open + plan time versus WAL size).

The state directories are built fast (large batches under
``SyncPolicy.NONE``, then one sync); each holds a checkpoint leaving the last
`suffix` entries in the suffix and the outcomes of the suffix's evidence in
its cache, so open + plan does the same planning work at every size.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import cbor2

from durability import FileAgreementWal, StateDirectory

from .append import Batches, raw_writer
from .original import OriginalFileWal
from .runner import Context, Row, Series, Side, absolute_row, interleave, ratio_row
from .workload import Entries, artifact_bytes, build_state_directory, record_bytes

__all__ = ["run"]

REPO = Path(__file__).resolve().parent.parent


def run(ctx: Context) -> list[Row]:
    """Every row of the load group, and the chart's series."""
    sizes = ctx.sizes
    dirs: dict[int, Path] = {}
    blobs: dict[int, list[bytes]] = {}
    for n in sorted({*sizes.series, sizes.big_wal, sizes.suffix}):
        ctx.log(f"load: building a state directory of {n:,} entries")
        dirs[n] = ctx.path(f"state-{n}")
        blobs[n] = []
        build_state_directory(dirs[n], n, sizes.suffix, blobs=blobs[n])
    rows = [
        _cold_load(ctx, dirs[sizes.big_wal], blobs[sizes.big_wal]),
        _open_plan(ctx, dirs, blobs),
        _peak_rss(ctx, dirs[sizes.big_wal]),
    ]
    _append_series(ctx, dirs)
    return rows


def _cold_load(ctx: Context, directory: Path, blobs: list[bytes]) -> Row:
    """Open the big WAL (read-only: nothing changes between repetitions) and
    load it, vs ``cbor2.loads`` of the same entries."""
    n = ctx.sizes.big_wal
    path = directory / "wal.log"

    def ours() -> float:
        start = time.perf_counter()
        wal = FileAgreementWal(path, read_only=True)
        count = len(wal.load().entries)
        elapsed = time.perf_counter() - start
        wal.close()
        if count < n:  # (more once the chart's appends ran: --profile runs it again)
            raise RuntimeError(f"loaded {count} entries, expected {n}")
        return elapsed

    def raw() -> float:
        loads = cbor2.loads
        start = time.perf_counter()
        for blob in blobs:
            loads(blob)
        return time.perf_counter() - start

    series = interleave(
        ctx,
        f"cold load of {n:,} entries vs cbor2",
        [
            Side(f"FileAgreementWal(read_only=True) + load(), {n:,} entries", ours, unit="s"),
            Side(f"cbor2.loads of the same entries ({len(blobs)} artifacts)", raw, unit="s"),
        ],
        ctx.sizes.load_reps,
        0,
    )
    segments = Path(f"{path}.seg")  # sealed segments (specs/segments.md)
    size = path.stat().st_size + sum(p.stat().st_size for p in segments.glob("*.log"))
    detail = (
        f"{n:,} entries, {size / 1e6:.0f} MB on disk, page cache warm for both; "
        f"{ctx.sizes.load_reps} repetitions; figure = our time / cbor2's time"
    )
    return ratio_row("cold_load_1m", series[0], series[1], detail=detail, profile=ours)


def _open_plan(ctx: Context, dirs: dict[int, Path], blobs: dict[int, list[bytes]]) -> Row:
    """``StateDirectory(path)`` + ``plan_recovery()`` at every size (same
    suffix), interleaved; also the raw decode of each WAL for the chart."""
    sizes = ctx.sizes
    order = sorted(dirs)
    sides: list[Side] = []
    for n in order:

        def open_plan(directory: Path = dirs[n]) -> float:
            start = time.perf_counter()
            with StateDirectory(directory) as store:
                plan = store.plan_recovery()
            elapsed = time.perf_counter() - start
            if not plan.decisions:
                raise RuntimeError(f"no decisions planned for {directory}")
            return elapsed

        def decode(items: list[bytes] = blobs[n]) -> float:
            loads = cbor2.loads
            start = time.perf_counter()
            for blob in items:
                loads(blob)
            return time.perf_counter() - start

        sides.append(Side(f"open + plan, {n:,}-entry WAL", open_plan, unit="s"))
        sides.append(Side(f"cbor2.loads, {n:,} entries", decode, unit="s"))
    series = interleave(ctx, "open + plan vs WAL size", sides, sizes.load_reps, 0)
    by_size = {n: series[2 * i] for i, n in enumerate(order)}
    ctx.chart["open_plan"] = {
        "sizes": order,
        "ours": [by_size[n].median for n in order],
        "raw": [series[2 * i + 1].median for i in range(len(order))],
        "suffix": sizes.suffix,
    }
    big, small = by_size[sizes.big_wal], by_size[sizes.suffix]
    detail = (
        f"checkpoint leaves a {sizes.suffix:,}-entry suffix; {sizes.big_wal:,}-entry WAL vs "
        f"{sizes.suffix:,}-entry WAL; {sizes.load_reps} repetitions; figure = time ratio"
    )
    big_side = sides[2 * order.index(sizes.big_wal)]
    return ratio_row(
        "open_plan_1m_vs_10k", big, small, detail=detail, profile=lambda: big_side.run()
    )


def _rss_kib(*probe: str) -> int:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "bench.rss_probe", "measure", *probe],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    return int(result.stdout.split()[-1])


def _peak_rss(ctx: Context, directory: Path) -> Row:
    """Peak RSS of a process scanning the big WAL, minus that of an idle
    interpreter with the package imported (each in its own subprocess)."""
    n = ctx.sizes.big_wal
    ctx.log(f"load: peak RSS of a scan of {n:,} entries (subprocesses)")
    idle = _rss_kib("idle") / 1024
    scan = _rss_kib("scan", str(directory / "wal.log")) / 1024
    ours = Series(f"scan of {n:,} entries, minus idle", "MB", [scan - idle])
    detail = (
        f"ru_maxrss of RUSAGE_CHILDREN: scan {scan:.0f} MiB, idle interpreter with "
        f"durability imported {idle:.0f} MiB; scan = FileAgreementWal(read_only=True) + scan(), "
        "entries streamed in batches of 10,000"
    )
    return absolute_row("peak_rss_1m", ours, detail=detail)


def _append_series(ctx: Context, dirs: dict[int, Path]) -> None:
    """For the chart: durable appends per second into each WAL (ours), and
    the original's rewrite-per-append up to `original_series_max` entries."""
    sizes = ctx.sizes
    order = sorted(dirs)
    wals = {}
    for n in order:
        ctx.log(f"load: opening the {n:,}-entry WAL for appending")
        wals[n] = FileAgreementWal(dirs[n] / "wal.log")
    fresh = Entries("chart-")
    sides = []
    for n in order:

        def appends(wal: FileAgreementWal = wals[n]) -> float:
            batch = fresh.take(sizes.series_appends)
            append = wal.append
            start = time.perf_counter()
            for entry in batch:
                append(entry)
            return time.perf_counter() - start

        sides.append(Side(f"durable append at {n:,}", appends, sizes.series_appends))
    chunks = record_bytes(
        [[e] for e in Entries("raw-").take(sizes.series_appends * (sizes.reps + 1))],
        ctx.path("capture"),
    )
    raw = raw_writer(ctx.path("raw-series.bin"), 1)
    raw_work = Batches(
        [
            chunks[i * sizes.series_appends : (i + 1) * sizes.series_appends]
            for i in range(sizes.reps + 1)
        ]
    )
    sides.append(Side("raw write+fdatasync", lambda: raw(raw_work.next()), sizes.series_appends))
    series = interleave(ctx, "durable append vs WAL size", sides, sizes.reps, 1)
    for wal in wals.values():
        wal.close()
    ctx.chart["raw"] = {
        "label": "raw write+fdatasync, one per append (same run)",
        "y": series[-1].median,
    }
    series = series[:-1]
    original_sizes = [n for n in order if n <= sizes.original_series_max]
    original_rates = []
    for n in original_sizes:
        ctx.log(f"load: the original's rewrite-per-append at {n:,} entries")
        baseline = OriginalFileWal(ctx.path(f"original-{n}.cbor"))
        baseline.path.write_bytes(artifact_bytes(Entries().take(n)))
        batch = Entries("original-").take(sizes.original_appends)
        start = time.perf_counter()
        for entry in batch:
            baseline.append(entry)
        original_rates.append(len(batch) / (time.perf_counter() - start))
        baseline.path.unlink()
    ctx.chart["append"] = {
        "sizes": order,
        "ours": [s.median for s in series],
        "original_sizes": original_sizes,
        "original": original_rates,
    }
