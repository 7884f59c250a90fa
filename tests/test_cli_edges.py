"""Smaller edges of the command line: each test states the rule it holds."""

from __future__ import annotations

import argparse
import json
from importlib import metadata
from pathlib import Path

import pytest

from durability import FinalizationOutcome as F
from durability import StateDirectory
from durability.cli import build_parser
from tests.helpers import L, esc, ev, fin
from tests.test_cli import make_wal, one_line_error, run


def tear(path: Path, cut: int = 5) -> None:
    """Cut the last `cut` bytes: the last record becomes a torn tail."""
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size - cut)


def make_state(directory: Path, checkpoints: tuple[int, ...] = (1,)) -> None:
    with StateDirectory(directory) as store:
        store.wal.append_batch([ev("a", "a/c", L.SOFT_SAFE, 1), esc("a", L.NONE, L.SOFT_SAFE, 1)])
        for tick in checkpoints:
            store.checkpoint(tick, f"state@{tick}".encode())
        store.wal.append_batch([fin("a", F.ABORTED, 8), ev("b", "b/w", L.PROVISIONAL, 9)])


# -- verify --------------------------------------------------------------------


def test_verify_strict_names_a_torn_tail_not_an_escalation_failure(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    make_wal(path)
    tear(path)
    result = run("verify", str(path), "--strict")
    assert result.returncode == 1
    assert "escalation order and planner consistency: ok" in result.stdout
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1 and problems[0].startswith("problem: torn tail at offset")
    report = json.loads(run("verify", str(path), "--strict", "--json").stdout)
    assert report["ok"] is False and report["problems"][0].startswith("torn tail")


# -- empty logs ------------------------------------------------------------------


def test_an_empty_log_is_called_empty_not_unverified(tmp_path: Path) -> None:
    path = tmp_path / "empty.log"
    path.touch()
    for command in ("inspect", "verify"):
        result = run(command, str(path))
        assert result.returncode == 0, result.stderr
        first = result.stdout.splitlines()[0]
        assert "empty log" in first and "unverified" not in result.stdout, result.stdout
    assert json.loads(run("inspect", str(path), "--json").stdout)["kind"] is None


# -- checkpoints -------------------------------------------------------------------


def test_inspect_summarises_a_checkpoint_file(tmp_path: Path) -> None:
    make_state(tmp_path / "state", checkpoints=(1,))
    path = tmp_path / "state" / "checkpoints" / f"checkpoint-{1:020d}.cbor"
    result = run("inspect", str(path))
    assert result.returncode == 0, result.stderr
    assert "checkpoint at tick 1" in result.stdout
    assert f"state {len(b'state@1')} bytes" in result.stdout
    document = json.loads(run("inspect", str(path), "--json").stdout)
    assert document["kind"] == "checkpoint" and document["tick"] == 1
    assert document["state_bytes"] == len(b"state@1")
    assert document["recovery_metadata"]["checkpoint_tick"] == 1
    assert document["recovery_metadata"]["resumed_operation_ids"] == []


def test_a_damaged_checkpoint_is_damage_naming_the_file(tmp_path: Path) -> None:
    make_state(tmp_path / "state", checkpoints=(1,))
    path = tmp_path / "state" / "checkpoints" / f"checkpoint-{1:020d}.cbor"
    renamed = path.with_name(f"checkpoint-{2:020d}.cbor")  # its name says tick 2
    path.rename(renamed)
    result = run("inspect", str(renamed))
    assert result.returncode == 1
    assert renamed.name in one_line_error(result)


# -- plan ------------------------------------------------------------------------------


def test_plan_json_gives_repairs_as_objects(tmp_path: Path) -> None:
    make_state(tmp_path / "state")
    tear(tmp_path / "state" / "wal.log")
    result = run("plan", str(tmp_path / "state"), "--json")
    assert result.returncode == 0, result.stderr
    repairs = json.loads(result.stdout)["repairs"]
    assert repairs["evidence.log"] is None
    torn = repairs["wal.log"]
    assert set(torn) == {"offset", "dropped", "reason", "copy_path"}
    assert torn["dropped"] > 0 and isinstance(torn["offset"], int)


def test_plan_text_names_a_torn_tail(tmp_path: Path) -> None:
    make_state(tmp_path / "state")
    tear(tmp_path / "state" / "wal.log")
    result = run("plan", str(tmp_path / "state"))
    assert result.returncode == 0, result.stderr
    assert "wal.log: torn tail at offset" in result.stdout


def test_a_negative_checkpoint_tick_is_a_usage_error(tmp_path: Path) -> None:
    make_state(tmp_path / "state")
    result = run("plan", str(tmp_path / "state"), "--checkpoint-tick", "-1")
    assert result.returncode == 2
    assert "--checkpoint-tick" in one_line_error(result)


@pytest.mark.parametrize(
    ("checkpoints", "listed"),
    [((3, 7), "(checkpoints exist at ticks 3, 7)"), ((), "(no checkpoints)")],
)
def test_a_missing_checkpoint_tick_lists_the_ticks_that_exist(
    tmp_path: Path, checkpoints: tuple[int, ...], listed: str
) -> None:
    make_state(tmp_path / "state", checkpoints=checkpoints)
    result = run("plan", str(tmp_path / "state"), "--checkpoint-tick", "5")
    assert result.returncode == 2
    line = one_line_error(result)
    assert "no checkpoint at tick 5" in line and line.endswith(listed), line
    assert run("plan", str(tmp_path / "state"), "--checkpoint-tick", "5", "--json").stdout


# -- demo --------------------------------------------------------------------------------


def test_demo_on_an_existing_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("not a directory")
    result = run("demo", str(path))
    assert result.returncode == 2
    line = one_line_error(result)
    assert "internal error" not in line and "not a directory" in line


# -- options -------------------------------------------------------------------------------


def test_json_and_quiet_are_accepted_before_the_command(tmp_path: Path) -> None:
    make_wal(tmp_path / "wal.log", operations=3)
    after = run("inspect", str(tmp_path / "wal.log"), "--json", "--quiet")
    before = run("--json", "--quiet", "inspect", str(tmp_path / "wal.log"))
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout)
    error = run("--json", "verify", str(tmp_path / "absent.log"))
    assert error.returncode == 2
    assert json.loads(error.stdout)["exit_code"] == 2


def test_version_prints_the_installed_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout == f"durability {metadata.version('durability')}\n"


def test_every_positional_argument_has_help() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in commands.choices.items():
        for action in command._actions:
            if not action.option_strings:
                assert action.help, f"{name} {action.dest} has no help"
