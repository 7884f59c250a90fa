"""`DurableRecoveryPlan.explain`: the planner rule that chose each decision and
the WAL entries behind it, by position, and located in storage (file and byte
offset of a log record, or a SQL sequence)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from durability import (
    SCHEMA_VERSION,
    AgreementWalArtifact,
    DurableRecoveryPlan,
    EntryRole,
    EvidenceOutcomeCacheArtifact,
    FileAgreementWal,
    Finalization,
    InMemoryAgreementWal,
    PersistedDurabilityArtifact,
    PlannerRule,
    SqliteAgreementWal,
    StateDirectory,
    StorageError,
    UnknownOperationError,
    VisibilityGateCrossing,
    WalEntry,
)
from durability import DurableRecoveryAction as A
from durability import FinalizationOutcome as O
from durability.artifact import proven_level
from durability.decisions import _RULE_STATEMENTS
from durability.locate import file_entry_locations, locator_for
from durability.testing.strategies import valid_wal_entries
from tests.helpers import L, esc, ev, fin, gate

N, P, S, F = L.NONE, L.PROVISIONAL, L.SOFT_SAFE, L.FINALIZED
EMPTY = EvidenceOutcomeCacheArtifact()
SPECS = Path(__file__).resolve().parent.parent / "specs" / "recovery.md"

# specs/recovery.md, "Worked example": position n is row n - 1 of its table.
WORKED: list[WalEntry] = [
    esc("pay", N, S, 4),
    fin("ship", O.ABORTED, 6),
    ev("pay", "ev-1", S, 12),
    esc("mail", N, P, 11),
    gate("pay", S, 14),
    esc("ship", N, P, 13),
    esc("fee", N, P, 9),
    gate("mail", S, 15),
    fin("tax", O.FINALIZED, 20),
    ev("pay", "ev-1", S, 17),
    esc("log", N, P, 18),
]


def positions(plan: DurableRecoveryPlan, op: str) -> dict[str, int]:
    return {c.role.value: c.position for c in plan.explain(op).entries}


def test_worked_example_names_each_rule_and_the_entries_behind_it() -> None:
    plan = DurableRecoveryPlan.from_checkpoint(10, None, WORKED, EMPTY, strict=False)
    rules = {op: plan.explain(op).rule for op in ("log", "pay", "ship", "tax", "mail")}
    assert rules == {
        "log": PlannerRule.BELOW_SOFT_SAFE,
        "pay": PlannerRule.SOFT_SAFE,
        "ship": PlannerRule.TERMINAL,
        "tax": PlannerRule.FINALIZED,
        "mail": PlannerRule.GATE_ABOVE_LEVEL,
    }
    assert positions(plan, "log") == {"level": 11}
    # pay: SoftSafe proven at the checkpoint (1); the suffix proves nothing higher.
    assert positions(plan, "pay") == {"checkpoint_level": 1, "level": 1, "gate": 5}
    # ship: its abort is in the prefix, and still decides.
    assert positions(plan, "ship") == {"level": 6, "finalization": 2}
    assert positions(plan, "tax") == {"level": 9, "finalization": 9}
    mail = plan.explain("mail")
    assert mail.anomaly and mail.decision is None and mail.action is None
    assert positions(plan, "mail") == {"level": 4, "gate": 8}
    assert (
        mail.reason
        == "gate soft_safe (WAL entry 8) is above the proven level provisional (WAL entry 4)"
    )


def test_each_decision_explained_is_the_plans_own() -> None:
    plan = DurableRecoveryPlan.from_checkpoint(10, None, WORKED, EMPTY, strict=False)
    for decision in plan.decisions:
        why = plan.explain(decision.operation_id)
        assert why.decision == decision
        assert why.action is decision.action
        assert (why.level, why.checkpoint_level) == (decision.level, decision.checkpoint_level)


def test_level_cites_the_suffix_entry_when_the_suffix_proves_more() -> None:
    entries = [esc("op", N, P, 1), esc("op", P, S, 5), ev("op", "e", S, 6)]
    plan = DurableRecoveryPlan.from_checkpoint(2, None, entries, EMPTY)
    why = plan.explain("op")
    assert positions(plan, "op") == {"checkpoint_level": 1, "level": 2}
    assert why.reason == "no finalization, level soft_safe (WAL entry 2) is at least soft_safe"


def test_last_finalization_and_highest_gate_are_cited() -> None:
    entries = [
        gate("op", N, 1),
        gate("op", P, 2),
        esc("op", N, F, 2),
        gate("op", P, 3),
        fin("op", O.ABORTED, 4),
        fin("op", O.FINALIZED, 5),
    ]
    plan = DurableRecoveryPlan.from_checkpoint(None, None, entries, EMPTY)
    assert positions(plan, "op") == {"level": 3, "finalization": 6, "gate": 2}
    assert plan.explain("op").rule is PlannerRule.FINALIZED


def test_unknown_operation_raises_a_typed_error_naming_it() -> None:
    plan = DurableRecoveryPlan.from_checkpoint(10, None, WORKED, EMPTY, strict=False)
    for op in ("nobody", "fee"):  # fee: entries only at or before the checkpoint
        with pytest.raises(UnknownOperationError) as caught:
            plan.explain(op)
        assert caught.value.operation_id == op
        assert f"`{op}`" in str(caught.value) and "checkpoint tick 10" in str(caught.value)
        assert isinstance(caught.value, LookupError)


def test_every_rule_is_stated_in_the_spec_by_its_name_and_action() -> None:
    rows = re.findall(r"^\| `([a-z-]+)` \| [^|]+ \| ([^|]+) \|$", SPECS.read_text(), re.M)
    stated = {name: action.strip() for name, action in rows}
    assert list(stated) == [rule.value for rule in PlannerRule]  # the order they are tried in
    for rule in PlannerRule:
        action = rule.action
        assert stated[rule.value] == (f"`{action.name}`" if action else "none: an anomaly")
    assert set(_RULE_STATEMENTS) == set(PlannerRule)


@settings(max_examples=150, deadline=None)
@given(entries=valid_wal_entries(), checkpoint=st.none() | st.integers(0, 1000))
def test_explanations_agree_with_the_plan_and_cite_entries_where_they_are(
    entries: list[WalEntry], checkpoint: int | None
) -> None:
    plan = DurableRecoveryPlan.from_checkpoint(checkpoint, None, entries, EMPTY, strict=False)
    ids = [d.operation_id for d in plan.decisions] + list(plan.anomalies)
    for op in ids:
        why = plan.explain(op)
        assert why.action is (plan.decision(op).action if plan.decision(op) else None)
        assert why.anomaly == (op in plan.anomalies)
        for cited in why.entries:
            assert entries[cited.position - 1] is cited.entry
            assert cited.entry.operation_id == op
            in_suffix = checkpoint is None or cited.entry.tick > checkpoint
            if cited.role is EntryRole.CHECKPOINT_LEVEL:
                assert not in_suffix and proven_level(cited.entry) == why.checkpoint_level
            elif cited.role is EntryRole.LEVEL:
                assert proven_level(cited.entry) == why.level
            elif cited.role is EntryRole.GATE:
                assert in_suffix and isinstance(cited.entry, VisibilityGateCrossing)
                assert cited.entry.gate_level == why.gate_level
            else:
                assert isinstance(cited.entry, Finalization)
                assert cited.entry.outcome == why.finalization
                later = entries[cited.position :]
                assert not any(isinstance(e, Finalization) and e.operation_id == op for e in later)
        roles = {c.role for c in why.entries}
        assert (EntryRole.LEVEL in roles) == (why.level is not N)
        assert (EntryRole.GATE in roles) == (why.gate_level is not None)
        assert (EntryRole.FINALIZATION in roles) == (why.finalization is not None)


def test_state_directory_plans_cite_file_and_byte_offset(tmp_path: Path) -> None:
    with StateDirectory(tmp_path / "state") as store:
        store.wal.append(esc("a", N, P, 1))
        store.wal.append_batch([ev("b", "e", S, 2), esc("b", N, S, 2), gate("b", S, 2)])
        plan = store.plan_recovery()
        why = plan.explain("b")
    level = why.cited(EntryRole.LEVEL)
    assert level is not None and level.location is not None
    located = file_entry_locations(tmp_path / "state" / "wal.log")
    assert located[level.position - 1] == (level.location, level.entry)
    assert level.location.path == str(tmp_path / "state" / "wal.log")
    assert (level.location.record, level.location.index) == (2, 0)  # second record, first entry
    gate_cite = why.cited(EntryRole.GATE)
    assert gate_cite is not None and gate_cite.location is not None
    assert gate_cite.location.offset == level.location.offset and gate_cite.location.index == 2


def test_a_wal_changed_since_planning_is_an_error_not_a_wrong_citation(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    with FileAgreementWal(path) as wal:
        wal.append(esc("a", N, P, 1))
        plan = DurableRecoveryPlan.from_checkpoint(
            None, None, wal.load(), EMPTY, entry_locator=locator_for(wal)
        )
    path.unlink()
    with FileAgreementWal(path) as wal:
        wal.append(esc("a", N, S, 1))  # another entry at position 1
    with pytest.raises(StorageError, match="no longer holds entry 1"):
        plan.explain("a")


def test_base_entries_are_located_at_offset_zero(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    base = AgreementWalArtifact(entries=[esc("a", N, P, 1), ev("a", "e", S, 2)])
    PersistedDurabilityArtifact(schema_version=SCHEMA_VERSION, payload=base).write_to_path(path)
    base_bytes = path.stat().st_size  # a foreign base: no checksum record, records from 0
    with FileAgreementWal(path) as wal:
        wal.append(gate("a", S, 3))
        plan = DurableRecoveryPlan.from_checkpoint(
            None, None, wal.load(), EMPTY, entry_locator=locator_for(wal)
        )
    why = plan.explain("a")
    level, gate_cite = why.cited(EntryRole.LEVEL), why.cited(EntryRole.GATE)
    assert level is not None and level.location is not None
    assert (level.location.offset, level.location.record, level.location.index) == (0, None, 1)
    assert gate_cite is not None and gate_cite.location is not None
    assert (gate_cite.location.offset, gate_cite.location.record) == (base_bytes, 0)


def test_memory_wal_is_located_by_sequence() -> None:
    wal = InMemoryAgreementWal()
    wal.append_batch([esc("a", N, P, 1), esc("b", N, S, 2)])
    plan = DurableRecoveryPlan.from_checkpoint(
        None, None, wal.load(), EMPTY, entry_locator=locator_for(wal)
    )
    location = plan.explain("b").entries[0].location
    assert location is not None and (location.sequence, location.path) == (2, None)


def test_pruned_sql_wal_cites_its_own_sequences(tmp_path: Path) -> None:
    with SqliteAgreementWal(tmp_path / "s.db") as wal:
        for tick in range(1, 6):
            wal.append(ev("old", f"e{tick}", P, tick))
        wal.append_batch([esc("new", N, S, 7), gate("new", S, 7)])
        assert wal.prune_through(5) > 0
        plan = DurableRecoveryPlan.from_checkpoint(
            5, None, wal.load(), EMPTY, entry_locator=locator_for(wal)
        )
        why = plan.explain("new")
    assert why.action is A.RESUME_FROM_EVIDENCE_BOUNDARY
    level = why.cited(EntryRole.LEVEL)
    assert level is not None and level.location is not None
    assert level.location.sequence == 6  # its row's sequence, not its position
    assert level.position < 6 and level.location.path is None
