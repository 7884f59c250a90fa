"""The command line for effects in doubt (API.md §9, §11): ``durability
effects`` lists them, ``durability resolve`` records an operator's verdict.

    durability effects DIR                       the effects in doubt, as a table
    durability resolve DIR EVIDENCE_ID --success JSON | --failure KIND MESSAGE | --not-done

`DIR` is a state directory (its ``evidence.log``), a cache log, or a cache URL
(``sqlite:///...``, ``postgresql://...``). ``effects`` only reads: nothing is
created, written or repaired (a missing log is refused, a torn tail is left
for a writer). ``resolve`` writes one verdict: ``--success``/``--failure``
bind that outcome (first binding wins: an id already bound keeps its outcome),
``--not-done`` withdraws the open attempt so the next call runs the effect.

`add_commands(subparsers, common)` adds both to the ``durability`` parser;
the command functions take the parsed `argparse.Namespace` and return the
exit code (0 ok; errors are raised as `DurabilityError`, which the command
line prints as one line, exit 2). `main(argv)` runs them alone (tests).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .backends.file import FileEvidenceOutcomeCache
from .console import write_stdout
from .effects import EffectFailure, EffectFailureKind, EffectOutcome, failed
from .errors import DecodeError, DurabilityError
from .intents import EffectIntent
from .store import CACHE_FILE
from .urls import open_cache, parse_storage_url

__all__ = ["EffectsCommandError", "add_commands", "cmd_effects", "cmd_resolve", "main"]

OK, FAILED, USAGE = 0, 1, 2
_RESOLVE_FORM = "--success JSON | --failure KIND MESSAGE | --not-done"


class EffectsCommandError(DurabilityError):
    """A usage error of ``effects`` or ``resolve`` (exit code 2)."""


# -- opening the cache ----------------------------------------------------------------


def _is_url(where: str) -> bool:
    return "://" in where and not where.startswith("file://")


def open_effects_cache(where: str, *, writing: bool) -> tuple[Any, str]:
    """The cache `where` names and how to name it in output: a state
    directory's ``evidence.log``, a cache log, or a SQL cache URL. Read-only
    (``writing=False``) file caches are opened ``read_only``; a missing log
    or SQLite file is refused (`EffectsCommandError`), never created."""
    if _is_url(where):
        parsed = parse_storage_url(where)
        if parsed.kind == "sqlite" and parsed.path and not os.path.exists(parsed.path):
            raise EffectsCommandError(f"no SQLite database at {parsed.path}")
        return open_cache(where), parsed.shown
    path = Path(where[len("file://") :] if where.startswith("file://") else where)
    log = path / CACHE_FILE if path.is_dir() else path
    if path.is_dir() and not log.is_file():
        raise EffectsCommandError(
            f"no cache log in the directory {where} (looked for {log}); "
            "for a cache in a SQL database, give its URL"
        )
    if not log.is_file():
        raise EffectsCommandError(f"no cache log at {where}")
    return FileEvidenceOutcomeCache(log, read_only=not writing), str(log)


def _intent_methods(cache: Any, where: str) -> None:
    if not callable(getattr(cache, "in_doubt", None)):
        raise EffectsCommandError(f"{where} keeps no intents")


# -- rendering ------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Plain CBOR data as JSON: bytes become hex text."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def intent_json(intent: EffectIntent) -> dict[str, Any]:
    """One intent as a JSON object."""
    return {
        "evidence_id": intent.evidence_id,
        "interface_name": intent.interface_name,
        "operation_name": intent.operation_name,
        "operation_id": intent.operation_id,
        "attempt": intent.attempt,
        "request_digest": intent.request_digest,
        "created_unix_ms": intent.created_unix_ms,
    }


def outcome_json(outcome: EffectOutcome) -> dict[str, Any]:
    """An outcome as a JSON object."""
    failure = outcome.failure
    return {
        "status": outcome.status.value,
        "response": _jsonable(outcome.response),
        "failure": ({"kind": failure.kind.value, "message": failure.message} if failure else None),
    }


def _started(intent: EffectIntent) -> str:
    moment = datetime.fromtimestamp(intent.created_unix_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{intent.created_unix_ms % 1000:03d}Z"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows under headers, columns left-aligned to their widest cell."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]


def effects_text(where: str, intents: Sequence[EffectIntent], given: str | None = None) -> str:
    """The ``effects`` table of the cache `where` (`given`: as the user named it)."""
    if not intents:
        return f"no effects in doubt in {where}"
    count = f"{len(intents)} effect{'s' * (len(intents) != 1)} in doubt in {where}"
    rows = [
        [
            i.evidence_id,
            i.operation_id if i.operation_id is not None else "-",
            f"{i.interface_name}.{i.operation_name}",
            str(i.attempt),
            _started(i),
            i.request_digest[:16],
        ]
        for i in intents
    ]
    headers = ["evidence id", "operation", "effect", "attempt", "started (UTC)", "digest"]
    return "\n".join(
        [
            count,
            *table(headers, rows),
            "each may or may not have happened; once you know, record it with",
            f"  durability resolve {given or where} EVIDENCE_ID ({_RESOLVE_FORM})",
        ]
    )


def _emit(args: argparse.Namespace, document: dict[str, Any], text: str) -> None:
    write_stdout(json.dumps(document, indent=2) if getattr(args, "json", False) else text)


def _describe(outcome: EffectOutcome) -> str:
    if outcome.failure is not None:
        return f"failure {outcome.failure.kind.value}: {outcome.failure.message}"
    if outcome.is_blocked:
        return "not done"
    return f"success {json.dumps(_jsonable(outcome.response))}"


# -- the commands ---------------------------------------------------------------------


def cmd_effects(args: argparse.Namespace) -> int:
    """``durability effects DIR``: list the effects in doubt (read only)."""
    cache, where = open_effects_cache(args.dir, writing=False)
    try:
        _intent_methods(cache, where)
        intents = list(cache.in_doubt())
    finally:
        cache.close()
    document = {
        "cache": where,
        "count": len(intents),
        "in_doubt": [intent_json(i) for i in intents],
    }
    _emit(args, document, effects_text(where, intents, args.dir))
    return OK


def verdict_of(args: argparse.Namespace) -> EffectOutcome:
    """The outcome the operator's flags stand for (`EffectsCommandError` if unusable)."""
    if args.not_done:
        return EffectOutcome.blocked()
    if args.failure is not None:
        kind, message = args.failure
        try:
            failure_kind = EffectFailureKind(kind)
        except ValueError:
            kinds = ", ".join(k.value for k in EffectFailureKind)
            raise EffectsCommandError(f"unknown failure kind {kind!r}; one of: {kinds}") from None
        return failed(EffectFailure(kind=failure_kind, message=message))
    try:
        response = json.loads(args.success)
    except ValueError as exc:
        raise EffectsCommandError(f"--success takes a JSON response: {exc}") from None
    return EffectOutcome.success(response)


def cmd_resolve(args: argparse.Namespace) -> int:
    """``durability resolve DIR EVIDENCE_ID (...)``: record an operator's verdict."""
    verdict = verdict_of(args)
    cache, where = open_effects_cache(args.dir, writing=True)
    evidence_id = args.evidence_id
    try:
        _intent_methods(cache, where)
        bound = cache.get(evidence_id)
        already = bound is not None and bound.outcome.is_terminal
        before = cache.get_intent(evidence_id)
        outcome: EffectOutcome = cache.resolve(evidence_id, verdict)
    finally:
        cache.close()
    if already:
        changed, text = (
            False,
            f"`{evidence_id}` was already bound (unchanged): {_describe(outcome)}",
        )
    elif verdict.is_blocked:
        changed = before is not None and not before.withdrawn
        text = (
            f"withdrew attempt {before.attempt} of `{evidence_id}`: the next call runs it"
            if changed and before is not None
            else f"`{evidence_id}` had no open attempt (unchanged): the next call runs it"
        )
    else:
        changed = outcome == verdict
        text = f"bound `{evidence_id}`: {_describe(outcome)}"
        if not changed:
            text = f"`{evidence_id}` was bound meanwhile (unchanged): {_describe(outcome)}"
    document = {
        "cache": where,
        "evidence_id": evidence_id,
        "changed": changed,
        "outcome": outcome_json(outcome),
    }
    _emit(args, document, text)
    return OK


def add_commands(
    subparsers: argparse._SubParsersAction[Any], common: argparse.ArgumentParser
) -> None:
    """Add ``effects`` and ``resolve`` to the ``durability`` parser's
    `subparsers`; `common` is the parent parser holding ``--json``/``--quiet``."""
    where = "a state directory, a cache log, or a cache URL (sqlite:///..., postgresql://...)"
    effects = subparsers.add_parser(
        "effects", parents=[common], help="list the effects in doubt (intent, no outcome)"
    )
    effects.add_argument("dir", metavar="DIR", help=f"{where} (read, never modified)")
    effects.set_defaults(run=cmd_effects)

    resolve = subparsers.add_parser(
        "resolve", parents=[common], help="record whether an effect in doubt happened"
    )
    resolve.add_argument("dir", metavar="DIR", help=where)
    resolve.add_argument("evidence_id", metavar="EVIDENCE_ID", help="the effect's evidence id")
    verdict = resolve.add_mutually_exclusive_group(required=True)
    verdict.add_argument(
        "--success", metavar="JSON", help="it happened: bind a success with this JSON response"
    )
    verdict.add_argument(
        "--failure",
        nargs=2,
        metavar=("KIND", "MESSAGE"),
        help="it happened and failed: bind a failure (KIND: unavailable, denied, ...)",
    )
    verdict.add_argument(
        "--not-done", action="store_true", help="it did not happen: the next call runs it"
    )
    resolve.set_defaults(run=cmd_resolve)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``effects`` or ``resolve`` alone (what ``durability`` does with
    them): errors are one line on stderr, exit 1 for damage, else 2."""
    parser = argparse.ArgumentParser(prog="durability", exit_on_error=False)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true")
    common.add_argument("--quiet", action="store_true")
    add_commands(parser.add_subparsers(dest="command", required=True), common)
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        code: int = args.run(args)
        return code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else USAGE
    except (argparse.ArgumentError, DurabilityError) as exc:
        print(f"durability: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return FAILED if isinstance(exc, DecodeError) else USAGE
