"""Text and JSON renderings of ``durability repair``: what a repair would do
(a `RepairPlan`) and what it did (a `RepairResult`). Pure."""

from __future__ import annotations

from typing import Any

from .render import table
from .repair import RepairResult
from .repair_scan import RepairPlan, RepairState

__all__ = ["repair_json", "repair_text"]

_KINDS = {"agreement_wal": "agreement WAL", "evidence_outcome_cache": "evidence outcome cache"}


def repair_json(plan: RepairPlan, result: RepairResult | None = None) -> dict[str, Any]:
    """The plan (and, after ``--apply``, the result) as JSON-ready data."""
    after = plan.after
    mode = plan.mode
    verification = result.verification if result else None
    return {
        "path": plan.path,
        "kind": plan.kind,
        "size": plan.size,
        "state": plan.state.value,
        "reason": plan.reason,
        "offset": plan.offset,
        "dropped": plan.dropped,
        "kept_records": plan.kept_records,
        "kept_entries": plan.kept_entries,
        "damaged_record": plan.damaged_record,
        "after_damage": None
        if after is None
        else {
            "records": after.records,
            "entries": after.entries,
            "first_record": after.first_record,
            "first_offset": after.first_offset,
            "last_record": after.last_record,
        },
        "modes": [
            {"mode": m.mode.value, "action": m.action.value, "text": m.text} for m in plan.modes()
        ],
        "repair_mode": mode.value if mode else None,
        "applied": bool(result and result.applied),
        "damaged_copy": result.damaged_copy if result else None,
        "verified": None if verification is None else not verification.consistency_problems,
        "verify_problems": list(verification.problems) if verification else [],
    }


def _head(plan: RepairPlan) -> str:
    what = f"{_KINDS[plan.kind]} log" if plan.kind in _KINDS else "log"
    return f"{plan.path}: {what}, {plan.size} bytes"


def _kept(plan: RepairPlan) -> str:
    return f"{plan.kept_records} records ({plan.kept_entries} entries)"


def _found(plan: RepairPlan) -> list[str]:
    if plan.state is RepairState.CLEAN:
        return [f"clean: {_kept(plan)}, nothing to repair"]
    if plan.state is RepairState.UNREPAIRABLE:
        return [f"cannot be repaired: {plan.reason}"]
    if plan.state is RepairState.TORN_TAIL:
        return [f"torn tail at byte offset {plan.offset} ({plan.dropped} bytes): {plan.reason}"]
    return [
        f"damage at byte offset {plan.offset} (record {plan.damaged_record}): {plan.reason}",
        plan.lost,
    ]


def _modes(plan: RepairPlan) -> list[str]:
    if plan.state is RepairState.CLEAN:
        return []
    rows = [(m.mode.value, m.action.value, m.text) for m in plan.modes()]
    return ["opening it for writing, per recovery mode:", table(("mode", "action", "does"), rows)]


def repair_text(plan: RepairPlan, result: RepairResult | None = None) -> str:
    """The dry run's report (`result` ``None``) or what ``--apply`` did."""
    lines = [_head(plan), *_found(plan)]
    mode = plan.mode.value if plan.mode else None
    cut = f"cut {plan.dropped} bytes at offset {plan.offset}"
    if result is None:
        lines.extend(_modes(plan))
        if mode is not None:
            aside = (
                "; the damaged file is kept beside it" if plan.state is RepairState.DAMAGE else ""
            )
            lines.append(
                f"dry run, nothing changed: --apply would {cut} as {mode} recovery does, "
                f"keeping {_kept(plan)}{aside}"
            )
        return "\n".join(lines)
    if not result.applied:
        return "\n".join(lines)
    verification = result.verification
    lines.append(f"repaired ({mode}): {cut}; kept {_kept(plan)}")
    lines.append(
        f"the repaired log verifies as `durability verify --strict` reads it: "
        f"{plan.kept_records} records, no torn tail"
    )
    if verification is not None and verification.consistency_problems:
        lines.append(
            "durability verify still reports, in the bytes kept: "
            + "; ".join(verification.consistency_problems)
        )
    lines.append(f"the damaged file is kept as {result.damaged_copy}")
    return "\n".join(lines)
