"""In-memory backends: the readable reference and the test oracle.

One lock each; everything a file backend promises except surviving the
process. Thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ..artifact import (
    WAL_ENTRY_TYPES,
    AgreementWalArtifact,
    Escalation,
    EvidenceOutcomeCacheArtifact,
    EvidenceOutcomeCacheEntry,
    WalEntry,
    check_cache_entry,
    check_entries,
    check_escalations,
    check_sequence_arguments,
    escalation_error,
    sequenced,
)
from ..effects import EffectOutcome
from ..errors import EscalationOrderError, SequenceConflictError
from ..index import OperationSummary, WalIndex
from ..intents import EffectIntent, IntentBook, check_intent, resolve_with
from ..model import AgreementLevel

__all__ = ["InMemoryAgreementWal", "InMemoryEvidenceOutcomeCache"]


class InMemoryAgreementWal:
    """An agreement WAL in a list.

    Escalation order is checked on every append against each operation's
    last escalation level (a dict); the rest of the per-operation index
    (`operation_summary`) is brought up to date when asked, from the entries
    appended since, so an append does O(1) work and a summary O(1) amortised.

    >>> wal = InMemoryAgreementWal()
    >>> wal.load().entries
    ()
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[WalEntry] = []
        self._last: dict[str, AgreementLevel] = {}  # escalation order, always current
        self._index = WalIndex()  # summaries: up to `_indexed` entries
        self._indexed = 0
        self._updates: dict[str, AgreementLevel] = {}  # of the entries not indexed yet

    def append(self, entry: WalEntry, *, expected_sequence: int | None = None) -> int:
        """Append one entry; return its sequence. See `append_batch`."""
        if not isinstance(entry, WAL_ENTRY_TYPES):
            check_entries([entry])
        if expected_sequence is not None:
            check_sequence_arguments(expected_sequence=expected_sequence)
        with self._lock:
            entries = self._entries
            if expected_sequence is not None and expected_sequence != len(entries):
                raise SequenceConflictError(expected_sequence, len(entries), "an in-memory WAL")
            if type(entry) is Escalation:
                op = entry.operation_id
                problem = escalation_error(entry, self._last.get(op))
                if problem is not None:
                    raise EscalationOrderError(problem)
                self._last[op] = self._updates[op] = entry.new_level
            elif isinstance(entry, Escalation):  # a subclass: the general path
                self._check_and_record([entry])
            entries.append(entry)
            return len(entries)

    def append_batch(
        self, entries: Sequence[WalEntry], *, expected_sequence: int | None = None
    ) -> int:
        """Append all of `entries` or none; return the new last sequence.
        Raises `EscalationOrderError`, or `SequenceConflictError` unless the
        last sequence is still `expected_sequence` (when given)."""
        batch = list(entries)
        check_entries(batch)
        check_sequence_arguments(expected_sequence=expected_sequence)
        with self._lock:
            last = len(self._entries)
            if expected_sequence is not None and expected_sequence != last:
                raise SequenceConflictError(expected_sequence, last, "an in-memory WAL")
            self._check_and_record(batch)
            self._entries.extend(batch)
            return len(self._entries)

    def _check_and_record(self, batch: Sequence[WalEntry]) -> None:
        """Under the lock: check `batch`'s escalations (`EscalationOrderError`,
        nothing changed) and record the levels they reach."""
        updates = check_escalations(batch, self._last)
        self._last.update(updates)
        self._updates.update(updates)

    @property
    def last_sequence(self) -> int:
        """The sequence (1-based position) of the last entry; 0 when empty."""
        with self._lock:
            return len(self._entries)

    def poll(self, after_sequence: int, limit: int) -> list[tuple[int, WalEntry]]:
        """Up to `limit` ``(sequence, entry)`` pairs after `after_sequence`."""
        with self._lock:
            return sequenced(self._entries, after_sequence, limit)

    def read_since(self, tick: int) -> list[WalEntry]:
        """Entries with ``entry.tick > tick``, in WAL order."""
        with self._lock:
            return [entry for entry in self._entries if entry.tick > tick]

    def load(self) -> AgreementWalArtifact:
        """The whole WAL."""
        with self._lock:
            return AgreementWalArtifact(entries=self._entries)

    def operation_summary(self, operation_id: str) -> OperationSummary:
        """What the WAL holds about one operation."""
        with self._lock:
            if self._indexed < len(self._entries):
                self._index.add(self._entries[self._indexed :], self._updates)
                self._indexed, self._updates = len(self._entries), {}
            return self._index.summary(operation_id)


class InMemoryEvidenceOutcomeCache:
    """An evidence outcome cache in a dict (binding order kept), with intents
    (API.md §11) beside it, never part of `load`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, EvidenceOutcomeCacheEntry] = {}
        self._intents = IntentBook(self._entries.get)

    def get(self, evidence_id: str) -> EvidenceOutcomeCacheEntry | None:
        """The entry bound to `evidence_id`, or ``None``."""
        return self._entries.get(evidence_id)

    def put(self, entry: EvidenceOutcomeCacheEntry) -> None:
        """Bind `entry`, replacing (and moving last) any entry with its id."""
        check_cache_entry(entry)
        with self._lock:
            self._entries.pop(entry.evidence_id, None)
            self._entries[entry.evidence_id] = entry
            self._intents.bound_now(entry)

    def put_if_absent(self, entry: EvidenceOutcomeCacheEntry) -> EvidenceOutcomeCacheEntry:
        """First binding wins: return the bound terminal entry if there is one,
        else bind `entry` (replacing a blocked one) and return it."""
        check_cache_entry(entry)
        with self._lock:
            existing = self._entries.get(entry.evidence_id)
            if existing is not None and existing.outcome.is_terminal:
                return existing
            self._entries.pop(entry.evidence_id, None)
            self._entries[entry.evidence_id] = entry
            self._intents.bound_now(entry)
            return entry

    def load(self) -> EvidenceOutcomeCacheArtifact:
        """The whole cache."""
        with self._lock:
            return EvidenceOutcomeCacheArtifact(entries=list(self._entries.values()))

    # -- intents (API.md §11) ------------------------------------------------------

    def put_intent(self, intent: EffectIntent) -> EffectIntent | None:
        """Record `intent` if no terminal outcome is bound for its id and its
        attempt is one more than the latest (1 when none); return the intent
        now recorded (``None``: none, a terminal outcome was bound without)."""
        check_intent(intent)
        with self._lock:
            if self._intents.admits(intent):
                self._intents.record(intent)
            return self._intents.get(intent.evidence_id)

    def get_intent(self, evidence_id: str) -> EffectIntent | None:
        """The latest intent recorded for `evidence_id`, or ``None``."""
        with self._lock:
            return self._intents.get(evidence_id)

    def withdraw_intent(self, evidence_id: str, attempt: int) -> EffectIntent | None:
        """Withdraw `attempt` of `evidence_id` if it is the latest, open and
        unbound; return the latest intent."""
        with self._lock:
            if self._intents.withdrawable(evidence_id, attempt):
                self._intents.withdraw(evidence_id)
            return self._intents.get(evidence_id)

    def in_doubt(self) -> list[EffectIntent]:
        """The intents in doubt, in the order they were recorded."""
        with self._lock:
            return self._intents.in_doubt()

    def resolve(self, evidence_id: str, outcome: EffectOutcome) -> EffectOutcome:
        """An operator's verdict on an effect in doubt: see `IntentCache.resolve`."""
        return resolve_with(self, evidence_id, outcome)
