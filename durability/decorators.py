"""Decorator forms of the effect-handler wrappers: `evidence_cached` and
`wal_synced` give a plain function ``f(request) -> EffectOutcome`` (or an
``async def``) the behaviour of `EvidencePersistenceHandler` and
`AgreementWalHandler` while it stays callable as ``f(request)``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from .artifact import AgreementWalArtifact, EvidenceOutcomeCacheArtifact, WalSyncRequest
from .backends.protocols import AgreementWal, EvidenceOutcomeCache
from .effects import EffectOutcome, EffectRequest
from .evidence import EvidencePersistenceHandler, EvidenceResolver, Reconciler
from .handlers import AgreementWalHandler, WalSyncMode
from .intents import EffectSemantics

__all__ = [
    "EvidenceCachedFunction",
    "WalSyncedFunction",
    "evidence_cached",
    "wal_synced",
]

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class EvidenceCachedFunction(Protocol[R_co]):
    """A function decorated with `evidence_cached`: still ``f(request)``, plus
    `cached_outcome` and `cache_snapshot`."""

    def __call__(self, request: EffectRequest, /) -> R_co:
        """Answer `request` (an awaitable for an ``async def``)."""

    def cached_outcome(self, evidence_id: str) -> EffectOutcome | None:
        """See `EvidencePersistenceHandler.cached_outcome`."""

    def cache_snapshot(self) -> EvidenceOutcomeCacheArtifact:
        """See `EvidencePersistenceHandler.cache_snapshot`."""


class WalSyncedFunction(Protocol[R_co]):
    """A function decorated with `wal_synced`: still ``f(request)``, plus
    `wal_sync` and `wal_snapshot`."""

    def __call__(self, request: EffectRequest, /) -> R_co:
        """Answer `request` (an awaitable for an ``async def``)."""

    def wal_sync(self, sync: WalSyncRequest) -> EffectOutcome:
        """See `AgreementWalHandler.wal_sync`."""

    def wal_snapshot(self) -> AgreementWalArtifact:
        """See `AgreementWalHandler.wal_snapshot`."""


class _FunctionHandler:
    """A plain function seen as an effect handler (async stays async)."""

    def __init__(self, func: Callable[[EffectRequest], Any]) -> None:
        self.handle_effect = func


def _as_function(func: Callable[[EffectRequest], R], handler: Any) -> Callable[[EffectRequest], R]:
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def call_async(request: EffectRequest) -> EffectOutcome:
            outcome: EffectOutcome = await handler.handle_effect(request)
            return outcome

        return cast(Callable[[EffectRequest], R], call_async)

    @functools.wraps(func)
    def call(request: EffectRequest) -> EffectOutcome:
        outcome: EffectOutcome = handler.handle_effect(request)
        return outcome

    return cast(Callable[[EffectRequest], R], call)


def evidence_cached(
    cache: EvidenceOutcomeCache,
    resolver: EvidenceResolver,
    *,
    semantics: EffectSemantics = EffectSemantics.AT_MOST_ONCE,
    reconcile: Reconciler | None = None,
) -> Callable[[Callable[[EffectRequest], R]], EvidenceCachedFunction[R]]:
    """Decorate a function ``f(request) -> EffectOutcome`` (or ``async def``)
    with the behaviour of `EvidencePersistenceHandler`, intents, `semantics`
    and `reconcile` included (API.md §11).

    The result is still called as ``f(request)`` (awaitable when `f` is) and
    also has ``f.cached_outcome(evidence_id)`` and ``f.cache_snapshot()``.
    Cache errors become ``UNAVAILABLE`` failures, as with the class; the
    checks on `semantics` and `reconcile` (`TypeError`,
    `EffectSemanticsWarning`) run when the function is decorated.

    >>> from durability import InMemoryEvidenceOutcomeCache
    >>> @evidence_cached(InMemoryEvidenceOutcomeCache(), lambda r: f"ev-{r.tick}")
    ... def write(request):
    ...     return EffectOutcome.success("written")
    >>> write(EffectRequest(interface_name="Storage", operation_name="write", tick=7)).response
    'written'
    >>> write.cached_outcome("ev-7").response
    'written'
    """

    def decorate(func: Callable[[EffectRequest], R]) -> EvidenceCachedFunction[R]:
        handler = EvidencePersistenceHandler(
            _FunctionHandler(func), cache, resolver, semantics=semantics, reconcile=reconcile
        )
        wrapped: Any = _as_function(func, handler)
        wrapped.cached_outcome = handler.cached_outcome
        wrapped.cache_snapshot = handler.cache_snapshot
        return cast(EvidenceCachedFunction[R], wrapped)

    return decorate


def wal_synced(
    wal: AgreementWal, mode: WalSyncMode = WalSyncMode.IMMEDIATE
) -> Callable[[Callable[[EffectRequest], R]], WalSyncedFunction[R]]:
    """Decorate a function ``f(request) -> EffectOutcome`` (or ``async def``)
    with the behaviour of `AgreementWalHandler`.

    The result is still called as ``f(request)`` (awaitable when `f` is) and
    also has ``f.wal_sync(sync)`` and ``f.wal_snapshot()``. Raises
    `TypeError` when `mode` is not a `WalSyncMode`.

    >>> from durability import AgreementLevel, InMemoryAgreementWal
    >>> @wal_synced(InMemoryAgreementWal(), mode=WalSyncMode.BLOCKED)
    ... def handle(request):
    ...     return EffectOutcome.success()
    >>> handle.wal_sync(WalSyncRequest(operation_id="op", downstream_coroutine_id="c",
    ...     gate_level=AgreementLevel.NONE, tick=1)).is_blocked
    True
    """

    def decorate(func: Callable[[EffectRequest], R]) -> WalSyncedFunction[R]:
        handler = AgreementWalHandler(_FunctionHandler(func), wal, mode)
        wrapped: Any = _as_function(func, handler)
        wrapped.wal_sync = handler.wal_sync
        wrapped.wal_snapshot = handler.wal_snapshot
        return cast(WalSyncedFunction[R], wrapped)

    return decorate
