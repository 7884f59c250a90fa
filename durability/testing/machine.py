"""A hypothesis state machine that drives any agreement WAL beside the
in-memory oracle (needs `hypothesis`).

`wal_state_machine(make_wal, reopen, crash=..., snapshot=...)` returns a
`RuleBasedStateMachine` class whose rules append single entries and batches
(legal or not), read, reopen the WAL after closing it, append through a
second handle, switch to a second handle, and crash in the middle of the last
append. After every step the WAL loads exactly what the oracle holds; a
rejected append changes nothing; a crash loses exactly the torn append.
Rules needing something the backend or the caller lacks (`append_batch`,
`reopen`, `crash`) never run::

    from hypothesis import settings
    from durability import FileAgreementWal
    from durability.testing import wal_state_machine

    FileWal = wal_state_machine(
        lambda directory: FileAgreementWal(directory / "wal.log"),
        lambda wal, directory: FileAgreementWal(directory / "wal.log"),
    )
    FileWal.TestCase.settings = settings(max_examples=60, deadline=None)
    TestFileWal = FileWal.TestCase

Each run gets a fresh temporary directory, removed afterwards; handles with a
`close()` method are closed when the machine is done with them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ..artifact import WalEntry
from ..backends.memory import InMemoryAgreementWal
from ..backends.protocols import AgreementWal, BatchingAgreementWal
from ..errors import EscalationOrderError
from .strategies import ticks, wal_entries

__all__ = ["wal_state_machine"]

MakeWal = Callable[[Path], AgreementWal]
Reopen = Callable[[AgreementWal, Path], AgreementWal]
Crash = Callable[[AgreementWal, Path, st.DataObject], AgreementWal]


def _close(backend: object) -> None:
    close = getattr(backend, "close", None)
    if callable(close):
        close()


def wal_state_machine(
    make_wal: MakeWal,
    reopen: Reopen | None = None,
    *,
    crash: Crash | None = None,
    snapshot: Callable[[Path], object] | None = None,
    entries: st.SearchStrategy[WalEntry] | None = None,
) -> type[RuleBasedStateMachine]:
    """A state machine class checking a WAL against the in-memory oracle.

    - `make_wal(directory)`: a new, empty WAL stored in `directory`.
    - `reopen(wal, directory)`: a new handle on that storage while `wal` is
      open (omit it for a WAL that does not persist).
    - `crash(wal, directory, data)`: simulate a crash in the middle of writing
      the last successful append (`data` draws where), and return a handle
      reopened afterwards; the machine then expects that append gone.
    - `snapshot(directory)`: what a rejected append must leave unchanged
      (e.g. the file's bytes); by default only `load()` is compared.
    - `entries`: the entries appended (default `wal_entries()`, which draws
      escalations in and out of order).

    Use ``wal_state_machine(...).TestCase`` as a test class; set its
    ``settings`` to size the runs.
    """
    drawn = wal_entries() if entries is None else entries

    class WalMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.directory = Path(tempfile.mkdtemp(prefix="durability-machine-"))
            self.wal = make_wal(self.directory)
            self.oracle = InMemoryAgreementWal()
            self.batches: list[list[WalEntry]] = []  # every non-empty append kept

        def _append(self, wal: AgreementWal, batch: list[WalEntry]) -> None:
            before = snapshot(self.directory) if snapshot is not None else None
            try:
                self.oracle.append_batch(batch)
            except EscalationOrderError:
                try:
                    if len(batch) == 1:
                        wal.append(batch[0])
                    else:
                        assert isinstance(wal, BatchingAgreementWal)
                        wal.append_batch(batch)
                except EscalationOrderError:
                    pass
                else:
                    raise AssertionError(f"appended what breaks escalation order: {batch}")
                if snapshot is not None:
                    assert snapshot(self.directory) == before, "a rejected append changed storage"
                return
            if len(batch) == 1:
                wal.append(batch[0])
            elif isinstance(wal, BatchingAgreementWal):
                wal.append_batch(batch)
            if batch:
                self.batches.append(batch)

        @rule(entry=drawn)
        def append_one(self, entry: WalEntry) -> None:
            self._append(self.wal, [entry])

        @precondition(lambda self: isinstance(self.wal, BatchingAgreementWal))
        @rule(batch=st.lists(drawn, max_size=4))
        def append_batch(self, batch: list[WalEntry]) -> None:
            self._append(self.wal, batch)

        @rule(tick=ticks())
        def read_since(self, tick: int) -> None:
            assert self.wal.read_since(tick) == self.oracle.read_since(tick)

        @precondition(lambda self: reopen is not None)
        @rule()
        def close_and_reopen(self) -> None:
            assert reopen is not None
            _close(self.wal)
            self.wal = reopen(self.wal, self.directory)

        @precondition(lambda self: reopen is not None)
        @rule(entry=drawn)
        def append_through_a_second_handle(self, entry: WalEntry) -> None:
            assert reopen is not None
            other = reopen(self.wal, self.directory)
            assert other.load() == self.oracle.load()
            self._append(other, [entry])
            _close(other)

        @precondition(lambda self: reopen is not None)
        @rule()
        def switch_to_a_second_handle(self) -> None:
            assert reopen is not None
            other = reopen(self.wal, self.directory)
            _close(self.wal)
            self.wal = other

        @precondition(lambda self: crash is not None and bool(self.batches))
        @rule(data=st.data())
        def crash_inside_last_append(self, data: st.DataObject) -> None:
            assert crash is not None
            self.wal = crash(self.wal, self.directory, data)
            self.batches.pop()
            self.oracle = InMemoryAgreementWal()
            for batch in self.batches:
                self.oracle.append_batch(batch)

        @invariant()
        def same_wal_as_the_oracle(self) -> None:
            assert self.wal.load() == self.oracle.load()

        def teardown(self) -> None:
            _close(self.wal)
            shutil.rmtree(self.directory, ignore_errors=True)

    return WalMachine
