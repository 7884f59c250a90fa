"""The evidence outcome cache handler: `EvidencePersistenceHandler` binds each
effect's terminal outcome to an evidence id in a durable cache and answers
from the cache from then on (the decorator form is
`durability.decorators.evidence_cached`; the WAL handler is in
`durability.handlers`).

Rules of this module:

* an *effect handler* is any object with ``handle_effect(request)``, sync or
  ``async def``; wrapping an async handler gives a wrapper whose
  ``handle_effect`` is itself an ``async def``;
* the wrapper forwards every attribute it does not define to the handler it
  wraps (an inner ``wal_sync``, for instance, passes through);
* a cache exception never escapes ``handle_effect``: it becomes an
  ``UNAVAILABLE`` failure outcome naming the evidence id;
* a blocked outcome is never cached, and a cached blocked outcome counts as a
  miss; the first terminal binding of an evidence id wins.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, overload

from .artifact import EvidenceOutcomeCacheArtifact, EvidenceOutcomeCacheEntry
from .backends.protocols import EvidenceOutcomeCache
from .effects import (
    AsyncEffectHandler,
    EffectFailure,
    EffectHandler,
    EffectOutcome,
    EffectRequest,
    _Forwarding,
    failed,
    is_async_handler,
)

__all__ = [
    "AsyncEvidencePersistenceHandler",
    "EvidencePersistenceHandler",
    "EvidenceResolver",
]

EvidenceResolver = Callable[[EffectRequest], "str | None"]
"""Maps a request to the evidence id its outcome is cached under (``None``:
do not cache this request)."""


class _EvidencePersistenceHandlerInit(_Forwarding):
    """The state of an `EvidencePersistenceHandler` (a base: mypy reads a class's
    signature from ``__new__`` only when ``__init__`` is inherited)."""

    def __init__(self, inner: Any, cache: EvidenceOutcomeCache, resolver: EvidenceResolver) -> None:
        if not callable(resolver):
            raise TypeError(f"resolver must be callable, got {resolver!r}")
        self._inner = inner
        self._cache = cache
        self._resolver = resolver
        self._lock = threading.Lock()


class EvidencePersistenceHandler(_EvidencePersistenceHandlerInit):
    """Wrap `inner` so that each effect's terminal outcome is bound, in the
    evidence outcome cache `cache`, to the evidence id ``resolver(request)``
    names, and answered from the cache from then on.

    * resolver answers ``None``: the request is forwarded, nothing is cached;
    * cache hit (a terminal outcome): the cached outcome is returned and
      `inner` is not called; a cached *blocked* outcome counts as a miss;
    * miss: `inner` is called; a terminal outcome is bound first-binding-wins
      (``put_if_absent`` when the cache has it, else get-then-put under a
      lock) and the *bound* outcome is returned; a blocked outcome is
      returned and never cached;
    * cache errors are answered, not raised: an ``UNAVAILABLE`` failure
      ``load evidence outcome cache `id`: ...`` or
      ``persist evidence outcome `id`: ...``.

    An async `inner` gives an ``async def handle_effect``; every attribute the
    wrapper does not define (``wal_sync`` of an inner `AgreementWalHandler`,
    for instance) is `inner`'s.

    >>> from durability import InMemoryEvidenceOutcomeCache
    >>> class Counter:
    ...     calls = 0
    ...     def handle_effect(self, request):
    ...         self.calls += 1
    ...         return EffectOutcome.success(self.calls)
    >>> inner = Counter()
    >>> handler = EvidencePersistenceHandler(
    ...     inner, InMemoryEvidenceOutcomeCache(), lambda request: "ev-1")
    >>> request = EffectRequest(interface_name="Storage", operation_name="write", tick=1)
    >>> handler.handle_effect(request).response, handler.handle_effect(request).response
    (1, 1)
    >>> inner.calls
    1
    """

    @overload
    def __new__(
        cls, inner: AsyncEffectHandler, cache: EvidenceOutcomeCache, resolver: EvidenceResolver
    ) -> AsyncEvidencePersistenceHandler: ...
    @overload
    def __new__(
        cls, inner: EffectHandler, cache: EvidenceOutcomeCache, resolver: EvidenceResolver
    ) -> EvidencePersistenceHandler: ...
    def __new__(
        cls, inner: Any, cache: EvidenceOutcomeCache, resolver: EvidenceResolver
    ) -> EvidencePersistenceHandler:
        if cls is EvidencePersistenceHandler and is_async_handler(inner):
            cls = AsyncEvidencePersistenceHandler
        return super().__new__(cls)

    @property
    def cache(self) -> EvidenceOutcomeCache:
        """The evidence outcome cache backend."""
        return self._cache

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        """Answer `request` from the cache, or run it and bind its outcome."""
        evidence_id = self._resolver(request)
        if evidence_id is None:
            outcome: EffectOutcome = self._inner.handle_effect(request)
            return outcome
        cached = self._lookup(evidence_id)
        if cached is not None:
            return cached
        return self._remember(request, evidence_id, self._inner.handle_effect(request))

    def cached_outcome(self, evidence_id: str) -> EffectOutcome | None:
        """The terminal outcome bound to `evidence_id`, or ``None`` (nothing
        bound, or only a blocked outcome). Raises what the cache raises."""
        entry = self._cache.get(evidence_id)
        if entry is None or entry.outcome.is_blocked:
            return None
        return entry.outcome

    def cache_snapshot(self) -> EvidenceOutcomeCacheArtifact:
        """The whole cache (``cache.load()``); raises what the cache raises."""
        return self._cache.load()

    def _lookup(self, evidence_id: str) -> EffectOutcome | None:
        """The cached terminal outcome, a load failure, or ``None`` on a miss."""
        try:
            return self.cached_outcome(evidence_id)
        except Exception as exc:
            return _load_failed(evidence_id, exc)

    def _remember(
        self, request: EffectRequest, evidence_id: str, outcome: EffectOutcome
    ) -> EffectOutcome:
        """The rest of a cache miss, shared by the sync and async handlers once
        `inner` answered `request` with `outcome`: bind a terminal outcome
        first-binding-wins and return the bound one. A blocked outcome is
        returned uncached; a cache error becomes an ``UNAVAILABLE`` failure."""
        if outcome.is_blocked:
            return outcome
        entry = _entry(request, evidence_id, outcome)
        try:
            return self._bind(entry)
        except Exception as exc:
            return _persist_failed(evidence_id, exc)

    def _bind(self, entry: EvidenceOutcomeCacheEntry) -> EffectOutcome:
        put_if_absent = getattr(self._cache, "put_if_absent", None)
        if callable(put_if_absent):  # atomic in the cache: concurrent binds share flushes
            return _bound(put_if_absent(entry))
        with self._lock:  # a cache with only get/put: check and put under one lock
            existing = self._cache.get(entry.evidence_id)
            if existing is not None and existing.outcome.is_terminal:
                return existing.outcome
            self._cache.put(entry)
            return entry.outcome


def _entry(
    request: EffectRequest, evidence_id: str, outcome: EffectOutcome
) -> EvidenceOutcomeCacheEntry:
    return EvidenceOutcomeCacheEntry(
        evidence_id=evidence_id,
        interface_name=request.interface_name,
        operation_name=request.operation_name,
        outcome=outcome,
    )


def _bound(entry: object) -> EffectOutcome:
    if not isinstance(entry, EvidenceOutcomeCacheEntry):
        raise TypeError(f"put_if_absent returned {entry!r:.80}, not a cache entry")
    return entry.outcome


def _load_failed(evidence_id: str, exc: Exception) -> EffectOutcome:
    return failed(EffectFailure.unavailable(f"load evidence outcome cache `{evidence_id}`: {exc}"))


def _persist_failed(evidence_id: str, exc: Exception) -> EffectOutcome:
    return failed(EffectFailure.unavailable(f"persist evidence outcome `{evidence_id}`: {exc}"))


class AsyncEvidencePersistenceHandler(EvidencePersistenceHandler):
    """`EvidencePersistenceHandler` around an async handler: ``handle_effect``
    is an ``async def``. Built by ``EvidencePersistenceHandler(async_inner, ...)``."""

    async def handle_effect(self, request: EffectRequest) -> EffectOutcome:  # type: ignore[override]
        """Answer `request` from the cache, or await it and bind its outcome."""
        evidence_id = self._resolver(request)
        if evidence_id is None:
            forwarded: EffectOutcome = await self._inner.handle_effect(request)
            return forwarded
        get_async = getattr(self._cache, "get_async", None)
        if callable(get_async):  # a flush in flight never blocks the event loop
            cached: EffectOutcome | None
            try:
                entry = await get_async(evidence_id)
                cached = None if entry is None or entry.outcome.is_blocked else entry.outcome
            except Exception as exc:
                cached = _load_failed(evidence_id, exc)
        else:
            cached = self._lookup(evidence_id)
        if cached is not None:
            return cached
        outcome: EffectOutcome = await self._inner.handle_effect(request)
        put_if_absent_async = getattr(self._cache, "put_if_absent_async", None)
        if outcome.is_blocked or not callable(put_if_absent_async):
            # the binding's file I/O and fsync run off the event loop
            return await asyncio.to_thread(self._remember, request, evidence_id, outcome)
        try:
            return _bound(await put_if_absent_async(_entry(request, evidence_id, outcome)))
        except Exception as exc:
            return _persist_failed(evidence_id, exc)
