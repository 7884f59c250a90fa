"""Planning from a checkpoint over a WAL in parts (``specs/segments.md``):
what `StateDirectory.plan_recovery` does for a segmented file WAL, so that
only the segments holding entries after the checkpoint are read.

A part is either entries read back, in WAL order, or a segment that was not
read (every entry in it has a tick at or below the checkpoint's), standing
for its entries by the per-operation states of its index: the level of the
last escalation, the highest level proven, the outcome of the last
finalization. That is all `DurableRecoveryPlan.from_checkpoint` takes from
entries at or before the checkpoint, so the plan is the same as from every
entry. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from .artifact import EvidenceOutcomeCacheArtifact, WalEntry
from .explanation import EntryLocator
from .intents import EffectIntent
from .model import AgreementLevel, FinalizationOutcome, max_level
from .planner import DurableRecoveryPlan, PlanBuilder

__all__ = ["PrefixState", "WalPartLike", "plan_from_parts"]


class PrefixState(Protocol):
    """What a part not read says about one operation."""

    @property
    def escalation(self) -> AgreementLevel | None: ...
    @property
    def proven(self) -> AgreementLevel: ...
    @property
    def finalization(self) -> FinalizationOutcome | None: ...


class WalPartLike(Protocol):
    """A part of a WAL: its `entries` (read back), or, when they were not
    read, the `states` of its operations."""

    @property
    def entries(self) -> tuple[WalEntry, ...]: ...
    @property
    def first_sequence(self) -> int:
        """The WAL sequence (1-based position) of the first of `entries`."""
        ...

    def states(self, only: Iterable[str]) -> Mapping[str, PrefixState]:
        """The states of the operations in `only` with an entry in this part."""
        ...


def plan_from_parts(
    checkpoint_tick: int | None,
    checkpoint_state: Any,
    parts: Iterable[WalPartLike],
    evidence_cache: EvidenceOutcomeCacheArtifact,
    *,
    strict: bool = True,
    in_doubt: Iterable[EffectIntent] = (),
    entry_locator: EntryLocator | None = None,
) -> DurableRecoveryPlan:
    """`DurableRecoveryPlan.from_checkpoint` over a WAL given as `parts`, in
    WAL order (see the module docs); the same errors. Only operations with an
    entry after the checkpoint matter, so a part not read is asked for
    theirs alone. Entries are cited by their WAL sequence (`explain`); an
    entry in a part not read (its operation's state at the checkpoint taken
    from the segment's index) is not cited."""
    read = list(parts)
    wanted = {
        entry.operation_id
        for part in read
        for entry in part.entries
        if checkpoint_tick is None or entry.tick > checkpoint_tick
    }
    builder = PlanBuilder(checkpoint_tick, evidence_cache)
    for part in read:
        if part.entries:
            builder.observe(part.entries, part.first_sequence)
            continue
        for op, state in part.states(wanted).items():
            summary = builder.summary(op)
            if state.escalation is not None:
                summary.escalation_level = state.escalation
            if state.finalization is not None:
                summary.finalization = state.finalization
            summary.checkpoint_level = max_level(summary.checkpoint_level, state.proven)
    return builder.plan(
        checkpoint_state, strict=strict, in_doubt=in_doubt, entry_locator=entry_locator
    )
