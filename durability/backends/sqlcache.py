"""The evidence outcome cache on a SQL database: the logic
`SqliteEvidenceOutcomeCache` and `PostgresEvidenceOutcomeCache` share.

Storage: one row per binding in ``durability_cache_entries`` keyed by the
cache's name and the evidence id, holding its binding position and the
entry's CBOR; one head row per cache in ``durability_cache_heads`` holding the
last position, which writers lock (so bindings are ordered as they commit and
``put_if_absent`` decides under the lock). Nothing is kept in memory: `get` is
one indexed read, so every process sees every other's bindings at once.

Intents (API.md §11, ``specs/effects.md``): one row per evidence id in
``durability_cache_intents`` holding its latest attempt, whether it was
withdrawn, its position (from the same head counter) and the intent's CBOR;
written under the same head lock, so the compare-and-set is exact across
processes and hosts. The table is created on the first intent write when a
database made before it lacks it. `transaction()` (``backends/sqltx.py``)
lets an effect's own writes commit with its outcome binding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from ..artifact import EvidenceOutcomeCacheArtifact, EvidenceOutcomeCacheEntry, check_cache_entry
from ..codec import decode_item
from ..effects import EffectOutcome
from ..errors import DecodeError
from ..intents import (
    EffectIntent,
    check_intent,
    encode_intent,
    intent_from_plain,
    intent_to_plain,
    resolve_with,
)
from .sql import (
    CACHE_ENTRIES,
    CACHE_HEADS,
    CACHE_INTENTS,
    Cursor,
    SqlBackend,
    decode_cache_entry,
    encode_item,
)
from .sqltx import ensure_intents_table, intents_table_exists, open_transaction

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
_INTENT = (
    f"SELECT position, attempt, withdrawn, intent FROM {CACHE_INTENTS} "
    "WHERE cache = ? AND evidence_id = ?"
)
_RECORD = (
    f"INSERT INTO {CACHE_INTENTS} (cache, evidence_id, attempt, withdrawn, position, intent) "
    "VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT (cache, evidence_id) DO UPDATE SET "
    "attempt = excluded.attempt, withdrawn = 0, position = excluded.position, "
    "intent = excluded.intent"
)
_WITHDRAW = f"UPDATE {CACHE_INTENTS} SET withdrawn = 1 WHERE cache = ? AND evidence_id = ?"
#: The bytes every blocked outcome's CBOR holds (``"status": "blocked"``): a
#: binding without them is terminal, so only those with them are decoded.
_BLOCKED = bytes.fromhex("6673746174757367626c6f636b6564")


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
            return self._bind_if_absent(cursor, entry, data)

        return self._db.run(work, write=True, what=f"put into cache `{self._name}`")

    def load(self) -> EvidenceOutcomeCacheArtifact:
        """The whole cache, in binding order."""

        def work(cursor: Cursor) -> EvidenceOutcomeCacheArtifact:
            rows = cursor.fetch(_LOAD, (self._name,))
            return EvidenceOutcomeCacheArtifact(entries=[self._decode(*row) for row in rows])

        return self._db.run(work, write=False, what=f"load cache `{self._name}`")

    # -- intents (API.md §11) ---------------------------------------------------------

    def put_intent(self, intent: EffectIntent) -> EffectIntent | None:
        """Record `intent` (one transaction, under the head lock) if no
        terminal outcome is bound for its id and its attempt is one more than
        the latest (1 when none); return the intent now recorded (``None``:
        none, a terminal outcome was bound without one)."""
        check_intent(intent)
        data = encode_intent(intent)
        ensure_intents_table(self._db)

        def work(cursor: Cursor) -> EffectIntent | None:
            position = self._lock_head(cursor)
            latest = self._intent(cursor, intent.evidence_id)
            expected = latest.attempt + 1 if latest is not None else 1
            bound = self._bound(cursor, intent.evidence_id)
            if intent.attempt != expected or (bound is not None and bound.outcome.is_terminal):
                return latest
            row = (self._name, intent.evidence_id, intent.attempt, position + 1, data)
            cursor.execute(_RECORD, row)
            cursor.execute(_SET_HEAD, (position + 1, self._name))
            return intent

        return self._db.run(work, write=True, what=f"put an intent into cache `{self._name}`")

    def get_intent(self, evidence_id: str) -> EffectIntent | None:
        """The latest intent recorded for `evidence_id` by anyone, or ``None``."""

        def work(cursor: Cursor) -> EffectIntent | None:
            if not intents_table_exists(self._db, cursor):
                return None
            return self._intent(cursor, evidence_id)

        return self._db.run(work, write=False, what=f"read an intent of cache `{self._name}`")

    def withdraw_intent(self, evidence_id: str, attempt: int) -> EffectIntent | None:
        """Withdraw `attempt` of `evidence_id` if it is the latest, not
        withdrawn and unbound (one transaction); return the latest intent."""
        ensure_intents_table(self._db)

        def work(cursor: Cursor) -> EffectIntent | None:
            self._lock_head(cursor)
            latest = self._intent(cursor, evidence_id)
            if latest is None or latest.attempt != attempt or latest.withdrawn:
                return latest
            bound = self._bound(cursor, evidence_id)
            if bound is not None and bound.outcome.is_terminal:
                return latest
            cursor.execute(_WITHDRAW, (self._name, evidence_id))
            return EffectIntent(**{**intent_to_plain(latest), "withdrawn": True})

        return self._db.run(work, write=True, what=f"withdraw an intent in cache `{self._name}`")

    def in_doubt(self) -> list[EffectIntent]:
        """The intents in doubt (anyone's), in the order they were recorded:
        one query; only bindings that may be blocked are decoded."""
        maybe_blocked = self._db.contains_sql("e.entry")
        query = (
            f"SELECT i.position, i.attempt, i.withdrawn, i.intent, e.position, e.entry "
            f"FROM {CACHE_INTENTS} i LEFT JOIN {CACHE_ENTRIES} e "
            "ON e.cache = i.cache AND e.evidence_id = i.evidence_id "
            f"WHERE i.cache = ? AND i.withdrawn = 0 AND (e.entry IS NULL OR {maybe_blocked}) "
            "ORDER BY i.position"
        )

        def work(cursor: Cursor) -> list[EffectIntent]:
            if not intents_table_exists(self._db, cursor):
                return []
            found = []
            for row in cursor.fetch(query, (self._name, _BLOCKED)):
                if row[5] is not None and self._decode(row[4], row[5]).outcome.is_terminal:
                    continue
                found.append(self._decode_intent(*row[:4]))
            return found

        return self._db.run(work, write=False, what=f"list intents of cache `{self._name}`")

    def resolve(self, evidence_id: str, outcome: EffectOutcome) -> EffectOutcome:
        """An operator's verdict on an effect in doubt: see `IntentCache.resolve`."""
        return resolve_with(self, evidence_id, outcome)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """A write transaction on this cache's own connection (a
        `sqlite3.Connection`, or a `psycopg.Connection`), yielded for an
        effect's own writes to the same database: committed when the block
        ends, rolled back if it raises. Inside a handler call running an
        effect for this cache, the commit waits for the handler, which binds
        the effect's outcome in the same transaction (and rolls it all back
        if the effect raises, returns blocked, or another binding won), so
        the effect's writes and its binding commit together or not at all.
        See ``backends/sqltx.py``."""
        with open_transaction(self) as connection:
            yield connection

    # -- the rows --------------------------------------------------------------------

    def _bind_if_absent(
        self, cursor: Cursor, entry: EvidenceOutcomeCacheEntry, data: bytes
    ) -> EvidenceOutcomeCacheEntry:
        """First binding wins, under the head lock: the terminal entry bound
        already, or `entry`, now bound."""
        position = self._lock_head(cursor)
        existing = self._bound(cursor, entry.evidence_id)
        if existing is not None and existing.outcome.is_terminal:
            return existing
        self._bind(cursor, entry, data, position)
        return entry

    def _intent(self, cursor: Cursor, evidence_id: str) -> EffectIntent | None:
        rows = cursor.fetch(_INTENT, (self._name, evidence_id))
        if not rows:
            return None
        intent = self._decode_intent(*rows[0])
        if intent.evidence_id != evidence_id:
            raise self._damage(
                f"the intent of `{evidence_id}` holds `{intent.evidence_id}`",
                rows[0][0],
                CACHE_INTENTS,
            )
        return intent

    def _decode_intent(
        self, position: int, attempt: int, withdrawn: int, data: Any
    ) -> EffectIntent:
        try:
            if not isinstance(data, bytes | bytearray | memoryview):
                raise DecodeError(f"the intent column holds {type(data).__name__}, not bytes")
            plain, end = decode_item(bytes(data))
            if end != len(data):
                raise DecodeError(f"{len(data) - end} bytes after the intent")
            intent = intent_from_plain(plain)
            if intent.attempt != attempt:
                raise DecodeError(f"attempt {attempt} holds an intent of attempt {intent.attempt}")
        except DecodeError as exc:
            raise self._damage(exc.reason, position, CACHE_INTENTS) from exc
        return EffectIntent(**{**intent_to_plain(intent), "withdrawn": bool(withdrawn)})

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

    def _damage(self, reason: str, position: int, table: str = CACHE_ENTRIES) -> DecodeError:
        return DecodeError(
            f"table {table}, cache `{self._name}`: {reason}",
            path=self._db.description,
            offset=position,
            unit="position",
        )
