"""The PostgreSQL backends against a real server (`pg_server.py`: a private
cluster started for the session, or ``DURABILITY_PG_URL``; under CI these
tests never skip). The shipped contract unchanged, the SQL cases both
dialects share, then PostgreSQL's own rules: READ COMMITTED and
``synchronous_commit = on`` whatever the server's defaults, several
connections as if from several hosts, retries of serialization failures and
deadlocks, lost connections (during COMMIT: outcome unknown), one connection
per instance (reopened after fork), multi-host URLs, first-use permissions,
and no password in any message or repr. Each test has a schema of its own."""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from durability import (
    AgreementWalArtifact,
    DecodeError,
    DurabilityError,
    EscalationOrderError,
    PostgresAgreementWal,
    PostgresEvidenceOutcomeCache,
    StorageError,
)
from durability.backends import postgres as pg_backend
from durability.testing import AgreementWalContract, EvidenceOutcomeCacheContract
from tests.backends import pg_server
from tests.backends.sql_cases import Raw, SqlCacheCases, SqlWalCases
from tests.helpers import L, binding, esc, gate

psycopg = pytest.importorskip("psycopg") if not os.environ.get("CI") else __import__("psycopg")


class PgRaw(Raw):
    def __init__(self, url: str) -> None:
        self.url = url

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with pg_server.admin_connect(self.url) as conn:
            return conn.execute(sql.replace("?", "%s"), params).fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with pg_server.admin_connect(self.url) as conn:
            conn.execute(sql.replace("?", "%s"), params)


def url_for(tmp_path: Path) -> str:
    return pg_server.fresh_schema_url(str(tmp_path))


@pytest.fixture(autouse=True)
def _own_schema(tmp_path: Path) -> Iterator[None]:
    pg_server.require_server()
    yield
    gc.collect()  # handles the test dropped close their connections
    with contextlib.suppress(Exception):
        pg_server.drop_schema(str(tmp_path))


class TestPostgresWal(SqlWalCases, AgreementWalContract):
    cache_type = PostgresEvidenceOutcomeCache

    def make_wal(self, tmp_path: Path) -> PostgresAgreementWal:
        return PostgresAgreementWal(url_for(tmp_path))

    def reopen(self, backend: Any, tmp_path: Path) -> PostgresAgreementWal:
        return PostgresAgreementWal(url_for(tmp_path))

    def raw(self, tmp_path: Path) -> Raw:
        return PgRaw(url_for(tmp_path))

    def constructor_args(self, tmp_path: Path) -> tuple[Any, ...]:
        return (url_for(tmp_path),)


class TestPostgresCache(SqlCacheCases, EvidenceOutcomeCacheContract):
    def make_cache(self, tmp_path: Path) -> PostgresEvidenceOutcomeCache:
        return PostgresEvidenceOutcomeCache(url_for(tmp_path))

    def reopen(self, backend: Any, tmp_path: Path) -> PostgresEvidenceOutcomeCache:
        return PostgresEvidenceOutcomeCache(url_for(tmp_path))

    def raw(self, tmp_path: Path) -> Raw:
        return PgRaw(url_for(tmp_path))


# -- PostgreSQL's own rules ---------------------------------------------------------


def backend_pid(backend: Any) -> int:
    connection = backend._db._connection
    assert connection is not None
    pid: int = connection.info.backend_pid
    return pid


def terminate(pid: int) -> None:
    with pg_server.admin_connect() as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    assert pg_server.wait_until(lambda: not connections_of(pid=pid))


def connections_of(*, pid: int | None = None, app: str | None = None) -> list[tuple[Any, ...]]:
    with pg_server.admin_connect() as conn:
        return conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE pid = %s OR application_name = %s",
            (pid, app),
        ).fetchall()


def test_write_transactions_are_read_committed_and_synchronous(tmp_path: Path) -> None:
    # the server defaults are SERIALIZABLE (set for this session) and, in the
    # private test cluster, synchronous_commit=off: the backend sets its own
    url = url_for(tmp_path).replace(
        "options=", "options=-cdefault_transaction_isolation%3Dserializable%20"
    )
    wal = PostgresAgreementWal(url)
    seen: list[tuple[Any, ...]] = []
    original = pg_backend._Cursor.execute_many

    def spy(cursor: Any, sql: str, rows: Any) -> None:
        seen.append(
            cursor.fetch(
                "SELECT current_setting('transaction_isolation'), "
                "current_setting('synchronous_commit'), "
                "current_setting('default_transaction_isolation')"
            )[0]
        )
        original(cursor, sql, rows)

    pg_backend._Cursor.execute_many = spy  # type: ignore[method-assign]
    try:
        wal.append(gate("a", L.NONE, 1))
    finally:
        pg_backend._Cursor.execute_many = original  # type: ignore[method-assign]
    assert seen == [("read committed", "on", "serializable")]


def test_connections_as_if_from_several_hosts_validate_exactly(tmp_path: Path) -> None:
    """Threads, each with its own instance (its own connection, as another host
    would have), climb one operation's escalations and append their own
    entries at once: nothing is lost, nothing out of order is accepted."""
    url = url_for(tmp_path)
    count, rounds = 4, 15
    accepted: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)
    levels = list(L)

    def host(index: int) -> None:
        wal = PostgresAgreementWal(url)
        try:
            barrier.wait(30)
            for i in range(rounds):
                wal.append_batch([gate(f"h{index}", L.NONE, i, f"{i}/{j}") for j in range(2)])
                prev, new = levels[i % 3], levels[i % 3 + 1]
                with contextlib.suppress(EscalationOrderError):
                    wal.append(esc("shared", prev, new, i))
                    accepted.append(index)
        except BaseException as exc:
            errors.append(exc)
        finally:
            wal.close()

    threads = [threading.Thread(target=host, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    entries = PostgresAgreementWal(url).load().entries
    AgreementWalArtifact(entries=entries).validate_monotonic_escalations()
    assert len(entries) == count * rounds * 2 + len(accepted)
    for index in range(count):
        mine = [e.downstream_coroutine_id for e in entries if e.operation_id == f"h{index}"]
        assert mine == [f"{i}/{j}" for i in range(rounds) for j in range(2)]


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
def test_serialization_failures_and_deadlocks_are_retried_a_bounded_number_of_times(
    tmp_path: Path, sqlstate: str
) -> None:
    error = psycopg.errors.lookup(sqlstate)
    wal = PostgresAgreementWal(url_for(tmp_path), retries=3)
    failures = {"left": 2}
    original = pg_backend._Cursor.execute_many

    def flaky(cursor: Any, sql: str, rows: Any) -> None:
        original(cursor, sql, rows)  # written, then refused: the rollback must undo it
        if failures["left"]:
            failures["left"] -= 1
            raise error("injected")

    pg_backend._Cursor.execute_many = flaky  # type: ignore[method-assign]
    try:
        assert wal.append(gate("a", L.NONE, 1)) == 1  # third try succeeds
        failures["left"] = 3
        with pytest.raises(StorageError) as caught:
            wal.append(gate("b", L.NONE, 2))
    finally:
        pg_backend._Cursor.execute_many = original  # type: ignore[method-assign]
    message = str(caught.value)
    assert f"SQLSTATE {sqlstate}" in message and "still after 3 attempts" in message
    assert wal.database in message
    assert PostgresAgreementWal(url_for(tmp_path)).load().entries == (gate("a", L.NONE, 1),)


def test_a_lost_connection_fails_one_call_and_the_next_reconnects(tmp_path: Path) -> None:
    wal = PostgresAgreementWal(url_for(tmp_path))
    wal.append(gate("a", L.NONE, 1))
    first = backend_pid(wal)
    terminate(first)
    with pytest.raises(StorageError, match="connection was lost") as caught:
        wal.append(gate("b", L.NONE, 2))
    assert not isinstance(caught.value, psycopg.Error)
    assert wal.append(gate("b", L.NONE, 2)) == 2
    assert backend_pid(wal) != first


def test_connection_lost_during_commit_is_outcome_unknown_and_not_retried(tmp_path: Path) -> None:
    wal = PostgresAgreementWal(url_for(tmp_path), retries=5)
    wal.append(gate("a", L.NONE, 1))
    commits: list[str] = []
    original = psycopg.Cursor.execute

    def dying(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if query == "COMMIT" and cursor.connection is wal._db._connection:
            commits.append(query)
            terminate(cursor.connection.info.backend_pid)
        return original(cursor, query, *args, **kwargs)

    psycopg.Cursor.execute = dying
    try:
        with pytest.raises(StorageError, match="lost during COMMIT, so the outcome is unknown"):
            wal.append(gate("b", L.NONE, 2))
    finally:
        psycopg.Cursor.execute = original
    assert commits == ["COMMIT"]  # one try only
    assert wal.last_sequence == 1  # the next call reconnects and reads what is there


def test_an_instance_holds_one_connection_and_close_releases_it(tmp_path: Path) -> None:
    app = f"durability-{os.getpid()}-{abs(hash(str(tmp_path)))}"
    wal = PostgresAgreementWal(url_for(tmp_path), application_name=app)
    assert connections_of(app=app) == []  # opened on first use
    for i in range(5):
        wal.append(gate("a", L.NONE, i))
        wal.load()
    assert len(connections_of(app=app)) == 1
    terminate(backend_pid(wal))
    with pytest.raises(StorageError):
        wal.load()
    wal.load()
    assert len(connections_of(app=app)) == 1
    wal.close()
    assert pg_server.wait_until(lambda: connections_of(app=app) == [])


def test_a_forked_child_opens_its_own_and_leaves_the_parents_alone(tmp_path: Path) -> None:
    wal = PostgresAgreementWal(url_for(tmp_path))
    wal.append(gate("a", L.NONE, 1))
    parent = backend_pid(wal)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            wal.append(gate("b", L.NONE, 2))
            code = 0 if backend_pid(wal) != parent else 2
            wal.close()
            gc.collect()  # the parent's copy is finalised: nothing may reach the server
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert wal.append(gate("c", L.NONE, 3)) == 3
    assert backend_pid(wal) == parent  # the parent's connection survived the child


def test_a_multi_host_url_finds_the_server_that_answers(tmp_path: Path) -> None:
    url = url_for(tmp_path)
    dead = pg_server._free_port()
    hosts = f"127.0.0.1:{dead},{urlsplit(url).netloc.rpartition('@')[2]}"
    host_url = pg_server.with_netloc(url, hosts=hosts)
    host_url += "&target_session_attrs=read-write&connect_timeout=5"
    wal = PostgresAgreementWal(host_url)
    assert wal.append(gate("a", L.NONE, 1)) == 1
    assert f"127.0.0.1:{dead}," in wal.database


def test_first_use_needs_create_on_the_schema_later_use_does_not(tmp_path: Path) -> None:
    if not pg_server.is_private():
        pytest.skip("creates a login role without a password: only on the private test cluster")
    url = url_for(tmp_path)
    schema = pg_server.schema_name(str(tmp_path))
    role = f"r_{schema}"
    with pg_server.admin_connect() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
    try:
        as_role = pg_server.with_netloc(url, user=role)
        with pytest.raises(StorageError, match=r"create the durability tables.*SQLSTATE 42501"):
            PostgresAgreementWal(as_role).load()
        PostgresAgreementWal(url).load()  # the owner creates them
        with pg_server.admin_connect() as conn:
            conn.execute(
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}"
            )
        wal = PostgresAgreementWal(as_role)
        assert wal.append(gate("a", L.NONE, 1)) == 1
        wal.close()
    finally:
        gc.collect()
        with pg_server.admin_connect() as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def test_no_password_in_any_message_or_repr(tmp_path: Path) -> None:
    url = url_for(tmp_path)
    secret = pg_server.password_of(url) or "s3cr3t-pw"  # the trust-auth cluster ignores it
    url = pg_server.with_netloc(url, password=secret)
    wal = PostgresAgreementWal(url)
    cache = PostgresEvidenceOutcomeCache(url, name="c")
    wal.append(gate("a", L.NONE, 1))
    cache.put(binding("e"))
    texts = [repr(wal), repr(cache), wal.database, repr(wal._db)]
    PgRaw(url).execute("UPDATE durability_wal_entries SET entry = %s", (b"\xff",))
    with pytest.raises(DecodeError) as decode:
        PostgresAgreementWal(url).load()
    texts += [str(decode.value), str(decode.value.path)]
    refused = pg_server.with_netloc(url, hosts=f"127.0.0.1:{pg_server._free_port()}")
    with pytest.raises(StorageError) as connect:
        PostgresAgreementWal(refused).load()
    texts.append(str(connect.value))
    with pytest.raises(DurabilityError) as parse:
        PostgresAgreementWal(url + "&bogus=1")
    texts.append(str(parse.value))
    with pytest.raises(DurabilityError) as keyword:
        PostgresAgreementWal("postgresql://u@h/db", password=secret, bogus_option="1")
    texts.append(str(keyword.value))
    assert "bogus" in texts[-2] and "postgresql://" in texts[-2]
    for text in texts:
        assert secret not in text, text
