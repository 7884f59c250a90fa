"""The ``durability`` command line: demo, inspect, verify, plan, export,
migrate, effects, resolve, report, repair.

Human output is tables on stdout; ``--json`` prints one JSON document on
stdout instead. Progress goes to stderr. Exit codes: 0 ok, 1 verification
failed or the input is damaged, 2 usage error or unusable input. Every error is
one line on stderr (set ``DURABILITY_DEBUG=1`` for a traceback). Wherever a
command takes a log path it also takes an API.md §10 URL (``file:///``,
``sqlite:///``, ``postgresql://``); the read-only commands live in
``commands.py``.

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
import time
import traceback
from collections.abc import Sequence
from importlib import metadata
from typing import Any, NoReturn
from urllib.parse import quote

from . import render_actions
from .cli_effects import add_commands as add_effect_commands
from .cli_repair import add_commands as add_repair_commands
from .cli_report import add_command as add_report_command
from .commands import (
    cmd_export,
    cmd_inspect,
    cmd_plan,
    cmd_verify,
    read_checkpoint_file,
)
from .console import (
    FAILED,
    OK,
    USAGE,
    CommandError,
    OutputClosed,
    emit,
    progress_of,
    report_repairs_on_stderr,
    say,
    silence_stdout,
    write_stdout,
)
from .errors import (
    ArtifactTooLargeError,
    DecodeError,
    DurabilityError,
    EscalationOrderError,
    InconsistentWalError,
)
from .migrate import migrate
from .reading import KINDS
from .urls import open_cache, open_wal, parse_storage_url

__all__ = ["CommandError", "build_parser", "main", "read_checkpoint_file"]

#: Exit code when the reader of stdout went away (128 + SIGPIPE).
OUTPUT_CLOSED = 141


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{message} (see `{self.prog} --help`)", USAGE)


# -- commands that act ---------------------------------------------------------


def _demo_store(store: str | None, directory: str) -> str | None:
    """``--store``: ``sqlite`` (a database in the demo directory) or a
    ``sqlite:``/``postgresql:`` URL naming a database without a WAL or cache
    named ``default`` yet."""
    if store is None:
        return None
    if store == "sqlite":
        return f"sqlite:///{quote(os.path.abspath(os.path.join(directory, 'demo.db')))}"
    parsed = parse_storage_url(store)
    if parsed.kind == "file":
        raise CommandError(
            f"--store takes sqlite or a sqlite:/postgresql: URL, not {store!r} "
            "(the file demo is the default: leave --store out)",
            USAGE,
        )
    if parsed.kind == "sqlite" and not os.path.exists(str(parsed.path)):
        return store  # a new file (maybe in DIR, which the demo creates)
    with open_wal(store) as wal, open_cache(store) as cache:
        if wal.load().entries or cache.load().entries:
            raise CommandError(
                f"{parsed.shown} already holds a WAL or cache named "
                "`default`; give the demo a fresh database",
                USAGE,
            )
    return store


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo  # the demo spawns processes; import it only here

    if args.operations < 1:
        raise CommandError("--operations must be at least 1", USAGE)
    directory = args.dir or tempfile.mkdtemp(prefix="durability-demo-")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise CommandError(f"{directory} is not a directory; give the demo a new directory", USAGE)
    if os.path.exists(directory) and os.listdir(directory):
        raise CommandError(f"{directory} is not empty; give the demo a new directory", USAGE)
    store = _demo_store(args.store, directory)
    progress = progress_of(args)
    where = f"; WAL and cache in {parse_storage_url(store).shown}" if store else ""
    progress(f"state directory {directory}{where}; worker drives {args.operations} operations")
    result = run_demo(
        directory, operations=args.operations, seed=args.seed, progress=progress, store=store
    )
    emit(args, render_actions.demo_json(result), render_actions.demo_text(result))
    return OK if result.all_sound and result.inner_calls_on_replay == 0 else FAILED


#: Seconds between progress lines of a long ``migrate``.
PROGRESS_EVERY = 1.0


def cmd_migrate(args: argparse.Namespace) -> int:
    progress = progress_of(args)
    last = [time.monotonic()]

    def copied(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] >= PROGRESS_EVERY:
            last[0] = now
            progress(f"copied {done} of {total} entries ({100 * done // total}%)")

    report = migrate(
        args.source,
        args.destination,
        kind=args.kind,
        name=args.name,
        append=args.append,
        progress=copied,
    )
    if report.torn_tail_left_out is not None:
        tail = report.torn_tail_left_out
        say(
            f"{report.source}: torn tail at offset {tail.offset} ({tail.dropped} bytes, "
            f"{tail.reason}) left out of the copy"
        )
    emit(args, render_actions.migration_json(report), render_actions.migration_text(report))
    return OK if report.ok else FAILED


# -- entry point ---------------------------------------------------------------


def _version() -> str:
    try:
        return metadata.version("durability")
    except metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


_JSON_HELP = "print one JSON document on stdout"
_KIND_HELP = "which a SQL database holds: wal or cache (default: the one that exists)"
_NAME_HELP = "the WAL's or cache's name in a SQL database (default: default)"
_QUIET_HELP = "no progress on stderr"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render ``--help``).

    ``--json`` and ``--quiet`` are accepted before or after the command.
    """
    parser = _Parser(
        prog="durability",
        description="Crash safety for agreement protocols.",
        epilog="Wherever a command takes a log it also takes a storage URL: a path or "
        "file:///ABS/PATH, sqlite:///REL.db or sqlite:////ABS.db, postgresql://...",
    )
    parser.add_argument("--version", action="version", version=f"durability {_version()}")
    common = _Parser(add_help=False)
    # After the command, SUPPRESS keeps a --json given before it from being reset.
    for target, default in ((parser, False), (common, argparse.SUPPRESS)):
        target.add_argument("--json", action="store_true", default=default, help=_JSON_HELP)
        target.add_argument("--quiet", action="store_true", default=default, help=_QUIET_HELP)
    which = _Parser(add_help=False)
    which.add_argument("--kind", choices=KINDS, help=_KIND_HELP)
    which.add_argument("--name", help=_NAME_HELP)
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
    demo.add_argument(
        "--store",
        metavar="URL",
        help="put the WAL and cache in SQL: sqlite (a database in DIR) or a sqlite:/// or "
        "postgresql:// URL of a fresh database; checkpoints stay in DIR",
    )
    demo.set_defaults(run=cmd_demo)

    read_only = "(read, never modified)"
    inspect = sub.add_parser(
        "inspect",
        parents=[common, which],
        help="summarise a WAL or cache (a log file or a SQL store), or a checkpoint",
    )
    inspect.add_argument(
        "path",
        help=f"a log file, a storage URL, or a checkpoint file {read_only}",
        metavar="PATH|URL",
    )
    inspect.set_defaults(run=cmd_inspect)

    verify = sub.add_parser(
        "verify", parents=[common, which], help="check checksums, escalation order, consistency"
    )
    verify.add_argument("path", help=f"a log file or a storage URL {read_only}", metavar="LOG|URL")
    verify.add_argument("--strict", action="store_true", help="a torn tail fails verification too")
    verify.set_defaults(run=cmd_verify)

    plan = sub.add_parser(
        "plan", parents=[common], help="the recovery plan of a state directory or SQL store"
    )
    plan.add_argument(
        "dir",
        nargs="?",
        metavar="DIR",
        help=f"a state directory: wal.log, evidence.log, checkpoints/ {read_only}",
    )
    plan.add_argument("--store", metavar="URL", help="the WAL and cache in one SQL database")
    plan.add_argument("--wal", metavar="URL", help="the WAL (a log file or a storage URL)")
    plan.add_argument(
        "--cache", metavar="URL", help="the evidence cache (a log file or a storage URL)"
    )
    plan.add_argument("--name", help=_NAME_HELP)
    plan.add_argument(
        "--checkpoint-tick", type=int, metavar="N", help="plan from the checkpoint at tick N"
    )
    plan.add_argument(
        "--no-strict", action="store_true", help="list anomalies instead of failing on them"
    )
    plan.add_argument(
        "--explain",
        action="store_true",
        help="each decision (and anomaly) with the planner rule that chose it and the WAL "
        "entries behind it: file and byte offset, or SQL sequence",
    )
    plan.add_argument(
        "--operation", action="append", metavar="OP", help="with --explain: only OP (repeatable)"
    )
    plan.set_defaults(run=cmd_plan)

    export = sub.add_parser(
        "export", parents=[common, which], help="write a WAL or cache as one v1 artifact"
    )
    export.add_argument(
        "log", metavar="LOG|URL", help=f"the WAL or cache to export: a log file or URL {read_only}"
    )
    export.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="the artifact file to write, never the input log; - for stdout",
    )
    export.set_defaults(run=cmd_export)

    copy = sub.add_parser(
        "migrate",
        parents=[common],
        help="copy a WAL or cache between any two backends, then verify the copy",
    )
    copy.add_argument("source", metavar="SRC", help=f"a log file or storage URL {read_only}")
    copy.add_argument(
        "destination",
        metavar="DST",
        help="a log file or storage URL holding no such WAL or cache yet",
    )
    copy.add_argument("--kind", choices=KINDS, help=_KIND_HELP)
    copy.add_argument("--name", help=_NAME_HELP.replace(")", "; on both ends)"))
    copy.add_argument(
        "--append", action="store_true", help="copy after what DST holds instead of refusing"
    )
    copy.set_defaults(run=cmd_migrate)
    add_effect_commands(sub, common)
    add_report_command(sub, common)
    add_repair_commands(sub, common)
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
