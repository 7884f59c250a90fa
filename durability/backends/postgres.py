"""PostgreSQL backends (psycopg 3, imported on first use; ``pip install
'durability[postgres]'``): `PostgresAgreementWal` and
`PostgresEvidenceOutcomeCache` (API.md §10).

* The URL (or conninfo string) goes to libpq as it is, so every libpq
  parameter works: ``?options=-csearch_path%3Dmyschema`` picks the schema,
  ``host1:5432,host2:5432/db?target_session_attrs=read-write`` follows a
  failover. Messages and ``repr`` name the database without its password.
* An instance holds at most one connection: opened on first use, released by
  `close`, forgotten (not closed: the parent still uses it) in a child after
  ``fork()``. A call that loses its connection raises `StorageError`; the next
  call opens a new one.
* Write transactions run ``BEGIN ISOLATION LEVEL READ COMMITTED`` (whatever the
  server's default) with ``SET LOCAL synchronous_commit = on``, and lock the
  WAL's (or cache's) head row with ``SELECT ... FOR UPDATE``. Serialization
  failures (``40001``) and deadlocks (``40P01``) are retried a bounded number
  of times, then raise `StorageError` with the SQLSTATE. A connection lost
  during ``COMMIT`` raises `StorageError` saying the outcome is unknown, and
  is not retried. No psycopg exception escapes.
* Opened with ``read_only=True``, every call is ``BEGIN ISOLATION LEVEL
  REPEATABLE READ, READ ONLY``, ``SELECT``s and ``COMMIT``: no table is
  created (a schema without them raises `StorageError`) and writes raise
  `StorageError` without reaching the server; ``SELECT`` is the only
  privilege needed.
* Ticks are stored as ``NUMERIC(20, 0)`` (0 to 2**64 - 1): ``BIGINT`` is
  signed, and a numeric keeps value and order readable in plain SQL.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from ..errors import DurabilityError, StorageError
from .sql import Cursor, Database, Retryable, redact, schema_ddl
from .sqlcache import SqlEvidenceOutcomeCache
from .sqlwal import SqlAgreementWal

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresAgreementWal", "PostgresEvidenceOutcomeCache", "import_psycopg"]

T = TypeVar("T")

#: SQLSTATEs worth another try, and what they mean.
RETRYABLE = {"40001": "serialization failure", "40P01": "deadlock detected"}
_SCHEMA_LOCK = 0x6475726162696C74  # pg_advisory_xact_lock key: concurrent first opens
_BEGIN_WRITE = "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE; SET LOCAL synchronous_commit = on"
_BEGIN_READ_ONLY = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
_URL_FORM = "postgresql://[user[:password]@]host[:port][,host2[:port2]...]/dbname[?param=value...]"


def import_psycopg() -> Any:
    """The `psycopg` module; `StorageError` naming the extra when it is missing."""
    try:
        import psycopg
    except ImportError as exc:
        raise StorageError(
            "the PostgreSQL backends need psycopg 3: pip install 'durability[postgres]'"
        ) from exc
    return psycopg


@lru_cache(maxsize=64)
def _placeholders(sql: str) -> str:
    return sql.replace("?", "%s")


class _Cursor:
    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._cursor.execute(_placeholders(sql), params)
        return self._cursor.fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cursor.execute(_placeholders(sql), params)

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cursor.executemany(_placeholders(sql), rows)


def _describe(params: Mapping[str, str]) -> str:
    """``postgresql://user@host:port,.../dbname`` from parsed conninfo (no password)."""
    hosts = (params.get("host") or params.get("hostaddr") or "localhost").split(",")
    ports = (params.get("port") or "").split(",")
    pairs = []
    for i, host in enumerate(hosts):
        port = ports[i] if i < len(ports) else ports[0] if len(ports) == 1 else ""
        shown = quote(host, safe="") if host.startswith("/") else host
        pairs.append(f"{shown}:{port}" if port else shown)
    user = params.get("user")
    return f"postgresql://{f'{user}@' if user else ''}{','.join(pairs)}/{params.get('dbname', '')}"


class PostgresDatabase(Database):
    """One psycopg connection to the database `conninfo` names (private: the
    backends below own one each)."""

    for_update = " FOR UPDATE"

    def __init__(
        self,
        conninfo: str,
        *,
        retries: int,
        options: Mapping[str, Any],
        read_only: bool = False,
    ) -> None:
        pg = import_psycopg()
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        if not isinstance(conninfo, str):
            raise TypeError(f"conninfo must be a str, got {type(conninfo).__name__}")
        try:
            full = make_conninfo(conninfo, **options)
            params = {key: str(value) for key, value in conninfo_to_dict(full).items()}
        except pg.Error as exc:
            secrets = [str(v) for k, v in options.items() if "password" in k]
            raise DurabilityError(
                f"not a usable PostgreSQL URL {redact(conninfo, secrets)!r} "
                f"({redact(str(exc), secrets)}); accepted: {_URL_FORM}"
            ) from None  # the driver's message may quote the string, password included
        self._secrets = [params[k] for k in ("password", "sslpassword") if params.get(k)]
        super().__init__(_describe(params), retries, read_only=read_only)
        self._conninfo = full
        self._connection: psycopg.Connection[Any] | None = None
        self._pid = 0

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.description!r})"

    def encode_tick(self, tick: int) -> Decimal:
        """A ``NUMERIC(20, 0)`` value (``BIGINT`` is signed)."""
        return Decimal(tick)

    def _ddl(self) -> list[str]:
        tick = "NUMERIC(20, 0) NOT NULL CHECK (tick >= 0 AND tick <= 18446744073709551615)"
        return schema_ddl(bigint="BIGINT", blob="BYTEA", tick=tick)

    def _table_exists(self, cursor: Cursor, table: str) -> bool:
        # A catalog query, not to_regclass(): it reads with the statement's
        # snapshot, so after waiting for the schema lock it sees the tables
        # another first open just committed (to_regclass may answer from a
        # stale cache). The tables are created in current_schema().
        query = (
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.relname = ? AND n.nspname = current_schema())"
        )
        (found,) = cursor.fetch(query, (table,))[0]
        return bool(found)

    def contains_sql(self, column: str) -> str:
        return f"position(?::bytea in {column}) > 0"

    def _open(self, what: str) -> _Open:
        pg = import_psycopg()
        connection = self._connect(what)
        cursor = connection.cursor()
        try:
            cursor.execute(_BEGIN_WRITE)
        except pg.Error as exc:
            cursor.close()
            raise self._failed(connection, exc, what, "begin") from exc
        return _Open(self, connection, cursor, what)

    def _lock_schema(self, cursor: Cursor) -> None:
        cursor.fetch("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))

    def _scrub(self, exc: BaseException) -> str:
        """The driver's message on one line (its first: the statement quoted
        after it adds nothing), without passwords."""
        lines = str(exc).strip().splitlines()
        return redact(lines[0] if lines else type(exc).__name__, self._secrets)

    def _connect(self, what: str) -> psycopg.Connection[Any]:
        if self._connection is not None and self._pid != os.getpid():
            self._forget_connection()
        if self._connection is not None and self._connection.closed:
            self._connection = None
        if self._connection is None:
            pg = import_psycopg()
            try:
                self._connection = pg.connect(self._conninfo, autocommit=True)
            except pg.Error as exc:
                raise StorageError(
                    f"{what}: cannot connect to {self.description}: {self._scrub(exc)}"
                ) from exc
            self._pid = os.getpid()
        return self._connection

    def _attempt(self, work: Callable[[Cursor], T], *, write: bool, what: str) -> T:
        pg = import_psycopg()
        connection = self._connect(what)
        phase = "begin"
        begin = _BEGIN_WRITE if write else _BEGIN_READ_ONLY if self.read_only else None
        try:
            with connection.cursor() as cursor:
                if begin:
                    cursor.execute(begin)
                phase = "work"
                result = work(_Cursor(cursor))
                if begin:
                    phase = "commit"
                    cursor.execute("COMMIT")
            return result
        except pg.Error as exc:
            raise self._failed(connection, exc, what, phase) from exc
        except BaseException:
            self._roll_back(connection)
            raise

    def _failed(self, connection: Any, exc: Any, what: str, phase: str) -> Exception:
        code = getattr(exc, "sqlstate", None)
        message = self._scrub(exc)
        where = f"{what} in {self.description}"
        if connection.closed or connection.broken:
            self._drop()
            if phase == "commit":
                return StorageError(
                    f"{where}: the connection was lost during COMMIT, so the outcome is "
                    f"unknown (it may or may not have committed; not retried): {message}"
                )
            return StorageError(
                f"{where}: the connection was lost (SQLSTATE {code or 'none'}): {message}; "
                "the next call reconnects"
            )
        self._roll_back(connection)
        if code in RETRYABLE:
            return Retryable(f"SQLSTATE {code}", RETRYABLE[code])
        return StorageError(f"{where}: {message} (SQLSTATE {code or 'none'})")

    def _roll_back(self, connection: Any) -> None:
        pg = import_psycopg()
        if connection.closed or connection.broken:
            self._drop()
            return
        if connection.info.transaction_status == pg.pq.TransactionStatus.IDLE:
            return
        try:
            connection.execute("ROLLBACK")
        except pg.Error:
            self._drop()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    def _forget_connection(self) -> None:
        # Only dropped: psycopg finishes a connection only in the process that
        # opened it, so this copy never sends the server a Terminate on the
        # parent's socket (tests/backends/test_postgres.py holds it to that).
        self._connection = None

    def close(self) -> None:
        """Close the connection (a parent's, in a forked child, is only forgotten)."""
        with self.lock:
            if self._pid != os.getpid():
                self._forget_connection()
            self._drop()


class _Open:
    """A write transaction left open (see `OpenTransaction`)."""

    def __init__(self, db: PostgresDatabase, connection: Any, cursor: Any, what: str) -> None:
        self._db, self.connection, self._cursor, self._what = db, connection, cursor, what

    def run(self, work: Callable[[Cursor], T], *, phase: str = "work") -> T:
        pg = import_psycopg()
        try:
            return work(_Cursor(self._cursor))
        except pg.Error as exc:
            error = self._db._failed(self.connection, exc, self._what, phase)
            self._cursor.close()
            if isinstance(error, Retryable):  # too late to retry: the caller's work is lost
                error = StorageError(f"{self._what} in {self._db.description}: {error}")
            raise error from exc
        except BaseException:
            self.roll_back()
            raise

    def commit(self) -> None:
        self.run(lambda cursor: cursor.execute("COMMIT"), phase="commit")
        self._cursor.close()

    def roll_back(self) -> None:
        self._db._roll_back(self.connection)
        with contextlib.suppress(Exception):
            self._cursor.close()


class PostgresAgreementWal(SqlAgreementWal):
    """An agreement WAL in the PostgreSQL database `conninfo` names (a
    ``postgresql://`` URL or a libpq ``key=value`` string), named `name`
    within it. Tables are created on first use (that needs ``CREATE`` on the
    schema); `retries` bounds the tries of a call; `read_only` only reads (see
    the module docs); any other keyword is a libpq connection parameter
    (``password=``, ``sslmode=``, ``connect_timeout=``...).

    Keeps the whole WAL contract (API.md §3, §6), and adds sequences
    (`last_sequence`, ``expected_sequence=``, `poll`), `append_planned` (a
    ``wal_sync`` in one transaction) and `prune_through`. See the module docs
    for connections, transactions and errors. Raises `StorageError` naming the
    ``postgres`` extra when psycopg is missing, `DurabilityError` for a URL
    libpq cannot parse.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        name: str = "default",
        retries: int = 5,
        read_only: bool = False,
        **connect: Any,
    ) -> None:
        database = PostgresDatabase(conninfo, retries=retries, options=connect, read_only=read_only)
        super().__init__(database, name)


class PostgresEvidenceOutcomeCache(SqlEvidenceOutcomeCache):
    """An evidence outcome cache in the PostgreSQL database `conninfo` names,
    named `name` within it; options as for `PostgresAgreementWal`. Keeps the
    whole cache contract (API.md §4, §6), ``put_if_absent`` included (the
    first durable binding wins across processes and hosts); `get` is one
    indexed read.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        name: str = "default",
        retries: int = 5,
        read_only: bool = False,
        **connect: Any,
    ) -> None:
        database = PostgresDatabase(conninfo, retries=retries, options=connect, read_only=read_only)
        super().__init__(database, name)
