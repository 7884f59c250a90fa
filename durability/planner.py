"""The recovery planner: what to do with each operation after a crash. Pure.

Given a checkpoint (its tick and its state, or none), the agreement WAL and
the evidence outcome cache, `DurableRecoveryPlan.from_checkpoint` decides, for
every operation with an entry after the checkpoint, whether to re-execute it,
resume it from its evidence boundary, reuse its finalized result or preserve
its terminal outcome. ``specs/recovery.md`` states the rules with a worked
example.

Rules of this module:

* an entry *proves* a level (`durability.artifact.proven_level`); an
  operation's ``level`` is the highest level the whole WAL proves for it, its
  ``checkpoint_level`` the highest proven at or before the checkpoint;
* every decision the planner emits is *sound* (`is_sound`); an operation whose
  WAL would force an unsound decision (a visibility gate crossed after the
  checkpoint above the level the WAL proves) gets none and is an *anomaly*;
* the WAL is read once, front to back: each entry updates one
  `OperationRecovery` summary, so planning is O(entries + operations log
  operations) and works on any iterator of entries;
* the summary also records which entries set each value and which
  `PlannerRule` chose the action, so `DurableRecoveryPlan.explain` reports
  what the planner did, never a second derivation of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from .artifact import (
    AgreementWalArtifact,
    DurableRecoveryMetadata,
    EvidenceOutcomeCacheArtifact,
    WalEntry,
)
from .decisions import DurableRecoveryAction, DurableRecoveryDecision, PlannerRule, is_sound
from .errors import InconsistentWalError, UnknownOperationError
from .explanation import DecisionExplanation, EntryLocator
from .intents import EffectIntent
from .model import _to_tuple
from .operation_recovery import OperationRecovery

__all__ = [
    "DurableRecoveryAction",
    "DurableRecoveryDecision",
    "DurableRecoveryPlan",
    "OperationRecovery",
    "PlannerRule",
    "PlanBuilder",
    "is_sound",
]


_RESUMED = frozenset(
    {
        DurableRecoveryAction.REEXECUTE_FROM_SCRATCH,
        DurableRecoveryAction.RESUME_FROM_EVIDENCE_BOUNDARY,
    }
)


@attrs.frozen(kw_only=True)
class DurableRecoveryPlan:
    """A recovery plan: a checkpoint plus what to do with each operation
    the WAL mentions after it.

    * `checkpoint_state`: the caller's checkpoint, kept as given;
    * `metadata`: the `DurableRecoveryMetadata` summary;
    * `wal_suffix`: the entries with ``tick > checkpoint_tick`` (every entry
      when planned without a checkpoint), in WAL order;
    * `evidence_cache`: the cache the plan was built with;
    * `decisions`: one sound decision per operation with a suffix entry,
      sorted by operation id, anomalies excepted;
    * `anomalies`: sorted ids of the operations left without a decision;
    * `in_doubt_evidence_ids`: the evidence ids of every effect in doubt
      (API.md §11), in the cache's ``in_doubt()`` order, whether or not its
      operation has a decision;
    * `entry_locator`: where `explain` finds the cited entries in storage
      (``None``: positions only; `StateDirectory.plan_recovery` sets one).

    Build one with `from_checkpoint`; `explain` says why an operation got its
    decision (or none).
    """

    checkpoint_state: Any = attrs.field(eq=False)
    metadata: DurableRecoveryMetadata
    wal_suffix: tuple[WalEntry, ...] = attrs.field(converter=_to_tuple)
    evidence_cache: EvidenceOutcomeCacheArtifact
    decisions: tuple[DurableRecoveryDecision, ...] = attrs.field(converter=_to_tuple)
    anomalies: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)
    in_doubt_evidence_ids: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)
    entry_locator: EntryLocator | None = attrs.field(default=None, eq=False, repr=False)
    #: What planning learnt per operation with a suffix entry (for `explain`).
    _summaries: dict[str, OperationRecovery] = attrs.field(
        factory=dict, eq=False, repr=False, alias="summaries"
    )

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint_tick: int | None,
        checkpoint_state: Any,
        wal: AgreementWalArtifact | Iterable[WalEntry],
        evidence_cache: EvidenceOutcomeCacheArtifact,
        *,
        strict: bool = True,
        in_doubt: Iterable[EffectIntent] = (),
        entry_locator: EntryLocator | None = None,
    ) -> DurableRecoveryPlan:
        """Plan recovery from the checkpoint taken at `checkpoint_tick`, or,
        with ``checkpoint_tick=None``, with no checkpoint at all.

        `in_doubt` is the cache's ``in_doubt()``: the intents of effects that
        may or may not have happened. Each decision lists, in that order, the
        ids of those whose ``operation_id`` is its operation; the plan lists
        them all. `entry_locator`, when given, becomes the plan's (`explain`
        locates cited entries with it).

        `wal` is an `AgreementWalArtifact` or any iterable of WAL entries in
        WAL order (it is iterated exactly once). Entry ticks need not be
        ordered: an entry belongs to the suffix when its tick is above
        `checkpoint_tick`. With ``None`` every entry is in the suffix (tick 0
        included), every decision's `checkpoint_level` is ``NONE`` and the
        metadata's `checkpoint_tick` is 0.

        Raises `EscalationOrderError` when the WAL's escalations regress or
        are reordered, and, when `strict` (the default), `InconsistentWalError`
        naming every anomaly. With ``strict=False`` anomalies are only listed
        in `anomalies`.

        >>> from durability.artifact import Escalation
        >>> from durability.model import AgreementLevel
        >>> wal = AgreementWalArtifact(entries=[Escalation(operation_id="op",
        ...     previous_level=AgreementLevel.NONE, new_level=AgreementLevel.SOFT_SAFE, tick=5)])
        >>> plan = DurableRecoveryPlan.from_checkpoint(
        ...     0, None, wal, EvidenceOutcomeCacheArtifact())
        >>> plan.decisions[0].action
        <DurableRecoveryAction.RESUME_FROM_EVIDENCE_BOUNDARY: 'resume_from_evidence_boundary'>
        """
        entries = wal.entries if isinstance(wal, AgreementWalArtifact) else wal
        builder = PlanBuilder(checkpoint_tick, evidence_cache)
        builder.observe(entries)
        return builder.plan(
            checkpoint_state, strict=strict, in_doubt=in_doubt, entry_locator=entry_locator
        )

    @classmethod
    def _assemble(
        cls,
        *,
        checkpoint_tick: int,
        checkpoint_state: Any,
        summaries: list[OperationRecovery],
        suffix: list[WalEntry],
        tick_range: tuple[int | None, int | None],
        evidence_cache: EvidenceOutcomeCacheArtifact,
        strict: bool,
        in_doubt: tuple[EffectIntent, ...],
        entry_locator: EntryLocator | None,
    ) -> DurableRecoveryPlan:
        decisions: list[DurableRecoveryDecision] = []
        anomalies: list[OperationRecovery] = []
        doubts: dict[str | None, list[str]] = {}
        for intent in in_doubt:
            doubts.setdefault(intent.operation_id, []).append(intent.evidence_id)
        for summary in sorted(summaries, key=lambda s: s.operation_id):
            decision = summary.decide(doubts.get(summary.operation_id, ()))
            if decision is None:
                anomalies.append(summary)
            else:
                decisions.append(decision)
        if strict and anomalies:
            raise InconsistentWalError(_anomaly_message(anomalies), _ids(anomalies))
        metadata = DurableRecoveryMetadata(
            checkpoint_tick=checkpoint_tick,
            wal_tail_start_tick=tick_range[0],
            highest_recovered_tick=tick_range[1],
            resumed_operation_ids=[d.operation_id for d in decisions if d.action in _RESUMED],
            terminal_operation_ids=[d.operation_id for d in decisions if d.action not in _RESUMED],
            cached_evidence_ids=[entry.evidence_id for entry in evidence_cache.entries],
        )
        return cls(
            checkpoint_state=checkpoint_state,
            metadata=metadata,
            wal_suffix=suffix,
            evidence_cache=evidence_cache,
            decisions=decisions,
            anomalies=_ids(anomalies),
            in_doubt_evidence_ids=[intent.evidence_id for intent in in_doubt],
            entry_locator=entry_locator,
            summaries={s.operation_id: s for s in summaries},
        )

    def decision(self, operation_id: str) -> DurableRecoveryDecision | None:
        """The decision for `operation_id`, or ``None`` (no suffix entry, or
        an anomaly)."""
        for decision in self.decisions:
            if decision.operation_id == operation_id:
                return decision
        return None

    def explain(self, operation_id: str) -> DecisionExplanation:
        """Why `operation_id` got its decision, or none (an anomaly): the
        `PlannerRule` that chose it and the WAL entries that set its
        checkpoint level, level, finalization and gate, each with its 1-based
        position in the WAL and, with an `entry_locator`, where it is stored.

        Raises `UnknownOperationError` for an operation with no entry after
        the checkpoint (the plan holds nothing on it), and `StorageError`
        when the located WAL no longer holds a cited entry where the plan
        read it.

        >>> from durability.artifact import Escalation
        >>> from durability.model import AgreementLevel
        >>> wal = AgreementWalArtifact(entries=[Escalation(operation_id="op",
        ...     previous_level=AgreementLevel.NONE, new_level=AgreementLevel.SOFT_SAFE, tick=5)])
        >>> plan = DurableRecoveryPlan.from_checkpoint(
        ...     0, None, wal, EvidenceOutcomeCacheArtifact())
        >>> why = plan.explain("op")
        >>> why.rule.value, why.reason
        ('soft-safe', 'no finalization, level soft_safe (WAL entry 1) is at least soft_safe')
        """
        summary = self._summaries.get(operation_id)
        if summary is None:
            tick = self.metadata.checkpoint_tick
            raise UnknownOperationError(
                f"no recovery decision to explain for `{operation_id}`: the plan holds no "
                f"WAL entry of it after checkpoint tick {tick} "
                f"({len(self._summaries)} operation(s) have one)",
                operation_id,
            )
        return summary.explanation(self.decision(operation_id), self.entry_locator)


class PlanBuilder:
    """A plan in the making: WAL entries observed in WAL order (`observe`),
    per operation, then assembled (`plan`). `from_checkpoint` observes every
    entry; planning from segments (``suffixplan``) also seeds operations
    from the states of segments it does not read (`summary`)."""

    def __init__(
        self, checkpoint_tick: int | None, evidence_cache: EvidenceOutcomeCacheArtifact
    ) -> None:
        self.checkpoint_tick = checkpoint_tick
        self.evidence_cache = evidence_cache
        self.summaries: dict[str, OperationRecovery] = {}
        self.suffix: list[WalEntry] = []
        self.low: int | None = None
        self.high: int | None = None

    def summary(self, operation_id: str) -> OperationRecovery:
        """The summary of `operation_id`, new when it has none yet."""
        summary = self.summaries.get(operation_id)
        if summary is None:
            summary = self.summaries[operation_id] = OperationRecovery(operation_id)
        return summary

    def observe(self, entries: Iterable[WalEntry], first_position: int = 1) -> None:
        """Account for `entries`, the first at WAL position `first_position`
        (1-based; its sequence). Raises `EscalationOrderError` as
        `from_checkpoint` does."""
        summaries, suffix, cache = self.summaries, self.suffix, self.evidence_cache
        checkpoint_tick, low, high = self.checkpoint_tick, self.low, self.high
        for position, entry in enumerate(entries, first_position):
            op = entry.operation_id
            summary = summaries.get(op)
            if summary is None:
                summary = summaries[op] = OperationRecovery(op)
            tick = entry.tick
            in_suffix = checkpoint_tick is None or tick > checkpoint_tick
            summary.observe(entry, in_suffix=in_suffix, cache=cache, position=position)
            if in_suffix:
                suffix.append(entry)
                if low is None or tick < low:
                    low = tick
                if high is None or tick > high:
                    high = tick
        self.low, self.high = low, high

    def plan(
        self,
        checkpoint_state: Any,
        *,
        strict: bool = True,
        in_doubt: Iterable[EffectIntent] = (),
        entry_locator: EntryLocator | None = None,
    ) -> DurableRecoveryPlan:
        """The plan of what was observed (see `from_checkpoint`)."""
        tick = self.checkpoint_tick
        return DurableRecoveryPlan._assemble(
            checkpoint_tick=0 if tick is None else tick,
            checkpoint_state=checkpoint_state,
            summaries=[s for s in self.summaries.values() if s.in_suffix],
            suffix=self.suffix,
            tick_range=(self.low, self.high),
            evidence_cache=self.evidence_cache,
            strict=strict,
            in_doubt=tuple(in_doubt),
            entry_locator=entry_locator,
        )


def _ids(summaries: list[OperationRecovery]) -> tuple[str, ...]:
    return tuple(s.operation_id for s in summaries)


def _anomaly_message(anomalies: list[OperationRecovery]) -> str:
    details = ", ".join(
        f"`{s.operation_id}` (gate {s.gate_level.rust_name if s.gate_level else '-'} "
        f"above proven level {s.level.rust_name})"
        for s in anomalies
    )
    return (
        f"inconsistent agreement WAL: {len(anomalies)} operation(s) crossed a visibility "
        f"gate above the level the WAL proves, so no sound recovery decision exists: {details}"
    )
