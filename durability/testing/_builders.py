"""One-line builders for the contract suite's WAL and cache entries (private)."""

from __future__ import annotations

import hashlib

from ..artifact import (
    Escalation,
    EvidenceOutcomeCacheEntry,
    EvidenceProduced,
    Finalization,
    VisibilityGateCrossing,
)
from ..effects import EffectFailure, EffectOutcome, failed
from ..intents import EffectIntent
from ..model import AgreementEvidence, AgreementEvidenceKind, AgreementLevel, FinalizationOutcome

L = AgreementLevel
F = FinalizationOutcome
LEVELS = list(AgreementLevel)
FAILED = failed(EffectFailure.unavailable("disk gone"))


def esc(
    op: str, prev: AgreementLevel, new: AgreementLevel, tick: int, eid: str | None = None
) -> Escalation:
    """An escalation of `op` from `prev` to `new`."""
    return Escalation(
        operation_id=op, previous_level=prev, new_level=new, evidence_id=eid, tick=tick
    )


def ev(op: str, eid: str, level: AgreementLevel, tick: int) -> EvidenceProduced:
    """Authoritative certificate evidence `eid` for `op` at `level`."""
    evidence = AgreementEvidence(
        evidence_id=eid,
        operation_id=op,
        level=level,
        kind=AgreementEvidenceKind.CERTIFICATE,
        reference=f"ref://{eid}",
        authoritative=True,
    )
    return EvidenceProduced(evidence=evidence, tick=tick)


def fin(op: str, outcome: FinalizationOutcome, tick: int) -> Finalization:
    """A finalization of `op`."""
    return Finalization(operation_id=op, outcome=outcome, tick=tick)


def gate(
    op: str, level: AgreementLevel, tick: int, coroutine: str = "coro#1"
) -> VisibilityGateCrossing:
    """A gate crossing of `op` towards `coroutine`."""
    return VisibilityGateCrossing(
        operation_id=op, downstream_coroutine_id=coroutine, gate_level=level, tick=tick
    )


def binding(eid: str, outcome: EffectOutcome | None = None) -> EvidenceOutcomeCacheEntry:
    """A cache entry for `eid` (a success naming it unless `outcome` is given)."""
    return EvidenceOutcomeCacheEntry(
        evidence_id=eid,
        interface_name="Storage",
        operation_name="write",
        outcome=outcome if outcome is not None else EffectOutcome.success({"written": eid}),
    )


def intent(
    eid: str, attempt: int = 1, *, created: int = 1_700_000_000_000, op: str | None = "op"
) -> EffectIntent:
    """Attempt `attempt` of the effect bound to `eid` (a ``Storage.write``)."""
    return EffectIntent(
        evidence_id=eid,
        interface_name="Storage",
        operation_name="write",
        operation_id=op,
        attempt=attempt,
        request_digest=hashlib.sha256(eid.encode()).hexdigest(),
        created_unix_ms=created,
    )
