"""Concurrency (issue 13, suite 5): several processes, each with several
threads, appending to one WAL and one cache.

* records never interleave or tear: the files scan clean, every append is
  there once, and each writer's appends are in its order;
* escalation validation is exact across processes: writers racing to
  escalate the same operations each read the level and try the next one,
  and exactly one escalation per level wins, whoever the writer;
* under group commit an append returns only once its record is synced.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

from durability import EscalationOrderError
from durability.backends.file import (
    FileAgreementWal,
    FileEvidenceOutcomeCache,
    SyncPolicy,
    inspect_log,
)
from durability.testing.faults import PowerLossFileSystem
from tests.helpers import L, binding, esc, gate
from tests.reliability._scale import figure, scaled

PROCESSES = 4
THREADS = 3  # per process: two share one instance, one has its own
APPENDS = scaled(100, 1000)
CHAIN = [L.NONE, L.PROVISIONAL, L.SOFT_SAFE, L.FINALIZED]


def writes() -> list[list[int]]:
    """One writer's appends: ticks 0.. in order, every fifth write a batch of two."""
    out: list[list[int]] = []
    tick = 0
    while tick < APPENDS:
        size = 2 if len(out) % 5 == 4 and tick + 1 < APPENDS else 1
        out.append(list(range(tick, tick + size)))
        tick += size
    return out


def _appender(d: Path, p: int) -> None:
    shared_wal = FileAgreementWal(d / "wal.log")
    shared_cache = FileEvidenceOutcomeCache(d / "evidence.log")

    def thread(t: int) -> None:
        own = t == THREADS - 1
        wal = FileAgreementWal(d / "wal.log") if own else shared_wal
        cache = FileEvidenceOutcomeCache(d / "evidence.log") if own else shared_cache
        name = f"p{p}t{t}"
        for n, ticks in enumerate(writes()):
            if len(ticks) == 1:
                wal.append(gate(name, L.NONE, ticks[0]))
            else:
                wal.append_batch([gate(name, L.NONE, tick) for tick in ticks])
            cache.put(binding(f"{name}-{n}"))

    workers = [threading.Thread(target=thread, args=(t,)) for t in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def run_processes(target: Any, *args: Any) -> None:
    fork = multiprocessing.get_context("fork")
    children = [fork.Process(target=target, args=(*args, p)) for p in range(PROCESSES)]
    for child in children:
        child.start()
    for child in children:
        child.join(300)
        assert child.exitcode == 0


def test_processes_and_threads_appending_to_one_wal_and_one_cache_never_interleave(
    tmp_path: Path,
) -> None:
    started = time.perf_counter()
    run_processes(_appender, tmp_path)
    for name in ("wal.log", "evidence.log"):
        report = inspect_log(tmp_path / name)
        assert report.torn_tail is None, f"{name}: {report.torn_tail}"
        assert [r.seq for r in report.records] == list(range(len(report.records)))
    entries = FileAgreementWal(tmp_path / "wal.log").load().entries
    writers = {f"p{p}t{t}" for p in range(PROCESSES) for t in range(THREADS)}
    assert len(entries) == len(writers) * APPENDS
    for name in writers:
        assert [e.tick for e in entries if e.operation_id == name] == list(range(APPENDS))
    bound = FileEvidenceOutcomeCache(tmp_path / "evidence.log").load().entries
    assert len(bound) == len({e.evidence_id for e in bound}) == len(writers) * len(writes())
    figure(
        "concurrency-append",
        processes=PROCESSES,
        threads=PROCESSES * THREADS,
        wal_entries=len(entries),
        cache_bindings=len(bound),
        seconds=round(time.perf_counter() - started, 1),
    )


OPERATIONS = scaled(40, 300)


def _escalator(d: Path, out: Any, p: int) -> None:
    results: list[tuple[str, int, int]] = []

    def thread(t: int) -> None:
        wal = FileAgreementWal(d / "wal.log")  # its own instance: must catch up to validate
        for round_ in range(10 * OPERATIONS):
            op = f"op{round_ // 3 % OPERATIONS}"  # everyone on the same operation
            last = wal.operation_summary(op).escalation_level or L.NONE
            if last is L.FINALIZED:
                continue
            step = CHAIN[CHAIN.index(last) + 1]
            try:
                wal.append(esc(op, last, step, round_, f"p{p}t{t}"))
                results.append((op, CHAIN.index(step), 1))
            except EscalationOrderError:
                results.append((op, CHAIN.index(step), 0))

    workers = [threading.Thread(target=thread, args=(t,)) for t in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put(results)


def test_escalation_validation_is_exact_across_processes(tmp_path: Path) -> None:
    fork = multiprocessing.get_context("fork")
    out = fork.Queue()
    children = [fork.Process(target=_escalator, args=(tmp_path, out, p)) for p in range(PROCESSES)]
    for child in children:
        child.start()
    results = [item for _ in children for item in out.get(timeout=300)]
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    wins = [(op, level) for op, level, won in results if won]
    assert len(wins) == len(set(wins)), "two writers won the same escalation"
    entries = FileAgreementWal(tmp_path / "wal.log").load().entries
    for i in range(OPERATIONS):
        steps = [(e.previous_level, e.new_level) for e in entries if e.operation_id == f"op{i}"]
        assert steps == list(itertools.pairwise(CHAIN))[: len(steps)]
    rejected = sum(1 for _, _, won in results if not won)
    figure("concurrency-escalation", attempts=len(results), won=len(wins), rejected=rejected)


class SlowSyncTracking(PowerLossFileSystem):
    """Writes take a while, so appenders pile up behind a flush in flight."""

    def write_at(self, fd: int, data: bytes, offset: int, path: str) -> None:
        time.sleep(0.002)
        super().write_at(fd, data, offset, path)


def test_a_group_commit_append_returns_only_after_its_record_is_synced(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    fs = SlowSyncTracking()
    wal = FileAgreementWal(path, sync=SyncPolicy.GROUP, fs=fs)
    early: list[str] = []

    def thread(t: int) -> None:
        for i in range(scaled(25, 100)):
            marker = f"w{t}-{i}-marker"
            wal.append(gate(marker, L.NONE, i))
            if marker.encode() not in fs.synced_bytes(path):
                early.append(marker)

    workers = [threading.Thread(target=thread, args=(t,)) for t in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert early == [], f"{len(early)} appends returned before their record was synced"
