"""The recovery planner, rule by rule (API.md §8, specs/recovery.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from durability.artifact import (
    AgreementWalArtifact,
    Escalation,
    EvidenceOutcomeCacheArtifact,
    EvidenceOutcomeCacheEntry,
    EvidenceProduced,
    Finalization,
    VisibilityGateCrossing,
    WalEntry,
)
from durability.effects import EffectOutcome
from durability.errors import DurabilityError, EscalationOrderError, InconsistentWalError
from durability.model import (
    AgreementEvidence,
    AgreementEvidenceKind,
    AgreementLevel,
    FinalizationOutcome,
)
from durability.planner import (
    DurableRecoveryAction,
    DurableRecoveryDecision,
    DurableRecoveryPlan,
    is_sound,
)

N, P, S, F = (
    AgreementLevel.NONE,
    AgreementLevel.PROVISIONAL,
    AgreementLevel.SOFT_SAFE,
    AgreementLevel.FINALIZED,
)
A = DurableRecoveryAction
O = FinalizationOutcome  # noqa: E741


def esc(op: str, prev: AgreementLevel, new: AgreementLevel, tick: int) -> Escalation:
    return Escalation(operation_id=op, previous_level=prev, new_level=new, tick=tick)


def ev(op: str, evidence_id: str, level: AgreementLevel, tick: int) -> EvidenceProduced:
    evidence = AgreementEvidence(
        evidence_id=evidence_id,
        operation_id=op,
        level=level,
        kind=AgreementEvidenceKind.WITNESS,
        reference=f"ref-{evidence_id}",
        authoritative=True,
    )
    return EvidenceProduced(evidence=evidence, tick=tick)


def fin(op: str, outcome: FinalizationOutcome, tick: int) -> Finalization:
    return Finalization(operation_id=op, outcome=outcome, tick=tick)


def gate(op: str, level: AgreementLevel, tick: int) -> VisibilityGateCrossing:
    return VisibilityGateCrossing(
        operation_id=op, downstream_coroutine_id="downstream", gate_level=level, tick=tick
    )


def cache(*evidence_ids: str) -> EvidenceOutcomeCacheArtifact:
    return EvidenceOutcomeCacheArtifact(
        entries=[
            EvidenceOutcomeCacheEntry(
                evidence_id=eid,
                interface_name="store",
                operation_name="put",
                outcome=EffectOutcome.success(eid),
            )
            for eid in evidence_ids
        ]
    )


def plan(
    checkpoint: int | None,
    entries: list[WalEntry],
    evidence: EvidenceOutcomeCacheArtifact | None = None,
    *,
    strict: bool = True,
) -> DurableRecoveryPlan:
    return DurableRecoveryPlan.from_checkpoint(
        checkpoint,
        {"state": "at checkpoint"},
        AgreementWalArtifact(entries=entries),
        evidence or cache(),
        strict=strict,
    )


def only(p: DurableRecoveryPlan) -> DurableRecoveryDecision:
    assert len(p.decisions) == 1
    return p.decisions[0]


# (name, checkpoint, entries, expected fields of the single decision)
CASES: list[tuple[str, int | None, list[WalEntry], dict[str, Any]]] = [
    (
        "suffix_escalation_below_soft_safe_reexecutes",
        0,
        [esc("a", N, P, 1)],
        {"level": P, "action": A.REEXECUTE_FROM_SCRATCH, "checkpoint_level": N},
    ),
    (
        "suffix_soft_safe_resumes",
        0,
        [esc("a", N, P, 1), esc("a", P, S, 2)],
        {"level": S, "action": A.RESUME_FROM_EVIDENCE_BOUNDARY},
    ),
    (
        "evidence_level_raises_level",
        0,
        [ev("a", "e1", S, 3)],
        {"level": S, "action": A.RESUME_FROM_EVIDENCE_BOUNDARY},
    ),
    (
        "checkpoint_level_is_what_the_prefix_proves",
        10,
        [esc("a", N, S, 5), esc("a", S, S, 11)],
        {"level": S, "checkpoint_level": S, "action": A.RESUME_FROM_EVIDENCE_BOUNDARY},
    ),
    (
        "level_starts_at_checkpoint_level",
        10,
        [ev("a", "e1", S, 4), esc("a", N, P, 12)],
        {"level": S, "checkpoint_level": S, "action": A.RESUME_FROM_EVIDENCE_BOUNDARY},
    ),
    (
        "prefix_finalized_proves_finalized_checkpoint_level",
        10,
        [fin("a", O.FINALIZED, 2), gate("a", F, 20)],
        {
            "level": F,
            "checkpoint_level": F,
            "finalization": O.FINALIZED,
            "action": A.REUSE_FINALIZED,
            "gate_crossed": True,
            "gate_level": F,
        },
    ),
    (
        "suffix_finalized_reuses",
        0,
        [esc("a", N, S, 1), fin("a", O.FINALIZED, 2)],
        {"level": F, "finalization": O.FINALIZED, "action": A.REUSE_FINALIZED},
    ),
    (
        "terminal_outcome_stays_terminal_across_checkpoints",
        10,
        [fin("a", O.ABORTED, 3), esc("a", N, P, 11)],
        {"level": P, "finalization": O.ABORTED, "action": A.PRESERVE_TERMINAL},
    ),
    (
        "last_finalization_in_wal_order_wins_not_highest_tick",
        10,
        [fin("a", O.REJECTED, 30), fin("a", O.TIMED_OUT, 5)],
        {"finalization": O.TIMED_OUT, "action": A.PRESERVE_TERMINAL},
    ),
    (
        "finalized_then_aborted_preserves_terminal",
        0,
        [fin("a", O.FINALIZED, 1), fin("a", O.ABORTED, 2)],
        {"level": F, "finalization": O.ABORTED, "action": A.PRESERVE_TERMINAL},
    ),
    (
        "gate_level_is_highest_suffix_gate",
        0,
        [esc("a", N, S, 1), gate("a", P, 2), gate("a", S, 3), gate("a", N, 4)],
        {"gate_crossed": True, "gate_level": S, "level": S},
    ),
    (
        "prefix_gates_do_not_count",
        10,
        [gate("a", F, 3), esc("a", N, P, 11)],
        {"gate_crossed": False, "gate_level": None, "level": P},
    ),
    (
        "gate_met_by_prefix_level_is_sound",
        10,
        [esc("a", N, S, 1), gate("a", S, 11)],
        {"gate_crossed": True, "gate_level": S, "checkpoint_level": S},
    ),
    (
        "no_checkpoint_counts_every_entry_in_the_suffix",
        None,
        [esc("a", N, S, 0), fin("a", O.FINALIZED, 0), gate("a", F, 3)],
        {
            "level": F,
            "checkpoint_level": N,
            "action": A.REUSE_FINALIZED,
            "gate_crossed": True,
            "gate_level": F,
        },
    ),
]


@pytest.mark.parametrize(
    ("checkpoint", "entries", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decision_rules(
    checkpoint: int | None, entries: list[WalEntry], expected: dict[str, Any]
) -> None:
    decision = only(plan(checkpoint, entries))
    actual = {name: getattr(decision, name) for name in expected}
    assert actual == expected
    assert is_sound(decision)


def test_operations_with_only_prefix_entries_get_no_decision() -> None:
    p = plan(10, [esc("old", N, F, 1), esc("new", N, P, 11)])
    assert [d.operation_id for d in p.decisions] == ["new"]
    assert p.anomalies == ()


def test_decisions_are_sorted_by_operation_id() -> None:
    p = plan(0, [esc("c", N, P, 1), esc("a", N, P, 2), esc("b", N, P, 3), esc("B", N, P, 4)])
    assert [d.operation_id for d in p.decisions] == ["B", "a", "b", "c"]


def test_wal_suffix_keeps_wal_order_with_unordered_ticks() -> None:
    entries: list[WalEntry] = [esc("a", N, P, 9), esc("b", N, P, 2), esc("a", P, S, 14)]
    entries.append(esc("b", P, P, 7))
    p = plan(5, entries)
    assert list(p.wal_suffix) == [entries[0], entries[2], entries[3]]


def test_metadata_ticks_are_min_and_max_of_unordered_suffix() -> None:
    p = plan(5, [esc("a", N, P, 9), esc("b", N, P, 2), ev("a", "e", P, 30), gate("b", N, 6)])
    assert p.metadata.checkpoint_tick == 5
    assert p.metadata.wal_tail_start_tick == 6
    assert p.metadata.highest_recovered_tick == 30


def test_metadata_of_an_empty_suffix() -> None:
    p = plan(50, [esc("a", N, P, 9)], cache("x"))
    assert p.decisions == () and p.wal_suffix == ()
    assert p.metadata.wal_tail_start_tick is None
    assert p.metadata.highest_recovered_tick is None
    assert list(p.metadata.cached_evidence_ids) == ["x"]


TICK_ZERO: list[WalEntry] = [
    ev("boot", "ev-0", S, 0),
    esc("boot", N, S, 0),
    gate("boot", S, 0),
    esc("late", N, P, 4),
]


def test_tick_zero_operation_gets_a_decision_without_a_checkpoint_only() -> None:
    # Regression: planning "no checkpoint" as checkpoint 0 dropped "boot".
    at_zero = plan(0, TICK_ZERO, cache("ev-0"))
    assert [d.operation_id for d in at_zero.decisions] == ["late"]
    none = plan(None, TICK_ZERO, cache("ev-0"))
    assert [d.operation_id for d in none.decisions] == ["boot", "late"]
    assert none.decisions[0] == DurableRecoveryDecision(
        operation_id="boot",
        level=S,
        action=A.RESUME_FROM_EVIDENCE_BOUNDARY,
        cached_evidence_ids=["ev-0"],
        gate_crossed=True,
        gate_level=S,
    )
    assert list(none.wal_suffix) == TICK_ZERO
    assert list(none.metadata.resumed_operation_ids) == ["boot", "late"]


def test_no_checkpoint_metadata_tick_is_zero_and_tail_starts_at_first_tick() -> None:
    p = plan(None, TICK_ZERO)
    assert p.metadata.checkpoint_tick == 0
    assert (p.metadata.wal_tail_start_tick, p.metadata.highest_recovered_tick) == (0, 4)
    assert plan(None, []).metadata.checkpoint_tick == 0


def test_no_checkpoint_levels_are_none_and_every_gate_is_checked() -> None:
    entries: list[WalEntry] = [esc("a", N, S, 0), esc("b", N, P, 0), gate("b", S, 0)]
    p = plan(None, entries, strict=False)
    assert {d.checkpoint_level for d in p.decisions} == {N}
    assert p.anomalies == ("b",)
    assert plan(0, entries).decisions == ()  # at checkpoint 0 the gate is not checked


def test_negative_checkpoint_tick_is_still_refused() -> None:
    with pytest.raises(ValueError, match="checkpoint_tick"):
        plan(-1, [esc("a", N, P, 0)])


def test_metadata_splits_resumed_and_terminal_operations() -> None:
    p = plan(
        0,
        [
            esc("re", N, P, 1),
            esc("resume", N, S, 1),
            fin("reuse", O.FINALIZED, 1),
            fin("keep", O.REJECTED, 1),
        ],
        cache("z", "y"),
    )
    assert list(p.metadata.resumed_operation_ids) == ["re", "resume"]
    assert list(p.metadata.terminal_operation_ids) == ["keep", "reuse"]
    assert list(p.metadata.cached_evidence_ids) == ["z", "y"]


def test_cached_evidence_ids_each_once_in_order_of_first_appearance() -> None:
    p = plan(
        10,
        [
            ev("a", "e0", P, 3),  # prefix: not listed
            ev("a", "e3", P, 11),
            ev("a", "e1", P, 12),
            ev("a", "missing", P, 13),
            ev("a", "e3", S, 14),
            ev("b", "e2", P, 15),
            ev("a", "e1", S, 16),
        ],
        cache("e0", "e1", "e2", "e3"),
    )
    decisions = {d.operation_id: d for d in p.decisions}
    assert list(decisions["a"].cached_evidence_ids) == ["e3", "e1"]
    assert list(decisions["b"].cached_evidence_ids) == ["e2"]


def test_worked_example_of_the_spec() -> None:
    """specs/recovery.md, "Worked example"."""
    entries: list[WalEntry] = [
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
    evidence = cache("ev-1", "ev-9")
    p = plan(10, entries, evidence, strict=False)
    assert p.anomalies == ("mail",)
    assert list(p.decisions) == [
        DurableRecoveryDecision(operation_id="log", level=P, action=A.REEXECUTE_FROM_SCRATCH),
        DurableRecoveryDecision(
            operation_id="pay",
            level=S,
            action=A.RESUME_FROM_EVIDENCE_BOUNDARY,
            cached_evidence_ids=["ev-1"],
            gate_crossed=True,
            checkpoint_level=S,
            gate_level=S,
        ),
        DurableRecoveryDecision(
            operation_id="ship", level=P, action=A.PRESERVE_TERMINAL, finalization=O.ABORTED
        ),
        DurableRecoveryDecision(
            operation_id="tax", level=F, action=A.REUSE_FINALIZED, finalization=O.FINALIZED
        ),
    ]
    meta = p.metadata
    assert (meta.wal_tail_start_tick, meta.highest_recovered_tick) == (11, 20)
    assert list(meta.resumed_operation_ids) == ["log", "pay"]
    assert list(meta.terminal_operation_ids) == ["ship", "tax"]
    assert list(meta.cached_evidence_ids) == ["ev-1", "ev-9"]
    with pytest.raises(InconsistentWalError, match="mail"):
        plan(10, entries, evidence)


GATE_ABOVE_LEVEL: list[WalEntry] = [
    esc("bad", N, P, 11),
    gate("bad", S, 12),
    esc("good", N, S, 11),
    gate("good", S, 12),
]


def test_gate_above_proven_level_is_an_anomaly_in_strict_mode() -> None:
    with pytest.raises(InconsistentWalError, match="`bad`") as info:
        plan(10, GATE_ABOVE_LEVEL)
    assert info.value.operation_ids == ("bad",)
    assert isinstance(info.value, DurabilityError)


def test_gate_above_proven_level_is_listed_and_skipped_when_not_strict() -> None:
    p = plan(10, GATE_ABOVE_LEVEL, strict=False)
    assert p.anomalies == ("bad",)
    assert [d.operation_id for d in p.decisions] == ["good"]
    assert list(p.metadata.resumed_operation_ids) == ["good"]
    assert "bad" not in p.metadata.terminal_operation_ids


def test_anomalies_are_sorted() -> None:
    entries: list[WalEntry] = [gate("z", P, 1), gate("m", F, 2), gate("a", S, 3)]
    p = plan(0, entries, strict=False)
    assert p.anomalies == ("a", "m", "z")
    with pytest.raises(InconsistentWalError) as info:
        plan(0, entries)
    assert info.value.operation_ids == ("a", "m", "z")


def test_gate_met_only_after_it_crossed_is_not_an_anomaly() -> None:
    # The level is what the whole WAL proves, whatever the order.
    p = plan(0, [gate("a", S, 1), esc("a", N, S, 2)])
    assert only(p).gate_level is S


@pytest.mark.parametrize(
    "entries",
    [
        [esc("a", S, P, 11)],
        [esc("a", N, S, 1), esc("a", N, P, 12)],
        [esc("a", N, S, 12), esc("a", P, F, 13)],
    ],
    ids=["regression", "reordered_across_checkpoint", "reordered_previous_level"],
)
def test_invalid_wal_raises_escalation_order_error(entries: list[WalEntry]) -> None:
    with pytest.raises(EscalationOrderError, match="regress"):
        plan(10, entries, strict=False)


def test_escalation_order_is_checked_before_anomalies() -> None:
    with pytest.raises(EscalationOrderError):
        plan(0, [gate("a", F, 1), esc("b", S, N, 2)])


def test_checkpoint_state_and_cache_are_kept_as_given() -> None:
    state = object()
    evidence = cache("e")
    p = DurableRecoveryPlan.from_checkpoint(0, state, AgreementWalArtifact(), evidence)
    assert p.checkpoint_state is state
    assert p.evidence_cache is evidence


def test_action_values_are_snake_case() -> None:
    assert [a.value for a in DurableRecoveryAction] == [
        "reexecute_from_scratch",
        "resume_from_evidence_boundary",
        "reuse_finalized",
        "preserve_terminal",
    ]


def test_decision_defaults_and_immutability() -> None:
    d = DurableRecoveryDecision(operation_id="a", level=P, action=A.REEXECUTE_FROM_SCRATCH)
    assert d.finalization is None and d.cached_evidence_ids == ()
    assert d.gate_crossed is False and d.gate_level is None and d.checkpoint_level is N
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        d.level = F  # type: ignore[misc]
    assert DurableRecoveryDecision(
        operation_id="a", level=P, action=A.REEXECUTE_FROM_SCRATCH, cached_evidence_ids=["x"]
    ).cached_evidence_ids == ("x",)


UNSOUND: list[tuple[str, dict[str, Any]]] = [
    ("level_below_checkpoint", {"level": P, "checkpoint_level": S}),
    ("gate_above_level", {"level": P, "gate_crossed": True, "gate_level": S}),
    ("reuse_without_finalized_level", {"action": A.REUSE_FINALIZED, "finalization": O.FINALIZED}),
    ("reuse_without_finalization", {"action": A.REUSE_FINALIZED, "level": F}),
    ("preserve_without_outcome", {"action": A.PRESERVE_TERMINAL}),
    ("preserve_finalized", {"action": A.PRESERVE_TERMINAL, "finalization": O.FINALIZED}),
]


@pytest.mark.parametrize("fields", [c[1] for c in UNSOUND], ids=[c[0] for c in UNSOUND])
def test_is_sound_rejects_each_broken_clause(fields: dict[str, Any]) -> None:
    base: dict[str, Any] = {"operation_id": "a", "level": P, "action": A.REEXECUTE_FROM_SCRATCH}
    assert not is_sound(DurableRecoveryDecision(**{**base, **fields}))


def test_is_sound_accepts_gate_at_level_and_terminal_outcomes() -> None:
    for outcome in (O.ABORTED, O.REJECTED, O.TIMED_OUT):
        assert is_sound(
            DurableRecoveryDecision(
                operation_id="a",
                level=S,
                action=A.PRESERVE_TERMINAL,
                finalization=outcome,
                gate_crossed=True,
                gate_level=S,
            )
        )


class _CountingEscalation(Escalation):
    """An escalation that counts every attribute read, to bound planner work."""

    reads = 0

    def __getattribute__(self, name: str) -> Any:
        _CountingEscalation.reads += 1
        return super().__getattribute__(name)


def test_plan_reads_the_wal_once_with_bounded_work_per_entry() -> None:
    ops, per_op = 2_000, 10
    count = ops * per_op
    levels = [N, P, P, S, S, S, S, S, S, F]

    def entries() -> Iterator[WalEntry]:
        for step in range(per_op):
            for i in range(ops):
                level = levels[step]
                yield _CountingEscalation(
                    operation_id=f"op-{i:05d}",
                    previous_level=level,
                    new_level=level,
                    tick=step * ops + i,
                )

    stream = entries()
    _CountingEscalation.reads = 0
    p = DurableRecoveryPlan.from_checkpoint(count // 2 - 1, None, stream, cache())
    # A generator can be iterated once: a second pass would see nothing.
    assert next(stream, None) is None
    assert len(p.wal_suffix) == count // 2
    assert len(p.decisions) == ops
    assert {d.level for d in p.decisions} == {F}
    assert {d.checkpoint_level for d in p.decisions} == {S}
    # O(entries): a constant number of attribute reads per entry, not one per
    # operation and entry (which would be ~ops times more).
    assert _CountingEscalation.reads <= 25 * count
