"""The agreement WAL on a SQL database: the logic `SqliteAgreementWal` and
`PostgresAgreementWal` share (API.md §10).

Storage: one row per entry in ``durability_wal_entries`` keyed by the WAL's
name and its *sequence* (1-based, gapless, in commit order) holding the tick
and the entry's CBOR, and one head row per WAL in ``durability_wal_heads``
holding its last sequence. Writers lock the head row, so they are serialised
by the database; inside that lock a writer first reads what others appended
since it last looked (into its in-memory `WalIndex`), then validates and
writes. So validation is exact across processes and hosts, and each call costs
O(1) work here plus what others appended meanwhile, in a constant number of
round trips.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..artifact import (
    AgreementWalArtifact,
    Escalation,
    Finalization,
    WalEntry,
    check_entries,
    check_sequence_arguments,
    proven_level,
)
from ..errors import DecodeError, EscalationOrderError, SequenceConflictError
from ..index import OperationSummary, WalIndex
from ..model import AgreementLevel
from .sql import (
    WAL_ENTRIES,
    WAL_HEADS,
    Cursor,
    Database,
    SqlBackend,
    decode_wal_entry,
    encode_item,
)

__all__ = ["SqlAgreementWal", "prune_plan"]

_CATCH_UP = (
    f"SELECT h.last_sequence, h.pruned_through, h.prunes, e.sequence, e.entry "
    f"FROM {WAL_HEADS} h LEFT JOIN {WAL_ENTRIES} e ON e.wal = h.wal AND e.sequence > ? "
    f"WHERE h.wal = ? ORDER BY e.sequence"
)
_HEAD = f"SELECT last_sequence, pruned_through, prunes FROM {WAL_HEADS} WHERE wal = ?"
_ADD_HEAD = (
    f"INSERT INTO {WAL_HEADS} (wal, last_sequence, pruned_through, prunes) "
    f"VALUES (?, 0, 0, 0) ON CONFLICT (wal) DO NOTHING"
)
_INSERT = f"INSERT INTO {WAL_ENTRIES} (wal, sequence, tick, entry) VALUES (?, ?, ?, ?)"
_SET_LAST = f"UPDATE {WAL_HEADS} SET last_sequence = ? WHERE wal = ?"
_DELETE = f"DELETE FROM {WAL_ENTRIES} WHERE wal = ? AND sequence = ?"
_MARK_PRUNED = f"UPDATE {WAL_HEADS} SET pruned_through = ?, prunes = prunes + 1 WHERE wal = ?"


def prune_plan(entries: Iterable[tuple[int, WalEntry]], tick: int) -> list[int]:
    """The sequences `SqlAgreementWal.prune_through(tick)` deletes, given the
    WAL as ``(sequence, entry)`` pairs in order: every entry with a tick at or
    below `tick` except, per operation, its last escalation, its last
    finalization and the first of those entries proving its highest level."""
    items = list(entries)
    last_escalation: dict[str, int] = {}
    last_finalization: dict[str, int] = {}
    best: dict[str, tuple[AgreementLevel, int]] = {}
    for sequence, entry in items:
        op = entry.operation_id
        if isinstance(entry, Escalation):
            last_escalation[op] = sequence
        elif isinstance(entry, Finalization):
            last_finalization[op] = sequence
        if entry.tick <= tick:
            level = proven_level(entry)
            if level > AgreementLevel.NONE and (op not in best or level > best[op][0]):
                best[op] = (level, sequence)
    keep = {*last_escalation.values(), *last_finalization.values()}
    keep.update(sequence for _level, sequence in best.values())
    return [s for s, entry in items if entry.tick <= tick and s not in keep]


class SqlAgreementWal(SqlBackend):
    """An agreement WAL in a SQL database (the base of `SqliteAgreementWal`
    and `PostgresAgreementWal`; see their docs and the module's)."""

    kind = "WAL"

    def __init__(self, database: Database, name: str) -> None:
        super().__init__(database, name)
        self._sequences: list[int] = []
        self._entries: list[WalEntry] = []
        self._index = WalIndex()
        self._last = 0
        self._prunes = 0

    # -- reading -------------------------------------------------------------------

    def load(self) -> AgreementWalArtifact:
        """The whole WAL, including every writer's appends."""
        with self._db.lock:
            self._refresh("load")
            return AgreementWalArtifact(entries=self._entries)

    def read_since(self, tick: int) -> list[WalEntry]:
        """Entries with ``entry.tick > tick``, in WAL (sequence) order."""
        with self._db.lock:
            self._refresh("read")
            return [entry for entry in self._entries if entry.tick > tick]

    @property
    def last_sequence(self) -> int:
        """The sequence of the last entry appended by anyone (0 when empty)."""
        with self._db.lock:
            self._refresh("read the last sequence")
            return self._last

    def poll(self, after_sequence: int, limit: int) -> list[tuple[int, WalEntry]]:
        """Up to `limit` ``(sequence, entry)`` pairs with a sequence above
        `after_sequence`, in order: tail a WAL other processes append to by
        passing the last sequence seen. Costs O(new entries + limit)."""
        check_sequence_arguments(after_sequence=after_sequence, limit=limit)
        with self._db.lock:
            self._refresh("poll")
            start = bisect.bisect_right(self._sequences, after_sequence)
            stop = start + limit
            return list(zip(self._sequences[start:stop], self._entries[start:stop], strict=True))

    def operation_summary(self, operation_id: str) -> OperationSummary:
        """What the WAL holds about one operation, every writer's appends included."""
        with self._db.lock:
            self._refresh("read")
            return self._index.summary(operation_id)

    # -- writing -------------------------------------------------------------------

    def append(self, entry: WalEntry, *, expected_sequence: int | None = None) -> int:
        """Append one entry durably; return its sequence. See `append_batch`."""
        return self.append_batch([entry], expected_sequence=expected_sequence)

    def append_batch(
        self, entries: Iterable[WalEntry], *, expected_sequence: int | None = None
    ) -> int:
        """Append every entry or none, in one transaction; return the new last
        sequence.

        Raises `EscalationOrderError` (nothing written) when an escalation is
        out of order against everything appended by anyone; with
        `expected_sequence`, `SequenceConflictError` (nothing written, never
        retried) unless the last sequence is still that under the writers'
        lock; `StorageError` when the database fails.
        """
        batch = list(entries)
        check_entries(batch)
        _check_sequence(expected_sequence)
        if not batch and expected_sequence is None:
            return self.last_sequence
        return self._append(lambda: batch, expected_sequence, "append")

    def append_planned(
        self, operation_id: str, plan: Callable[[OperationSummary], Sequence[WalEntry]]
    ) -> int:
        """Read and write in one transaction: under the writers' lock, call
        ``plan(summary)`` with the exact `OperationSummary` of `operation_id`
        (every writer's appends included) and append what it returns, all or
        nothing. Returns the new last sequence. `plan` may run more than once
        (a transaction retried after a conflict) and must not have side
        effects beyond remembering its last answer.

        This is how `AgreementWalHandler.wal_sync` makes a whole sync one
        transaction, so two hosts running the same sync write its entries once.
        """

        def build() -> list[WalEntry]:
            batch = list(plan(self._index.summary(operation_id)))
            check_entries(batch)
            return batch

        return self._append(build, None, f"wal_sync of `{operation_id}`")

    def prune_through(self, tick: int) -> int:
        """After a checkpoint at `tick` (or later): delete the entries with a
        tick at or below `tick` that no longer carry state, in one
        transaction; return how many were deleted.

        Kept, per operation, whatever their tick: its last escalation (so
        escalation validation stays exact), its last finalization, and the
        first entry proving its highest level among those at or below `tick`
        (so ``wal_sync`` gates and `operation_summary` levels are unchanged).
        Hence ``read_since(t)`` for ``t >= tick``, escalation validation and
        any recovery plan from a checkpoint at ``tick`` or later are exactly
        as before; a plan from an older checkpoint is not. Sequences are never
        reused or renumbered: surviving entries keep theirs, `last_sequence`
        is unchanged, and `poll` skips the holes. Stable identities of the
        deleted entries are forgotten: re-running a sync from before `tick`
        may append its evidence and gate again (with their old tick).
        """
        if not isinstance(tick, int) or isinstance(tick, bool) or tick < 0:
            raise ValueError(f"tick must be an int >= 0, got {tick!r}")
        name = self._name

        def work(cursor: Cursor) -> list[int]:
            self._lock_head(cursor)
            doomed = prune_plan(zip(self._sequences, self._entries, strict=True), tick)
            if doomed:
                cursor.execute_many(_DELETE, [(name, sequence) for sequence in doomed])
                cursor.execute(_MARK_PRUNED, (self._last, name))
            return doomed

        with self._db.lock:
            doomed = self._db.run(work, write=True, what=f"prune WAL `{name}`")
            if doomed:
                gone = set(doomed)
                kept = [
                    (s, e)
                    for s, e in zip(self._sequences, self._entries, strict=True)
                    if s not in gone
                ]
                self._sequences = [s for s, _e in kept]
                self._entries = [e for _s, e in kept]
                self._index = WalIndex(self._entries)
                self._prunes += 1
            return len(doomed)

    # -- the transactions ---------------------------------------------------------------

    def _append(self, build: Callable[[], list[WalEntry]], expected: int | None, what: str) -> int:
        name = self._name

        def work(cursor: Cursor) -> tuple[list[WalEntry], dict[str, AgreementLevel]]:
            self._lock_head(cursor)
            if expected is not None and expected != self._last:
                where = f"WAL `{name}` in {self._db.description}"
                raise SequenceConflictError(expected, self._last, where)
            batch = build()
            updates = self._index.check(batch)
            if batch:
                first = self._last + 1
                rows = [
                    (name, first + i, self._db.encode_tick(entry.tick), encode_item(entry))
                    for i, entry in enumerate(batch)
                ]
                cursor.execute_many(_INSERT, rows)
                cursor.execute(_SET_LAST, (self._last + len(batch), name))
            return batch, updates

        with self._db.lock:
            batch, updates = self._db.run(work, write=True, what=f"{what} to WAL `{name}`")
            # committed: nobody else can have written in between (we held the lock)
            first = self._last + 1
            self._sequences.extend(range(first, first + len(batch)))
            self._entries.extend(batch)
            self._index.add(batch, updates)
            self._last += len(batch)
            return self._last

    def _lock_head(self, cursor: Cursor) -> None:
        """Take this WAL's writer lock (its head row), then catch up under it."""
        lock = _HEAD + self._db.for_update
        rows = cursor.fetch(lock, (self._name,))
        if not rows:
            cursor.execute(_ADD_HEAD, (self._name,))
            rows = cursor.fetch(lock, (self._name,))
        last, _pruned, prunes = rows[0]
        if last != self._last or prunes != self._prunes:
            self._catch_up(cursor)

    def _refresh(self, what: str) -> None:
        self._db.run(self._catch_up, write=False, what=f"{what} WAL `{self._name}`")

    def _catch_up(self, cursor: Cursor) -> None:
        """Absorb what was appended since we last looked (everything again
        after another handle pruned); the state is unchanged on error."""
        rows = cursor.fetch(_CATCH_UP, (self._last, self._name))
        if not rows:
            if self._last:
                raise self._damage(f"the head row of WAL `{self._name}` is missing", None)
            return
        fresh = rows[0][2] != self._prunes
        if fresh and self._last:  # another handle pruned: read everything again
            rows = cursor.fetch(_CATCH_UP, (0, self._name))
        last, pruned, prunes = rows[0][:3]
        if last < self._last and not fresh:
            reason = (
                f"the head's last sequence went back to {last} from {self._last}, which "
                "this handle read: the database was replaced or rolled back"
            )
            raise self._damage(reason, last)
        sequences, entries = self._decode(rows, 0 if fresh else self._last, last, pruned)
        index = WalIndex() if fresh else self._index
        try:
            updates = index.check(entries)
        except EscalationOrderError as exc:
            bad = next(i for i in range(len(entries)) if _breaks(index, entries[: i + 1]))
            reason = f"the stored entry breaks escalation order: {exc}"
            raise self._damage(reason, sequences[bad]) from exc
        index.add(entries, updates)
        if fresh:
            self._sequences, self._entries, self._index = [], [], index
        self._sequences.extend(sequences)
        self._entries.extend(entries)
        self._last, self._prunes = last, prunes

    def _decode(
        self, rows: list[tuple[Any, ...]], start: int, last: int, pruned: int
    ) -> tuple[list[int], list[WalEntry]]:
        sequences: list[int] = []
        entries: list[WalEntry] = []
        expected = start + 1
        for row in rows:
            sequence, data = row[3], row[4]
            if sequence is None:  # the head's row with no entry joined
                continue
            if sequence != expected and not expected < sequence <= pruned + 1:
                raise self._damage(f"sequence gap: expected {expected}, found {sequence}", expected)
            if sequence > last:
                raise self._damage(f"past the head's last sequence {last}", sequence)
            try:
                entries.append(decode_wal_entry(data))
            except DecodeError as exc:
                raise self._damage(exc.reason, sequence) from exc
            sequences.append(sequence)
            expected = sequence + 1
        if expected <= last and last > pruned:
            reason = f"sequence gap: the head's last sequence is {last}, the rows stop before"
            raise self._damage(reason, expected)
        return sequences, entries

    def _damage(self, reason: str, sequence: int | None) -> DecodeError:
        return DecodeError(
            f"table {WAL_ENTRIES}, WAL `{self._name}`: {reason}",
            path=self._db.description,
            offset=sequence,
            unit="sequence",
        )


def _breaks(index: WalIndex, entries: list[WalEntry]) -> bool:
    try:
        index.check(entries)
    except EscalationOrderError:
        return True
    return False


def _check_sequence(expected: int | None) -> None:
    check_sequence_arguments(expected_sequence=expected)
