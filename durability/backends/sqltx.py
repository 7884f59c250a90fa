"""Exactly once for database sinks: ``transaction()`` of the SQL caches, and
the intents table of databases made before it (API.md §11).

An effect whose sink is the cache's own database writes through the cache's
connection, inside ``cache.transaction()``::

    def pay(request):
        with cache.transaction() as connection:      # BEGIN (IMMEDIATE)
            connection.execute("INSERT INTO payments ...")
        return EffectOutcome.success("paid")          # the handler binds, then COMMIT

Outside a handler call the block commits when it ends and rolls back if it
raises. Inside the call of a handler wrapping this cache (the handler's
`EffectScope` names this cache), the block's end does **not** commit: the
transaction is *parked* in the scope, still holding the connection (and the
database's writer lock), and the handler, once `inner` returns, binds the
outcome in that same transaction, first binding wins, and commits. So the
effect's writes and its binding commit together or not at all:

* `inner` returns a terminal outcome: bound, then committed; if a terminal
  outcome was bound first (a concurrent attempt), everything rolls back and
  that one is returned;
* `inner` returns blocked, or raises: everything rolls back (the intent is
  withdrawn, or stays in doubt, as usual);
* a crash before the commit loses the writes and the binding alike: the
  effect is in doubt, and a binding's absence proves it did not happen
  (``reconcile=lambda request, evidence_id: None``, or ``AT_LEAST_ONCE``).

A second ``transaction()`` block in the same effect joins the parked one (in
a savepoint: if that block raises, its own writes are undone).
While a transaction is open, other calls of the cache from the same thread
raise `StorageError` (use the yielded connection); other threads wait.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Protocol

from ..artifact import EvidenceOutcomeCacheEntry, check_cache_entry
from ..errors import StorageError
from ..intents import current_effect_scope
from .sql import CACHE_INTENTS, Cursor, Database, OpenTransaction, Retryable, encode_item


class SqlCache(Protocol):
    """What a transaction needs of the SQL cache it belongs to."""

    _db: Database

    @property
    def name(self) -> str:
        """The cache's name in its database."""

    def _bind_if_absent(
        self, cursor: Cursor, entry: EvidenceOutcomeCacheEntry, data: bytes
    ) -> EvidenceOutcomeCacheEntry:
        """Bind `entry` first-binding-wins under the head lock."""


__all__ = ["ensure_intents_table", "intents_table_exists", "open_transaction"]


def intents_table_exists(db: Database, cursor: Cursor) -> bool:
    """Whether the intents table exists (remembered once it does). Reading
    never creates it: a database made before it simply has no intents."""
    if not db.intents_ready:
        db.intents_ready = db._table_exists(cursor, CACHE_INTENTS)
    return db.intents_ready


def ensure_intents_table(db: Database) -> None:
    """Create the intents table if the database lacks it (one made by an
    earlier version of the toolkit), under the schema lock so concurrent
    first writers create it once."""
    if db.intents_ready:
        return

    def create(cursor: Cursor) -> None:
        db._lock_schema(cursor)
        if not db._table_exists(cursor, CACHE_INTENTS):
            for statement in db._ddl():
                if CACHE_INTENTS in statement:
                    cursor.execute(statement)

    with db.lock:
        if not db._schema_ready:
            db._ensure_schema()
        db._retrying(create, write=True, what="create the intents table")
        db.intents_ready = True


def _begin(db: Database, what: str) -> OpenTransaction:
    """Begin a write transaction, retrying a busy database a bounded number of times."""
    attempt = 1
    while True:
        try:
            return db._open(what)
        except Retryable as exc:
            if attempt >= db.retries:
                raise StorageError(
                    f"{what} in {db.description}: {exc.message}, still after "
                    f"{attempt} attempts ({exc.code})"
                ) from exc
        attempt += 1


def _end(db: Database, handle: OpenTransaction, *, commit: bool) -> None:
    """Commit or roll back `handle`, then give the connection back."""
    try:
        if commit:
            handle.commit()
        else:
            handle.roll_back()
    finally:
        db.open_transaction = None
        db.lock.release()


@contextlib.contextmanager
def open_transaction(cache: SqlCache) -> Iterator[Any]:
    """The body of ``cache.transaction()`` (see the module docs)."""
    db: Database = cache._db
    scope = current_effect_scope()
    joining = scope is not None and scope.cache is cache
    if scope is not None and joining and isinstance(scope.parked, _Parked):
        with scope.parked.savepoint():  # a second block of the same effect joins the first
            yield scope.parked.connection
        return
    what = f"transaction() of cache `{cache.name}`"
    db.lock.acquire()
    try:
        if db.open_transaction is not None:
            raise StorageError(f"{what} in {db.description}: a transaction is open already")
        if not db._schema_ready:
            db._ensure_schema()
        handle = _begin(db, what)
        db.open_transaction = handle
    except BaseException:
        db.lock.release()
        raise
    try:
        yield handle.connection
    except BaseException:
        _end(db, handle, commit=False)
        raise
    if scope is not None and joining:
        scope.parked = _Parked(cache, db, handle)  # the handler commits, with the binding
    else:
        _end(db, handle, commit=True)


class _Parked:
    """A transaction left open for the handler's binding (`ParkedTransaction`)."""

    def __init__(self, cache: SqlCache, db: Database, handle: OpenTransaction):
        self._cache, self._db, self._handle = cache, db, handle
        self._done = False
        self._savepoints = 0

    @property
    def connection(self) -> Any:
        """The connection the effect wrote through."""
        return self._handle.connection

    def bind(self, entry: EvidenceOutcomeCacheEntry) -> EvidenceOutcomeCacheEntry:
        """Bind `entry` first-binding-wins in the transaction and commit; if
        another terminal binding was there first, roll everything back and
        return that one."""
        self._finish_once()
        try:
            check_cache_entry(entry)
            data = encode_item(entry)
            winner = self._handle.run(
                lambda cursor: self._cache._bind_if_absent(cursor, entry, data)
            )
            if winner is entry:
                self._handle.commit()
            else:
                self._handle.roll_back()
            return winner
        except BaseException:
            self._handle.roll_back()
            raise
        finally:
            self._db.open_transaction = None
            self._db.lock.release()

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """A block joining this transaction: its own writes are undone if it
        raises (``ROLLBACK TO SAVEPOINT``), the earlier blocks' are kept."""
        self._savepoints += 1
        name = f"durability_block_{self._savepoints}"
        self._handle.run(lambda cursor: cursor.execute(f"SAVEPOINT {name}"))
        try:
            yield
        except BaseException:
            self._handle.run(lambda cursor: cursor.execute(f"ROLLBACK TO SAVEPOINT {name}"))
            raise
        self._handle.run(lambda cursor: cursor.execute(f"RELEASE SAVEPOINT {name}"))

    def roll_back(self) -> None:
        """Roll the effect's writes back."""
        self._finish_once()
        _end(self._db, self._handle, commit=False)

    def _finish_once(self) -> None:
        if self._done:
            raise StorageError("the effect's transaction was already finished")
        self._done = True
