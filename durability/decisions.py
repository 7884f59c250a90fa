"""Recovery decisions: what recovery does with one operation, and the formal
model's soundness predicate every decision the planner emits satisfies
(``specs/recovery.md``). Pure values; the planner that builds them is
`durability.planner`.
"""

from __future__ import annotations

import enum

import attrs

from .model import AgreementLevel, FinalizationOutcome, _str, _to_tuple

__all__ = ["DurableRecoveryAction", "DurableRecoveryDecision", "PlannerRule", "is_sound"]

_level = attrs.validators.instance_of(AgreementLevel)
_opt_level = attrs.validators.optional(_level)
_TERMINAL_FAILURES = frozenset(
    {FinalizationOutcome.ABORTED, FinalizationOutcome.REJECTED, FinalizationOutcome.TIMED_OUT}
)


class DurableRecoveryAction(enum.Enum):
    """What recovery does with one operation.

    * `REEXECUTE_FROM_SCRATCH`: nothing durable at `SOFT_SAFE` or above; run
      the operation again from the checkpoint state.
    * `RESUME_FROM_EVIDENCE_BOUNDARY`: the WAL proves `SOFT_SAFE` or above but
      no finalization; resume from the last durable evidence, reusing cached
      effect outcomes instead of repeating them.
    * `REUSE_FINALIZED`: the operation finalized; reuse its result, run nothing.
    * `PRESERVE_TERMINAL`: the operation was aborted, rejected or timed out;
      keep that outcome, run nothing.
    """

    REEXECUTE_FROM_SCRATCH = "reexecute_from_scratch"
    RESUME_FROM_EVIDENCE_BOUNDARY = "resume_from_evidence_boundary"
    REUSE_FINALIZED = "reuse_finalized"
    PRESERVE_TERMINAL = "preserve_terminal"


class PlannerRule(enum.Enum):
    """The planner's rules, by stable short name (``specs/recovery.md``,
    "Rules, per operation"): tried in this order, the first that applies
    chooses. The planner returns the rule it applied (`rule` of
    `durability.planner.OperationRecovery`), so an explanation names the very
    branch that chose the action.

    * `GATE_ABOVE_LEVEL` (``gate-above-level``): a gate crossed after the
      checkpoint is above the level the WAL proves; no decision (an anomaly);
    * `FINALIZED` (``finalized``): the last finalization is ``FINALIZED``:
      `REUSE_FINALIZED`;
    * `TERMINAL` (``terminal``): the last finalization is aborted, rejected or
      timed out: `PRESERVE_TERMINAL`;
    * `SOFT_SAFE` (``soft-safe``): no finalization, level ``SOFT_SAFE`` or
      above: `RESUME_FROM_EVIDENCE_BOUNDARY`;
    * `BELOW_SOFT_SAFE` (``below-soft-safe``): no finalization, level below
      ``SOFT_SAFE``: `REEXECUTE_FROM_SCRATCH`.
    """

    GATE_ABOVE_LEVEL = "gate-above-level"
    FINALIZED = "finalized"
    TERMINAL = "terminal"
    SOFT_SAFE = "soft-safe"
    BELOW_SOFT_SAFE = "below-soft-safe"

    @property
    def action(self) -> DurableRecoveryAction | None:
        """The action this rule chooses (``None``: an anomaly, no decision)."""
        return _RULE_ACTIONS[self]

    @property
    def statement(self) -> str:
        """The rule in one line, as ``specs/recovery.md`` states it."""
        return _RULE_STATEMENTS[self]


_RULE_ACTIONS: dict[PlannerRule, DurableRecoveryAction | None] = {
    PlannerRule.GATE_ABOVE_LEVEL: None,
    PlannerRule.FINALIZED: DurableRecoveryAction.REUSE_FINALIZED,
    PlannerRule.TERMINAL: DurableRecoveryAction.PRESERVE_TERMINAL,
    PlannerRule.SOFT_SAFE: DurableRecoveryAction.RESUME_FROM_EVIDENCE_BOUNDARY,
    PlannerRule.BELOW_SOFT_SAFE: DurableRecoveryAction.REEXECUTE_FROM_SCRATCH,
}
_RULE_STATEMENTS: dict[PlannerRule, str] = {
    PlannerRule.GATE_ABOVE_LEVEL: "a gate crossed after the checkpoint is above the level "
    "the WAL proves: no sound decision exists (an anomaly)",
    PlannerRule.FINALIZED: "the last finalization is finalized: reuse its result",
    PlannerRule.TERMINAL: "the last finalization is aborted, rejected or timed out: "
    "preserve that outcome",
    PlannerRule.SOFT_SAFE: "no finalization and the WAL proves soft_safe or above: "
    "resume from the evidence boundary",
    PlannerRule.BELOW_SOFT_SAFE: "no finalization and the WAL proves less than soft_safe: "
    "re-execute from scratch",
}


@attrs.frozen(kw_only=True)
class DurableRecoveryDecision:
    """The recovery decision for one operation.

    * `operation_id`: the operation;
    * `level`: the highest level the whole WAL proves for it;
    * `action`: what recovery does (`DurableRecoveryAction`);
    * `finalization`: the outcome of its last `Finalization` in WAL order,
      before or after the checkpoint, or ``None``;
    * `cached_evidence_ids`: ids of its evidence produced after the checkpoint
      that the evidence cache holds, each once, in order of first appearance;
    * `gate_crossed`, `gate_level`: whether a visibility gate was crossed
      after the checkpoint, and the highest such gate's level;
    * `checkpoint_level`: the highest level the WAL proves at or before the
      checkpoint;
    * `in_doubt_evidence_ids`: the evidence ids of this operation's effects
      in doubt (an intent with no outcome, API.md §11), in the order the
      cache's ``in_doubt()`` lists them: they may or may not have happened,
      so resuming must not simply run them again.

    >>> d = DurableRecoveryDecision(operation_id="op", level=AgreementLevel.SOFT_SAFE,
    ...     action=DurableRecoveryAction.RESUME_FROM_EVIDENCE_BOUNDARY)
    >>> is_sound(d)
    True
    """

    operation_id: str = attrs.field(validator=_str)
    level: AgreementLevel = attrs.field(validator=_level)
    action: DurableRecoveryAction = attrs.field(
        validator=attrs.validators.instance_of(DurableRecoveryAction)
    )
    finalization: FinalizationOutcome | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.instance_of(FinalizationOutcome)),
    )
    cached_evidence_ids: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)
    gate_crossed: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    checkpoint_level: AgreementLevel = attrs.field(default=AgreementLevel.NONE, validator=_level)
    gate_level: AgreementLevel | None = attrs.field(default=None, validator=_opt_level)
    in_doubt_evidence_ids: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)


def is_sound(decision: DurableRecoveryDecision) -> bool:
    """The formal model's soundness predicate for one decision.

    True when all of these hold:

    * ``checkpoint_level <= level``;
    * a crossed gate was crossed at or below ``level`` (a crossed gate without
      a `gate_level` counts as a gate at `AgreementLevel.NONE`);
    * `REUSE_FINALIZED` only with ``level`` and ``finalization`` both
      `FINALIZED`;
    * `PRESERVE_TERMINAL` only with an `ABORTED`, `REJECTED` or `TIMED_OUT`
      finalization.

    Every decision `DurableRecoveryPlan.from_checkpoint` emits is sound.
    """
    if decision.checkpoint_level > decision.level:
        return False
    gate = decision.gate_level or AgreementLevel.NONE
    if decision.gate_crossed and not decision.level.at_least(gate):
        return False
    if decision.action is DurableRecoveryAction.REUSE_FINALIZED:
        return (
            decision.level is AgreementLevel.FINALIZED
            and decision.finalization is FinalizationOutcome.FINALIZED
        )
    if decision.action is DurableRecoveryAction.PRESERVE_TERMINAL:
        return decision.finalization in _TERMINAL_FAILURES
    return True
