"""`durability migrate SRC DST`: a WAL or cache copied between any two
backends in order, read back and compared, never into a store that holds one
already (unless `--append`); `durability.migrate.migrate` is the same copy
as a library call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from durability import FileAgreementWal, open_cache, open_wal
from durability.migrate import DestinationNotEmptyError, MigrationError, migrate
from tests.cli_stores import fill_cache, fill_wal, pg_url, sqlite_url
from tests.test_cli import make_wal, one_line_error, run

__all__ = ["pg_url"]  # the fixture, imported to be used here


def migrated(*args: str) -> dict[str, object]:
    result = run("migrate", *args, "--json")
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    assert report["ok"] is True and report["verified"] is True and report["problems"] == []
    return report


def test_a_wal_goes_file_to_sqlite_to_postgresql_to_file_unchanged(
    tmp_path: Path, pg_url: str
) -> None:
    make_wal(tmp_path / "wal.log", operations=12)
    original = FileAgreementWal(tmp_path / "wal.log").load()
    count = len(original.entries)
    lite = sqlite_url(tmp_path / "state.db")
    hops = [(str(tmp_path / "wal.log"), lite), (lite, pg_url), (pg_url, str(tmp_path / "back.log"))]
    for source, destination in hops:
        report = migrated(source, destination)
        assert report["kind"] == "wal"
        assert report["source_entries"] == report["copied"] == count
        assert report["destination_entries"] == count and report["destination_before"] == 0
    assert FileAgreementWal(tmp_path / "back.log").load() == original
    with open_wal(pg_url) as wal:
        assert wal.last_sequence == count  # gapless sequences from 1
    text = run("migrate", str(tmp_path / "back.log"), str(tmp_path / "again.log"))
    assert text.returncode == 0, text.stderr
    assert f"verified: read back {count} entries, equal to the source" in text.stdout


def test_a_cache_goes_file_to_postgresql_to_sqlite_in_binding_order(
    tmp_path: Path, pg_url: str
) -> None:
    fill_cache(str(tmp_path / "evidence.log"))
    with open_cache(str(tmp_path / "evidence.log")) as cache:
        original = cache.load()
    lite = sqlite_url(tmp_path / "state.db")
    fill_wal(lite)  # a WAL beside it changes nothing: --kind says which
    migrated(str(tmp_path / "evidence.log"), pg_url)
    report = migrated(pg_url, lite, "--kind", "cache")
    assert report["kind"] == "cache" and report["copied"] == len(original.entries)
    with open_cache(lite) as cache:
        assert cache.load() == original
        assert cache.load().entries[-1].evidence_id == "op#000/c"  # rebound: still last


def test_migrate_refuses_a_destination_that_holds_one_already(tmp_path: Path) -> None:
    make_wal(tmp_path / "wal.log", operations=3)
    lite = sqlite_url(tmp_path / "state.db")
    held = fill_wal(lite, operations=2)
    before = (tmp_path / "state.db").read_bytes()
    result = run("migrate", str(tmp_path / "wal.log"), lite)
    assert result.returncode == 2
    line = one_line_error(result)
    assert f"already holds a WAL with {held} entries" in line and "--append" in line
    assert (tmp_path / "state.db").read_bytes() == before
    other = tmp_path / "other.log"
    make_wal(other, operations=1)
    size = other.stat().st_size
    assert run("migrate", lite, str(other)).returncode == 2
    assert other.stat().st_size == size


def test_append_copies_after_what_the_destination_holds(tmp_path: Path) -> None:
    lite = sqlite_url(tmp_path / "state.db")
    fill_cache(lite, bindings=3)
    fill_cache(str(tmp_path / "evidence.log"), bindings=5)
    report = migrated(str(tmp_path / "evidence.log"), lite, "--append")
    assert report["destination_before"] == 3 and report["copied"] == 5
    assert report["destination_entries"] == 5  # the same evidence ids: rebound, moved last


def test_what_migrate_cannot_copy_is_a_one_line_usage_error(tmp_path: Path) -> None:
    (tmp_path / "empty.log").touch()
    make_wal(tmp_path / "wal.log", operations=1)
    lite = sqlite_url(tmp_path / "state.db")
    cases = {
        ("migrate", str(tmp_path / "empty.log"), lite): "--kind",
        ("migrate", str(tmp_path / "wal.log"), str(tmp_path / "wal.log")): "one store",
        ("migrate", str(tmp_path / "wal.log"), "mysql://db/x"): "unsupported storage URL",
        ("migrate", str(tmp_path / "absent.log"), lite): "absent.log",
    }
    for args, said in cases.items():
        result = run(*args)
        assert result.returncode == 2, args
        assert said in one_line_error(result), args
    assert migrated(str(tmp_path / "empty.log"), lite, "--kind", "cache")["copied"] == 0


def test_a_torn_tail_of_the_source_is_left_out_and_said(tmp_path: Path) -> None:
    make_wal(tmp_path / "wal.log", operations=4)
    complete = len(FileAgreementWal(tmp_path / "wal.log").load().entries)
    make_wal(tmp_path / "torn.log", operations=4)
    with open(tmp_path / "torn.log", "r+b") as handle:
        handle.truncate((tmp_path / "torn.log").stat().st_size - 5)
    result = run("migrate", str(tmp_path / "torn.log"), str(tmp_path / "copy.log"), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["torn_tail_left_out"]["dropped"] > 0
    assert report["copied"] < complete
    assert "left out of the copy" in result.stderr


def test_the_library_call_copies_in_batches_and_reports_progress(tmp_path: Path) -> None:
    make_wal(tmp_path / "wal.log", operations=5)
    total = len(FileAgreementWal(tmp_path / "wal.log").load().entries)
    seen: list[tuple[int, int]] = []
    report = migrate(
        tmp_path / "wal.log",
        sqlite_url(tmp_path / "state.db"),
        batch=4,
        progress=lambda done, of: seen.append((done, of)),
    )
    assert report.ok and report.copied == total and report.name == "default"
    assert seen == [(min(n, total), total) for n in range(4, total + 4, 4)]
    with pytest.raises(DestinationNotEmptyError):
        migrate(tmp_path / "wal.log", sqlite_url(tmp_path / "state.db"))
    with pytest.raises(MigrationError, match="SQL database only"):
        migrate(tmp_path / "wal.log", tmp_path / "copy.log", name="orders")
