"""Text and JSON renderings of recovery explanations (``durability plan
--explain``). Pure: `DecisionExplanation` values in, ``str`` or JSON-ready
data out.

The text gives, per operation, one line naming the action and the planner
rule that chose it (`PlannerRule`, by its stable name) with the rule applied
to the operation's values, then a table of the WAL entries behind those
values: what each set, its position in the WAL, its tick, and where it is
stored (file and byte offset of its record, or a SQL sequence).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .codec import to_plain
from .decisions import PlannerRule
from .explanation import CitedEntry, DecisionExplanation, EntryLocation, describe_entry
from .render import table

__all__ = [
    "RULES_HEADING",
    "explanation_json",
    "explanations_json",
    "explanations_text",
    "location_text",
    "rules_json",
]

#: The line introducing the explanations in text output.
RULES_HEADING = "why (planner rules in specs/recovery.md, first that applies chooses):"


def rules_json() -> dict[str, str]:
    """Every planner rule by its stable name, with its one-line statement."""
    return {rule.value: rule.statement for rule in PlannerRule}


def _location_json(location: EntryLocation | None) -> dict[str, Any]:
    if location is None:
        return {"sequence": None, "path": None, "offset": None, "record": None, "index": None}
    return {
        "sequence": location.sequence,
        "path": location.path,
        "offset": location.offset,
        "record": location.record,
        "index": location.index,
    }


def _cited_json(cited: CitedEntry) -> dict[str, Any]:
    return {
        "role": cited.role.value,
        "value": cited.value,
        "position": cited.position,
        "tick": cited.entry.tick,
        **_location_json(cited.location),
        "entry": to_plain(cited.entry),
    }


def explanation_json(explanation: DecisionExplanation) -> dict[str, Any]:
    """One explanation as JSON-ready data. Each cited entry has its role,
    the value it set, its 1-based ``position`` in the WAL, its tick, where it
    is stored (``sequence``, ``path``, ``offset``, ``record``, ``index``;
    ``null`` when unknown) and the ``entry`` itself as plain data (as its
    record's payload holds it)."""
    action = explanation.action
    return {
        "operation_id": explanation.operation_id,
        "action": action.value if action else None,
        "anomaly": explanation.anomaly,
        "rule": explanation.rule.value,
        "rule_statement": explanation.rule.statement,
        "reason": explanation.reason,
        "checkpoint_level": explanation.checkpoint_level.value,
        "level": explanation.level.value,
        "finalization": explanation.finalization.value if explanation.finalization else None,
        "gate_level": explanation.gate_level.value if explanation.gate_level else None,
        "entries": [_cited_json(cited) for cited in explanation.entries],
    }


def explanations_json(explanations: Sequence[DecisionExplanation]) -> dict[str, Any]:
    """What ``plan --explain --json`` adds to the plan: the rules and one
    explanation per operation."""
    return {
        "rules": rules_json(),
        "explanations": [explanation_json(e) for e in explanations],
    }


def location_text(location: EntryLocation | None, base: str | None = None) -> str | None:
    """Where an entry is stored, in a few words: ``wal.log @ 4096 (record 7,
    entry 2)``, ``wal.log @ 0 (base, entry 3)`` or ``sequence 212``; a path
    inside directory `base` is shown relative to it. ``None`` when unknown."""
    if location is None:
        return None
    if location.path is None:
        return f"sequence {location.sequence}"
    path = location.path
    if base is not None:
        relative = os.path.relpath(path, base)
        if not relative.startswith(os.pardir):
            path = relative
    record = "base" if location.record is None else f"record {location.record}"
    return f"{path} @ {location.offset} ({record}, entry {location.index})"


def _headline(explanation: DecisionExplanation) -> str:
    action = explanation.action
    what = action.value if action else "anomaly: no decision"
    return (
        f"{explanation.operation_id}  {what}  rule {explanation.rule.value}: {explanation.reason}"
    )


def explanations_text(explanations: Sequence[DecisionExplanation], base: str | None = None) -> str:
    """The explanations as text: per operation a headline (action, rule,
    reason) and a table of the entries behind it (paths relative to `base`)."""
    if not explanations:
        return "why: no operation has entries after the checkpoint"
    blocks = [RULES_HEADING]
    for explanation in explanations:
        rows = [
            (
                cited.role.value,
                cited.value,
                cited.position,
                cited.entry.tick,
                describe_entry(cited.entry),
                location_text(cited.location, base),
            )
            for cited in explanation.entries
        ]
        headers = ("sets", "value", "WAL entry", "tick", "entry", "stored at")
        body = table(headers, rows) if rows else "(no entry proves a level)"
        blocks.append("")
        blocks.append(_headline(explanation))
        blocks.append("\n".join("  " + line for line in body.splitlines()))
    return "\n".join(blocks)
