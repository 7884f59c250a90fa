"""The agreement WAL half of the contract suite (private; import it from
`durability.testing` or `durability.testing.contract`)."""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path

import pytest

from ..artifact import AgreementWalArtifact, Escalation, VisibilityGateCrossing, WalEntry
from ..backends.protocols import (
    AgreementWal,
    BatchingAgreementWal,
    IndexedAgreementWal,
    SequencedAgreementWal,
)
from ..errors import EscalationOrderError, SequenceConflictError
from ._builders import LEVELS, F, L, esc, ev, fin, gate
from ._case import ContractCase

__all__ = ["AgreementWalContract"]

PROCESSES, ROUNDS, BATCH = 4, 40, 3


class AgreementWalContract(ContractCase):
    """The agreement WAL contract: subclass it as ``Test...`` and implement
    `make_wal` (and `reopen` if your WAL persists). See the module docs."""

    def make_wal(self, tmp_path: Path) -> AgreementWal:
        """A new, empty WAL whose storage (if any) lives in `tmp_path`."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_wal(tmp_path)")

    def reopen(self, backend: AgreementWal, tmp_path: Path) -> AgreementWal:
        """A new handle on the storage `backend` uses in `tmp_path`, while
        `backend` stays open. Implement it for a WAL that persists; left as
        is, the persistence cases are skipped."""
        raise NotImplementedError(f"{type(self).__name__} does not implement reopen()")

    # -- helpers -----------------------------------------------------------------

    def _persists(self) -> bool:
        return type(self).reopen is not AgreementWalContract.reopen

    def _again(self, wal: AgreementWal, tmp_path: Path) -> AgreementWal:
        """A reopened handle when the WAL persists, else the same one."""
        return self.reopen(wal, tmp_path) if self._persists() else wal

    def _second_handle(self, wal: AgreementWal, tmp_path: Path) -> AgreementWal:
        self._skip_without_reopen(self._persists())
        return self.reopen(wal, tmp_path)

    def _batching(self, wal: AgreementWal) -> BatchingAgreementWal:
        if not isinstance(wal, BatchingAgreementWal):
            self._skip_without("append_batch", wal)
        return wal

    def _sequenced(self, wal: AgreementWal) -> SequencedAgreementWal:
        self._batching(wal)
        if not isinstance(wal, SequencedAgreementWal):
            self._skip_without("poll", wal)
        return wal

    def _indexed(self, wal: AgreementWal) -> IndexedAgreementWal:
        self._batching(wal)
        if not isinstance(wal, IndexedAgreementWal):
            self._skip_without("operation_summary", wal)
        return wal

    # -- append, read_since, load ------------------------------------------------

    def test_new_wal_is_empty(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        assert wal.load() == AgreementWalArtifact()
        assert wal.read_since(0) == []

    def test_append_then_load_keeps_order(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        entries: list[WalEntry] = [
            ev("op", "e1", L.PROVISIONAL, 1),
            esc("op", L.NONE, L.PROVISIONAL, 1, "e1"),
            fin("op", F.FINALIZED, 3),
            gate("op", L.FINALIZED, 3),
        ]
        for entry in entries:
            wal.append(entry)
        assert list(wal.load().entries) == entries
        assert list(self._again(wal, tmp_path).load().entries) == entries

    def test_read_since_filters_by_tick_not_position(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        entries = [gate("a", L.NONE, 5), gate("b", L.NONE, 2), gate("c", L.NONE, 9)]
        entries.append(gate("d", L.NONE, 3))
        for entry in entries:
            wal.append(entry)
        for handle in (wal, self._again(wal, tmp_path)):
            assert handle.read_since(3) == [entries[0], entries[2]]
            assert handle.read_since(0) == entries
            assert handle.read_since(9) == []

    def test_regression_is_rejected_and_wal_unchanged(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        wal.append(esc("op", L.NONE, L.SOFT_SAFE, 1))
        before = wal.load()
        with pytest.raises(EscalationOrderError, match="regression"):
            wal.append(esc("op", L.SOFT_SAFE, L.PROVISIONAL, 2))
        assert wal.load() == before
        assert self._again(wal, tmp_path).load() == before

    def test_reordered_escalation_is_rejected(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        wal.append(esc("op", L.NONE, L.SOFT_SAFE, 1))
        with pytest.raises(EscalationOrderError, match="reordered or regressed"):
            wal.append(esc("op", L.NONE, L.PROVISIONAL, 2))
        wal.append(esc("other", L.NONE, L.PROVISIONAL, 2))  # other operations are independent
        wal.append(esc("op", L.SOFT_SAFE, L.FINALIZED, 3))
        assert len(wal.load().entries) == 3

    def test_equal_level_escalation_is_accepted(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        wal.append(esc("op", L.NONE, L.SOFT_SAFE, 1))
        wal.append(esc("op", L.SOFT_SAFE, L.SOFT_SAFE, 2))
        wal.load().validate_monotonic_escalations()

    def test_loaded_wal_validates(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        for tick, (prev, new) in enumerate(itertools.pairwise(LEVELS)):
            wal.append(esc("op", prev, new, tick))
        self._again(wal, tmp_path).load().validate_monotonic_escalations()

    # -- append_batch, operation_summary (optional) --------------------------------

    def test_batch_is_all_or_nothing(self, tmp_path: Path) -> None:
        wal = self._batching(self.make_wal(tmp_path))
        wal.append(esc("op", L.NONE, L.SOFT_SAFE, 1))
        before = wal.load()
        bad: list[WalEntry] = [
            gate("x", L.NONE, 2),
            esc("x", L.NONE, L.PROVISIONAL, 2),
            esc("op", L.SOFT_SAFE, L.NONE, 2),
        ]
        with pytest.raises(EscalationOrderError):
            wal.append_batch(bad)
        assert wal.load() == before
        assert self._again(wal, tmp_path).load() == before

    def test_batch_validates_within_itself(self, tmp_path: Path) -> None:
        wal = self._batching(self.make_wal(tmp_path))
        with pytest.raises(EscalationOrderError):
            wal.append_batch([esc("op", L.NONE, L.FINALIZED, 1), esc("op", L.NONE, L.SOFT_SAFE, 1)])
        assert wal.load().entries == ()

    def test_batch_appends_in_order(self, tmp_path: Path) -> None:
        wal = self._batching(self.make_wal(tmp_path))
        batch: list[WalEntry] = [
            ev("op", "e", L.SOFT_SAFE, 4),
            esc("op", L.NONE, L.SOFT_SAFE, 4, "e"),
            gate("op", L.SOFT_SAFE, 4),
        ]
        wal.append_batch(batch)
        wal.append_batch([])
        assert list(self._again(wal, tmp_path).load().entries) == batch

    # -- sequences, expected_sequence, poll (optional) ----------------------------

    def test_sequences_number_entries_from_one(self, tmp_path: Path) -> None:
        wal = self._sequenced(self.make_wal(tmp_path))
        first, second, third = gate("a", L.NONE, 1), gate("b", L.NONE, 2), gate("c", L.NONE, 3)
        assert wal.last_sequence == 0 and wal.poll(0, 10) == []
        assert wal.append(first) == 1
        assert wal.append_batch([second, third]) == 3
        assert wal.last_sequence == 3
        again = self._sequenced(self._again(wal, tmp_path))
        assert again.poll(0, 10) == [(1, first), (2, second), (3, third)]
        assert again.poll(1, 1) == [(2, second)] and again.poll(3, 5) == []
        with pytest.raises(ValueError):
            again.poll(-1, 1)

    def test_expected_sequence_conflict_writes_nothing(self, tmp_path: Path) -> None:
        wal = self._sequenced(self.make_wal(tmp_path))
        assert wal.append(gate("a", L.NONE, 1), expected_sequence=0) == 1
        before = wal.load()
        with pytest.raises(SequenceConflictError) as caught:
            wal.append_batch([gate("b", L.NONE, 2)], expected_sequence=0)
        assert (caught.value.expected, caught.value.actual) == (0, 1)
        assert wal.load() == before and wal.last_sequence == 1
        assert wal.append_batch([gate("b", L.NONE, 2)], expected_sequence=1) == 2

    def test_second_handle_conflicts_on_the_first_handles_append(self, tmp_path: Path) -> None:
        a = self._sequenced(self.make_wal(tmp_path))
        b = self._sequenced(self._second_handle(a, tmp_path))
        a.append(gate("a", L.NONE, 1))
        with pytest.raises(SequenceConflictError):
            b.append(gate("b", L.NONE, 2), expected_sequence=0)
        assert b.poll(0, 10) == [(1, gate("a", L.NONE, 1))]
        assert b.append(gate("b", L.NONE, 2), expected_sequence=1) == 2
        assert a.poll(1, 10) == [(2, gate("b", L.NONE, 2))]

    def test_operation_summary_tracks_levels_and_identities(self, tmp_path: Path) -> None:
        wal = self._indexed(self.make_wal(tmp_path))
        entries: list[WalEntry] = [
            ev("op", "e", L.SOFT_SAFE, 4),
            esc("op", L.NONE, L.PROVISIONAL, 4),
            gate("op", L.NONE, 5),
        ]
        wal.append_batch(entries)
        summary = self._indexed(self._again(wal, tmp_path)).operation_summary("op")
        assert summary.escalation_level is L.PROVISIONAL
        assert summary.proven_level is L.SOFT_SAFE
        assert summary.identities == {e.stable_identity() for e in entries}
        empty = wal.operation_summary("unknown")
        assert empty.escalation_level is None and empty.proven_level is L.NONE
        assert not empty.identities

    # -- persistence: reopen, two handles, several processes ------------------------

    def test_reopened_handles_validate_against_what_is_stored(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        again = self._second_handle(wal, tmp_path)  # opened before anything was appended
        wal.append(esc("op", L.NONE, L.SOFT_SAFE, 1))
        later = self.reopen(wal, tmp_path)
        for handle in (again, later):
            with pytest.raises(EscalationOrderError):
                handle.append(esc("op", L.NONE, L.PROVISIONAL, 2))
        later.append(esc("op", L.SOFT_SAFE, L.FINALIZED, 3))
        assert wal.load() == again.load() == later.load()
        assert [e.tick for e in wal.load().entries] == [1, 3]

    def test_second_handle_sees_first_handles_appends(self, tmp_path: Path) -> None:
        a = self.make_wal(tmp_path)
        b = self._second_handle(a, tmp_path)
        a.append(esc("op", L.NONE, L.SOFT_SAFE, 1))
        assert list(b.load().entries) == [esc("op", L.NONE, L.SOFT_SAFE, 1)]
        with pytest.raises(EscalationOrderError):  # b validates against a's append
            b.append(esc("op", L.NONE, L.PROVISIONAL, 2))
        b.append(esc("op", L.SOFT_SAFE, L.FINALIZED, 3))
        assert a.read_since(2) == [esc("op", L.SOFT_SAFE, L.FINALIZED, 3)]
        assert a.load() == b.load()

    def test_second_handle_summary_includes_first_handles_appends(self, tmp_path: Path) -> None:
        a = self._indexed(self.make_wal(tmp_path))
        b = self._indexed(self._second_handle(a, tmp_path))
        a.append(esc("op", L.NONE, L.SOFT_SAFE, 1, "e"))
        a.append_batch([ev("op", "e", L.SOFT_SAFE, 1), gate("op", L.SOFT_SAFE, 2)])
        summary = b.operation_summary("op")
        assert summary.escalation_level is L.SOFT_SAFE and summary.proven_level is L.SOFT_SAFE
        assert summary.identities == {e.stable_identity() for e in a.load().entries}

    def test_processes_appending_through_their_own_handles_lose_nothing(
        self, tmp_path: Path
    ) -> None:
        """Several processes append through their own handle at once: every
        entry lands once, each process's in its order, each batch (when the
        WAL has `append_batch`) whole and uninterrupted, and escalations of one
        shared operation are each validated against all appended before."""
        wal = self.make_wal(tmp_path)
        self._skip_without_reopen(self._persists())
        batching = isinstance(wal, BatchingAgreementWal)

        def appender(index: int) -> None:
            name, mine = f"p{index}", self.reopen(wal, tmp_path)
            for i in range(ROUNDS):
                batch = [gate(name, L.NONE, i, f"{i}/{j}") for j in range(BATCH)]
                if isinstance(mine, BatchingAgreementWal):
                    mine.append_batch(batch)
                else:
                    for entry in batch:
                        mine.append(entry)
                if i < len(LEVELS) - 1:
                    # every process climbs one shared operation; losers are refused
                    with contextlib.suppress(EscalationOrderError):
                        mine.append(esc("shared", LEVELS[i], LEVELS[i + 1], i))

        self._in_processes(PROCESSES, appender)
        entries = wal.load().entries
        assert entries == self.reopen(wal, tmp_path).load().entries
        _check_appends_from_processes(list(entries), batching)


def _check_appends_from_processes(entries: list[WalEntry], batching: bool) -> None:
    gates = [e for e in entries if isinstance(e, VisibilityGateCrossing)]
    expected = PROCESSES * ROUNDS * BATCH
    assert len(gates) == expected, f"{expected} gates appended, {len(gates)} found"
    for name in (f"p{index}" for index in range(PROCESSES)):
        mine = [e.downstream_coroutine_id for e in gates if e.operation_id == name]
        assert mine == [f"{i}/{j}" for i in range(ROUNDS) for j in range(BATCH)], (
            f"the entries process {name} appended are not all there, in its order"
        )
    for index, entry in enumerate(entries):
        if batching and isinstance(entry, VisibilityGateCrossing):
            round_, _, position = entry.downstream_coroutine_id.partition("/")
            if position == "0":  # every batch whole, in order, uninterrupted
                assert entries[index : index + BATCH] == [
                    gate(entry.operation_id, L.NONE, entry.tick, f"{round_}/{j}")
                    for j in range(BATCH)
                ]
    shared = [e for e in entries if isinstance(e, Escalation)]
    assert shared and shared[0].previous_level is L.NONE
    AgreementWalArtifact(entries=entries).validate_monotonic_escalations()
