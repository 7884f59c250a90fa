"""Instances of the file backends (FORMAT.md §2, "instances" and "a sync
policy"): after fork, under group commit, and while closing. Nothing becomes
visible to any reader before the flush covering it succeeded."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path

import pytest

from durability import (
    AgreementLevel,
    AgreementState,
    AgreementWalHandler,
    EffectOutcome,
    EffectRequest,
    LogPoisonedError,
    StorageError,
    WalSyncRequest,
)
from durability.backends.file import FileAgreementWal, FileEvidenceOutcomeCache, SyncPolicy
from durability.fileio import FileSystem
from tests.helpers import L, binding, esc, gate

# -- fork ----------------------------------------------------------------------------

PER_CHILD = 150


def _child_appends(wal: FileAgreementWal, name: str) -> None:
    for tick in range(PER_CHILD):
        wal.append(gate(name, L.NONE, tick))


def test_instance_used_after_fork_reopens_its_own_file(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path)
    wal.append(gate("parent", L.NONE, 0))
    fork = multiprocessing.get_context("fork")
    children = [fork.Process(target=_child_appends, args=(wal, f"child{i}")) for i in range(2)]
    for child in children:
        child.start()
    for tick in range(1, PER_CHILD):  # the parent keeps appending meanwhile
        wal.append(gate("parent", L.NONE, tick))
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    entries = FileAgreementWal(path).load().entries  # the log opens, nothing lost
    for name in ("parent", "child0", "child1"):
        assert [e.tick for e in entries if e.operation_id == name] == list(range(PER_CHILD))
    assert len(wal.load().entries) == 3 * PER_CHILD  # the parent's instance still works


def _child_reads_and_writes(cache: FileEvidenceOutcomeCache, out: multiprocessing.Queue) -> None:
    cache.put(binding("from-child"))
    out.put((cache.get("from-parent") is not None, os.getpid()))


def test_cache_after_fork_sees_the_parents_bindings_and_adds_its_own(tmp_path: Path) -> None:
    cache = FileEvidenceOutcomeCache(tmp_path / "cache.log")
    cache.put(binding("from-parent"))
    fork = multiprocessing.get_context("fork")
    out: multiprocessing.Queue = fork.Queue()
    child = fork.Process(target=_child_reads_and_writes, args=(cache, out))
    child.start()
    seen, pid = out.get(timeout=60)
    child.join(60)
    assert seen and pid != os.getpid() and child.exitcode == 0
    assert cache.get("from-child") == binding("from-child")


# -- group commit: nothing visible before its flush ------------------------------------


class GatedFS(FileSystem):
    """A file system whose `sync` waits for `release` (and can fail), and that
    records every descriptor synced and closed."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.fail = False
        self.closed: set[int] = set()
        self.synced_after_close: list[int] = []

    def sync(self, fd: int, path: str) -> None:
        self.entered.set()
        self.release.wait(30)
        if fd in self.closed:
            self.synced_after_close.append(fd)
        if self.fail:
            raise StorageError(f"fsync {path}: Input/output error")
        super().sync(fd, path)

    def open_rw(self, path: str, *, create: bool = False) -> int:
        fd = super().open_rw(path, create=create)
        self.closed.discard(fd)
        return fd

    def close(self, fd: int) -> None:
        self.closed.add(fd)
        super().close(fd)


@pytest.mark.parametrize("policy", [SyncPolicy.GROUP, SyncPolicy.DURABLE])
def test_failed_flush_leaves_nothing_any_reader_can_see(tmp_path: Path, policy: SyncPolicy) -> None:
    fs = GatedFS()
    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path, sync=policy, fs=fs)
    wal.append(esc("op", L.NONE, L.PROVISIONAL, 1))
    before = path.read_bytes()
    fs.fail = True
    with pytest.raises(LogPoisonedError):
        wal.append(esc("op", L.PROVISIONAL, L.SOFT_SAFE, 2))
    fs.fail = False
    assert path.read_bytes() == before
    assert len(wal.load().entries) == 1  # this instance
    other = FileAgreementWal(path)
    assert len(other.load().entries) == 1  # another instance
    other.append(esc("op", L.PROVISIONAL, L.PROVISIONAL, 3))  # builds on what is durable
    with pytest.raises(LogPoisonedError):
        wal.append(esc("op", L.PROVISIONAL, L.SOFT_SAFE, 4))


def test_failed_group_flush_is_not_a_cache_hit(tmp_path: Path) -> None:
    fs = GatedFS()
    cache = FileEvidenceOutcomeCache(tmp_path / "cache.log", sync=SyncPolicy.GROUP, fs=fs)
    fs.fail = True
    with pytest.raises(LogPoisonedError):
        cache.put_if_absent(binding("e1"))
    fs.fail = False
    assert cache.get("e1") is None
    assert FileEvidenceOutcomeCache(tmp_path / "cache.log").get("e1") is None


class _Inner:
    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        return EffectOutcome.success()


def test_retried_wal_sync_after_failed_group_flush_does_not_cross_the_gate(
    tmp_path: Path,
) -> None:
    fs = GatedFS()
    wal = FileAgreementWal(tmp_path / "wal.log", sync=SyncPolicy.GROUP, fs=fs)
    handler = AgreementWalHandler(_Inner(), wal)
    sync = WalSyncRequest(
        operation_id="op",
        downstream_coroutine_id="apply",
        gate_level=AgreementLevel.SOFT_SAFE,
        agreement_state=AgreementState(
            operation_id="op", contract_name="kv", level=AgreementLevel.SOFT_SAFE
        ),
        tick=5,
    )
    fs.fail = True
    first = handler.wal_sync(sync)
    fs.fail = False
    second = handler.wal_sync(sync)
    assert first.failure is not None and second.failure is not None
    assert not second.is_success
    assert wal.load().entries == ()
    assert FileAgreementWal(tmp_path / "wal.log").load().entries == ()


def test_group_append_is_invisible_to_other_instances_until_flushed(tmp_path: Path) -> None:
    fs = GatedFS()
    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path, sync=SyncPolicy.GROUP, fs=fs)
    other = FileAgreementWal(path)
    fs.release.clear()
    fs.entered.clear()
    writer = threading.Thread(target=wal.append, args=(gate("op", L.NONE, 1),))
    writer.start()
    assert fs.entered.wait(30)  # the append is inside its flush
    seen: list[int] = []
    readers = [
        threading.Thread(target=lambda: seen.append(len(other.load().entries))),
        threading.Thread(target=lambda: seen.append(len(wal.load().entries))),
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(0.3)
    assert 1 not in seen  # nobody saw the record before its flush finished
    fs.release.set()
    writer.join(30)
    for reader in readers:
        reader.join(30)
    assert seen == [1, 1]


def test_group_commit_shares_one_flush_between_waiting_appenders(tmp_path: Path) -> None:
    fs = GatedFS()
    wal = FileAgreementWal(tmp_path / "wal.log", sync=SyncPolicy.GROUP, fs=fs)
    fs.release.clear()
    fs.entered.clear()
    first = threading.Thread(target=wal.append, args=(gate("a", L.NONE, 1),))
    first.start()
    assert fs.entered.wait(30)
    calls: list[int] = []
    original = fs.sync

    def counting(fd: int, path: str) -> None:
        calls.append(fd)
        original(fd, path)

    fs.sync = counting  # type: ignore[method-assign]
    waiting = [
        threading.Thread(target=wal.append, args=(gate(f"w{i}", L.NONE, 2),)) for i in range(5)
    ]
    for thread in waiting:
        thread.start()
    while wal._log.queued < 5:  # all five queued behind the flush in flight
        threading.Event().wait(0.01)
    fs.release.set()
    for thread in [first, *waiting]:
        thread.join(30)
    assert len(calls) == 1  # the five queued appends shared one flush
    assert len(FileAgreementWal(tmp_path / "wal.log").load().entries) == 6


def test_group_commit_rejects_only_the_invalid_append_of_a_shared_flush(tmp_path: Path) -> None:
    fs = GatedFS()
    wal = FileAgreementWal(tmp_path / "wal.log", sync=SyncPolicy.GROUP, fs=fs)
    wal.append(esc("op", L.NONE, L.SOFT_SAFE, 1))
    fs.release.clear()
    fs.entered.clear()
    first = threading.Thread(target=wal.append, args=(gate("a", L.NONE, 1),))
    first.start()
    assert fs.entered.wait(30)
    errors: list[BaseException] = []

    def append(entry: object) -> None:
        try:
            wal.append(entry)  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    bad = threading.Thread(target=append, args=(esc("op", L.NONE, L.PROVISIONAL, 2),))
    good = threading.Thread(target=append, args=(esc("op", L.SOFT_SAFE, L.FINALIZED, 3),))
    bad.start()
    while wal._log.queued < 1:
        threading.Event().wait(0.01)
    good.start()
    while wal._log.queued < 2:
        threading.Event().wait(0.01)
    fs.release.set()
    for thread in (first, bad, good):
        thread.join(30)
    assert [type(e).__name__ for e in errors] == ["EscalationOrderError"]
    levels = [
        e.new_level
        for e in FileAgreementWal(tmp_path / "wal.log").load().entries[1:]
        if hasattr(e, "new_level")
    ]
    assert levels == [L.FINALIZED]


# -- close ---------------------------------------------------------------------------


def test_close_waits_for_the_flush_in_flight(tmp_path: Path) -> None:
    fs = GatedFS()
    wal = FileAgreementWal(tmp_path / "wal.log", sync=SyncPolicy.GROUP, fs=fs)
    fs.release.clear()
    fs.entered.clear()
    writer = threading.Thread(target=wal.append, args=(gate("op", L.NONE, 1),))
    writer.start()
    assert fs.entered.wait(30)
    closer = threading.Thread(target=wal.close)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive()  # close() waits while the flush is in flight
    fs.release.set()
    writer.join(30)
    closer.join(30)
    assert fs.synced_after_close == []
    assert len(FileAgreementWal(tmp_path / "wal.log").load().entries) == 1
    with pytest.raises(StorageError, match="closed"):
        wal.append(gate("op", L.NONE, 2))


class NoTruncateFS(GatedFS):
    """Sync fails and so does the truncation that would drop the unsynced record."""

    def truncate(self, fd: int, length: int, path: str) -> None:
        raise StorageError(f"truncate {path}: Input/output error")


def test_unsynced_record_that_cannot_be_cut_stays_invisible_to_its_instance(
    tmp_path: Path,
) -> None:
    fs = NoTruncateFS()
    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path, fs=fs)
    wal.append(gate("kept", L.NONE, 1))
    fs.fail = True
    with pytest.raises(LogPoisonedError):
        wal.append(gate("unsynced", L.NONE, 2))
    fs.fail = False
    assert [e.operation_id for e in wal.load().entries] == ["kept"]
    assert wal.read_since(1) == []


def test_poisoned_instance_still_reads_what_others_append_durably(tmp_path: Path) -> None:
    fs = GatedFS()
    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path, fs=fs)
    fs.fail = True
    with pytest.raises(LogPoisonedError):
        wal.append(gate("lost", L.NONE, 1))
    fs.fail = False
    FileAgreementWal(path).append(gate("theirs", L.NONE, 2))
    assert [e.operation_id for e in wal.load().entries] == ["theirs"]


class SecondSyncGatedFS(GatedFS):
    """Blocks the first sync on `release` and the second on `second`."""

    def __init__(self) -> None:
        super().__init__()
        self.second = threading.Event()
        self.second_entered = threading.Event()
        self.syncs = 0

    def sync(self, fd: int, path: str) -> None:
        self.syncs += 1
        if self.syncs == 2:
            self.second_entered.set()
            self.second.wait(30)
        super().sync(fd, path)


def test_a_queued_append_returns_only_after_the_flush_that_covers_it(tmp_path: Path) -> None:
    # a follower woken when one leader finishes must not take "done" from the
    # next leader before that leader's own write and flush
    for trial in range(30):
        fs = SecondSyncGatedFS()
        wal = FileAgreementWal(tmp_path / f"wal{trial}.log", sync=SyncPolicy.GROUP, fs=fs)
        fs.syncs = 0
        fs.release.clear()
        fs.entered.clear()
        first = threading.Thread(target=wal.append, args=(gate("a", L.NONE, 1),))
        first.start()
        assert fs.entered.wait(30)
        returned: list[str] = []

        def append(name: str, wal: FileAgreementWal = wal, returned: list[str] = returned) -> None:
            wal.append(gate(name, L.NONE, 2))
            returned.append(name)

        queued = [threading.Thread(target=append, args=(f"q{i}",)) for i in range(2)]
        for thread in queued:
            thread.start()
        while wal._log.queued < 2:
            threading.Event().wait(0.001)
        fs.release.set()  # the first flush ends; the queued two share the second
        assert fs.second_entered.wait(30)
        for thread in queued:
            thread.join(0.05)
        assert returned == []  # nobody returned while the covering flush is in flight
        fs.second.set()
        for thread in [first, *queued]:
            thread.join(30)
        assert sorted(returned) == ["q0", "q1"]
