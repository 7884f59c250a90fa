"""Model and effect values: ordering, identities, constructors, validation."""

from __future__ import annotations

import attrs
import pytest

from durability import (
    AgreementState,
    AgreementWalArtifact,
    EffectFailure,
    EffectFailureKind,
    EffectOutcome,
    EffectRequest,
    EffectStatus,
    EscalationOrderError,
    FinalizationOutcome,
)
from tests.helpers import L, esc, ev, fin, gate


def test_levels_are_ordered_by_rank() -> None:
    assert [level.rank for level in L] == [0, 1, 2, 3]
    assert L.NONE < L.PROVISIONAL < L.SOFT_SAFE < L.FINALIZED
    assert L.FINALIZED >= L.FINALIZED and L.SOFT_SAFE <= L.FINALIZED and L.FINALIZED > L.NONE
    assert L.SOFT_SAFE.at_least(L.PROVISIONAL) and not L.PROVISIONAL.at_least(L.SOFT_SAFE)
    assert max([L.PROVISIONAL, L.FINALIZED, L.NONE]) is L.FINALIZED


def test_stable_identities_are_exact() -> None:
    assert (
        esc("op", L.NONE, L.SOFT_SAFE, 4, "e1").stable_identity()
        == "escalation:op:None:SoftSafe:e1:4"
    )
    assert (
        esc("op", L.PROVISIONAL, L.FINALIZED, 0).stable_identity()
        == "escalation:op:Provisional:Finalized:-:0"
    )
    assert ev("op", "e9", L.PROVISIONAL, 2).stable_identity() == "evidence:op:e9:Provisional:2"
    assert (
        fin("op", FinalizationOutcome.ABORTED, 7).stable_identity()
        == "finalization:op:Aborted:-:-:7"
    )
    assert gate("op", L.SOFT_SAFE, 8, "c").stable_identity() == "gate:op:c:SoftSafe:8"
    assert ev("op", "e9", L.PROVISIONAL, 2).operation_id == "op"


def test_validate_monotonic_escalations_messages() -> None:
    with pytest.raises(EscalationOrderError, match="regression"):
        AgreementWalArtifact(
            entries=[esc("a", L.SOFT_SAFE, L.NONE, 1)]
        ).validate_monotonic_escalations()
    with pytest.raises(EscalationOrderError, match="reordered or regressed"):
        AgreementWalArtifact(
            entries=[esc("a", L.NONE, L.SOFT_SAFE, 1), esc("a", L.PROVISIONAL, L.FINALIZED, 2)]
        ).validate_monotonic_escalations()
    AgreementWalArtifact(
        entries=[
            esc("a", L.NONE, L.SOFT_SAFE, 1),
            esc("b", L.NONE, L.PROVISIONAL, 0),
            esc("a", L.SOFT_SAFE, L.FINALIZED, 0),
        ]
    ).validate_monotonic_escalations()


def test_read_since_is_strictly_after() -> None:
    wal = AgreementWalArtifact(
        entries=[gate("a", L.NONE, 3), gate("b", L.NONE, 1), gate("c", L.NONE, 4)]
    )
    assert wal.read_since(3) == [gate("c", L.NONE, 4)]
    assert wal.read_since(0) == list(wal.entries)


def test_sequences_are_stored_as_tuples_and_values_are_frozen() -> None:
    state = AgreementState(
        operation_id="op", contract_name="c", level=L.NONE, evidence_ids=["a", "b"]
    )
    assert state.evidence_ids == ("a", "b")
    assert hash(state) == hash(
        AgreementState(operation_id="op", contract_name="c", level=L.NONE, evidence_ids=("a", "b"))
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        state.level = L.FINALIZED  # type: ignore[misc]
    with pytest.raises(TypeError):
        AgreementState(operation_id="op", contract_name="c", level=L.NONE, evidence_ids="ab")


@pytest.mark.parametrize("tick", [-1, 2**64, "3", None, 1.0, True])
def test_bad_ticks_cannot_exist(tick: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        gate("op", L.NONE, tick)  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError)):
        EffectRequest(interface_name="i", operation_name="o", tick=tick)  # type: ignore[arg-type]


def test_effect_outcome_constructors_and_properties() -> None:
    ok = EffectOutcome.success({"a": 1})
    assert ok.is_success and ok.is_terminal and not ok.is_blocked and ok.failure is None
    blocked = EffectOutcome.blocked()
    assert blocked.is_blocked and not blocked.is_terminal and blocked.status is EffectStatus.BLOCKED
    failed = EffectOutcome.failure(EffectFailure.timeout("slow"))
    assert failed.failure == EffectFailure(kind=EffectFailureKind.TIMEOUT, message="slow")
    assert failed.is_terminal and not failed.is_success
    with pytest.raises(ValueError):
        EffectOutcome(status=EffectStatus.FAILURE)
    with pytest.raises(ValueError):
        EffectOutcome(status=EffectStatus.SUCCESS, failure=EffectFailure.unknown("x"))


def test_every_failure_kind_has_its_constructor() -> None:
    for kind in EffectFailureKind:
        failure = getattr(EffectFailure, kind.value)("m")
        assert failure == EffectFailure(kind=kind, message="m")
