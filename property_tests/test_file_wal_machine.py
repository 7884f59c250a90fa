"""A file WAL driven beside the in-memory oracle: appends, batches, rejected
escalations, reopens and crashes (a record cut short at a random byte). After
every step both hold the same WAL; a crash loses exactly the torn record."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from durability import EscalationOrderError, FileAgreementWal, InMemoryAgreementWal, WalEntry
from durability.testing import wal_entries


class FileWalMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="durability-machine-")
        self.path = os.path.join(self.directory, "wal.log")
        self.wal = FileAgreementWal(self.path)
        self.oracle = InMemoryAgreementWal()
        self.batches: list[list[WalEntry]] = []
        self.last_record: tuple[int, int] | None = (
            None  # (size before, size after) of the last append
        )

    def size(self) -> int:
        return os.path.getsize(self.path)

    def _append(self, batch: list[WalEntry]) -> None:
        before = self.size()
        try:
            self.oracle.append_batch(batch)
        except EscalationOrderError:
            with pytest.raises(EscalationOrderError):
                self.wal.append_batch(batch)
            assert self.size() == before  # a rejected write leaves the file as it was
            return
        self.wal.append_batch(batch)
        if batch:
            self.batches.append(batch)
            self.last_record = (before, self.size())

    @rule(entry=wal_entries())
    def append_one(self, entry: WalEntry) -> None:
        self._append([entry])

    @rule(batch=st.lists(wal_entries(), max_size=4))
    def append_batch(self, batch: list[WalEntry]) -> None:
        self._append(batch)

    @rule()
    def reopen(self) -> None:
        self.wal.close()
        self.wal = FileAgreementWal(self.path)
        assert self.wal.torn_tail is None
        self.last_record = None

    @precondition(lambda self: self.last_record is not None)
    @rule(data=st.data())
    def crash_inside_last_record(self, data: st.DataObject) -> None:
        assert self.last_record is not None
        before, after = self.last_record
        cut = data.draw(st.integers(before + 1, after - 1), label="cut at")
        self.wal.close()
        with open(self.path, "r+b") as handle:
            handle.truncate(cut)
        with pytest.warns(UserWarning):
            self.wal = FileAgreementWal(self.path)
        assert self.wal.torn_tail is not None and self.wal.torn_tail.offset == before
        assert self.size() == before
        self.batches.pop()
        self.oracle = InMemoryAgreementWal()
        for batch in self.batches:
            self.oracle.append_batch(batch)
        self.last_record = None

    @invariant()
    def same_wal_as_the_oracle(self) -> None:
        assert self.wal.load() == self.oracle.load()

    def teardown(self) -> None:
        self.wal.close()
        shutil.rmtree(self.directory, ignore_errors=True)


FileWalMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestFileWal = FileWalMachine.TestCase
