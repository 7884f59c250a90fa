"""What ``durability report`` shows: one state directory, per operation.

`gather_report` reads a state directory (read only, as ``durability plan``
does), plans recovery from a checkpoint without failing on anomalies, and
returns a `Report`: for every operation the WAL or an effect in doubt
mentions, its timeline (every WAL entry: tick, kind, the level it proves,
whether it lies after the checkpoint), the planned action with why, its
evidence held by the outcome cache, and its effects in doubt::

    with StateDirectory("state", create=False, read_only=True) as store:
        report = gather_report(store)
    report.operations[0].action        # "reuse_finalized", or None

``report_html.py`` renders it as a page (its `report_json` is the data
the page embeds). Why an action was chosen comes from
one place, the `Explainer` passed to `gather_report` (``rationale.py``):
`rule_explainer`, the planner's rules applied to the decision, unless
another is given.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import attrs

from .artifact import (
    Escalation,
    EvidenceOutcomeCacheArtifact,
    EvidenceProduced,
    Finalization,
    VisibilityGateCrossing,
    WalEntry,
    proven_level,
)
from .decisions import DurableRecoveryDecision
from .effects import EffectOutcome
from .intents import EffectIntent
from .model import AgreementLevel, max_level
from .planner import DurableRecoveryPlan
from .rationale import Explainer, rule_explainer
from .store import StateDirectory

__all__ = [
    "CachedEvidence",
    "DoubtfulEffect",
    "OperationReport",
    "Report",
    "TimelineEvent",
    "gather_report",
]

#: Longest rendering of a cached response kept in a report.
RESPONSE_CHARS = 160


@attrs.frozen(kw_only=True)
class TimelineEvent:
    """One WAL entry of an operation, as its timeline shows it.

    `kind` is ``escalation``, ``evidence``, ``finalization`` or ``gate``;
    `level` the level it proves (a gate: its gate level); `outcome` a
    finalization's outcome; `level_after` the operation's highest proven
    level once this entry is counted (WAL order); `detail` one line for a
    reader; `after_checkpoint` whether the planner reads it as suffix.
    """

    tick: int
    kind: str
    level: AgreementLevel | None
    outcome: str | None
    level_after: AgreementLevel
    detail: str
    after_checkpoint: bool


@attrs.frozen(kw_only=True)
class CachedEvidence:
    """An evidence id of the operation whose outcome the cache holds:
    `effect` (``Interface.operation``), `status` (``success``, ``failure``,
    ``blocked``), `outcome` (a short rendering), and `used_by_plan` (in the
    decision's `cached_evidence_ids`)."""

    evidence_id: str
    effect: str
    status: str
    outcome: str
    used_by_plan: bool


@attrs.frozen(kw_only=True)
class DoubtfulEffect:
    """An effect in doubt of the operation: its intent has no outcome."""

    evidence_id: str
    effect: str
    attempt: int
    created_unix_ms: int


@attrs.frozen(kw_only=True)
class OperationReport:
    """One operation: `action` (the decision's, ``None`` without one),
    `anomaly` (the planner refused a decision), its `level`,
    `checkpoint_level`, last `finalization` and highest suffix `gate_level`
    (the decision's when there is one, else what the WAL proves), `why` (the
    explanation lines), `events` (the timeline, in tick order), `cached`
    and `in_doubt`."""

    operation_id: str
    action: str | None
    anomaly: bool
    level: AgreementLevel
    checkpoint_level: AgreementLevel
    finalization: str | None
    gate_level: AgreementLevel | None
    why: tuple[str, ...]
    events: tuple[TimelineEvent, ...]
    cached: tuple[CachedEvidence, ...]
    in_doubt: tuple[DoubtfulEffect, ...]


@attrs.frozen(kw_only=True)
class Report:
    """A state directory's report: where it is, the checkpoint planned from
    (`checkpoint_tick` ``None``: no checkpoint), the checkpoints present,
    counts, torn tails a writer would cut (`repairs`, file name to a line or
    ``None``), the plan's anomalies, cache entries tied to no operation of
    the WAL (`unattached_cache_entries`) and the operations, sorted by id."""

    directory: str
    checkpoint_tick: int | None
    checkpoint_ticks: tuple[int, ...]
    wal_entries: int
    cache_entries: int
    repairs: dict[str, str | None]
    anomalies: tuple[str, ...]
    unattached_cache_entries: int
    operations: tuple[OperationReport, ...]

    @property
    def action_counts(self) -> dict[str, int]:
        """How many operations each action has (``anomaly`` or ``no_decision``
        for those without one)."""
        counts = Counter(
            op.action or ("anomaly" if op.anomaly else "no_decision") for op in self.operations
        )
        return dict(sorted(counts.items()))

    @property
    def in_doubt_count(self) -> int:
        """Effects in doubt over all operations."""
        return sum(len(op.in_doubt) for op in self.operations)


# -- gathering ----------------------------------------------------------------------


def _detail(entry: WalEntry) -> str:
    """What an entry says beyond its tick, kind and level (kept short: a
    report of 10,000 operations holds every one of them)."""
    if isinstance(entry, Escalation):
        via = f" by {entry.evidence_id}" if entry.evidence_id else ""
        return f"{entry.previous_level.value} -> {entry.new_level.value}{via}"
    if isinstance(entry, EvidenceProduced):
        e = entry.evidence
        auth = "authoritative" if e.authoritative else "not authoritative"
        return f"{e.evidence_id}: {e.kind.value}, {auth}, {e.reference}"
    if isinstance(entry, Finalization):
        proof = (
            f", proof {entry.materialization_proof_id}" if entry.materialization_proof_id else ""
        )
        handle = f", handle {entry.canonical_handle_id}" if entry.canonical_handle_id else ""
        return f"{entry.outcome.value}{proof}{handle}"
    return f"by {entry.downstream_coroutine_id}"


def _kind(entry: WalEntry) -> str:
    if isinstance(entry, Escalation):
        return "escalation"
    if isinstance(entry, EvidenceProduced):
        return "evidence"
    return "finalization" if isinstance(entry, Finalization) else "gate"


def _event(entry: WalEntry, level_after: AgreementLevel, after: bool) -> TimelineEvent:
    level: AgreementLevel | None = proven_level(entry)
    outcome = entry.outcome.value if isinstance(entry, Finalization) else None
    if isinstance(entry, VisibilityGateCrossing):
        level = entry.gate_level
    elif isinstance(entry, Finalization) and outcome != "finalized":
        level = None
    return TimelineEvent(
        tick=entry.tick,
        kind=_kind(entry),
        level=level,
        outcome=outcome,
        level_after=level_after,
        detail=_detail(entry),
        after_checkpoint=after,
    )


def _outcome_text(outcome: EffectOutcome) -> str:
    if outcome.failure is not None:
        return f"{outcome.failure.kind.value}: {outcome.failure.message}"[:RESPONSE_CHARS]
    if outcome.is_blocked:
        return "blocked (counts as not cached)"
    text = json.dumps(
        outcome.response, default=lambda v: v.hex() if isinstance(v, bytes) else str(v)
    )
    return text if len(text) <= RESPONSE_CHARS else text[: RESPONSE_CHARS - 3] + "..."


class _Operation:
    """What the report learns about one operation while reading the WAL."""

    def __init__(self) -> None:
        self.events: list[TimelineEvent] = []
        self.level = AgreementLevel.NONE
        self.checkpoint_level = AgreementLevel.NONE
        self.finalization: str | None = None
        self.gate: AgreementLevel | None = None
        self.evidence_ids: dict[str, None] = {}  # ordered set
        self.intents: list[EffectIntent] = []

    def add(self, entry: WalEntry, after: bool) -> None:
        proven = proven_level(entry)
        self.level = max_level(self.level, proven)
        if not after:
            self.checkpoint_level = max_level(self.checkpoint_level, proven)
        if isinstance(entry, Finalization):
            self.finalization = entry.outcome.value
        elif isinstance(entry, EvidenceProduced):
            self.evidence_ids[entry.evidence.evidence_id] = None
        elif isinstance(entry, VisibilityGateCrossing) and after:
            gate = entry.gate_level
            self.gate = gate if self.gate is None else max_level(self.gate, gate)
        self.events.append(_event(entry, self.level, after))


def _cached(
    op: _Operation, cache: EvidenceOutcomeCacheArtifact, used: Iterable[str]
) -> tuple[CachedEvidence, ...]:
    in_plan = set(used)
    found = []
    for evidence_id in op.evidence_ids:
        entry = cache.get(evidence_id)
        if entry is not None:
            found.append(
                CachedEvidence(
                    evidence_id=evidence_id,
                    effect=f"{entry.interface_name}.{entry.operation_name}",
                    status=entry.outcome.status.value,
                    outcome=_outcome_text(entry.outcome),
                    used_by_plan=evidence_id in in_plan,
                )
            )
    return tuple(found)


def _operation(
    operation_id: str,
    op: _Operation,
    plan: DurableRecoveryPlan,
    decision: DurableRecoveryDecision | None,
    explain: Callable[[str], Sequence[str]],
) -> OperationReport:
    doubt = tuple(
        DoubtfulEffect(
            evidence_id=i.evidence_id,
            effect=f"{i.interface_name}.{i.operation_name}",
            attempt=i.attempt,
            created_unix_ms=i.created_unix_ms,
        )
        for i in op.intents
    )
    return OperationReport(
        operation_id=operation_id,
        action=decision.action.value if decision else None,
        anomaly=operation_id in plan.anomalies,
        level=decision.level if decision else op.level,
        checkpoint_level=decision.checkpoint_level if decision else op.checkpoint_level,
        finalization=op.finalization,
        gate_level=decision.gate_level if decision else op.gate,
        why=tuple(explain(operation_id)),
        events=tuple(sorted(op.events, key=lambda e: e.tick)),  # stable: WAL order per tick
        cached=_cached(op, plan.evidence_cache, decision.cached_evidence_ids if decision else ()),
        in_doubt=doubt,
    )


def gather_report(
    store: StateDirectory,
    checkpoint_tick: int | None = None,
    *,
    explain: Explainer = rule_explainer,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """The report of the open state directory `store`, planned (non-strict:
    anomalies are reported, not raised) from the checkpoint at
    `checkpoint_tick` (default: the latest; none: no checkpoint).

    Reads only. `explain` says why each operation gets its action (the one
    place an explanation comes from); `progress` hears a line per phase.
    Raises `EscalationOrderError` for a WAL whose escalations regress, and
    the store's errors (`StorageError` for a missing checkpoint, `DecodeError`
    for damage).
    """
    say = progress or (lambda line: None)
    checkpoint = (
        store.latest_checkpoint()
        if checkpoint_tick is None
        else store.load_checkpoint(checkpoint_tick)
    )
    tick = checkpoint.tick if checkpoint else None
    wal = store.wal.load()
    cache = store.cache.load()
    in_doubt = store.cache.in_doubt()
    say(f"read {len(wal.entries)} WAL entries, {len(cache.entries)} cache entries; planning")
    plan = DurableRecoveryPlan.from_checkpoint(
        tick, None, wal, cache, strict=False, in_doubt=in_doubt
    )
    operations: dict[str, _Operation] = {}
    for entry in wal.entries:
        op = operations.get(entry.operation_id)
        if op is None:
            op = operations[entry.operation_id] = _Operation()
        op.add(entry, tick is None or entry.tick > tick)
    for intent in in_doubt:
        key = intent.operation_id if intent.operation_id is not None else ""
        operations.setdefault(key, _Operation()).intents.append(intent)
    say(f"explaining {len(operations)} operations")
    decisions = {d.operation_id: d for d in plan.decisions}
    why = explain(plan)
    reports = tuple(
        _operation(op_id, operations[op_id], plan, decisions.get(op_id), why)
        for op_id in sorted(operations)
    )
    attached = {e for op in operations.values() for e in op.evidence_ids}
    return Report(
        directory=str(store.path),
        checkpoint_tick=tick,
        checkpoint_ticks=tuple(store.checkpoint_ticks()),
        wal_entries=len(wal.entries),
        cache_entries=len(cache.entries),
        repairs={name: (tail.reason if tail else None) for name, tail in store.repairs.items()},
        anomalies=plan.anomalies,
        unattached_cache_entries=sum(1 for e in cache.entries if e.evidence_id not in attached),
        operations=reports,
    )
