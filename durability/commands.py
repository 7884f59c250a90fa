"""The commands that only read: ``inspect``, ``verify``, ``plan``, ``export``
(``cli.py`` parses the command line and runs them).

Each takes a log path or an API.md §10 URL where it takes a log. Nothing
under the input is created, written, truncated or repaired: a log file's
torn tail is reported, a SQL store is opened read-only (no table created,
only ``SELECT``s). A SQL database may hold a WAL and a cache, and several of
each by name: ``--kind wal|cache`` and ``--name NAME`` say which (default:
whichever exists under ``default``; both or neither is an error listing what
the database holds).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import render, render_explain
from .backends.file import FileAgreementWal, FileEvidenceOutcomeCache, LogReport
from .console import FAILED, OK, USAGE, CommandError, emit, progress_of, say, write_stdout
from .errors import DecodeError, DurabilityError
from .explanation import DecisionExplanation
from .fileio import DEFAULT_FS
from .persisted import MAX_ARTIFACT_BYTES
from .planner import DurableRecoveryPlan
from .reading import (
    StoreReport,
    artifact_bytes,
    cache_for_reading,
    read_store,
    same_file,
    wal_for_reading,
)
from .store import (
    Checkpoint,
    StateDirectory,
    decode_checkpoint,
    looks_like_checkpoint,
    plan_wal,
)
from .urls import parse_storage_url
from .verify import verify_report

__all__ = [
    "LARGE_SCAN_BYTES",
    "STDOUT",
    "cmd_export",
    "cmd_inspect",
    "cmd_plan",
    "cmd_verify",
    "read_checkpoint_file",
]

#: Files at least this large get a progress line on stderr before scanning.
LARGE_SCAN_BYTES = 8 * 1024 * 1024
#: ``-o -``: the artifact goes to stdout.
STDOUT = "-"


def _read(args: argparse.Namespace, target: str) -> LogReport | StoreReport:
    """`read_store(target)` with ``--kind``/``--name``, announcing long scans
    of a log file on stderr."""
    parsed = parse_storage_url(target)
    if parsed.kind == "file":
        assert parsed.path is not None
        try:
            size = os.path.getsize(parsed.path)
            sealed = Path(f"{parsed.path}.seg")  # a WAL's sealed segments (specs/segments.md)
            size += sum(p.stat().st_size for p in sealed.glob("*.log")) if sealed.is_dir() else 0
        except OSError:
            size = 0  # inspect_log reports the missing file precisely
        if size >= LARGE_SCAN_BYTES:
            progress_of(args)(
                f"scanning {parsed.path} ({size / 2**20:.0f} MiB): checksums and decoding"
            )
    return read_store(target, kind=args.kind, name=args.name)


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
    """``inspect PATH|URL``: a log, a SQL store, or a checkpoint file."""
    try:
        report = _read(args, args.path)
    except DecodeError:
        parsed = parse_storage_url(args.path)
        found = read_checkpoint_file(parsed.path) if parsed.path and parsed.kind == "file" else None
        if found is None:  # not a log: maybe a checkpoint
            raise
        size = os.path.getsize(str(found.path))
        emit(args, render.checkpoint_json(found, size), render.checkpoint_text(found, size))
        return OK
    emit(args, render.inspect_json(report), render.inspect_text(report))
    return OK


def cmd_verify(args: argparse.Namespace) -> int:
    """``verify LOG|URL``: exit 1 when verification fails."""
    result = verify_report(_read(args, args.path), strict=args.strict)
    emit(args, render.verify_json(result), render.verify_text(result))
    return OK if result.ok else FAILED


def _plan_sources(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The ``--wal`` and ``--cache`` URLs (``--store`` gives both), checked."""
    wal, cache = args.wal, args.cache
    if args.store is not None:
        if wal is not None or cache is not None:
            raise CommandError("--store URL is --wal URL --cache URL: give one or the other", USAGE)
        wal = cache = args.store
    if args.dir is None:
        if wal is None or cache is None:
            raise CommandError(
                "plan needs a state directory DIR, or --store URL, or --wal URL and --cache URL",
                USAGE,
            )
        if args.checkpoint_tick is not None:
            raise CommandError(
                "--checkpoint-tick needs DIR: checkpoints live in a state directory", USAGE
            )
    elif not os.path.isdir(args.dir):
        raise CommandError(f"{args.dir} is not a state directory", USAGE)
    if args.name is not None and wal is None and cache is None:
        raise CommandError("--name picks a WAL or cache in a --store, --wal or --cache URL", USAGE)
    return wal, cache


def _explain(plan: DurableRecoveryPlan, wanted: list[str] | None) -> list[DecisionExplanation]:
    """The explanations ``--explain`` prints: of `wanted` (``--operation``),
    else of every operation with a decision or an anomaly, by id."""
    ids = wanted or sorted([d.operation_id for d in plan.decisions] + list(plan.anomalies))
    return [plan.explain(op) for op in ids]


def cmd_plan(args: argparse.Namespace) -> int:
    """``plan [DIR] [--store URL | --wal URL --cache URL] [--explain]``: read only."""
    tick = args.checkpoint_tick
    if tick is not None and tick < 0:
        raise CommandError(f"--checkpoint-tick must be at least 0, not {tick}", USAGE)
    if args.operation and not args.explain:
        raise CommandError("--operation picks what --explain explains: give --explain", USAGE)
    wal_url, cache_url = _plan_sources(args)
    wal = wal_for_reading(wal_url, name=args.name) if wal_url else None
    cache = cache_for_reading(cache_url, name=args.name) if cache_url else None
    strict = not args.no_strict and not args.explain  # --explain explains anomalies too
    explained: list[DecisionExplanation] = []
    if args.dir is None:
        assert wal is not None and cache is not None
        with wal, cache:
            plan = plan_wal(wal, None, None, cache.load(), strict=strict)
            explained = _explain(plan, args.operation) if args.explain else []
            repairs = {
                log.path: log.torn_tail
                for log in (wal, cache)
                if isinstance(log, FileAgreementWal | FileEvidenceOutcomeCache)
            }
    else:
        # Read only: nothing under DIR (or in the stores) is created, truncated
        # or repaired; a torn tail is in `store.repairs` as what opening for
        # writing would cut.
        with StateDirectory(args.dir, create=False, read_only=True, wal=wal, cache=cache) as store:
            if tick is not None and tick not in (ticks := store.checkpoint_ticks()):
                listed = f"tick{'s' * (len(ticks) > 1)} {', '.join(map(str, ticks))}"
                there = f"checkpoints exist at {listed}" if ticks else "no checkpoints"
                raise CommandError(f"no checkpoint at tick {tick} in {args.dir} ({there})", USAGE)
            plan = store.plan_recovery(tick, strict=strict)
            explained = _explain(plan, args.operation) if args.explain else []
            repairs = dict(store.repairs)
    shown = {
        key: parse_storage_url(url).shown if url else None
        for key, url in (("wal", wal_url), ("cache", cache_url))
    }
    document = {"directory": args.dir, **shown, "repairs": render.repairs_json(repairs)}
    where = [f"WAL in {shown['wal']}, cache in {shown['cache']}"] if wal_url or cache_url else []
    text = "\n".join([*where, *render.repair_lines(repairs), render.plan_text(plan)])
    document = {**document, **render.plan_json(plan)}
    if args.explain:
        text += "\n\n" + render_explain.explanations_text(explained, args.dir)
        document.update(render_explain.explanations_json(explained))
    emit(args, document, text)
    return FAILED if plan.anomalies else OK


def cmd_export(args: argparse.Namespace) -> int:
    """``export LOG|URL -o OUT``: one v1 artifact, never over its input."""
    to_stdout = args.output == STDOUT
    if to_stdout and sys.stdout.isatty():
        raise CommandError("will not write binary to a terminal; redirect or give -o OUT", USAGE)
    parsed = parse_storage_url(args.log)
    if not to_stdout and parsed.path is not None and same_file(parsed.path, args.output):
        raise CommandError(
            f"-o {args.output} is the input log {args.log}: export never overwrites its input",
            USAGE,
        )
    report = _read(args, args.log)  # one read: the content and the torn tail left out
    data = artifact_bytes(report)
    if report.torn_tail is not None:
        say(render.export_tail_line(report.path, report.torn_tail))
    if to_stdout:
        write_stdout(data)
    else:
        DEFAULT_FS.replace_atomically(os.fspath(args.output), data)
    document = render.export_json(report, args.output, len(data))
    text = render.export_text(report, "stdout" if to_stdout else args.output, len(data))
    if not to_stdout:
        emit(args, document, text)
    elif not args.quiet:  # stdout holds the artifact only: the summary goes to stderr
        if args.json:
            print(json.dumps(document, indent=2), file=sys.stderr, flush=True)
        else:
            say(text)
    return OK
