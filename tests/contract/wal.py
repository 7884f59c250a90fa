"""The agreement WAL contract every backend passes (API.md §6).

Subclass `WalContract` (three-method backends) or `BatchWalContract` (backends
with `append_batch`) in a ``Test...`` class and implement `make_wal`; override
`reopen` for backends that persist, so durability is checked too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from durability import AgreementWal, AgreementWalArtifact, EscalationOrderError
from durability import FinalizationOutcome as F
from tests.helpers import L, esc, ev, fin, gate


class WalContract:
    """Rules of `append`, `read_since` and `load`."""

    def make_wal(self, tmp_path: Path) -> AgreementWal:
        raise NotImplementedError

    def reopen(self, wal: AgreementWal, tmp_path: Path) -> AgreementWal:
        """A new handle on the same storage (the same object for memory)."""
        return wal

    def test_new_wal_is_empty(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        assert wal.load() == AgreementWalArtifact()
        assert wal.read_since(0) == []

    def test_append_then_load_keeps_order(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        entries = [
            ev("op", "e1", L.PROVISIONAL, 1),
            esc("op", L.NONE, L.PROVISIONAL, 1, "e1"),
            fin("op", F.FINALIZED, 3),
            gate("op", L.FINALIZED, 3),
        ]
        for entry in entries:
            wal.append(entry)
        assert list(wal.load().entries) == entries
        assert list(self.reopen(wal, tmp_path).load().entries) == entries

    def test_read_since_filters_by_tick_not_position(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        entries = [
            gate("a", L.NONE, 5),
            gate("b", L.NONE, 2),
            gate("c", L.NONE, 9),
            gate("d", L.NONE, 3),
        ]
        for entry in entries:
            wal.append(entry)
        assert wal.read_since(3) == [entries[0], entries[2]]
        assert wal.read_since(0) == entries
        assert wal.read_since(9) == []

    def test_regression_is_rejected_and_wal_unchanged(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        wal.append(esc("op", L.NONE, L.SOFT_SAFE, 1))
        before = wal.load()
        with pytest.raises(EscalationOrderError, match="regression"):
            wal.append(esc("op", L.SOFT_SAFE, L.PROVISIONAL, 2))
        assert wal.load() == before
        assert self.reopen(wal, tmp_path).load() == before

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
        for tick, (prev, new) in enumerate(
            [(L.NONE, L.PROVISIONAL), (L.PROVISIONAL, L.SOFT_SAFE), (L.SOFT_SAFE, L.FINALIZED)]
        ):
            wal.append(esc("op", prev, new, tick))
        self.reopen(wal, tmp_path).load().validate_monotonic_escalations()


class BatchWalContract(WalContract):
    """Rules of `append_batch` and `operation_summary` (provided backends)."""

    def test_batch_is_all_or_nothing(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        wal.append(esc("op", L.NONE, L.SOFT_SAFE, 1))
        before = wal.load()
        bad = [
            gate("x", L.NONE, 2),
            esc("x", L.NONE, L.PROVISIONAL, 2),
            esc("op", L.SOFT_SAFE, L.NONE, 2),
        ]
        with pytest.raises(EscalationOrderError):
            wal.append_batch(bad)  # type: ignore[attr-defined]
        assert wal.load() == before
        assert self.reopen(wal, tmp_path).load() == before

    def test_batch_validates_within_itself(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        with pytest.raises(EscalationOrderError):
            wal.append_batch([esc("op", L.NONE, L.FINALIZED, 1), esc("op", L.NONE, L.SOFT_SAFE, 1)])  # type: ignore[attr-defined]
        assert wal.load().entries == ()

    def test_batch_appends_in_order(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        batch = [
            ev("op", "e", L.SOFT_SAFE, 4),
            esc("op", L.NONE, L.SOFT_SAFE, 4, "e"),
            gate("op", L.SOFT_SAFE, 4),
        ]
        wal.append_batch(batch)  # type: ignore[attr-defined]
        wal.append_batch([])  # type: ignore[attr-defined]
        assert list(self.reopen(wal, tmp_path).load().entries) == batch

    def test_operation_summary_tracks_levels_and_identities(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        entries = [
            ev("op", "e", L.SOFT_SAFE, 4),
            esc("op", L.NONE, L.PROVISIONAL, 4),
            gate("op", L.NONE, 5),
        ]
        wal.append_batch(entries)  # type: ignore[attr-defined]
        summary = self.reopen(wal, tmp_path).operation_summary("op")  # type: ignore[attr-defined]
        assert summary.escalation_level is L.PROVISIONAL
        assert summary.proven_level is L.SOFT_SAFE
        assert summary.identities == {e.stable_identity() for e in entries}
        empty = wal.operation_summary("unknown")  # type: ignore[attr-defined]
        assert empty.escalation_level is None and empty.proven_level is L.NONE
        assert not empty.identities
