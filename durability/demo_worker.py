"""The demo's worker process (``python -m durability.demo_worker``; the parent,
which kills it and recovers, is `durability.demo`).

The worker drives dozens of operations through the handlers of a state
directory: each operation gathers evidence (provisional, then soft-safe),
performs one agreed side effect (cached by evidence id, written to a
key-value store: a JSON-lines file beside the state, `SINK_FILE`), asks its
visibility gates to cross with ``wal_sync`` (one of them too early, so it is
blocked), and ends finalized or in a terminal failure; checkpoints are taken
as it goes.

From the kill tick on, one effect is left **in flight** on a thread of its
own: its intent is durable, its write reaches the store, and the
acknowledgement never comes (it waits). Then the kill point is armed: with
the file store, each WAL record is written in two halves with a pause
between, and the parent sends SIGKILL while a record is half written; with a
SQL store, each WAL transaction is held open after its rows are written,
before COMMIT, and the SIGKILL lands there. Each is announced on stdout.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .artifact import WalSyncRequest
from .backends.sql import WAL_HEADS, Cursor, SqlBackend
from .codec import dumps
from .effects import EffectOutcome, EffectRequest
from .evidence import EvidencePersistenceHandler
from .fileio import FileSystem
from .model import (
    AgreementEvidence,
    AgreementEvidenceKind,
    AgreementLevel,
    AgreementState,
    FinalizationOutcome,
)
from .store import WAL_FILE, StateDirectory

__all__ = [
    "FLIGHT_MARK",
    "OPEN_MARK",
    "SINK_FILE",
    "STORE_ENV",
    "TORN_MARK",
    "Storage",
    "resolve_evidence",
    "run_worker",
    "stored_write",
    "write_request",
]

L = AgreementLevel
TORN_MARK = "TORN-WRITE"
OPEN_MARK = "OPEN-TRANSACTION"
FLIGHT_MARK = "EFFECT-IN-FLIGHT"
#: The key-value store the demo's effects write to, in the demo directory.
SINK_FILE = "storage.jsonl"
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
    """The demo's side effect: a key-value write that counts its calls. With
    a `sink`, each write is appended (and fsynced) to that JSON-lines file,
    the store an operator looks in; a write whose evidence id is `stall`
    reaches the store, then its acknowledgement never comes."""

    def __init__(self, sink: Path | None = None) -> None:
        self.calls = 0
        self.sink = sink
        self.stall: str | None = None
        self.stalled = threading.Event()

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        self.calls += 1
        body = request.body if isinstance(request.body, dict) else {}
        if self.sink is not None:
            line = {"evidence_id": body.get("evidence_id"), "key": body.get("key")}
            with open(self.sink, "a", encoding="utf-8") as sink:
                sink.write(json.dumps({**line, "tick": request.tick}) + "\n")
                sink.flush()
                os.fsync(sink.fileno())
            if body.get("evidence_id") == self.stall:
                self.stalled.set()
                time.sleep(30)  # the acknowledgement never comes: the kill lands first
        return EffectOutcome.success({"written": body.get("key"), "tick": request.tick})


def stored_write(directory: str, evidence_id: str) -> dict[str, Any] | None:
    """The write the demo's store holds for `evidence_id` (``{"evidence_id",
    "key", "tick"}``), or ``None``: what an operator looks for."""
    try:
        lines = (Path(directory) / SINK_FILE).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        try:
            write = json.loads(line)
        except ValueError:  # a line the kill cut short: not written
            continue
        if isinstance(write, dict) and write.get("evidence_id") == evidence_id:
            return write
    return None


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

    @property
    def effect_next(self) -> bool:
        return not self.done and _STEPS[self.step] == "effect"


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


def _effect_in_flight(
    handler: EvidencePersistenceHandler, storage: Storage, op: _Operation, tick: int
) -> None:
    """Start `op`'s effect on a thread of its own and return once its write
    reached the store (its intent was durable before that), announcing it."""
    request = write_request(op.op, tick)
    storage.stall = resolve_evidence(request)
    op.step += 1
    threading.Thread(target=handler.handle_effect, args=(request,), daemon=True).start()
    if not storage.stalled.wait(timeout=30):
        raise RuntimeError(f"the effect of {op.op} did not start")
    print(f"{FLIGHT_MARK} {storage.stall} {tick}", flush=True)


def run_worker(
    directory: str, operations: int, seed: int, tear_at_tick: int, store: str | None = None
) -> None:
    """The worker process: drive `operations` operations until done (or
    killed); from `tear_at_tick` on, leave one effect in flight, then arm the kill point."""
    rng = random.Random(seed)
    state, trap = _open_worker_store(directory, store)
    storage = Storage(Path(directory) / SINK_FILE)
    handler = state.wrap(storage, resolve_evidence)
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
        if tick >= tear_at_tick and not trap.armed:
            ready = [a for a in active if a.effect_next]
            if ready:  # one effect in flight, then the kill point
                _effect_in_flight(handler, storage, ready[0], tick)
                active.remove(ready[0])
                trap.armed = True
                print(f"tick {tick} {ready[0].op} effect in flight", flush=True)
                continue
            trap.armed = not pending and not any(a.step < _STEPS.index("effect") for a in active)
        op = rng.choice(active)
        what = op.advance(handler, tick)
        print(f"tick {tick} {op.op} {what}", flush=True)
        if op.done:
            active.remove(op)
        if tick % 25 == 0:
            state.checkpoint(tick, dumps({"tick": tick, "active": [a.op for a in active]}))
    state.close()


def _main(argv: list[str]) -> None:
    directory, operations, seed, tear = argv
    store = os.environ.get(STORE_ENV) or None
    run_worker(directory, int(operations), int(seed), int(tear), store)


if __name__ == "__main__":
    _main(sys.argv[1:])
