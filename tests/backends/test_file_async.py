"""asyncio appenders (issue: group commit without blocking the event loop):
tasks appending concurrently share flushes, no file I/O runs on the event
loop's thread, and a failed flush reaches every task it covered."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from durability import EffectOutcome, EffectRequest, EvidencePersistenceHandler, LogPoisonedError
from durability.backends.file import FileAgreementWal, FileEvidenceOutcomeCache, SyncPolicy
from durability.fileio import FileSystem
from tests.helpers import L, gate


class ThreadRecordingFS(FileSystem):
    """Records the thread of every write and sync; can hold the first sync
    until released, and fail syncs."""

    def __init__(self) -> None:
        self.io_threads: set[int] = set()
        self.syncs = 0
        self.hold_first = threading.Event()
        self.hold_first.set()
        self.first_entered = threading.Event()
        self.fail = False

    def write_at(self, fd: int, data: bytes, offset: int, path: str) -> None:
        self.io_threads.add(threading.get_ident())
        super().write_at(fd, data, offset, path)

    def sync(self, fd: int, path: str) -> None:
        self.io_threads.add(threading.get_ident())
        self.syncs += 1
        if self.syncs == 1:
            self.first_entered.set()
            self.hold_first.wait(30)
        if self.fail:
            from durability import StorageError

            raise StorageError(f"fsync {path}: Input/output error")
        super().sync(fd, path)


def test_tasks_appending_concurrently_share_flushes_off_the_loop(tmp_path: Path) -> None:
    fs = ThreadRecordingFS()
    wal = FileAgreementWal(tmp_path / "wal.log", sync=SyncPolicy.GROUP, fs=fs)
    fs.syncs, fs.io_threads = 0, set()
    fs.hold_first.clear()

    async def main() -> int:
        first = asyncio.create_task(wal.append_async(gate("t0", L.NONE, 0)))
        while not fs.first_entered.is_set():
            await asyncio.sleep(0.001)
        rest = [
            asyncio.create_task(wal.append_async(gate(f"t{i}", L.NONE, i))) for i in range(1, 64)
        ]
        while wal._log.queued < 63:  # every task queued behind the flush in flight
            await asyncio.sleep(0.001)
        fs.hold_first.set()
        await asyncio.gather(first, *rest)
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert loop_thread not in fs.io_threads  # the event loop never wrote or synced
    assert fs.syncs == 2  # the 63 queued appends shared one flush
    entries = FileAgreementWal(tmp_path / "wal.log").load().entries
    assert sorted(e.operation_id for e in entries) == sorted(f"t{i}" for i in range(64))


def test_a_failed_flush_reaches_every_task_it_covered(tmp_path: Path) -> None:
    fs = ThreadRecordingFS()
    wal = FileAgreementWal(tmp_path / "wal.log", sync=SyncPolicy.GROUP, fs=fs)
    fs.syncs = 0
    fs.fail = True

    async def main() -> list[BaseException | None]:
        results = await asyncio.gather(
            *[wal.append_async(gate(f"t{i}", L.NONE, i)) for i in range(16)],
            return_exceptions=True,
        )
        return list(results)

    results = asyncio.run(main())
    assert all(isinstance(r, LogPoisonedError) for r in results)
    assert wal.load().entries == ()
    assert FileAgreementWal(tmp_path / "wal.log").load().entries == ()


@pytest.mark.parametrize("policy", [SyncPolicy.DURABLE, SyncPolicy.NONE])
def test_append_async_under_other_policies_runs_off_the_loop(
    tmp_path: Path, policy: SyncPolicy
) -> None:
    fs = ThreadRecordingFS()
    wal = FileAgreementWal(tmp_path / "wal.log", sync=policy, fs=fs)
    fs.io_threads = set()

    async def main() -> int:
        await asyncio.gather(*[wal.append_async(gate(f"t{i}", L.NONE, i)) for i in range(8)])
        return threading.get_ident()

    assert asyncio.run(main()) not in fs.io_threads
    assert len(wal.load().entries) == 8


def test_async_and_threaded_appenders_mix(tmp_path: Path) -> None:
    wal = FileAgreementWal(tmp_path / "wal.log", sync=SyncPolicy.GROUP)
    threads = [
        threading.Thread(
            target=lambda i=i: [wal.append(gate(f"th{i}", L.NONE, k)) for k in range(20)]
        )
        for i in range(4)
    ]
    for thread in threads:
        thread.start()

    async def main() -> None:
        await asyncio.gather(
            *[wal.append_async(gate(f"task{i}", L.NONE, k)) for i in range(20) for k in range(3)]
        )

    asyncio.run(main())
    for thread in threads:
        thread.join(60)
    entries = FileAgreementWal(tmp_path / "wal.log").load().entries
    assert len(entries) == 4 * 20 + 20 * 3
    for i in range(4):
        assert [e.tick for e in entries if e.operation_id == f"th{i}"] == list(range(20))


class GatedAsyncStorage:
    """An async effect that waits for `open` before it completes."""

    def __init__(self) -> None:
        self.calls = 0
        self.open: asyncio.Event | None = None

    async def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        self.calls += 1
        assert self.open is not None
        await self.open.wait()
        return EffectOutcome.success({"id": request.operation_id})


def test_async_evidence_handler_binds_off_the_loop_and_shares_flushes(tmp_path: Path) -> None:
    fs = ThreadRecordingFS()
    cache = FileEvidenceOutcomeCache(tmp_path / "cache.log", sync=SyncPolicy.GROUP, fs=fs)
    fs.io_threads, fs.syncs = set(), 0
    storage = GatedAsyncStorage()
    handler = EvidencePersistenceHandler(storage, cache, lambda r: r.operation_id)

    def request(i: int) -> EffectRequest:
        return EffectRequest(
            interface_name="kv", operation_name="put", tick=i, operation_id=f"e{i}"
        )

    async def main() -> tuple[int, list[EffectOutcome]]:
        storage.open = asyncio.Event()
        calls = [asyncio.create_task(handler.handle_effect(request(i))) for i in range(32)]
        while storage.calls < 32:  # every effect is running: all 32 bind together
            await asyncio.sleep(0.001)
        # each effect's intent (API.md §11) was made durable before it ran:
        # those 32 writes shared flushes too; count the binds' alone
        assert fs.syncs <= 8
        fs.syncs = 0
        storage.open.set()
        outcomes = await asyncio.gather(*calls)
        again = await asyncio.gather(*[handler.handle_effect(request(i)) for i in range(32)])
        assert again == outcomes  # answered from the cache
        return threading.get_ident(), list(outcomes)

    loop_thread, outcomes = asyncio.run(main())
    assert loop_thread not in fs.io_threads
    assert all(o.is_success for o in outcomes) and storage.calls == 32
    assert fs.syncs <= 3  # 32 binds arriving together shared a few flushes
    bound = FileEvidenceOutcomeCache(tmp_path / "cache.log").get("e7")
    assert bound is not None and bound.outcome == EffectOutcome.success({"id": "e7"})
