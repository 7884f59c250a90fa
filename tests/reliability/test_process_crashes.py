"""Process crashes (issue 13, suite 1): a writer appending durably is SIGKILLed
at random moments, again and again on the same files; after each kill the
files are reopened and every acknowledged write must be there, in order, with
nothing extra (nothing the writer did not attempt) and nothing garbled.

Writes are sometimes split into small ``pwrite`` calls a little apart
(`FaultyFileSystem(write_chunk=...)`) so kills land inside records and the
next open has a torn tail to cut; the next writer then repairs it itself
(the parent mostly checks read-only, leaving the cut to the child, so kills
land inside repairs too). CI runs 500 trials; ``DURABILITY_LONG=1`` 2,000.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import pytest

from durability import (
    AgreementState,
    AgreementWalArtifact,
    AgreementWalHandler,
    DurableRecoveryPlan,
    EffectFailure,
    EffectOutcome,
    EffectRequest,
    EvidenceOutcomeCacheArtifact,
    EvidencePersistenceHandler,
    InMemoryAgreementWal,
    StateDirectory,
    WalEntry,
    WalSyncRequest,
)
from durability.artifact import proven_level
from durability.backends.file import FileAgreementWal, FileEvidenceOutcomeCache, SyncPolicy
from durability.backends.segments import DEFAULT_SEGMENT_BYTES
from durability.testing.faults import Ack, CrashTrial, FaultyFileSystem, run_and_kill
from tests.helpers import L, binding, esc, ev, evidence, gate
from tests.reliability._scale import figure, rng, scaled

TRIALS = scaled(100, 400)  # per workload; five workloads
ATTEMPTS = 80  # writes a writer attempts before it stops on its own


def writer_fs(r: random.Random) -> FaultyFileSystem:
    """Half the writers write in small pieces, so a kill can tear a record."""
    if r.random() < 0.5:
        return FaultyFileSystem(write_chunk=r.choice([8, 24, 64]), write_pause=0.0001)
    return FaultyFileSystem()


def crash(r: random.Random, workload: Callable[[Ack], None]) -> CrashTrial:
    trial = run_and_kill(workload, after=r.uniform(0.0005, 0.03))
    assert trial.error is None, f"the writer failed on its own: {trial.error}"
    return trial


def split_prefix(loaded: Sequence[object], batches: Sequence[Sequence[object]]) -> int:
    """How many whole `batches`, concatenated, `loaded` is; fails if it is not
    a concatenation of the first k of them."""
    pos = 0
    for k, batch in enumerate(batches):
        if pos == len(loaded):
            return k
        assert list(loaded[pos : pos + len(batch)]) == list(batch), (
            f"batch {k} garbled or out of order"
        )
        pos += len(batch)
    assert pos == len(loaded), "entries the writer never attempted"
    return len(batches)


class Tally:
    def __init__(self, name: str) -> None:
        self.name = name
        self.trials = self.killed = self.torn = 0

    def add(self, trial: CrashTrial, torn: object) -> None:
        self.trials += 1
        self.killed += trial.killed
        self.torn += torn is not None
        if self.trials == TRIALS:
            figure(self.name, trials=self.trials, killed=self.killed, torn_tails=self.torn)


# -- the WAL: append and append_batch ------------------------------------------------


def wal_batches(t: int) -> list[list[WalEntry]]:
    op, chain = f"t{t}", [L.NONE, L.PROVISIONAL, L.SOFT_SAFE, L.FINALIZED]
    batches: list[list[WalEntry]] = []
    for i in range(ATTEMPTS):
        if i < 3:
            batches.append([esc(op, chain[i], chain[i + 1], i, f"{op}/e{i}")])
        else:
            size = 1 + i % 3
            batches.append([gate(op, L.NONE, 100 * i + j, f"c{j}") for j in range(size)])
    return batches


def append_batches(
    path: Path,
    batches: list[list[WalEntry]],
    fs: FaultyFileSystem,
    ack: Ack,
    segment_bytes: int = DEFAULT_SEGMENT_BYTES,
) -> None:
    wal = FileAgreementWal(path, fs=fs, segment_bytes=segment_bytes)
    for i, batch in enumerate(batches):
        if len(batch) == 1:
            wal.append(batch[0])
        else:
            wal.append_batch(batch)
        ack(str(i))


def test_acknowledged_wal_appends_survive_every_kill(tmp_path: Path) -> None:
    path, r, tally = tmp_path / "wal.log", rng("crash-wal"), Tally("crash-wal")
    durable: list[WalEntry] = []
    for t in range(TRIALS):
        batches = wal_batches(t)
        trial = crash(r, partial(append_batches, path, batches, writer_fs(r)))
        writable = t % 5 == 4  # else leave any torn tail for the next writer to cut
        with FileAgreementWal(path, read_only=not writable) as wal:
            entries = list(wal.load().entries)
            tally.add(trial, wal.torn_tail)
        assert entries[: len(durable)] == durable, f"trial {t}: earlier durable entries changed"
        done = split_prefix(entries[len(durable) :], batches)
        assert done >= len(trial.acked), f"trial {t}: acknowledged batch {done} lost"
        durable = entries
    assert tally.trials >= TRIALS and tally.killed > tally.trials // 2


def test_acknowledged_appends_survive_kills_in_the_middle_of_rollovers(tmp_path: Path) -> None:
    """The same with 1 KiB segments: a rollover every few appends, so kills
    land inside rollovers (specs/segments.md) and the next writer finishes them."""
    path, r, tally = tmp_path / "wal.log", rng("crash-segments"), Tally("crash-segments")
    durable: list[WalEntry] = []
    for t in range(TRIALS // 2):
        batches = wal_batches(t)
        work = partial(append_batches, path, batches, writer_fs(r), segment_bytes=1024)
        trial = crash(r, work)
        with FileAgreementWal(path, read_only=t % 3 != 2, segment_bytes=1024) as wal:
            entries = list(wal.load().entries)
            tally.add(trial, wal.torn_tail)
        assert entries[: len(durable)] == durable, f"trial {t}: earlier durable entries changed"
        done = split_prefix(entries[len(durable) :], batches)
        assert done >= len(trial.acked), f"trial {t}: acknowledged batch {done} lost"
        durable = entries
    assert tally.killed > tally.trials // 2
    assert len(FileAgreementWal(path, read_only=True).layout.sealed) > TRIALS // 10


# -- the evidence cache through EvidencePersistenceHandler ---------------------------


class Numbered:
    """An effect whose outcome depends only on the request."""

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        n = request.tick
        if n % 7 == 3:
            return EffectOutcome.failure(EffectFailure.denied(f"no {n}"))
        return EffectOutcome.success({"n": n, "eid": request.body})


def cache_request(t: int, i: int) -> EffectRequest:
    return EffectRequest(interface_name="Storage", operation_name="write", tick=i, body=f"t{t}-{i}")


def run_effects(path: Path, requests: list[EffectRequest], fs: FaultyFileSystem, ack: Ack) -> None:
    cache = FileEvidenceOutcomeCache(path, fs=fs)
    handler = EvidencePersistenceHandler(Numbered(), cache, lambda q: str(q.body))
    for request in requests:
        outcome = handler.handle_effect(request)
        assert outcome == Numbered().handle_effect(request), outcome
        ack(str(request.body))


def test_acknowledged_cached_outcomes_survive_every_kill(tmp_path: Path) -> None:
    path, r, tally = tmp_path / "evidence.log", rng("crash-cache"), Tally("crash-cache")
    bound: list[str] = []
    for t in range(TRIALS):
        requests = [cache_request(t, i) for i in range(ATTEMPTS)]
        trial = crash(r, partial(run_effects, path, requests, writer_fs(r)))
        with FileEvidenceOutcomeCache(path, read_only=t % 5 != 4) as cache:
            entries = list(cache.load().entries)
            tally.add(trial, cache.torn_tail)
        ids = [e.evidence_id for e in entries]
        assert ids[: len(bound)] == bound
        new = entries[len(bound) :]
        assert [e.evidence_id for e in new] == [str(q.body) for q in requests[: len(new)]]
        for entry, request in zip(new, requests, strict=False):
            assert entry.outcome == Numbered().handle_effect(request)  # never garbled
        assert len(new) >= len(trial.acked)
        bound = ids
    assert tally.trials >= TRIALS and tally.killed > tally.trials // 2


# -- wal_sync batches through AgreementWalHandler ------------------------------------


def syncs(t: int) -> list[WalSyncRequest]:
    out = []
    for i in range(ATTEMPTS // 4):
        op = f"t{t}-op{i}"
        steps = [(L.PROVISIONAL, L.NONE), (L.SOFT_SAFE, L.SOFT_SAFE), (L.FINALIZED, L.FINALIZED)]
        for step, (level, gate_level) in enumerate(steps):
            proof = evidence(op, f"{op}/ev{step}", level)
            state = AgreementState(
                operation_id=op,
                contract_name="c",
                level=level,
                evidence_ids=(proof.evidence_id,),
            )
            out.append(
                WalSyncRequest(
                    operation_id=op,
                    downstream_coroutine_id=f"coro{step}",
                    gate_level=gate_level,
                    agreement_state=state,
                    agreement_evidence=(proof,),
                    tick=10 * i + step,
                )
            )
        out.append(out[-1])  # a re-run writes nothing
    return out


def expected_sync_batches(before: list[WalEntry], requests: list[WalSyncRequest]) -> list[list]:
    """What each sync appends, from a WAL holding `before` (the in-memory oracle)."""
    oracle = InMemoryAgreementWal()
    if before:
        oracle.append_batch(before)
    handler = AgreementWalHandler(Numbered(), oracle)
    batches = []
    for request in requests:
        size = len(oracle.load().entries)
        handler.wal_sync(request)
        batches.append(list(oracle.load().entries[size:]))
    return batches


def gates_never_outrun_their_facts(entries: Sequence[WalEntry]) -> None:
    proven: dict[str, L] = {}
    for entry in entries:
        if entry.__class__.__name__ == "VisibilityGateCrossing":
            assert proven.get(entry.operation_id, L.NONE) >= entry.gate_level, entry  # type: ignore[union-attr]
        proven[entry.operation_id] = max(
            proven.get(entry.operation_id, L.NONE), proven_level(entry)
        )


def run_syncs(path: Path, requests: list[WalSyncRequest], fs: FaultyFileSystem, ack: Ack) -> None:
    handler = AgreementWalHandler(Numbered(), FileAgreementWal(path, fs=fs))
    for i, request in enumerate(requests):
        outcome = handler.wal_sync(request)
        assert outcome.failure is None, outcome.failure
        ack(str(i))


def test_acknowledged_wal_syncs_survive_every_kill_and_no_gate_outruns_its_facts(
    tmp_path: Path,
) -> None:
    path, r, tally = tmp_path / "wal.log", rng("crash-sync"), Tally("crash-sync")
    durable: list[WalEntry] = []
    for t in range(TRIALS):
        requests = syncs(t)
        trial = crash(r, partial(run_syncs, path, requests, writer_fs(r)))
        with FileAgreementWal(path, read_only=t % 5 != 4) as wal:
            entries = list(wal.load().entries)
            tally.add(trial, wal.torn_tail)
        assert entries[: len(durable)] == durable
        batches = expected_sync_batches(durable, requests)
        done = split_prefix(entries[len(durable) :], [b for b in batches if b])
        assert done >= len([b for b in batches[: len(trial.acked)] if b])
        gates_never_outrun_their_facts(entries)
        plan = DurableRecoveryPlan.from_checkpoint(
            None, None, AgreementWalArtifact(entries=entries), EvidenceOutcomeCacheArtifact()
        )
        assert plan.anomalies == ()  # strict planning found every gate backed by its facts
        durable = entries
    assert tally.trials >= TRIALS and tally.killed > tally.trials // 2


# -- group commit: threads sharing one instance --------------------------------------

THREADS = 4


def group_appends(path: Path, t: int, fs: FaultyFileSystem, ack: Ack) -> None:
    wal = FileAgreementWal(path, sync=SyncPolicy.GROUP, fs=fs)

    def thread(w: int) -> None:
        for i in range(ATTEMPTS // 2):
            wal.append(gate(f"t{t}-w{w}", L.NONE, i))
            ack(f"{w}:{i}")

    workers = [threading.Thread(target=thread, args=(w,)) for w in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def test_group_commit_keeps_every_acknowledged_append_of_every_thread(tmp_path: Path) -> None:
    path, r, tally = tmp_path / "wal.log", rng("crash-group"), Tally("crash-group")
    durable: list[WalEntry] = []
    for t in range(TRIALS):
        trial = crash(r, partial(group_appends, path, t, writer_fs(r)))
        with FileAgreementWal(path, read_only=t % 5 != 4) as wal:
            entries = list(wal.load().entries)
            tally.add(trial, wal.torn_tail)
        assert entries[: len(durable)] == durable
        new = entries[len(durable) :]
        for w in range(THREADS):
            mine = [e.tick for e in new if e.operation_id == f"t{t}-w{w}"]
            assert mine == list(range(len(mine))), f"thread {w}: order or duplicates"
            acked = [a for a in trial.acked if a.startswith(f"{w}:")]
            assert len(mine) >= len(acked), f"thread {w} lost an acknowledged append"
        assert all(e.operation_id.startswith(f"t{t}-w") for e in new), "an entry never attempted"
        durable = entries
    assert tally.trials >= TRIALS and tally.killed > tally.trials // 2


# -- checkpoints ------------------------------------------------------------------------


def write_checkpoints(state: Path, t: int, fs: FaultyFileSystem, ack: Ack) -> None:
    with StateDirectory(state, fs=fs) as store:
        for i in range(ATTEMPTS // 4):
            tick = 1000 * t + i
            store.wal.append(ev(f"t{t}", f"t{t}/{i}", L.PROVISIONAL, tick))
            store.cache.put(binding(f"t{t}/{i}"))
            store.checkpoint(tick, f"state {tick}".encode())
            ack(str(tick))


def test_acknowledged_checkpoints_survive_every_kill_and_none_is_half_written(
    tmp_path: Path,
) -> None:
    state, r, tally = tmp_path / "state", rng("crash-checkpoint"), Tally("crash-checkpoint")
    acked_ticks: set[int] = set()
    for t in range(TRIALS):
        trial = crash(r, partial(write_checkpoints, state, t, writer_fs(r)))
        acked_ticks |= {int(a) for a in trial.acked}
        with StateDirectory(state, read_only=t % 5 != 4) as store:
            present = store.checkpoint_ticks()
            assert acked_ticks <= set(present), "an acknowledged checkpoint vanished"
            for tick in present:
                checkpoint = store.load_checkpoint(tick)  # never half written
                assert checkpoint.state == f"state {tick}".encode()
                assert checkpoint.metadata.checkpoint_tick == tick
            store.plan_recovery()
            tally.add(trial, store.wal.torn_tail or store.cache.torn_tail)
    leftovers = [n for n in os.listdir(state / "checkpoints") if ".tmp-" in n]
    assert all(n.startswith("checkpoint-") for n in leftovers)  # never mistaken for one
    assert tally.trials >= TRIALS and tally.killed > tally.trials // 2


@pytest.mark.parametrize("after", [0.0, 0.05])
def test_crash_runner_reports_a_writer_that_fails_on_its_own(after: float) -> None:
    def workload(ack: Ack) -> None:
        ack("one")
        raise RuntimeError("boom")

    trial = run_and_kill(workload, after=after + 0.05)
    assert trial.acked == ("one",) and not trial.killed
    assert trial.error is not None and "RuntimeError: boom" in trial.error
