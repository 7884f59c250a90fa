"""Text and JSON renderings of the commands that act rather than read: the
demo and ``migrate`` (``render.py`` renders what is read).

Pure, as ``render.py`` is: values in, ``str`` or JSON-ready data out.
"""

from __future__ import annotations

from typing import Any

from .demo import DemoResult, SettledEffect
from .migrate import MigrationReport
from .render import plan_json, plan_text, tail_json, tail_line

__all__ = ["demo_json", "demo_text", "migration_json", "migration_text"]


# -- the demo -------------------------------------------------------------------


def demo_json(result: DemoResult) -> dict[str, Any]:
    """``demo --json``: the store, the worker (the torn write, or with a SQL
    store the open transaction the kill interrupted), the torn-tail repairs,
    the effects found in doubt and how they were settled, the plan (after
    settling), soundness and the replay through the evidence cache."""
    return {
        "directory": result.directory,
        "store": result.store,
        "worker": {
            "pid": result.worker_pid,
            "killed": result.killed,
            "signal": "SIGKILL" if result.killed else None,
            "last_completed_tick": result.last_tick,
            "torn_write": result.torn_write,
            "open_transaction": result.open_transaction,
        },
        "repairs": result.repairs,
        "last_sequence": result.last_sequence,
        "effects_in_doubt": {
            "in_flight_when_killed": result.effect_in_flight,
            "plan_before_settling": (
                plan_json(result.plan_in_doubt) if result.plan_in_doubt is not None else None
            ),
            "settled": [_settled_json(item) for item in result.settled],
        },
        "plan": plan_json(result.plan),
        "all_decisions_sound": result.all_sound,
        "replay": {
            "cached_effects_replayed": result.replayed_effects,
            "inner_handler_calls": result.inner_calls_on_replay,
        },
    }


def _settled_json(item: SettledEffect) -> dict[str, Any]:
    return {
        "evidence_id": item.evidence_id,
        "operation_id": item.operation_id,
        "attempt": item.attempt,
        "stored_write": item.stored_write,
        "verdict": item.verdict,
        "command": item.command,
    }


def _settling_story(result: DemoResult) -> list[str]:
    """The effects found in doubt, how each was settled, and the plan after."""
    if not result.settled or result.plan_in_doubt is None:
        return ["recovery plan from the latest checkpoint:", plan_text(result.plan)]
    flight = result.effect_in_flight
    lines = [
        "recovery plan from the latest checkpoint:",
        plan_text(result.plan_in_doubt),
        "",
    ]
    for item in result.settled:
        interrupted = flight is not None and flight["evidence_id"] == item.evidence_id
        lines += [
            f"effect in doubt: {item.evidence_id} (attempt {item.attempt} of operation "
            f"{item.operation_id}: its intent is durable, no outcome is bound)",
            f"  {'the kill interrupted it' if result.killed else 'the worker exited while it was'}"
            " in flight: its write had reached the store, its acknowledgement had not come back"
            if interrupted
            else "  its attempt started and recorded no outcome",
            f"  the operator looks in the store for {item.evidence_id}: "
            + (
                f"written at tick {item.stored_write.get('tick')}, so it happened"
                if item.stored_write is not None
                else "not there, so it did not happen"
            ),
            f"  and settles it: {item.command}",
        ]
    return [*lines, "", "recovery plan after settling:", plan_text(result.plan)]


def _file_story(result: DemoResult) -> list[str]:
    torn = result.torn_write
    repairs = [
        f"  {name}: cut {tail['dropped']} bytes at offset {tail['offset']} ({tail['reason']})"
        if tail
        else f"  {name}: clean, nothing cut"
        for name, tail in result.repairs.items()
    ]
    return [
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
        *repairs,
    ]


def _sql_story(result: DemoResult) -> list[str]:
    held = result.open_transaction
    last = result.last_sequence
    if held:
        uncommitted = held["last_sequence"]
        rows = (
            f"sequences {last + 1}..{uncommitted} written, not committed"
            if last is not None and uncommitted > last
            else "no new rows"
        )
        kill = (
            f"killed with SIGKILL during tick {result.last_tick + 1}, inside an open "
            f"transaction ({held['what']}; {rows})"
        )
    else:
        kill = "finished before the kill point"
    verdict = "the database rolled the open transaction back" if held else "all committed"
    return [
        f"WAL and evidence cache in {result.store}; checkpoints in {result.directory}",
        f"worker {result.worker_pid} {kill}",
        "(from the kill tick on, the worker held each WAL transaction open before its COMMIT,"
        " so the kill lands inside one)",
        "",
        "the file demo's torn-write trick does not apply to a SQL store: each append is one"
        " transaction, committed whole or not at all, so there is no torn tail to cut",
        f"reopening the store: the WAL ends at sequence {last} ({verdict})",
    ]


def demo_text(result: DemoResult) -> str:
    """``demo``: what the kill hit, what reopening cut (a SQL store: what it
    rolled back), the plan and the effect it shows in doubt, how that was
    settled, the plan after, soundness and the replay, as a short story."""
    story = _sql_story(result) if result.store else _file_story(result)
    kept = f" (WAL and cache in {result.store})" if result.store else ""
    return "\n".join(
        [
            *story,
            "",
            *_settling_story(result),
            "",
            f"soundness predicate holds for every decision: {'yes' if result.all_sound else 'NO'}",
            f"replayed {result.replayed_effects} agreed side effects through the evidence cache: "
            f"the live handler ran {result.inner_calls_on_replay} times",
            f"state directory kept at {result.directory}{kept}",
        ]
    )


# -- migrate ------------------------------------------------------------------------


def migration_json(report: MigrationReport) -> dict[str, Any]:
    """``migrate --json``: both ends, the counts, and what reading the copy
    back found (``verified``, ``problems``)."""
    return {
        "ok": report.ok,
        "source": report.source,
        "destination": report.destination,
        "kind": report.kind,
        "name": report.name,
        "source_entries": report.source_entries,
        "copied": report.copied,
        "destination_before": report.destination_before,
        "destination_entries": report.destination_entries,
        "verified": report.ok,
        "problems": list(report.problems),
        "torn_tail_left_out": tail_json(report.torn_tail_left_out),
    }


def migration_text(report: MigrationReport) -> str:
    """``migrate``: what was copied where, and the verdict of reading it back."""
    what = "WAL" if report.kind == "wal" else "cache"
    unit = "entries" if report.kind == "wal" else "bindings"
    named = f" `{report.name}`" if report.name else ""
    after = f" after its {report.destination_before}" if report.destination_before else ""
    lines = [
        f"copied {report.copied} {unit} of {what}{named} from {report.source} "
        f"to {report.destination}{after}",
    ]
    if report.torn_tail_left_out is not None:
        lines.append(f"source {tail_line(report.torn_tail_left_out)}: left out of the copy")
    verdict = (
        f"verified: read back {report.destination_entries} {unit}, equal to the source"
        if report.ok
        else f"verification FAILED: read back {report.destination_entries} {unit}"
    )
    lines.append(verdict)
    lines += [f"problem: {problem}" for problem in report.problems]
    return "\n".join(lines)
