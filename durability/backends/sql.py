"""What the SQL backends share: the schema, one connection's transactions
(retries, error mapping, fork safety) and the row codec.

Rules of this module (the dialects in ``sqlite.py`` and ``postgres.py`` keep
them):

* a backend instance owns one `Database`, which holds at most one connection,
  opened on first use and forgotten (never closed: the parent still uses it)
  in a child after ``fork()``;
* every call is one transaction: ``write`` transactions take the database's
  writer lock first (``BEGIN IMMEDIATE`` / ``SELECT ... FOR UPDATE`` on a head
  row), read ones are a single consistent read;
* a database opened ``read_only`` only reads: no table is created (a database
  without them raises `StorageError`), writes raise `StorageError` before
  reaching the driver, and the dialect opens its connection read-only;
* driver exceptions never escape: a transient conflict (SQLite busy/locked,
  PostgreSQL serialization failure or deadlock) is retried a bounded number of
  times, everything else becomes a `StorageError` naming the database (never
  its password) and the driver's code; errors the work itself raises
  (`EscalationOrderError`, `SequenceConflictError`, ...) roll back and pass
  through unchanged;
* each entry is stored as the CBOR of that entry exactly as it appears in a v1
  artifact's ``entries`` (the one codec), decoded with the same nesting bound.
"""

from __future__ import annotations

import abc
import os
import random
import re
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self, TypeVar

from ..artifact import AgreementWalArtifact, EvidenceOutcomeCacheArtifact
from ..codec import decode_item, dumps, from_plain, to_plain
from ..errors import DecodeError, SchemaVersionError, StorageError
from ..limits import ENTRY_DEPTH, MAX_DEPTH
from .sqlschema import (
    CACHE_ENTRIES,
    CACHE_HEADS,
    CACHE_INTENTS,
    SCHEMA_TABLE,
    SQL_SCHEMA_VERSION,
    WAL_ENTRIES,
    WAL_HEADS,
    schema_ddl,
)

__all__ = [
    "CACHE_ENTRIES",
    "CACHE_HEADS",
    "CACHE_INTENTS",
    "SCHEMA_TABLE",
    "SQL_SCHEMA_VERSION",
    "WAL_ENTRIES",
    "WAL_HEADS",
    "Cursor",
    "Database",
    "OpenTransaction",
    "Retryable",
    "SqlBackend",
    "decode_cache_entry",
    "decode_wal_entry",
    "encode_item",
    "redact",
    "schema_ddl",
]

T = TypeVar("T")


class Cursor(Protocol):
    """What the shared logic needs of a dialect's cursor. SQL is written with
    ``?`` placeholders; a dialect translates them."""

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement and return its rows."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per parameter row (one round trip where the
        driver can pipeline)."""


class OpenTransaction(Protocol):
    """A write transaction a dialect began (`Database._open`) and left open
    for ``transaction()`` of the SQL caches: the driver's `connection`,
    `run` for the toolkit's own statements in it, then `commit` or
    `roll_back`. Driver errors become `StorageError`."""

    connection: Any

    def run(self, work: Callable[[Cursor], T]) -> T:
        """``work(cursor)`` inside the transaction; on any error it is rolled back."""

    def commit(self) -> None:
        """Commit (`StorageError` if that fails; rolled back then)."""

    def roll_back(self) -> None:
        """Roll back; never raises."""


class Retryable(Exception):
    """A transaction the database refused for now and rolled back: running it
    again may succeed. Raised by a dialect's `Database._attempt`; never
    escapes `Database.run`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message


_PASSWORD_IN_NETLOC = re.compile(r"(://[^/@:?#]*):[^@/?#]*@")
_PASSWORD_PARAM = re.compile(r"((?:ssl)?password\s*=\s*)('[^']*'|[^&\s]*)", re.IGNORECASE)


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """`text` with every password removed: a URL's ``user:password@``, a
    ``password=...`` parameter, and each of `secrets` wherever it appears.

    >>> redact("postgresql://app:s3cret@db/x?sslmode=require&password=s3cret")
    'postgresql://app:***@db/x?sslmode=require&password=***'
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _PASSWORD_IN_NETLOC.sub(r"\1:***@", text)
    return _PASSWORD_PARAM.sub(r"\1***", text)


class Database(abc.ABC):
    """One connection to one SQL database, owned by one backend instance.

    `run(work, write=..., what=...)` runs ``work(cursor)`` in one transaction
    (see the module rules) after making sure the tables exist at a schema
    version this toolkit reads. `lock` serialises the instance's callers
    (the backends hold it around their in-memory state as well). With
    `read_only`, nothing is created or written (see the module rules).
    """

    #: Appended to a ``SELECT`` of a head row that must lock it.
    for_update: ClassVar[str] = ""

    def __init__(self, description: str, retries: int, *, read_only: bool = False) -> None:
        if not isinstance(retries, int) or retries < 1:
            raise ValueError(f"retries must be a positive int, got {retries!r}")
        self.description = description
        self.retries = retries
        self.read_only = bool(read_only)
        #: Called with the transaction's `what` and cursor inside each write
        #: transaction, after its work and before COMMIT: a seam for tests and
        #: the demo (which holds a transaction open there to be killed in it).
        self.before_commit: Callable[[str, Cursor], None] | None = None
        self.lock = threading.RLock()
        self._schema_ready = False
        #: The transaction ``transaction()`` holds open, if any (under `lock`).
        self.open_transaction: OpenTransaction | None = None
        self.intents_ready = False  # the intents table is known to exist
        _LIVE.add(self)

    # -- the dialect -------------------------------------------------------------

    @abc.abstractmethod
    def _attempt(self, work: Callable[[Cursor], T], *, write: bool, what: str) -> T:
        """Run `work` once in a transaction. Driver errors become `Retryable`
        (rolled back, worth another try) or `StorageError`; others roll back
        and propagate."""

    @abc.abstractmethod
    def _table_exists(self, cursor: Cursor, table: str) -> bool:
        """Whether `table` exists (where this connection creates tables)."""

    @abc.abstractmethod
    def _open(self, what: str) -> OpenTransaction:
        """Begin a write transaction and leave it open (`Retryable` when the
        database is busy)."""

    @abc.abstractmethod
    def contains_sql(self, column: str) -> str:
        """A condition: the bytes of `column` contain the parameter's bytes."""

    def _schema_exists(self, cursor: Cursor) -> bool:
        return self._table_exists(cursor, SCHEMA_TABLE)

    @abc.abstractmethod
    def _ddl(self) -> list[str]:
        """`schema_ddl` in this dialect's types."""

    @abc.abstractmethod
    def _lock_schema(self, cursor: Cursor) -> None:
        """Serialise concurrent first opens (inside the creating transaction)."""

    @abc.abstractmethod
    def encode_tick(self, tick: int) -> Any:
        """A tick as stored: order and value survive (ticks are unsigned 64-bit)."""

    @abc.abstractmethod
    def _forget_connection(self) -> None:
        """In a child after ``fork()``: drop the parent's connection without
        closing or using it; the next call opens the child's own."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection (the next call opens a new one)."""

    # -- shared ------------------------------------------------------------------

    def run(self, work: Callable[[Cursor], T], *, write: bool, what: str) -> T:
        """``work(cursor)`` in one transaction, retried on transient conflicts
        (then `StorageError` naming the database and the code)."""
        with self.lock:
            if write and self.read_only:
                raise StorageError(f"{what} in {self.description}: opened read-only")
            if self.open_transaction is not None:
                raise StorageError(
                    f"{what} in {self.description}: the backend's connection is inside an "
                    "open transaction() of this thread; use that connection until it ends"
                )
            if not self._schema_ready:
                self._ensure_schema()
            hook = self.before_commit
            if write and hook is not None:
                return self._retrying(_then(work, hook, what), write=True, what=what)
            return self._retrying(work, write=write, what=what)

    def _retrying(self, work: Callable[[Cursor], T], *, write: bool, what: str) -> T:
        attempt = 1
        while True:
            try:
                return self._attempt(work, write=write, what=what)
            except Retryable as exc:
                if attempt >= self.retries:
                    raise StorageError(
                        f"{what} in {self.description}: {exc.message}, still after "
                        f"{attempt} attempts ({exc.code})"
                    ) from exc
            time.sleep(min(0.2, 0.005 * 2**attempt) * random.uniform(0.5, 1.5))
            attempt += 1

    def _ensure_schema(self) -> None:
        version = self._retrying(self._read_version, write=False, what="read the schema version")
        if version is None and self.read_only:
            raise StorageError(
                f"{self.description} holds no durability tables "
                "(opened read-only: nothing was created)"
            )
        if version is None:
            version = self._retrying(
                self._create_schema, write=True, what="create the durability tables"
            )
        if version != SQL_SCHEMA_VERSION:
            newer = isinstance(version, int) and version > SQL_SCHEMA_VERSION
            raise SchemaVersionError(
                f"table {SCHEMA_TABLE} holds schema version {version!r}, "
                + (
                    f"newer than this toolkit reads ({SQL_SCHEMA_VERSION}); upgrade durability "
                    "(the database was left unchanged)"
                    if newer
                    else f"not one this toolkit reads ({SQL_SCHEMA_VERSION})"
                ),
                path=self.description,
            )
        self._schema_ready = True

    def _read_version(self, cursor: Cursor) -> object:
        if not self._schema_exists(cursor):
            return None
        rows = cursor.fetch(f"SELECT version FROM {SCHEMA_TABLE} WHERE id = 1")
        if not rows:
            raise SchemaVersionError(
                f"table {SCHEMA_TABLE} holds no version row", path=self.description
            )
        return rows[0][0]

    def _create_schema(self, cursor: Cursor) -> object:
        self._lock_schema(cursor)
        version = self._read_version(cursor)  # another process may have won
        if version is not None:
            return version
        for statement in self._ddl():
            cursor.execute(statement)
        cursor.execute(
            f"INSERT INTO {SCHEMA_TABLE} (id, version) VALUES (1, ?)", (SQL_SCHEMA_VERSION,)
        )
        return SQL_SCHEMA_VERSION

    def _after_fork(self) -> None:
        self.lock = threading.RLock()
        self.open_transaction = None
        self._forget_connection()


def _then(
    work: Callable[[Cursor], T], hook: Callable[[str, Cursor], None], what: str
) -> Callable[[Cursor], T]:
    def both(cursor: Cursor) -> T:
        result = work(cursor)
        hook(what, cursor)
        return result

    return both


_LIVE: weakref.WeakSet[Database] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for database in list(_LIVE):
        database._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class SqlBackend:
    """What a SQL WAL and a SQL cache share: their `Database`, their `name`
    within it, closing, and a ``repr`` naming both (never a password)."""

    #: What the backend is, in messages ("WAL", "cache").
    kind: ClassVar[str] = "backend"

    def __init__(self, database: Database, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be non-empty text, got {name!r}")
        self._db = database
        self._name = name

    @property
    def name(self) -> str:
        """The name within the database (several may share one database)."""
        return self._name

    @property
    def database(self) -> str:
        """The database, as named in messages (never with its password)."""
        return self._db.description

    @property
    def read_only(self) -> bool:
        """Whether the backend was opened with ``read_only=True``: it creates no
        table, writes raise `StorageError`, and its connection only reads."""
        return self._db.read_only

    def catalog(self) -> dict[str, tuple[str, ...]]:
        """The names of the WALs and caches this backend's database holds (those
        written at least once), sorted: ``{"wal": (...), "cache": (...)}``.
        One read; `StorageError` as for any call."""

        def work(cursor: Cursor) -> dict[str, tuple[str, ...]]:
            wals = cursor.fetch(f"SELECT wal FROM {WAL_HEADS}")
            caches = cursor.fetch(f"SELECT cache FROM {CACHE_HEADS}")
            return {
                "wal": tuple(sorted(row[0] for row in wals)),
                "cache": tuple(sorted(row[0] for row in caches)),
            }

        return self._db.run(work, write=False, what="list the WALs and caches")

    def close(self) -> None:
        """Release the connection; a later call opens a new one."""
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._db.description!r}, name={self._name!r})"


# -- the row codec ------------------------------------------------------------------


def encode_item(item: object) -> bytes:
    """The CBOR of one WAL or cache entry, as in a v1 artifact's ``entries``."""
    return dumps(to_plain(item))


def _decode_plain(data: object) -> Any:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"the entry column holds {type(data).__name__}, not bytes")
    raw = bytes(data)
    try:
        plain, end = decode_item(raw, max_depth=MAX_DEPTH - ENTRY_DEPTH)
    except DecodeError as exc:
        raise DecodeError(exc.reason) from exc
    if end != len(raw):
        raise DecodeError(f"{len(raw) - end} bytes after the entry")
    return plain


def decode_wal_entry(data: object) -> Any:
    """The WAL entry stored as `data`; `DecodeError` (unlocated) otherwise."""
    artifact = from_plain({"entries": [_decode_plain(data)]}, AgreementWalArtifact, where="entry")
    return artifact.entries[0]


def decode_cache_entry(data: object) -> Any:
    """The cache entry stored as `data`; `DecodeError` (unlocated) otherwise."""
    plain = _decode_plain(data)
    return from_plain({"entries": [plain]}, EvidenceOutcomeCacheArtifact, where="entry").entries[0]
