"""The data every group uses: valid WAL entries, the exact bytes the file
WAL writes for them, their CBOR, and WALs and state directories of a given
size. Only the public API of `durability` is used, so the harness keeps
working while the backends change underneath it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path

import cbor2

from durability import (
    AgreementEvidence,
    AgreementEvidenceKind,
    AgreementLevel,
    AgreementState,
    AgreementWalArtifact,
    EffectOutcome,
    Escalation,
    EvidenceOutcomeCacheEntry,
    EvidenceProduced,
    FileAgreementWal,
    Finalization,
    FinalizationOutcome,
    PersistedDurabilityArtifact,
    StateDirectory,
    SyncPolicy,
    VisibilityGateCrossing,
    WalEntry,
    WalSyncRequest,
)

__all__ = [
    "ENTRIES_PER_OPERATION",
    "Entries",
    "artifact_bytes",
    "build_state_directory",
    "build_wal",
    "cache_entry",
    "entry_cbor",
    "fill",
    "record_bytes",
    "sync_request",
]

#: Each operation writes what a ``wal_sync`` to FINALIZED would: its
#: evidence, an escalation, a gate crossing and a finalization.
ENTRIES_PER_OPERATION = 4


class Entries:
    """Fresh, valid WAL entries, four per operation, in WAL order.

    Entry ``i`` (counting from 0 over the life of the generator) belongs to
    operation ``i // 4`` and has tick ``i + 1``, so a WAL built from one
    generator has ticks 1..N and a checkpoint at tick ``N - k`` leaves a
    suffix of exactly ``k`` entries. `prefix` keeps operation ids distinct
    between generators writing one WAL.
    """

    _prefixes = 0

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.count = 0

    @classmethod
    def unique(cls, name: str) -> Entries:
        """A generator whose operation ids no other generator made by
        `unique` uses (``name1-op#0``, ``name2-op#0``, ...)."""
        cls._prefixes += 1
        return cls(f"{name}{cls._prefixes}-")

    def take(self, n: int) -> list[WalEntry]:
        """The next `n` entries."""
        out = [self._entry(i) for i in range(self.count, self.count + n)]
        self.count += n
        return out

    def _entry(self, i: int) -> WalEntry:
        op = f"{self.prefix}op#{i // ENTRIES_PER_OPERATION}"
        tick = i + 1
        step = i % ENTRIES_PER_OPERATION
        if step == 0:
            return EvidenceProduced(evidence=evidence_of(op, i), tick=tick)
        if step == 1:
            return Escalation(
                operation_id=op,
                previous_level=AgreementLevel.NONE,
                new_level=AgreementLevel.SOFT_SAFE,
                evidence_id=f"{op}/cert",
                tick=tick,
            )
        if step == 2:
            return VisibilityGateCrossing(
                operation_id=op,
                downstream_coroutine_id="apply",
                gate_level=AgreementLevel.SOFT_SAFE,
                tick=tick,
            )
        return Finalization(operation_id=op, outcome=FinalizationOutcome.FINALIZED, tick=tick)


def evidence_of(op: str, i: int) -> AgreementEvidence:
    """The certificate of operation `op` (its evidence id is ``op/cert``)."""
    return AgreementEvidence(
        evidence_id=f"{op}/cert",
        operation_id=op,
        reference=f"cert://{i}",
        level=AgreementLevel.SOFT_SAFE,
        kind=AgreementEvidenceKind.CERTIFICATE,
        authoritative=True,
    )


def sync_request(op: str, tick: int) -> WalSyncRequest:
    """A ``wal_sync`` proving SOFT_SAFE for a new operation: it writes an
    evidence, an escalation and the gate crossing (one batch, one sync)."""
    cert = evidence_of(op, tick)
    state = AgreementState(
        operation_id=op,
        contract_name="kv",
        level=AgreementLevel.SOFT_SAFE,
        evidence_ids=[cert.evidence_id],
    )
    return WalSyncRequest(
        operation_id=op,
        downstream_coroutine_id="apply",
        gate_level=AgreementLevel.SOFT_SAFE,
        agreement_state=state,
        agreement_evidence=[cert],
        tick=tick,
    )


def cache_entry(evidence_id: str) -> EvidenceOutcomeCacheEntry:
    """A successful put bound to `evidence_id`."""
    return EvidenceOutcomeCacheEntry(
        evidence_id=evidence_id,
        interface_name="kv",
        operation_name="put",
        outcome=EffectOutcome.success({"written": evidence_id}),
    )


def artifact_bytes(entries: Sequence[WalEntry]) -> bytes:
    """The v1 artifact holding `entries` (what the Rust original stores)."""
    return PersistedDurabilityArtifact.agreement_wal(
        AgreementWalArtifact(entries=entries)
    ).to_cbor()


def entry_cbor(entries: Sequence[WalEntry]) -> list[bytes]:
    """The CBOR of each entry exactly as a v1 artifact holds it (what the
    SQL peers store per row)."""
    plain = cbor2.loads(artifact_bytes(entries))["payload"]["payload"]["entries"]
    return [cbor2.dumps(item) for item in plain]


def record_bytes(groups: Sequence[Sequence[WalEntry]], scratch: Path) -> list[bytes]:
    """The bytes the file WAL appends for each group (one ``append_batch``
    each), captured from a scratch log: what the raw baselines write."""
    path = scratch.with_suffix(".capture.log")
    with FileAgreementWal(path, sync=SyncPolicy.NONE) as wal:
        sizes = [os.path.getsize(path)]
        for group in groups:
            wal.append_batch(group)
            sizes.append(os.path.getsize(path))
    data = path.read_bytes()
    path.unlink()
    return [data[a:b] for a, b in itertools.pairwise(sizes)]


def fill(
    wal: FileAgreementWal,
    entries: Entries,
    n: int,
    *,
    batch: int = 10_000,
    blobs: list[bytes] | None = None,
) -> None:
    """Append `n` entries to `wal` in large batches, then sync once. With
    `blobs`, also collect the v1 artifact bytes of each batch (for the raw
    decode baseline)."""
    left = n
    while left:
        chunk = entries.take(min(batch, left))
        wal.append_batch(chunk)
        if blobs is not None:
            blobs.append(artifact_bytes(chunk))
        left -= len(chunk)
    wal.sync()


def build_wal(path: Path, entries: Entries, n: int) -> None:
    """A WAL file of `n` entries, written fast: large batches under
    ``SyncPolicy.NONE``, then one sync."""
    with FileAgreementWal(path, sync=SyncPolicy.NONE) as wal:
        fill(wal, entries, n)


def build_state_directory(
    path: Path, n: int, suffix: int, *, blobs: list[bytes] | None = None
) -> int:
    """A state directory whose WAL holds `n` entries (ticks 1..n), a
    checkpoint leaving the last ``min(suffix, n)`` in the suffix, and the
    outcomes of the suffix's evidence in the cache. Returns the checkpoint tick."""
    with StateDirectory(path, sync=SyncPolicy.NONE) as store:
        fill(store.wal, Entries(), n, blobs=blobs)
        tick = n - min(suffix, n)
        first_op = tick // ENTRIES_PER_OPERATION
        for op in range(first_op, (n + ENTRIES_PER_OPERATION - 1) // ENTRIES_PER_OPERATION):
            store.cache.put(cache_entry(f"op#{op}/cert"))
        store.cache.sync()
    with StateDirectory(path) as store:
        store.checkpoint(tick, b"checkpoint state")
    return tick
