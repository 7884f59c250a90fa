"""The agreement WAL handler: `AgreementWalHandler` records, in a durable
agreement WAL, what a ``wal_sync`` proves before its visibility gate may
cross (the decorator form is `durability.decorators.wal_synced`; the evidence
outcome cache handler is in `durability.evidence`).

Rules of this module:

* an *effect handler* is any object with ``handle_effect(request)``, sync or
  ``async def``; wrapping an async handler gives a wrapper whose
  ``handle_effect`` is itself an ``async def`` (``wal_sync`` stays synchronous);
* the wrapper forwards every attribute it does not define to the handler it
  wraps, so protocol-specific methods pass through;
* a backend exception never escapes ``wal_sync``: it becomes an
  ``UNAVAILABLE`` failure outcome naming the operation;
* a visibility gate crosses only when the operation is durable at or above
  the gate's level; re-running a sync writes nothing.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Literal, cast, overload

import attrs

from .artifact import (
    AgreementWalArtifact,
    Escalation,
    EvidenceProduced,
    Finalization,
    VisibilityGateCrossing,
    WalEntry,
    WalSyncRequest,
    proven_level,
)
from .backends.protocols import AgreementWal, PlanningAgreementWal
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
from .index import OperationSummary, WalIndex
from .model import AgreementEvidenceKind, AgreementLevel, max_level

__all__ = [
    "AgreementWalHandler",
    "AsyncAgreementWalHandler",
    "WalSyncMode",
]


@attrs.frozen(kw_only=True, repr=False)
class WalSyncMode:
    """How `AgreementWalHandler.wal_sync` answers.

    * ``WalSyncMode.IMMEDIATE`` (the default): record what the sync proves and
      cross the gate when the operation is durable at the gate's level;
    * ``WalSyncMode.BLOCKED``: write nothing, answer ``EffectOutcome.blocked()``;
    * ``WalSyncMode.failure(message)``: write nothing, answer an
      ``UNAVAILABLE`` failure with `message`.

    Modes compare by value:

    >>> WalSyncMode.failure("down") == WalSyncMode.failure("down")
    True
    >>> WalSyncMode.IMMEDIATE == WalSyncMode.BLOCKED
    False
    """

    IMMEDIATE: ClassVar[WalSyncMode]
    BLOCKED: ClassVar[WalSyncMode]

    kind: Literal["immediate", "blocked", "failure"]
    message: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.kind not in ("immediate", "blocked", "failure"):
            raise ValueError(f"unknown wal sync mode {self.kind!r}")
        if (self.kind == "failure") != isinstance(self.message, str):
            raise ValueError("only a failure mode carries a message, and it must be text")

    @classmethod
    def failure(cls, message: str) -> WalSyncMode:
        """The mode that fails every sync with an ``UNAVAILABLE`` `message`.

        Raises `ValueError` when `message` is not text.
        """
        return cls(kind="failure", message=message)

    def __repr__(self) -> str:
        if self.kind == "failure":
            return f"WalSyncMode.failure({self.message!r})"
        return f"WalSyncMode.{self.kind.upper()}"


WalSyncMode.IMMEDIATE = WalSyncMode(kind="immediate")
WalSyncMode.BLOCKED = WalSyncMode(kind="blocked")


def sync_entries(sync: WalSyncRequest, summary: OperationSummary) -> tuple[list[WalEntry], bool]:
    """Plan one IMMEDIATE ``wal_sync`` against a WAL that `summary` describes.

    Returns the entries to append, in order (the facts `sync` proves that the
    WAL lacks by stable identity, then the gate crossing when it may cross and
    is not recorded yet), and whether the gate crosses: the operation's
    durable level, this sync's facts counted, is at least ``sync.gate_level``.
    Pure; the building block of `AgreementWalHandler.wal_sync`.
    """
    op, tick = sync.operation_id, sync.tick
    evidence = [item for item in sync.agreement_evidence if item.operation_id == op]
    facts: list[WalEntry] = [EvidenceProduced(evidence=item, tick=tick) for item in evidence]
    state = sync.agreement_state
    if state is not None:
        previous = summary.escalation_level or AgreementLevel.NONE
        if state.level > previous:
            facts.append(
                Escalation(
                    operation_id=op,
                    previous_level=previous,
                    new_level=state.level,
                    evidence_id=state.evidence_ids[-1] if state.evidence_ids else None,
                    tick=tick,
                )
            )
        if state.finalization is not None:
            proof = next(
                (
                    e.evidence_id
                    for e in evidence
                    if e.kind is AgreementEvidenceKind.MATERIALIZATION
                ),
                None,
            )
            facts.append(
                Finalization(
                    operation_id=op,
                    outcome=state.finalization,
                    materialization_proof_id=proof,
                    tick=tick,
                )
            )
    seen = set(summary.identities)
    batch: list[WalEntry] = []
    durable = summary.proven_level
    for entry in facts:
        durable = max_level(durable, proven_level(entry))
        identity = entry.stable_identity()
        if identity not in seen:
            seen.add(identity)
            batch.append(entry)
    crosses = durable.at_least(sync.gate_level)
    if crosses:
        gate = VisibilityGateCrossing(
            operation_id=op,
            downstream_coroutine_id=sync.downstream_coroutine_id,
            gate_level=sync.gate_level,
            tick=tick,
        )
        if gate.stable_identity() not in seen:
            batch.append(gate)
    return batch, crosses


class _AgreementWalHandlerInit(_Forwarding):
    """The state of an `AgreementWalHandler` (a base: mypy reads a class's
    signature from ``__new__`` only when ``__init__`` is inherited)."""

    def __init__(
        self, inner: Any, wal: AgreementWal, mode: WalSyncMode = WalSyncMode.IMMEDIATE
    ) -> None:
        if not isinstance(mode, WalSyncMode):
            raise TypeError(f"mode must be a WalSyncMode, got {mode!r}")
        self._inner = inner
        self._wal = wal
        self._mode = mode
        self._lock = threading.Lock()


class AgreementWalHandler(_AgreementWalHandlerInit):
    """Wrap `inner` so that ``wal_sync(sync)`` records, in the agreement WAL
    `wal`, what the sync proves before its visibility gate may cross.

    ``handle_effect`` forwards to `inner` unchanged (an async `inner` gives an
    ``async def handle_effect``); every other attribute is `inner`'s.

    ``wal_sync`` never raises for backend trouble: it answers an
    ``UNAVAILABLE`` failure naming the operation. See `wal_sync` for the
    entries written.

    >>> from durability import InMemoryAgreementWal
    >>> class Echo:
    ...     def handle_effect(self, request):
    ...         return EffectOutcome.success(request.body)
    >>> handler = AgreementWalHandler(Echo(), InMemoryAgreementWal())
    >>> handler.wal_snapshot().entries
    ()
    """

    @overload
    def __new__(
        cls, inner: AsyncEffectHandler, wal: AgreementWal, mode: WalSyncMode = ...
    ) -> AsyncAgreementWalHandler: ...
    @overload
    def __new__(
        cls, inner: EffectHandler, wal: AgreementWal, mode: WalSyncMode = ...
    ) -> AgreementWalHandler: ...
    def __new__(
        cls, inner: Any, wal: AgreementWal, mode: WalSyncMode = WalSyncMode.IMMEDIATE
    ) -> AgreementWalHandler:
        if cls is AgreementWalHandler and is_async_handler(inner):
            cls = AsyncAgreementWalHandler
        return super().__new__(cls)

    @property
    def wal(self) -> AgreementWal:
        """The agreement WAL backend."""
        return self._wal

    @property
    def mode(self) -> WalSyncMode:
        """How `wal_sync` answers."""
        return self._mode

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        """Forward `request` to the wrapped handler."""
        outcome: EffectOutcome = self._inner.handle_effect(request)
        return outcome

    def wal_sync(self, sync: WalSyncRequest) -> EffectOutcome:
        """Record what `sync` proves and cross its visibility gate if allowed.

        In IMMEDIATE mode, writes as one atomic batch (with ``append_batch``
        when the backend has it, else ``append`` entry by entry; with
        ``append_planned`` when it has that, so that the read and the write
        are one transaction, as in the SQL backends) the entries
        the WAL lacks by stable identity, all at ``sync.tick``: an
        `EvidenceProduced` per evidence of the operation, an `Escalation` when
        the state's level is above the operation's last escalation, a
        `Finalization` when the state has one, then the
        `VisibilityGateCrossing`. The gate is written only when the
        operation's durable level (this sync counted) is at least
        ``sync.gate_level``; otherwise the facts are written and the answer is
        ``EffectOutcome.blocked()``. Re-running a sync writes nothing.

        Backend errors are answered, not raised: an ``UNAVAILABLE`` failure
        ``load agreement WAL for `op`: ...`` or
        ``persist agreement WAL for `op`: ...``.
        """
        mode = self._mode
        if mode.kind == "blocked":
            return EffectOutcome.blocked()
        if mode.kind == "failure":
            return failed(EffectFailure.unavailable(cast(str, mode.message)))
        op = sync.operation_id
        if isinstance(self._wal, PlanningAgreementWal):
            return self._sync_in_one_transaction(sync)
        with self._lock:
            try:
                summary = self._summary(op)
            except Exception as exc:
                return failed(EffectFailure.unavailable(f"load agreement WAL for `{op}`: {exc}"))
            batch, crosses = sync_entries(sync, summary)
            if batch:
                try:
                    self._write(batch)
                except Exception as exc:
                    return failed(
                        EffectFailure.unavailable(f"persist agreement WAL for `{op}`: {exc}")
                    )
        return EffectOutcome.success() if crosses else EffectOutcome.blocked()

    def _sync_in_one_transaction(self, sync: WalSyncRequest) -> EffectOutcome:
        """`wal_sync` on a WAL with ``append_planned`` (the SQL ones): its
        read and its write are one transaction, so two hosts running the same
        sync write its entries once."""
        op = sync.operation_id
        planned: list[bool] = []  # the last plan's answer: does the gate cross?

        def plan(summary: OperationSummary) -> list[WalEntry]:
            batch, crosses = sync_entries(sync, summary)
            planned.append(crosses)
            return batch

        wal = cast(PlanningAgreementWal, self._wal)
        with self._lock:
            try:
                wal.append_planned(op, plan)
            except Exception as exc:
                stage = "persist agreement WAL" if planned else "load agreement WAL"
                return failed(EffectFailure.unavailable(f"{stage} for `{op}`: {exc}"))
        return EffectOutcome.success() if planned and planned[-1] else EffectOutcome.blocked()

    def wal_snapshot(self) -> AgreementWalArtifact:
        """The whole WAL (``wal.load()``); raises what the backend raises."""
        return self._wal.load()

    def _summary(self, operation_id: str) -> OperationSummary:
        summarize = getattr(self._wal, "operation_summary", None)
        if callable(summarize):
            return cast(OperationSummary, summarize(operation_id))
        index = WalIndex(e for e in self._wal.load().entries if e.operation_id == operation_id)
        return index.summary(operation_id)

    def _write(self, batch: list[WalEntry]) -> None:
        append_batch = getattr(self._wal, "append_batch", None)
        if callable(append_batch):
            append_batch(batch)
            return
        for entry in batch:
            self._wal.append(entry)


class AsyncAgreementWalHandler(AgreementWalHandler):
    """`AgreementWalHandler` around an async handler: ``handle_effect`` is an
    ``async def``. Built by ``AgreementWalHandler(async_inner, wal)``."""

    async def handle_effect(self, request: EffectRequest) -> EffectOutcome:  # type: ignore[override]
        """Forward `request` to the wrapped async handler."""
        outcome: EffectOutcome = await self._inner.handle_effect(request)
        return outcome
