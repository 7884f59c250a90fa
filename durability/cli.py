"""The ``durability`` command line: demo, inspect, verify, plan, export.

Human output is tables on stdout; ``--json`` prints one JSON document on
stdout instead. Progress goes to stderr. Exit codes: 0 ok, 1 verification
failed or the input is damaged, 2 usage error or unusable input. Every error is
one line on stderr (set ``DURABILITY_DEBUG=1`` for a traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .artifact import AgreementWalArtifact, EvidenceOutcomeCacheArtifact, proven_level
from .backends.file import TornTailWarning, export_log, inspect_log
from .errors import (
    ArtifactTooLargeError,
    DecodeError,
    DurabilityError,
    EscalationOrderError,
    InconsistentWalError,
)
from .model import AgreementLevel, max_level
from .planner import DurableRecoveryDecision, DurableRecoveryPlan
from .store import StateDirectory

__all__ = ["main"]

OK, FAILED, USAGE = 0, 1, 2
UNVERIFIED = "unverified: written by another tool"


class CommandError(Exception):
    """A one-line error with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{message} (see `{self.prog} --help`)", USAGE)


# -- output helpers -----------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces."""
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


def _emit(args: argparse.Namespace, document: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps(document, indent=2, sort_keys=False))
    else:
        print(text)


def _progress(args: argparse.Namespace) -> Callable[[str], None]:
    def say(line: str) -> None:
        print(f"durability: {line}", file=sys.stderr, flush=True)

    return say if not args.quiet else (lambda line: None)


def decision_json(decision: DurableRecoveryDecision) -> dict[str, Any]:
    """A decision as JSON-ready data."""
    return {
        "operation_id": decision.operation_id,
        "action": decision.action.value,
        "level": decision.level.value,
        "checkpoint_level": decision.checkpoint_level.value,
        "finalization": decision.finalization.value if decision.finalization else None,
        "gate_crossed": decision.gate_crossed,
        "gate_level": decision.gate_level.value if decision.gate_level else None,
        "cached_evidence_ids": list(decision.cached_evidence_ids),
    }


def plan_json(plan: DurableRecoveryPlan) -> dict[str, Any]:
    """A plan (without its checkpoint state) as JSON-ready data."""
    meta = plan.metadata
    return {
        "metadata": {
            "checkpoint_tick": meta.checkpoint_tick,
            "wal_tail_start_tick": meta.wal_tail_start_tick,
            "highest_recovered_tick": meta.highest_recovered_tick,
            "resumed_operation_ids": list(meta.resumed_operation_ids),
            "terminal_operation_ids": list(meta.terminal_operation_ids),
            "cached_evidence_ids": list(meta.cached_evidence_ids),
        },
        "wal_suffix_entries": len(plan.wal_suffix),
        "decisions": [decision_json(d) for d in plan.decisions],
        "anomalies": list(plan.anomalies),
    }


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
    headers = (
        "operation",
        "action",
        "level",
        "at checkpoint",
        "finalization",
        "gate",
        "cached evidence",
    )
    counts: dict[str, int] = {}
    for d in plan.decisions:
        counts[d.action.value] = counts.get(d.action.value, 0) + 1
    ticks = (
        f"ticks {meta.wal_tail_start_tick}..{meta.highest_recovered_tick}"
        if meta.wal_tail_start_tick is not None
        else "empty"
    )
    summary = (
        ", ".join(f"{n} {action}" for action, n in sorted(counts.items())) or "nothing to recover"
    )
    lines = [
        f"checkpoint tick {meta.checkpoint_tick}; "
        f"WAL suffix: {len(plan.wal_suffix)} entries ({ticks})",
        table(headers, rows) if rows else "(no operation has entries after the checkpoint)",
        f"decisions: {summary}",
        f"anomalies: {', '.join(plan.anomalies) or 'none'}",
    ]
    return "\n".join(lines)


# -- commands ----------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo  # the demo spawns processes; import it only here

    if args.operations < 1:
        raise CommandError("--operations must be at least 1", USAGE)
    directory = args.dir or tempfile.mkdtemp(prefix="durability-demo-")
    if os.path.exists(directory) and os.listdir(directory):
        raise CommandError(f"{directory} is not empty; give the demo a new directory", USAGE)
    say = _progress(args)
    say(f"state directory {directory}; worker drives {args.operations} operations")
    result = run_demo(directory, operations=args.operations, seed=args.seed, progress=say)
    document = {
        "directory": result.directory,
        "worker": {
            "pid": result.worker_pid,
            "killed": result.killed,
            "signal": "SIGKILL" if result.killed else None,
            "last_completed_tick": result.last_tick,
            "torn_write": result.torn_write,
        },
        "repairs": result.repairs,
        "plan": plan_json(result.plan),
        "all_decisions_sound": result.all_sound,
        "replay": {
            "cached_effects_replayed": result.replayed_effects,
            "inner_handler_calls": result.inner_calls_on_replay,
        },
    }
    torn = result.torn_write
    repair_lines = [
        f"  {name}: cut {tail['dropped']} bytes at offset {tail['offset']} ({tail['reason']})"
        if tail
        else f"  {name}: clean, nothing cut"
        for name, tail in result.repairs.items()
    ]
    text = "\n".join(
        [
            f"worker {result.worker_pid} "
            + (
                f"killed with SIGKILL during tick {result.last_tick + 1}, "
                f"inside a {torn['size']}-byte WAL record write at offset {torn['offset']} "
                f"({torn['written']} bytes on disk)"
                if torn
                else "finished before the kill point"
            ),
            "(from the kill tick on, the worker's disk wrote each WAL record in two halves,"
            " so the kill lands inside one)",
            "",
            "reopening the state directory, torn-tail repair:",
            *repair_lines,
            "",
            "recovery plan from the latest checkpoint:",
            plan_text(result.plan),
            "",
            f"soundness predicate holds for every decision: {'yes' if result.all_sound else 'NO'}",
            f"replayed {result.replayed_effects} agreed side effects through the evidence cache: "
            f"the live handler ran {result.inner_calls_on_replay} times",
            f"state directory kept at {result.directory}",
        ]
    )
    _emit(args, document, text)
    return OK if result.all_sound and result.inner_calls_on_replay == 0 else FAILED


def _report_json(report: Any) -> dict[str, Any]:
    tail = report.torn_tail
    return {
        "path": report.path,
        "kind": report.kind,
        "base_verified": report.base_verified,
        "base_bytes": report.base_bytes,
        "records": len(report.records),
        "entries": report.entries,
        "size": report.size,
        "torn_tail": None
        if tail is None
        else {"offset": tail.offset, "dropped": tail.dropped, "reason": tail.reason},
    }


def _tail_line(tail: Any) -> str:
    if tail is None:
        return "no torn tail"
    return (
        f"torn tail at offset {tail.offset}: {tail.dropped} bytes would be cut on open "
        f"({tail.reason})"
    )


#: Files at least this large get a progress line on stderr before scanning.
LARGE_SCAN_BYTES = 8 * 1024 * 1024


def _scan(args: argparse.Namespace, path: str) -> Any:
    """`inspect_log(path)`, announcing long scans on stderr."""
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0  # inspect_log reports the missing file precisely
    if size >= LARGE_SCAN_BYTES:
        _progress(args)(f"scanning {path} ({size / 2**20:.0f} MiB): checksums and decoding")
    return inspect_log(path)


def cmd_inspect(args: argparse.Namespace) -> int:
    report = _scan(args, args.path)
    artifact = report.artifact
    document = _report_json(report)
    rows: list[tuple[object, ...]] = []
    if isinstance(artifact, AgreementWalArtifact):
        per_op: dict[str, tuple[int, AgreementLevel, int, int]] = {}
        for entry in artifact.entries:
            count, level, first, last = per_op.get(
                entry.operation_id, (0, AgreementLevel.NONE, entry.tick, entry.tick)
            )
            per_op[entry.operation_id] = (
                count + 1,
                max_level(level, proven_level(entry)),
                min(first, entry.tick),
                max(last, entry.tick),
            )
        rows = [
            (op, count, level.value, first, last)
            for op, (count, level, first, last) in sorted(per_op.items())
        ]
        document["operations"] = [
            dict(
                zip(("operation_id", "entries", "level", "first_tick", "last_tick"), r, strict=True)
            )
            for r in rows
        ]
        body = table(("operation", "entries", "level", "first tick", "last tick"), rows)
    elif isinstance(artifact, EvidenceOutcomeCacheArtifact):
        for binding in artifact.entries:
            rows.append(
                (
                    binding.evidence_id,
                    f"{binding.interface_name}.{binding.operation_name}",
                    binding.outcome.status.value,
                )
            )
        document["bindings"] = [
            dict(zip(("evidence_id", "effect", "status"), r, strict=True)) for r in rows
        ]
        body = table(("evidence id", "effect", "status"), rows)
    else:  # pragma: no cover - logs hold only the two kinds
        body = ""
    kind = (report.kind or "empty").replace("_", " ")
    head = (
        f"{report.path}: {kind} log, {report.size} bytes; base {report.base_bytes} "
        f"bytes ({'checksummed' if report.base_verified else UNVERIFIED}), "
        f"{len(report.records)} records, {report.entries} entries"
    )
    tail_line = _tail_line(report.torn_tail)
    _emit(args, document, "\n".join([head, tail_line, body]))
    return OK


def cmd_verify(args: argparse.Namespace) -> int:
    report = _scan(args, args.path)
    artifact = report.artifact
    problems: list[str] = []
    if report.torn_tail is not None and args.strict:
        torn = report.torn_tail
        problems.append(f"torn tail at offset {torn.offset} ({torn.dropped} bytes): {torn.reason}")
    anomalies: list[str] = []
    if isinstance(artifact, AgreementWalArtifact):
        try:
            artifact.validate_monotonic_escalations()
            plan = DurableRecoveryPlan.from_checkpoint(
                0, None, artifact, EvidenceOutcomeCacheArtifact(), strict=False
            )
            anomalies = list(plan.anomalies)
        except EscalationOrderError as exc:
            problems.append(str(exc))
        if anomalies:
            problems.append(f"gates crossed above the proven level for: {', '.join(anomalies)}")
    document = {**_report_json(report), "ok": not problems, "problems": problems}
    lines = [
        f"{args.path}: checksums ok, {len(report.records)} records, {report.entries} entries"
        + ("" if report.base_verified else f" (base {UNVERIFIED})"),
        _tail_line(report.torn_tail),
    ]
    if isinstance(artifact, AgreementWalArtifact):
        lines.append(
            "escalation order and planner consistency: " + ("ok" if not problems else "FAILED")
        )
    lines += [f"problem: {p}" for p in problems]
    _emit(args, document, "\n".join(lines))
    return OK if not problems else FAILED


def cmd_plan(args: argparse.Namespace) -> int:
    if not os.path.isdir(args.dir):
        raise CommandError(f"{args.dir} is not a state directory", USAGE)
    with StateDirectory(args.dir, create=False) as store:
        plan = store.plan_recovery(args.checkpoint_tick, strict=not args.no_strict)
        document = {
            "directory": args.dir,
            "repairs": {k: None if v is None else str(v) for k, v in store.repairs.items()},
            **plan_json(plan),
        }
    _emit(args, document, plan_text(plan))
    return FAILED if plan.anomalies else OK


def cmd_export(args: argparse.Namespace) -> int:
    if os.path.exists(args.log) and os.path.getsize(args.log) >= LARGE_SCAN_BYTES:
        _progress(args)(f"reading {args.log} ({os.path.getsize(args.log) / 2**20:.0f} MiB)")
    artifact = export_log(args.log)  # refuses (ArtifactTooLargeError) over the cap
    artifact.write_to_path(args.output)
    size = os.path.getsize(args.output)
    entries = len(getattr(artifact.payload, "entries", ()))
    document = {
        "log": args.log,
        "output": args.output,
        "kind": type(artifact.payload).__name__,
        "entries": entries,
        "bytes": size,
    }
    _emit(
        args,
        document,
        f"wrote {args.output}: one v1 artifact, {entries} entries, {size} bytes",
    )
    return OK


# -- entry point ---------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render ``--help``)."""
    parser = _Parser(prog="durability", description="Crash safety for agreement protocols.")
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    common.add_argument("--quiet", action="store_true", help="no progress on stderr")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser(
        "demo", parents=[common], help="kill a worker mid-run, then plan recovery"
    )
    demo.add_argument(
        "dir", nargs="?", help="a new state directory (default: a fresh temporary one)"
    )
    demo.add_argument(
        "--operations", type=int, default=48, help="operations the worker drives (default 48)"
    )
    demo.add_argument("--seed", type=int, default=7, help="random seed of the simulation")
    demo.set_defaults(run=cmd_demo)

    inspect = sub.add_parser("inspect", parents=[common], help="summarise a WAL or cache log")
    inspect.add_argument("path")
    inspect.set_defaults(run=cmd_inspect)

    verify = sub.add_parser(
        "verify", parents=[common], help="check checksums, escalation order, consistency"
    )
    verify.add_argument("path")
    verify.add_argument("--strict", action="store_true", help="a torn tail fails verification too")
    verify.set_defaults(run=cmd_verify)

    plan = sub.add_parser("plan", parents=[common], help="the recovery plan of a state directory")
    plan.add_argument("dir")
    plan.add_argument("--checkpoint-tick", type=int, default=None, help="plan from this checkpoint")
    plan.add_argument(
        "--no-strict", action="store_true", help="list anomalies instead of failing on them"
    )
    plan.set_defaults(run=cmd_plan)

    export = sub.add_parser("export", parents=[common], help="write a log as one v1 artifact")
    export.add_argument("log")
    export.add_argument("-o", "--output", required=True, help="the artifact file to write")
    export.set_defaults(run=cmd_export)
    return parser


def _exit_code(exc: DurabilityError) -> int:
    if isinstance(exc, ArtifactTooLargeError):
        return USAGE
    if isinstance(exc, DecodeError | EscalationOrderError | InconsistentWalError):
        return FAILED
    return USAGE


def _report_repairs_once() -> None:
    """Torn-tail repairs reach stderr once, as a ``durability:`` line (the
    backends both log and warn; the CLI keeps the log line)."""
    warnings.simplefilter("ignore", TornTailWarning)
    logger = logging.getLogger("durability")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("durability: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (also used by the console script)."""
    json_mode = "--json" in (argv if argv is not None else sys.argv[1:])
    _report_repairs_once()
    try:
        args = build_parser().parse_args(argv)
        code: int = args.run(args)
        return code
    except CommandError as exc:
        message, code = str(exc), exc.code
    except DurabilityError as exc:
        message, code = str(exc), _exit_code(exc)
    except KeyboardInterrupt:
        message, code = "interrupted", 130
    except Exception as exc:  # a bug: still one line, unless debugging
        if os.environ.get("DURABILITY_DEBUG"):
            traceback.print_exc()
        message, code = f"internal error: {type(exc).__name__}: {exc}", USAGE
    print(f"durability: error: {' '.join(message.split())}", file=sys.stderr)
    if json_mode:
        print(json.dumps({"ok": False, "error": message, "exit_code": code}))
    return code


def entry_point() -> NoReturn:
    """Console-script entry: exit with `main`'s code."""
    sys.exit(main())
