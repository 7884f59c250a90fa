"""The ``durability`` command line: demo, inspect, verify, plan, export.

Human output is tables on stdout; ``--json`` prints one JSON document on
stdout instead. Progress goes to stderr. Exit codes: 0 ok, 1 verification
failed or the input is damaged, 2 usage error or unusable input. Every error is
one line on stderr (set ``DURABILITY_DEBUG=1`` for a traceback).

Output closed early by its reader (``durability inspect --json LOG | head -1``)
ends the command quietly: nothing more is written, nothing on stderr, exit
code 141 (128 + SIGPIPE, what a shell reports for a Unix tool stopped by a
closed pipe, so ``set -o pipefail`` sees the cut short output as usual).
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
from .backends.file import LogReport, TornTailWarning, inspect_log
from .errors import (
    ArtifactTooLargeError,
    DecodeError,
    DurabilityError,
    EscalationOrderError,
    InconsistentWalError,
    PayloadKindError,
)
from .fileio import DEFAULT_FS
from .persisted import MAX_ARTIFACT_BYTES, SCHEMA_VERSION, PersistedDurabilityArtifact
from .planner import DurableRecoveryPlan
from .store import StateDirectory

__all__ = ["main"]

OK, FAILED, USAGE = 0, 1, 2
#: Exit code when the reader of stdout went away (128 + SIGPIPE).
OUTPUT_CLOSED = 141


class CommandError(Exception):
    """A one-line error with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _OutputClosed(Exception):
    """stdout's reader closed it (EPIPE): the command stops writing, quietly."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{message} (see `{self.prog} --help`)", USAGE)


# -- output helpers -----------------------------------------------------------


def _write_stdout(data: bytes | str) -> None:
    """Write all of `data` (text gets a newline) to stdout and flush it.

    Goes through the binary layer in a loop: with ``PYTHONUNBUFFERED=1`` that
    layer is the raw file, whose partial writes the text layer would silently
    drop. A reader that went away is noticed here (`_OutputClosed`), not in
    the interpreter's final flush.
    """
    out = getattr(sys.stdout, "buffer", None)
    try:
        if isinstance(data, str):
            text = data + "\n"
            if out is None:  # stdout replaced by a text-only stream
                sys.stdout.write(text)
                sys.stdout.flush()
                return
            data = text.encode(sys.stdout.encoding or "utf-8", sys.stdout.errors or "strict")
        elif out is None:
            raise CommandError("stdout cannot take binary data here", USAGE)
        sys.stdout.flush()  # whatever the text layer holds goes first
        view = memoryview(data)
        while view:
            written = out.write(view)
            view = view[written or 0 :]
        out.flush()
    except BrokenPipeError as exc:
        raise _OutputClosed from exc


def _emit(args: argparse.Namespace, document: dict[str, Any], text: str) -> None:
    _write_stdout(json.dumps(document, indent=2, sort_keys=False) if args.json else text)


def _silence_stdout() -> None:
    """Point file descriptor 1 at the null device, so that flushing what is
    still buffered (at exit) cannot fail on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError):  # stdout without a descriptor: nothing to flush into a pipe
        pass


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


#: ``-o -``: the artifact goes to stdout.
STDOUT = "-"


def _same_file(a: str, b: str) -> bool:
    """Whether `a` and `b` name one file: through symbolic or hard links and
    any spelling of the path (``./x``, ``dir/../x``)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one is missing: compare where they would resolve
        return os.path.realpath(a) == os.path.realpath(b)


def cmd_export(args: argparse.Namespace) -> int:
    to_stdout = args.output == STDOUT
    if to_stdout and sys.stdout.isatty():
        raise CommandError(
            "will not write a binary artifact to a terminal; redirect stdout or give -o FILE",
            USAGE,
        )
    if not to_stdout and _same_file(args.log, args.output):
        raise CommandError(
            f"-o {args.output} is the input log {args.log}: export never overwrites its input",
            USAGE,
        )
    report = _scan(args, args.log)  # one read: the content and the torn tail left out
    if report.artifact is None:
        raise PayloadKindError(f"log {report.path} is empty: its payload kind is unknown")
    artifact = PersistedDurabilityArtifact(schema_version=SCHEMA_VERSION, payload=report.artifact)
    data = artifact.to_cbor()
    if len(data) > MAX_ARTIFACT_BYTES:  # the Rust original would refuse to read it
        raise ArtifactTooLargeError(
            f"decode persisted durability artifact {report.path}: exported artifact would be "
            f"{len(data)} bytes, max is {MAX_ARTIFACT_BYTES}"
        )
    if report.torn_tail is not None:
        warning = render.export_tail_line(report.path, report.torn_tail)
        print(f"durability: {warning}", file=sys.stderr, flush=True)
    if to_stdout:
        _write_stdout(data)
    else:
        DEFAULT_FS.replace_atomically(os.fspath(args.output), data)
    document = render.export_json(report, args.output, len(data))
    text = render.export_text(report, "stdout" if to_stdout else args.output, len(data))
    if not to_stdout:
        _emit(args, document, text)
    elif not args.quiet:  # stdout holds the artifact only: the summary goes to stderr
        summary = json.dumps(document, indent=2) if args.json else f"durability: {text}"
        print(summary, file=sys.stderr, flush=True)
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
    except _OutputClosed:
        _silence_stdout()
        return OUTPUT_CLOSED
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
        try:
            _write_stdout(json.dumps({"ok": False, "error": message, "exit_code": code}))
        except _OutputClosed:
            _silence_stdout()
    return code


def entry_point() -> NoReturn:
    """Console-script entry: exit with `main`'s code."""
    sys.exit(main())
