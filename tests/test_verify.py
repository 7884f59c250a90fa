"""Verifying a log (`durability.verify`, what ``durability verify`` prints):
checksums, escalation order, planner consistency over the whole WAL, and a
torn tail when strict."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest

from durability import AgreementWalArtifact, DecodeError, FileAgreementWal, FileEvidenceOutcomeCache
from durability.backends.file import inspect_log
from durability.verify import verify_log, verify_report
from tests.helpers import L, binding, esc, ev, gate
from tests.test_cli import make_wal, run


def test_a_clean_wal_verifies(tmp_path: Path) -> None:
    make_wal(tmp_path / "wal.log")
    result = verify_log(tmp_path / "wal.log")
    assert result.ok and result.problems == () and result.consistency_checked
    assert result.report.kind == "agreement_wal"


def test_a_gate_at_tick_0_above_the_proven_level_fails_verification(tmp_path: Path) -> None:
    # planning from a checkpoint at tick 0 would leave the gate out of the suffix
    path = tmp_path / "wal.log"
    with FileAgreementWal(path) as wal:
        wal.append_batch([ev("fine", "fine/e", L.SOFT_SAFE, 1), gate("fine", L.SOFT_SAFE, 1)])
        wal.append(gate("early", L.SOFT_SAFE, 0))  # no entry proves SOFT_SAFE
    result = verify_log(path)
    assert not result.ok
    assert result.consistency_problems == ("gates crossed above the proven level for: early",)
    cli = run("verify", str(path))
    assert cli.returncode == 1, cli.stderr
    assert "escalation order and planner consistency: FAILED" in cli.stdout
    assert "problem: gates crossed above the proven level for: early" in cli.stdout
    document = json.loads(run("verify", str(path), "--json").stdout)
    assert document["ok"] is False and document["problems"] == list(result.problems)


def test_an_escalation_order_problem_is_reported_not_raised(tmp_path: Path) -> None:
    # the file backends refuse a regression when opening; a report built
    # otherwise is still checked
    path = tmp_path / "wal.log"
    FileAgreementWal(path).append(esc("op", L.NONE, L.SOFT_SAFE, 1))
    report = attrs.evolve(
        inspect_log(path),
        artifact=AgreementWalArtifact(entries=[esc("op", L.SOFT_SAFE, L.NONE, 2)]),
    )
    result = verify_report(report)
    assert not result.ok and len(result.problems) == 1
    assert "agreement WAL regression for `op`" in result.problems[0]


def test_strict_makes_a_torn_tail_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    make_wal(path, operations=3)
    with open(path, "ab") as out:
        out.write(b"\x01\x02")
    lenient, strict = verify_log(path), verify_log(path, strict=True)
    assert lenient.ok and lenient.report.torn_tail is not None
    assert not strict.ok and strict.consistency_problems == ()
    assert strict.problems == (
        f"torn tail at offset {path.stat().st_size - 2} (2 bytes): incomplete record header "
        "(2 bytes)",
    )


def test_a_cache_log_has_no_consistency_check(tmp_path: Path) -> None:
    path = tmp_path / "cache.log"
    FileEvidenceOutcomeCache(path).put(binding("e"))
    result = verify_log(path)
    assert result.ok and not result.consistency_checked


def test_damage_raises_as_inspect_does(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    make_wal(path, operations=3)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DecodeError, match="byte offset"):
        verify_log(path)
