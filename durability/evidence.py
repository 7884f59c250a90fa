"""The evidence outcome cache handler: `EvidencePersistenceHandler` binds each
effect's terminal outcome to an evidence id in a durable cache and answers
from the cache from then on (the decorator form is
`durability.decorators.evidence_cached`; the WAL handler is in
`durability.handlers`). With a cache that keeps intents (API.md §11) it makes
an intent durable before each effect, so an effect a crash interrupted is
known to be *in doubt* and never silently run twice.

Rules of this module:

* an *effect handler* is any object with ``handle_effect(request)``, sync or
  ``async def``; wrapping an async handler gives a wrapper whose
  ``handle_effect`` is itself an ``async def``;
* the wrapper forwards every attribute it does not define to the handler it
  wraps (an inner ``wal_sync``, for instance, passes through);
* a cache exception never escapes ``handle_effect``: it becomes an
  ``UNAVAILABLE`` failure outcome naming the evidence id; an exception of
  `inner` propagates unchanged (the effect's fate is unknown: it stays in doubt);
* a blocked outcome is never cached, and a cached blocked outcome counts as a
  miss; the first terminal binding of an evidence id wins;
* one call's steps are written once, in `durability.effectflow`, and driven
  by sync or async code.
"""

from __future__ import annotations

import inspect
import threading
import warnings
from collections.abc import Callable
from typing import Any, overload

from .artifact import EvidenceOutcomeCacheArtifact, EvidenceOutcomeCacheEntry
from .backends.protocols import INTENT_METHODS, EvidenceOutcomeCache
from .effectflow import CallPolicy, call_flow, drive, drive_async
from .effects import (
    AsyncEffectHandler,
    EffectHandler,
    EffectOutcome,
    EffectRequest,
    _Forwarding,
    is_async_handler,
)
from .intents import EffectScope, EffectSemantics, EffectSemanticsWarning

__all__ = [
    "AsyncEvidencePersistenceHandler",
    "EvidencePersistenceHandler",
    "EvidenceResolver",
    "Reconciler",
]

EvidenceResolver = Callable[[EffectRequest], "str | None"]
"""Maps a request to the evidence id its outcome is cached under (``None``:
do not cache this request)."""

Reconciler = Callable[[EffectRequest, str], Any]
"""``reconcile(request, evidence_id)``, asked about an effect in doubt: a
terminal `EffectOutcome` means it happened (that outcome is bound), ``None``
or a blocked outcome that it did not (a new attempt runs); anything else, or
an exception, leaves it in doubt. May be ``async`` beside an async `inner`."""


def _keeps_intents(cache: object) -> bool:
    """Whether `cache` has the intent methods (all of them; some is a `TypeError`)."""
    present = [name for name in INTENT_METHODS if callable(getattr(cache, name, None))]
    if present and len(present) < len(INTENT_METHODS):
        missing = ", ".join(name for name in INTENT_METHODS if name not in present)
        raise TypeError(
            f"{type(cache).__name__} has some intent methods but lacks {missing}: "
            "a cache has all five or none"
        )
    return bool(present)


class _EvidencePersistenceHandlerInit(_Forwarding):
    """The state of an `EvidencePersistenceHandler` (a base: mypy reads a class's
    signature from ``__new__`` only when ``__init__`` is inherited)."""

    def __init__(
        self,
        inner: Any,
        cache: EvidenceOutcomeCache,
        resolver: EvidenceResolver,
        *,
        semantics: EffectSemantics = EffectSemantics.AT_MOST_ONCE,
        reconcile: Reconciler | None = None,
    ) -> None:
        if not callable(resolver):
            raise TypeError(f"resolver must be callable, got {resolver!r}")
        if not isinstance(semantics, EffectSemantics):
            raise TypeError(f"semantics must be an EffectSemantics, got {semantics!r}")
        if reconcile is not None and not callable(reconcile):
            raise TypeError(f"reconcile must be callable, got {reconcile!r}")
        intents = _keeps_intents(cache)
        if reconcile is not None and not intents:
            raise TypeError(
                f"reconcile= needs a cache with intent methods; {type(cache).__name__} has none, "
                "so no effect is ever in doubt"
            )
        if (
            reconcile is not None
            and inspect.iscoroutinefunction(reconcile)
            and not is_async_handler(inner)
        ):
            raise TypeError("an async reconcile needs an async inner handler")
        if not intents and semantics is not EffectSemantics.AT_LEAST_ONCE:
            warnings.warn(
                f"{type(cache).__name__} has no intent methods: effects interrupted by a "
                "crash run again (at least once); pass semantics=EffectSemantics."
                "AT_LEAST_ONCE to say that is intended",
                EffectSemanticsWarning,
                stacklevel=2,
            )
        self._inner = inner
        self._cache = cache
        self._resolver = resolver
        self._lock = threading.Lock()
        self._semantics = semantics
        self._policy = CallPolicy(
            cache=cache,
            intents=intents,
            semantics=semantics,
            reconcile=reconcile,
            bind=self._bind,
            bind_async=self._bind_async_method(),
        )

    def _bind(self, entry: EvidenceOutcomeCacheEntry) -> EffectOutcome:
        raise NotImplementedError

    def _bind_async_method(self) -> Any:
        return None


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

    With a cache that has the intent methods (every provided cache), a miss
    first makes an `EffectIntent` durable (attempt 1, 2, ...), then calls
    `inner`, then binds (API.md §11): `inner` returning blocked withdraws the
    attempt; `inner` raising propagates and leaves the effect *in doubt*. A
    call finding its id in doubt asks `reconcile` (when given), then follows
    `semantics`: `EffectSemantics.AT_MOST_ONCE` (the default) answers an
    ``UNAVAILABLE`` failure and runs nothing; `EffectSemantics.AT_LEAST_ONCE`
    runs a new attempt. A request whose digest differs from the one recorded
    for its id answers a ``DETERMINISM`` failure. While `inner` runs,
    `current_idempotency_key()` is the evidence id. With a cache lacking the
    intent methods it behaves as above without intents (at least once) and
    construction warns (`EffectSemanticsWarning`) unless `semantics` is
    ``AT_LEAST_ONCE``; `reconcile` then raises `TypeError`.

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
        cls,
        inner: AsyncEffectHandler,
        cache: EvidenceOutcomeCache,
        resolver: EvidenceResolver,
        *,
        semantics: EffectSemantics = ...,
        reconcile: Reconciler | None = ...,
    ) -> AsyncEvidencePersistenceHandler: ...
    @overload
    def __new__(
        cls,
        inner: EffectHandler,
        cache: EvidenceOutcomeCache,
        resolver: EvidenceResolver,
        *,
        semantics: EffectSemantics = ...,
        reconcile: Reconciler | None = ...,
    ) -> EvidencePersistenceHandler: ...
    def __new__(
        cls,
        inner: Any,
        cache: EvidenceOutcomeCache,
        resolver: EvidenceResolver,
        *,
        semantics: EffectSemantics = EffectSemantics.AT_MOST_ONCE,
        reconcile: Reconciler | None = None,
    ) -> EvidencePersistenceHandler:
        if cls is EvidencePersistenceHandler and is_async_handler(inner):
            cls = AsyncEvidencePersistenceHandler
        return super().__new__(cls)

    @property
    def semantics(self) -> EffectSemantics:
        """What a call does with an effect in doubt."""
        return self._semantics

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
        return drive(
            call_flow(self._policy, request, evidence_id),
            lambda: self._inner.handle_effect(request),
            EffectScope(self._cache, evidence_id),
        )

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

    def _bind(self, entry: EvidenceOutcomeCacheEntry) -> EffectOutcome:
        """Bind `entry` first-binding-wins; return the bound outcome."""
        put_if_absent = getattr(self._cache, "put_if_absent", None)
        if callable(put_if_absent):  # atomic in the cache: concurrent binds share flushes
            return _bound(put_if_absent(entry))
        with self._lock:  # a cache with only get/put: check and put under one lock
            existing = self._cache.get(entry.evidence_id)
            if existing is not None and existing.outcome.is_terminal:
                return existing.outcome
            self._cache.put(entry)
            return entry.outcome


def _bound(entry: object) -> EffectOutcome:
    if not isinstance(entry, EvidenceOutcomeCacheEntry):
        raise TypeError(f"put_if_absent returned {entry!r:.80}, not a cache entry")
    return entry.outcome


class AsyncEvidencePersistenceHandler(EvidencePersistenceHandler):
    """`EvidencePersistenceHandler` around an async handler: ``handle_effect``
    is an ``async def``. Built by ``EvidencePersistenceHandler(async_inner, ...)``."""

    async def handle_effect(self, request: EffectRequest) -> EffectOutcome:  # type: ignore[override]
        """Answer `request` from the cache, or await it and bind its outcome;
        the cache's file or database work never blocks the event loop."""
        evidence_id = self._resolver(request)
        if evidence_id is None:
            forwarded: EffectOutcome = await self._inner.handle_effect(request)
            return forwarded
        return await drive_async(
            call_flow(self._policy, request, evidence_id),
            lambda: self._inner.handle_effect(request),
            EffectScope(self._cache, evidence_id),
        )

    def _bind_async_method(self) -> Any:
        put_if_absent_async = getattr(self._cache, "put_if_absent_async", None)
        if not callable(put_if_absent_async):
            return None

        async def bind(entry: EvidenceOutcomeCacheEntry) -> EffectOutcome:
            return _bound(await put_if_absent_async(entry))

        return bind
