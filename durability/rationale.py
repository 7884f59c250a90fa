"""Why the recovery plan treats an operation as it does, in words: the
planner's rules (API.md §8, ``specs/recovery.md``) applied to one decision.

`rule_explainer(plan)` gives a function from an operation id to the lines
that say which rule chose its action and what else its decision holds (a
gate crossed, cached outcomes to reuse, effects in doubt), or why it has no
decision. ``durability report`` shows them beside each operation::

    explain = rule_explainer(plan)
    explain("op#026")
    # ['no finalization; the WAL proves `soft_safe` (at least soft_safe): resume ...', ...]

An `Explainer` is any function of that shape: ``durability report`` takes
its explanations from exactly one, this one unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .decisions import DurableRecoveryAction, DurableRecoveryDecision
from .planner import DurableRecoveryPlan

__all__ = ["Explainer", "rule_explainer"]

#: Where a report's "why" comes from: given the plan, a function from an
#: operation id to the lines explaining its action. `rule_explainer` is the
#: default; ``lambda plan: plan.explain`` has the same shape.
Explainer = Callable[[DurableRecoveryPlan], Callable[[str], Sequence[str]]]


def rule_explainer(plan: DurableRecoveryPlan) -> Callable[[str], list[str]]:
    """The default `Explainer`: why `plan` treats an operation as it does,
    in the planner's own rules (API.md §8): the rule that chose the action,
    then what else the decision says (a gate crossed, cached outcomes
    reused, effects in doubt)."""
    decisions = {d.operation_id: d for d in plan.decisions}
    anomalies = set(plan.anomalies)
    tick = plan.metadata.checkpoint_tick

    def explain(operation_id: str) -> list[str]:
        decision = decisions.get(operation_id)
        if decision is not None:
            return _rule_lines(decision) + _detail_lines(decision)
        if operation_id in anomalies:
            return [
                "no decision (anomaly): a visibility gate crossed after the checkpoint "
                "is above the level the whole WAL proves, so no sound action exists",
                "`durability plan` fails on it; repair the WAL or plan from another checkpoint",
            ]
        return [
            f"no decision: no WAL entry after checkpoint tick {tick}; "
            "recovery takes it as the checkpoint state holds it"
        ]

    return explain


def _rule_lines(d: DurableRecoveryDecision) -> list[str]:
    fin = d.finalization.value if d.finalization else None
    if d.action is DurableRecoveryAction.REUSE_FINALIZED:
        return [f"last finalization is `{fin}`: reuse its result, run nothing"]
    if d.action is DurableRecoveryAction.PRESERVE_TERMINAL:
        return [f"last finalization is `{fin}` (terminal): keep that outcome, run nothing"]
    if d.action is DurableRecoveryAction.RESUME_FROM_EVIDENCE_BOUNDARY:
        return [
            f"no finalization; the WAL proves `{d.level.value}` (at least soft_safe): "
            "resume from the last durable evidence"
        ]
    return [
        f"no finalization; the WAL proves only `{d.level.value}` (below soft_safe): "
        "run it again from the checkpoint state"
    ]


def _detail_lines(d: DurableRecoveryDecision) -> list[str]:
    lines = [f"level `{d.checkpoint_level.value}` at the checkpoint, `{d.level.value}` now"]
    if d.gate_crossed and d.gate_level is not None:
        lines.append(
            f"a visibility gate at `{d.gate_level.value}` crossed after the checkpoint "
            f"(at or below `{d.level.value}`: sound)"
        )
    if d.cached_evidence_ids:
        n = len(d.cached_evidence_ids)
        lines.append(f"{n} cached outcome{'s' * (n != 1)} to reuse instead of rerunning")
    if d.in_doubt_evidence_ids:
        n = len(d.in_doubt_evidence_ids)
        lines.append(
            f"{n} effect{'s' * (n != 1)} in doubt: may or may not have happened; "
            "settle with `durability resolve` before resuming"
        )
    return lines
