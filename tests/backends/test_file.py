"""The append-only file backends: the contract, then the log's own rules
(specs/log_format.md), checked by poking bytes as LevelDB's log_test does."""

from __future__ import annotations

import errno
import itertools
import logging
import os
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from durability import (
    AgreementWalArtifact,
    ArtifactTooLargeError,
    DecodeError,
    DurabilityError,
    DurableRecoveryMetadata,
    EscalationOrderError,
    EvidenceOutcomeCacheArtifact,
    LogPoisonedError,
    PayloadKindError,
    PersistedDurabilityArtifact,
    StorageError,
)
from durability.backends import inspection, logread
from durability.backends.file import (
    FileAgreementWal,
    FileEvidenceOutcomeCache,
    RecoveryMode,
    SyncPolicy,
    export_log,
    inspect_log,
)
from durability.backends.logstate import WalState
from durability.backends.modes import TornTailWarning
from durability.fileio import FileSystem
from durability.framing import HEADER_SIZE, RecordType, encode_record
from durability.testing import AgreementWalContract, EvidenceOutcomeCacheContract
from tests.helpers import FAILED, L, binding, esc, ev, gate

VECTOR = Path(__file__).parents[2] / "specs" / "vectors" / "wal_log_v1.hex"

# -- the contract ----------------------------------------------------------------


class TestFileWal(AgreementWalContract):
    sync = SyncPolicy.DURABLE

    def make_wal(self, tmp_path: Path) -> FileAgreementWal:
        return FileAgreementWal(tmp_path / "wal.log", sync=self.sync)

    def reopen(self, backend: Any, tmp_path: Path) -> FileAgreementWal:
        return FileAgreementWal(tmp_path / "wal.log", sync=self.sync)

    def test_processes_appending_through_their_own_handles_lose_nothing(
        self, tmp_path: Path
    ) -> None:
        super().test_processes_appending_through_their_own_handles_lose_nothing(tmp_path)
        report = inspect_log(tmp_path / "wal.log")  # and the log holds no torn record
        assert report.torn_tail is None
        assert [r.seq for r in report.records] == list(range(len(report.records)))


class TestFileWalGroupSync(TestFileWal):
    sync = SyncPolicy.GROUP


class TestFileWalNoSync(TestFileWal):
    sync = SyncPolicy.NONE


class TestFileCache(EvidenceOutcomeCacheContract):
    def make_cache(self, tmp_path: Path) -> FileEvidenceOutcomeCache:
        return FileEvidenceOutcomeCache(tmp_path / "cache.log")

    def reopen(self, backend: Any, tmp_path: Path) -> FileEvidenceOutcomeCache:
        return FileEvidenceOutcomeCache(tmp_path / "cache.log")


# -- byte-poking helpers (LevelDB log_test) --------------------------------------


def flip_byte(path: Path, offset: int, mask: int = 0xFF) -> None:
    """Invert the bits `mask` of the byte at `offset` (negative: from the end)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def truncate_to(path: Path, size: int) -> None:
    """Cut the file to `size` bytes (LevelDB's ShrinkSize)."""
    os.truncate(path, size)


def append_bytes(path: Path, data: bytes) -> None:
    with path.open("ab") as out:
        out.write(data)


def append_zeros(path: Path, count: int) -> None:
    """What XFS can leave after power loss: the size grew, the data never landed."""
    append_bytes(path, bytes(count))


def sample_wal(tmp_path: Path, records: int = 3) -> Path:
    """A WAL log with a verified base and `records` one-entry records."""
    path = tmp_path / "wal.log"
    with FileAgreementWal(path) as wal:
        for tick in range(records):
            wal.append(gate(f"op{tick}", L.NONE, tick))
    return path


def record_offsets(path: Path) -> list[int]:
    return [r.offset for r in inspect_log(path).records]


# -- creating and opening ----------------------------------------------------------


def test_created_file_mode_is_0600(tmp_path: Path) -> None:
    FileAgreementWal(tmp_path / "wal.log")
    FileEvidenceOutcomeCache(tmp_path / "cache.log")
    for name in ("wal.log", "cache.log"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600


def test_missing_file_is_created_as_a_verified_empty_log(tmp_path: Path) -> None:
    wal = FileAgreementWal(str(tmp_path / "wal.log"))
    assert wal.base_verified and wal.torn_tail is None
    assert wal.path == str(tmp_path / "wal.log")
    report = inspect_log(tmp_path / "wal.log")
    assert report.kind == "agreement_wal" and report.base_verified
    assert [r.type for r in report.records] == ["BASE_CHECKSUM"]
    assert list(tmp_path.iterdir()) == [tmp_path / "wal.log"]  # no temporary left


def test_zero_length_file_is_an_empty_log(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    path.touch()
    wal = FileAgreementWal(path)
    assert wal.load() == AgreementWalArtifact() and path.stat().st_size == 0
    wal.append(gate("op", L.NONE, 1))
    again = FileAgreementWal(path)
    assert list(again.load().entries) == [gate("op", L.NONE, 1)] and again.base_verified
    assert FileEvidenceOutcomeCache(tmp_path / "empty").load() == EvidenceOutcomeCacheArtifact()


def test_concurrent_creation_is_safe(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    script = textwrap.dedent(
        f"""
        from durability.backends.file import FileAgreementWal
        from durability import VisibilityGateCrossing, AgreementLevel
        import sys
        wal = FileAgreementWal({str(path)!r})
        wal.append(VisibilityGateCrossing(operation_id=sys.argv[1],
            downstream_coroutine_id="c", gate_level=AgreementLevel.NONE, tick=1))
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, f"p{i}"]) for i in range(6)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 6
    wal = FileAgreementWal(path)
    assert sorted(e.operation_id for e in wal.load().entries) == [f"p{i}" for i in range(6)]
    assert wal.base_verified


def test_wrong_kind_raises_payload_kind_error(tmp_path: Path) -> None:
    FileAgreementWal(tmp_path / "wal.log")
    FileEvidenceOutcomeCache(tmp_path / "cache.log")
    with pytest.raises(PayloadKindError) as wal_as_cache:
        FileEvidenceOutcomeCache(tmp_path / "wal.log")
    assert str(wal_as_cache.value) == (
        "persisted durability artifact contains an agreement WAL payload, "
        "not an evidence outcome cache"
    )
    with pytest.raises(PayloadKindError, match="evidence outcome cache payload, not an agreement"):
        FileAgreementWal(tmp_path / "cache.log")
    meta = tmp_path / "meta.cbor"
    PersistedDurabilityArtifact.recovery_metadata(
        DurableRecoveryMetadata(checkpoint_tick=1)
    ).write_to_path(meta)
    with pytest.raises(PayloadKindError, match="contains recovery metadata, not an agreement"):
        FileAgreementWal(meta)


def test_foreign_base_opens_and_accepts_appends(tmp_path: Path) -> None:
    path = tmp_path / "wal.cbor"
    first = esc("op", L.NONE, L.PROVISIONAL, 1)
    PersistedDurabilityArtifact.agreement_wal(AgreementWalArtifact(entries=[first])).write_to_path(
        path
    )
    wal = FileAgreementWal(path)
    assert not wal.base_verified and list(wal.load().entries) == [first]
    with pytest.raises(EscalationOrderError):
        wal.append(esc("op", L.NONE, L.NONE, 2))  # validated against the base
    wal.append(esc("op", L.PROVISIONAL, L.SOFT_SAFE, 2))
    again = FileAgreementWal(path)
    assert not again.base_verified
    assert list(again.load().entries) == [first, esc("op", L.PROVISIONAL, L.SOFT_SAFE, 2)]
    assert [r.seq for r in inspect_log(path).records] == [0]


def test_foreign_cache_base_keeps_first_binding_per_id(tmp_path: Path) -> None:
    path = tmp_path / "cache.cbor"
    entries = [binding("e1"), binding("e1", FAILED), binding("e2")]
    PersistedDurabilityArtifact.evidence_outcome_cache(
        EvidenceOutcomeCacheArtifact(entries=entries)
    ).write_to_path(path)
    cache = FileEvidenceOutcomeCache(path)
    assert cache.get("e1") == binding("e1")  # as EvidenceOutcomeCacheArtifact.get
    cache.put(binding("e1", FAILED))
    assert FileEvidenceOutcomeCache(path).get("e1") == binding("e1", FAILED)


def test_garbage_files_raise_only_durability_errors(tmp_path: Path) -> None:
    samples = [b"\xff", b"hello world", b"\xa1aa\x01", b"\x00\x00\x01", os.urandom(300)]
    for index, data in enumerate(samples):
        path = tmp_path / f"g{index}"
        path.write_bytes(data)
        with pytest.raises(DurabilityError):
            FileAgreementWal(path)
    with pytest.raises(StorageError, match="nope"):
        FileAgreementWal(tmp_path / "nope" / "wal.log")


# -- torn tails and damage ---------------------------------------------------------


def _reopen_repaired(path: Path) -> FileAgreementWal:
    with pytest.warns(TornTailWarning):
        return FileAgreementWal(path)


def test_torn_header_is_truncated(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = sample_wal(tmp_path)
    clean = path.read_bytes()
    append_bytes(path, encode_record(RecordType.WAL_ENTRIES, 4, b"\x80")[: HEADER_SIZE - 1])
    with caplog.at_level(logging.WARNING, logger="durability"):
        wal = _reopen_repaired(path)
    assert wal.torn_tail is not None
    assert (wal.torn_tail.offset, wal.torn_tail.dropped) == (len(clean), HEADER_SIZE - 1)
    assert "incomplete record header" in wal.torn_tail.reason
    assert path.read_bytes() == clean
    assert f"torn tail at byte offset {len(clean)}" in caplog.text
    assert len(wal.load().entries) == 3


def test_torn_payload_is_truncated(tmp_path: Path) -> None:
    path = sample_wal(tmp_path)
    last = record_offsets(path)[-1]
    truncate_to(path, path.stat().st_size - 3)
    wal = _reopen_repaired(path)
    assert wal.torn_tail is not None and wal.torn_tail.offset == last
    assert "runs past end of file" in wal.torn_tail.reason
    assert len(wal.load().entries) == 2 and path.stat().st_size == last


def test_torn_last_record_with_bad_checksum_is_truncated(tmp_path: Path) -> None:
    path = sample_wal(tmp_path)
    last = record_offsets(path)[-1]
    flip_byte(path, -1)
    wal = _reopen_repaired(path)
    assert wal.torn_tail is not None and wal.torn_tail.offset == last
    wal.append(gate("later", L.NONE, 9))
    assert [e.operation_id for e in FileAgreementWal(path).load().entries][-1] == "later"


def test_zero_run_tail_is_torn(tmp_path: Path) -> None:
    path = sample_wal(tmp_path)
    size = path.stat().st_size
    append_zeros(path, 4096)
    wal = _reopen_repaired(path)
    assert wal.torn_tail is not None and (wal.torn_tail.offset, wal.torn_tail.dropped) == (
        size,
        4096,
    )
    assert path.stat().st_size == size and len(wal.load().entries) == 3


def test_torn_tail_report_never_goes_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = sample_wal(tmp_path)
    append_zeros(path, 10)
    _reopen_repaired(path)
    assert capsys.readouterr().out == ""


def test_header_crc_failure_mid_log_fails_closed(tmp_path: Path) -> None:
    path = sample_wal(tmp_path)
    before = path.read_bytes()
    second = record_offsets(path)[2]
    flip_byte(path, second + 17)  # the length field
    damaged = path.read_bytes()
    with pytest.raises(DecodeError, match=f"header checksum mismatch at byte offset {second}"):
        FileAgreementWal(path)
    assert path.read_bytes() == damaged != before


def test_header_crc_failure_in_last_record_fails_closed(tmp_path: Path) -> None:
    path = sample_wal(tmp_path)
    last = record_offsets(path)[-1]
    flip_byte(path, last + 1)
    with pytest.raises(DecodeError, match=f"byte offset {last}"):
        FileAgreementWal(path)


def test_payload_crc_failure_mid_log_fails_closed(tmp_path: Path) -> None:
    path = sample_wal(tmp_path)
    second = record_offsets(path)[2]
    flip_byte(path, second + HEADER_SIZE + 3)
    with pytest.raises(DecodeError, match="payload checksum mismatch in record 2"):
        FileAgreementWal(path)


def test_sequence_gap_fails_closed(tmp_path: Path) -> None:
    path = sample_wal(tmp_path)
    end = path.stat().st_size
    append_bytes(path, encode_record(RecordType.WAL_ENTRIES, 5, b"\x80"))
    with pytest.raises(DecodeError, match=f"expected record 4, found 5 at byte offset {end}"):
        FileAgreementWal(path)


def test_record_of_the_other_kind_fails_closed(tmp_path: Path) -> None:
    path = sample_wal(tmp_path)
    append_bytes(path, encode_record(RecordType.CACHE_BINDINGS, 4, b"\x80"))
    with pytest.raises(DecodeError, match="CACHE_BINDINGS record in a WAL_ENTRIES log"):
        FileAgreementWal(path)


def test_out_of_order_escalation_in_file_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    FileAgreementWal(path).append(esc("op", L.NONE, L.SOFT_SAFE, 1))
    payload = WalState().encode([esc("op", L.NONE, L.PROVISIONAL, 2)])
    append_bytes(path, encode_record(RecordType.WAL_ENTRIES, 2, payload))
    with pytest.raises(DecodeError, match="reordered or regressed"):
        FileAgreementWal(path)


def test_damaged_toolkit_base_fails_closed(tmp_path: Path) -> None:
    path = sample_wal(tmp_path)
    flip_byte(path, path.read_bytes().index(b"telltale") + 2, 0x01)
    with pytest.raises(DecodeError, match="damaged base at byte offset 0"):
        FileAgreementWal(path)


def test_damaged_file_error_names_file_and_offset(tmp_path: Path) -> None:
    path = sample_wal(tmp_path)
    offset = record_offsets(path)[1]
    flip_byte(path, offset)
    for open_ in (FileAgreementWal, inspect_log, export_log):
        with pytest.raises(DecodeError) as info:
            open_(path)
        message = str(info.value)
        assert message.startswith("decode persisted durability artifact")
        assert str(path) in message and f"byte offset {offset}" in message


def test_absolute_consistency_refuses_torn_tail_and_keeps_file(tmp_path: Path) -> None:
    path = sample_wal(tmp_path)
    append_zeros(path, 7)
    torn = path.read_bytes()
    with pytest.raises(DecodeError, match="torn tail of 7 bytes"):
        FileAgreementWal(path, recovery=RecoveryMode.ABSOLUTE_CONSISTENCY)
    assert path.read_bytes() == torn
    truncate_to(path, len(torn) - 7)
    clean = FileAgreementWal(path, recovery=RecoveryMode.ABSOLUTE_CONSISTENCY)
    assert len(clean.load().entries) == 3 and clean.torn_tail is None


def test_point_in_time_keeps_prefix_and_copies_damaged_file(tmp_path: Path) -> None:
    path = sample_wal(tmp_path)
    second = record_offsets(path)[2]
    flip_byte(path, second + 5)
    damaged = path.read_bytes()
    with pytest.warns(TornTailWarning, match="copied to"):
        wal = FileAgreementWal(path, recovery=RecoveryMode.POINT_IN_TIME)
    assert wal.torn_tail is not None and wal.torn_tail.offset == second
    assert wal.torn_tail.copy_path == f"{path}.damaged-1"
    assert Path(wal.torn_tail.copy_path).read_bytes() == damaged
    assert path.stat().st_size == second and len(wal.load().entries) == 1
    wal.append(gate("after", L.NONE, 5))
    assert len(FileAgreementWal(path).load().entries) == 2


def test_torn_tail_left_by_a_crashed_writer_is_cut_before_the_next_append(
    tmp_path: Path,
) -> None:
    path = sample_wal(tmp_path)
    wal = FileAgreementWal(path)
    append_bytes(path, b"\x01\x02\x03")  # another writer died mid-header
    assert len(wal.load().entries) == 3  # readers skip it, change nothing
    with pytest.warns(TornTailWarning):
        wal.append(gate("next", L.NONE, 4))
    assert wal.torn_tail is not None and wal.torn_tail.dropped == 3
    assert len(FileAgreementWal(path).load().entries) == 4


# -- appends: atomicity, sync, poisoning ---------------------------------------------


def test_rejected_append_leaves_file_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path)
    wal.append(esc("op", L.NONE, L.SOFT_SAFE, 1))
    before = path.read_bytes()
    with pytest.raises(EscalationOrderError):
        wal.append(esc("op", L.SOFT_SAFE, L.PROVISIONAL, 2))
    with pytest.raises(EscalationOrderError):
        wal.append_batch([gate("op", L.NONE, 3), esc("op", L.NONE, L.PROVISIONAL, 3)])
    assert path.read_bytes() == before


def test_batch_is_one_record(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    FileAgreementWal(path).append_batch([ev("op", "e", L.SOFT_SAFE, 1), gate("op", L.NONE, 1)])
    assert [(r.type, r.entries) for r in inspect_log(path).records] == [
        ("BASE_CHECKSUM", 0),
        ("WAL_ENTRIES", 2),
    ]


class Counter:
    def __init__(self, real: Any) -> None:
        self.real, self.calls = real, 0

    def __call__(self, fd: int) -> None:
        self.calls += 1
        self.real(fd)


def _count_syncs(monkeypatch: pytest.MonkeyPatch) -> tuple[Counter, Counter]:
    datasync, fsync = Counter(os.fdatasync), Counter(os.fsync)
    monkeypatch.setattr(os, "fdatasync", datasync)
    monkeypatch.setattr(os, "fsync", fsync)
    return datasync, fsync


def test_fsync_called_during_append(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wal = FileAgreementWal(tmp_path / "wal.log")
    cache = FileEvidenceOutcomeCache(tmp_path / "cache.log")
    datasync, fsync = _count_syncs(monkeypatch)
    wal.append(gate("op", L.NONE, 1))
    assert datasync.calls + fsync.calls == 1
    wal.append_batch([gate("a", L.NONE, 2), gate("b", L.NONE, 2)])
    assert datasync.calls + fsync.calls == 2
    cache.put(binding("e"))
    cache.put_if_absent(binding("f"))
    assert datasync.calls + fsync.calls == 4
    cache.put_if_absent(binding("f"))  # already bound: nothing written
    assert datasync.calls + fsync.calls == 4


def test_sync_none_leaves_syncing_to_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = FileAgreementWal(tmp_path / "wal.log", sync=SyncPolicy.NONE)
    datasync, fsync = _count_syncs(monkeypatch)
    for tick in range(5):
        wal.append(gate("op", L.NONE, tick))
    assert datasync.calls + fsync.calls == 0
    wal.sync()
    assert datasync.calls + fsync.calls == 1


def test_group_sync_shares_syncs_between_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = FileAgreementWal(tmp_path / "wal.log", sync=SyncPolicy.GROUP)
    datasync, fsync = _count_syncs(monkeypatch)

    def worker(name: str) -> None:
        for tick in range(25):
            wal.append(gate(name, L.NONE, tick))

    threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= datasync.calls + fsync.calls <= 200
    assert len(FileAgreementWal(tmp_path / "wal.log").load().entries) == 200


class FailingFS(FileSystem):
    """Fails the next `sync` or `write_at` when told to."""

    fail_sync = False
    fail_write = False

    def sync(self, fd: int, path: str) -> None:
        if self.fail_sync:
            raise StorageError(f"fsync {path}: Input/output error")
        super().sync(fd, path)

    def write_at(self, fd: int, data: bytes, offset: int, path: str) -> None:
        if self.fail_write:
            super().write_at(fd, data[: len(data) // 2], offset, path)
            raise StorageError(f"write {path}: No space left on device")
        super().write_at(fd, data, offset, path)


def test_failed_fsync_poisons_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path)
    wal.append(gate("kept", L.NONE, 1))
    before = path.read_bytes()

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(LogPoisonedError, match="Input/output error"):
        wal.append(gate("lost", L.NONE, 2))
    monkeypatch.undo()
    with pytest.raises(LogPoisonedError, match="until reopened"):
        wal.append(gate("refused", L.NONE, 3))
    assert path.read_bytes() == before  # truncated back
    assert [e.operation_id for e in wal.load().entries] == ["kept"]
    again = FileAgreementWal(path)
    again.append(gate("after", L.NONE, 4))
    assert [e.operation_id for e in again.load().entries] == ["kept", "after"]


@pytest.mark.parametrize("sync", [SyncPolicy.DURABLE, SyncPolicy.GROUP])
def test_failed_write_poisons_log(tmp_path: Path, sync: SyncPolicy) -> None:
    fs = FailingFS()
    path = tmp_path / "cache.log"
    cache = FileEvidenceOutcomeCache(path, sync=sync, fs=fs)
    cache.put(binding("e1"))
    before = path.read_bytes()
    fs.fail_write = True
    with pytest.raises(LogPoisonedError, match="No space left"):
        cache.put(binding("e2"))
    fs.fail_write = False
    with pytest.raises(LogPoisonedError):
        cache.put(binding("e3"))
    assert path.read_bytes() == before and cache.get("e2") is None


def test_failed_group_sync_poisons_log(tmp_path: Path) -> None:
    fs = FailingFS()
    wal = FileAgreementWal(tmp_path / "wal.log", sync=SyncPolicy.GROUP, fs=fs)
    fs.fail_sync = True
    with pytest.raises(LogPoisonedError):
        wal.append(gate("op", L.NONE, 1))
    fs.fail_sync = False
    with pytest.raises(LogPoisonedError):
        wal.append(gate("op", L.NONE, 2))


# -- several instances and processes -------------------------------------------------


class ReadRecordingFS(FileSystem):
    def __init__(self) -> None:
        self.reads: list[tuple[int, int]] = []

    def read_at(self, fd: int, offset: int, length: int, path: str) -> bytes:
        self.reads.append((offset, length))
        return super().read_at(fd, offset, length, path)


def covered(reads: list[tuple[int, int]]) -> tuple[int, int]:
    """The range `reads` cover, checking they are in order, contiguous and bounded."""
    for (offset, length), (following, _) in itertools.pairwise(reads):
        assert following == offset + length, reads
    assert all(0 < length <= logread.READ_CHUNK_BYTES for _, length in reads), reads
    return reads[0][0], reads[-1][0] + reads[-1][1]


def test_appends_and_reads_never_reread_written_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logread, "READ_CHUNK_BYTES", 500)
    fs = ReadRecordingFS()
    path = sample_wal(tmp_path, records=20)
    wal = FileAgreementWal(path, fs=fs)
    assert covered(fs.reads) == (0, path.stat().st_size)  # open: the file, once, in order
    fs.reads.clear()
    for tick in range(10):
        wal.append(gate("mine", L.NONE, tick))
        wal.load()
    assert fs.reads == []  # our own appends are never read back
    end = path.stat().st_size
    FileAgreementWal(path).append_batch([gate("theirs", L.NONE, 99)] * 20)
    assert wal.read_since(98) == [gate("theirs", L.NONE, 99)] * 20
    assert covered(fs.reads) == (end, path.stat().st_size)  # only the new bytes


# -- instances -------------------------------------------------------------------


def test_dropping_instances_releases_their_files(tmp_path: Path) -> None:
    path = sample_wal(tmp_path)
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(2000):
        FileAgreementWal(path)
        FileEvidenceOutcomeCache(tmp_path / "cache.log")
    assert len(os.listdir("/proc/self/fd")) <= fds + 2


def test_close_and_context_manager(tmp_path: Path) -> None:
    with FileAgreementWal(tmp_path / "wal.log") as wal:
        wal.append(gate("op", L.NONE, 1))
    with pytest.raises(StorageError, match="closed"):
        wal.append(gate("op", L.NONE, 2))
    with pytest.raises(StorageError, match="closed"):
        wal.load()
    wal.close()  # idempotent
    with FileEvidenceOutcomeCache(tmp_path / "cache.log") as cache:
        cache.put(binding("e"))
    assert repr(cache) == f"FileEvidenceOutcomeCache({str(tmp_path / 'cache.log')!r})"


def test_enums_are_checked(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        FileAgreementWal(tmp_path / "wal.log", sync="durable")  # type: ignore[arg-type]


# -- inspect, export, golden bytes -------------------------------------------------


def test_inspect_log_reports_without_modifying(tmp_path: Path) -> None:
    path = sample_wal(tmp_path)
    append_zeros(path, 5)
    before = path.read_bytes()
    report = inspect_log(path)
    assert path.read_bytes() == before
    assert report.kind == "agreement_wal" and report.base_verified and report.base_bytes == 94
    assert [(r.type, r.seq, r.entries) for r in report.records] == [
        ("BASE_CHECKSUM", 0, 0),
        ("WAL_ENTRIES", 1, 1),
        ("WAL_ENTRIES", 2, 1),
        ("WAL_ENTRIES", 3, 1),
    ]
    assert report.entries == 3
    assert report.torn_tail is not None and report.torn_tail.dropped == 5
    empty = tmp_path / "empty"
    empty.touch()
    assert inspect_log(empty).kind is None


def test_export_log_writes_one_v1_artifact(tmp_path: Path) -> None:
    cache = FileEvidenceOutcomeCache(tmp_path / "cache.log")
    cache.put(binding("e1"))
    cache.put(binding("e2"))
    cache.put(binding("e1", FAILED))
    artifact = export_log(tmp_path / "cache.log")
    assert artifact.into_evidence_outcome_cache() == cache.load()
    out = tmp_path / "out.cbor"
    artifact.write_to_path(out)
    assert PersistedDurabilityArtifact.from_path(out) == artifact
    assert FileEvidenceOutcomeCache(out).load() == cache.load()  # and it opens as a log
    empty = tmp_path / "empty"
    empty.touch()
    with pytest.raises(PayloadKindError):
        export_log(empty)


def test_export_refuses_over_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = sample_wal(tmp_path)
    monkeypatch.setattr(inspection, "MAX_ARTIFACT_BYTES", 100)
    with pytest.raises(ArtifactTooLargeError):
        export_log(path)


def test_golden_wal_log_vector(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    with FileAgreementWal(path) as wal:
        wal.append(esc("op-1", L.NONE, L.PROVISIONAL, 1, "ev-1"))
        wal.append_batch(
            [ev("op-1", "ev-2", L.SOFT_SAFE, 2), esc("op-1", L.PROVISIONAL, L.SOFT_SAFE, 2, "ev-2")]
        )
    expected = bytes.fromhex("".join(VECTOR.read_text().split()))
    assert path.read_bytes() == expected
    assert len(expected) == 567
    assert [r.offset for r in inspect_log(path).records] == [94, 149, 274]
