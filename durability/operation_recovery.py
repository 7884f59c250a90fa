"""One pass of the recovery planner over one operation: `OperationRecovery`.

The planner (`durability.planner`) keeps one summary per operation and feeds
it every entry of that operation in WAL order; the summary keeps, in O(1) per
entry, the values a decision needs (``specs/recovery.md``, "Rules, per
operation"), the entry that set each of them, and, once `decide` ran, the
`PlannerRule` that chose the action, so an explanation reports what the
planner did rather than deriving it again.
"""

from __future__ import annotations

from collections.abc import Iterable

from .artifact import (
    Escalation,
    EvidenceOutcomeCacheArtifact,
    EvidenceProduced,
    Finalization,
    VisibilityGateCrossing,
    WalEntry,
    escalation_error,
    proven_level,
)
from .decisions import DurableRecoveryDecision, PlannerRule
from .errors import EscalationOrderError
from .explanation import Cite, DecisionExplanation, EntryLocator, EntryRole, explain
from .model import AgreementLevel, FinalizationOutcome, max_level

__all__ = ["OperationRecovery"]


class OperationRecovery:
    """What one pass over the WAL learns about one operation.

    The planner keeps one per operation and feeds it every entry of that
    operation, in WAL order, with `observe`; `decide` then turns it into a
    `DurableRecoveryDecision` (or ``None`` for an anomaly). Each entry costs
    O(1). Mutable; not part of a plan.
    """

    __slots__ = (
        "_cached_seen",
        "cached_evidence_ids",
        "checkpoint_at",
        "checkpoint_entry",
        "checkpoint_level",
        "escalation_level",
        "finalization",
        "finalization_at",
        "finalization_entry",
        "gate_at",
        "gate_entry",
        "gate_level",
        "in_suffix",
        "operation_id",
        "rule",
        "suffix_at",
        "suffix_entry",
        "suffix_level",
    )

    def __init__(self, operation_id: str) -> None:
        self.operation_id = operation_id
        #: `new_level` of the last escalation (``None`` before any), for order checks.
        self.escalation_level: AgreementLevel | None = None
        #: Highest level proven at or before the checkpoint.
        self.checkpoint_level = AgreementLevel.NONE
        #: Highest level proven after the checkpoint.
        self.suffix_level = AgreementLevel.NONE
        #: Outcome of the last finalization seen, before or after the checkpoint.
        self.finalization: FinalizationOutcome | None = None
        #: Highest gate level crossed after the checkpoint (``None``: no gate).
        self.gate_level: AgreementLevel | None = None
        #: Whether any entry of the operation lies after the checkpoint.
        self.in_suffix = False
        #: Suffix evidence ids the cache holds, first appearance order.
        self.cached_evidence_ids: list[str] = []
        self._cached_seen: set[str] = set()
        # The entry that set each value above, and its 1-based WAL position
        # (kept apart, not as tuples: nothing is allocated per entry).
        self.checkpoint_entry: WalEntry | None = None
        self.suffix_entry: WalEntry | None = None
        self.finalization_entry: WalEntry | None = None
        self.gate_entry: WalEntry | None = None
        self.checkpoint_at = self.suffix_at = self.finalization_at = self.gate_at = 0
        #: The rule `decide` applied (``None`` before it ran).
        self.rule: PlannerRule | None = None

    @property
    def level(self) -> AgreementLevel:
        """The highest level the whole WAL (so far) proves."""
        return max_level(self.checkpoint_level, self.suffix_level)

    def observe(
        self,
        entry: WalEntry,
        *,
        in_suffix: bool,
        cache: EvidenceOutcomeCacheArtifact,
        position: int = 0,
    ) -> None:
        """Account for the next `entry` of this operation, the `position`-th
        (1-based) of the WAL.

        Raises `EscalationOrderError` when `entry` is an escalation that
        regresses or is reordered with respect to the ones seen before.
        """
        if isinstance(entry, Escalation):
            problem = escalation_error(entry, self.escalation_level)
            if problem is not None:
                raise EscalationOrderError(problem)
            self.escalation_level = entry.new_level
        elif isinstance(entry, Finalization):
            self.finalization = entry.outcome
            self.finalization_at, self.finalization_entry = position, entry
        proven = proven_level(entry)
        if not in_suffix:
            level = max_level(self.checkpoint_level, proven)
            if level is not self.checkpoint_level:  # strictly higher: this entry set it
                self.checkpoint_level = level
                self.checkpoint_at, self.checkpoint_entry = position, entry
            return
        self.in_suffix = True
        level = max_level(self.suffix_level, proven)
        if level is not self.suffix_level:
            self.suffix_level = level
            self.suffix_at, self.suffix_entry = position, entry
        if isinstance(entry, VisibilityGateCrossing):
            gate, highest = entry.gate_level, self.gate_level
            if highest is None or max_level(highest, gate) is not highest:
                self.gate_level = gate
                self.gate_at, self.gate_entry = position, entry
        elif isinstance(entry, EvidenceProduced):
            evidence_id = entry.evidence.evidence_id
            if evidence_id not in self._cached_seen and cache.get(evidence_id) is not None:
                self._cached_seen.add(evidence_id)
                self.cached_evidence_ids.append(evidence_id)

    @property
    def is_anomaly(self) -> bool:
        """True when a gate crossed after the checkpoint is above `level`."""
        return self.gate_level is not None and self.gate_level > self.level

    def choose_rule(self, level: AgreementLevel | None = None) -> PlannerRule:
        """The first `PlannerRule` that applies to this operation (`level`:
        its `level`, when the caller has it at hand)."""
        level = self.level if level is None else level
        gate = self.gate_level
        if gate is not None and max_level(level, gate) is not level:  # gate above level
            return PlannerRule.GATE_ABOVE_LEVEL
        if self.finalization is FinalizationOutcome.FINALIZED:
            return PlannerRule.FINALIZED
        if self.finalization is not None:
            return PlannerRule.TERMINAL
        if level.at_least(AgreementLevel.SOFT_SAFE):
            return PlannerRule.SOFT_SAFE
        return PlannerRule.BELOW_SOFT_SAFE

    def decide(self, in_doubt: Iterable[str] = ()) -> DurableRecoveryDecision | None:
        """The sound decision for this operation (listing `in_doubt`, the ids
        of its effects in doubt), or ``None`` for an anomaly. The rule that
        chose it is kept in `rule`."""
        level = self.level
        self.rule = rule = self.choose_rule(level)
        action = rule.action
        if action is None:
            return None
        return DurableRecoveryDecision(
            operation_id=self.operation_id,
            level=level,
            action=action,
            finalization=self.finalization,
            cached_evidence_ids=self.cached_evidence_ids,
            gate_crossed=self.gate_level is not None,
            checkpoint_level=self.checkpoint_level,
            gate_level=self.gate_level,
            in_doubt_evidence_ids=in_doubt,
        )

    def explanation(
        self, decision: DurableRecoveryDecision | None, locator: EntryLocator | None
    ) -> DecisionExplanation:
        """What `decide` did, with the entries behind it (see `explain`)."""
        assert self.rule is not None, "explained before decide() ran"
        found: dict[EntryRole, Cite] = {}
        if self.checkpoint_entry is not None:
            found[EntryRole.CHECKPOINT_LEVEL] = (self.checkpoint_at, self.checkpoint_entry)
        if self.suffix_entry is not None and self.suffix_level > self.checkpoint_level:
            found[EntryRole.LEVEL] = (self.suffix_at, self.suffix_entry)
        elif self.checkpoint_entry is not None:
            found[EntryRole.LEVEL] = (self.checkpoint_at, self.checkpoint_entry)
        if self.finalization_entry is not None:
            found[EntryRole.FINALIZATION] = (self.finalization_at, self.finalization_entry)
        if self.gate_entry is not None:
            found[EntryRole.GATE] = (self.gate_at, self.gate_entry)
        return explain(
            operation_id=self.operation_id,
            rule=self.rule,
            decision=decision,
            values=(self.checkpoint_level, self.level, self.finalization, self.gate_level),
            cites=found,
            locator=locator,
        )
