"""Reading a log file back (specs/log_format.md, "Readers"): opening and
catching up read the new bytes a bounded chunk at a time through the
`FileSystem` seam, classify what they find exactly as reading everything at
once would, and handle a tail per the tail policy table."""

from __future__ import annotations

import gc
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest

from durability import DecodeError
from durability import FinalizationOutcome as F
from durability.backends import logread
from durability.backends.file import (
    FileAgreementWal,
    FileEvidenceOutcomeCache,
    RecoveryMode,
    inspect_log,
)
from durability.backends.logread import TAIL_POLICY, Access, TailAction
from durability.backends.modes import TornTailWarning
from durability.fileio import FileSystem
from durability.framing import HEADER_SIZE, RecordType, TailKind, encode_record
from tests.helpers import FAILED, L, binding, esc, ev, fin, gate


class ReadRecordingFS(FileSystem):
    def __init__(self) -> None:
        self.reads: list[tuple[int, int]] = []

    def read_at(self, fd: int, offset: int, length: int, path: str) -> bytes:
        self.reads.append((offset, length))
        return super().read_at(fd, offset, length, path)


def sample_wal(path: Path, records: int = 20) -> Path:
    with FileAgreementWal(path) as wal:
        for tick in range(records):
            wal.append_batch(
                [gate(f"op{tick % 4}", L.NONE, tick), ev(f"op{tick}", "e", L.SOFT_SAFE, tick)]
            )
    return path


def record_offsets(path: Path) -> list[int]:
    return [r.offset for r in inspect_log(path).records]


# -- bounded chunks --------------------------------------------------------------------


def test_a_log_bigger_than_the_chunk_opens_in_several_bounded_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = sample_wal(tmp_path / "wal.log")
    size = path.stat().st_size
    whole = FileAgreementWal(path).load()
    monkeypatch.setattr(logread, "READ_CHUNK_BYTES", 64)
    fs = ReadRecordingFS()
    wal = FileAgreementWal(path, fs=fs)
    assert wal.load() == whole and wal.base_verified and wal.torn_tail is None
    assert len(fs.reads) == -(-size // 64) > 1
    assert fs.reads == [(offset, min(64, size - offset)) for offset in range(0, size, 64)]
    fs.reads.clear()
    report = inspect_log(path, fs=fs)  # inspect reads the same way
    assert report.entries == len(whole.entries) and max(n for _, n in fs.reads) == 64


def test_a_record_larger_than_the_chunk_is_read_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logread, "READ_CHUNK_BYTES", 16)
    cache = FileEvidenceOutcomeCache(tmp_path / "cache.log")
    big = binding("big")
    cache.put(big)
    cache.put(binding("e", FAILED))
    again = FileEvidenceOutcomeCache(tmp_path / "cache.log")
    assert again.get("big") == big and again.get("e") == binding("e", FAILED)


def test_catching_up_reads_only_what_others_appended_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logread, "READ_CHUNK_BYTES", 100)
    path = tmp_path / "wal.log"
    fs = ReadRecordingFS()
    mine = FileAgreementWal(path, fs=fs)
    theirs = FileAgreementWal(path)
    for tick in range(5):
        end = path.stat().st_size
        theirs.append_batch([gate("theirs", L.NONE, tick)] * 3)
        fs.reads.clear()
        assert len(mine.read_since(-1)) == 3 * (tick + 1)
        assert fs.reads[0][0] == end and sum(n for _, n in fs.reads) == path.stat().st_size - end


# -- a tail read in chunks is what it is read at once ------------------------------


def damaged_logs(tmp_path: Path) -> dict[str, bytes]:
    """Logs ending in each kind of tail, torn or damaged, by name."""
    clean = sample_wal(tmp_path / "clean.log", records=4).read_bytes()
    offsets = record_offsets(tmp_path / "clean.log")
    last, second = offsets[-1], offsets[2]

    def flip(data: bytes, at: int) -> bytes:
        return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]

    def zero_from(data: bytes, at: int) -> bytes:
        return data[:at] + bytes(len(data) - at)

    return {
        "clean": clean,
        "torn header": clean + encode_record(RecordType.WAL_ENTRIES, 5, b"\x80")[:10],
        "payload past the end": clean[:-3],
        "bad last payload": flip(clean, len(clean) - 1),
        "zeros after the end": clean + bytes(300),
        "zeros from inside the last header": zero_from(clean, last + 5),
        "zeros from inside an earlier payload": zero_from(clean, second + HEADER_SIZE + 4),
        "header damage mid-log": flip(clean, second + 3),
        "payload damage mid-log": flip(clean, second + HEADER_SIZE + 2),
        "payload damage, then zeros": zero_from(flip(clean, second + HEADER_SIZE + 2), last),
        "zeros, then a byte": zero_from(clean, second + 7)[:-1] + b"\x01",
        "sequence gap": clean + encode_record(RecordType.WAL_ENTRIES, 9, b"\x80"),
        "record of the other kind": clean + encode_record(RecordType.CACHE_BINDINGS, 5, b"\x80"),
    }


def open_outcome(path: Path, **options: Any) -> object:
    """What opening `path` gives: the entries and torn tail, or the error."""
    try:
        wal = FileAgreementWal(path, **options)
    except DecodeError as exc:
        return ("error", type(exc).__name__, str(exc))
    return (wal.load(), wal.torn_tail, wal.base_verified)


@pytest.mark.parametrize("mode", list(RecoveryMode))
def test_every_chunk_size_classifies_a_tail_as_reading_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: RecoveryMode
) -> None:
    for name, data in damaged_logs(tmp_path).items():
        path = tmp_path / "log"
        path.write_bytes(data)
        at_once = open_outcome(path, read_only=True, recovery=mode)
        for size in [*range(1, 40), 97, 256, 1000]:
            monkeypatch.setattr(logread, "READ_CHUNK_BYTES", size)
            assert open_outcome(path, read_only=True, recovery=mode) == at_once, (name, size)
            assert path.read_bytes() == data
        monkeypatch.undo()


def test_every_chunk_size_repairs_a_tail_as_reading_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = tmp_path / "case"
    for name, data in damaged_logs(tmp_path).items():
        for mode in (RecoveryMode.TOLERATE_TORN_TAIL, RecoveryMode.POINT_IN_TIME):
            results = []
            for size in (1 << 20, 1, 7, 24, 25, 64):
                monkeypatch.setattr(logread, "READ_CHUNK_BYTES", size)
                shutil.rmtree(case, ignore_errors=True)
                case.mkdir()
                (case / "log").write_bytes(data)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    outcome = open_outcome(case / "log", recovery=mode)
                files = {p.name: p.read_bytes() for p in sorted(case.iterdir())}
                results.append((outcome, files, [str(w.message) for w in caught]))
            assert all(result == results[0] for result in results), (name, mode)


# -- the tail policy table -----------------------------------------------------------

CUT, COPY, REPORT = TailAction.CUT, TailAction.CUT_KEEPING_COPY, TailAction.REPORT
LEAVE, FAIL = TailAction.LEAVE, TailAction.FAIL_CLOSED


def test_the_tail_policy_table_is_total_and_reads_like_the_recovery_modes() -> None:
    expected = {  # (writer, reader, read-only) per (kind, mode)
        (TailKind.TORN, RecoveryMode.TOLERATE_TORN_TAIL): (CUT, LEAVE, REPORT),
        (TailKind.TORN, RecoveryMode.ABSOLUTE_CONSISTENCY): (FAIL, FAIL, FAIL),
        (TailKind.TORN, RecoveryMode.POINT_IN_TIME): (CUT, LEAVE, REPORT),
        (TailKind.DAMAGE, RecoveryMode.TOLERATE_TORN_TAIL): (FAIL, FAIL, FAIL),
        (TailKind.DAMAGE, RecoveryMode.ABSOLUTE_CONSISTENCY): (FAIL, FAIL, FAIL),
        (TailKind.DAMAGE, RecoveryMode.POINT_IN_TIME): (COPY, FAIL, FAIL),
    }
    assert len(TAIL_POLICY) == len(TailKind) * len(RecoveryMode) * len(Access)
    for (kind, mode), actions in expected.items():
        for access, action in zip(
            (Access.WRITER, Access.READER, Access.READ_ONLY), actions, strict=True
        ):
            assert logread.tail_action(kind, mode, access) is action, (kind, mode, access)


def test_a_missing_policy_entry_names_what_was_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logread, "TAIL_POLICY", {})
    with pytest.raises(LookupError, match="torn tail in POINT_IN_TIME mode, reader access"):
        logread.tail_action(TailKind.TORN, RecoveryMode.POINT_IN_TIME, Access.READER)


def test_a_writable_reader_leaves_a_torn_tail_to_the_next_writer(tmp_path: Path) -> None:
    path = sample_wal(tmp_path / "wal.log", records=3)
    wal = FileAgreementWal(path)
    with open(path, "ab") as out:
        out.write(bytes(9))  # another writer's torn write
    torn = path.read_bytes()
    assert len(wal.load().entries) == 6  # leave: not cut, not reported
    assert wal.torn_tail is None and path.read_bytes() == torn
    with pytest.warns(TornTailWarning):
        wal.append(gate("next", L.NONE, 9))  # the writer cuts it
    assert wal.torn_tail is not None and wal.torn_tail.dropped == 9


def test_point_in_time_cuts_a_record_that_does_not_apply_keeping_a_copy(tmp_path: Path) -> None:
    path = sample_wal(tmp_path / "wal.log", records=3)
    good = path.stat().st_size
    payload = FileAgreementWal(path)._log.state.encode([esc("op0", L.SOFT_SAFE, L.NONE, 5)])
    with open(path, "ab") as out:  # verifies, but regresses an escalation
        out.write(encode_record(RecordType.WAL_ENTRIES, 4, payload))
    damaged = path.read_bytes()
    with pytest.raises(DecodeError, match="record 4: agreement WAL regression"):
        FileAgreementWal(path)
    with pytest.warns(TornTailWarning, match="copied to"):
        wal = FileAgreementWal(path, recovery=RecoveryMode.POINT_IN_TIME)
    assert wal.torn_tail is not None and wal.torn_tail.offset == good
    assert "record 4: agreement WAL regression" in wal.torn_tail.reason
    assert Path(f"{path}.damaged-1").read_bytes() == damaged and path.stat().st_size == good


def test_point_in_time_damage_seen_by_a_writable_reader_fails_closed(tmp_path: Path) -> None:
    path = sample_wal(tmp_path / "wal.log", records=3)
    wal = FileAgreementWal(path, recovery=RecoveryMode.POINT_IN_TIME)
    with open(path, "ab") as out:
        out.write(encode_record(RecordType.WAL_ENTRIES, 7, b"\x80"))  # a sequence gap
    with pytest.raises(DecodeError, match="sequence gap"):
        wal.load()  # only a writer, under the exclusive lock, may cut
    assert not list(tmp_path.glob("*.damaged-*"))


# -- inspect: per-operation summaries from the WAL index --------------------------------


def test_inspect_summarises_each_operation_from_the_wal_index(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    entries = [
        esc("b", L.NONE, L.PROVISIONAL, 7),
        ev("a", "a/e", L.SOFT_SAFE, 3),
        gate("b", L.NONE, 2),  # ticks need not be ordered
        fin("a", F.FINALIZED, 9),
        gate("c", L.SOFT_SAFE, 0),
    ]
    wal = FileAgreementWal(path)
    wal.append_batch(entries[:2])
    wal.append_batch(entries[2:])
    report = inspect_log(path)
    assert [
        (s.operation_id, s.entries, s.proven_level, s.first_tick, s.last_tick)
        for s in report.operations
    ] == [
        ("a", 2, L.FINALIZED, 3, 9),
        ("b", 2, L.PROVISIONAL, 2, 7),
        ("c", 1, L.NONE, 0, 0),
    ]
    assert list(report.operations) == [wal.operation_summary(op) for op in "abc"]
    cache = tmp_path / "cache.log"
    FileEvidenceOutcomeCache(cache).put(binding("e"))
    assert inspect_log(cache).operations == ()


# -- the cyclic garbage collector ----------------------------------------------------


class GcRecordingFS(FileSystem):
    """Notes whether the cyclic collector ran while each chunk of a log
    file (not of a segment index) was read."""

    def __init__(self) -> None:
        self.collecting: list[bool] = []

    def read_at(self, fd: int, offset: int, length: int, path: str) -> bytes:
        if path.endswith(".log"):
            self.collecting.append(gc.isenabled())
        return super().read_at(fd, offset, length, path)


def test_replay_and_load_pause_the_collector_and_restore_it(tmp_path: Path) -> None:
    path = sample_wal(tmp_path / "wal.log")
    with FileAgreementWal(path, segment_bytes=300) as wal:  # some sealed segments
        wal.append(esc("late", L.NONE, L.SOFT_SAFE, 100))
    fs = GcRecordingFS()
    assert gc.isenabled()
    with FileAgreementWal(path, read_only=True, fs=fs) as wal:
        assert fs.collecting and not any(fs.collecting)  # replaying the active segment
        assert gc.isenabled()
        fs.collecting.clear()
        assert len(wal.load().entries) == 41
        assert fs.collecting and not any(fs.collecting)  # streaming the sealed ones
        assert gc.isenabled()
        assert sum(len(part) for part in wal.scan()) == 41  # a generator: no pause across yields
        assert gc.isenabled()
        gc.disable()
        try:  # a collector the caller disabled stays disabled
            assert len(wal.read_since(0)) == 39  # the two entries at tick 0 are not after it
            assert not gc.isenabled()
        finally:
            gc.enable()


def test_a_program_s_frozen_objects_stay_frozen_through_a_load(tmp_path: Path) -> None:
    path = sample_wal(tmp_path / "wal.log")
    gc.freeze()
    frozen = gc.get_freeze_count()
    try:
        with FileAgreementWal(path, read_only=True) as wal:
            assert len(wal.load().entries) == 40
        assert gc.get_freeze_count() == frozen and gc.isenabled()
    finally:
        gc.unfreeze()


def test_a_big_load_leaves_nothing_frozen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from durability.backends import logstate

    monkeypatch.setattr(logstate, "_MANY_OBJECTS", 0)  # every block counts as big
    path = sample_wal(tmp_path / "wal.log")
    with FileAgreementWal(path, read_only=True) as wal:
        entries = wal.load().entries
    assert len(entries) == 40 and gc.get_freeze_count() == 0 and gc.isenabled()
    assert gc.is_tracked(entries[0])  # still collectable: filed as old, not frozen


def test_a_failed_replay_restores_the_collector(tmp_path: Path) -> None:
    path = sample_wal(tmp_path / "wal.log")
    offsets = record_offsets(path)
    with path.open("r+b") as f:  # damage a record in the middle
        f.seek(offsets[5] + HEADER_SIZE)
        f.write(b"\xff\xff")
    with pytest.raises(DecodeError):
        FileAgreementWal(path)
    assert gc.isenabled()
