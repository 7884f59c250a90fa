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
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

from . import render
from .backends.file import LogReport, export_artifact, inspect_log
from .console import OutputClosed, report_repairs_on_stderr, say, silence_stdout, write_stdout
from .errors import (
    ArtifactTooLargeError,
    DecodeError,
    DurabilityError,
    EscalationOrderError,
    InconsistentWalError,
)
from .fileio import DEFAULT_FS
from .persisted import (
    MAX_ARTIFACT_BYTES,
)
from .store import Checkpoint, StateDirectory, decode_checkpoint, looks_like_checkpoint
from .verify import verify_report

__all__ = ["main"]

OK, FAILED, USAGE = 0, 1, 2
#: Exit code when the reader of stdout went away (128 + SIGPIPE).
OUTPUT_CLOSED = 141


class CommandError(Exception):
    """A one-line error with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{message} (see `{self.prog} --help`)", USAGE)


# -- commands ----------------------------------------------------------------


def _emit(args: argparse.Namespace, document: dict[str, Any], text: str) -> None:
    write_stdout(json.dumps(document, indent=2, sort_keys=False) if args.json else text)


def _progress(args: argparse.Namespace) -> Callable[[str], None]:
    return say if not args.quiet else (lambda line: None)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo  # the demo spawns processes; import it only here

    if args.operations < 1:
        raise CommandError("--operations must be at least 1", USAGE)
    directory = args.dir or tempfile.mkdtemp(prefix="durability-demo-")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise CommandError(f"{directory} is not a directory; give the demo a new directory", USAGE)
    if os.path.exists(directory) and os.listdir(directory):
        raise CommandError(f"{directory} is not empty; give the demo a new directory", USAGE)
    progress = _progress(args)
    progress(f"state directory {directory}; worker drives {args.operations} operations")
    result = run_demo(directory, operations=args.operations, seed=args.seed, progress=progress)
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


def read_checkpoint_file(path: str) -> Checkpoint | None:
    """The checkpoint in file `path` (``checkpoints/checkpoint-<tick>.cbor``
    of a state directory, or a copy), or ``None`` if it holds something else.

    Raises `DecodeError` naming the file for a damaged checkpoint.
    """
    try:
        data = DEFAULT_FS.read_capped(path, MAX_ARTIFACT_BYTES)
    except DurabilityError:
        return None
    return decode_checkpoint(data, Path(path)) if looks_like_checkpoint(data) else None


def cmd_inspect(args: argparse.Namespace) -> int:
    try:
        report = _scan(args, args.path)
    except DecodeError:
        found = read_checkpoint_file(args.path)  # not a log: maybe a checkpoint
        if found is None:
            raise
        size = os.path.getsize(args.path)
        _emit(args, render.checkpoint_json(found, size), render.checkpoint_text(found, size))
        return OK
    _emit(args, render.inspect_json(report), render.inspect_text(report))
    return OK


def cmd_verify(args: argparse.Namespace) -> int:
    result = verify_report(_scan(args, args.path), strict=args.strict)
    _emit(args, render.verify_json(result), render.verify_text(result))
    return OK if result.ok else FAILED


def cmd_plan(args: argparse.Namespace) -> int:
    tick = args.checkpoint_tick
    if tick is not None and tick < 0:
        raise CommandError(f"--checkpoint-tick must be at least 0, not {tick}", USAGE)
    if not os.path.isdir(args.dir):
        raise CommandError(f"{args.dir} is not a state directory", USAGE)
    # Read only: nothing under DIR is created, truncated or repaired; a torn
    # tail is in `store.repairs` as what opening for writing would cut.
    with StateDirectory(args.dir, create=False, read_only=True) as store:
        if tick is not None and tick not in (ticks := store.checkpoint_ticks()):
            listed = f"tick{'s' * (len(ticks) > 1)} {', '.join(map(str, ticks))}"
            there = f"checkpoints exist at {listed}" if ticks else "no checkpoints"
            raise CommandError(f"no checkpoint at tick {tick} in {args.dir} ({there})", USAGE)
        plan = store.plan_recovery(tick, strict=not args.no_strict)
        repairs = dict(store.repairs)
    document = {"directory": args.dir, "repairs": render.repairs_json(repairs)}
    text = "\n".join([*render.repair_lines(repairs), render.plan_text(plan)])
    _emit(args, {**document, **render.plan_json(plan)}, text)
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
        raise CommandError("will not write binary to a terminal; redirect or give -o OUT", USAGE)
    if not to_stdout and _same_file(args.log, args.output):
        raise CommandError(
            f"-o {args.output} is the input log {args.log}: export never overwrites its input",
            USAGE,
        )
    report = _scan(args, args.log)  # one read: the content and the torn tail left out
    _artifact, data = export_artifact(report)
    if report.torn_tail is not None:
        say(render.export_tail_line(report.path, report.torn_tail))
    if to_stdout:
        write_stdout(data)
    else:
        DEFAULT_FS.replace_atomically(os.fspath(args.output), data)
    document = render.export_json(report, args.output, len(data))
    text = render.export_text(report, "stdout" if to_stdout else args.output, len(data))
    if not to_stdout:
        _emit(args, document, text)
    elif not args.quiet:  # stdout holds the artifact only: the summary goes to stderr
        if args.json:
            print(json.dumps(document, indent=2), file=sys.stderr, flush=True)
        else:
            say(text)
    return OK


# -- entry point ---------------------------------------------------------------


def _version() -> str:
    try:
        return metadata.version("durability")
    except metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


_JSON_HELP = "print one JSON document on stdout"
_QUIET_HELP = "no progress on stderr"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render ``--help``).

    ``--json`` and ``--quiet`` are accepted before or after the command.
    """
    parser = _Parser(prog="durability", description="Crash safety for agreement protocols.")
    parser.add_argument("--version", action="version", version=f"durability {_version()}")
    common = _Parser(add_help=False)
    # After the command, SUPPRESS keeps a --json given before it from being reset.
    for target, default in ((parser, False), (common, argparse.SUPPRESS)):
        target.add_argument("--json", action="store_true", default=default, help=_JSON_HELP)
        target.add_argument("--quiet", action="store_true", default=default, help=_QUIET_HELP)
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

    read_only = "(read, never modified)"
    inspect = sub.add_parser(
        "inspect", parents=[common], help="summarise a WAL or cache log, or a checkpoint"
    )
    inspect.add_argument("path", help=f"a WAL or cache log, or a checkpoint file {read_only}")
    inspect.set_defaults(run=cmd_inspect)

    verify = sub.add_parser(
        "verify", parents=[common], help="check checksums, escalation order, consistency"
    )
    verify.add_argument("path", help=f"a WAL or cache log {read_only}")
    verify.add_argument("--strict", action="store_true", help="a torn tail fails verification too")
    verify.set_defaults(run=cmd_verify)

    plan = sub.add_parser("plan", parents=[common], help="the recovery plan of a state directory")
    plan.add_argument(
        "dir", help=f"a state directory: wal.log, evidence.log, checkpoints/ {read_only}"
    )
    plan.add_argument(
        "--checkpoint-tick", type=int, metavar="N", help="plan from the checkpoint at tick N"
    )
    plan.add_argument(
        "--no-strict", action="store_true", help="list anomalies instead of failing on them"
    )
    plan.set_defaults(run=cmd_plan)

    export = sub.add_parser("export", parents=[common], help="write a log as one v1 artifact")
    export.add_argument("log", help=f"the WAL or cache log to export {read_only}")
    export.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="the artifact file to write, never the input log; - for stdout",
    )
    export.set_defaults(run=cmd_export)
    return parser


def _exit_code(exc: DurabilityError) -> int:
    """1 for damage (a file over the size cap is unusable input, not damage), else 2."""
    damage = DecodeError | EscalationOrderError | InconsistentWalError
    return (
        FAILED if isinstance(exc, damage) and not isinstance(exc, ArtifactTooLargeError) else USAGE
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (also used by the console script)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    json_mode = "--json" in arguments  # until parsing says for sure
    fields: dict[str, Any] = {}
    report_repairs_on_stderr()
    try:
        args = build_parser().parse_args(arguments)
        json_mode = args.json
        code: int = args.run(args)
        return code
    except SystemExit as exc:  # --help, --version: printed, done
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            silence_stdout()
            return OUTPUT_CLOSED
        return exc.code if isinstance(exc.code, int) else USAGE
    except OutputClosed:
        silence_stdout()
        return OUTPUT_CLOSED
    except CommandError as exc:
        message, code = str(exc), exc.code
    except DecodeError as exc:  # where it is, as fields too
        message, code = str(exc), _exit_code(exc)
        fields = {"kind": type(exc).__name__, "path": exc.path, "offset": exc.offset}
    except DurabilityError as exc:
        message, code = str(exc), _exit_code(exc)
        fields = {"kind": type(exc).__name__}
    except KeyboardInterrupt:
        message, code = "interrupted", 130
    except Exception as exc:  # a bug: still one line, unless debugging
        if os.environ.get("DURABILITY_DEBUG"):
            traceback.print_exc()
        message, code = f"internal error: {type(exc).__name__}: {exc}", USAGE
    print(f"durability: error: {' '.join(message.split())}", file=sys.stderr)
    if json_mode:
        try:
            document = {"ok": False, "error": message, "exit_code": code, **fields}
            write_stdout(json.dumps(document))
        except OutputClosed:
            silence_stdout()
    return code


def entry_point() -> NoReturn:
    """Console-script entry: exit with `main`'s code."""
    sys.exit(main())
