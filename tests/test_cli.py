"""The console script, run as a user would: exit codes, one-line errors, JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from durability import FileAgreementWal, PersistedDurabilityArtifact
from durability import FinalizationOutcome as F
from tests.helpers import L, esc, ev, fin, gate

SCRIPT = str(Path(sys.executable).parent / "durability")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("durability: error: ")
    return lines[0]


def make_wal(path: Path, operations: int = 30) -> None:
    with FileAgreementWal(path) as wal:
        for n in range(operations):
            op = f"op#{n:03d}"
            wal.append_batch(
                [
                    ev(op, f"{op}/c", L.SOFT_SAFE, n + 1),
                    esc(op, L.NONE, L.SOFT_SAFE, n + 1),
                    gate(op, L.SOFT_SAFE, n + 1),
                ]
            )
            if n % 3 == 0:
                wal.append(fin(op, F.FINALIZED, n + 2))


def test_usage_errors_exit_2_with_one_line() -> None:
    for args in [
        (),
        ("frobnicate",),
        ("export", "x"),
        ("plan",),
        ("plan", "d", "--checkpoint-tick", "x"),
    ]:
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        one_line_error(result)


def test_missing_input_exits_2_naming_it(tmp_path: Path) -> None:
    result = run("verify", str(tmp_path / "absent.log"))
    assert result.returncode == 2
    assert "absent.log" in one_line_error(result)
    assert run("plan", str(tmp_path / "nodir")).returncode == 2


def test_verify_clean_log_exits_0(tmp_path: Path) -> None:
    make_wal(tmp_path / "wal.log")
    result = run("verify", str(tmp_path / "wal.log"))
    assert result.returncode == 0, result.stderr
    assert "no torn tail" in result.stdout


def test_verify_flipped_byte_in_the_middle_exits_1_naming_offset(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    make_wal(path)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0x40
    path.write_bytes(bytes(data))
    result = run("verify", str(path))
    assert result.returncode == 1
    line = one_line_error(result)
    assert "offset" in line and "wal.log" in line
    assert line.split("durability: error: ")[1].startswith("decode persisted durability artifact")


def test_verify_file_cut_mid_record_reports_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    make_wal(path)
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size - 5)
    result = run("verify", str(path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["torn_tail"]["dropped"] > 0
    assert report["torn_tail"]["offset"] < size - 5
    assert path.stat().st_size == size - 5  # verify never modifies
    assert run("verify", str(path), "--strict").returncode == 1


def test_garbage_file_is_damage_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "garbage.log"
    path.write_bytes(b"\x9f\x01\x02" + bytes(range(256)) * 4)
    result = run("inspect", str(path))
    assert result.returncode == 1
    one_line_error(result)


def test_inspect_json_counts_entries(tmp_path: Path) -> None:
    make_wal(tmp_path / "wal.log", operations=6)
    result = run("inspect", str(tmp_path / "wal.log"), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kind"] == "agreement_wal"
    assert report["entries"] == 6 * 3 + 2
    assert len(report["operations"]) == 6


def test_export_writes_one_v1_artifact(tmp_path: Path) -> None:
    make_wal(tmp_path / "wal.log")
    out = tmp_path / "out.cbor"
    result = run("export", str(tmp_path / "wal.log"), "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    artifact = PersistedDurabilityArtifact.from_path(out)
    assert artifact.into_agreement_wal() == FileAgreementWal(tmp_path / "wal.log").load()
    assert json.loads(result.stdout)["entries"] == len(artifact.into_agreement_wal().entries)


def test_plan_of_a_state_directory(tmp_path: Path) -> None:
    from durability.store import StateDirectory

    with StateDirectory(tmp_path / "state") as store:
        store.wal.append_batch([ev("a", "a/c", L.SOFT_SAFE, 1), esc("a", L.NONE, L.SOFT_SAFE, 1)])
        store.checkpoint(1, b"state@1")
        store.wal.append_batch([fin("a", F.ABORTED, 2), ev("b", "b/w", L.PROVISIONAL, 3)])
    result = run("plan", str(tmp_path / "state"), "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["metadata"]["checkpoint_tick"] == 1
    actions = {d["operation_id"]: d["action"] for d in plan["decisions"]}
    assert actions == {"a": "preserve_terminal", "b": "reexecute_from_scratch"}
    text = run("plan", str(tmp_path / "state"), "--checkpoint-tick", "0")
    assert text.returncode == 2  # no checkpoint at tick 0
    one_line_error(text)


def test_plan_with_inconsistent_wal_exits_1_naming_operation(tmp_path: Path) -> None:
    from durability.store import StateDirectory

    with StateDirectory(tmp_path / "state") as store:
        store.wal.append_batch([ev("bad", "e", L.PROVISIONAL, 1), gate("bad", L.FINALIZED, 1)])
    result = run("plan", str(tmp_path / "state"))
    assert result.returncode == 1
    assert "bad" in one_line_error(result)
    lenient = run("plan", str(tmp_path / "state"), "--no-strict", "--json")
    assert lenient.returncode == 1
    assert json.loads(lenient.stdout)["anomalies"] == ["bad"]


def test_demo_kills_a_worker_and_plans_a_sound_recovery(tmp_path: Path) -> None:
    result = run("demo", str(tmp_path / "demo"), "--json", "--operations", "30")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["worker"]["killed"] and report["worker"]["signal"] == "SIGKILL"
    torn = report["repairs"]["wal.log"]
    assert torn is not None and torn["dropped"] == report["worker"]["torn_write"]["written"]
    assert report["all_decisions_sound"]
    assert report["plan"]["decisions"]
    assert report["replay"]["cached_effects_replayed"] > 0
    assert report["replay"]["inner_handler_calls"] == 0
