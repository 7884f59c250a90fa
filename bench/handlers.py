"""Handler rows: ``wal_sync`` against WAL size, evidence cache reads, and
durable evidence-cached effects against DBOS Transact steps."""

from __future__ import annotations

import random
import time
from typing import Any

from durability import (
    AgreementWalHandler,
    EffectOutcome,
    EffectRequest,
    EffectStatus,
    FileAgreementWal,
    FileEvidenceOutcomeCache,
    InMemoryEvidenceOutcomeCache,
    SyncPolicy,
    evidence_cached,
)

from .peers import DbosSteps, optional, version_of
from .runner import Context, Row, Side, absolute_row, interleave, ratio_row, skipped_row
from .workload import Entries, build_wal, cache_entry, sync_request

__all__ = ["run"]


class _Storage:
    """The wrapped effect handler: answers every request at once."""

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        return EffectOutcome.success({"written": request.operation_id})


def run(ctx: Context) -> list[Row]:
    """Every row of the handlers group."""
    return [_wal_sync(ctx), *_cache_get(ctx), _versus_dbos(ctx)]


def _wal_sync(ctx: Context) -> Row:
    """``AgreementWalHandler.wal_sync`` (durable) on a WAL that already holds
    `walsync_big` entries vs one holding `walsync_small`; each sync writes an
    evidence, an escalation and a gate crossing (one batch, one fsync)."""
    sizes = ctx.sizes
    handlers = {}
    for n in (sizes.walsync_big, sizes.walsync_small):
        ctx.log(f"handlers: building a WAL of {n:,} entries")
        path = ctx.path(f"walsync-{n}.log")
        build_wal(path, Entries(), n)
        handlers[n] = AgreementWalHandler(_Storage(), FileAgreementWal(path))
    counter = [0]

    def syncs(n: int) -> float:
        handler = handlers[n]
        requests = []
        for _ in range(sizes.walsyncs):
            counter[0] += 1
            requests.append(sync_request(f"sync#{counter[0]}", 10**9 + counter[0]))
        start = time.perf_counter()
        for request in requests:
            outcome = handler.wal_sync(request)
        elapsed = time.perf_counter() - start
        if outcome.status is not EffectStatus.SUCCESS:
            raise RuntimeError(f"wal_sync answered {outcome!r}")
        return elapsed

    big, small = sizes.walsync_big, sizes.walsync_small
    series = interleave(
        ctx,
        f"wal_sync at {big:,} vs {small:,} entries",
        [
            Side(
                f"wal_sync, {big:,} entries in the WAL",
                lambda: syncs(big),
                sizes.walsyncs,
                "syncs/s",
            ),
            Side(
                f"wal_sync, {small:,} entries in the WAL",
                lambda: syncs(small),
                sizes.walsyncs,
                "syncs/s",
            ),
        ],
        sizes.reps,
        sizes.warmup,
    )
    detail = (
        f"{sizes.walsyncs} durable wal_syncs per repetition (3 entries, one fsync each), "
        f"{sizes.reps} repetitions"
    )
    return ratio_row(
        "wal_sync_100k_vs_1k", series[0], series[1], detail=detail, profile=lambda: syncs(big)
    )


def _cache_get(ctx: Context) -> list[Row]:
    """``get`` of bound evidence ids, in random order, from a cache of
    `cache_entries` bindings: the file cache (the target) and the in-memory one."""
    sizes = ctx.sizes
    n = sizes.cache_entries
    ctx.log(f"handlers: binding {n:,} outcomes in a file cache")
    path = ctx.path("cache.log")
    memory = InMemoryEvidenceOutcomeCache()
    with FileEvidenceOutcomeCache(path, sync=SyncPolicy.NONE) as building:
        for i in range(n):
            entry = cache_entry(f"op#{i}/cert")
            building.put(entry)
            memory.put(entry)
        building.sync()
    cache = FileEvidenceOutcomeCache(path)
    rng = random.Random(12)
    ids = [f"op#{rng.randrange(n)}/cert" for _ in range(sizes.cache_gets)]

    def gets(get: Any) -> float:
        start = time.perf_counter()
        for evidence_id in ids:
            get(evidence_id)
        return time.perf_counter() - start

    series = interleave(
        ctx,
        f"evidence cache get, {n:,} entries",
        [
            Side("FileEvidenceOutcomeCache.get", lambda: gets(cache.get), len(ids), "gets/s"),
            Side("InMemoryEvidenceOutcomeCache.get", lambda: gets(memory.get), len(ids), "gets/s"),
        ],
        sizes.reps,
        sizes.warmup,
    )
    detail = (
        f"{n:,} bindings, {len(ids):,} gets of random bound ids per repetition, "
        f"{sizes.reps} repetitions"
    )
    if cache.get("op#0/cert") is None:
        raise RuntimeError("the file cache lost its bindings")
    return [
        absolute_row("cache_get_100k", series[0], detail=detail, profile=lambda: gets(cache.get)),
        absolute_row("memory_cache_get_100k", series[1], detail=detail),
    ]


def _versus_dbos(ctx: Context) -> Row:
    """An evidence-cached effect that misses (the function runs, its outcome
    is bound with an fsync) vs a ``@DBOS.step`` in a DBOS workflow (its
    output is committed to the SQLite system database)."""
    if optional("dbos") is None:
        return skipped_row(
            "evidence_vs_dbos", "DBOS Transact is not installed (pip install -e '.[bench]')"
        )
    sizes = ctx.sizes
    n = sizes.dbos_steps
    folder = ctx.path("dbos")
    folder.mkdir()
    try:
        dbos = DbosSteps(folder)
    except Exception as exc:
        return skipped_row(
            "evidence_vs_dbos", f"DBOS Transact could not start here: {type(exc).__name__}: {exc}"
        )
    ctx.peers["DBOS Transact"] = f"dbos {version_of('dbos')}: {dbos.settings}"
    cache = FileEvidenceOutcomeCache(ctx.path("evidence.log"))

    @evidence_cached(cache, lambda request: f"{request.operation_id}/effect")
    def effect(request: EffectRequest) -> EffectOutcome:
        return EffectOutcome.success({"written": request.operation_id})

    counter = [0]

    def ours() -> float:
        requests = []
        for _ in range(n):
            counter[0] += 1
            requests.append(
                EffectRequest(
                    interface_name="kv",
                    operation_name="put",
                    tick=counter[0],
                    operation_id=f"op#{counter[0]}",
                    body={"key": counter[0]},
                )
            )
        start = time.perf_counter()
        for request in requests:
            outcome = effect(request)
        elapsed = time.perf_counter() - start
        if not outcome.is_success:
            raise RuntimeError(f"evidence-cached effect answered {outcome!r}")
        return elapsed

    try:
        series = interleave(
            ctx,
            "evidence-cached effect vs DBOS step",
            [
                Side("evidence-cached effect, miss + durable binding", ours, n, "effects/s"),
                Side(
                    "DBOS @DBOS.step in one workflow, SQLite system database",
                    lambda: dbos.run(n),
                    n,
                    "effects/s",
                ),
            ],
            sizes.reps,
            sizes.warmup,
        )
    finally:
        dbos.close()
    detail = (
        f"{n} effects per repetition (ours: {n} calls, each a new evidence id; DBOS: one "
        f"workflow of {n} steps), {sizes.reps} repetitions; both durable before returning"
    )
    return ratio_row("evidence_vs_dbos", series[0], series[1], detail=detail, profile=ours)
