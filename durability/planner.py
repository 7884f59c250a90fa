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
  operations) and works on any iterator of entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from .artifact import (
    AgreementWalArtifact,
    DurableRecoveryMetadata,
    Escalation,
    EvidenceOutcomeCacheArtifact,
    EvidenceProduced,
    Finalization,
    VisibilityGateCrossing,
    WalEntry,
    escalation_error,
    proven_level,
)
from .decisions import DurableRecoveryAction, DurableRecoveryDecision, is_sound
from .errors import EscalationOrderError, InconsistentWalError
from .intents import EffectIntent
from .model import AgreementLevel, FinalizationOutcome, _to_tuple, max_level

__all__ = [
    "DurableRecoveryAction",
    "DurableRecoveryDecision",
    "DurableRecoveryPlan",
    "OperationRecovery",
    "is_sound",
]


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
        "checkpoint_level",
        "escalation_level",
        "finalization",
        "gate_level",
        "in_suffix",
        "operation_id",
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

    @property
    def level(self) -> AgreementLevel:
        """The highest level the whole WAL (so far) proves."""
        return max_level(self.checkpoint_level, self.suffix_level)

    def observe(
        self, entry: WalEntry, *, in_suffix: bool, cache: EvidenceOutcomeCacheArtifact
    ) -> None:
        """Account for the next `entry` of this operation.

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
        proven = proven_level(entry)
        if not in_suffix:
            self.checkpoint_level = max_level(self.checkpoint_level, proven)
            return
        self.in_suffix = True
        self.suffix_level = max_level(self.suffix_level, proven)
        if isinstance(entry, VisibilityGateCrossing):
            gate = entry.gate_level
            self.gate_level = gate if self.gate_level is None else max_level(self.gate_level, gate)
        elif isinstance(entry, EvidenceProduced):
            evidence_id = entry.evidence.evidence_id
            if evidence_id not in self._cached_seen and cache.get(evidence_id) is not None:
                self._cached_seen.add(evidence_id)
                self.cached_evidence_ids.append(evidence_id)

    @property
    def is_anomaly(self) -> bool:
        """True when a gate crossed after the checkpoint is above `level`."""
        return self.gate_level is not None and self.gate_level > self.level

    def decide(self, in_doubt: Iterable[str] = ()) -> DurableRecoveryDecision | None:
        """The sound decision for this operation (listing `in_doubt`, the ids
        of its effects in doubt), or ``None`` for an anomaly."""
        if self.is_anomaly:
            return None
        level = self.level
        if self.finalization is FinalizationOutcome.FINALIZED:
            action = DurableRecoveryAction.REUSE_FINALIZED
        elif self.finalization is not None:
            action = DurableRecoveryAction.PRESERVE_TERMINAL
        elif level.at_least(AgreementLevel.SOFT_SAFE):
            action = DurableRecoveryAction.RESUME_FROM_EVIDENCE_BOUNDARY
        else:
            action = DurableRecoveryAction.REEXECUTE_FROM_SCRATCH
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
      operation has a decision.

    Build one with `from_checkpoint`.
    """

    checkpoint_state: Any = attrs.field(eq=False)
    metadata: DurableRecoveryMetadata
    wal_suffix: tuple[WalEntry, ...] = attrs.field(converter=_to_tuple)
    evidence_cache: EvidenceOutcomeCacheArtifact
    decisions: tuple[DurableRecoveryDecision, ...] = attrs.field(converter=_to_tuple)
    anomalies: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)
    in_doubt_evidence_ids: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)

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
    ) -> DurableRecoveryPlan:
        """Plan recovery from the checkpoint taken at `checkpoint_tick`, or,
        with ``checkpoint_tick=None``, with no checkpoint at all.

        `in_doubt` is the cache's ``in_doubt()``: the intents of effects that
        may or may not have happened. Each decision lists, in that order, the
        ids of those whose ``operation_id`` is its operation; the plan lists
        them all.

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
        >>> wal = AgreementWalArtifact(entries=[Escalation(operation_id="op",
        ...     previous_level=AgreementLevel.NONE, new_level=AgreementLevel.SOFT_SAFE, tick=5)])
        >>> plan = DurableRecoveryPlan.from_checkpoint(
        ...     0, None, wal, EvidenceOutcomeCacheArtifact())
        >>> plan.decisions[0].action
        <DurableRecoveryAction.RESUME_FROM_EVIDENCE_BOUNDARY: 'resume_from_evidence_boundary'>
        """
        entries = wal.entries if isinstance(wal, AgreementWalArtifact) else wal
        summaries: dict[str, OperationRecovery] = {}
        suffix: list[WalEntry] = []
        low: int | None = None
        high: int | None = None
        for entry in entries:
            op = entry.operation_id
            summary = summaries.get(op)
            if summary is None:
                summary = summaries[op] = OperationRecovery(op)
            tick = entry.tick
            in_suffix = checkpoint_tick is None or tick > checkpoint_tick
            summary.observe(entry, in_suffix=in_suffix, cache=evidence_cache)
            if in_suffix:
                suffix.append(entry)
                if low is None or tick < low:
                    low = tick
                if high is None or tick > high:
                    high = tick
        return cls._assemble(
            checkpoint_tick=0 if checkpoint_tick is None else checkpoint_tick,
            checkpoint_state=checkpoint_state,
            summaries=[s for s in summaries.values() if s.in_suffix],
            suffix=suffix,
            tick_range=(low, high),
            evidence_cache=evidence_cache,
            strict=strict,
            in_doubt=tuple(in_doubt),
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
        )

    def decision(self, operation_id: str) -> DurableRecoveryDecision | None:
        """The decision for `operation_id`, or ``None`` (no suffix entry, or
        an anomaly)."""
        for decision in self.decisions:
            if decision.operation_id == operation_id:
                return decision
        return None


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
