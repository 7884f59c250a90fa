"""The demo: a simulated agreement protocol, killed mid-run, then recovered.

A worker process (`durability.demo_worker`) drives dozens of operations
through the handlers of a state directory. From a chosen tick on it leaves one
agreed side effect in flight (its intent durable, its write in the key-value
store, its acknowledgement never coming) and slows its disk, and the parent
sends SIGKILL while a WAL record is half written. The parent then reopens the
directory (the torn tail is cut away), plans recovery from the latest
checkpoint, and finds the interrupted effect **in doubt**. It settles it as
an operator would: it looks for the effect's write in the store and records
the verdict with the cache's ``resolve`` (the same as ``durability resolve``).
It plans again, checks every decision against the soundness predicate, and
replays the cached side effects to show none is performed twice.

With a SQL store (``store="sqlite:///..."`` or ``"postgresql://..."``) the WAL
and the cache live in that database and checkpoints stay in the directory.
A SQL append is one transaction, so there is no torn write to cut: from the
chosen tick on, the worker holds each WAL transaction open after writing its
rows, before COMMIT, and the SIGKILL lands there; the database rolls it back,
and the parent shows the WAL ending where the last commit left it.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import attrs

from .backends.sql import SqlBackend, redact
from .demo_worker import (
    FLIGHT_MARK,
    OPEN_MARK,
    STORE_ENV,
    TORN_MARK,
    Storage,
    resolve_evidence,
    stored_write,
    write_request,
)
from .effects import EffectOutcome
from .errors import DurabilityError
from .planner import DurableRecoveryPlan, is_sound
from .store import StateDirectory

__all__ = ["DemoResult", "SettledEffect", "run_demo"]


@attrs.frozen(kw_only=True)
class SettledEffect:
    """How the demo settled one effect it found in doubt, as an operator
    would: `evidence_id` and its intent's `operation_id` and `attempt`;
    `stored_write`, what the key-value store holds for it (``None``: not
    there); the `verdict` (``"success"``: it happened, its outcome is bound;
    ``"not_done"``: withdrawn, the next call runs it) and the `command` an
    operator would type for it."""

    evidence_id: str
    operation_id: str | None
    attempt: int
    stored_write: dict[str, Any] | None
    verdict: str
    command: str


@attrs.frozen(kw_only=True)
class DemoResult:
    """What the demo did and found. With a SQL store, `store` is its URL (no
    password), `torn_write` is ``None``, `open_transaction` is what the kill
    interrupted (``what``, and ``last_sequence``: the uncommitted one) and
    `last_sequence` where the WAL ends after recovery. `effect_in_flight` is
    the effect the kill interrupted (``evidence_id``, ``tick``);
    `plan_in_doubt` the plan as first made (its effects in doubt), `settled`
    what was done about them, and `plan` the plan after that."""

    directory: str
    worker_pid: int
    killed: bool
    last_tick: int
    torn_write: dict[str, int] | None
    repairs: dict[str, Any]
    plan: DurableRecoveryPlan
    all_sound: bool
    replayed_effects: int
    inner_calls_on_replay: int
    store: str | None = None
    open_transaction: dict[str, Any] | None = None
    last_sequence: int | None = None
    effect_in_flight: dict[str, Any] | None = None
    plan_in_doubt: DurableRecoveryPlan | None = None
    settled: tuple[SettledEffect, ...] = ()


def _shell_word(text: str) -> str:
    """`text` as one shell word: bare when it is safe so (a ``#`` inside a
    word starts no comment), else single-quoted (``shlex.quote``)."""
    bare = all(c.isalnum() or c in "/._-:#@+=," for c in text) and not text.startswith("#")
    return text if text and bare else shlex.quote(text)


def settle_in_doubt(
    state: StateDirectory, directory: str, target: str
) -> tuple[SettledEffect, ...]:
    """Settle every effect in doubt in `state`'s cache as an operator would:
    an effect whose write the store holds happened (its outcome is bound);
    one it lacks did not (withdrawn: the next call runs it). `target` is what
    an operator names in ``durability resolve TARGET ID ...``."""
    settled = []
    for intent in state.cache.in_doubt():
        write = stored_write(directory, intent.evidence_id)
        command = f"durability resolve {_shell_word(target)} {_shell_word(intent.evidence_id)} "
        if write is not None:
            response = {"written": write.get("key"), "tick": write.get("tick")}
            state.cache.resolve(intent.evidence_id, EffectOutcome.success(response))
            command += f"--success {_shell_word(json.dumps(response, separators=(',', ':')))}"
        else:
            state.cache.resolve(intent.evidence_id, EffectOutcome.blocked())
            command += "--not-done"
        settled.append(
            SettledEffect(
                evidence_id=intent.evidence_id,
                operation_id=intent.operation_id,
                attempt=intent.attempt,
                stored_write=write,
                verdict="success" if write is not None else "not_done",
                command=command,
            )
        )
    return tuple(settled)


def run_demo(
    directory: str,
    *,
    operations: int = 48,
    seed: int = 7,
    tear_at_tick: int | None = None,
    progress: Callable[[str], None] = lambda line: None,
    store: str | None = None,
) -> DemoResult:
    """Run the worker in a child process, SIGKILL it inside a write, recover,
    settle the effect it left in doubt. `store` puts the WAL and the cache
    in that SQL database (module docs)."""
    rng = random.Random(seed)
    total_ticks = operations * 4
    tear = (
        tear_at_tick
        if tear_at_tick is not None
        else rng.randint(total_ticks // 2, total_ticks * 3 // 4)
    )
    command = [sys.executable, "-m", "durability.demo_worker", directory]
    command += [str(operations), str(seed), str(tear)]
    environment = {k: v for k, v in os.environ.items() if k != STORE_ENV}
    if store:
        environment[STORE_ENV] = store
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=environment)
    assert child.stdout is not None
    last_tick, torn, killed, held, flight = 0, None, False, None, None
    for line in child.stdout:
        if line.startswith(FLIGHT_MARK):
            _, evidence_id, tick = line.split()
            flight = {"evidence_id": evidence_id, "tick": int(tick)}
            progress(f"worker {child.pid}: effect {evidence_id} in flight (tick {tick})")
        if line.startswith(OPEN_MARK):
            _, sequence, what = line.rstrip("\n").split(" ", 2)
            held = {"what": what, "last_sequence": int(sequence)}
            os.kill(child.pid, signal.SIGKILL)
            killed = True
            progress(
                f"SIGKILL sent to worker {child.pid} at tick {last_tick + 1}, inside an open "
                f"transaction ({what}) before its COMMIT"
            )
            break
        if line.startswith(TORN_MARK):
            _, offset, written, size = line.split()
            torn = {"offset": int(offset), "written": int(written), "size": int(size)}
            os.kill(child.pid, signal.SIGKILL)
            killed = True
            progress(
                f"SIGKILL sent to worker {child.pid} at tick {last_tick + 1}, "
                f"{written} of {size} bytes of a WAL record written at offset {offset}"
            )
            break
        if line.startswith("tick "):
            last_tick = int(line.split()[1])
            if last_tick % 40 == 0:
                progress(f"worker {child.pid}: tick {last_tick}")
    child.stdout.close()
    child.wait()
    if child.returncode not in (0, -signal.SIGKILL):
        raise DurabilityError(f"demo worker exited with status {child.returncode}")
    with StateDirectory(directory, wal=store, cache=store) as state:
        repairs = {
            name: (attrs.asdict(tail) if tail is not None else None)
            for name, tail in state.repairs.items()
        }
        last_sequence = state.wal.last_sequence if isinstance(state.wal, SqlBackend) else None
        first_plan = state.plan_recovery()
        settled = settle_in_doubt(state, directory, redact(store) if store else directory)
        plan = state.plan_recovery() if settled else first_plan
        storage = Storage()
        handler = state.wrap(storage, resolve_evidence)
        replayed = 0
        for decision in plan.decisions:
            if f"{decision.operation_id}/certificate" in decision.cached_evidence_ids:
                handler.handle_effect(
                    write_request(decision.operation_id, plan.metadata.checkpoint_tick)
                )
                replayed += 1
    return DemoResult(
        directory=directory,
        worker_pid=child.pid,
        killed=killed,
        last_tick=last_tick,
        torn_write=torn,
        repairs=repairs,
        plan=plan,
        all_sound=all(is_sound(d) for d in plan.decisions),
        replayed_effects=replayed,
        inner_calls_on_replay=storage.calls,
        store=redact(store) if store else None,
        open_transaction=held,
        last_sequence=last_sequence,
        effect_in_flight=flight,
        plan_in_doubt=first_plan if settled else None,
        settled=settled,
    )
