"""``durability repair LOG [--apply]``: cut a torn tail or damage off a log
file, never in place.

Without ``--apply`` it is a dry run: it reads the log (as a reader would, so
it works on a read-only directory) and says what it would do: cut a torn tail
of N bytes at offset X, or, for damage in the middle, keep the valid prefix,
saying how many intact records lie after the damage and what each recovery
mode would do when the log is opened for writing. Nothing is created or
changed. Exit 0: nothing to repair; 1: the log needs a repair.

With ``--apply`` it makes that repair (`durability.repair.repair_log`): the
repaired log is written beside the original and verified, then swapped in;
the damaged file is kept as ``LOG.damaged-<UTC timestamp>``. A log another
process holds or has open is refused (exit 2), as is damage no repair may cut
(exit 1); either way nothing changes. A SQL store has no torn tail (it commits
whole transactions): its URL is a usage error.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from .console import FAILED, OK, USAGE, CommandError, emit
from .errors import RepairRefusedError
from .render_repair import repair_json, repair_text
from .repair import repair_log
from .repair_scan import scan_for_repair
from .urls import parse_storage_url

__all__ = ["add_commands", "cmd_repair"]


def _log_file(where: str) -> str:
    """The log file `where` names (a path or ``file:///`` URL); a SQL URL or
    a directory is a usage error."""
    parsed = parse_storage_url(where)
    if parsed.kind != "file" or parsed.path is None:
        raise CommandError(
            f"repair works on log files: {parsed.shown} is a {parsed.kind} store, which "
            "commits whole transactions and has no torn tail to cut",
            USAGE,
        )
    if os.path.isdir(parsed.path):
        raise CommandError(
            f"{parsed.path} is a directory: give the log file (wal.log or evidence.log in it)",
            USAGE,
        )
    return parsed.path


def cmd_repair(args: argparse.Namespace) -> int:
    """``repair LOG [--apply]``."""
    path = _log_file(args.path)
    if not args.apply:
        plan = scan_for_repair(path)
        emit(args, repair_json(plan), repair_text(plan))
        return FAILED if plan.needed else OK
    try:
        result = repair_log(path)
    except RepairRefusedError as exc:
        raise CommandError(str(exc), FAILED) from exc
    emit(args, repair_json(result.plan, result), repair_text(result.plan, result))
    return OK


def add_commands(
    subparsers: argparse._SubParsersAction[Any], common: argparse.ArgumentParser
) -> None:
    """Add ``repair`` to the ``durability`` parser's `subparsers`; `common`
    is the parent parser holding ``--json``/``--quiet``."""
    repair = subparsers.add_parser(
        "repair",
        parents=[common],
        help="cut a torn tail or damage off a log file, never in place (a dry run unless --apply)",
    )
    repair.add_argument(
        "path", metavar="LOG", help="a WAL or cache log file (wal.log, evidence.log)"
    )
    repair.add_argument(
        "--apply",
        action="store_true",
        help="make the repair: write the repaired log beside it, verify it, swap it in, "
        "keep the damaged file as LOG.damaged-<UTC timestamp>",
    )
    repair.set_defaults(run=cmd_repair)
