"""The backend contracts: small `typing.Protocol`s any class can satisfy.

A user class with just the required methods works everywhere a backend is
accepted; the optional methods (`append_batch`, `operation_summary`,
`put_if_absent`, the five intent methods of `IntentCache`) let handlers do
less work and give stronger guarantees.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from ..artifact import (
    AgreementWalArtifact,
    EvidenceOutcomeCacheArtifact,
    EvidenceOutcomeCacheEntry,
    WalEntry,
)
from ..effects import EffectOutcome
from ..index import OperationSummary
from ..intents import EffectIntent

__all__ = [
    "AgreementWal",
    "BatchingAgreementWal",
    "EvidenceOutcomeCache",
    "INTENT_METHODS",
    "IndexedAgreementWal",
    "IntentCache",
    "PlanningAgreementWal",
    "SequencedAgreementWal",
    "SingleBindingCache",
]


@runtime_checkable
class AgreementWal(Protocol):
    """An append-only agreement WAL.

    `append` raises `EscalationOrderError` (leaving the WAL unchanged) for an
    escalation out of order; `read_since(tick)` returns the entries with a
    larger tick, in WAL order; `load()` the whole WAL.
    """

    def append(self, entry: WalEntry) -> object:
        """Append one entry durably."""

    def read_since(self, tick: int) -> list[WalEntry]:
        """Entries with ``entry.tick > tick``, in WAL order."""

    def load(self) -> AgreementWalArtifact:
        """The whole WAL."""


@runtime_checkable
class BatchingAgreementWal(AgreementWal, Protocol):
    """A WAL that appends a batch all-or-nothing."""

    def append_batch(self, entries: Sequence[WalEntry]) -> object:
        """Append every entry or none (validation included)."""


@runtime_checkable
class IndexedAgreementWal(BatchingAgreementWal, Protocol):
    """A WAL that keeps a per-operation index, so `wal_sync` never reloads it."""

    def operation_summary(self, operation_id: str) -> OperationSummary:
        """What the WAL holds about one operation, including other writers' appends."""


@runtime_checkable
class SequencedAgreementWal(BatchingAgreementWal, Protocol):
    """A WAL that numbers its entries (API.md §10, every provided WAL): an
    entry's sequence is its 1-based position; `append`/`append_batch` return
    the new last sequence and take ``expected_sequence=n`` (write only if the
    last sequence is still `n`, else `SequenceConflictError`)."""

    def append(self, entry: WalEntry, *, expected_sequence: int | None = None) -> int:
        """Append one entry; return its sequence."""

    def append_batch(
        self, entries: Sequence[WalEntry], *, expected_sequence: int | None = None
    ) -> int:
        """Append every entry or none; return the new last sequence."""

    @property
    def last_sequence(self) -> int:
        """The sequence of the last entry (0 when empty)."""

    def poll(self, after_sequence: int, limit: int) -> list[tuple[int, WalEntry]]:
        """Up to `limit` ``(sequence, entry)`` pairs after `after_sequence`."""


@runtime_checkable
class PlanningAgreementWal(AgreementWal, Protocol):
    """A WAL that reads and writes in one transaction (the SQL ones), so a
    whole ``wal_sync`` is atomic even across hosts."""

    def append_planned(
        self, operation_id: str, plan: Callable[[OperationSummary], Sequence[WalEntry]]
    ) -> object:
        """Under the writers' lock, call ``plan(summary)`` with the exact
        summary of `operation_id` and append what it returns, all or nothing
        (`plan` may run more than once when a transaction is retried)."""


@runtime_checkable
class EvidenceOutcomeCache(Protocol):
    """Effect outcomes keyed by evidence id.

    `put` replaces an entry with the same id; `get` returns ``None`` on a miss.
    """

    def get(self, evidence_id: str) -> EvidenceOutcomeCacheEntry | None:
        """The entry bound to `evidence_id`, or ``None``."""

    def put(self, entry: EvidenceOutcomeCacheEntry) -> None:
        """Bind (or rebind) `entry.evidence_id` durably."""

    def load(self) -> EvidenceOutcomeCacheArtifact:
        """The whole cache."""


@runtime_checkable
class SingleBindingCache(EvidenceOutcomeCache, Protocol):
    """A cache offering first-binding-wins."""

    def put_if_absent(self, entry: EvidenceOutcomeCacheEntry) -> EvidenceOutcomeCacheEntry:
        """Bind `entry` unless a terminal entry is bound already (a blocked
        one counts as absent); return the entry that is bound."""


#: The five optional intent methods: a cache has all of them or none (API.md §11).
INTENT_METHODS = ("put_intent", "get_intent", "withdraw_intent", "in_doubt", "resolve")


@runtime_checkable
class IntentCache(EvidenceOutcomeCache, Protocol):
    """A cache that records intents, so that an effect interrupted by a crash
    is known to be *in doubt* instead of silently run again (API.md §11).
    Every provided cache is one."""

    def put_intent(self, intent: EffectIntent) -> EffectIntent | None:
        """Compare-and-set: record `intent` only when no terminal outcome is
        bound for its id and its attempt is one more than the latest recorded
        (1 when none); return the intent now recorded (``None``: none is,
        because a terminal outcome was bound without one)."""

    def get_intent(self, evidence_id: str) -> EffectIntent | None:
        """The latest intent recorded for `evidence_id` (``withdrawn`` set
        when that attempt was withdrawn), or ``None``."""

    def withdraw_intent(self, evidence_id: str, attempt: int) -> EffectIntent | None:
        """Durably withdraw `attempt` (it did not happen) when it is the
        latest, not withdrawn and unbound; return the latest intent."""

    def in_doubt(self) -> list[EffectIntent]:
        """Intents neither withdrawn nor followed by a terminal binding, in
        the order they were recorded."""

    def resolve(self, evidence_id: str, outcome: EffectOutcome) -> EffectOutcome:
        """An operator's verdict: bind a terminal `outcome` (first binding
        wins: an id already bound returns its outcome, unchanged), or, for
        ``EffectOutcome.blocked()``, withdraw the open attempt (the next call
        runs it). Raises `DurabilityError` for an id with no intent."""
