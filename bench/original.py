"""LABELLED BASELINE: the Rust original's algorithm, for comparison only.

This is *not* the toolkit and nothing outside ``bench/`` uses it. It
re-expresses, in Python, what the Rust original (``telltale-machine``
``durable.rs``, shared/reference/003) does, so that the harness can measure
what the toolkit's design buys. Both sides use the toolkit's own codec, so
the figures compare algorithms, not encoders:

* `OriginalFileWal.append`: reload the whole artifact from its file, push
  the entry, validate the escalation order of the whole WAL, encode the whole
  artifact again and write the file in place (``std::fs::write``: truncate
  and write; no fsync, not atomic). O(WAL size) per append.
* `original_plan`: validate the whole WAL, take the suffix after the
  checkpoint, then for every operation of the suffix (sorted) scan the whole
  suffix for its entries and scan the cache for its evidence:
  O(operations x suffix). Every operation starts at level NONE, whatever the
  WAL before the checkpoint proved (the original's known weakness).
"""

from __future__ import annotations

import time
from pathlib import Path

from durability import (
    AgreementLevel,
    AgreementWalArtifact,
    DurableRecoveryPlan,
    Escalation,
    EvidenceOutcomeCacheArtifact,
    EvidenceProduced,
    FileAgreementWal,
    Finalization,
    FinalizationOutcome,
    PersistedDurabilityArtifact,
    VisibilityGateCrossing,
    WalEntry,
)

from .runner import Context, Row, Side, interleave, ratio_row
from .workload import Entries, artifact_bytes, build_wal, cache_entry

__all__ = ["OriginalFileWal", "original_plan", "run"]


class OriginalFileWal:
    """BASELINE (the Rust original's ``FileAgreementWal``): the WAL is one v1
    artifact file, reloaded and rewritten whole on every append."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> AgreementWalArtifact:
        if not self.path.exists():
            return AgreementWalArtifact()
        return PersistedDurabilityArtifact.from_path(self.path).into_agreement_wal()

    def append(self, entry: WalEntry) -> None:
        artifact = AgreementWalArtifact(entries=[*self.load().entries, entry])
        artifact.validate_monotonic_escalations()
        data = PersistedDurabilityArtifact.agreement_wal(artifact).to_cbor()
        with open(self.path, "wb") as file:  # std::fs::write: no fsync, not atomic
            file.write(data)


def original_plan(
    checkpoint_tick: int, wal: AgreementWalArtifact, cache: EvidenceOutcomeCacheArtifact
) -> list[tuple[str, AgreementLevel, FinalizationOutcome | None, list[str], bool]]:
    """BASELINE (the Rust original's ``build_decisions``): per operation,
    ``(operation_id, level, finalization, cached_evidence_ids, gate_crossed)``."""
    wal.validate_monotonic_escalations()
    suffix = wal.read_since(checkpoint_tick)
    decisions = []
    for op in sorted({entry.operation_id for entry in suffix}):
        level = AgreementLevel.NONE
        finalization: FinalizationOutcome | None = None
        gate_crossed = False
        evidence_ids: list[str] = []
        for entry in suffix:  # the whole suffix, once per operation
            if entry.operation_id != op:
                continue
            if isinstance(entry, Escalation):
                if entry.new_level.rank > level.rank:
                    level = entry.new_level
            elif isinstance(entry, EvidenceProduced):
                evidence_ids.append(entry.evidence.evidence_id)
                if entry.evidence.level.rank > level.rank:
                    level = entry.evidence.level
            elif isinstance(entry, Finalization):
                finalization = entry.outcome
                if entry.outcome is FinalizationOutcome.FINALIZED:
                    level = AgreementLevel.FINALIZED
            elif isinstance(entry, VisibilityGateCrossing):
                gate_crossed = True
        cached = [
            item.evidence_id
            for item in cache.entries
            if any(evidence_id == item.evidence_id for evidence_id in evidence_ids)
        ]
        decisions.append((op, level, finalization, cached, gate_crossed))
    return decisions


def run(ctx: Context) -> list[Row]:
    """The rows comparing the toolkit with the original's algorithm."""
    return [_appends(ctx), _planner(ctx)]


def _appends(ctx: Context) -> Row:
    """Durable appends to a WAL of `original_wal` entries vs the original's
    rewrite-per-append of the same WAL (which does not even fsync)."""
    sizes = ctx.sizes
    n = sizes.original_wal
    ctx.log(f"original: building two WALs of {n} entries (ours, and the original's artifact)")
    base = Entries()
    ours_path = ctx.path("ours-10k.log")
    build_wal(ours_path, base, n)
    theirs = OriginalFileWal(ctx.path("original-10k.cbor"))
    theirs.path.write_bytes(artifact_bytes(Entries().take(n)))
    wal = FileAgreementWal(ours_path)
    ours_entries = Entries("ours-")
    their_entries = Entries("theirs-")

    def ours() -> float:
        batch = ours_entries.take(sizes.ours_at_original)
        append = wal.append
        start = time.perf_counter()
        for entry in batch:
            append(entry)
        return time.perf_counter() - start

    def original() -> float:
        batch = their_entries.take(sizes.original_appends)
        start = time.perf_counter()
        for entry in batch:
            theirs.append(entry)
        return time.perf_counter() - start

    series = interleave(
        ctx,
        f"durable append vs the original's rewrite-per-append at {n} entries",
        [
            Side(f"durable append at {n:,} entries", ours, sizes.ours_at_original),
            Side(
                f"BASELINE original rewrite-per-append at {n:,} entries (no fsync)",
                original,
                sizes.original_appends,
            ),
        ],
        sizes.reps,
        sizes.warmup,
    )
    detail = (
        f"WAL of {n:,} entries; per repetition {sizes.ours_at_original} durable appends vs "
        f"{sizes.original_appends} rewrites; {sizes.reps} repetitions"
    )

    def profile_ours() -> object:
        for entry in Entries.unique("profile").take(sizes.ours_at_original):
            wal.append(entry)
        return None

    return ratio_row("vs_original_10k", series[0], series[1], detail=detail, profile=profile_ours)


def _planner(ctx: Context) -> Row:
    """Planning a WAL of `original_wal` entries with no checkpoint (every entry
    in the suffix): the toolkit's one-pass planner vs the original's."""
    sizes = ctx.sizes
    n = sizes.original_wal
    entries = Entries().take(n)
    wal = AgreementWalArtifact(entries=entries)
    cache = EvidenceOutcomeCacheArtifact(
        entries=[
            cache_entry(e.evidence.evidence_id) for e in entries if isinstance(e, EvidenceProduced)
        ]
    )

    def ours() -> float:
        start = time.perf_counter()
        DurableRecoveryPlan.from_checkpoint(None, None, wal, cache)
        return time.perf_counter() - start

    def original() -> float:
        start = time.perf_counter()
        original_plan(0, wal, cache)
        return time.perf_counter() - start

    series = interleave(
        ctx,
        f"planner vs the original's planner, {n} entries",
        [
            Side("DurableRecoveryPlan.from_checkpoint", ours, n),
            Side("BASELINE original planner (suffix scanned per operation)", original, n),
        ],
        sizes.load_reps,
        0,
    )
    detail = (
        f"{n:,} entries, {n // 4:,} operations, {len(cache.entries):,} cached outcomes; "
        f"{sizes.load_reps} repetitions; figure = entries planned per second, ours / theirs"
    )
    return ratio_row("planner_vs_original", series[0], series[1], detail=detail)
