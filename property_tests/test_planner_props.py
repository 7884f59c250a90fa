"""Planner invariants on generated WALs (specs/recovery.md)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from durability.artifact import AgreementWalArtifact, EvidenceOutcomeCacheArtifact, WalEntry
from durability.errors import InconsistentWalError
from durability.model import AgreementLevel
from durability.planner import DurableRecoveryAction, DurableRecoveryPlan, is_sound
from durability.testing import cache_artifacts, ticks, valid_wal_entries

PROPS = settings(max_examples=100, deadline=None)
# a checkpoint tick, or None: planning with no checkpoint at all
checkpoints = st.none() | ticks()


@PROPS
@given(valid_wal_entries(), checkpoints, cache_artifacts())
def test_every_decision_on_a_valid_wal_is_sound(
    entries: list[WalEntry], checkpoint: int | None, cache: EvidenceOutcomeCacheArtifact
) -> None:
    plan = DurableRecoveryPlan.from_checkpoint(
        checkpoint, None, AgreementWalArtifact(entries=entries), cache, strict=False
    )
    for decision in plan.decisions:
        assert is_sound(decision), decision


@PROPS
@given(valid_wal_entries(), checkpoints, cache_artifacts())
def test_decisions_and_anomalies_partition_the_suffix_operations(
    entries: list[WalEntry], checkpoint: int | None, cache: EvidenceOutcomeCacheArtifact
) -> None:
    plan = DurableRecoveryPlan.from_checkpoint(
        checkpoint, None, AgreementWalArtifact(entries=entries), cache, strict=False
    )
    decided = [d.operation_id for d in plan.decisions]
    assert decided == sorted(decided)
    assert list(plan.anomalies) == sorted(plan.anomalies)
    assert not set(decided) & set(plan.anomalies)
    assert set(decided) | set(plan.anomalies) == {e.operation_id for e in plan.wal_suffix}
    assert list(plan.wal_suffix) == [
        e for e in entries if checkpoint is None or e.tick > checkpoint
    ]
    meta = plan.metadata
    resumed = {
        DurableRecoveryAction.REEXECUTE_FROM_SCRATCH,
        DurableRecoveryAction.RESUME_FROM_EVIDENCE_BOUNDARY,
    }
    assert list(meta.resumed_operation_ids) == [
        d.operation_id for d in plan.decisions if d.action in resumed
    ]
    assert list(meta.terminal_operation_ids) == [
        d.operation_id for d in plan.decisions if d.action not in resumed
    ]
    suffix_ticks = [e.tick for e in plan.wal_suffix]
    assert meta.wal_tail_start_tick == min(suffix_ticks, default=None)
    assert meta.highest_recovered_tick == max(suffix_ticks, default=None)


@PROPS
@given(valid_wal_entries(), checkpoints, cache_artifacts())
def test_strict_raises_exactly_when_there_are_anomalies(
    entries: list[WalEntry], checkpoint: int | None, cache: EvidenceOutcomeCacheArtifact
) -> None:
    wal = AgreementWalArtifact(entries=entries)
    lenient = DurableRecoveryPlan.from_checkpoint(checkpoint, None, wal, cache, strict=False)
    if lenient.anomalies:
        with pytest.raises(InconsistentWalError) as info:
            DurableRecoveryPlan.from_checkpoint(checkpoint, None, wal, cache)
        assert info.value.operation_ids == lenient.anomalies
    else:
        strict = DurableRecoveryPlan.from_checkpoint(checkpoint, None, wal, cache)
        assert strict.decisions == lenient.decisions
        assert strict.metadata == lenient.metadata


@PROPS
@given(valid_wal_entries(), ticks(), cache_artifacts())
def test_planning_an_iterator_equals_planning_the_artifact(
    entries: list[WalEntry], checkpoint: int, cache: EvidenceOutcomeCacheArtifact
) -> None:
    wal = AgreementWalArtifact(entries=entries)
    a = DurableRecoveryPlan.from_checkpoint(checkpoint, None, wal, cache, strict=False)
    b = DurableRecoveryPlan.from_checkpoint(checkpoint, None, iter(entries), cache, strict=False)
    assert a == b


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_cached_ids_are_suffix_evidence_in_the_cache(data: st.DataObject) -> None:
    entries = data.draw(valid_wal_entries())
    checkpoint = data.draw(ticks())
    cache = data.draw(cache_artifacts())
    plan = DurableRecoveryPlan.from_checkpoint(
        checkpoint, None, AgreementWalArtifact(entries=entries), cache, strict=False
    )
    for decision in plan.decisions:
        ids = list(decision.cached_evidence_ids)
        assert len(ids) == len(set(ids))
        assert all(cache.get(i) is not None for i in ids)


@PROPS
@given(valid_wal_entries(), cache_artifacts())
def test_no_checkpoint_plans_every_entry_from_level_none(
    entries: list[WalEntry], cache: EvidenceOutcomeCacheArtifact
) -> None:
    plan = DurableRecoveryPlan.from_checkpoint(
        None, None, AgreementWalArtifact(entries=entries), cache, strict=False
    )
    assert list(plan.wal_suffix) == entries
    assert plan.metadata.checkpoint_tick == 0
    assert {d.operation_id for d in plan.decisions} | set(plan.anomalies) == {
        e.operation_id for e in entries
    }
    for decision in plan.decisions:
        assert decision.checkpoint_level is AgreementLevel.NONE
        assert is_sound(decision), decision
