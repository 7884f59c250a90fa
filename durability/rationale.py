"""Why the recovery plan treats an operation as it does, in words: the
planner rule `DurableRecoveryPlan.explain` names (``specs/recovery.md``),
then what else the decision holds.

`rule_explainer(plan)` gives a function from an operation id to the lines
that say which rule chose its action and what else its decision holds (a
gate crossed, cached outcomes to reuse, effects in doubt), or why it has no
decision. ``durability report`` shows them beside each operation::

    explain = rule_explainer(plan)
    explain("op#026")
    # ['rule soft-safe: no finalization and the WAL proves soft_safe or above: ...', ...]

An `Explainer` is any function of that shape: ``durability report`` takes
its explanations from exactly one, this one unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .decisions import DurableRecoveryDecision
from .errors import UnknownOperationError
from .planner import DurableRecoveryPlan

__all__ = ["Explainer", "rule_explainer"]

#: Where a report's "why" comes from: given the plan, a function from an
#: operation id to the lines explaining its action; `rule_explainer` (built
#: on `DurableRecoveryPlan.explain`) is the default.
Explainer = Callable[[DurableRecoveryPlan], Callable[[str], Sequence[str]]]


def rule_explainer(plan: DurableRecoveryPlan) -> Callable[[str], list[str]]:
    """The default `Explainer`: why `plan` treats an operation as it does,
    from `DurableRecoveryPlan.explain` (the rule the planner applied, as
    ``specs/recovery.md`` states it; the lines repeat across operations, so a
    page of 10,000 holds each once), then what else the
    decision says (a gate crossed, cached outcomes reused, effects in doubt)."""
    tick = plan.metadata.checkpoint_tick

    def explain(operation_id: str) -> list[str]:
        try:
            why = plan.explain(operation_id)
        except UnknownOperationError:
            return [
                f"no decision: no WAL entry after checkpoint tick {tick}; "
                "recovery takes it as the checkpoint state holds it"
            ]
        first = f"rule {why.rule.value}: {why.rule.statement}"
        if why.decision is None:
            return [
                f"no decision (anomaly): {first}",
                "`durability plan` fails on it; repair the WAL or plan from another checkpoint",
            ]
        return [first, *_detail_lines(why.decision)]

    return explain


def _detail_lines(d: DurableRecoveryDecision) -> list[str]:
    lines = [f"level `{d.checkpoint_level.value}` at the checkpoint, `{d.level.value}` now"]
    if d.finalization is not None:
        lines.append(f"last finalization `{d.finalization.value}`")
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
