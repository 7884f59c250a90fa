"""Proof by crashes (API.md §11): a child process performs effects against a
sink, the parent SIGKILLs it at random moments, many times, and restarts it
on the same files; then a last child runs to the end. Per mode:

* ``AT_MOST_ONCE`` (a file sink, appended and fsynced; the cache a file log,
  or a SQLite database): no effect ever lands twice; every effect that
  landed without an outcome is reported in doubt, and each kill leaves at
  most one more in doubt;
* ``reconcile`` reading that sink: nothing is left in doubt, nothing repeats;
* ``AT_LEAST_ONCE`` with a sink deduplicating by `current_idempotency_key`:
  every effect lands exactly once;
* ``transaction()``: a SQLite table in the cache's own database holds every
  effect exactly once.

CI runs ``DURABILITY_CRASH_KILLS`` kills per mode (default 100); set it to
1000 or more for a long run. The counts are printed to stderr.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from durability import (
    EffectOutcome,
    EffectRequest,
    EffectSemantics,
    EvidencePersistenceHandler,
    FileEvidenceOutcomeCache,
    SqliteEvidenceOutcomeCache,
    current_idempotency_key,
)

KILLS = int(os.environ.get("DURABILITY_CRASH_KILLS", "100"))
SEED = int(os.environ.get("DURABILITY_CRASH_SEED", "20151"))
#: A kill lands this long (uniformly) after the child says it is ready; an
#: effect takes a few fsyncs, so most kills land inside one.
MAX_DELAY = 0.02
READY_TIMEOUT = 30.0

if "fork" not in multiprocessing.get_all_start_methods():  # pragma: no cover
    pytest.skip("the crash suite forks", allow_module_level=True)
FORK = multiprocessing.get_context("fork")


def eid(k: int) -> str:
    return f"e{k:06d}"


def request(k: int) -> EffectRequest:
    return EffectRequest(
        interface_name="Sink",
        operation_name="append",
        tick=k,
        operation_id=f"op{k // 10}",
        body={"id": eid(k)},
    )


# -- the sinks (in the child) -------------------------------------------------------------


class FileSink:
    """Appends a line per effect to a file and fsyncs it; optionally skips a
    key it already holds (a sink deduplicating by idempotency key)."""

    def __init__(self, path: Path, dedup: bool = False) -> None:
        self.path, self.dedup = path, dedup
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def lines(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        key = current_idempotency_key()
        assert key == request.body["id"]
        if not (self.dedup and key in self.lines()):
            os.write(self.fd, f"{key}\n".encode())
            os.fsync(self.fd)
        return EffectOutcome.success({"id": key})

    def reconcile(self, request: EffectRequest, evidence_id: str) -> EffectOutcome | None:
        """The sink itself says whether the effect happened."""
        return EffectOutcome.success({"id": evidence_id}) if evidence_id in self.lines() else None


class TableSink:
    """Inserts a row per effect into a table of the cache's own SQLite
    database, inside ``cache.transaction()``: the row and the outcome's
    binding commit together."""

    def __init__(self, cache: SqliteEvidenceOutcomeCache) -> None:
        self.cache = cache
        with cache.transaction() as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS sink (evidence_id TEXT NOT NULL)")

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        with self.cache.transaction() as connection:
            connection.execute("INSERT INTO sink VALUES (?)", (current_idempotency_key(),))
        return EffectOutcome.success({"id": current_idempotency_key()})


@attrs.frozen
class Mode:
    name: str
    sql: bool = False
    semantics: EffectSemantics = EffectSemantics.AT_MOST_ONCE
    reconcile: bool = False
    dedup: bool = False


MODES = [
    Mode("at_most_once"),
    Mode("at_most_once_sqlite_cache", sql=True),
    Mode("reconcile", reconcile=True),
    Mode("at_least_once_dedup", semantics=EffectSemantics.AT_LEAST_ONCE, dedup=True),
    Mode("transaction", sql=True, reconcile=True),
]


def open_cache(mode: Mode, directory: Path) -> Any:
    if mode.sql:  # the cache, and the transaction() sink when reconciling
        return SqliteEvidenceOutcomeCache(directory / "state.db")
    return FileEvidenceOutcomeCache(directory / "evidence.log")


def child(mode: Mode, directory: Path, ready: Any, last: bool, hint: int) -> None:
    """Open everything, tell the parent how many effects were ever started,
    then revisit what is in doubt and perform new effects forever (until
    killed); or, as the `last` run, call every effect started so far once
    more and exit. `hint`: every effect below it was started."""
    cache = open_cache(mode, directory)
    sink: Any = (
        TableSink(cache)
        if mode.sql and mode.reconcile
        else FileSink(directory / "sink", mode.dedup)
    )
    reconcile: Callable[..., Any] | None = None
    if mode.reconcile:  # with transaction(), no binding proves the effect did not happen
        reconcile = (lambda request, evidence_id: None) if mode.sql else sink.reconcile
    handler = EvidencePersistenceHandler(
        sink, cache, lambda r: r.body["id"], semantics=mode.semantics, reconcile=reconcile
    )
    doubts = [int(intent.evidence_id[1:]) for intent in cache.in_doubt()]
    new = hint
    while cache.get_intent(eid(new)) is not None:
        new += 1
    ready.send(new)
    for k in doubts:
        handler.handle_effect(request(k))
    k = 0 if last else new
    while not last or k < new:
        handler.handle_effect(request(k))
        k += 1


# -- the parent ------------------------------------------------------------------------


def start(mode: Mode, directory: Path, hint: int, *, last: bool = False) -> tuple[Any, int]:
    receive, send = FORK.Pipe(duplex=False)
    process = FORK.Process(target=child, args=(mode, directory, send, last, hint))
    process.start()
    send.close()
    if not receive.poll(READY_TIMEOUT):
        process.kill()
        pytest.fail(f"the {mode.name} child did not start within {READY_TIMEOUT:.0f}s")
    started: int = receive.recv()
    return process, started


def sink_ids(mode: Mode, directory: Path) -> list[str]:
    if not (mode.sql and mode.reconcile):
        path = directory / "sink"
        return path.read_text().splitlines() if path.exists() else []
    import sqlite3

    with sqlite3.connect(directory / "state.db") as connection:
        return [row[0] for row in connection.execute("SELECT evidence_id FROM sink")]


@pytest.mark.parametrize("mode", MODES, ids=[m.name for m in MODES])
def test_effects_survive_random_kills(
    mode: Mode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(f"{SEED}/{mode.name}")
    began = time.monotonic()
    doubts: set[str] = set()
    grew_by_one = started = 0
    watcher = open_cache(mode, tmp_path)  # reads what each child left, incrementally
    for _kill in range(KILLS):
        process, started = start(mode, tmp_path, started)
        time.sleep(rng.uniform(0, MAX_DELAY))
        os.kill(process.pid, signal.SIGKILL)
        process.join()
        assert process.exitcode == -signal.SIGKILL, f"the child ended by itself: {process.exitcode}"
        now = {intent.evidence_id for intent in watcher.in_doubt()}
        if mode.semantics is EffectSemantics.AT_MOST_ONCE and not mode.reconcile:
            assert doubts <= now, "an effect left in doubt was settled without an operator"
            assert len(now - doubts) <= 1, f"one kill left {sorted(now - doubts)} in doubt"
        grew_by_one += len(now - doubts)
        doubts = now
    last, effects = start(mode, tmp_path, started, last=True)
    last.join(120)
    assert last.exitcode == 0, f"the last {mode.name} run failed: {last.exitcode}"

    landed = collections.Counter(sink_ids(mode, tmp_path))
    cache = open_cache(mode, tmp_path)
    final_doubts = [intent.evidence_id for intent in cache.in_doubt()]
    bound = {entry.evidence_id for entry in cache.load().entries}
    attempts = sum(cache.get_intent(eid(k)).attempt for k in range(effects))
    twice = sorted(key for key, count in landed.items() if count > 1)
    assert twice == [], f"{len(twice)} effects landed twice: {twice[:5]}"
    if mode.semantics is EffectSemantics.AT_MOST_ONCE and not mode.reconcile:
        assert set(landed) - bound <= set(final_doubts), "an effect landed, unbound, not in doubt"
        assert bound | set(final_doubts) == {eid(k) for k in range(effects)}
        assert len(final_doubts) <= KILLS + 1
    else:
        assert final_doubts == []
        assert bound == {eid(k) for k in range(effects)}
        assert set(landed) == bound  # every effect landed exactly once
    summary = (
        f"crash suite [{mode.name}]: {KILLS} kills, {effects} effects, "
        f"{len(landed)} landed once, {len(twice)} twice, {len(final_doubts)} left in doubt, "
        f"{grew_by_one} kills left one in doubt, {attempts - effects} re-attempts, "
        f"{time.monotonic() - began:.1f}s"
    )
    with capsys.disabled():
        print(f"\n{summary}", file=sys.stderr)
