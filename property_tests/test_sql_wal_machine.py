"""The SQL WALs driven beside the in-memory oracle by the shipped state
machine (`durability.testing.wal_state_machine`): appends, batches, rejected
escalations, reads, reopens and second handles. After every step both hold
the same WAL, and a rejected append leaves every row as it was. (A crash
cannot tear a committed transaction, so there is no crash rule.) The
PostgreSQL machine runs against the test server (`tests/backends/pg_server.py`;
it never skips under CI), each run in a schema of its own."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from durability import AgreementWal, PostgresAgreementWal, SqliteAgreementWal
from durability.testing import wal_state_machine
from tests.backends import pg_server

_ROWS = "SELECT * FROM durability_wal_entries ORDER BY wal, sequence"
_HEADS = "SELECT * FROM durability_wal_heads ORDER BY wal"


def sqlite_wal(directory: Path) -> SqliteAgreementWal:
    return SqliteAgreementWal(directory / "state.db")


def sqlite_reopen(wal: AgreementWal, directory: Path) -> SqliteAgreementWal:
    return sqlite_wal(directory)


def sqlite_rows(directory: Path) -> Any:
    with sqlite3.connect(directory / "state.db") as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        if "durability_wal_entries" not in tables:
            return None
        return conn.execute(_ROWS).fetchall(), conn.execute(_HEADS).fetchall()


SqliteWalMachine = wal_state_machine(sqlite_wal, sqlite_reopen, snapshot=sqlite_rows)
SqliteWalMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None
)
TestSqliteWal = SqliteWalMachine.TestCase


def postgres_wal(directory: Path) -> PostgresAgreementWal:
    return PostgresAgreementWal(pg_server.fresh_schema_url(str(directory)))


def postgres_reopen(wal: AgreementWal, directory: Path) -> PostgresAgreementWal:
    return postgres_wal(directory)


def postgres_rows(directory: Path) -> Any:
    with pg_server.admin_connect(pg_server.fresh_schema_url(str(directory))) as conn:
        if conn.execute("SELECT to_regclass('durability_wal_entries')").fetchone() == (None,):
            return None
        return conn.execute(_ROWS).fetchall(), conn.execute(_HEADS).fetchall()


class PostgresWalMachine(
    wal_state_machine(postgres_wal, postgres_reopen, snapshot=postgres_rows)  # type: ignore[misc]
):
    def teardown(self) -> None:
        super().teardown()  # closes its handles
        pg_server.drop_schema(str(self.directory))


PostgresWalMachine.TestCase.settings = settings(
    max_examples=15, stateful_step_count=20, deadline=None
)


class TestPostgresWal(PostgresWalMachine.TestCase):  # type: ignore[misc,valid-type,name-defined]
    @pytest.fixture(autouse=True)
    def _server(self) -> None:
        pg_server.require_server()
