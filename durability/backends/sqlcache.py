"""The evidence outcome cache on a SQL database: the logic
`SqliteEvidenceOutcomeCache` and `PostgresEvidenceOutcomeCache` share.

Storage: one row per binding in ``durability_cache_entries`` keyed by the
cache's name and the evidence id, holding its binding position and the
entry's CBOR; one head row per cache in ``durability_cache_heads`` holding the
last position, which writers lock (so bindings are ordered as they commit and
``put_if_absent`` decides under the lock). Nothing is kept in memory: `get` is
one indexed read, so every process sees every other's bindings at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..artifact import EvidenceOutcomeCacheArtifact, EvidenceOutcomeCacheEntry, check_cache_entry
from ..errors import DecodeError
from .sql import CACHE_ENTRIES, CACHE_HEADS, Cursor, SqlBackend, decode_cache_entry, encode_item

__all__ = ["SqlEvidenceOutcomeCache"]

_GET = f"SELECT position, entry FROM {CACHE_ENTRIES} WHERE cache = ? AND evidence_id = ?"
_LOAD = f"SELECT position, entry FROM {CACHE_ENTRIES} WHERE cache = ? ORDER BY position"
_HEAD = f"SELECT last_position FROM {CACHE_HEADS} WHERE cache = ?"
_ADD_HEAD = (
    f"INSERT INTO {CACHE_HEADS} (cache, last_position) VALUES (?, 0) ON CONFLICT (cache) DO NOTHING"
)
_SET_HEAD = f"UPDATE {CACHE_HEADS} SET last_position = ? WHERE cache = ?"
_BIND = (
    f"INSERT INTO {CACHE_ENTRIES} (cache, evidence_id, position, entry) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (cache, evidence_id) DO UPDATE "
    "SET position = excluded.position, entry = excluded.entry"
)


class SqlEvidenceOutcomeCache(SqlBackend):
    """An evidence outcome cache in a SQL database (the base of
    `SqliteEvidenceOutcomeCache` and `PostgresEvidenceOutcomeCache`)."""

    kind = "cache"

    # -- the protocol --------------------------------------------------------------

    def get(self, evidence_id: str) -> EvidenceOutcomeCacheEntry | None:
        """The entry bound to `evidence_id` by anyone, or ``None`` (one read)."""

        def work(cursor: Cursor) -> EvidenceOutcomeCacheEntry | None:
            return self._bound(cursor, evidence_id)

        return self._db.run(work, write=False, what=f"read cache `{self._name}`")

    def put(self, entry: EvidenceOutcomeCacheEntry) -> None:
        """Bind `entry` durably, replacing (and moving last) any entry with its
        id. Raises `EncodeError` for a response no v1 artifact can hold."""
        check_cache_entry(entry)
        data = encode_item(entry)

        def work(cursor: Cursor) -> None:
            self._bind(cursor, entry, data)

        self._db.run(work, write=True, what=f"put into cache `{self._name}`")

    def put_many(self, entries: Iterable[EvidenceOutcomeCacheEntry]) -> int:
        """`put` every entry, in order, in one transaction (all or none);
        return how many. What ``durability migrate`` uses to fill a cache."""
        batch = list(entries)
        for entry in batch:
            check_cache_entry(entry)
        encoded = [(entry.evidence_id, encode_item(entry)) for entry in batch]
        name = self._name

        def work(cursor: Cursor) -> None:
            last = self._lock_head(cursor)
            rows = [(name, key, last + i, data) for i, (key, data) in enumerate(encoded, 1)]
            cursor.execute_many(_BIND, rows)
            cursor.execute(_SET_HEAD, (last + len(rows), name))

        if encoded:
            self._db.run(work, write=True, what=f"put into cache `{name}`")
        return len(encoded)

    def put_if_absent(self, entry: EvidenceOutcomeCacheEntry) -> EvidenceOutcomeCacheEntry:
        """First durable binding wins, across processes and hosts: return the
        terminal entry bound to ``entry.evidence_id`` if there is one, else
        bind `entry` (replacing a blocked one) and return it. One transaction."""
        check_cache_entry(entry)
        data = encode_item(entry)

        def work(cursor: Cursor) -> EvidenceOutcomeCacheEntry:
            position = self._lock_head(cursor)
            existing = self._bound(cursor, entry.evidence_id)
            if existing is not None and existing.outcome.is_terminal:
                return existing
            self._bind(cursor, entry, data, position)
            return entry

        return self._db.run(work, write=True, what=f"put into cache `{self._name}`")

    def load(self) -> EvidenceOutcomeCacheArtifact:
        """The whole cache, in binding order."""

        def work(cursor: Cursor) -> EvidenceOutcomeCacheArtifact:
            rows = cursor.fetch(_LOAD, (self._name,))
            return EvidenceOutcomeCacheArtifact(entries=[self._decode(*row) for row in rows])

        return self._db.run(work, write=False, what=f"load cache `{self._name}`")

    # -- the rows --------------------------------------------------------------------

    def _lock_head(self, cursor: Cursor) -> int:
        lock = _HEAD + self._db.for_update
        rows = cursor.fetch(lock, (self._name,))
        if not rows:
            cursor.execute(_ADD_HEAD, (self._name,))
            rows = cursor.fetch(lock, (self._name,))
        position: int = rows[0][0]
        return position

    def _bind(
        self,
        cursor: Cursor,
        entry: EvidenceOutcomeCacheEntry,
        data: bytes,
        position: int | None = None,
    ) -> None:
        last = self._lock_head(cursor) if position is None else position
        cursor.execute(_BIND, (self._name, entry.evidence_id, last + 1, data))
        cursor.execute(_SET_HEAD, (last + 1, self._name))

    def _bound(self, cursor: Cursor, evidence_id: str) -> EvidenceOutcomeCacheEntry | None:
        rows = cursor.fetch(_GET, (self._name, evidence_id))
        if not rows:
            return None
        entry = self._decode(*rows[0])
        if entry.evidence_id != evidence_id:
            raise self._damage(
                f"the row of `{evidence_id}` holds `{entry.evidence_id}`", rows[0][0]
            )
        return entry

    def _decode(self, position: int, data: Any) -> EvidenceOutcomeCacheEntry:
        try:
            entry: EvidenceOutcomeCacheEntry = decode_cache_entry(data)
        except DecodeError as exc:
            raise self._damage(exc.reason, position) from exc
        return entry

    def _damage(self, reason: str, position: int) -> DecodeError:
        return DecodeError(
            f"table {CACHE_ENTRIES}, cache `{self._name}`: {reason}",
            path=self._db.description,
            offset=position,
            unit="position",
        )
