"""Why the planner decided what it did: the value `DurableRecoveryPlan.explain`
returns. Pure values.

A `DecisionExplanation` names the planner rule that chose the action
(`PlannerRule`, the very branch the planner took) and cites the WAL entries
behind each value the rule looked at (`EntryRole`): the entry that set the
checkpoint level, the one that set the level, the last finalization and the
highest gate crossed after the checkpoint. Each `CitedEntry` gives the entry's
1-based position in the WAL the plan read and, when the plan knows where that
WAL is stored (an `EntryLocator`), its `EntryLocation`: file and byte offset of
its record in a log file, or its sequence in a SQL store::

    explanation = plan.explain("op#26")
    print(explanation.rule.value, explanation.reason)
    for cited in explanation.entries:
        print(cited.role.value, cited.position, cited.location)
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import attrs

from .artifact import (
    Escalation,
    EvidenceProduced,
    Finalization,
    VisibilityGateCrossing,
    WalEntry,
    proven_level,
)
from .decisions import DurableRecoveryAction, DurableRecoveryDecision, PlannerRule
from .errors import StorageError
from .model import AgreementLevel, FinalizationOutcome

__all__ = [
    "CitedEntry",
    "DecisionExplanation",
    "EntryLocation",
    "EntryLocator",
    "EntryRole",
    "Located",
    "describe_entry",
    "explain",
]


class EntryRole(enum.Enum):
    """Which value of a decision a cited entry set."""

    #: The first entry at or before the checkpoint proving the checkpoint level.
    CHECKPOINT_LEVEL = "checkpoint_level"
    #: The first entry proving the level (the checkpoint's entry when the
    #: suffix proves nothing higher).
    LEVEL = "level"
    #: The operation's last finalization, before or after the checkpoint.
    FINALIZATION = "finalization"
    #: The first gate crossing after the checkpoint at the highest gate level.
    GATE = "gate"


@attrs.frozen(kw_only=True)
class EntryLocation:
    """Where a WAL entry is stored.

    * `sequence`: its sequence in the WAL (a file log: its 1-based position;
      a SQL store: the row's sequence, which a pruned store no longer starts
      at 1);
    * `path`: the log file holding it (``None`` for a SQL store);
    * `offset`: byte offset in `path` of the record holding it (0: the base,
      the v1 artifact the log starts with);
    * `record`: that record's sequence number in the log (``None`` for the base);
    * `index`: the entry's 0-based position in that record's array of entries
      (or in the base's entries).
    """

    sequence: int
    path: str | None = None
    offset: int | None = None
    record: int | None = None
    index: int | None = None


#: A location and the entry found there.
Located = tuple[EntryLocation, WalEntry]
#: Finds an entry by its 1-based position in the WAL a plan read: where it is
#: stored and the entry stored there (``None``: the WAL holds no such position).
EntryLocator = Callable[[int], "Located | None"]
#: A cited entry as the planner records it: its 1-based position and the entry.
Cite = tuple[int, WalEntry]
#: The values a rule looks at: checkpoint level, level, finalization, gate level.
Values = tuple[AgreementLevel, AgreementLevel, FinalizationOutcome | None, AgreementLevel | None]


@attrs.frozen(kw_only=True)
class CitedEntry:
    """One WAL entry behind a decision: the `role` it played, its 1-based
    `position` in the WAL the plan read, the `entry` itself and, when known,
    its `location`."""

    role: EntryRole
    position: int
    entry: WalEntry
    location: EntryLocation | None = None

    @property
    def value(self) -> str:
        """What the entry set: a level (the one it proves, or its gate's) or a
        finalization outcome."""
        entry = self.entry
        if self.role is EntryRole.GATE and isinstance(entry, VisibilityGateCrossing):
            return str(entry.gate_level.value)
        if self.role is EntryRole.FINALIZATION and isinstance(entry, Finalization):
            return str(entry.outcome.value)
        return str(proven_level(entry).value)


def describe_entry(entry: WalEntry) -> str:
    """A WAL entry in a few words: ``escalation none->soft_safe``,
    ``evidence op#1/cert soft_safe``, ``finalization finalized``, ``gate soft_safe``."""
    if isinstance(entry, Escalation):
        return f"escalation {entry.previous_level.value}->{entry.new_level.value}"
    if isinstance(entry, EvidenceProduced):
        return f"evidence {entry.evidence.evidence_id} {entry.evidence.level.value}"
    if isinstance(entry, Finalization):
        return f"finalization {entry.outcome.value}"
    return f"gate {entry.gate_level.value}"


@attrs.frozen(kw_only=True)
class DecisionExplanation:
    """Why one operation got its decision, or none (an anomaly).

    * `rule`: the planner rule that applied (`PlannerRule`);
    * `decision`: the decision it produced (``None`` for an anomaly);
    * `checkpoint_level`, `level`, `finalization`, `gate_level`: the values
      the rule looked at (as in a `DurableRecoveryDecision`);
    * `entries`: the entries that set them, in `EntryRole` order; a value no
      entry set (level ``none``, no finalization, no gate) cites none.
    """

    operation_id: str
    rule: PlannerRule
    decision: DurableRecoveryDecision | None
    checkpoint_level: AgreementLevel
    level: AgreementLevel
    finalization: FinalizationOutcome | None
    gate_level: AgreementLevel | None
    entries: tuple[CitedEntry, ...] = ()

    @property
    def action(self) -> DurableRecoveryAction | None:
        """The action chosen (``None`` for an anomaly)."""
        return self.rule.action

    @property
    def anomaly(self) -> bool:
        """Whether the operation is an anomaly (no sound decision exists)."""
        return self.decision is None

    def cited(self, role: EntryRole) -> CitedEntry | None:
        """The entry cited for `role`, or ``None``."""
        return next((c for c in self.entries if c.role is role), None)

    @property
    def reason(self) -> str:
        """The rule applied to this operation's values, in one line, each
        value followed by the WAL position of the entry that set it."""
        level = f"level {self.level.value}{self._at(EntryRole.LEVEL)}"
        if self.rule is PlannerRule.GATE_ABOVE_LEVEL:
            gate = self.gate_level.value if self.gate_level else "-"
            return f"gate {gate}{self._at(EntryRole.GATE)} is above the proven {level}"
        if self.finalization is not None:
            final = f"finalization {self.finalization.value}{self._at(EntryRole.FINALIZATION)}"
            return f"{final}: {self.rule.statement.split(': ', 1)[1]}"
        relation = "at least" if self.rule is PlannerRule.SOFT_SAFE else "below"
        return f"no finalization, {level} is {relation} soft_safe"

    def _at(self, role: EntryRole) -> str:
        cited = self.cited(role)
        return f" (WAL entry {cited.position})" if cited else " (no entry proves a level)"


def explain(
    *,
    operation_id: str,
    rule: PlannerRule,
    decision: DurableRecoveryDecision | None,
    values: Values,
    cites: dict[EntryRole, Cite],
    locator: EntryLocator | None,
) -> DecisionExplanation:
    """The explanation of what the planner recorded for one operation:
    `values` are its checkpoint level, level, finalization and gate level,
    `cites` the entries that set them. With a `locator`, each cited entry is
    located; `StorageError` when the stored WAL no longer holds that entry at
    that position (it changed since the plan was made)."""
    cited = []
    for role in EntryRole:
        if role not in cites:
            continue
        position, entry = cites[role]
        location = None
        if locator is not None:
            found = locator(position)
            if found is None or found[1] != entry:
                raise StorageError(
                    f"explain `{operation_id}`: the stored WAL no longer holds entry "
                    f"{position} as planned (it changed since the plan was made); plan again"
                )
            location = found[0]
        cited.append(CitedEntry(role=role, position=position, entry=entry, location=location))
    checkpoint_level, level, finalization, gate_level = values
    return DecisionExplanation(
        operation_id=operation_id,
        rule=rule,
        decision=decision,
        checkpoint_level=checkpoint_level,
        level=level,
        finalization=finalization,
        gate_level=gate_level,
        entries=tuple(cited),
    )
