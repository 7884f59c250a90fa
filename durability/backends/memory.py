"""In-memory backends: the readable reference and the test oracle.

One lock each; everything a file backend promises except surviving the
process. Thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ..artifact import (
    AgreementWalArtifact,
    EvidenceOutcomeCacheArtifact,
    EvidenceOutcomeCacheEntry,
    WalEntry,
    check_cache_entry,
    check_entries,
)
from ..index import OperationSummary, WalIndex

__all__ = ["InMemoryAgreementWal", "InMemoryEvidenceOutcomeCache"]


class InMemoryAgreementWal:
    """An agreement WAL in a list.

    >>> wal = InMemoryAgreementWal()
    >>> wal.load().entries
    ()
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[WalEntry] = []
        self._index = WalIndex()

    def append(self, entry: WalEntry) -> None:
        """Append one entry; `EscalationOrderError` leaves the WAL unchanged."""
        self.append_batch([entry])

    def append_batch(self, entries: Sequence[WalEntry]) -> None:
        """Append all of `entries` or, on `EscalationOrderError`, none."""
        batch = list(entries)
        check_entries(batch)
        with self._lock:
            updates = self._index.check(batch)
            self._entries.extend(batch)
            self._index.add(batch, updates)

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
            return self._index.summary(operation_id)


class InMemoryEvidenceOutcomeCache:
    """An evidence outcome cache in a dict (binding order kept)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, EvidenceOutcomeCacheEntry] = {}

    def get(self, evidence_id: str) -> EvidenceOutcomeCacheEntry | None:
        """The entry bound to `evidence_id`, or ``None``."""
        return self._entries.get(evidence_id)

    def put(self, entry: EvidenceOutcomeCacheEntry) -> None:
        """Bind `entry`, replacing (and moving last) any entry with its id."""
        check_cache_entry(entry)
        with self._lock:
            self._entries.pop(entry.evidence_id, None)
            self._entries[entry.evidence_id] = entry

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
            return entry

    def load(self) -> EvidenceOutcomeCacheArtifact:
        """The whole cache."""
        with self._lock:
            return EvidenceOutcomeCacheArtifact(entries=list(self._entries.values()))
