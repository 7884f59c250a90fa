"""Tests written to kill mutants that survived (issue 13, suite 8; the tool is
``tests/reliability/mutate.py``). Each names the rule the surviving mutant
broke; together they pin the edges the rest of the suite let slide."""

from __future__ import annotations

import gc
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


# -- small public surfaces nothing else exercised ---------------------------------------


def test_a_plan_finds_each_decision_by_operation_and_none_for_others() -> None:
    from durability import AgreementWalArtifact, DurableRecoveryPlan, EvidenceOutcomeCacheArtifact

    wal = AgreementWalArtifact(
        entries=[esc("a", L.NONE, L.SOFT_SAFE, 1), esc("b", L.NONE, L.PROVISIONAL, 2)]
    )
    plan = DurableRecoveryPlan.from_checkpoint(None, None, wal, EvidenceOutcomeCacheArtifact())
    a, b = plan.decision("a"), plan.decision("b")
    assert a is not None and a.operation_id == "a" and a.level is L.SOFT_SAFE
    assert b is not None and b.operation_id == "b" and b.level is L.PROVISIONAL
    assert plan.decision("c") is None


def test_wal_sync_modes_refuse_unknown_kinds_and_print_as_written() -> None:
    from durability import WalSyncMode

    with pytest.raises(ValueError, match="unknown wal sync mode"):
        WalSyncMode(kind="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only a failure mode"):
        WalSyncMode(kind="blocked", message="no")
    assert repr(WalSyncMode.failure("down")) == "WalSyncMode.failure('down')"
    assert repr(WalSyncMode.BLOCKED) == "WalSyncMode.BLOCKED"


def test_a_wal_handler_exposes_its_wal_and_mode(tmp_path: Path) -> None:
    from durability import AgreementWalHandler, InMemoryAgreementWal, WalSyncMode

    class Inner:
        def handle_effect(self, request: object) -> EffectOutcome:
            return EffectOutcome.success()

    wal = InMemoryAgreementWal()
    handler = AgreementWalHandler(Inner(), wal, WalSyncMode.BLOCKED)
    assert handler.wal is wal and handler.mode == WalSyncMode.BLOCKED


def test_an_evidence_handler_refuses_a_resolver_it_cannot_call(tmp_path: Path) -> None:
    from durability import EvidencePersistenceHandler, InMemoryEvidenceOutcomeCache

    class Inner:
        def handle_effect(self, request: object) -> EffectOutcome:
            return EffectOutcome.success()

    cache = InMemoryEvidenceOutcomeCache()
    with pytest.raises(TypeError, match="resolver must be callable"):
        EvidencePersistenceHandler(Inner(), cache, "ev-1")  # type: ignore[arg-type]
    assert EvidencePersistenceHandler(Inner(), cache, lambda r: None).cache is cache


def base_and(payload: bytes) -> bytes:
    from durability import AgreementWalArtifact, PersistedDurabilityArtifact

    base = PersistedDurabilityArtifact.agreement_wal(AgreementWalArtifact()).to_cbor()
    return base + encode_record(RecordType.BASE_CHECKSUM, 0, payload)


@pytest.mark.parametrize(
    "claim",
    [
        [1, 2],
        {"base_length": "94", "base_crc32": 1},
        {"base_length": 94},
        {"base_crc32": 1},
    ],
)
def test_a_malformed_base_checksum_record_fails_closed(claim: object) -> None:
    import cbor2

    from durability import DecodeError

    for payload in (cbor2.dumps(claim), framing.base_checksum_payload(b"x") + b"\x00"):
        with pytest.raises(DecodeError, match="malformed base checksum record") as found:
            scan_log(base_and(payload), name="wal.log")
        assert found.value.path == "wal.log" and found.value.offset is not None


def test_an_evidence_handler_answers_unavailable_when_put_if_absent_returns_nonsense() -> None:
    from durability import EffectRequest, EvidencePersistenceHandler, InMemoryEvidenceOutcomeCache

    class Odd(InMemoryEvidenceOutcomeCache):
        def put_if_absent(self, entry: object) -> object:  # type: ignore[override]
            return "bound"

    class Inner:
        def handle_effect(self, request: object) -> EffectOutcome:
            return EffectOutcome.success(1)

    handler = EvidencePersistenceHandler(Inner(), Odd(), lambda r: "ev")
    outcome = handler.handle_effect(EffectRequest(interface_name="I", operation_name="o", tick=1))
    assert outcome.failure is not None and "not a cache entry" in outcome.failure.message


def test_an_async_evidence_handler_forwards_what_it_does_not_cache() -> None:
    import asyncio

    from durability import EffectRequest, EvidencePersistenceHandler, InMemoryEvidenceOutcomeCache

    class Inner:
        async def handle_effect(self, request: EffectRequest) -> EffectOutcome:
            return EffectOutcome.success(request.tick)

    handler = EvidencePersistenceHandler(Inner(), InMemoryEvidenceOutcomeCache(), lambda r: None)
    request = EffectRequest(interface_name="I", operation_name="o", tick=4)
    assert asyncio.run(handler.handle_effect(request)) == EffectOutcome.success(4)
    assert handler.cache_snapshot().entries == ()


def test_a_record_of_exactly_a_header_is_read_not_taken_for_a_cut_header() -> None:
    empty = encode_record(RecordType.WAL_ENTRIES, 0, b"")
    scan = scan_log(empty, name="x", origin=200)
    assert scan.tail is None and [r.payload for r in scan.records] == [b""]
    past = scan_log(header(5), name="x", origin=200)  # exactly a header, its payload gone
    assert past.tail is not None and "runs past end of file" in past.tail.reason


@pytest.mark.parametrize("zeros", [1, 10, 23, 24, 60])
def test_zeros_from_a_record_boundary_are_reported_as_zeros_whatever_their_length(
    zeros: int,
) -> None:
    record = encode_record(RecordType.WAL_ENTRIES, 0, b"\x80")
    scan = scan_log(record + bytes(zeros), name="x", origin=200)
    assert scan.tail is not None and scan.tail.kind is TailKind.TORN
    assert scan.tail.offset == 200 + len(record)
    assert scan.tail.reason.startswith(f"zero bytes from offset {200 + len(record)}")


# -- the base and its checksum record ------------------------------------------------


def test_an_undecodable_base_names_offset_zero_and_its_cause_once() -> None:
    from durability import DecodeError

    with pytest.raises(DecodeError) as found:
        scan_log(b"\xff\x00\x01", name="wal.log")
    assert found.value.offset == 0 and "base artifact is not valid CBOR (" in str(found.value)
    assert str(found.value).count("decode persisted durability artifact") == 1


def test_a_base_exactly_at_the_cap_is_read_and_one_byte_over_is_refused_at_offset_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from durability import AgreementWalArtifact, ArtifactTooLargeError, PersistedDurabilityArtifact

    base = PersistedDurabilityArtifact.agreement_wal(AgreementWalArtifact()).to_cbor()
    data = base + encode_record(RecordType.BASE_CHECKSUM, 0, framing.base_checksum_payload(base))
    monkeypatch.setattr(framing, "MAX_ARTIFACT_BYTES", len(base))
    assert scan_log(data, name="x").base_verified
    monkeypatch.setattr(framing, "MAX_ARTIFACT_BYTES", len(base) - 1)
    with pytest.raises(ArtifactTooLargeError) as found:
        scan_log(data, name="x")
    assert found.value.offset == 0


def test_an_undecodable_base_checksum_record_fails_closed_naming_it() -> None:
    from durability import DecodeError

    with pytest.raises(DecodeError, match="undecodable base checksum record") as found:
        scan_log(base_and(b"\xff"), name="wal.log")
    assert found.value.offset is not None and found.value.offset > 0


def test_a_payload_running_past_the_end_says_how_much_is_there() -> None:
    scan = scan_log(header(10) + b"abc", name="x", origin=50)
    assert scan.tail is not None and "(10 bytes declared, 3 present)" in scan.tail.reason


# -- the engine's descriptor ----------------------------------------------------------


def open_descriptors() -> int:
    import os

    return len(os.listdir("/proc/self/fd"))


def test_closing_an_instance_releases_its_descriptor(tmp_path: Path) -> None:
    before = open_descriptors()
    wal = FileAgreementWal(tmp_path / "wal.log")
    assert open_descriptors() == before + 1
    wal.close()
    assert open_descriptors() == before


def test_a_child_forked_while_a_parent_thread_writes_can_write_itself(tmp_path: Path) -> None:
    import multiprocessing
    import threading
    import time

    from durability.testing.faults import FaultyFileSystem

    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path, fs=FaultyFileSystem(write_chunk=1, write_pause=0.002))
    writing = threading.Thread(target=wal.append, args=(gate("parent", L.NONE, 1),))
    writing.start()
    time.sleep(0.05)  # inside its write now: it holds the instance's lock
    fork = multiprocessing.get_context("fork")
    child = fork.Process(target=wal.append, args=(gate("child", L.NONE, 2),))
    child.start()
    child.join(20)
    if child.is_alive():
        child.kill()
        child.join()
    writing.join()
    assert child.exitcode == 0, "the child inherited a lock held by a parent thread"
    assert {e.operation_id for e in FileAgreementWal(path).load().entries} == {"parent", "child"}


def test_a_log_that_shrank_under_an_instance_fails_closed(tmp_path: Path) -> None:
    from durability import DecodeError

    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path)
    wal.append(gate("a", L.NONE, 1))
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - 30)  # someone else cut what this instance already read
    with pytest.raises(DecodeError, match="shrank") as found:
        wal.load()
    assert found.value.offset == size - 30


def test_a_read_with_nothing_new_takes_no_lock_and_reads_nothing(tmp_path: Path) -> None:
    from durability.testing.faults import FaultyFileSystem

    fs = FaultyFileSystem()
    wal = FileAgreementWal(tmp_path / "wal.log", fs=fs)
    FileAgreementWal(tmp_path / "wal.log").append(gate("a", L.NONE, 1))
    assert len(wal.load().entries) == 1  # catches up once
    start = len(fs.calls)
    wal.load()
    wal.read_since(0)
    assert [c.op for c in fs.calls[start:]] == ["stat", "stat"]


def test_cutting_a_torn_tail_is_synced_before_the_log_is_used(tmp_path: Path) -> None:
    from durability.testing.faults import FaultyFileSystem

    path = tmp_path / "wal.log"
    FileAgreementWal(path).append(gate("a", L.NONE, 1))
    with open(path, "ab") as f:
        f.write(b"\x01\x02\x03")
    fs = FaultyFileSystem()
    FileAgreementWal(path, fs=fs)
    ops = [c.op for c in fs.calls]
    assert "truncate" in ops and "sync" in ops[ops.index("truncate") :]


def _child_reports_closing(wal: FileAgreementWal, fs: object, parent_fd: int, seen: int) -> None:
    import os

    closed = parent_fd in fs.closed[seen:]  # type: ignore[attr-defined]
    wal.append(gate("child", L.NONE, 2))
    os._exit(0 if closed else 3)


def test_a_forked_child_closes_its_copy_of_the_parents_descriptor(tmp_path: Path) -> None:
    import multiprocessing

    from durability.fileio import FileSystem

    class Recorder(FileSystem):
        def __init__(self) -> None:
            self.closed: list[int] = []
            self.opened: list[int] = []

        def open_rw(self, path: str, *, create: bool = False) -> int:
            fd = super().open_rw(path, create=create)
            self.opened.append(fd)
            return fd

        def close(self, fd: int) -> None:
            self.closed.append(fd)
            super().close(fd)

    fs = Recorder()
    wal = FileAgreementWal(tmp_path / "wal.log", fs=fs)
    wal.append(gate("parent", L.NONE, 1))
    child = multiprocessing.get_context("fork").Process(
        target=_child_reports_closing, args=(wal, fs, fs.opened[-1], len(fs.closed))
    )
    child.start()
    child.join(30)
    assert child.exitcode == 0, "the child kept the parent's descriptor open"


def test_a_read_only_instance_keeps_one_descriptor_however_often_it_reads(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    FileAgreementWal(path).append(gate("a", L.NONE, 1))
    reader = FileAgreementWal(path, read_only=True)
    gc.collect()  # earlier tests' garbage must not close descriptors mid-count
    before = open_descriptors()
    for tick in range(2, 12):
        with FileAgreementWal(path) as writer:
            writer.append(gate("a", L.NONE, tick))
        assert len(reader.load().entries) == tick
    assert open_descriptors() == before


def test_a_read_only_instance_of_a_missing_log_closes_cleanly_and_follows_its_creation(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wal.log"
    empty = FileAgreementWal(path, read_only=True)
    assert empty.base_verified is False and empty.load().entries == ()
    empty.close()
    before = open_descriptors()
    reader = FileAgreementWal(path, read_only=True)
    FileAgreementWal(path).append(gate("a", L.NONE, 1))
    assert len(reader.load().entries) == 1 and reader.base_verified
    reader.close()
    assert open_descriptors() == before


def test_recovery_and_sync_must_be_their_enums(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="recovery must be a RecoveryMode"):
        FileAgreementWal(tmp_path / "wal.log", recovery="point_in_time")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sync must be a SyncPolicy"):
        FileAgreementWal(tmp_path / "wal.log", sync="none")  # type: ignore[arg-type]


def test_a_sync_naming_the_same_evidence_twice_writes_it_once() -> None:
    from durability import AgreementState, AgreementWalHandler, InMemoryAgreementWal, WalSyncRequest
    from tests.helpers import evidence

    class Inner:
        def handle_effect(self, request: object) -> EffectOutcome:
            return EffectOutcome.success()

    proof = evidence("op", "op/cert", L.SOFT_SAFE)
    sync = WalSyncRequest(
        operation_id="op",
        downstream_coroutine_id="c",
        gate_level=L.SOFT_SAFE,
        agreement_state=AgreementState(operation_id="op", contract_name="k", level=L.SOFT_SAFE),
        agreement_evidence=(proof, proof),
        tick=1,
    )
    handler = AgreementWalHandler(Inner(), InMemoryAgreementWal())
    assert handler.wal_sync(sync).is_success
    kinds = [type(e).__name__ for e in handler.wal_snapshot().entries]
    assert kinds == ["EvidenceProduced", "Escalation", "VisibilityGateCrossing"]
