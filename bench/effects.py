"""Effect rows: what intents (API.md §11) cost a miss of the evidence handler.

A miss with intents writes an intent (durable) before the effect and binds
the outcome after it; a miss without them only binds. The difference should
be about one more durable record: the target compares it with one durable
``put`` on the same file cache. The inner handler does nothing, so the
figures are the toolkit's and the disk's alone. Every side runs on one
cache instance; the side without intents reaches it through a view that
hides the intent methods (so the handler binds only, at least once).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from durability import (
    EffectOutcome,
    EffectRequest,
    EffectSemantics,
    EvidenceOutcomeCacheEntry,
    EvidencePersistenceHandler,
    FileEvidenceOutcomeCache,
    SyncPolicy,
)

from .runner import Context, Row, Series, Side, interleave, median, ratio_row
from .workload import cache_entry

__all__ = ["run"]

THREADS = 8


class _NoOp:
    """The wrapped effect: does nothing, succeeds."""

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        return EffectOutcome.success(None)


class _BindingsOnly:
    """The same cache without intent methods: a handler over it binds only."""

    def __init__(self, cache: FileEvidenceOutcomeCache) -> None:
        self._cache = cache

    def get(self, evidence_id: str) -> EvidenceOutcomeCacheEntry | None:
        return self._cache.get(evidence_id)

    def put(self, entry: EvidenceOutcomeCacheEntry) -> None:
        self._cache.put(entry)

    def put_if_absent(self, entry: EvidenceOutcomeCacheEntry) -> EvidenceOutcomeCacheEntry:
        return self._cache.put_if_absent(entry)

    def load(self) -> Any:
        return self._cache.load()


class _Work:
    """Fresh evidence ids for every call (each one a miss)."""

    def __init__(self) -> None:
        self._ids = itertools.count()

    def requests(self, side: str, n: int) -> list[EffectRequest]:
        return [
            EffectRequest(
                interface_name="kv",
                operation_name="put",
                tick=1,
                operation_id=f"{side}#{i}",
                body={"evidence_id": f"{side}#{i}/effect", "key": i},
            )
            for i in (next(self._ids) for _ in range(n))
        ]

    def entries(self, n: int) -> list[EvidenceOutcomeCacheEntry]:
        return [cache_entry(f"put#{next(self._ids)}") for _ in range(n)]


def _evidence_id(request: EffectRequest) -> str:
    return str(request.body["evidence_id"])


def _handlers(cache: FileEvidenceOutcomeCache) -> tuple[Any, Any]:
    with_intents = EvidencePersistenceHandler(_NoOp(), cache, _evidence_id)
    without = EvidencePersistenceHandler(
        _NoOp(), _BindingsOnly(cache), _evidence_id, semantics=EffectSemantics.AT_LEAST_ONCE
    )
    return with_intents, without


def _lanes(work: Callable[[list[Any]], None], lanes: list[list[Any]]) -> float:
    """Seconds for `lanes` threads, each running `work` on its list, all started together."""
    gate = threading.Barrier(len(lanes) + 1)

    def lane(items: list[Any]) -> None:
        gate.wait()
        work(items)

    threads = [threading.Thread(target=lane, args=(items,)) for items in lanes]
    for thread in threads:
        thread.start()
    gate.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def _calls(handler: Any) -> Callable[[list[EffectRequest]], None]:
    def work(requests: list[EffectRequest]) -> None:
        for request in requests:
            outcome = handler.handle_effect(request)
            if not outcome.is_success:
                raise RuntimeError(f"the evidence handler answered {outcome!r}")

    return work


def _puts(cache: FileEvidenceOutcomeCache) -> Callable[[list[EvidenceOutcomeCacheEntry]], None]:
    def work(entries: list[EvidenceOutcomeCacheEntry]) -> None:
        for entry in entries:
            cache.put(entry)

    return work


def run(ctx: Context) -> list[Row]:
    """Every row of the effects group."""
    return [_overhead(ctx, threads=1), _overhead(ctx, threads=THREADS)]


def _overhead(ctx: Context, *, threads: int) -> Row:
    """(miss with intents - miss without) per call vs one ``put``, each side
    `threads` threads on one file cache (DURABLE for one thread, GROUP for more)."""
    sizes = ctx.sizes
    per_lane = sizes.appends if threads == 1 else sizes.group_per_thread
    policy = SyncPolicy.DURABLE if threads == 1 else SyncPolicy.GROUP
    row_id = "intent_miss_vs_put" if threads == 1 else "intent_miss_vs_put_group8"
    cache = FileEvidenceOutcomeCache(ctx.path(f"intents-{threads}.log"), sync=policy)
    with_intents, without = _handlers(cache)
    work = _Work()
    n = threads * per_lane

    def side(label: str, run_lane: Callable[[list[Any]], None], make: Any) -> Side:
        return Side(
            label,
            lambda: _lanes(run_lane, [make(per_lane) for _ in range(threads)]),
            n,
            "s",
        )

    lanes = f"{threads} thread{'s' if threads > 1 else ''}"
    series = interleave(
        ctx,
        f"effect miss with vs without intents, {lanes}",
        [
            side(
                "miss with intents",
                _calls(with_intents),
                lambda k: work.requests("with", k),
            ),
            side(
                "miss without intents",
                _calls(without),
                lambda k: work.requests("without", k),
            ),
            side("durable put", _puts(cache), work.entries),
        ],
        sizes.reps,
        sizes.warmup,
    )
    if cache.in_doubt():
        raise RuntimeError("a no-op effect was left in doubt")
    with_s, without_s, put_s = (s.samples for s in series)
    extra = Series(
        "extra time per miss for the intent (with minus without)",
        "s",
        [(a - b) / n for a, b in zip(with_s, without_s, strict=True)],
    )
    put = Series(f"one durable put ({policy.name})", "s", [p / n for p in put_s])
    detail = (
        f"{lanes} x {per_lane} calls per side per repetition, {sizes.reps} repetitions, "
        f"one FileEvidenceOutcomeCache (SyncPolicy.{policy.name}), a no-op inner handler, "
        f"every call a miss (a new evidence id); median time per call: with intents "
        f"{median(with_s) / n * 1e3:.3g} ms, without {median(without_s) / n * 1e3:.3g} ms, "
        f"put {median(put_s) / n * 1e3:.3g} ms; figure: (with - without) / put, "
        "repetition by repetition"
    )

    def profile() -> object:
        return _lanes(_calls(with_intents), [work.requests("profile", per_lane)])

    return ratio_row(row_id, extra, put, detail=detail, profile=profile)
