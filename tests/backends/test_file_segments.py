"""The segmented file WAL (specs/segments.md): the contract with a tiny
segment size, so rollovers happen all the time, then rollovers, reading
across segments, other instances, read-only use and pruning."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import pytest

from durability import (
    AgreementWalArtifact,
    DecodeError,
    DurabilityError,
    DurableRecoveryPlan,
    EscalationOrderError,
    EvidenceOutcomeCacheArtifact,
    FinalizationOutcome,
    PersistedDurabilityArtifact,
    StateDirectory,
    WalEntry,
)
from durability.backends import filewal
from durability.backends.file import FileAgreementWal, SyncPolicy, inspect_log
from durability.backends.logstate import WalState, decode_entries
from durability.backends.segments import index_file, segment_dir, segment_file
from durability.explanation import EntryRole
from durability.framing import HEADER_SIZE, Record, RecordType, encode_record
from durability.limits import HEADER
from durability.locate import file_entry_locations
from durability.render import inspect_json
from durability.testing import AgreementWalContract
from durability.testing.faults import FaultyFileSystem
from durability.verify import verify_log
from tests.helpers import L, esc, ev, fin, gate

TINY = 400  # bytes: a rollover every two or three appends


class TestSegmentedFileWal(AgreementWalContract):
    sync = SyncPolicy.DURABLE

    def make_wal(self, tmp_path: Path) -> FileAgreementWal:
        return FileAgreementWal(tmp_path / "wal.log", sync=self.sync, segment_bytes=TINY)

    def reopen(self, backend: Any, tmp_path: Path) -> FileAgreementWal:
        return FileAgreementWal(tmp_path / "wal.log", sync=self.sync, segment_bytes=TINY)


class TestSegmentedFileWalGroupSync(TestSegmentedFileWal):
    sync = SyncPolicy.GROUP


class TestSegmentedFileWalNoSync(TestSegmentedFileWal):
    sync = SyncPolicy.NONE


def fill(wal: FileAgreementWal, ops: int, *, first_tick: int = 1) -> None:
    """Per operation: its evidence, an escalation and a gate (three appends);
    operation ids follow the tick."""
    for i in range(ops):
        tick = first_tick + i
        op = f"op{tick - 1}"
        wal.append(ev(op, f"{op}/e", L.SOFT_SAFE, tick))
        wal.append(esc(op, L.NONE, L.SOFT_SAFE, tick))
        wal.append(gate(op, L.SOFT_SAFE, tick))


def test_rollovers_seal_segments_and_everything_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path, segment_bytes=TINY)
    fill(wal, 10)
    layout = wal.layout
    assert len(layout.sealed) >= 5
    assert [i.segment for i in layout.sealed] == list(range(1, len(layout.sealed) + 1))
    assert layout.active == len(layout.sealed) + 1
    for index in layout.sealed:
        assert os.path.getsize(segment_file(str(path), index.segment)) == index.size
        assert os.path.exists(index_file(str(path), index.segment))
    assert wal.last_sequence == 30
    entries = wal.load().entries
    assert len(entries) == 30
    assert wal.read_since(7) == [e for e in entries if e.tick > 7]
    assert [s for s, _e in wal.poll(11, 5)] == [12, 13, 14, 15, 16]
    assert wal.poll(11, 5) == list(zip(range(12, 17), entries[11:16], strict=True))
    assert [len(b) for b in wal.scan(batch=4)][:2] == [4, 4]
    for after in (None, 0, 7, 29, 30):
        wanted = [e for e in entries if after is None or e.tick > after]
        for size in (1, 3, 4, 7, 64):  # full batches but the last, across records and segments
            batches = list(wal.scan(after, batch=size))
            assert [e for b in batches for e in b] == wanted
            assert all(len(b) == size for b in batches[:-1])
            assert not batches or 0 < len(batches[-1]) <= size
    again = FileAgreementWal(path, segment_bytes=TINY)
    assert again.load() == wal.load()
    assert again.last_sequence == 30


def test_escalation_order_and_summaries_hold_across_segments(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path, segment_bytes=TINY)
    wal.append(esc("old", L.NONE, L.SOFT_SAFE, 1))
    fill(wal, 4, first_tick=2)
    assert wal.layout.sealed and "old" in wal.layout.sealed[0].ops()
    reopened = FileAgreementWal(path, segment_bytes=TINY)
    with pytest.raises(EscalationOrderError):
        reopened.append(esc("old", L.NONE, L.PROVISIONAL, 9))
    summary = reopened.operation_summary("old")
    assert summary.escalation_level is L.SOFT_SAFE
    assert summary.entries == 1
    assert summary.identities == {esc("old", L.NONE, L.SOFT_SAFE, 1).stable_identity()}
    assert reopened.operation_summary("op1").proven_level is L.SOFT_SAFE


def test_a_single_file_log_opens_and_rolls_over(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    with FileAgreementWal(path) as old:  # the default size: one file, as before
        fill(old, 3)
    assert not os.path.exists(segment_dir(str(path)))
    wal = FileAgreementWal(path, segment_bytes=TINY)
    assert wal.last_sequence == 9
    fill(wal, 3, first_tick=10)
    assert wal.layout.sealed
    assert wal.layout.sealed[0].first_sequence == 1
    assert len(wal.load().entries) == 18


def test_another_instance_sees_rollovers(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    writer = FileAgreementWal(path, segment_bytes=TINY)
    reader = FileAgreementWal(path, segment_bytes=TINY)
    viewer = FileAgreementWal(path, read_only=True)
    fill(writer, 1)
    assert reader.last_sequence == viewer.last_sequence == 3
    fill(writer, 5, first_tick=2)
    assert reader.last_sequence == viewer.last_sequence == 18
    assert reader.load() == viewer.load() == writer.load()
    reader.append(gate("op0", L.SOFT_SAFE, 50))  # a writer whose file was sealed under it
    assert writer.last_sequence == 19
    assert writer.poll(18, 5)[0][1].tick == 50


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` and its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def appends() -> list[WalEntry]:
    return [gate(f"op{i}", L.NONE, i) for i in range(12)]


def test_a_crash_at_any_call_of_a_rollover_loses_nothing_acknowledged(tmp_path: Path) -> None:
    (tmp_path / "probe").mkdir()
    probe_fs = FaultyFileSystem()
    probe = FileAgreementWal(tmp_path / "probe" / "wal.log", fs=probe_fs, segment_bytes=TINY)
    for n, entry in enumerate(appends()):  # noqa: B007 (n is read after the loop)
        start = len(probe_fs.calls)
        probe.append(entry)
        if probe.layout.sealed:
            break
    rolling, calls = n, probe_fs.calls[start:]
    ops = {call.op for call in calls}
    assert {"write", "sync", "rename", "link", "sync_dir"} <= ops
    for k in range(len(calls)):
        root = tmp_path / f"crash-{k}"
        root.mkdir()
        path = root / "wal.log"
        fs = FaultyFileSystem()
        wal = FileAgreementWal(path, fs=fs, segment_bytes=TINY)
        acked = [wal.append(entry) for entry in appends()[:rolling]]
        fs.fail_after(k, sticky=True)  # the process dies at this call
        with contextlib.suppress(DurabilityError):
            acked.append(wal.append(appends()[rolling]))
        del wal
        before = snapshot(root)
        viewer = FileAgreementWal(path, read_only=True, segment_bytes=TINY)
        seen = viewer.load().entries
        assert seen[: len(acked)] == tuple(appends()[: len(acked)]), f"call {k}: {calls[k]}"
        assert snapshot(root) == before, f"read-only changed files after call {k}"
        wal = FileAgreementWal(path, segment_bytes=TINY)
        assert wal.load().entries == seen
        wal.append(gate("after", L.NONE, 99))
        assert wal.last_sequence == len(seen) + 1
        again = FileAgreementWal(path, segment_bytes=TINY)
        assert again.load() == wal.load()
        verify = inspect_log(path)
        assert verify.entries == len(seen) + 1


def test_damaged_layouts_fail_closed(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path, segment_bytes=TINY)
    fill(wal, 4)
    wal.close()
    moved = tmp_path / "moved"
    os.rename(index_file(str(path), 1), moved)
    with pytest.raises(DecodeError, match="no index"):
        FileAgreementWal(path, read_only=True)
    os.rename(moved, index_file(str(path), 1))
    os.rename(segment_file(str(path), 2), moved)
    with pytest.raises(DecodeError, match="segment 2 is missing"):
        FileAgreementWal(path, read_only=True)
    os.rename(moved, segment_file(str(path), 2))
    data = bytearray(Path(segment_file(str(path), 1)).read_bytes())
    data[-30] ^= 0xFF
    Path(segment_file(str(path), 1)).write_bytes(bytes(data))
    reopened = FileAgreementWal(path, segment_bytes=TINY)  # opening reads no sealed segment
    with pytest.raises(DecodeError, match=r"0000000001\.log"):
        reopened.load()


def test_prune_through_removes_old_segments_and_keeps_the_rules(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path, segment_bytes=TINY)
    wal.append(esc("old", L.NONE, L.PROVISIONAL, 1))
    fill(wal, 8, first_tick=2)
    entries = wal.load().entries
    sealed = wal.layout.sealed
    tick = sealed[2].max_tick
    assert tick is not None
    gone = sum(i.entries for i in sealed[:3] if i.max_tick is not None and i.max_tick <= tick)
    assert wal.prune_through(tick) == gone > 0
    assert not os.path.exists(segment_file(str(path), 1))
    assert wal.layout.pruned is not None and wal.layout.pruned.segment == 3
    assert wal.last_sequence == len(entries)
    assert wal.load().entries == entries[gone:]
    assert wal.poll(0, 2)[0][0] == gone + 1
    assert wal.read_since(tick) == [e for e in entries if e.tick > tick]
    with pytest.raises(EscalationOrderError):  # the pruned escalation still counts
        wal.append(esc("old", L.NONE, L.NONE, 50))
    assert wal.operation_summary("old").escalation_level is L.PROVISIONAL
    assert wal.prune_through(tick) == 0
    reopened = FileAgreementWal(path, segment_bytes=TINY)
    assert reopened.load().entries == entries[gone:]
    with pytest.raises(EscalationOrderError):
        reopened.append(esc("old", L.NONE, L.NONE, 50))
    report = inspect_log(path)
    assert report.entries == len(entries) - gone
    assert report.pruned is not None
    assert report.records[1].first_sequence == gone + 1


def test_planning_reads_only_the_suffix_and_plans_as_from_every_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "state").mkdir()
    wal = FileAgreementWal(tmp_path / "state" / "wal.log", segment_bytes=TINY)
    wal.append(esc("long", L.NONE, L.PROVISIONAL, 1))
    wal.append(fin("done", FinalizationOutcome.FINALIZED, 2))
    fill(wal, 10, first_tick=3)
    wal.append(gate("long", L.PROVISIONAL, 40))  # the suffix meets sealed operations
    wal.append(gate("done", L.FINALIZED, 41))
    wal.append(esc("long", L.PROVISIONAL, L.SOFT_SAFE, 42))
    entries = wal.load().entries
    read: list[int] = []
    real = filewal.read_sealed

    def spy(fs: Any, path: str, segment: Any, **kw: Any) -> Any:
        read.append(segment[0].segment)
        return real(fs, path, segment, **kw)

    monkeypatch.setattr(filewal, "read_sealed", spy)
    with StateDirectory(tmp_path / "state", wal=wal) as store:
        for tick in (0, 8, 12, 39):
            store.checkpoint(tick, b"s")
            read.clear()
            plan = store.plan_recovery(tick)
            whole = DurableRecoveryPlan.from_checkpoint(
                tick, b"s", entries, EvidenceOutcomeCacheArtifact()
            )
            assert plan == whole
            assert plan.decision("done") == whole.decision("done") is not None
            wanted = [i.segment for i in wal.layout.sealed if (i.max_tick or 0) > tick]
            assert read == wanted
            assert tick == 0 or len(wanted) < len(wal.layout.sealed)
        assert store.compact() > 0
        assert wal.layout.pruned is not None
        assert store.plan_recovery(39) == DurableRecoveryPlan.from_checkpoint(
            39, b"s", entries, EvidenceOutcomeCacheArtifact()
        )


def test_verify_and_inspect_see_every_segment(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path, segment_bytes=TINY)
    wal.append(ev("early", "early/e", L.SOFT_SAFE, 1))
    fill(wal, 6, first_tick=2)
    wal.append(gate("early", L.SOFT_SAFE, 30))  # proven only by a segment about to go
    assert wal.prune_through(2) > 0
    result = verify_log(path)
    assert result.ok, result.problems
    assert len(result.report.records) > len(wal.layout.sealed)
    files = {r.file for r in result.report.records}
    assert None in files and segment_file(str(path), wal.layout.sealed[0].segment) in files
    assert [s["segment"] for s in inspect_json(result.report)["segments"]][:2] == [
        wal.layout.pruned.segment if wal.layout.pruned else -1,
        wal.layout.sealed[0].segment,
    ]
    victim = Path(segment_file(str(path), wal.layout.sealed[-1].segment))
    data = bytearray(victim.read_bytes())
    data[5] ^= 0x01  # inside the base: framing may not see it, the index crc32 does
    victim.write_bytes(bytes(data))
    with pytest.raises(DecodeError, match=r"\.log"):
        verify_log(path)


def test_escalations_across_segments_are_checked_once_the_index_is_built(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path, segment_bytes=TINY)
    wal.append(esc("op", L.NONE, L.SOFT_SAFE, 1))
    while not wal.layout.sealed:
        wal.append(gate("filler", L.NONE, 2))
    wal.close()
    forged = WalState().encode([esc("op", L.NONE, L.PROVISIONAL, 3)])  # goes back
    with path.open("ab") as out:  # record 1 of the new, empty active segment
        out.write(encode_record(RecordType.WAL_ENTRIES, 1, forged))
    reopened = FileAgreementWal(path, segment_bytes=TINY)  # opening reads one segment
    with pytest.raises(DecodeError, match="across segments") as caught:
        reopened.append(gate("x", L.NONE, 4))
    assert caught.value.path == str(path)
    with pytest.raises(DecodeError, match="across segments"):
        verify_log(path)


def test_each_sequence_maps_to_its_file_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path, segment_bytes=TINY)
    fill(wal, 5)
    report = inspect_log(path)
    for sequence, entry in wal.poll(0, 100):
        record = report.record_holding(sequence)
        assert record is not None
        name = record.file or str(path)
        data = Path(name).read_bytes()[record.offset + HEADER_SIZE :][: record.length]
        found = Record(offset=record.offset, type=RecordType.WAL_ENTRIES, seq=0, payload=data)
        assert decode_entries(found, name)[sequence - (record.first_sequence or 0)] == entry
    assert report.record_holding(0) is None
    assert report.record_holding(16) is None


def test_a_prune_by_another_instance_is_seen_by_readers(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    writer = FileAgreementWal(path, segment_bytes=TINY)
    fill(writer, 8)
    reader = FileAgreementWal(path, segment_bytes=TINY)
    viewer = FileAgreementWal(path, read_only=True)
    assert len(reader.load().entries) == len(viewer.load().entries) == 24
    gone = writer.prune_through(4)
    assert gone > 0
    assert len(reader.load().entries) == len(viewer.load().entries) == 24 - gone
    assert reader.poll(0, 1)[0][0] == viewer.poll(0, 1)[0][0] == gone + 1
    assert reader.last_sequence == 24


def test_group_commit_across_rollovers_acknowledges_only_what_is_durable(
    tmp_path: Path,
) -> None:
    import asyncio

    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path, sync=SyncPolicy.GROUP, segment_bytes=TINY)

    async def main() -> list[int]:
        done: list[int] = []
        for start in range(0, 60, 10):  # each round shares flushes, then may roll over
            done += await asyncio.gather(
                *(wal.append_async(gate(f"t{i}", L.NONE, i)) for i in range(start, start + 10))
            )
        return done

    sequences = asyncio.run(main())
    assert sorted(sequences) == list(range(1, 61))
    assert len(wal.layout.sealed) > 3
    again = FileAgreementWal(path, read_only=True)
    assert {e.operation_id for e in again.load().entries} == {f"t{i}" for i in range(60)}
    assert again.poll(0, 100) == wal.poll(0, 100)


def test_the_plan_command_over_a_pruned_wal_counts_the_pruned_proofs(tmp_path: Path) -> None:
    from durability import FileEvidenceOutcomeCache
    from durability.cli import main

    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path, segment_bytes=TINY)
    wal.append(ev("early", "early/e", L.SOFT_SAFE, 1))
    fill(wal, 6, first_tick=2)
    wal.append(gate("early", L.SOFT_SAFE, 30))  # proven only by the pruned evidence
    assert wal.prune_through(2) > 0
    FileEvidenceOutcomeCache(tmp_path / "evidence.log").close()
    args = ["plan", "--wal", str(path), "--cache", str(tmp_path / "evidence.log"), "--json"]
    assert main(args) == 0


def entry_at(location: Any) -> WalEntry:
    """The entry stored where `location` says: the record header at its
    offset in its file (FORMAT: ``<IB3sQII``), that record's payload, the
    entry at its index."""
    data = Path(location.path).read_bytes()
    _crc, kind, _pad, seq, length, _payload_crc = HEADER.unpack_from(data, location.offset)
    assert (RecordType(kind), seq) == (RecordType.WAL_ENTRIES, location.record)
    payload = data[location.offset + HEADER_SIZE :][:length]
    record = Record(offset=location.offset, type=RecordType.WAL_ENTRIES, seq=seq, payload=payload)
    return decode_entries(record, location.path)[location.index]


def test_a_log_that_began_as_a_v1_artifact_keeps_its_base_across_rollovers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wal.log"
    base = [esc(f"b{i}", L.NONE, L.PROVISIONAL, 1) for i in range(3)]
    PersistedDurabilityArtifact.agreement_wal(AgreementWalArtifact(entries=base)).write_to_path(
        path
    )
    wal = FileAgreementWal(path, segment_bytes=TINY)
    fill(wal, 4, first_tick=2)
    assert wal.layout.sealed and wal.layout.sealed[0].first_sequence == 1
    entries = wal.load().entries
    assert len(entries) == wal.last_sequence == 15 and list(entries[:3]) == base
    assert [entry for _, entry in wal.poll(0, 100)] == list(entries)
    with FileAgreementWal(path, read_only=True) as reader:
        assert reader.load().entries == entries
    assert inspect_log(path).artifact == wal.load()
    assert verify_log(path).ok
    located = file_entry_locations(path)
    assert [(loc.sequence, entry) for loc, entry in located] == list(enumerate(entries, 1))
    first = segment_file(str(path), 1)
    assert [(loc.path, loc.offset, loc.record, loc.index) for loc, _ in located[:3]] == [
        (first, 0, None, 0),
        (first, 0, None, 1),
        (first, 0, None, 2),
    ]
    for loc, entry in located[3:]:
        assert entry_at(loc) == entry


def test_explain_cites_entries_in_sealed_segments_after_a_prune(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    wal = FileAgreementWal(tmp_path / "state" / "wal.log", segment_bytes=TINY)
    fill(wal, 12)
    wal.append(esc("op11", L.SOFT_SAFE, L.FINALIZED, 30))
    with StateDirectory(tmp_path / "state", wal=wal) as store:
        store.checkpoint(6, b"s")
        assert store.compact() > 0
        plan = store.plan_recovery(6)
        why = plan.explain("op9")
        cited = {c.role.value: c for c in why.entries}
        assert set(cited) == {"level", "gate"}
        for c in cited.values():
            assert c.location is not None and c.location.sequence == c.position
            assert entry_at(c.location) == c.entry
        assert cited["level"].location.path.startswith(str(tmp_path / "state" / "wal.log.seg"))
        late = plan.explain("op11").cited(EntryRole.LEVEL)
        assert late is not None and late.location is not None
        assert late.position == wal.last_sequence and entry_at(late.location) == late.entry
