"""Cases both SQL backends must pass beyond the shipped contract (API.md §10):
sequences, ``expected_sequence``, ``poll``, pruning, unsigned 64-bit ticks,
the schema version, damaged rows, a whole ``wal_sync`` in one transaction,
and several processes syncing at once. `test_sqlite.py` and
`test_postgres.py` subclass these with their own `make_wal`/`reopen`/`raw`."""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from durability import (
    AgreementEvidence,
    AgreementEvidenceKind,
    AgreementState,
    AgreementWalArtifact,
    AgreementWalHandler,
    DecodeError,
    DurabilityError,
    DurableRecoveryPlan,
    EffectOutcome,
    EscalationOrderError,
    EvidenceOutcomeCacheArtifact,
    FinalizationOutcome,
    SchemaVersionError,
    SequenceConflictError,
    StorageError,
    WalSyncRequest,
)
from tests.helpers import FAILED, L, binding, esc, ev, fin, gate

F = FinalizationOutcome


class Raw:
    """Plain SQL on the backend's database, behind its back (``?`` placeholders)."""

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        raise NotImplementedError


def _sync(op: str, tick: int, gate_level: L = L.SOFT_SAFE) -> WalSyncRequest:
    evidence = AgreementEvidence(
        evidence_id=f"{op}/cert",
        operation_id=op,
        level=L.SOFT_SAFE,
        kind=AgreementEvidenceKind.CERTIFICATE,
        reference="ref",
        authoritative=True,
    )
    state = AgreementState(
        operation_id=op,
        contract_name="c",
        level=L.SOFT_SAFE,
        evidence_ids=[evidence.evidence_id],
    )
    return WalSyncRequest(
        operation_id=op,
        downstream_coroutine_id="coro",
        gate_level=gate_level,
        agreement_state=state,
        agreement_evidence=[evidence],
        tick=tick,
    )


class _Inner:
    def handle_effect(self, request: Any) -> EffectOutcome:
        return EffectOutcome.success()


class SqlWalCases:
    """Mixed into a subclass of `AgreementWalContract` for one SQL dialect."""

    table_prefix = "durability_"

    def make_wal(self, tmp_path: Path) -> Any:
        raise NotImplementedError

    def reopen(self, backend: Any, tmp_path: Path) -> Any:
        raise NotImplementedError

    def raw(self, tmp_path: Path) -> Raw:
        raise NotImplementedError

    # -- sequences -----------------------------------------------------------------

    def test_sequences_count_from_one_and_appends_return_the_last(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        assert wal.last_sequence == 0
        assert wal.append(gate("a", L.NONE, 1)) == 1
        assert wal.append_batch([gate("b", L.NONE, 2), gate("c", L.NONE, 3)]) == 3
        assert wal.append_batch([]) == 3
        assert self.reopen(wal, tmp_path).last_sequence == 3

    def test_expected_sequence_conflict_writes_nothing(self, tmp_path: Path) -> None:
        a = self.make_wal(tmp_path)
        b = self.reopen(a, tmp_path)
        a.append(gate("a", L.NONE, 1), expected_sequence=0)
        b.append(gate("b", L.NONE, 2))  # b appends behind a's back
        with pytest.raises(SequenceConflictError) as caught:
            a.append_batch([gate("c", L.NONE, 3), gate("d", L.NONE, 3)], expected_sequence=1)
        assert (caught.value.expected, caught.value.actual) == (1, 2)
        assert not isinstance(caught.value, StorageError)
        assert isinstance(caught.value, DurabilityError)
        assert a.last_sequence == 2 and len(a.load().entries) == 2
        with pytest.raises(SequenceConflictError):
            a.append_batch([], expected_sequence=5)
        assert a.append(gate("c", L.NONE, 3), expected_sequence=2) == 3

    def test_poll_tails_what_another_handle_appends(self, tmp_path: Path) -> None:
        writer = self.make_wal(tmp_path)
        tail = self.reopen(writer, tmp_path)
        assert tail.poll(0, 10) == []
        entries = [gate(f"op{i}", L.NONE, 10 - i) for i in range(5)]
        for entry in entries:
            writer.append(entry)
        assert tail.poll(0, 2) == [(1, entries[0]), (2, entries[1])]
        assert tail.poll(2, 10) == [(3, entries[2]), (4, entries[3]), (5, entries[4])]
        assert tail.poll(5, 10) == [] and tail.poll(0, 0) == []
        for bad in ((-1, 1), (0, -1), (True, 1)):
            with pytest.raises(ValueError):
                tail.poll(*bad)

    # -- ticks ---------------------------------------------------------------------

    def test_unsigned_64_bit_ticks_keep_value_and_order(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        ticks = [2**64 - 1, 0, 2**63, 2**63 - 1, 1]
        wal.append_batch([gate(f"op{t}", L.NONE, t) for t in ticks])
        again = self.reopen(wal, tmp_path)
        assert [e.tick for e in again.load().entries] == ticks
        assert [e.tick for e in again.read_since(2**63 - 1)] == [2**64 - 1, 2**63]
        stored = self.raw(tmp_path).fetch(
            f"SELECT sequence FROM {self.table_prefix}wal_entries ORDER BY tick"
        )
        assert [row[0] for row in stored] == [2, 5, 4, 3, 1]  # SQL orders them as numbers
        assert again.prune_through(2**63) == 4
        assert [e.tick for e in again.load().entries] == [2**64 - 1]

    # -- pruning -------------------------------------------------------------------

    def _history(self) -> list[Any]:
        return [
            ev("a", "a/1", L.PROVISIONAL, 1),
            esc("a", L.NONE, L.PROVISIONAL, 1, "a/1"),
            ev("a", "a/2", L.SOFT_SAFE, 2),
            esc("a", L.PROVISIONAL, L.SOFT_SAFE, 2, "a/2"),
            gate("a", L.SOFT_SAFE, 2),
            fin("b", F.ABORTED, 3),
            gate("b", L.NONE, 3),
            gate("c", L.NONE, 9),  # after the checkpoint
            ev("c", "c/1", L.SOFT_SAFE, 4),
            gate("c", L.SOFT_SAFE, 10),
        ]

    def test_prune_keeps_what_validation_and_planning_need(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        other = self.reopen(wal, tmp_path)
        history = self._history()
        wal.append_batch(history)
        before = wal.load()
        plans = {
            tick: DurableRecoveryPlan.from_checkpoint(
                tick, None, before, EvidenceOutcomeCacheArtifact()
            )
            for tick in (5, 9)
        }
        assert wal.prune_through(5) == 4
        kept = [history[i] for i in (2, 3, 5, 7, 8, 9)]
        for handle in (wal, other, self.reopen(wal, tmp_path)):
            assert list(handle.load().entries) == kept
            assert [s for s, _e in handle.poll(0, 100)] == [3, 4, 6, 8, 9, 10]
            assert handle.last_sequence == 10  # sequences are never reused
            for tick, plan in plans.items():
                after = DurableRecoveryPlan.from_checkpoint(
                    tick, None, handle.load(), EvidenceOutcomeCacheArtifact()
                )
                assert (after.decisions, after.metadata) == (plan.decisions, plan.metadata)
            assert handle.operation_summary("a").proven_level is L.SOFT_SAFE
            with pytest.raises(EscalationOrderError):  # validation is as exact as before
                handle.append(esc("a", L.PROVISIONAL, L.FINALIZED, 11))
        assert other.append(gate("d", L.NONE, 11)) == 11
        assert wal.poll(10, 5) == [(11, gate("d", L.NONE, 11))]
        assert wal.prune_through(5) == 0

    def test_prune_refuses_a_bad_tick(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        for bad in (-1, "3", True):
            with pytest.raises(ValueError):
                wal.prune_through(bad)

    # -- storage ---------------------------------------------------------------------

    def test_rows_hold_each_entry_as_in_a_v1_artifact(self, tmp_path: Path) -> None:
        from durability.codec import dumps, to_plain

        wal = self.make_wal(tmp_path)
        entries = [ev("a", "e", L.SOFT_SAFE, 4), esc("a", L.NONE, L.SOFT_SAFE, 4, "e")]
        wal.append_batch(entries)
        rows = self.raw(tmp_path).fetch(
            f"SELECT sequence, entry FROM {self.table_prefix}wal_entries ORDER BY sequence"
        )
        assert [(s, bytes(data)) for s, data in rows] == [
            (i + 1, dumps(to_plain(e))) for i, e in enumerate(entries)
        ]
        artifact = dumps(to_plain(AgreementWalArtifact(entries=entries)))
        assert all(bytes(data) in artifact for _s, data in rows)

    def test_rejected_append_changes_no_row(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        wal.append(esc("op", L.NONE, L.SOFT_SAFE, 1))
        raw = self.raw(tmp_path)
        snapshot = f"SELECT * FROM {self.table_prefix}wal_entries ORDER BY sequence"
        before = raw.fetch(snapshot), raw.fetch(f"SELECT * FROM {self.table_prefix}wal_heads")
        with pytest.raises(EscalationOrderError):
            wal.append_batch([gate("x", L.NONE, 2), esc("op", L.SOFT_SAFE, L.NONE, 2)])
        assert (
            raw.fetch(snapshot),
            raw.fetch(f"SELECT * FROM {self.table_prefix}wal_heads"),
        ) == before

    def test_newer_schema_version_is_refused_and_left_alone(self, tmp_path: Path) -> None:
        self.make_wal(tmp_path).append(gate("a", L.NONE, 1))
        raw = self.raw(tmp_path)
        raw.execute(f"UPDATE {self.table_prefix}schema SET version = 2")
        raw.execute(f"DROP TABLE {self.table_prefix}cache_entries")  # first use would recreate it
        with pytest.raises(SchemaVersionError, match="schema version 2, newer") as caught:
            self.reopen(None, tmp_path).load()
        assert isinstance(caught.value, DecodeError)
        assert caught.value.path is not None and "secret" not in str(caught.value)
        assert raw.fetch(f"SELECT version FROM {self.table_prefix}schema") == [(2,)]
        assert raw.fetch(f"SELECT count(*) FROM {self.table_prefix}wal_entries") == [(1,)]

    def test_undecodable_row_names_table_and_sequence(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        wal.append_batch([gate("a", L.NONE, 1), gate("b", L.NONE, 2), gate("c", L.NONE, 3)])
        self.raw(tmp_path).execute(
            f"UPDATE {self.table_prefix}wal_entries SET entry = ? WHERE sequence = 2",
            (b"\xa1\x64kind\x63bad",),
        )
        fresh = self.reopen(None, tmp_path)
        with pytest.raises(DecodeError) as caught:
            fresh.load()
        error = caught.value
        assert str(error).startswith("decode persisted durability artifact")
        assert "durability_wal_entries" in str(error) and "at sequence 2" in str(error)
        assert (error.path, error.offset) == (fresh.database, 2)
        assert fresh.database in str(error)
        assert wal.load().entries[1] == gate("b", L.NONE, 2)  # what a handle holds stays

    def test_sequence_gap_is_damage(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        wal.append_batch([gate("a", L.NONE, 1), gate("b", L.NONE, 2), gate("c", L.NONE, 3)])
        self.raw(tmp_path).execute(f"DELETE FROM {self.table_prefix}wal_entries WHERE sequence = 2")
        with pytest.raises(DecodeError, match=r"sequence gap: expected 2, found 3 at sequence 2"):
            self.reopen(None, tmp_path).load()
        self.raw(tmp_path).execute(f"DELETE FROM {self.table_prefix}wal_entries WHERE sequence = 3")
        with pytest.raises(DecodeError, match=r"sequence gap.* at sequence 2"):
            self.reopen(None, tmp_path).read_since(0)

    def test_a_database_rolled_back_under_a_handle_is_refused(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        wal.append_batch([gate("a", L.NONE, 1), gate("b", L.NONE, 2), gate("c", L.NONE, 3)])
        raw = self.raw(tmp_path)  # as if restored from an older backup
        raw.execute(f"DELETE FROM {self.table_prefix}wal_entries WHERE sequence > 1")
        raw.execute(f"UPDATE {self.table_prefix}wal_heads SET last_sequence = 1")
        with pytest.raises(DecodeError, match="went back to 1 from 3"):
            wal.load()
        assert self.reopen(None, tmp_path).load().entries == (gate("a", L.NONE, 1),)

    def test_concurrent_first_opens_create_the_tables_once(self, tmp_path: Path) -> None:
        args = self.constructor_args(tmp_path)  # nothing opened yet: no tables
        wal_type = type(self.make_wal(tmp_path))

        def opener(index: int) -> int:
            handle = wal_type(*args) if index % 2 else self.cache_type(*args)
            if index % 2:
                return int(handle.append(gate(f"p{index}", L.NONE, index)))
            handle.put(binding(f"p{index}"))
            return 0

        self._in_processes(6, opener)  # type: ignore[attr-defined]
        raw = self.raw(tmp_path)
        assert raw.fetch(f"SELECT version FROM {self.table_prefix}schema") == [(1,)]
        assert raw.fetch(f"SELECT count(*) FROM {self.table_prefix}wal_entries") == [(3,)]
        assert raw.fetch(f"SELECT count(*) FROM {self.table_prefix}cache_entries") == [(3,)]

    def test_several_wals_and_a_cache_share_one_database(self, tmp_path: Path) -> None:
        first = self.make_wal(tmp_path)
        second = type(first)(*self.constructor_args(tmp_path), name="second")
        first.append(esc("op", L.NONE, L.FINALIZED, 1))
        second.append(esc("op", L.NONE, L.PROVISIONAL, 1))  # another WAL: its own order
        assert [e.new_level for e in first.load().entries] == [L.FINALIZED]
        assert [e.new_level for e in second.load().entries] == [L.PROVISIONAL]
        assert second.last_sequence == 1 and repr(second).endswith("name='second')")
        cache = self.cache_type(*self.constructor_args(tmp_path))
        cache.put(binding("e"))
        assert cache.get("e") == binding("e") and first.last_sequence == 1

    # -- wal_sync: one transaction ------------------------------------------------------

    def test_wal_sync_reads_and_writes_in_one_transaction(self, tmp_path: Path) -> None:
        a, b = self.make_wal(tmp_path), None
        b = self.reopen(a, tmp_path)
        calls: list[str] = []
        original = type(a).append_planned

        def spy(wal: Any, op: str, plan: Any) -> int:
            calls.append(op)
            return original(wal, op, plan)

        type(a).append_planned = spy  # type: ignore[method-assign]
        try:
            outcome = AgreementWalHandler(_Inner(), a).wal_sync(_sync("op", 5))
        finally:
            type(a).append_planned = original  # type: ignore[method-assign]
        assert outcome == EffectOutcome.success() and calls == ["op"]
        assert AgreementWalHandler(_Inner(), b).wal_sync(_sync("op", 5)) == EffectOutcome.success()
        assert len(a.load().entries) == 3  # evidence, escalation, gate: once
        blocked = AgreementWalHandler(_Inner(), b).wal_sync(_sync("low", 6, L.FINALIZED))
        assert blocked == EffectOutcome.blocked() and len(a.load().entries) == 5

    def test_processes_running_the_same_sync_write_it_once(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        count = 4
        fork = multiprocessing.get_context("fork")
        start = fork.Barrier(count)
        results = fork.Queue()

        def child(index: int) -> None:
            mine = self.reopen(wal, tmp_path)
            handler = AgreementWalHandler(_Inner(), mine)
            start.wait(30)
            outcomes = [handler.wal_sync(_sync(f"op{i}", i)).status.value for i in range(8)]
            results.put(outcomes)

        processes = [fork.Process(target=child, args=(i,)) for i in range(count)]
        for process in processes:
            process.start()
        answers = [results.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(60)
        assert [p.exitcode for p in processes] == [0] * count
        assert answers == [["success"] * 8] * count
        entries = wal.load().entries
        assert len(entries) == 8 * 3
        assert len({e.stable_identity() for e in entries}) == len(entries)

    def test_wal_sync_failure_names_the_stage(self, tmp_path: Path) -> None:
        wal = self.make_wal(tmp_path)
        wal.append(gate("a", L.NONE, 1))
        self.raw(tmp_path).execute(
            f"UPDATE {self.table_prefix}wal_entries SET entry = ?", (b"\xff",)
        )
        handler = AgreementWalHandler(_Inner(), self.reopen(None, tmp_path))
        outcome = handler.wal_sync(_sync("op", 2))
        assert outcome.failure is not None
        assert outcome.failure.message.startswith("load agreement WAL for `op`: decode persisted")

    # hooks the dialect's test class provides
    cache_type: Any = None

    def constructor_args(self, tmp_path: Path) -> tuple[Any, ...]:
        raise NotImplementedError


class SqlCacheCases:
    """Mixed into a subclass of `EvidenceOutcomeCacheContract` for one dialect."""

    table_prefix = "durability_"

    def make_cache(self, tmp_path: Path) -> Any:
        raise NotImplementedError

    def reopen(self, backend: Any, tmp_path: Path) -> Any:
        raise NotImplementedError

    def raw(self, tmp_path: Path) -> Raw:
        raise NotImplementedError

    def test_undecodable_binding_names_table_and_position(self, tmp_path: Path) -> None:
        cache = self.make_cache(tmp_path)
        cache.put(binding("e1"))
        cache.put(binding("e2", FAILED))
        self.raw(tmp_path).execute(
            f"UPDATE {self.table_prefix}cache_entries SET entry = ? WHERE evidence_id = ?",
            (b"\x80\x80", "e2"),
        )
        assert cache.get("e1") == binding("e1")
        for read in (lambda: cache.get("e2"), cache.load):
            with pytest.raises(
                DecodeError, match=r"durability_cache_entries.* at position 2"
            ) as caught:
                read()
            assert caught.value.path == cache.database and caught.value.offset == 2

    def test_put_if_absent_binds_over_blocked_and_keeps_binding_order(self, tmp_path: Path) -> None:
        cache = self.make_cache(tmp_path)
        cache.put(binding("a", EffectOutcome.blocked()))
        cache.put(binding("b"))
        assert cache.put_if_absent(binding("a")) == binding("a")
        assert cache.put_if_absent(binding("b", FAILED)) == binding("b")
        assert [e.evidence_id for e in self.reopen(cache, tmp_path).load().entries] == ["b", "a"]
