"""SQLite backends (standard library `sqlite3`): `SqliteAgreementWal` and
`SqliteEvidenceOutcomeCache` (API.md §10).

The database file runs in WAL journal mode with ``synchronous=FULL`` by
default (nothing is acknowledged before it is on disk); writers take the
database's write lock with ``BEGIN IMMEDIATE``; a busy or locked database is
waited for (``busy_timeout``) and retried a bounded number of times, then
raises `StorageError` naming the file and SQLite's error code. No `sqlite3`
exception escapes. Ticks are stored as 20-digit zero-padded decimal text (SQLite
integers are signed 64-bit; text of one width keeps order and value).

A WAL and a cache may share one database file, and several WALs (or caches)
too, told apart by `name`.

Opened with ``read_only=True`` the file is opened through a ``file:...?mode=ro``
URI: it must exist, no table is created and nothing is written (SQLite itself
may add its ``-wal`` and ``-shm`` files beside the database, as it does for
any reader of a WAL-mode database). Where it cannot (a directory the user may
only read) and the database has no ``-wal`` file, the file is read as
immutable, one connection per call: right for a database nobody is writing.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

from ..errors import StorageError
from .sql import Cursor, Database, Retryable, schema_ddl
from .sqlcache import SqlEvidenceOutcomeCache
from .sqlwal import SqlAgreementWal

__all__ = ["SYNCHRONOUS_LEVELS", "SqliteAgreementWal", "SqliteEvidenceOutcomeCache"]

T = TypeVar("T")

#: The ``synchronous`` settings accepted (SQLite's ``PRAGMA synchronous``).
SYNCHRONOUS_LEVELS = ("FULL", "EXTRA", "NORMAL", "OFF")

_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
#: What a ``mode=ro`` open fails with when SQLite cannot create its -shm file.
_CANNOT_SHARE = (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN)
_ORPHANS: list[sqlite3.Connection] = []  # a parent's connections, never touched in a child

PathArg = str | os.PathLike[str]


class _Cursor:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._connection.execute(sql, params).fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._connection.execute(sql, params)

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._connection.executemany(sql, rows)


class SqliteDatabase(Database):
    """One `sqlite3` connection to the database file `path` (private: the
    backends below own one each)."""

    def __init__(
        self,
        path: PathArg,
        *,
        synchronous: str,
        busy_timeout: float,
        retries: int,
        read_only: bool = False,
    ) -> None:
        raw = os.fspath(path)
        if not isinstance(raw, str) or raw in ("", ":memory:") or raw.startswith("file:"):
            raise ValueError(
                f"a SQLite backend needs a database file path, got {raw!r} "
                "(in-memory databases are refused: nothing would persist)"
            )
        level = synchronous.upper() if isinstance(synchronous, str) else synchronous
        if level not in SYNCHRONOUS_LEVELS:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_LEVELS)}")
        if isinstance(busy_timeout, bool) or not isinstance(busy_timeout, int | float):
            raise ValueError(f"busy_timeout must be a number of seconds, got {busy_timeout!r}")
        if not 0 <= busy_timeout < float("inf"):
            raise ValueError(f"busy_timeout must be >= 0 seconds, got {busy_timeout!r}")
        self.path = os.path.abspath(raw)
        self.synchronous = level
        self.busy_timeout = float(busy_timeout)
        super().__init__(self.path, retries, read_only=read_only)
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        self._immutable = False  # read-only, where SQLite cannot share the file

    def encode_tick(self, tick: int) -> str:
        """20-digit zero-padded decimal text: as text, order is numeric order."""
        return f"{tick:020d}"

    def _ddl(self) -> list[str]:
        tick = "TEXT NOT NULL CHECK (length(tick) = 20)"
        return schema_ddl(bigint="INTEGER", blob="BLOB", tick=tick)

    def _table_exists(self, cursor: Cursor, table: str) -> bool:
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return bool(cursor.fetch(query, (table,)))

    def contains_sql(self, column: str) -> str:
        return f"instr({column}, ?) > 0"

    def _open(self, what: str) -> _Open:
        connection: sqlite3.Connection | None = None
        try:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._roll_back(connection)
            raise self._mapped(exc, what) from exc
        except OSError as exc:
            raise StorageError(f"{what} in {self.path}: {exc}") from exc
        return _Open(self, connection, what)

    def _lock_schema(self, cursor: Cursor) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already serialises first opens."""

    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None and self._pid != os.getpid():
            self._forget_connection()
        if self._connection is None and self.read_only:
            self._connection, self._pid = self._connect_read_only(), os.getpid()
        if self._connection is None:
            if not os.path.exists(self.path):
                # created owner-only, as the file backends' logs are (SQLite
                # gives its -wal and -shm files the database file's permissions)
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
            connection = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                (mode,) = connection.execute("PRAGMA journal_mode=WAL").fetchone()
                if str(mode).lower() != "wal":
                    raise StorageError(f"{self.path}: SQLite refused WAL journal mode ({mode})")
                connection.execute(f"PRAGMA synchronous={self.synchronous}")
            except BaseException:
                connection.close()
                raise
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    def _connect_read_only(self) -> sqlite3.Connection:
        """A connection that cannot write: ``mode=ro`` (``immutable=1`` where
        SQLite could not share the file); the file must exist."""
        if not os.path.isfile(self.path):
            raise StorageError(f"no SQLite database file at {self.path} (opened read-only)")
        query = "mode=ro&immutable=1" if self._immutable else "mode=ro"
        return sqlite3.connect(
            f"file:{quote(self.path)}?{query}",
            uri=True,
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )

    def _attempt(self, work: Callable[[Cursor], T], *, write: bool, what: str) -> T:
        try:
            return self._attempt_once(work, write=write, what=what)
        except StorageError as exc:
            cause = exc.__cause__
            code = getattr(cause, "sqlite_errorcode", None)
            if (
                not self.read_only
                or self._immutable
                or code is None
                or code & 0xFF not in _CANNOT_SHARE
                or os.path.exists(f"{self.path}-wal")
            ):
                raise
            self.close()  # SQLite could not share the file: nobody writes it
            self._immutable = True
            return self._attempt_once(work, write=write, what=what)

    def _attempt_once(self, work: Callable[[Cursor], T], *, write: bool, what: str) -> T:
        connection: sqlite3.Connection | None = None
        try:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            result = work(_Cursor(connection))
            connection.execute("COMMIT")
            if self._immutable:  # immutable: a new connection per call sees changes
                self.close()
            return result
        except sqlite3.Error as exc:
            self._roll_back(connection)
            raise self._mapped(exc, what) from exc
        except OSError as exc:
            raise StorageError(f"{what} in {self.path}: {exc}") from exc
        except BaseException:
            self._roll_back(connection)
            raise

    def _mapped(self, exc: sqlite3.Error, what: str) -> Exception:
        code = getattr(exc, "sqlite_errorcode", None)
        name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
        if code is not None and code & 0xFF in _BUSY:
            return Retryable(name, f"the database is busy or locked ({exc})")
        return StorageError(f"{what} in {self.path}: {exc} ({name})")

    def _roll_back(self, connection: sqlite3.Connection | None) -> None:
        if connection is None or not connection.in_transaction:
            return
        try:
            connection.execute("ROLLBACK")
        except sqlite3.Error:
            self.close()  # the next call starts on a new connection

    def _forget_connection(self) -> None:
        if self._connection is not None:
            _ORPHANS.append(self._connection)
        self._connection = None

    def close(self) -> None:
        """Close the connection (not a parent's, in a forked child)."""
        with self.lock:
            connection, self._connection = self._connection, None
            if connection is not None and self._pid == os.getpid():
                with contextlib.suppress(sqlite3.Error):
                    connection.close()


class _Open:
    """A ``BEGIN IMMEDIATE`` transaction left open (see `OpenTransaction`)."""

    def __init__(self, db: SqliteDatabase, connection: sqlite3.Connection, what: str) -> None:
        self._db, self.connection, self._what = db, connection, what

    def run(self, work: Callable[[Cursor], T]) -> T:
        try:
            return work(_Cursor(self.connection))
        except sqlite3.Error as exc:
            self.roll_back()
            raise StorageError(f"{self._what} in {self._db.path}: {exc}") from exc
        except BaseException:
            self.roll_back()
            raise

    def commit(self) -> None:
        self.run(lambda cursor: cursor.execute("COMMIT"))

    def roll_back(self) -> None:
        self._db._roll_back(self.connection)


class SqliteAgreementWal(SqlAgreementWal):
    """An agreement WAL in the SQLite database file `path` (created, owner-only,
    if missing), named `name` within it.

    Keeps the whole WAL contract (API.md §3, §6), and adds sequences
    (`last_sequence`, ``expected_sequence=``, `poll`), `append_planned` (a
    ``wal_sync`` in one transaction) and `prune_through`. `synchronous` is
    SQLite's ``PRAGMA synchronous`` (``FULL``, ``EXTRA``, ``NORMAL`` or
    ``OFF``); `busy_timeout` how many seconds to wait for another writer
    before a try fails; `retries` how many tries a call makes; `read_only`
    opens an existing file without writing anything (see the module docs).

    >>> import tempfile, pathlib
    >>> from durability import VisibilityGateCrossing, AgreementLevel
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "state.db"
    >>> with SqliteAgreementWal(path) as wal:
    ...     wal.append(VisibilityGateCrossing(operation_id="op", downstream_coroutine_id="c",
    ...                                       gate_level=AgreementLevel.NONE, tick=1))
    1
    """

    def __init__(
        self,
        path: PathArg,
        *,
        name: str = "default",
        synchronous: str = "FULL",
        busy_timeout: float = 30.0,
        retries: int = 3,
        read_only: bool = False,
    ) -> None:
        database = SqliteDatabase(
            path,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            retries=retries,
            read_only=read_only,
        )
        super().__init__(database, name)

    @property
    def path(self) -> str:
        """The database file (absolute)."""
        return self.database


class SqliteEvidenceOutcomeCache(SqlEvidenceOutcomeCache):
    """An evidence outcome cache in the SQLite database file `path` (created,
    owner-only, if missing), named `name` within it; options as for
    `SqliteAgreementWal`. Keeps the whole cache contract (API.md §4, §6),
    ``put_if_absent`` included; `get` is one indexed read.
    """

    def __init__(
        self,
        path: PathArg,
        *,
        name: str = "default",
        synchronous: str = "FULL",
        busy_timeout: float = 30.0,
        retries: int = 3,
        read_only: bool = False,
    ) -> None:
        database = SqliteDatabase(
            path,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            retries=retries,
            read_only=read_only,
        )
        super().__init__(database, name)

    @property
    def path(self) -> str:
        """The database file (absolute)."""
        return self.database
