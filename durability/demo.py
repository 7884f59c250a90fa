"""The demo: a simulated agreement protocol, killed mid-run, then recovered.

A worker process drives dozens of operations through the handlers of a state
directory: each operation gathers evidence (provisional, then soft-safe),
performs one agreed side effect (cached by evidence id), asks its visibility
gates to cross with ``wal_sync`` (one of them too early, so it is blocked), and
ends finalized or in a terminal failure; checkpoints are taken as it goes.

At a chosen tick the worker's disk is slowed (each WAL record is written in two
halves with a pause between), and the parent sends SIGKILL while a record is
half written. The parent then reopens the directory (the torn tail is cut
away), plans recovery from the latest checkpoint, checks every decision against
the soundness predicate, and replays the cached side effects to show none is
performed twice.

With a SQL store (``store="sqlite:///..."`` or ``"postgresql://..."``) the WAL
and the cache live in that database and checkpoints stay in the directory.
A SQL append is one transaction, so there is no torn write to cut: from the
chosen tick on, the worker holds each WAL transaction open after writing its
rows, before COMMIT, and the SIGKILL lands there; the database rolls it back,
and the parent shows the WAL ending where the last commit left it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from .artifact import WalSyncRequest
from .backends.sql import WAL_HEADS, Cursor, SqlBackend, redact
from .codec import dumps
from .effects import EffectOutcome, EffectRequest
from .errors import DurabilityError
from .evidence import EvidencePersistenceHandler
from .fileio import FileSystem
from .model import (
    AgreementEvidence,
    AgreementEvidenceKind,
    AgreementLevel,
    AgreementState,
    FinalizationOutcome,
)
from .planner import DurableRecoveryPlan, is_sound
from .store import WAL_FILE, StateDirectory

__all__ = ["DemoResult", "run_demo"]

L = AgreementLevel
TORN_MARK = "TORN-WRITE"
OPEN_MARK = "OPEN-TRANSACTION"
#: How the worker learns its store (not on its command line: a URL may hold a password).
STORE_ENV = "DURABILITY_DEMO_STORE"
_STEPS = ("provisional", "soft_safe", "effect", "early_gate", "finalize")


class SlowDisk(FileSystem):
    """Writes every WAL record in two halves with a pause between, once armed,
    announcing the half-written record on stdout (so the kill lands inside it)."""

    def __init__(self, wal_path: str) -> None:
        self.wal_path = wal_path
        self.armed = False

    def write_at(self, fd: int, data: bytes, offset: int, path: str) -> None:
        if not self.armed or path != self.wal_path or len(data) < 2:
            super().write_at(fd, data, offset, path)
            return
        half = len(data) // 2
        super().write_at(fd, data[:half], offset, path)
        print(f"{TORN_MARK} {offset} {half} {len(data)}", flush=True)
        time.sleep(30)  # the parent kills the worker here
        super().write_at(fd, data[half:], offset + half, path)


class Storage:
    """The demo's side effect: a key-value write that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        self.calls += 1
        body = request.body if isinstance(request.body, dict) else {}
        return EffectOutcome.success({"written": body.get("key"), "tick": request.tick})


def resolve_evidence(request: EffectRequest) -> str | None:
    """The evidence id an effect request is bound to (from its body)."""
    body = request.body
    if isinstance(body, dict) and isinstance(body.get("evidence_id"), str):
        return str(body["evidence_id"])
    return None


def write_request(op: str, tick: int) -> EffectRequest:
    """The one agreed side effect of operation `op`, bound to its soft-safe
    certificate: once agreed, it must never be performed twice."""
    return EffectRequest(
        interface_name="Storage",
        operation_name="write",
        tick=tick,
        operation_id=op,
        body={"evidence_id": f"{op}/certificate", "key": op},
    )


def _evidence(
    op: str, name: str, level: AgreementLevel, kind: AgreementEvidenceKind
) -> AgreementEvidence:
    return AgreementEvidence(
        evidence_id=f"{op}/{name}",
        operation_id=op,
        level=level,
        kind=kind,
        reference=f"demo://{op}/{name}",
        authoritative=True,
    )


class _Operation:
    def __init__(self, op: str, outcome: FinalizationOutcome, early_gate: bool) -> None:
        self.op = op
        self.outcome = outcome
        self.early_gate = early_gate
        self.step = 0
        self.evidence: list[AgreementEvidence] = []

    def state(
        self, level: AgreementLevel, finalization: FinalizationOutcome | None = None
    ) -> AgreementState:
        return AgreementState(
            operation_id=self.op,
            contract_name="demo.commit",
            level=level,
            finalization=finalization,
            evidence_ids=[e.evidence_id for e in self.evidence],
        )

    def advance(self, handler: EvidencePersistenceHandler, tick: int) -> str:
        """Run this operation's next step; return what happened."""
        step = _STEPS[self.step]
        self.step += 1
        if step == "effect":
            outcome = handler.handle_effect(write_request(self.op, tick))
            return f"effect {outcome.status.value}"
        if step == "early_gate" and not self.early_gate:
            return self.advance(handler, tick)
        if step == "provisional":
            self.evidence.append(
                _evidence(self.op, "witness", L.PROVISIONAL, AgreementEvidenceKind.WITNESS)
            )
            state, gate = self.state(L.PROVISIONAL), L.PROVISIONAL
        elif step == "soft_safe":
            self.evidence.append(
                _evidence(self.op, "certificate", L.SOFT_SAFE, AgreementEvidenceKind.CERTIFICATE)
            )
            state, gate = self.state(L.SOFT_SAFE), L.SOFT_SAFE
        elif step == "early_gate":
            state, gate = self.state(L.SOFT_SAFE), L.FINALIZED
        elif self.outcome is FinalizationOutcome.FINALIZED:
            self.evidence.append(
                _evidence(self.op, "proof", L.FINALIZED, AgreementEvidenceKind.MATERIALIZATION)
            )
            state, gate = self.state(L.FINALIZED, self.outcome), L.FINALIZED
        else:
            state, gate = self.state(L.SOFT_SAFE, self.outcome), L.PROVISIONAL
        sync = WalSyncRequest(
            operation_id=self.op,
            downstream_coroutine_id=f"{self.op}/{step}",
            gate_level=gate,
            agreement_state=state,
            agreement_evidence=self.evidence,
            tick=tick,
        )
        result: EffectOutcome = handler.wal_sync(sync)
        return f"{step} gate {gate.value} {result.status.value}"

    @property
    def done(self) -> bool:
        return self.step >= len(_STEPS)


class HeldTransaction:
    """For a SQL store: once armed, holds every WAL write transaction open
    after its rows are written, before COMMIT, announcing it on stdout with
    the uncommitted last sequence (so the kill lands inside it)."""

    def __init__(self, wal: SqlBackend) -> None:
        self.armed = False
        self.name = wal.name
        wal._db.before_commit = self.hold

    def hold(self, what: str, cursor: Cursor) -> None:
        if not self.armed:
            return
        rows = cursor.fetch(f"SELECT last_sequence FROM {WAL_HEADS} WHERE wal = ?", (self.name,))
        print(f"{OPEN_MARK} {rows[0][0]} {what}", flush=True)
        time.sleep(30)  # the parent kills the worker here


def _open_worker_store(directory: str, store: str | None) -> tuple[StateDirectory, Any]:
    """The worker's state directory and what arms the kill point in it."""
    if store is None:
        disk = SlowDisk(str(Path(directory) / WAL_FILE))
        return StateDirectory(directory, fs=disk), disk
    opened = StateDirectory(directory, wal=store, cache=store)
    assert isinstance(opened.wal, SqlBackend)
    return opened, HeldTransaction(opened.wal)


def run_worker(
    directory: str, operations: int, seed: int, tear_at_tick: int, store: str | None = None
) -> None:
    """The worker process: drive `operations` operations until done (or killed)."""
    rng = random.Random(seed)
    state, trap = _open_worker_store(directory, store)
    handler = state.wrap(Storage(), resolve_evidence)
    outcomes = [FinalizationOutcome.FINALIZED] * 7 + [
        FinalizationOutcome.ABORTED,
        FinalizationOutcome.REJECTED,
        FinalizationOutcome.TIMED_OUT,
    ]
    pending = [
        _Operation(f"op#{n:03d}", rng.choice(outcomes), early_gate=n % 5 == 0)
        for n in range(1, operations + 1)
    ]
    active: list[_Operation] = []
    tick = 0
    while pending or active:
        while pending and len(active) < 6:
            active.append(pending.pop(0))
        tick += 1
        trap.armed = tick >= tear_at_tick
        op = rng.choice(active)
        what = op.advance(handler, tick)
        print(f"tick {tick} {op.op} {what}", flush=True)
        if op.done:
            active.remove(op)
        if tick % 25 == 0:
            state.checkpoint(tick, dumps({"tick": tick, "active": [a.op for a in active]}))
    state.close()


@attrs.frozen(kw_only=True)
class DemoResult:
    """What the demo did and found. With a SQL store, `store` is its URL (no
    password), `torn_write` is ``None``, `open_transaction` is what the kill
    interrupted (``what``, and ``last_sequence``: the uncommitted one) and
    `last_sequence` where the WAL ends after recovery."""

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


def run_demo(
    directory: str,
    *,
    operations: int = 48,
    seed: int = 7,
    tear_at_tick: int | None = None,
    progress: Callable[[str], None] = lambda line: None,
    store: str | None = None,
) -> DemoResult:
    """Run the worker in a child process, SIGKILL it inside a write, recover.
    `store` puts the WAL and the cache in that SQL database (module docs)."""
    rng = random.Random(seed)
    total_ticks = operations * 4
    tear = (
        tear_at_tick
        if tear_at_tick is not None
        else rng.randint(total_ticks // 2, total_ticks * 3 // 4)
    )
    command = [
        sys.executable,
        "-m",
        "durability.demo",
        directory,
        str(operations),
        str(seed),
        str(tear),
    ]
    environment = {k: v for k, v in os.environ.items() if k != STORE_ENV}
    if store:
        environment[STORE_ENV] = store
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=environment)
    assert child.stdout is not None
    last_tick, torn, killed, held = 0, None, False, None
    for line in child.stdout:
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
        plan = state.plan_recovery()
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
    )


def _main(argv: list[str]) -> None:
    directory, operations, seed, tear = argv
    store = os.environ.get(STORE_ENV) or None
    run_worker(directory, int(operations), int(seed), int(tear), store)


if __name__ == "__main__":
    _main(sys.argv[1:])
