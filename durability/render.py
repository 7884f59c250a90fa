"""Text and JSON renderings of what the toolkit reports (used by the CLI).

Every function here is pure: values in, ``str`` (what ``durability`` prints
by default) or JSON-ready data (what it prints with ``--json``) out; nothing
is printed. A log file's `LogReport` and a SQL store's `StoreReport` render
alike, except that a store has entries and sequences where a file has bytes
and records (the demo and ``migrate`` render in ``render_actions.py``).
Data flows one way: this module builds on the store, the planner and the
backends' reports, and never imports the command line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from .artifact import (
    AgreementWalArtifact,
    DurableRecoveryMetadata,
    EvidenceOutcomeCacheArtifact,
)
from .backends.file import LogReport, TornTail
from .planner import DurableRecoveryDecision, DurableRecoveryPlan
from .reading import StoreReport
from .render_segments import SEGMENT_HEADERS, segment_rows, segments_json
from .store import Checkpoint
from .verify import VerifyReport

__all__ = [
    "UNVERIFIED",
    "checkpoint_json",
    "checkpoint_text",
    "decision_json",
    "export_json",
    "export_tail_line",
    "export_text",
    "inspect_json",
    "inspect_text",
    "metadata_json",
    "plan_json",
    "plan_text",
    "repair_lines",
    "repairs_json",
    "report_json",
    "store_tail_line",
    "table",
    "tail_json",
    "tail_line",
    "verify_json",
    "verify_text",
]

#: How a log base without the toolkit's checksum record is described.
UNVERIFIED = "unverified: written by another tool"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces, a dashed rule under the
    headers; ``None`` cells print as ``-``."""
    cells = [
        [str(h) for h in headers],
        *[["-" if c is None else str(c) for c in row] for row in rows],
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


# -- torn tails ---------------------------------------------------------------


def tail_json(tail: TornTail | None) -> dict[str, Any] | None:
    """A torn tail as ``{"offset", "dropped", "reason", "copy_path"}`` (the
    shape ``demo --json`` uses), or ``None`` for a clean log."""
    if tail is None:
        return None
    return {
        "offset": tail.offset,
        "dropped": tail.dropped,
        "reason": tail.reason,
        "copy_path": tail.copy_path,
    }


def tail_line(tail: TornTail | None) -> str:
    """One line on a log's torn tail: ``no torn tail`` or where it starts,
    how many bytes opening the log for writing cuts, and why."""
    if tail is None:
        return "no torn tail"
    return (
        f"torn tail at offset {tail.offset}: {tail.dropped} bytes would be cut on open "
        f"({tail.reason})"
    )


def repairs_json(repairs: Mapping[str, TornTail | None]) -> dict[str, Any]:
    """`StateDirectory.repairs` as JSON-ready data: file name to `tail_json`."""
    return {name: tail_json(tail) for name, tail in repairs.items()}


def repair_lines(repairs: Mapping[str, TornTail | None]) -> list[str]:
    """One line per log of a state directory that has a torn tail (none for
    clean logs), each naming the file."""
    return [f"{name}: {tail_line(tail)}" for name, tail in repairs.items() if tail is not None]


# -- plans --------------------------------------------------------------------


def decision_json(decision: DurableRecoveryDecision) -> dict[str, Any]:
    """A decision as JSON-ready data (enum values as their snake_case text)."""
    return {
        "operation_id": decision.operation_id,
        "action": decision.action.value,
        "level": decision.level.value,
        "checkpoint_level": decision.checkpoint_level.value,
        "finalization": decision.finalization.value if decision.finalization else None,
        "gate_crossed": decision.gate_crossed,
        "gate_level": decision.gate_level.value if decision.gate_level else None,
        "cached_evidence_ids": list(decision.cached_evidence_ids),
        "in_doubt_evidence_ids": list(decision.in_doubt_evidence_ids),
    }


def metadata_json(meta: DurableRecoveryMetadata) -> dict[str, Any]:
    """Recovery metadata as JSON-ready data (field names as in the artifact)."""
    return {
        "checkpoint_tick": meta.checkpoint_tick,
        "wal_tail_start_tick": meta.wal_tail_start_tick,
        "highest_recovered_tick": meta.highest_recovered_tick,
        "resumed_operation_ids": list(meta.resumed_operation_ids),
        "terminal_operation_ids": list(meta.terminal_operation_ids),
        "cached_evidence_ids": list(meta.cached_evidence_ids),
    }


def plan_json(plan: DurableRecoveryPlan) -> dict[str, Any]:
    """A plan (without its checkpoint state) as JSON-ready data."""
    return {
        "metadata": metadata_json(plan.metadata),
        "wal_suffix_entries": len(plan.wal_suffix),
        "decisions": [decision_json(d) for d in plan.decisions],
        "anomalies": list(plan.anomalies),
        "in_doubt_evidence_ids": list(plan.in_doubt_evidence_ids),
    }


def _tick_range(meta: DurableRecoveryMetadata) -> str | None:
    first, last = meta.wal_tail_start_tick, meta.highest_recovered_tick
    return None if first is None else f"ticks {first}..{last}"


def plan_text(plan: DurableRecoveryPlan) -> str:
    """The per-operation recovery table and a summary."""
    meta = plan.metadata
    rows = [
        (
            d.operation_id,
            d.action.value,
            d.level.value,
            d.checkpoint_level.value,
            d.finalization.value if d.finalization else None,
            (d.gate_level.value if d.gate_level else "yes") if d.gate_crossed else "no",
            ", ".join(d.cached_evidence_ids) or None,
        )
        for d in plan.decisions
    ]
    headers = ("operation", "action", "level", "at checkpoint", "finalization", "gate")
    counts = Counter(d.action.value for d in plan.decisions)
    ticks = _tick_range(meta) or "empty"
    summary = (
        ", ".join(f"{n} {action}" for action, n in sorted(counts.items())) or "nothing to recover"
    )
    lines = [
        f"checkpoint tick {meta.checkpoint_tick}; "
        f"WAL suffix: {len(plan.wal_suffix)} entries ({ticks})",
        table((*headers, "cached evidence"), rows)
        if rows
        else "(no operation has entries after the checkpoint)",
        f"decisions: {summary}",
        f"anomalies: {', '.join(plan.anomalies) or 'none'}",
        f"effects in doubt: {', '.join(plan.in_doubt_evidence_ids) or 'none'}"
        + (" (settle them with `durability resolve`)" if plan.in_doubt_evidence_ids else ""),
    ]
    return "\n".join(lines)


# -- logs ---------------------------------------------------------------------


def report_json(report: LogReport | StoreReport) -> dict[str, Any]:
    """What `inspect_log` found, as JSON-ready data (``kind`` is ``None`` for
    an empty log); for a SQL store, its backend, database, name, entries and
    sequences instead of bytes and records."""
    if isinstance(report, StoreReport):
        return {
            "path": report.path,
            "backend": report.backend,
            "database": report.database,
            "name": report.name,
            "kind": report.kind,
            "entries": report.entries,
            "last_sequence": report.last_sequence,
            "pruned": report.pruned if report.last_sequence is not None else None,
            "torn_tail": None,
        }
    return {
        "path": report.path,
        "kind": report.kind,
        "base_verified": report.base_verified,
        "base_bytes": report.base_bytes,
        "records": len(report.records),
        "entries": report.entries,
        "size": report.size,
        "torn_tail": tail_json(report.torn_tail),
    }


def _store_counts(report: StoreReport) -> str:
    """``N entries, sequences F..L (P pruned)`` (a WAL) or ``N bindings``."""
    if report.last_sequence is None:
        return f"{report.entries} binding{'s' * (report.entries != 1)}"
    if not report.sequences:
        return f"no entries, last sequence {report.last_sequence}"
    pruned = f" ({report.pruned} pruned)" if report.pruned else ""
    span = f"sequences {report.sequences[0]}..{report.last_sequence}"
    return f"{report.entries} entries, {span}{pruned}"


def _store_where(report: StoreReport) -> str:
    word = "WAL" if report.kind == "agreement_wal" else "cache"
    return f"{word} `{report.name}` in {report.database} ({report.backend})"


def store_tail_line() -> str:
    """What a SQL store says where a log file names its torn tail."""
    return "no torn tail (a SQL store commits whole transactions)"


def _log_head(report: LogReport | StoreReport) -> str:
    """The first line of ``inspect``: kind, size, base, records, entries (a
    SQL store: where it is, entries and sequences).

    A log without a base (a zero-length file, say) is empty: neither
    checksummed nor unverified.
    """
    if isinstance(report, StoreReport):
        return f"{report.path}: {_store_where(report)}, {_store_counts(report)}"
    if report.kind is None:
        return f"{report.path}: empty log, {report.size} bytes, no entries"
    kind = report.kind.replace("_", " ")
    return (
        f"{report.path}: {kind} log, {report.size} bytes; base {report.base_bytes} "
        f"bytes ({'checksummed' if report.base_verified else UNVERIFIED}), "
        f"{len(report.records)} records, {report.entries} entries"
    )


def _operation_rows(
    report: LogReport | StoreReport,
) -> list[tuple[str, int, str, int | None, int | None]]:
    """One row per operation of a WAL, from the summaries of its index."""
    return [
        (op.operation_id, op.entries, op.proven_level.value, op.first_tick, op.last_tick)
        for op in report.operations
    ]


def _binding_rows(artifact: EvidenceOutcomeCacheArtifact) -> list[tuple[str, str, str]]:
    return [
        (
            binding.evidence_id,
            f"{binding.interface_name}.{binding.operation_name}",
            binding.outcome.status.value,
        )
        for binding in artifact.entries
    ]


def inspect_json(report: LogReport | StoreReport) -> dict[str, Any]:
    """``inspect --json``: `report_json` plus ``operations`` (a WAL: entries,
    proven level and tick range per operation) or ``bindings`` (a cache)."""
    document = report_json(report)
    artifact = report.artifact
    if isinstance(report, LogReport) and (report.segments or report.pruned):
        document["segments"] = segments_json(report)
    if isinstance(artifact, AgreementWalArtifact):
        op_keys = ("operation_id", "entries", "level", "first_tick", "last_tick")
        document["operations"] = [
            dict(zip(op_keys, row, strict=True)) for row in _operation_rows(report)
        ]
    elif isinstance(artifact, EvidenceOutcomeCacheArtifact):
        binding_keys = ("evidence_id", "effect", "status")
        document["bindings"] = [
            dict(zip(binding_keys, row, strict=True)) for row in _binding_rows(artifact)
        ]
    return document


def inspect_text(report: LogReport | StoreReport) -> str:
    """``inspect``: `log_head`, `tail_line`, then a table per operation (a
    WAL) or per binding (a cache)."""
    artifact = report.artifact
    tail = store_tail_line() if isinstance(report, StoreReport) else tail_line(report.torn_tail)
    lines = [_log_head(report), tail]
    if isinstance(report, LogReport) and (report.segments or report.pruned):
        lines.append(table(SEGMENT_HEADERS, segment_rows(report)))
    if isinstance(artifact, AgreementWalArtifact):
        headers = ("operation", "entries", "level", "first tick", "last tick")
        lines.append(table(headers, _operation_rows(report)))
    elif isinstance(artifact, EvidenceOutcomeCacheArtifact):
        lines.append(table(("evidence id", "effect", "status"), _binding_rows(artifact)))
    return "\n".join(lines)


def verify_json(result: VerifyReport) -> dict[str, Any]:
    """``verify --json``: `report_json` plus ``ok`` and ``problems``."""
    return {**report_json(result.report), "ok": result.ok, "problems": list(result.problems)}


def verify_text(result: VerifyReport) -> str:
    """``verify``: checksums, the torn tail, the consistency verdict (a WAL)
    and one ``problem:`` line per problem."""
    report = result.report
    if isinstance(report, StoreReport):
        head = f"{report.path}: every row decoded, {_store_counts(report)}"
    elif report.kind is None:
        head = f"{report.path}: empty log, {report.size} bytes, no entries"
    else:
        head = (
            f"{report.path}: checksums ok, {len(report.records)} records, "
            f"{report.entries} entries" + ("" if report.base_verified else f" (base {UNVERIFIED})")
        )
    tail = store_tail_line() if isinstance(report, StoreReport) else tail_line(report.torn_tail)
    lines = [head, tail]
    if result.consistency_checked:
        verdict = "ok" if not result.consistency_problems else "FAILED"
        lines.append(f"escalation order and planner consistency: {verdict}")
    lines += [f"problem: {problem}" for problem in result.problems]
    return "\n".join(lines)


def export_tail_line(path: str, tail: TornTail) -> str:
    """The warning ``export`` prints when the log's torn tail is left out."""
    return (
        f"{path}: torn tail at offset {tail.offset} ({tail.dropped} bytes, "
        f"{tail.reason}) left out of the export"
    )


def export_json(report: LogReport | StoreReport, output: str, size: int) -> dict[str, Any]:
    """``export --json``: what was written where (``"-"`` for stdout), and
    ``torn_tail_left_out`` (`tail_json`, ``None`` when there was none)."""
    return {
        "log": report.path,
        "output": output,
        "kind": type(report.artifact).__name__,
        "entries": report.entries,
        "bytes": size,
        "torn_tail_left_out": tail_json(report.torn_tail),
        "in_doubt_intents_left_out": getattr(report, "in_doubt_intents", 0),
    }


def export_text(report: LogReport | StoreReport, output: str, size: int) -> str:
    """``export``: one line saying what was written where, and how many
    in-doubt effect intents a v1 artifact cannot hold."""
    doubt = getattr(report, "in_doubt_intents", 0)
    left = f"; {doubt} in-doubt effect intents left out (v1 has no intents)" if doubt else ""
    return f"wrote {output}: one v1 artifact, {report.entries} entries, {size} bytes{left}"


# -- checkpoints ----------------------------------------------------------------


def checkpoint_json(checkpoint: Checkpoint, size: int) -> dict[str, Any]:
    """A checkpoint file (`size` bytes on disk) as JSON-ready data; its state
    is summarised by length, not printed."""
    return {
        "path": str(checkpoint.path),
        "kind": "checkpoint",
        "size": size,
        "tick": checkpoint.tick,
        "state_bytes": len(checkpoint.state),
        "recovery_metadata": metadata_json(checkpoint.metadata),
    }


def checkpoint_text(checkpoint: Checkpoint, size: int) -> str:
    """A checkpoint file: tick, size of the caller's state, and the recovery
    metadata stored beside it."""
    meta = checkpoint.metadata
    ticks = _tick_range(meta) or "none"
    lines = [
        f"{checkpoint.path}: checkpoint at tick {checkpoint.tick}, {size} bytes; "
        f"state {len(checkpoint.state)} bytes",
        f"recovery metadata: checkpoint tick {meta.checkpoint_tick}; WAL after it: {ticks}",
    ]
    for name, ids in (
        ("resumed operations", meta.resumed_operation_ids),
        ("terminal operations", meta.terminal_operation_ids),
        ("cached evidence", meta.cached_evidence_ids),
    ):
        lines.append(f"  {name}: {', '.join(ids) or 'none'}")
    return "\n".join(lines)
