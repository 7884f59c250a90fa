"""Power loss (issue 13, suite 2): what the disk may hold after the power goes.

* A log cut at every byte offset after its base, and a log whose tail from
  every such offset reads as zeros (size kept), reopens as a prefix of its
  entries: the torn tail is dropped and reported, nothing fails, nothing is
  invented. Read-only opens and ``inspect_log`` see the same prefix without
  cutting; ``ABSOLUTE_CONSISTENCY`` refuses exactly the torn ones.
* `PowerLossFileSystem` remembers what each sync covered; cutting the power
  (mid-write or between writes) keeps every synced append: under
  ``DURABLE`` and ``GROUP`` every acknowledged one, under ``NONE`` those
  covered by an explicit ``sync()`` (the rest may vanish, in order).

The model keeps a file's data as of its last data sync; directory entries
are taken as durable once the toolkit synced the directory (it always does
before acknowledging a new file).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from durability import DecodeError, StateDirectory, WalEntry
from durability.backends.file import (
    FileAgreementWal,
    RecoveryMode,
    SyncPolicy,
    inspect_log,
)
from durability.testing.faults import PowerLossFileSystem, Unsynced
from tests.helpers import L, ev, gate
from tests.reliability._logs import NO_SYNC, SmallLog, overwrite
from tests.reliability._scale import figure, rng, scaled


@pytest.fixture(params=["wal", "cache"])
def small_log(request: pytest.FixtureRequest, tmp_path: Path) -> SmallLog:
    return SmallLog(tmp_path / f"{request.param}.log", request.param)


def check_reopen(log: SmallLog, damaged: bytes) -> None:
    """Every way of opening `damaged` sees the writes before its first damaged
    record: read-only and ``inspect_log`` report the torn tail, a writer cuts
    it at that record, ``ABSOLUTE_CONSISTENCY`` refuses it."""
    bad = log.first_damaged(damaged)
    torn = bad is not None
    whole = [j for j, end in enumerate(log.ends) if end <= len(damaged)]
    kept = max(whole[-1] if whole else 0, 0) if bad is None else max(bad - 1, 0)
    overwrite(log.path, damaged)
    with log.open(read_only=True) as reader:
        assert list(reader.load().entries) == log.items[kept]
        assert (reader.torn_tail is not None) == torn
    report = inspect_log(log.path)
    assert (report.torn_tail is not None) == torn and report.artifact is not None
    assert list(report.artifact.entries) == log.items[kept]
    if torn:
        with pytest.raises(DecodeError) as refused:
            log.open(recovery=RecoveryMode.ABSOLUTE_CONSISTENCY)
        assert refused.value.path == str(log.path) and refused.value.offset is not None
    assert log.path.read_bytes() == damaged  # none of the above cut anything
    with log.open(fs=NO_SYNC) as writer:
        assert list(writer.load().entries) == log.items[kept]
        assert (writer.torn_tail is not None) == torn
        if bad is not None:
            assert writer.torn_tail is not None and writer.torn_tail.offset == log.starts[bad]
        writer_base_verified = writer.base_verified
    assert log.path.read_bytes() == (damaged if bad is None else damaged[: log.starts[bad]])
    assert writer_base_verified == (bad != 0)


def test_a_log_cut_at_every_offset_after_its_base_loads_a_prefix(small_log: SmallLog) -> None:
    offsets = range(small_log.base_end + 1, len(small_log.data) + 1)
    for offset in offsets:
        check_reopen(small_log, small_log.data[:offset])
    figure(f"power-cut-{small_log.kind}", offsets=len(offsets))


def test_a_tail_zeroed_from_every_offset_after_its_base_loads_a_prefix(small_log: SmallLog) -> None:
    data = small_log.data
    offsets = range(small_log.base_end, len(data) + 1)
    for offset in offsets:
        check_reopen(small_log, data[:offset] + bytes(len(data) - offset))
    figure(f"power-zeros-{small_log.kind}", offsets=len(offsets))


def test_a_tail_zeroed_inside_the_base_checksum_record_keeps_an_unverified_base(
    tmp_path: Path,
) -> None:
    log = SmallLog(tmp_path / "wal.log", "wal")
    cut = log.ends[0] - 10  # inside the checksum record's payload
    damaged = log.data[:cut] + bytes(len(log.data) - cut)
    overwrite(log.path, damaged)
    with log.open() as wal:
        assert list(wal.load().entries) == [] and not wal.base_verified
        assert wal.torn_tail is not None and "zero bytes" in wal.torn_tail.reason


# -- cutting the power with a model of what was synced -------------------------------


class PowerCut(BaseException):
    """The power went during a write (not an error anyone may catch)."""


class CuttingFS(PowerLossFileSystem):
    """Cuts the power during the `at`-th write from now, after part of it."""

    def __init__(self, r: random.Random) -> None:
        super().__init__()
        self.r = r
        self.countdown: int | None = None

    def write_at(self, fd: int, data: bytes, offset: int, path: str) -> None:
        if self.countdown is not None:
            if self.countdown == 0:
                super().write_at(fd, data[: self.r.randint(0, len(data))], offset, path)
                raise PowerCut
            self.countdown -= 1
        super().write_at(fd, data, offset, path)


def power_trial(path: Path, r: random.Random, sync: SyncPolicy, mode: Unsynced) -> tuple[int, int]:
    """Append until the power goes (mid-write, or after the last append),
    cut it, reopen; return (acknowledged, made durable) counts."""
    fs = CuttingFS(r)
    wal = FileAgreementWal(path, sync=sync, fs=fs)
    attempted = [gate(f"op{i % 3}", L.NONE, i) for i in range(r.randint(1, 12))]
    fs.countdown = r.randint(0, len(attempted))  # past the end: the cut comes between writes
    acked: list[WalEntry] = []
    synced = 0
    try:
        for entry in attempted:
            wal.append(entry)
            acked.append(entry)
            if sync is SyncPolicy.NONE and r.random() < 0.3:
                wal.sync()
                synced = len(acked)
    except PowerCut:
        pass
    durable = len(acked) if sync is not SyncPolicy.NONE else synced
    fs.lose_power(path, mode, rng=r)
    with FileAgreementWal(path) as reopened:
        entries = list(reopened.load().entries)
    assert entries == attempted[: len(entries)], "an entry the writer never attempted"
    assert len(entries) >= durable, f"lost a durable append ({sync.name}, {mode.name})"
    if mode is Unsynced.DROP:
        assert len(entries) == (durable if sync is SyncPolicy.NONE else len(acked))
    return len(acked), durable


@pytest.mark.parametrize("sync", list(SyncPolicy), ids=lambda s: s.name)
def test_a_power_cut_keeps_every_synced_append(tmp_path: Path, sync: SyncPolicy) -> None:
    r = rng(f"power-{sync.name}")
    trials = scaled(150, 1500)
    lost_unsynced = 0
    for t in range(trials):
        mode = list(Unsynced)[t % 3]
        acked, durable = power_trial(tmp_path / f"wal{t}.log", r, sync, mode)
        lost_unsynced += acked - durable
    figure(f"power-model-{sync.name}", trials=trials, acked_but_unsynced=lost_unsynced)


def test_a_power_cut_keeps_every_checkpoint_that_returned(tmp_path: Path) -> None:
    fs = PowerLossFileSystem()
    state = tmp_path / "state"
    with StateDirectory(state, fs=fs) as store:
        for tick in range(1, 6):
            store.wal.append(ev("op", f"e{tick}", L.PROVISIONAL, tick))
            store.checkpoint(tick, f"state {tick}".encode())
    for path in sorted(state.rglob("*")):
        if path.is_file():
            fs.lose_power(path, Unsynced.DROP)
    with StateDirectory(state) as store:
        assert store.checkpoint_ticks() == [1, 2, 3, 4, 5]
        assert [store.load_checkpoint(t).state for t in range(1, 6)] == [
            f"state {t}".encode() for t in range(1, 6)
        ]
        assert len(store.wal.load().entries) == 5


def test_the_model_drops_exactly_what_was_not_synced(tmp_path: Path) -> None:
    fs = PowerLossFileSystem()
    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path, sync=SyncPolicy.NONE, fs=fs)
    created = path.read_bytes()
    assert fs.synced_bytes(path) == created  # created atomically: synced before linked
    wal.append(gate("a", L.NONE, 1))
    assert fs.synced_bytes(path) == created
    wal.sync()
    synced = path.read_bytes()
    wal.append(gate("b", L.NONE, 2))
    assert fs.lose_power(path, Unsynced.DROP) == synced
    zeroed = fs.lose_power(path, Unsynced.ZEROS)  # nothing unsynced is left to zero
    assert zeroed == synced
