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
            return failed(
                EffectFailure.unavailable(f"load evidence outcome cache `{evidence_id}`: {exc}")
            )

    def _remember(
        self, request: EffectRequest, evidence_id: str, outcome: EffectOutcome
    ) -> EffectOutcome:
        """The rest of a cache miss, shared by the sync and async handlers once
        `inner` answered `request` with `outcome`: bind a terminal outcome
        first-binding-wins and return the bound one. A blocked outcome is
        returned uncached; a cache error becomes an ``UNAVAILABLE`` failure."""
        if outcome.is_blocked:
            return outcome
        entry = EvidenceOutcomeCacheEntry(
            evidence_id=evidence_id,
            interface_name=request.interface_name,
            operation_name=request.operation_name,
            outcome=outcome,
        )
        with self._lock:
            try:
                return self._bind(entry)
            except Exception as exc:
                return failed(
                    EffectFailure.unavailable(f"persist evidence outcome `{evidence_id}`: {exc}")
                )

    def _bind(self, entry: EvidenceOutcomeCacheEntry) -> EffectOutcome:
        put_if_absent = getattr(self._cache, "put_if_absent", None)
        if callable(put_if_absent):
            bound = put_if_absent(entry)
            if not isinstance(bound, EvidenceOutcomeCacheEntry):
                raise TypeError(f"put_if_absent returned {bound!r:.80}, not a cache entry")
            return bound.outcome
        existing = self._cache.get(entry.evidence_id)
        if existing is not None and existing.outcome.is_terminal:
            return existing.outcome
        self._cache.put(entry)
        return entry.outcome


class AsyncEvidencePersistenceHandler(EvidencePersistenceHandler):
    """`EvidencePersistenceHandler` around an async handler: ``handle_effect``
    is an ``async def``. Built by ``EvidencePersistenceHandler(async_inner, ...)``."""

    async def handle_effect(self, request: EffectRequest) -> EffectOutcome:  # type: ignore[override]
        """Answer `request` from the cache, or await it and bind its outcome."""
        evidence_id = self._resolver(request)
        if evidence_id is None:
            outcome: EffectOutcome = await self._inner.handle_effect(request)
            return outcome
        cached = self._lookup(evidence_id)
        if cached is not None:
            return cached
        return self._remember(request, evidence_id, await self._inner.handle_effect(request))
