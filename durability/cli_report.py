"""``durability report DIR -o FILE.html``: a state directory as one
self-contained HTML page (API.md §9).

    durability report state -o report.html [--checkpoint-tick N] [--json]

Reads only, as ``durability plan`` does: nothing under DIR is created,
written, truncated or repaired (a torn tail is shown, not cut). Anomalies
are shown, not fatal. The page is written atomically to ``-o`` (``-`` for
stdout), which may not be one of DIR's logs or checkpoints. ``--json``
prints a summary: the path written, operations, bytes. Progress goes to
stderr for large directories.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from .console import OK, USAGE, CommandError, emit, progress_of, write_stdout
from .fileio import DEFAULT_FS
from .report import gather_report
from .report_html import render_html
from .store import WAL_FILE, StateDirectory

__all__ = ["LARGE_WAL_BYTES", "add_command", "cmd_report"]

#: A WAL at least this large gets progress lines on stderr.
LARGE_WAL_BYTES = 4 * 1024 * 1024


def _refuse_input_as_output(directory: str, output: str) -> None:
    """`output` may be anywhere outside the state directory: report only reads
    its input, so it never creates, replaces or truncates anything under it."""
    if os.path.isdir(output):
        raise CommandError(f"-o {output} is a directory; name the HTML file to write", USAGE)
    real, under = os.path.realpath(output), os.path.realpath(directory)
    if os.path.commonpath([real, under]) == under:
        raise CommandError(
            f"-o {output} is inside {directory}, the input of the report: report never "
            "writes under its input; write the page elsewhere",
            USAGE,
        )


def cmd_report(args: argparse.Namespace) -> int:
    """``report DIR -o FILE.html``: read only (the output aside)."""
    tick = args.checkpoint_tick
    if tick is not None and tick < 0:
        raise CommandError(f"--checkpoint-tick must be at least 0, not {tick}", USAGE)
    if not os.path.isdir(args.dir):
        raise CommandError(f"{args.dir} is not a state directory", USAGE)
    to_stdout = args.output == "-"
    if not to_stdout:
        _refuse_input_as_output(args.dir, args.output)
    try:
        large = os.path.getsize(os.path.join(args.dir, WAL_FILE)) >= LARGE_WAL_BYTES
    except OSError:
        large = False
    progress = progress_of(args) if large else None
    with StateDirectory(args.dir, create=False, read_only=True) as store:
        if tick is not None and tick not in (ticks := store.checkpoint_ticks()):
            listed = f"tick{'s' * (len(ticks) > 1)} {', '.join(map(str, ticks))}"
            there = f"checkpoints exist at {listed}" if ticks else "no checkpoints"
            raise CommandError(f"no checkpoint at tick {tick} in {args.dir} ({there})", USAGE)
        report = gather_report(store, tick, progress=progress)
    if progress:
        progress(f"writing the page of {len(report.operations)} operations")
    data = render_html(report).encode("utf-8")
    if to_stdout:
        write_stdout(data)
    else:
        DEFAULT_FS.replace_atomically(os.fspath(args.output), data)
    document: dict[str, Any] = {
        "path": "-" if to_stdout else args.output,
        "directory": args.dir,
        "checkpoint_tick": report.checkpoint_tick,
        "operations": len(report.operations),
        "bytes": len(data),
        "actions": report.action_counts,
        "anomalies": list(report.anomalies),
        "in_doubt": report.in_doubt_count,
    }
    text = (
        f"wrote {'stdout' if to_stdout else args.output}: {len(report.operations)} operations, "
        f"{len(data)} bytes"
    )
    if not to_stdout:
        emit(args, document, text)
    elif not args.quiet:  # stdout holds the page only: the summary goes to stderr
        summary = json.dumps(document, indent=2) if args.json else f"durability: {text}"
        print(summary, file=sys.stderr, flush=True)
    return OK


def add_command(
    subparsers: argparse._SubParsersAction[Any], common: argparse.ArgumentParser
) -> None:
    """Add ``report`` to the ``durability`` parser's `subparsers`; `common`
    is the parent parser holding ``--json``/``--quiet``."""
    report = subparsers.add_parser(
        "report",
        parents=[common],
        help="a state directory as one self-contained HTML page (timelines, plan, evidence)",
    )
    report.add_argument("dir", metavar="DIR", help="a state directory (read, never modified)")
    report.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE.html",
        help="the page to write (atomically; never one of DIR's files); - for stdout",
    )
    report.add_argument(
        "--checkpoint-tick", type=int, metavar="N", help="plan from the checkpoint at tick N"
    )
    report.set_defaults(run=cmd_report)
