"""The SQLite backends: the shipped contract unchanged, the SQL cases both
dialects share (`sql_cases.py`), then SQLite's own rules: WAL journal mode
and ``synchronous``, an owner-only file, a locked database retried a bounded
number of times, no `sqlite3` exception escaping, fork and threads."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from durability import (
    SqliteAgreementWal,
    SqliteEvidenceOutcomeCache,
    StorageError,
)
from durability.testing import AgreementWalContract, EvidenceOutcomeCacheContract
from tests.backends.sql_cases import Raw, SqlCacheCases, SqlWalCases
from tests.helpers import L, binding, esc, gate


class SqliteRaw(Raw):
    def __init__(self, path: Path) -> None:
        self.path = path

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as conn:
            return conn.execute(sql, params).fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        conn = sqlite3.connect(self.path)
        try:
            with conn:
                conn.execute(sql, params)
        finally:
            conn.close()


def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


class TestSqliteWal(SqlWalCases, AgreementWalContract):
    cache_type = SqliteEvidenceOutcomeCache

    def make_wal(self, tmp_path: Path) -> SqliteAgreementWal:
        return SqliteAgreementWal(db(tmp_path))

    def reopen(self, backend: Any, tmp_path: Path) -> SqliteAgreementWal:
        return SqliteAgreementWal(db(tmp_path))

    def raw(self, tmp_path: Path) -> Raw:
        return SqliteRaw(db(tmp_path))

    def constructor_args(self, tmp_path: Path) -> tuple[Any, ...]:
        return (db(tmp_path),)


class TestSqliteCache(SqlCacheCases, EvidenceOutcomeCacheContract):
    def make_cache(self, tmp_path: Path) -> SqliteEvidenceOutcomeCache:
        return SqliteEvidenceOutcomeCache(db(tmp_path))

    def reopen(self, backend: Any, tmp_path: Path) -> SqliteEvidenceOutcomeCache:
        return SqliteEvidenceOutcomeCache(db(tmp_path))

    def raw(self, tmp_path: Path) -> Raw:
        return SqliteRaw(db(tmp_path))


# -- SQLite's own rules ------------------------------------------------------------


def test_database_is_owner_only_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    wal = SqliteAgreementWal(db(tmp_path))
    wal.append(gate("a", L.NONE, 1))
    assert stat.S_IMODE(db(tmp_path).stat().st_mode) == 0o600
    assert SqliteRaw(db(tmp_path)).fetch("PRAGMA journal_mode") == [("wal",)]
    connection = wal._db._connection
    assert connection.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    other = SqliteAgreementWal(db(tmp_path), synchronous="normal")
    other.load()
    assert other._db._connection.execute("PRAGMA synchronous").fetchone() == (1,)


def test_relative_path_is_fixed_when_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    wal = SqliteAgreementWal("state.db")
    monkeypatch.chdir("/")
    wal.append(gate("a", L.NONE, 1))
    assert wal.path == str(db(tmp_path)) and db(tmp_path).exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": ":memory:"}, "in-memory"),
        ({"path": ""}, "in-memory"),
        ({"synchronous": "SOMETIMES"}, "synchronous must be one of"),
        ({"busy_timeout": -1}, "busy_timeout"),
        ({"retries": 0}, "retries"),
        ({"name": ""}, "name"),
    ],
)
def test_constructor_refuses_bad_options(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    arguments = {"path": db(tmp_path), **kwargs}
    with pytest.raises(ValueError, match=message):
        SqliteAgreementWal(**arguments)


def test_locked_database_is_retried_then_a_storage_error(tmp_path: Path) -> None:
    wal = SqliteAgreementWal(db(tmp_path), busy_timeout=0.05, retries=3)
    wal.append(gate("a", L.NONE, 1))
    attempts: list[bool] = []
    original = wal._db._attempt

    def counting(work: Any, *, write: bool, what: str) -> Any:
        attempts.append(write)
        return original(work, write=write, what=what)

    wal._db._attempt = counting  # type: ignore[method-assign]
    holder = sqlite3.connect(db(tmp_path), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageError) as caught:
            wal.append(gate("b", L.NONE, 2))
        assert wal.load().entries == (gate("a", L.NONE, 1),)  # readers are not blocked
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    message = str(caught.value)
    assert "SQLITE_BUSY" in message and str(db(tmp_path)) in message
    assert "still after 3 attempts" in message
    assert attempts[:3] == [True, True, True]
    assert isinstance(caught.value.__cause__, Exception)
    assert wal.append(gate("b", L.NONE, 2)) == 2  # and it works once the lock is gone


def test_lock_released_within_the_retries_is_waited_for(tmp_path: Path) -> None:
    wal = SqliteAgreementWal(db(tmp_path), busy_timeout=0.05, retries=50)
    wal.load()
    holder = sqlite3.connect(db(tmp_path), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    releaser = threading.Timer(0.3, lambda: holder.execute("ROLLBACK"))
    releaser.start()
    try:
        assert wal.append(gate("a", L.NONE, 1)) == 1
    finally:
        releaser.join()
        holder.close()


def test_no_sqlite3_exception_escapes(tmp_path: Path) -> None:
    missing = SqliteAgreementWal(tmp_path / "no" / "such" / "dir.db")
    with pytest.raises(StorageError, match=r"no/such/dir\.db"):
        missing.load()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database, not at all" * 100)
    for backend in (SqliteAgreementWal(junk), SqliteEvidenceOutcomeCache(junk)):
        with pytest.raises(StorageError, match=r"junk\.db") as caught:
            backend.load()
        assert not isinstance(caught.value, sqlite3.Error)
        assert isinstance(caught.value.__cause__, sqlite3.Error)


def test_threads_share_one_handle(tmp_path: Path) -> None:
    wal = SqliteAgreementWal(db(tmp_path))
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            for i in range(20):
                wal.append(gate(f"t{index}", L.NONE, i))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and wal.last_sequence == 80
    assert SqliteAgreementWal(db(tmp_path)).load() == wal.load()


def test_a_forked_child_uses_its_own_connection(tmp_path: Path) -> None:
    wal = SqliteAgreementWal(db(tmp_path))
    wal.append(esc("op", L.NONE, L.PROVISIONAL, 1))
    pid = os.fork()
    if pid == 0:  # the child: the inherited handle works, on a connection of its own
        code = 1
        try:
            wal.append(esc("op", L.PROVISIONAL, L.SOFT_SAFE, 2))
            code = 0 if wal._db._connection is not None else 2
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [e.tick for e in wal.load().entries] == [1, 2]
    wal.append(esc("op", L.SOFT_SAFE, L.FINALIZED, 3))


def test_close_releases_and_the_next_call_reopens(tmp_path: Path) -> None:
    with SqliteAgreementWal(db(tmp_path)) as wal:
        wal.append(gate("a", L.NONE, 1))
    assert wal._db._connection is None
    assert wal.last_sequence == 1
    wal.close()
    cache = SqliteEvidenceOutcomeCache(db(tmp_path))
    cache.put(binding("e"))
    cache.close()
    assert cache.get("e") == binding("e")
