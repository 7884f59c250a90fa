"""The evidence outcome cache handler: EvidencePersistenceHandler and its async
variant (API.md §7). Its stacking over AgreementWalHandler and the decorator
forms are tested in test_handlers.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from durability import (
    EffectFailure,
    EffectOutcome,
    EffectRequest,
    EvidenceOutcomeCacheArtifact,
    EvidenceOutcomeCacheEntry,
    InMemoryEvidenceOutcomeCache,
)
from durability.evidence import EvidencePersistenceHandler
from tests.helpers import AsyncInner, Inner, binding

OP = "op-1"


# ---------------------------------------------------------------------------
# doubles


class DictCache:
    """A protocol-only cache (no put_if_absent)."""

    def __init__(self) -> None:
        self.entries: dict[str, EvidenceOutcomeCacheEntry] = {}
        self.puts = 0

    def get(self, evidence_id: str) -> EvidenceOutcomeCacheEntry | None:
        return self.entries.get(evidence_id)

    def put(self, entry: EvidenceOutcomeCacheEntry) -> None:
        self.puts += 1
        self.entries[entry.evidence_id] = entry

    def load(self) -> EvidenceOutcomeCacheArtifact:
        return EvidenceOutcomeCacheArtifact(entries=list(self.entries.values()))


class BrokenCache(InMemoryEvidenceOutcomeCache):
    def __init__(self, *, get: bool = False, put: bool = False) -> None:
        super().__init__()
        self.fail_get, self.fail_put = get, put

    def get(self, evidence_id: str) -> EvidenceOutcomeCacheEntry | None:
        if self.fail_get:
            raise OSError("cache unreadable")
        return super().get(evidence_id)

    def put_if_absent(self, entry: EvidenceOutcomeCacheEntry) -> EvidenceOutcomeCacheEntry:
        if self.fail_put:
            raise OSError("cache full")
        return super().put_if_absent(entry)


def request(tick: int = 1, eid: str | None = "ev-1") -> EffectRequest:
    return EffectRequest(
        interface_name="Storage", operation_name="write", tick=tick, operation_id=OP, body=eid
    )


def by_body(req: EffectRequest) -> str | None:
    return req.body if isinstance(req.body, str) else None


# ---------------------------------------------------------------------------
# EvidencePersistenceHandler


def test_cache_hit_skips_inner() -> None:
    cache = InMemoryEvidenceOutcomeCache()
    cache.put(binding("ev-1", EffectOutcome.success("cached")))
    inner = Inner()
    outcome = EvidencePersistenceHandler(inner, cache, by_body).handle_effect(request())
    assert outcome == EffectOutcome.success("cached")
    assert inner.calls == []


def test_miss_calls_inner_and_binds_terminal_outcome() -> None:
    cache = InMemoryEvidenceOutcomeCache()
    inner = Inner()
    handler = EvidencePersistenceHandler(inner, cache, by_body)
    first = handler.handle_effect(request())
    second = handler.handle_effect(request(tick=2))
    assert first == second == EffectOutcome.success({"n": 1})
    assert len(inner.calls) == 1
    assert cache.get("ev-1") == EvidenceOutcomeCacheEntry(
        evidence_id="ev-1", interface_name="Storage", operation_name="write", outcome=first
    )
    assert handler.cached_outcome("ev-1") == first


def test_failure_outcome_is_cached_too() -> None:
    cache = InMemoryEvidenceOutcomeCache()
    denied = EffectOutcome.failure(EffectFailure.denied("no"))
    inner = Inner(denied)
    handler = EvidencePersistenceHandler(inner, cache, by_body)
    assert handler.handle_effect(request()) == denied
    assert handler.handle_effect(request()) == denied
    assert len(inner.calls) == 1


def test_resolver_none_forwards_and_caches_nothing() -> None:
    cache = InMemoryEvidenceOutcomeCache()
    inner = Inner()
    handler = EvidencePersistenceHandler(inner, cache, by_body)
    handler.handle_effect(request(eid=None))
    handler.handle_effect(request(eid=None))
    assert len(inner.calls) == 2
    assert cache.load().entries == ()


def test_blocked_never_cached() -> None:
    cache = InMemoryEvidenceOutcomeCache()
    inner = Inner(EffectOutcome.blocked())
    handler = EvidencePersistenceHandler(inner, cache, by_body)
    assert handler.handle_effect(request()).is_blocked
    assert cache.get("ev-1") is None
    assert handler.handle_effect(request()).is_blocked
    assert len(inner.calls) == 2


def test_cached_blocked_counts_as_miss() -> None:
    cache = InMemoryEvidenceOutcomeCache()
    cache.put(binding("ev-1", EffectOutcome.blocked()))
    inner = Inner()
    handler = EvidencePersistenceHandler(inner, cache, by_body)
    assert handler.cached_outcome("ev-1") is None
    outcome = handler.handle_effect(request())
    assert outcome == EffectOutcome.success({"n": 1})
    assert len(inner.calls) == 1
    entry = cache.get("ev-1")
    assert entry is not None and entry.outcome == outcome


def test_cached_blocked_counts_as_miss_without_put_if_absent() -> None:
    cache = DictCache()
    cache.put(binding("ev-1", EffectOutcome.blocked()))
    handler = EvidencePersistenceHandler(Inner(), cache, by_body)
    outcome = handler.handle_effect(request())
    assert outcome.is_success
    assert cache.entries["ev-1"].outcome == outcome


class LateBinder(Inner):
    """While the effect runs, another writer binds the same evidence id."""

    def __init__(self, cache: Any) -> None:
        super().__init__()
        self.cache = cache

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        self.cache.put(binding("ev-1", EffectOutcome.success("first")))
        return super().handle_effect(request)


@pytest.mark.parametrize("cache_type", [InMemoryEvidenceOutcomeCache, DictCache])
def test_first_binding_wins(cache_type: type[Any]) -> None:
    cache = cache_type()
    handler = EvidencePersistenceHandler(LateBinder(cache), cache, by_body)
    outcome = handler.handle_effect(request())
    assert outcome == EffectOutcome.success("first")
    assert cache.get("ev-1").outcome == EffectOutcome.success("first")


def test_protocol_only_cache_uses_get_then_put() -> None:
    cache = DictCache()
    handler = EvidencePersistenceHandler(Inner(), cache, by_body)
    handler.handle_effect(request())
    handler.handle_effect(request())
    assert cache.puts == 1


@pytest.mark.parametrize(
    ("cache", "message"),
    [
        (BrokenCache(get=True), "load evidence outcome cache `ev-1`: cache unreadable"),
        (BrokenCache(put=True), "persist evidence outcome `ev-1`: cache full"),
    ],
)
def test_cache_error_becomes_unavailable_failure(cache: BrokenCache, message: str) -> None:
    outcome = EvidencePersistenceHandler(Inner(), cache, by_body).handle_effect(request())
    assert outcome == EffectOutcome.failure(EffectFailure.unavailable(message))


def test_cache_load_error_does_not_run_effect() -> None:
    inner = Inner()
    EvidencePersistenceHandler(inner, BrokenCache(get=True), by_body).handle_effect(request())
    assert inner.calls == []


def test_wrapper_without_inner_attribute_raises_attribute_error() -> None:
    handler = EvidencePersistenceHandler(Inner(), InMemoryEvidenceOutcomeCache(), by_body)
    assert not hasattr(handler, "wal_sync")


# ---------------------------------------------------------------------------
# async


def test_async_cache_hit_skips_inner() -> None:
    cache = InMemoryEvidenceOutcomeCache()
    cache.put(binding("ev-1", EffectOutcome.success("cached")))
    inner = AsyncInner()
    handler = EvidencePersistenceHandler(inner, cache, by_body)
    assert asyncio.run(handler.handle_effect(request())) == EffectOutcome.success("cached")
    assert inner.calls == []


def test_async_blocked_never_cached_and_terminal_bound() -> None:
    cache = InMemoryEvidenceOutcomeCache()
    inner = AsyncInner(EffectOutcome.blocked())
    handler = EvidencePersistenceHandler(inner, cache, by_body)

    async def run() -> tuple[EffectOutcome, EffectOutcome, EffectOutcome]:
        blocked = await handler.handle_effect(request())
        inner.outcome = EffectOutcome.success("done")
        done = await handler.handle_effect(request())
        again = await handler.handle_effect(request())
        return blocked, done, again

    blocked, done, again = asyncio.run(run())
    assert blocked.is_blocked
    assert done == again == EffectOutcome.success("done")
    assert len(inner.calls) == 2
    assert handler.cached_outcome("ev-1") == done


def test_async_cache_error_becomes_unavailable_failure() -> None:
    handler = EvidencePersistenceHandler(AsyncInner(), BrokenCache(put=True), by_body)
    outcome = asyncio.run(handler.handle_effect(request()))
    assert outcome == EffectOutcome.failure(
        EffectFailure.unavailable("persist evidence outcome `ev-1`: cache full")
    )
