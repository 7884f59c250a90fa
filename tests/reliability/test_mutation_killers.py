"""Tests written to kill mutants that survived (issue 13, suite 8; the tool is
``tests/reliability/mutate.py``). Each names the rule the surviving mutant
broke; together they pin the edges the rest of the suite let slide."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

import durability.framing as framing
from durability import (
    AgreementLevel,
    DurableRecoveryAction,
    DurableRecoveryDecision,
    EffectOutcome,
    EncodeError,
    EscalationOrderError,
    FinalizationOutcome,
)
from durability.backends.file import FileAgreementWal, FileEvidenceOutcomeCache
from durability.framing import RecordType, TailKind, encode_record, scan_log
from durability.limits import HEADER, MAX_ARTIFACT_BYTES
from durability.planner import is_sound
from tests.helpers import FAILED, L, binding, esc, gate

# -- a record exactly at the size cap -----------------------------------------------


def header(length: int, seq: int = 0, rtype: int = RecordType.WAL_ENTRIES) -> bytes:
    rest = HEADER.pack(0, rtype, b"\x00\x00\x00", seq, length, 0)[4:]
    return struct.pack("<I", zlib.crc32(rest)) + rest


def test_a_header_declaring_exactly_the_cap_is_a_record_cut_short_not_damage() -> None:
    scan = scan_log(header(MAX_ARTIFACT_BYTES) + b"\x01" * 10, name="x", origin=100)
    assert scan.tail is not None and scan.tail.kind is TailKind.TORN
    assert "runs past end of file" in scan.tail.reason
    over = scan_log(header(MAX_ARTIFACT_BYTES + 1) + b"\x01" * 10, name="x", origin=100)
    assert over.tail is not None and over.tail.kind is TailKind.DAMAGE


def test_a_record_exactly_at_the_cap_is_written_and_read_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(framing, "MAX_ARTIFACT_BYTES", 64)
    at_cap = encode_record(RecordType.WAL_ENTRIES, 0, b"\x80" * 64)
    scan = scan_log(at_cap, name="x", origin=10)
    assert scan.tail is None and [len(r.payload) for r in scan.records] == [64]
    with pytest.raises(EncodeError, match="65 bytes exceeds the 64-byte cap"):
        encode_record(RecordType.WAL_ENTRIES, 0, b"\x80" * 65)


# -- validation after catching up ----------------------------------------------------


def test_a_write_validates_against_what_another_instance_appended_since_it_last_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wal.log"
    stale = FileAgreementWal(path)  # has read the empty log, nothing since
    FileAgreementWal(path).append(esc("op", L.NONE, L.SOFT_SAFE, 1))
    before = path.read_bytes()
    with pytest.raises(EscalationOrderError, match="reordered or regressed"):
        stale.append(esc("op", L.NONE, L.PROVISIONAL, 2))
    assert path.read_bytes() == before
    stale.append(esc("op", L.SOFT_SAFE, L.FINALIZED, 3))  # valid after what it now knows
    assert [e.new_level for e in FileAgreementWal(path).load().entries] == [
        L.SOFT_SAFE,
        L.FINALIZED,
    ]


def test_first_binding_wins_against_a_binding_another_instance_made_since(tmp_path: Path) -> None:
    path = tmp_path / "evidence.log"
    stale = FileEvidenceOutcomeCache(path)
    FileEvidenceOutcomeCache(path).put_if_absent(binding("e", FAILED))
    assert stale.put_if_absent(binding("e")).outcome == FAILED
    assert [e.outcome for e in FileEvidenceOutcomeCache(path).load().entries] == [FAILED]


def test_a_blocked_binding_counts_as_absent_for_put_if_absent(tmp_path: Path) -> None:
    cache = FileEvidenceOutcomeCache(tmp_path / "evidence.log")
    cache.put(binding("e", EffectOutcome.blocked()))
    assert cache.put_if_absent(binding("e")).outcome.is_success


# -- the soundness predicate ---------------------------------------------------------

R = DurableRecoveryAction
F = FinalizationOutcome


def decision(
    action: R, level: AgreementLevel, finalization: F | None, **more: object
) -> DurableRecoveryDecision:
    return DurableRecoveryDecision(
        operation_id="op", level=level, action=action, finalization=finalization, **more
    )


@pytest.mark.parametrize("level", [L.NONE, L.PROVISIONAL, L.SOFT_SAFE])
def test_reuse_finalized_is_unsound_below_the_finalized_level(level: AgreementLevel) -> None:
    assert not is_sound(decision(R.REUSE_FINALIZED, level, F.FINALIZED))


@pytest.mark.parametrize("finalization", [None, F.ABORTED, F.REJECTED, F.TIMED_OUT])
def test_reuse_finalized_is_unsound_without_a_finalized_outcome(finalization: F | None) -> None:
    assert not is_sound(decision(R.REUSE_FINALIZED, L.FINALIZED, finalization))


def test_reuse_finalized_is_sound_when_both_say_finalized() -> None:
    assert is_sound(decision(R.REUSE_FINALIZED, L.FINALIZED, F.FINALIZED))


@pytest.mark.parametrize("finalization", [None, F.FINALIZED])
def test_preserve_terminal_is_unsound_without_a_terminal_failure(finalization: F | None) -> None:
    assert not is_sound(decision(R.PRESERVE_TERMINAL, L.SOFT_SAFE, finalization))


def test_a_gate_crossed_exactly_at_the_level_is_sound_and_above_it_is_not() -> None:
    at = decision(
        R.RESUME_FROM_EVIDENCE_BOUNDARY,
        L.SOFT_SAFE,
        None,
        gate_crossed=True,
        gate_level=L.SOFT_SAFE,
    )
    above = decision(
        R.RESUME_FROM_EVIDENCE_BOUNDARY,
        L.SOFT_SAFE,
        None,
        gate_crossed=True,
        gate_level=L.FINALIZED,
    )
    assert is_sound(at) and not is_sound(above)


def test_a_checkpoint_level_above_the_level_is_unsound() -> None:
    equal = decision(
        R.RESUME_FROM_EVIDENCE_BOUNDARY, L.SOFT_SAFE, None, checkpoint_level=L.SOFT_SAFE
    )
    above = decision(R.REEXECUTE_FROM_SCRATCH, L.PROVISIONAL, None, checkpoint_level=L.SOFT_SAFE)
    assert is_sound(equal) and not is_sound(above)


def test_a_gate_crossed_without_a_level_counts_as_a_gate_at_none() -> None:
    assert is_sound(decision(R.REEXECUTE_FROM_SCRATCH, L.NONE, None, gate_crossed=True))


def test_gates_at_none_cross_even_with_nothing_proven(tmp_path: Path) -> None:
    wal = FileAgreementWal(tmp_path / "wal.log")
    wal.append(gate("op", L.NONE, 1))
    assert wal.operation_summary("op").proven_level is L.NONE
