"""`durability demo --store URL`: the crash demo with the WAL and the cache in
SQLite or PostgreSQL. The worker is still killed with SIGKILL, inside a
transaction held open before its COMMIT; the database rolls it back, recovery
is planned from the checkpoints in the directory, and replaying the agreed
side effects through the evidence cache runs the live handler 0 times."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from tests.cli_stores import pg_url, sqlite_url
from tests.test_cli import one_line_error, run

__all__ = ["pg_url"]  # the fixture, imported to be used here


def demo(directory: Path, store: str) -> dict[str, Any]:
    result = run("demo", str(directory), "--store", store, "--json", "--operations", "30")
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    worker = report["worker"]
    assert worker["killed"] and worker["signal"] == "SIGKILL"
    assert worker["torn_write"] is None and report["repairs"] == {}  # no torn tail in SQL
    held = worker["open_transaction"]
    assert held["what"].startswith("wal_sync of")
    assert report["last_sequence"] <= held["last_sequence"]  # the open one rolled back
    assert report["all_decisions_sound"] and report["plan"]["decisions"]
    assert report["replay"]["cached_effects_replayed"] > 0
    assert report["replay"]["inner_handler_calls"] == 0
    [settled] = report["effects_in_doubt"]["settled"]  # the effect the kill left in flight
    assert settled["verdict"] == "success" and report["plan"]["in_doubt_evidence_ids"] == []
    assert shlex.split(settled["command"])[:3] == ["durability", "resolve", report["store"]]
    assert "SIGKILL sent to worker" in result.stderr
    return report


def same_plan_from_the_command_line(directory: Path, store: str, report: dict[str, Any]) -> None:
    planned = run("plan", str(directory), "--store", store, "--json")
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["decisions"] == report["plan"]["decisions"]
    wal = json.loads(run("inspect", store, "--kind", "wal", "--json").stdout)
    assert wal["last_sequence"] == report["last_sequence"]


def test_demo_on_sqlite_kills_the_worker_and_replays_nothing_live(tmp_path: Path) -> None:
    report = demo(tmp_path / "demo", "sqlite")
    database = tmp_path / "demo" / "demo.db"
    assert report["store"] == sqlite_url(database) and database.is_file()
    assert (tmp_path / "demo" / "checkpoints").is_dir()
    assert not (tmp_path / "demo" / "wal.log").exists()
    same_plan_from_the_command_line(tmp_path / "demo", sqlite_url(database), report)
    text = run("demo", str(tmp_path / "text"), "--store", "sqlite", "--operations", "30")
    assert text.returncode == 0, text.stderr
    assert "torn-write trick does not apply" in text.stdout
    assert "the live handler ran 0 times" in text.stdout


def test_demo_on_postgresql_kills_the_worker_and_replays_nothing_live(
    tmp_path: Path, pg_url: str
) -> None:
    report = demo(tmp_path / "demo", pg_url)
    assert report["store"] == pg_url
    same_plan_from_the_command_line(tmp_path / "demo", pg_url, report)
    again = run("demo", str(tmp_path / "again"), "--store", pg_url)
    assert again.returncode == 2
    assert "give the demo a fresh database" in one_line_error(again)


def test_demo_store_takes_sqlite_or_a_sql_url(tmp_path: Path) -> None:
    for store in ("file:///tmp/x.log", "wal.log", "mysql://db/x"):
        result = run("demo", str(tmp_path / "d"), "--store", store)
        assert result.returncode == 2, store
        one_line_error(result)
