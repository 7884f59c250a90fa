"""The writer processes of a failover trial, and the parent's side of them.

A writer runs one operation after another through `open_wal` and
`open_cache` of a multi-host URL, as an application would, and tells the
parent over a pipe about each write that *returned* (the acknowledged ones)
and each one that failed. Operation ``k`` of writer ``w`` (``w3/op7``):

1. its effect, through `EvidencePersistenceHandler`: the effect runs (the
   writer reports the run) and its outcome is bound to the evidence id
   ``w3/op7/cert``; a cache failure is an ``UNAVAILABLE`` answer and the
   writer asks again (the handler answers from the cache when the binding had
   committed, else runs the effect again). With a *sink* (a file: the writer
   is then an at-most-once writer), the handler keeps `AT_MOST_ONCE`
   semantics and each run of the effect appends (and fsyncs) one line to the
   sink, ``{"evidence_id", "run"}``, then waits `EFFECT_SECONDS` for its
   acknowledgement, as a remote call would; when the handler answers that the
   effect is in doubt, the writer leaves it to an operator and goes on with
   its next operation (steps 2 and 3 are skipped);
2. an `EvidenceProduced` appended with `wal.append`; when that raises
   `StorageError` the writer finishes it with `append_once` (the README's
   recipe), which writes it at most once;
3. ``wal_sync`` through `AgreementWalHandler` (the escalation and the gate in
   one transaction); an ``UNAVAILABLE`` answer is re-run until it succeeds.

Messages (tuples): ``("ran", w, k, run)``, ``("bound", w, k, run)``,
``("in doubt", w, k, message)``,
``("appended", w, k, sequence, had_committed)``, ``("synced", w, k)``,
``("error", w, k, step, outcome_unknown, message)``, ``("rolled back", w,
message)`` (the handle saw the WAL lose entries it had read: only without
synchronous replication), ``("done", w)``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from durability import (
    AgreementEvidence,
    AgreementEvidenceKind,
    AgreementLevel,
    AgreementState,
    AgreementWalHandler,
    DecodeError,
    EffectOutcome,
    EffectRequest,
    EffectSemantics,
    Escalation,
    EvidencePersistenceHandler,
    EvidenceProduced,
    SequenceConflictError,
    StorageError,
    VisibilityGateCrossing,
    WalSyncRequest,
    current_idempotency_key,
    open_cache,
    open_wal,
)

LIFETIME = 120.0  # seconds: a writer left behind stops by itself
UNKNOWN = "the outcome is unknown"
ROLLED_BACK = "rolled back"  # in the DecodeError of a handle whose WAL lost entries
IN_DOUBT = "is in doubt (attempt"  # the at-most-once answer for an effect in doubt
EFFECT_SECONDS = 0.2  # an at-most-once writer's effect waits this long for its acknowledgement


def append_once(wal, entry, before):
    """Finish an append that raised StorageError, writing `entry` at most once.
    `before`: a sequence read before the first try (what the writer's previous
    append returned). Returns (sequence, whether the first try had committed)."""
    while True:
        try:
            return wal.append(entry, expected_sequence=before), False
        except SequenceConflictError as conflict:  # appended since `before`: by whom?
            for sequence, seen in wal.poll(before, conflict.actual - before):
                if seen == entry:
                    return sequence, True  # mine: the first try had committed
            before = conflict.actual  # others': try again after theirs
        except StorageError:  # no primary yet, or lost again: the next call reconnects
            time.sleep(0.1)


def operation(writer: str, k: int) -> str:
    return f"{writer}/op{k}"


def evidence_of(op: str) -> AgreementEvidence:
    return AgreementEvidence(
        evidence_id=f"{op}/cert",
        operation_id=op,
        level=AgreementLevel.SOFT_SAFE,
        kind=AgreementEvidenceKind.CERTIFICATE,
        reference=f"ref://{op}",
        authoritative=True,
    )


def appended_entry(op: str, k: int) -> EvidenceProduced:
    """What step 2 of operation `k` appends."""
    return EvidenceProduced(evidence=evidence_of(op), tick=k)


def synced_entries(op: str, k: int) -> list[Escalation | VisibilityGateCrossing]:
    """What step 3 (``wal_sync``) of operation `k` appends."""
    level = AgreementLevel.SOFT_SAFE
    return [
        Escalation(
            operation_id=op,
            previous_level=AgreementLevel.NONE,
            new_level=level,
            evidence_id=f"{op}/cert",
            tick=k,
        ),
        VisibilityGateCrossing(
            operation_id=op, downstream_coroutine_id="out", gate_level=level, tick=k
        ),
    ]


def sync_request(op: str, k: int) -> WalSyncRequest:
    state = AgreementState(
        operation_id=op,
        contract_name="failover",
        level=AgreementLevel.SOFT_SAFE,
        evidence_ids=(f"{op}/cert",),
    )
    return WalSyncRequest(
        operation_id=op,
        downstream_coroutine_id="out",
        gate_level=AgreementLevel.SOFT_SAFE,
        agreement_state=state,
        agreement_evidence=(evidence_of(op),),
        tick=k,
    )


class Channel(Protocol):
    """Where a writer's messages go, and whether it was asked to stop."""

    def send(self, message: tuple[Any, ...]) -> None: ...

    def poll(self) -> bool: ...


class _Nothing:
    """The handler `AgreementWalHandler` wraps (only its ``wal_sync`` is used)."""

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        return EffectOutcome.success()


class _Effect:
    """The effect: each run is reported before it answers (it took place).
    With a `sink`, each run first appends its line there (fsynced), and then
    waits for its acknowledgement."""

    def __init__(self, writer: Writer, sink: str | None) -> None:
        self.writer = writer
        self.sink = sink
        self.runs: dict[str, int] = {}

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        op = str(request.operation_id)
        run = self.runs[op] = self.runs.get(op, 0) + 1
        if self.sink is not None:
            line = json.dumps({"evidence_id": current_idempotency_key(), "run": run})
            with open(self.sink, "a", encoding="utf-8") as sink:
                sink.write(line + "\n")
                sink.flush()
                os.fsync(sink.fileno())
        self.writer.send("ran", request.tick, run)
        if self.sink is not None:
            time.sleep(EFFECT_SECONDS)
        return EffectOutcome.success({"op": op, "run": run})


def step_of(message: str) -> str:
    """Which step of the evidence handler an ``UNAVAILABLE`` answer names."""
    if message.startswith("persist intent"):
        return "intent"
    if message.startswith("load evidence outcome cache"):
        return "read"
    return "bind"


class Writer:
    """One writer process's state (see the module docs)."""

    def __init__(self, url: str, name: str, conn: Channel, sink: str | None = None) -> None:
        self.url, self.name, self.conn = url, name, conn
        self.effect = _Effect(self, sink)
        self.cached = EvidencePersistenceHandler(  # without a sink, re-asked until bound
            self.effect,
            open_cache(url),
            lambda request: f"{request.operation_id}/cert",
            semantics=EffectSemantics.AT_LEAST_ONCE
            if sink is None
            else EffectSemantics.AT_MOST_ONCE,
        )
        self._open_wal()

    def _open_wal(self) -> None:
        self.wal = open_wal(self.url)
        self.handler = AgreementWalHandler(_Nothing(), self.wal)
        self.before = self._retry(lambda: self.wal.last_sequence)

    def send(self, kind: str, *fields: Any) -> None:
        self.conn.send((kind, self.name, *fields))

    def run(self, deadline: float) -> None:
        k = 0
        while not self.conn.poll() and time.monotonic() < deadline:
            op = operation(self.name, k)
            if self.bind(op, k):
                self.append(op, k)
                self.sync(op, k)
            k += 1

    def bind(self, op: str, k: int) -> bool:
        """Run the effect of operation `k` until its outcome is bound (True),
        or (at most once) until the handler says it is in doubt (False)."""
        request = EffectRequest(
            interface_name="Storage", operation_name="write", tick=k, operation_id=op
        )
        while True:
            outcome = self.cached.handle_effect(request)
            if outcome.is_success:
                self.send("bound", k, outcome.response["run"])
                return True
            message = outcome.failure.message if outcome.failure else "?"
            if IN_DOUBT in message:  # an operator's call now: go on with the next one
                self.send("in doubt", k, message)
                return False
            self._failed(k, step_of(message), message)

    def append(self, op: str, k: int) -> None:
        entry = appended_entry(op, k)
        try:
            sequence, had_committed = self.wal.append(entry), False
        except StorageError as exc:
            self._failed(k, "append", str(exc))
            sequence, had_committed = self._append_once(entry)
        except DecodeError as exc:  # without synchronous replication only
            self._rolled_back(str(exc))
            sequence, had_committed = self._append_once(entry)
        self.before = sequence
        self.send("appended", k, sequence, had_committed)

    def _append_once(self, entry: EvidenceProduced) -> tuple[int, bool]:
        while True:
            try:
                return append_once(self.wal, entry, self.before)
            except DecodeError as exc:  # without synchronous replication only
                self._rolled_back(str(exc))

    def sync(self, op: str, k: int) -> None:
        while True:
            outcome = self.handler.wal_sync(sync_request(op, k))
            if outcome.is_success:
                self.send("synced", k)
                return
            message = outcome.failure.message if outcome.failure else "blocked"
            if ROLLED_BACK in message:
                self._rolled_back(message)
            else:
                self._failed(k, "sync", message)

    def _failed(self, k: int, step: str, message: str) -> None:
        self.send("error", k, step, UNKNOWN in message, message)
        time.sleep(0.02)

    def _rolled_back(self, message: str) -> None:
        """The WAL lost entries this handle had read: a fresh handle carries on."""
        self.send("rolled back", message)
        self.wal.close()
        self._open_wal()

    def _retry(self, call: Any) -> Any:
        while True:
            try:
                return call()
            except StorageError:
                time.sleep(0.05)


def writer_main(name: str, sink: str | None = None) -> None:
    """A writer process: read the URL (a line on stdin), run operations until
    another line (or EOF) on stdin; each message is a JSON line on stdout.
    With `sink`, an at-most-once writer whose effects append to that file."""

    class Out:
        def send(self, message: tuple[Any, ...]) -> None:
            sys.stdout.write(json.dumps(message) + "\n")
            sys.stdout.flush()

        def poll(self) -> bool:
            return bool(select.select([0], [], [], 0)[0])

    # psycopg logs (to stderr) the pipeline it could not end on a dead
    # connection; the StorageError already said so
    logging.getLogger("psycopg").setLevel(logging.ERROR)
    out = Out()
    line = b""
    while not line.endswith(b"\n"):  # unbuffered: the stop line must stay in the pipe
        byte = os.read(0, 1)
        if not byte:
            break
        line += byte
    url = line.decode().strip()
    try:
        if url.startswith("postgresql://"):
            Writer(url, name, out, sink).run(time.monotonic() + LIFETIME)
    finally:
        out.send(("done", name))


class WriterProcess:
    """The parent's side of one writer: its process (started at once, so it
    imports while the servers start), and what it reported (read by a
    thread, so the pipe never fills). `begin` gives it the URL. With `sink`
    (a file path), an at-most-once writer (see the module docs)."""

    def __init__(self, name: str, sink: Path | None = None) -> None:
        self.name = name
        self.sink = sink
        root = str(Path(__file__).resolve().parents[2])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.failover.workers", name]
            + ([str(sink)] if sink is not None else []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=root,
            text=True,
        )
        self.messages: list[tuple[Any, ...]] = []
        self.done = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            message = tuple(json.loads(line))
            self.messages.append(message)
            if message[0] == "done":
                self.done = True
        self.done = True

    def _tell(self, line: str, *, last: bool = False) -> None:
        stdin = self.process.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(OSError):
                stdin.write(line + "\n")
                stdin.flush()
                if last:
                    stdin.close()

    def begin(self, url: str) -> None:
        """Start writing through `url`."""
        self._tell(url)

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [m for m in list(self.messages) if m[0] == kind]

    def ask_to_stop(self) -> None:
        """Ask the writer to stop after its current operation."""
        self._tell("stop", last=True)

    def stop(self, timeout: float = 60) -> None:
        """Ask the writer to stop; wait for it (killed after `timeout`)."""
        self.ask_to_stop()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)
        if not any(m[0] == "done" for m in self.messages):
            raise AssertionError(f"writer {self.name} did not finish: {self.messages[-3:]}")


if __name__ == "__main__":
    writer_main(*sys.argv[1:3])
