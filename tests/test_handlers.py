"""The effect-handler wrappers: AgreementWalHandler, its stacking under
EvidencePersistenceHandler, and the decorator forms (API.md §7). The evidence
handler on its own is tested in test_evidence.py."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from durability import (
    AgreementEvidence,
    AgreementEvidenceKind,
    AgreementLevel,
    AgreementState,
    AgreementWalArtifact,
    EffectFailure,
    EffectFailureKind,
    EffectOutcome,
    EffectRequest,
    Escalation,
    EvidenceOutcomeCacheArtifact,
    EvidenceProduced,
    Finalization,
    FinalizationOutcome,
    InMemoryAgreementWal,
    InMemoryEvidenceOutcomeCache,
    VisibilityGateCrossing,
    WalEntry,
    WalSyncRequest,
)
from durability.decorators import evidence_cached, wal_synced
from durability.evidence import EvidencePersistenceHandler
from durability.handlers import AgreementWalHandler, WalSyncMode
from tests.helpers import AsyncInner, Inner, esc, evidence

L = AgreementLevel
OP = "op-1"


# ---------------------------------------------------------------------------
# doubles


class RecordingWal(InMemoryAgreementWal):
    """Records every append_batch call (and refuses plain append)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[WalEntry]] = []

    def append_batch(self, entries: Sequence[WalEntry]) -> None:
        self.batches.append(list(entries))
        super().append_batch(entries)

    def append(self, entry: WalEntry) -> None:
        raise AssertionError("append must not be used when append_batch exists")


class ProtocolOnlyWal:
    """Only the three required methods; counts loads and appends."""

    def __init__(self) -> None:
        self.entries: list[WalEntry] = []
        self.loads = 0
        self.appends = 0

    def append(self, entry: WalEntry) -> None:
        AgreementWalArtifact(entries=[*self.entries, entry]).validate_monotonic_escalations()
        self.appends += 1
        self.entries.append(entry)

    def read_since(self, tick: int) -> list[WalEntry]:
        return [e for e in self.entries if e.tick > tick]

    def load(self) -> AgreementWalArtifact:
        self.loads += 1
        return AgreementWalArtifact(entries=self.entries)


class NoReloadWal(InMemoryAgreementWal):
    def load(self) -> AgreementWalArtifact:
        raise AssertionError("wal_sync must use operation_summary, not load")


class BrokenWal(InMemoryAgreementWal):
    def __init__(self, *, load: bool = False, write: bool = False) -> None:
        super().__init__()
        self.fail_load, self.fail_write = load, write

    def operation_summary(self, operation_id: str) -> Any:
        if self.fail_load:
            raise OSError("disk unreadable")
        return super().operation_summary(operation_id)

    def append_batch(self, entries: Sequence[WalEntry]) -> None:
        if self.fail_write:
            raise OSError("disk full")
        super().append_batch(entries)


def request(tick: int = 1, eid: str | None = "ev-1") -> EffectRequest:
    return EffectRequest(
        interface_name="Storage", operation_name="write", tick=tick, operation_id=OP, body=eid
    )


def by_body(req: EffectRequest) -> str | None:
    return req.body if isinstance(req.body, str) else None


def sync(
    level: AgreementLevel = L.SOFT_SAFE,
    gate_level: AgreementLevel = L.SOFT_SAFE,
    *,
    tick: int = 5,
    evidences: Sequence[AgreementEvidence] | None = None,
    evidence_ids: Sequence[str] = ("ev-a",),
    finalization: FinalizationOutcome | None = None,
    with_state: bool = True,
) -> WalSyncRequest:
    if evidences is None:
        evidences = [evidence(OP, eid, level) for eid in evidence_ids]
    state = (
        AgreementState(
            operation_id=OP,
            contract_name="c",
            level=level,
            finalization=finalization,
            evidence_ids=evidence_ids,
        )
        if with_state
        else None
    )
    return WalSyncRequest(
        operation_id=OP,
        downstream_coroutine_id="coro#1",
        gate_level=gate_level,
        agreement_state=state,
        agreement_evidence=evidences,
        tick=tick,
    )


# ---------------------------------------------------------------------------
# WalSyncMode


def test_wal_sync_mode_compares_by_value() -> None:
    assert WalSyncMode.failure("x") == WalSyncMode.failure("x")
    assert WalSyncMode.failure("x") != WalSyncMode.failure("y")
    assert WalSyncMode.IMMEDIATE != WalSyncMode.BLOCKED
    assert repr(WalSyncMode.BLOCKED) == "WalSyncMode.BLOCKED"
    with pytest.raises(ValueError):
        WalSyncMode(kind="failure")


def test_wal_handler_refuses_non_mode() -> None:
    with pytest.raises(TypeError):
        AgreementWalHandler(Inner(), InMemoryAgreementWal(), "blocked")  # type: ignore[call-overload]


# ---------------------------------------------------------------------------
# AgreementWalHandler.wal_sync


def test_immediate_sync_writes_facts_then_gate_in_order() -> None:
    wal = InMemoryAgreementWal()
    handler = AgreementWalHandler(Inner(), wal)
    ev_a = evidence(OP, "ev-a", L.SOFT_SAFE)
    other = evidence("other-op", "ev-x", L.FINALIZED)
    outcome = handler.wal_sync(sync(evidences=[ev_a, other]))
    assert outcome == EffectOutcome.success()
    assert list(wal.load().entries) == [
        EvidenceProduced(evidence=ev_a, tick=5),
        Escalation(
            operation_id=OP,
            previous_level=L.NONE,
            new_level=L.SOFT_SAFE,
            evidence_id="ev-a",
            tick=5,
        ),
        VisibilityGateCrossing(
            operation_id=OP, downstream_coroutine_id="coro#1", gate_level=L.SOFT_SAFE, tick=5
        ),
    ]


def test_escalation_starts_from_highest_wal_escalation() -> None:
    wal = InMemoryAgreementWal()
    wal.append_batch([esc(OP, L.NONE, L.PROVISIONAL, 1)])
    handler = AgreementWalHandler(Inner(), wal)
    handler.wal_sync(sync(L.SOFT_SAFE, L.NONE, evidence_ids=["e1", "e2"]))
    escalations = [e for e in wal.load().entries if isinstance(e, Escalation)]
    assert escalations[-1] == Escalation(
        operation_id=OP,
        previous_level=L.PROVISIONAL,
        new_level=L.SOFT_SAFE,
        evidence_id="e2",
        tick=5,
    )


def test_no_escalation_when_state_not_above_wal() -> None:
    wal = InMemoryAgreementWal()
    wal.append_batch([esc(OP, L.NONE, L.SOFT_SAFE, 1)])
    AgreementWalHandler(Inner(), wal).wal_sync(sync(L.PROVISIONAL, L.NONE, evidences=[]))
    assert [type(e) for e in wal.load().entries] == [Escalation, VisibilityGateCrossing]


def test_finalization_proof_is_first_materialization_evidence() -> None:
    wal = InMemoryAgreementWal()
    witness = evidence(OP, "proof-looking-witness", L.FINALIZED, AgreementEvidenceKind.WITNESS)
    mat1 = evidence(OP, "m1", L.FINALIZED, AgreementEvidenceKind.MATERIALIZATION)
    mat2 = evidence(OP, "m2", L.FINALIZED, AgreementEvidenceKind.MATERIALIZATION)
    other_mat = AgreementEvidence(
        evidence_id="m0",
        operation_id="other",
        level=L.FINALIZED,
        kind=AgreementEvidenceKind.MATERIALIZATION,
        reference="r",
        authoritative=True,
    )
    AgreementWalHandler(Inner(), wal).wal_sync(
        sync(
            L.FINALIZED,
            L.FINALIZED,
            evidences=[other_mat, witness, mat1, mat2],
            evidence_ids=["proof-looking-witness", "m1", "m2"],
            finalization=FinalizationOutcome.FINALIZED,
        )
    )
    (final,) = [e for e in wal.load().entries if isinstance(e, Finalization)]
    assert final == Finalization(
        operation_id=OP,
        outcome=FinalizationOutcome.FINALIZED,
        materialization_proof_id="m1",
        canonical_handle_id=None,
        tick=5,
    )


def test_finalization_without_materialization_has_no_proof() -> None:
    wal = InMemoryAgreementWal()
    AgreementWalHandler(Inner(), wal).wal_sync(
        sync(L.SOFT_SAFE, L.NONE, finalization=FinalizationOutcome.ABORTED)
    )
    (final,) = [e for e in wal.load().entries if isinstance(e, Finalization)]
    assert final.outcome is FinalizationOutcome.ABORTED
    assert final.materialization_proof_id is None


def test_gate_blocked_below_level_writes_facts_not_gate() -> None:
    wal = InMemoryAgreementWal()
    handler = AgreementWalHandler(Inner(), wal)
    outcome = handler.wal_sync(sync(L.PROVISIONAL, L.SOFT_SAFE))
    assert outcome.is_blocked
    kinds = [type(e) for e in wal.load().entries]
    assert kinds == [EvidenceProduced, Escalation]


def test_gate_crosses_at_its_level_from_wal_facts() -> None:
    wal = InMemoryAgreementWal()
    wal.append_batch([esc(OP, L.NONE, L.FINALIZED, 1)])
    handler = AgreementWalHandler(Inner(), wal)
    outcome = handler.wal_sync(sync(L.NONE, L.FINALIZED, evidences=[], with_state=False))
    assert outcome == EffectOutcome.success()
    assert isinstance(wal.load().entries[-1], VisibilityGateCrossing)


def test_gate_counts_evidence_level_of_this_sync() -> None:
    wal = InMemoryAgreementWal()
    ev_fin = evidence(OP, "ev-f", L.FINALIZED)
    outcome = AgreementWalHandler(Inner(), wal).wal_sync(
        sync(L.NONE, L.FINALIZED, evidences=[ev_fin], with_state=False)
    )
    assert outcome.is_success
    assert [type(e) for e in wal.load().entries] == [EvidenceProduced, VisibilityGateCrossing]


def test_resync_writes_nothing() -> None:
    wal = RecordingWal()
    handler = AgreementWalHandler(Inner(), wal)
    request_ = sync(L.FINALIZED, L.SOFT_SAFE, finalization=FinalizationOutcome.FINALIZED)
    assert handler.wal_sync(request_).is_success
    before = wal.load()
    assert handler.wal_sync(request_).is_success
    assert wal.load() == before
    assert len(wal.batches) == 1


def test_resync_of_blocked_gate_writes_nothing_and_stays_blocked() -> None:
    wal = RecordingWal()
    handler = AgreementWalHandler(Inner(), wal)
    request_ = sync(L.PROVISIONAL, L.FINALIZED)
    assert handler.wal_sync(request_).is_blocked
    assert handler.wal_sync(request_).is_blocked
    assert len(wal.batches) == 1


def test_sync_is_one_atomic_batch() -> None:
    wal = RecordingWal()
    AgreementWalHandler(Inner(), wal).wal_sync(
        sync(L.FINALIZED, L.FINALIZED, finalization=FinalizationOutcome.FINALIZED)
    )
    assert len(wal.batches) == 1
    assert wal.batches[0] == list(wal.load().entries)
    assert [type(e) for e in wal.batches[0]] == [
        EvidenceProduced,
        Escalation,
        Finalization,
        VisibilityGateCrossing,
    ]


def test_indexed_backend_uses_operation_summary_not_load() -> None:
    wal = NoReloadWal()
    handler = AgreementWalHandler(Inner(), wal)
    assert handler.wal_sync(sync()).is_success
    assert handler.wal_sync(sync()).is_success


def test_protocol_only_backend_uses_load_and_append() -> None:
    wal = ProtocolOnlyWal()
    handler = AgreementWalHandler(Inner(), wal)
    assert handler.wal_sync(sync()).is_success
    assert wal.loads == 1
    assert wal.appends == 3
    assert handler.wal_sync(sync()).is_success
    assert wal.loads == 2
    assert wal.appends == 3


def test_blocked_mode_writes_nothing() -> None:
    wal = RecordingWal()
    outcome = AgreementWalHandler(Inner(), wal, WalSyncMode.BLOCKED).wal_sync(sync())
    assert outcome == EffectOutcome.blocked()
    assert wal.batches == []


def test_failure_mode_returns_unavailable_and_writes_nothing() -> None:
    wal = RecordingWal()
    handler = AgreementWalHandler(Inner(), wal, mode=WalSyncMode.failure("sync offline"))
    outcome = handler.wal_sync(sync())
    assert outcome == EffectOutcome.failure(EffectFailure.unavailable("sync offline"))
    assert wal.batches == []


@pytest.mark.parametrize(
    ("wal", "message"),
    [
        (BrokenWal(load=True), "load agreement WAL for `op-1`: disk unreadable"),
        (BrokenWal(write=True), "persist agreement WAL for `op-1`: disk full"),
    ],
)
def test_backend_error_becomes_unavailable_failure(wal: BrokenWal, message: str) -> None:
    outcome = AgreementWalHandler(Inner(), wal).wal_sync(sync())
    assert outcome == EffectOutcome.failure(EffectFailure.unavailable(message))
    assert wal.read_since(0) == []


def test_escalation_order_error_becomes_persist_failure() -> None:
    class RacingWal(InMemoryAgreementWal):
        """Another writer escalates between our summary and our write."""

        def append_batch(self, entries: Sequence[WalEntry]) -> None:
            if not self.read_since(0):
                super().append_batch([esc(OP, L.NONE, L.FINALIZED, 1)])
            super().append_batch(entries)

    outcome = AgreementWalHandler(Inner(), RacingWal()).wal_sync(sync())
    assert outcome.failure is not None
    assert outcome.failure.kind is EffectFailureKind.UNAVAILABLE
    assert outcome.failure.message.startswith("persist agreement WAL for `op-1`: ")


def test_wal_handler_forwards_handle_effect_and_attributes() -> None:
    inner = Inner()
    wal = InMemoryAgreementWal()
    handler = AgreementWalHandler(inner, wal)
    assert handler.handle_effect(request()) == EffectOutcome.success({"n": 1})
    assert inner.calls == [request()]
    assert handler.handle_send("x") == "sent x"
    assert handler.wal_snapshot() == wal.load()
    with pytest.raises(AttributeError):
        _ = handler.no_such_method


def test_concurrent_syncs_write_each_fact_once() -> None:
    wal = InMemoryAgreementWal()
    handler = AgreementWalHandler(Inner(), wal)
    request_ = sync(L.FINALIZED, L.FINALIZED, finalization=FinalizationOutcome.FINALIZED)
    threads = [threading.Thread(target=handler.wal_sync, args=(request_,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wal.load().entries) == 4


# ---------------------------------------------------------------------------
# the stack: EvidencePersistenceHandler over AgreementWalHandler


def test_evidence_handler_exposes_inner_wal_sync_by_forwarding() -> None:
    wal = InMemoryAgreementWal()
    inner = Inner()
    stacked = EvidencePersistenceHandler(
        AgreementWalHandler(inner, wal), InMemoryEvidenceOutcomeCache(), by_body
    )
    assert stacked.wal_sync(sync()).is_success
    assert stacked.wal_snapshot() == wal.load()
    assert stacked.handle_send("y") == "sent y"
    assert stacked.cache_snapshot() == EvidenceOutcomeCacheArtifact()


# ---------------------------------------------------------------------------
# async


def test_async_inner_gives_async_wrappers() -> None:
    wal_handler = AgreementWalHandler(AsyncInner(), InMemoryAgreementWal())
    cache_handler = EvidencePersistenceHandler(
        AsyncInner(), InMemoryEvidenceOutcomeCache(), by_body
    )
    assert inspect.iscoroutinefunction(wal_handler.handle_effect)
    assert inspect.iscoroutinefunction(cache_handler.handle_effect)
    assert isinstance(wal_handler, AgreementWalHandler)
    assert isinstance(cache_handler, EvidencePersistenceHandler)
    assert not inspect.iscoroutinefunction(wal_handler.wal_sync)
    sync_handler = AgreementWalHandler(Inner(), InMemoryAgreementWal())
    assert not inspect.iscoroutinefunction(sync_handler.handle_effect)


def test_async_wal_handler_forwards_and_syncs() -> None:
    inner = AsyncInner()
    wal = InMemoryAgreementWal()
    handler = AgreementWalHandler(inner, wal)
    outcome = asyncio.run(handler.handle_effect(request()))
    assert outcome == EffectOutcome.success({"n": 1})
    assert handler.wal_sync(sync(L.PROVISIONAL, L.SOFT_SAFE)).is_blocked
    assert [type(e) for e in wal.load().entries] == [EvidenceProduced, Escalation]


def test_async_stack_keeps_async_and_forwards_wal_sync() -> None:
    wal = InMemoryAgreementWal()
    stacked = EvidencePersistenceHandler(
        AgreementWalHandler(AsyncInner(), wal), InMemoryEvidenceOutcomeCache(), by_body
    )
    assert inspect.iscoroutinefunction(stacked.handle_effect)
    assert asyncio.run(stacked.handle_effect(request())).is_success
    assert stacked.wal_sync(sync()).is_success


# ---------------------------------------------------------------------------
# decorators


def test_evidence_cached_decorator_caches_and_keeps_name() -> None:
    cache = InMemoryEvidenceOutcomeCache()
    calls: list[EffectRequest] = []

    @evidence_cached(cache, by_body)
    def write(req: EffectRequest) -> EffectOutcome:
        """Write something."""
        calls.append(req)
        return EffectOutcome.success(len(calls))

    assert write(request()) == write(request()) == EffectOutcome.success(1)
    assert len(calls) == 1
    assert write.__name__ == "write"
    assert write.__doc__ == "Write something."
    assert write.cached_outcome("ev-1") == EffectOutcome.success(1)
    assert write.cache_snapshot() == cache.load()


def test_evidence_cached_async_function_stays_awaitable() -> None:
    cache = InMemoryEvidenceOutcomeCache()

    @evidence_cached(cache, by_body)
    async def write(req: EffectRequest) -> EffectOutcome:
        return EffectOutcome.blocked()

    assert inspect.iscoroutinefunction(write)
    assert asyncio.run(write(request())).is_blocked
    assert write.cached_outcome("ev-1") is None
    assert cache.load().entries == ()


def test_wal_synced_decorator_adds_wal_sync_and_snapshot() -> None:
    wal = InMemoryAgreementWal()

    @wal_synced(wal)
    def handle(req: EffectRequest) -> EffectOutcome:
        return EffectOutcome.success("ok")

    assert handle(request()) == EffectOutcome.success("ok")
    assert handle.wal_sync(sync(L.PROVISIONAL, L.SOFT_SAFE)).is_blocked
    assert handle.wal_snapshot() == wal.load()
    assert len(wal.load().entries) == 2


def test_wal_synced_async_with_mode() -> None:
    wal = InMemoryAgreementWal()

    @wal_synced(wal, mode=WalSyncMode.failure("down"))
    async def handle(req: EffectRequest) -> EffectOutcome:
        return EffectOutcome.success("ok")

    assert inspect.iscoroutinefunction(handle)
    assert asyncio.run(handle(request())) == EffectOutcome.success("ok")
    assert handle.wal_sync(sync()) == EffectOutcome.failure(EffectFailure.unavailable("down"))
    assert wal.load().entries == ()
