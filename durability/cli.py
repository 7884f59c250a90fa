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

from . import render
from .artifact import AgreementWalArtifact, EvidenceOutcomeCacheArtifact
from .backends.file import LogReport, TornTailWarning, export_log, inspect_log
from .errors import (
    ArtifactTooLargeError,
    DecodeError,
    DurabilityError,
    EscalationOrderError,
    InconsistentWalError,
)
from .planner import DurableRecoveryPlan
from .store import StateDirectory

__all__ = ["main"]

OK, FAILED, USAGE = 0, 1, 2


class CommandError(Exception):
    """A one-line error with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{message} (see `{self.prog} --help`)", USAGE)


# -- output helpers -----------------------------------------------------------


def _emit(args: argparse.Namespace, document: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps(document, indent=2, sort_keys=False))
    else:
        print(text)


def _progress(args: argparse.Namespace) -> Callable[[str], None]:
    def say(line: str) -> None:
        print(f"durability: {line}", file=sys.stderr, flush=True)

    return say if not args.quiet else (lambda line: None)


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
    _emit(args, render.demo_json(result), render.demo_text(result))
    return OK if result.all_sound and result.inner_calls_on_replay == 0 else FAILED


#: Files at least this large get a progress line on stderr before scanning.
LARGE_SCAN_BYTES = 8 * 1024 * 1024


def _scan(args: argparse.Namespace, path: str) -> LogReport:
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
    _emit(args, render.inspect_json(report), render.inspect_text(report))
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
    document = {**render.report_json(report), "ok": not problems, "problems": problems}
    lines = [
        f"{args.path}: checksums ok, {len(report.records)} records, {report.entries} entries"
        + ("" if report.base_verified else f" (base {render.UNVERIFIED})"),
        render.tail_line(report.torn_tail),
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
            **render.plan_json(plan),
        }
    _emit(args, document, render.plan_text(plan))
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
