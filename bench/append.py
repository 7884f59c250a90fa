"""Append rows: durable appends against the physical limit of the disk
(``os.write`` + ``os.fdatasync`` of the very bytes the log writes), sqlite3
and the eventsourcing recorders; ``append_batch``; group commit from threads
and from asyncio tasks; the in-memory WAL against eventsourcing's POPO
recorder.

Every side appends fresh entries (the toolkit refuses reordered escalations)
that were built, encoded and captured before the clock starts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from durability import FileAgreementWal, InMemoryAgreementWal, SyncPolicy, WalEntry

from .peers import EventsourcingRecorder, SqliteLog, optional, version_of
from .runner import Context, Row, Side, interleave, ratio_row, skipped_row
from .workload import Entries, entry_cbor, record_bytes

__all__ = ["Batches", "raw_writer", "run"]

THREADS = 8
TASKS = 256
PER_FLUSH = 64


class Batches:
    """Pre-built work for every repetition of one side: entries (or bytes),
    handed out one repetition at a time."""

    def __init__(self, items: list[Any]) -> None:
        self._items = items
        self._next = 0

    def next(self) -> Any:
        item = self._items[self._next]
        self._next += 1
        return item


def raw_writer(path: Path, per_flush: int) -> Callable[[list[bytes]], float]:
    """The physical limit: `per_flush` ``os.write`` calls of the given bytes
    per ``os.fdatasync``, to a file opened once for appending."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

    def write(chunks: list[bytes]) -> float:
        write, sync = os.write, os.fdatasync
        start = time.perf_counter()
        for i in range(0, len(chunks), per_flush):
            for chunk in chunks[i : i + per_flush]:
                write(fd, chunk)
            sync(fd)
        return time.perf_counter() - start

    return write


def _raw_overwriter(path: Path, size: int) -> Callable[[list[bytes]], float]:
    """Physical limit without file growth: ``os.pwrite`` of the given bytes
    into space already written (and synced) at the file's start, one
    ``os.fdatasync`` each: the file's size never changes, so a sync flushes
    data only (what sqlite's WAL file does once it wraps)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.write(fd, bytes(size))
    os.fsync(fd)
    offset = [0]

    def write(chunks: list[bytes]) -> float:
        pwrite, sync = os.pwrite, os.fdatasync
        at = offset[0]
        start = time.perf_counter()
        for chunk in chunks:
            pwrite(fd, chunk, at)
            sync(fd)
            at += len(chunk)
        elapsed = time.perf_counter() - start
        offset[0] = at
        return elapsed

    return write


class SyncCounter:
    """Counts ``os.fdatasync`` calls made while a side runs (the toolkit
    looks ``os.fdatasync`` up at call time), to report how many appends
    each flush covered."""

    def __init__(self) -> None:
        self.calls: list[None] = []  # list.append is atomic across threads
        self.ops = 0

    def wrap(self, run: Callable[[], float], ops: int) -> Callable[[], float]:
        def counted_run() -> float:
            real = os.fdatasync

            def counted(fd: Any) -> None:
                self.calls.append(None)
                real(fd)

            os.fdatasync = counted
            try:
                elapsed = run()
            finally:
                os.fdatasync = real
            self.ops += ops
            return elapsed

        return counted_run

    def per_sync(self) -> str:
        return f"{self.ops / len(self.calls):.1f}" if self.calls else "n/a"


def _threads_appending(wal: FileAgreementWal, lanes: list[list[WalEntry]]) -> float:
    """Seconds for one thread per lane to append its entries one at a time."""
    barrier = threading.Barrier(len(lanes) + 1)
    errors: list[BaseException] = []

    def lane(entries: list[WalEntry]) -> None:
        barrier.wait()
        try:
            for entry in entries:
                wal.append(entry)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=lane, args=(entries,)) for entries in lanes]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def _tasks_appending(
    wal: FileAgreementWal, lanes: list[list[WalEntry]], executor_threads: int | None
) -> float:
    """Seconds for one asyncio task per lane to append its entries one at a
    time: with ``wal.append_async(entry)`` when `executor_threads` is
    ``None`` (the toolkit's asyncio group commit), else with
    ``asyncio.to_thread(wal.append, entry)`` on a default executor of
    `executor_threads` threads (the way without it, for context)."""

    async def lane(entries: list[WalEntry]) -> None:
        for entry in entries:
            if executor_threads is None:
                await wal.append_async(entry)
            else:
                await asyncio.to_thread(wal.append, entry)

    async def main() -> float:
        if executor_threads is not None:
            pool = concurrent.futures.ThreadPoolExecutor(max_workers=executor_threads)
            asyncio.get_running_loop().set_default_executor(pool)
        start = time.perf_counter()
        await asyncio.gather(*(lane(entries) for entries in lanes))
        return time.perf_counter() - start

    return asyncio.run(main())


def _lanes(entries: Entries, lanes: int, per_lane: int) -> list[list[WalEntry]]:
    return [entries.take(per_lane) for _ in range(lanes)]


def _flatten(lanes: Sequence[Sequence[WalEntry]]) -> list[WalEntry]:
    return [entry for lane in lanes for entry in lane]


def run(ctx: Context) -> list[Row]:
    """Every row of the append group."""
    rows: list[Row] = []
    rows += _single_appends(ctx)
    rows.append(_software_cost(ctx))
    rows += _batches(ctx)
    rows += _group_commit(ctx)
    rows += _in_memory(ctx)
    return rows


def _single_appends(ctx: Context) -> list[Row]:
    """One durable append per fsync: ours, raw write+fdatasync, sqlite3 WAL
    FULL, eventsourcing's SQLite recorder; interleaved."""
    sizes = ctx.sizes
    reps = sizes.warmup + sizes.reps
    n = sizes.appends
    entries = Entries()
    per_rep = [entries.take(n) for _ in range(reps)]
    everything = _flatten(per_rep)
    ctx.log(f"append: capturing the bytes of {len(everything)} single appends")
    chunks = record_bytes([[e] for e in everything], ctx.path("capture"))
    blobs = entry_cbor(everything)
    record_size = sum(map(len, chunks)) / len(chunks)

    wal = FileAgreementWal(ctx.path("durable.log"))
    ours_work = Batches(per_rep)

    def ours() -> float:
        batch: list[WalEntry] = ours_work.next()
        append = wal.append
        start = time.perf_counter()
        for entry in batch:
            append(entry)
        return time.perf_counter() - start

    raw = raw_writer(ctx.path("raw1.bin"), 1)
    raw_work = Batches([chunks[i * n : (i + 1) * n] for i in range(reps)])
    overwrite = _raw_overwriter(ctx.path("raw-prealloc.bin"), sum(map(len, chunks)))
    overwrite_work = Batches([chunks[i * n : (i + 1) * n] for i in range(reps)])

    sqlite = SqliteLog(ctx.path("sqlite.db"))
    ctx.peers["sqlite3"] = f"sqlite3 {sqlite3.sqlite_version}: {sqlite.settings}"
    sqlite_work = Batches([blobs[i * n : (i + 1) * n] for i in range(reps)])

    def peer_sqlite() -> float:
        batch: list[bytes] = sqlite_work.next()
        append = sqlite.append
        start = time.perf_counter()
        for blob in batch:
            append(blob)
        return time.perf_counter() - start

    sides = [
        Side("durable append (FileAgreementWal, SyncPolicy.DURABLE)", ours, n),
        Side(
            f"raw os.write + os.fdatasync, same bytes ({record_size:.0f} B each)",
            lambda: raw(raw_work.next()),
            n,
        ),
        Side("sqlite3 INSERT, WAL mode, synchronous=FULL, autocommit", peer_sqlite, n),
        Side(
            "raw os.pwrite + os.fdatasync into preallocated space (file size unchanged)",
            lambda: overwrite(overwrite_work.next()),
            n,
        ),
    ]
    es_recorder = None
    if optional("eventsourcing") is not None:
        es_recorder = EventsourcingRecorder(ctx.path("eventsourcing.db"))
        ctx.peers["eventsourcing SQLite recorder"] = es_recorder.settings
        kinds = [type(e).__name__ for e in everything]
        ops = [e.operation_id for e in everything]
        events = es_recorder.events(kinds, blobs, ops)
        es_work = Batches([events[i * n : (i + 1) * n] for i in range(reps)])
        recorder = es_recorder

        def peer_es() -> float:
            batch: list[Any] = es_work.next()
            insert = recorder.insert
            start = time.perf_counter()
            for event in batch:
                insert(event)
            return time.perf_counter() - start

        sides.append(Side("eventsourcing SQLiteAggregateRecorder.insert_events([e])", peer_es, n))

    series = interleave(
        ctx, "durable append vs raw / sqlite3 / eventsourcing", sides, sizes.reps, sizes.warmup
    )
    ctx.shared["raw_fsync_appends_per_s"] = series[1].median
    ctx.shared["durable_appends_per_s"] = series[0].median
    detail = (
        f"{n} appends per repetition, {sizes.reps} repetitions; "
        f"{record_size:.0f} B written per append"
    )

    def profile_ours() -> object:
        more = Entries.unique("profile").take(n)
        for entry in more:
            wal.append(entry)
        return None

    rows = [
        ratio_row("append_vs_raw", series[0], series[1], detail=detail, profile=profile_ours),
        ratio_row("append_vs_sqlite", series[0], series[2], detail=detail, profile=profile_ours),
        ratio_row("append_vs_raw_prealloc", series[0], series[3], detail=detail),
    ]
    if es_recorder is not None:
        rows.append(ratio_row("append_vs_es_sqlite", series[0], series[4], detail=detail))
        es_recorder.close()
    else:
        rows.append(
            skipped_row(
                "append_vs_es_sqlite",
                "eventsourcing is not installed (pip install -e '.[bench]')",
            )
        )
    sqlite.close()
    return rows


def _software_cost(ctx: Context) -> Row:
    """The toolkit's own cost per append, with the disk out of the picture:
    appends under ``SyncPolicy.NONE`` vs ``os.write`` of the same bytes,
    neither syncing."""
    sizes = ctx.sizes
    reps = sizes.warmup + sizes.reps
    n = sizes.appends * 10
    entries = Entries()
    per_rep = [entries.take(n) for _ in range(reps)]
    chunks = record_bytes([[e] for e in _flatten(per_rep)], ctx.path("capture"))
    raw_work = Batches([chunks[i * n : (i + 1) * n] for i in range(reps)])
    fd = os.open(ctx.path("raw-nosync.bin"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    wal = FileAgreementWal(ctx.path("nosync.log"), sync=SyncPolicy.NONE)
    ours_work = Batches(per_rep)

    def ours() -> float:
        batch: list[WalEntry] = ours_work.next()
        append = wal.append
        start = time.perf_counter()
        for entry in batch:
            append(entry)
        return time.perf_counter() - start

    def raw() -> float:
        batch: list[bytes] = raw_work.next()
        write = os.write
        start = time.perf_counter()
        for chunk in batch:
            write(fd, chunk)
        return time.perf_counter() - start

    series = interleave(
        ctx,
        "append without sync vs os.write",
        [
            Side("append, SyncPolicy.NONE", ours, n),
            Side("raw os.write of the same bytes, no sync", raw, n),
        ],
        sizes.reps,
        sizes.warmup,
    )
    overhead = (1 / series[0].median - 1 / series[1].median) * 1e6
    detail = (
        f"{n} appends per repetition, {sizes.reps} repetitions; the toolkit adds "
        f"{overhead:.0f} µs of work per append on top of the write itself (medians)"
    )

    def profile_ours() -> object:
        for entry in Entries.unique("profile").take(n):
            wal.append(entry)
        return None

    return ratio_row(
        "append_nosync_vs_raw_write", series[0], series[1], detail=detail, profile=profile_ours
    )


def _batches(ctx: Context) -> list[Row]:
    """``append_batch`` of 64 (one record, one sync) vs 64 raw writes per fdatasync."""
    sizes = ctx.sizes
    reps = sizes.warmup + sizes.reps
    entries = Entries()
    per_rep = [[entries.take(PER_FLUSH) for _ in range(sizes.batches)] for _ in range(reps)]
    singles = [[e] for rep in per_rep for batch in rep for e in batch]
    ctx.log(f"append: capturing the bytes of {len(singles)} entries")
    chunks = record_bytes(singles, ctx.path("capture"))
    per = sizes.batches * PER_FLUSH
    raw_work = Batches([chunks[i * per : (i + 1) * per] for i in range(reps)])
    raw = raw_writer(ctx.path("raw64.bin"), PER_FLUSH)

    wal = FileAgreementWal(ctx.path("batch.log"))
    ours_work = Batches(per_rep)

    def ours() -> float:
        batches: list[list[WalEntry]] = ours_work.next()
        append_batch = wal.append_batch
        start = time.perf_counter()
        for batch in batches:
            append_batch(batch)
        return time.perf_counter() - start

    series = interleave(
        ctx,
        "append_batch(64) vs raw 64 writes per fdatasync",
        [
            Side("append_batch of 64, SyncPolicy.DURABLE", ours, per),
            Side(
                "raw: 64 os.write per os.fdatasync, same entries", lambda: raw(raw_work.next()), per
            ),
        ],
        sizes.reps,
        sizes.warmup,
    )
    ctx.shared["raw64_entries_per_s"] = series[1].median

    def profile_ours() -> object:
        more = Entries.unique("profile")
        for _ in range(sizes.batches):
            wal.append_batch(more.take(PER_FLUSH))
        return None

    detail = f"{sizes.batches} batches of {PER_FLUSH} per repetition, {sizes.reps} repetitions"
    return [ratio_row("batch64_vs_raw", series[0], series[1], detail=detail, profile=profile_ours)]


def _group_commit(ctx: Context) -> list[Row]:
    """Group commit from 8 threads and from 256 asyncio tasks, against the
    physical limits of 8 and 64 entries per flush, and durable appends from
    one thread."""
    sizes = ctx.sizes
    reps = sizes.warmup + sizes.reps
    entries = Entries()
    thread_work = Batches([_lanes(entries, THREADS, sizes.group_per_thread) for _ in range(reps)])
    task_work = Batches([_lanes(entries, TASKS, sizes.async_per_task) for _ in range(reps)])
    task64_work = Batches([_lanes(entries, TASKS, sizes.async_per_task) for _ in range(reps)])
    single_work = Batches([entries.take(sizes.group_per_thread * 2) for _ in range(reps)])

    group_wal = FileAgreementWal(ctx.path("group.log"), sync=SyncPolicy.GROUP)
    durable_wal = FileAgreementWal(ctx.path("single.log"))

    threads_n = THREADS * sizes.group_per_thread
    tasks_n = TASKS * sizes.async_per_task
    single_n = sizes.group_per_thread * 2
    capture_src = Entries("capture-")
    ctx.log("append: capturing the bytes of the raw group-commit baselines")
    chunks8 = record_bytes([[e] for e in capture_src.take(threads_n * reps)], ctx.path("capture"))
    chunks64 = record_bytes([[e] for e in capture_src.take(tasks_n * reps)], ctx.path("capture"))
    raw8_work = Batches([chunks8[i * threads_n : (i + 1) * threads_n] for i in range(reps)])
    raw64_work = Batches([chunks64[i * tasks_n : (i + 1) * tasks_n] for i in range(reps)])
    raw8 = raw_writer(ctx.path("raw8.bin"), THREADS)
    raw64 = raw_writer(ctx.path("raw64b.bin"), PER_FLUSH)

    def durable_one_thread() -> float:
        batch: list[WalEntry] = single_work.next()
        append = durable_wal.append
        start = time.perf_counter()
        for entry in batch:
            append(entry)
        return time.perf_counter() - start

    count8, count256, count64 = SyncCounter(), SyncCounter(), SyncCounter()
    sides = [
        Side(
            f"{THREADS} threads, SyncPolicy.GROUP",
            count8.wrap(lambda: _threads_appending(group_wal, thread_work.next()), threads_n),
            threads_n,
        ),
        Side(
            f"raw: {THREADS} os.write per os.fdatasync", lambda: raw8(raw8_work.next()), threads_n
        ),
        Side(
            f"{TASKS} tasks, FileAgreementWal.append_async (SyncPolicy.GROUP)",
            count256.wrap(lambda: _tasks_appending(group_wal, task_work.next(), None), tasks_n),
            tasks_n,
        ),
        Side(
            f"{TASKS} tasks, asyncio.to_thread, 64-thread executor",
            count64.wrap(lambda: _tasks_appending(group_wal, task64_work.next(), 64), tasks_n),
            tasks_n,
        ),
        Side(
            f"raw: {PER_FLUSH} os.write per os.fdatasync", lambda: raw64(raw64_work.next()), tasks_n
        ),
        Side("durable append, one thread", durable_one_thread, single_n),
    ]
    series = interleave(ctx, "group commit vs raw", sides, sizes.reps, sizes.warmup)

    def profile_threads() -> object:
        more = Entries.unique("profile")
        return _threads_appending(group_wal, _lanes(more, THREADS, sizes.group_per_thread))

    def profile_tasks() -> object:
        more = Entries.unique("profile")
        return _tasks_appending(group_wal, _lanes(more, TASKS, sizes.async_per_task), None)

    detail8 = (
        f"{THREADS} threads x {sizes.group_per_thread} appends per repetition, "
        f"{sizes.reps} repetitions; appends per fdatasync (mean): {count8.per_sync()} "
        f"(the physical limit assumes {THREADS})"
    )
    detail256 = (
        f"{TASKS} tasks x {sizes.async_per_task} appends per repetition, {sizes.reps} "
        f"repetitions; appends per fdatasync (mean): {count256.per_sync()} "
        f"(the raw side: {PER_FLUSH})"
    )
    detail256_64 = (
        f"{TASKS} tasks x {sizes.async_per_task} appends per repetition, {sizes.reps} "
        f"repetitions; appends per fdatasync (mean): {count64.per_sync()} "
        f"(the raw side: {PER_FLUSH})"
    )
    rows = [
        ratio_row("group8_vs_raw", series[0], series[1], detail=detail8, profile=profile_threads),
        ratio_row(
            "async256_vs_raw",
            series[2],
            series[4],
            detail=detail256,
            profile=profile_tasks,
        ),
        ratio_row("async256_64threads_vs_raw", series[3], series[4], detail=detail256_64),
        ratio_row("group8_vs_durable", series[0], series[5], detail=detail8),
    ]
    durable_wal.close()
    return rows


def _in_memory(ctx: Context) -> list[Row]:
    """``InMemoryAgreementWal.append`` vs eventsourcing's POPO recorder."""
    if optional("eventsourcing") is None:
        return [
            skipped_row(
                "memory_vs_popo", "eventsourcing is not installed (pip install -e '.[bench]')"
            )
        ]
    sizes = ctx.sizes
    reps = sizes.warmup + sizes.reps
    n = sizes.memory_appends
    entries = Entries()
    per_rep = [entries.take(n) for _ in range(reps)]
    everything = _flatten(per_rep)
    ctx.log(f"append: encoding {len(everything)} entries as eventsourcing stored events")
    blobs = entry_cbor(everything)
    maker = EventsourcingRecorder(None)
    events = maker.events(
        [type(e).__name__ for e in everything], blobs, [e.operation_id for e in everything]
    )
    ours_work = Batches(per_rep)
    peer_work = Batches([events[i * n : (i + 1) * n] for i in range(reps)])

    def ours() -> float:
        wal = InMemoryAgreementWal()
        batch: list[WalEntry] = ours_work.next()
        append = wal.append
        start = time.perf_counter()
        for entry in batch:
            append(entry)
        return time.perf_counter() - start

    def peer() -> float:
        recorder = EventsourcingRecorder(None)
        batch: list[Any] = peer_work.next()
        insert = recorder.insert
        start = time.perf_counter()
        for event in batch:
            insert(event)
        return time.perf_counter() - start

    series = interleave(
        ctx,
        "in-memory append vs eventsourcing POPO",
        [
            Side("InMemoryAgreementWal.append", ours, n),
            Side("eventsourcing POPOAggregateRecorder.insert_events([e])", peer, n),
        ],
        sizes.reps,
        sizes.warmup,
    )
    version = version_of("eventsourcing")
    ctx.peers["eventsourcing POPO recorder"] = f"eventsourcing {version}, in memory"

    def profile_ours() -> object:
        wal = InMemoryAgreementWal()
        for entry in Entries.unique("profile").take(n):
            wal.append(entry)
        return None

    detail = f"{n} appends per repetition into a new WAL / recorder, {sizes.reps} repetitions"
    return [ratio_row("memory_vs_popo", series[0], series[1], detail=detail, profile=profile_ours)]
