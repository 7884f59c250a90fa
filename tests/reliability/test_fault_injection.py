"""Fault injection through the `FileSystem` seam (issue 13, suite 4).

For each operation, its call sites (open, stat, read, write, sync, truncate,
lock, sync_dir, rename, link, mkdir) are counted once; then the k-th is made
to fail, for every k, with EIO, ENOSPC and EROFS, once or from then on (a
disk gone for good), and every write site also comes back short. Each time:

* the operation raises a `DurabilityError` (handlers answer ``UNAVAILABLE``
  instead), never anything else, and never reports success when a fault hit;
* reopened, the log holds what it held before or all of the operation's
  records, never part of one;
* the instance's memory never shows a record that is not durable;
* after a failed write or fsync the instance refuses writes
  (`LogPoisonedError`) and writes nothing until reopened;
* a visibility gate is never recorded, nor reported crossed, unless the
  facts it needs are durable.
"""

from __future__ import annotations

import doctest
import errno
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

import durability.persisted
import durability.testing.faults
from durability import (
    AgreementState,
    AgreementWalArtifact,
    AgreementWalHandler,
    DurabilityError,
    EffectFailureKind,
    EffectOutcome,
    EffectRequest,
    EvidencePersistenceHandler,
    LogPoisonedError,
    PersistedDurabilityArtifact,
    StateDirectory,
    WalSyncRequest,
)
from durability.backends.file import (
    FileAgreementWal,
    FileEvidenceOutcomeCache,
    RecoveryMode,
    SyncPolicy,
)
from durability.testing.faults import FaultyFileSystem
from tests.helpers import L, binding, esc, ev, evidence, gate
from tests.reliability._scale import figure

ERRNOS = (errno.EIO, errno.ENOSPC, errno.EROFS)


def faults_at(site: str, sticky: bool | None = None) -> list[tuple[int, bool, bool]]:
    """(errno, sticky, short_write) to try at a site: each errno once or from
    then on (only one of those when `sticky` says), and a short write."""
    modes = (False, True) if sticky is None else (sticky,)
    tried = [(code, s, False) for code in ERRNOS for s in modes]
    if site == "write":
        tried += [(errno.ENOSPC, s, True) for s in modes]
    return tried


# -- logs -----------------------------------------------------------------------------


@attrs.frozen
class LogCase:
    """One log operation: a file prepared with `before` writes (and `damage`),
    then `act` (opening it too when `opens`), which should add `added`."""

    name: str
    kind: str
    act: Callable[[Any], None]
    added: list[Any]
    opens: bool = False
    options: dict[str, Any] = attrs.field(factory=dict)
    damage: bytes = b""
    new_file: bool = False


BEFORE = {"wal": [esc("op", L.NONE, L.PROVISIONAL, 1, "e1")], "cache": [binding("e1")]}
E2, E3 = esc("op", L.PROVISIONAL, L.SOFT_SAFE, 2, "e2"), gate("op", L.SOFT_SAFE, 3)

CASES = [
    LogCase("open and append", "wal", lambda w: w.append(E2), [E2], opens=True),
    LogCase("create and append", "wal", lambda w: w.append(E2), [E2], opens=True, new_file=True),
    LogCase("append", "wal", lambda w: w.append(E2), [E2]),
    LogCase("append_batch", "wal", lambda w: w.append_batch([E2, E3]), [E2, E3]),
    LogCase(
        "group append", "wal", lambda w: w.append(E2), [E2], options={"sync": SyncPolicy.GROUP}
    ),
    LogCase(
        "unsynced append then sync",
        "wal",
        lambda w: (w.append(E2), w.sync()),
        [E2],
        options={"sync": SyncPolicy.NONE},
    ),
    LogCase("put", "cache", lambda c: c.put(binding("e2")), [binding("e2")]),
    LogCase("put_if_absent", "cache", lambda c: c.put_if_absent(binding("e2")), [binding("e2")]),
    LogCase(
        "repair a torn tail", "wal", lambda w: w.append(E2), [E2], opens=True, damage=b"\x01" * 9
    ),
    LogCase(
        "point-in-time repair",
        "cache",
        lambda c: c.put(binding("e2")),
        [binding("e2")],
        opens=True,
        options={"recovery": RecoveryMode.POINT_IN_TIME},
        damage=b"\xff" * 40,
    ),
]


def open_log(case: LogCase, path: Path, **options: Any) -> Any:
    make = FileAgreementWal if case.kind == "wal" else FileEvidenceOutcomeCache
    return make(path, **{**case.options, **options})


def prepare(case: LogCase, path: Path) -> None:
    if case.new_file:
        return
    with open_log(case, path, sync=SyncPolicy.DURABLE) as log:
        for item in BEFORE[case.kind]:
            log.append(item) if case.kind == "wal" else log.put(item)
    with open(path, "ab") as f:
        f.write(case.damage)


def on_disk(case: LogCase, path: Path) -> list[Any]:
    if not path.exists():
        return []
    options = {"recovery": RecoveryMode.POINT_IN_TIME} if case.damage else {}
    with open_log(case, path, sync=SyncPolicy.DURABLE, **options) as log:
        return list(log.load().entries)


def attempt(case: LogCase, path: Path, fs: FaultyFileSystem, k: int | None, fault: Any) -> Any:
    """Run `case` with the k-th call site failing; return (log, raised, the
    sites the operation reached)."""
    log = None
    if not case.opens:
        log = open_log(case, path, fs=fs)
    start = len(fs.calls)
    if k is not None:
        code, sticky, short = fault
        fs.fail_after(k, error=code, sticky=sticky, short_write=short)
    try:
        if case.opens:
            log = open_log(case, path, fs=fs)
        case.act(log)
        raised = None
    except DurabilityError as exc:
        raised = exc
    return log, raised, [call.op for call in fs.calls[start:]]


def sticky_params(cases: list[Any]) -> list[Any]:
    """Each case once and from-then-on (the disk stays gone)."""
    params = []
    for case in cases:
        name = getattr(case, "name", str(case))
        for sticky in (False, True):
            ident = f"{name}-{'from-then-on' if sticky else 'once'}"
            params.append(pytest.param(case, sticky, id=ident))
    return params


@pytest.mark.parametrize(("case", "sticky"), sticky_params(CASES))
def test_every_failing_call_site_leaves_the_log_whole_and_the_instance_honest(
    case: LogCase, sticky: bool, tmp_path: Path
) -> None:
    before = [] if case.new_file else BEFORE[case.kind]
    after = before + case.added
    count = tmp_path / "count.log"
    prepare(case, count)
    _, raised, sites = attempt(case, count, FaultyFileSystem(), None, None)
    assert raised is None
    runs = 0
    for k, site in enumerate(sites):
        for fault in faults_at(site, sticky):
            runs += 1
            path = tmp_path / f"{k}-{fault[0]}-{fault[1]}-{fault[2]}.log"
            prepare(case, path)
            fs = FaultyFileSystem()
            log, raised, _ = attempt(case, path, fs, k, fault)
            fired = [f.op for f in fs.faults]
            fs.heal()
            where = f"{case.name}: {site} #{k} failing with {fault}"
            assert fired, where
            assert raised is not None, f"{where}: reported success"
            durable = on_disk(case, path)
            assert durable in (before, after), f"{where}: part of the operation on disk"
            if log is None:
                continue
            shown = list(log.load().entries)
            assert shown == before or (shown == after == durable), f"{where}: memory shows {shown}"
            size = path.stat().st_size
            poisoned = any(op in ("write", "sync") for op in fired)
            try:
                case.act(log)
            except LogPoisonedError:
                assert path.stat().st_size == size, f"{where}: a poisoned log wrote"
            else:
                assert not poisoned, f"{where}: wrote after a failed write or fsync"
                assert on_disk(case, path)[-len(case.added) :] == case.added
    figure(f"faults-{case.name}-{'sticky' if sticky else 'once'}", sites=len(sites), runs=runs)


# -- checkpoints and artifacts ------------------------------------------------------


def checkpoint_two(d: Path, fs: FaultyFileSystem, k: int | None, fault: Any) -> Any:
    """A state directory with checkpoint 1, then checkpoint 2 with the k-th
    call site failing; returns (the sites it reached, what it raised)."""
    store = StateDirectory(d, fs=fs)
    store.wal.append(ev("op", "e1", L.PROVISIONAL, 1))
    store.checkpoint(1, b"one")
    start = len(fs.calls)
    if k is not None:
        fs.fail_after(k, error=fault[0], sticky=fault[1], short_write=fault[2])
    try:
        store.checkpoint(2, b"two")
        raised = None
    except DurabilityError as exc:
        raised = exc
    fs.heal()
    return [c.op for c in fs.calls[start:]], raised


def test_a_failing_call_site_never_leaves_a_partial_checkpoint(tmp_path: Path) -> None:
    sites, _ = checkpoint_two(tmp_path / "count", FaultyFileSystem(), None, None)
    runs = 0
    for k, site in enumerate(sites):
        for fault in faults_at(site):
            runs += 1
            d = tmp_path / f"{k}-{fault}"
            _, raised = checkpoint_two(d, FaultyFileSystem(), k, fault)
            assert raised is not None, f"checkpoint: {site} #{k} {fault} reported success"
            with StateDirectory(d) as store:
                assert store.load_checkpoint(1).state == b"one"
                assert set(store.checkpoint_ticks()) <= {1, 2}
                for tick in store.checkpoint_ticks():  # 2 only if its rename landed
                    assert store.load_checkpoint(tick).state == {1: b"one", 2: b"two"}[tick]
            leftovers = [p.name for p in (d / "checkpoints").iterdir() if ".tmp-" in p.name]
            assert leftovers == [], f"checkpoint: {site} #{k} {fault} left {leftovers}"
    figure("faults-checkpoint", sites=len(sites), runs=runs)


def test_a_failing_call_site_never_leaves_a_partial_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = PersistedDurabilityArtifact.agreement_wal(AgreementWalArtifact(entries=[E2]))
    new = PersistedDurabilityArtifact.agreement_wal(AgreementWalArtifact(entries=[E2, E3]))
    counter = FaultyFileSystem()
    monkeypatch.setattr(durability.persisted, "DEFAULT_FS", counter)
    new.write_to_path(tmp_path / "count.cbor")
    sites = [c.op for c in counter.calls]
    for k, site in enumerate(sites):
        for fault in faults_at(site):
            path = tmp_path / f"{k}-{fault}.cbor"
            old.write_to_path(path)
            fs = FaultyFileSystem()
            monkeypatch.setattr(durability.persisted, "DEFAULT_FS", fs)
            fs.fail_after(k, error=fault[0], sticky=fault[1], short_write=fault[2])
            with pytest.raises(DurabilityError):
                new.write_to_path(path)
            fs.heal()
            assert PersistedDurabilityArtifact.from_path(path) in (old, new)
            assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []
    figure("faults-write_to_path", sites=len(sites))


# -- handlers -------------------------------------------------------------------------


class Effect:
    calls = 0

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        Effect.calls += 1
        return EffectOutcome.success({"done": request.tick})


SYNC = WalSyncRequest(
    operation_id="op",
    downstream_coroutine_id="coro",
    gate_level=L.SOFT_SAFE,
    agreement_state=AgreementState(
        operation_id="op", contract_name="c", level=L.SOFT_SAFE, evidence_ids=("op/cert",)
    ),
    agreement_evidence=(evidence("op", "op/cert", L.SOFT_SAFE),),
    tick=5,
)


BATCH = ["EvidenceProduced", "Escalation", "VisibilityGateCrossing"]


def handler_sites(
    make: Callable[[Path, FaultyFileSystem], Any], call: Callable[[Any], Any], d: Path
) -> list[str]:
    fs = FaultyFileSystem()
    handler = make(d, fs)
    start = len(fs.calls)
    call(handler)
    return [c.op for c in fs.calls[start:]]


def make_wal_handler(d: Path, fs: FaultyFileSystem) -> Any:
    d.mkdir(exist_ok=True)
    wal = FileAgreementWal(d / "wal.log", fs=fs)
    return AgreementWalHandler(Effect(), wal)


@pytest.mark.parametrize(("case", "sticky"), sticky_params(["wal_sync"]))
def test_wal_sync_answers_unavailable_and_never_crosses_a_gate_whose_facts_did_not_persist(
    case: str, sticky: bool, tmp_path: Path
) -> None:
    sites = handler_sites(make_wal_handler, lambda h: h.wal_sync(SYNC), tmp_path / "count")
    for k, site in enumerate(sites):
        for fault in faults_at(site, sticky):
            d = tmp_path / f"{k}-{fault}"
            fs = FaultyFileSystem()
            handler = make_wal_handler(d, fs)
            fs.fail_after(k, error=fault[0], sticky=fault[1], short_write=fault[2])
            outcome = handler.wal_sync(SYNC)
            fs.heal()
            assert (
                outcome.failure is not None
                and outcome.failure.kind is EffectFailureKind.UNAVAILABLE
            )
            assert outcome.failure.message.startswith(
                ("load agreement WAL", "persist agreement WAL")
            )
            retried = handler.wal_sync(SYNC)  # the same instance: poisoned, or recovered
            entries = list(FileAgreementWal(d / "wal.log").load().entries)
            if retried.is_success:
                assert [type(e).__name__ for e in entries][-1] == "VisibilityGateCrossing"
            else:  # one atomic batch: nothing, or the facts and the gate together
                assert [type(e).__name__ for e in entries] in ([], BATCH), entries
            fresh = AgreementWalHandler(Effect(), FileAgreementWal(d / "wal.log"))
            assert fresh.wal_sync(SYNC).is_success
            assert [type(e).__name__ for e in fresh.wal_snapshot().entries] == BATCH
    figure(f"faults-wal_sync-{sticky}", sites=len(sites))


def make_cache_handler(d: Path, fs: FaultyFileSystem) -> Any:
    d.mkdir(exist_ok=True)
    cache = FileEvidenceOutcomeCache(d / "evidence.log", fs=fs)
    return EvidencePersistenceHandler(Effect(), cache, lambda r: f"ev-{r.tick}")


@pytest.mark.parametrize(("case", "sticky"), sticky_params(["handle_effect"]))
def test_evidence_handler_answers_unavailable_and_caches_only_what_persisted(
    case: str, sticky: bool, tmp_path: Path
) -> None:
    request = EffectRequest(interface_name="Storage", operation_name="write", tick=7)
    sites = handler_sites(make_cache_handler, lambda h: h.handle_effect(request), tmp_path / "c")
    for k, site in enumerate(sites):
        for fault in faults_at(site, sticky):
            d = tmp_path / f"{k}-{fault}"
            fs = FaultyFileSystem()
            handler = make_cache_handler(d, fs)
            fs.fail_after(k, error=fault[0], sticky=fault[1], short_write=fault[2])
            outcome = handler.handle_effect(request)
            fs.heal()
            assert (
                outcome.failure is not None
                and outcome.failure.kind is EffectFailureKind.UNAVAILABLE
            )
            reopened = FileEvidenceOutcomeCache(d / "evidence.log")
            bound = reopened.get("ev-7")
            assert bound is None or bound.outcome == EffectOutcome.success({"done": 7})
            try:
                shown = handler.cached_outcome("ev-7")
            except DurabilityError:
                shown = None
            assert shown is None or bound is not None, "memory shows an outcome not on disk"
    figure(f"faults-evidence-{sticky}", sites=len(sites))


def test_the_fault_tools_examples_hold() -> None:
    result = doctest.testmod(durability.testing.faults)
    assert result.attempted > 0 and result.failed == 0


def test_a_pwrite_that_comes_back_short_is_continued_until_the_record_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    real = os.pwrite
    calls = []

    def short(fd: int, data: Any, offset: int) -> int:
        calls.append(len(data))
        return real(fd, bytes(data)[:5], offset)

    wal = FileAgreementWal(tmp_path / "wal.log")
    monkeypatch.setattr(os, "pwrite", short)
    wal.append_batch([E2, E3])
    monkeypatch.undo()
    assert len(calls) > 10
    assert list(FileAgreementWal(tmp_path / "wal.log").load().entries) == [E2, E3]
