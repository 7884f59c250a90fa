"""`inspect`, `verify`, `export` and `plan` take a §10 URL wherever they take
a log (API.md §9): SQL stores are read without creating or changing anything,
and a database holding a WAL and a cache is told which by `--kind`."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from durability import PersistedDurabilityArtifact, StateDirectory, open_cache, open_wal
from tests.backends import pg_server
from tests.cli_stores import files_under, fill_cache, fill_wal, pg_tables, pg_url, sqlite_url
from tests.helpers import L, esc, ev
from tests.test_cli import make_wal, one_line_error, run
from tests.test_cli_read_only import AS_READER, make_read_only, run_as_reader

__all__ = ["pg_url"]  # the fixture, imported to be used here


def wal_only_db(tmp_path: Path) -> tuple[str, int]:
    url = sqlite_url(tmp_path / "state.db")
    return url, fill_wal(url)


def both_db(tmp_path: Path) -> tuple[str, int, int]:
    url = sqlite_url(tmp_path / "state.db")
    return url, fill_wal(url), fill_cache(url)


# -- SQLite -----------------------------------------------------------------------


def test_inspect_verify_and_export_take_a_sqlite_url(tmp_path: Path) -> None:
    url, entries = wal_only_db(tmp_path)
    report = json.loads(run("inspect", url, "--json").stdout)
    assert report["kind"] == "agreement_wal" and report["backend"] == "sqlite"
    assert report["entries"] == entries and report["last_sequence"] == entries
    assert report["name"] == "default" and report["torn_tail"] is None
    assert "records" not in report and "size" not in report  # no bytes in a SQL store
    assert len(report["operations"]) == 6
    text = run("inspect", url)
    assert text.returncode == 0, text.stderr
    assert f"{entries} entries, sequences 1..{entries}" in text.stdout.splitlines()[0]
    verified = run("verify", url)
    assert verified.returncode == 0, verified.stderr
    assert "every row decoded" in verified.stdout
    assert "escalation order and planner consistency: ok" in verified.stdout
    out = tmp_path / "out.cbor"
    exported = run("export", url, "-o", str(out), "--json")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["entries"] == entries
    with open_wal(url) as wal:
        assert PersistedDurabilityArtifact.from_path(out).into_agreement_wal() == wal.load()


def test_a_file_url_is_the_log_it_names(tmp_path: Path) -> None:
    make_wal(tmp_path / "wal log.log", operations=3)
    url = f"file://{(tmp_path / 'wal%20log.log').resolve()}"
    report = json.loads(run("inspect", url, "--json").stdout)
    assert report["kind"] == "agreement_wal" and report["records"] >= 1
    assert run("verify", url).returncode == 0


def test_read_only_commands_leave_a_sqlite_database_byte_identical(tmp_path: Path) -> None:
    url, _entries, _bindings = both_db(tmp_path)
    database = tmp_path / "state.db"
    before = database.read_bytes()
    commands = [
        ("inspect", url, "--kind", "wal"),
        ("inspect", url, "--kind", "cache", "--json"),
        ("verify", url, "--kind", "wal"),
        ("verify", url, "--kind", "cache", "--strict"),
        ("export", url, "--kind", "cache", "-o", str(tmp_path / "cache.cbor")),
        ("plan", "--store", url, "--json"),
    ]
    for args in commands:
        result = run(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert database.read_bytes() == before, args
    # only SQLite's own -wal and -shm files may appear beside it, as for any reader
    assert {p.name for p in tmp_path.iterdir()} <= {
        "state.db",
        "state.db-wal",
        "state.db-shm",
        "cache.cbor",
    }


def test_a_missing_or_foreign_sqlite_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    missing = tmp_path / "absent.db"
    result = run("inspect", sqlite_url(missing))
    assert result.returncode == 2 and "absent.db" in one_line_error(result)
    assert not missing.exists()
    foreign = tmp_path / "other.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    before = foreign.read_bytes()
    for command in ("inspect", "verify"):
        result = run(command, sqlite_url(foreign))
        assert result.returncode == 2
        assert "holds no durability tables" in one_line_error(result)
    assert foreign.read_bytes() == before
    with sqlite3.connect(foreign) as conn:
        names = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert names == [("t",)]


def test_a_database_holding_a_wal_and_a_cache_is_told_which_by_kind(tmp_path: Path) -> None:
    url, entries, bindings = both_db(tmp_path)
    ambiguous = run("inspect", url)
    assert ambiguous.returncode == 2
    assert "--kind wal or --kind cache" in one_line_error(ambiguous)
    cache = json.loads(run("inspect", url, "--kind", "cache", "--json").stdout)
    assert cache["kind"] == "evidence_outcome_cache" and cache["entries"] == bindings
    assert cache["last_sequence"] is None
    assert [b["evidence_id"] for b in cache["bindings"]][-1] == "op#000/c"  # rebound: last
    wal = json.loads(run("verify", url, "--kind", "wal", "--json").stdout)
    assert wal["ok"] and wal["entries"] == entries
    absent = run("inspect", url, "--name", "orders")
    assert absent.returncode == 2
    line = one_line_error(absent)
    assert "no WAL or cache named `orders`" in line and "WAL `default`, cache `default`" in line


def test_name_picks_one_of_several_wals_and_is_for_sql_only(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "state.db")
    fill_wal(url, operations=2, name="orders")
    fill_wal(url, operations=5, name="payments")
    report = json.loads(run("inspect", url, "--name", "orders", "--json").stdout)
    assert report["name"] == "orders" and len(report["operations"]) == 2
    unnamed = run("inspect", url)
    assert unnamed.returncode == 2
    assert "WAL `orders`, WAL `payments`" in one_line_error(unnamed)
    make_wal(tmp_path / "wal.log", operations=1)
    result = run("inspect", str(tmp_path / "wal.log"), "--name", "orders")
    assert result.returncode == 2 and "SQL database only" in one_line_error(result)
    wrong = run("inspect", str(tmp_path / "wal.log"), "--kind", "cache")
    assert wrong.returncode == 2 and "--kind cache" in one_line_error(wrong)


def test_a_damaged_row_fails_verify_naming_its_sequence(tmp_path: Path) -> None:
    url, _entries = wal_only_db(tmp_path)
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("UPDATE durability_wal_entries SET entry = x'a1' WHERE sequence = 5")
    result = run("verify", url)
    assert result.returncode == 1
    line = one_line_error(result)
    assert "sequence 5" in line and "durability_wal_entries" in line


def test_a_reader_of_a_read_only_directory_can_inspect_a_sqlite_database(
    tmp_path: Path,
) -> None:
    if os.geteuid() == 0 and not AS_READER:
        pytest.skip("root without setpriv ignores file modes")
    directory = tmp_path / "ro"
    directory.mkdir()
    url, entries = wal_only_db(directory)
    make_read_only(directory)
    try:
        before = files_under(directory)
        result = run_as_reader("inspect", url, "--json", cwd=directory)
        assert result.returncode == 0, result.stderr.decode()
        assert json.loads(result.stdout)["entries"] == entries
        assert files_under(directory) == before
    finally:
        for path in [directory, *directory.rglob("*")]:
            path.chmod(0o700 if path.is_dir() else 0o600)


# -- plan from stores ------------------------------------------------------------


def test_plan_reads_a_sql_store_with_or_without_a_state_directory(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "state.db")
    with StateDirectory(tmp_path / "state", wal=url, cache=url) as store:
        store.wal.append_batch([ev("a", "a/c", L.SOFT_SAFE, 1), esc("a", L.NONE, L.SOFT_SAFE, 1)])
        store.checkpoint(1, b"state@1")
        store.wal.append_batch([ev("b", "b/w", L.PROVISIONAL, 2)])
    with_dir = json.loads(run("plan", str(tmp_path / "state"), "--store", url, "--json").stdout)
    assert with_dir["metadata"]["checkpoint_tick"] == 1
    assert [d["operation_id"] for d in with_dir["decisions"]] == ["b"]
    assert with_dir["wal"] == url and with_dir["repairs"] == {}
    alone = json.loads(run("plan", "--wal", url, "--cache", url, "--json").stdout)
    assert alone["directory"] is None and alone["metadata"]["checkpoint_tick"] == 0
    assert [d["operation_id"] for d in alone["decisions"]] == ["a", "b"]
    make_wal(tmp_path / "wal.log", operations=2)
    mixed = run("plan", "--wal", str(tmp_path / "wal.log"), "--cache", url)
    assert mixed.returncode == 0, mixed.stderr
    assert mixed.stdout.startswith(f"WAL in {tmp_path / 'wal.log'}, cache in {url}")


@pytest.mark.parametrize(
    "args",
    [
        ("plan",),
        ("plan", "--wal", "x.log"),
        ("plan", "--store", "sqlite:///x.db", "--wal", "y.log"),
        ("plan", "--store", "sqlite:///x.db", "--checkpoint-tick", "1"),
        ("plan", "DIR", "--name", "orders"),
    ],
)
def test_plan_without_somewhere_to_read_is_a_usage_error(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    (tmp_path / "DIR").mkdir()
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    one_line_error(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DIR"]  # nothing created


# -- PostgreSQL ------------------------------------------------------------------


def test_inspect_verify_export_and_plan_take_a_postgresql_url_and_change_nothing(
    pg_url: str, tmp_path: Path
) -> None:
    entries, bindings = fill_wal(pg_url), fill_cache(pg_url)
    before = pg_tables(pg_url)
    report = json.loads(run("inspect", pg_url, "--kind", "wal", "--json").stdout)
    assert report["backend"] == "postgresql" and report["entries"] == entries
    cache = run("verify", pg_url, "--kind", "cache")
    assert cache.returncode == 0, cache.stderr
    assert f"{bindings} bindings" in cache.stdout
    out = tmp_path / "wal.cbor"
    exported = run("export", pg_url, "--kind", "wal", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    with open_wal(pg_url) as wal:
        assert PersistedDurabilityArtifact.from_path(out).into_agreement_wal() == wal.load()
    planned = run("plan", "--store", pg_url, "--json")
    assert planned.returncode == 0, planned.stderr
    assert len(json.loads(planned.stdout)["decisions"]) == 6
    assert pg_tables(pg_url) == before


def test_read_only_commands_create_no_tables_in_postgresql(pg_url: str) -> None:
    assert pg_tables(pg_url) == {}
    for args in (
        ("inspect", pg_url),
        ("verify", pg_url, "--kind", "wal"),
        ("export", pg_url, "-o", "-"),
        ("plan", "--store", pg_url),
    ):
        result = run(*args)
        assert result.returncode == 2, args
        assert "holds no durability tables" in one_line_error(result)
    assert pg_tables(pg_url) == {}
    with open_cache(pg_url):  # a writer creates them; the readers above did not
        pass
    assert pg_tables(pg_url) == {}  # not even a writer, before its first call


def test_a_role_that_may_only_select_can_inspect_verify_and_plan(
    pg_url: str, tmp_path: Path
) -> None:
    if not pg_server.is_private():
        pytest.skip("creates a login role without a password: only on the private test cluster")
    fill_wal(pg_url, operations=3)
    fill_cache(pg_url, bindings=2)
    schema = pg_server.schema_name(str(tmp_path))
    role = f"r_{schema}"
    with pg_server.admin_connect() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
    try:
        reader = pg_server.with_netloc(pg_url, user=role)
        for args in (
            ("inspect", reader, "--kind", "wal"),
            ("verify", reader, "--kind", "cache"),
            ("plan", "--store", reader),
            ("export", reader, "--kind", "wal", "-o", str(tmp_path / "wal.cbor")),
        ):
            result = run(*args)
            assert result.returncode == 0, (args, result.stderr)
    finally:
        with pg_server.admin_connect() as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
