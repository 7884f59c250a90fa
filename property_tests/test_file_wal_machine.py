"""A file WAL driven beside the in-memory oracle by the shipped state machine
(`durability.testing.wal_state_machine`): appends, batches, rejected
escalations, reads, reopens, second handles and crashes (a record cut short at
a random byte). After every step both hold the same WAL; a crash loses
exactly the torn record; a rejected append leaves the file's bytes as they
were. A user-style three-method WAL runs through the same machine."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st

from durability import (
    AgreementWal,
    AgreementWalArtifact,
    FileAgreementWal,
    TornTailWarning,
    WalEntry,
    inspect_log,
)
from durability.testing import wal_state_machine


def open_wal(directory: Path) -> FileAgreementWal:
    return FileAgreementWal(directory / "wal.log")


def reopen_wal(wal: AgreementWal, directory: Path) -> FileAgreementWal:
    again = open_wal(directory)
    assert again.torn_tail is None  # nothing but a crash leaves a torn record
    return again


def crash_inside_last_record(
    wal: AgreementWal, directory: Path, data: st.DataObject
) -> FileAgreementWal:
    """Cut the log inside its last record, as a crash mid-write would, and
    reopen it: the torn record is truncated away, with a warning."""
    assert isinstance(wal, FileAgreementWal)
    wal.close()
    path = directory / "wal.log"
    before, after = inspect_log(path).records[-1].offset, path.stat().st_size
    cut = data.draw(st.integers(before + 1, after - 1), label="cut at")
    with open(path, "r+b") as handle:
        handle.truncate(cut)
    with pytest.warns(TornTailWarning):
        again = open_wal(directory)
    assert again.torn_tail is not None and again.torn_tail.offset == before
    assert path.stat().st_size == before
    return again


FileWalMachine = wal_state_machine(
    open_wal,
    reopen_wal,
    crash=crash_inside_last_record,
    snapshot=lambda directory: (directory / "wal.log").read_bytes(),
)
FileWalMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestFileWal = FileWalMachine.TestCase


class ListWal:
    """A user-style WAL with only the three required methods."""

    def __init__(self) -> None:
        self.entries: list[WalEntry] = []

    def append(self, entry: WalEntry) -> None:
        AgreementWalArtifact(entries=[*self.entries, entry]).validate_monotonic_escalations()
        self.entries.append(entry)

    def read_since(self, tick: int) -> list[WalEntry]:
        return [e for e in self.entries if e.tick > tick]

    def load(self) -> AgreementWalArtifact:
        return AgreementWalArtifact(entries=self.entries)


UserWalMachine = wal_state_machine(lambda directory: ListWal())
UserWalMachine.TestCase.settings = settings(max_examples=20, stateful_step_count=25, deadline=None)
TestUserStyleWal = UserWalMachine.TestCase


def open_segmented(directory: Path) -> FileAgreementWal:
    return FileAgreementWal(directory / "wal.log", segment_bytes=300)  # a rollover every few


def every_file(directory: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


SegmentedWalMachine = wal_state_machine(
    open_segmented, lambda wal, directory: open_segmented(directory), snapshot=every_file
)
SegmentedWalMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None
)
TestSegmentedFileWal = SegmentedWalMachine.TestCase
