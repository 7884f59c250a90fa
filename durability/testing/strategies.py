"""Hypothesis strategies for testing code that writes or reads durability data.

Requires `hypothesis` (the optional ``testing`` extra,
``pip install durability[testing]``, installs it); importing this module, or
any of its names from `durability.testing`, without it raises `ImportError`.

Use it to check that your own protocol only ever escalates forward, or that
your code round-trips every artifact the toolkit can produce::

    from hypothesis import given
    from durability.testing import assert_escalations_monotonic, valid_wal_entries

    @given(valid_wal_entries())
    def test_my_replay_accepts_any_valid_wal(entries):
        assert_escalations_monotonic(entries)
        my_replay(entries)

Every strategy draws values that the v1 codec accepts: ticks fit in 64 bits,
responses and bodies are plain CBOR data (`plain_cbor`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hypothesis import strategies as st

from ..artifact import (
    AgreementWalArtifact,
    DurableRecoveryMetadata,
    Escalation,
    EvidenceOutcomeCacheArtifact,
    EvidenceOutcomeCacheEntry,
    EvidenceProduced,
    Finalization,
    VisibilityGateCrossing,
    WalEntry,
    WalSyncRequest,
)
from ..effects import EffectFailure, EffectFailureKind, EffectOutcome, EffectRequest, failed
from ..errors import EscalationOrderError
from ..model import (
    AgreementEvidence,
    AgreementEvidenceKind,
    AgreementLevel,
    AgreementState,
    FinalizationOutcome,
)
from ..persisted import PersistedDurabilityArtifact

__all__ = [
    "agreement_evidence",
    "agreement_levels",
    "agreement_states",
    "assert_escalations_monotonic",
    "cache_artifacts",
    "cache_entries",
    "effect_failures",
    "effect_outcomes",
    "effect_requests",
    "escalation_paths",
    "escalations",
    "evidence_produced",
    "finalizations",
    "gate_crossings",
    "operation_ids",
    "persisted_artifacts",
    "plain_cbor",
    "recovery_metadata",
    "ticks",
    "valid_wal_entries",
    "wal_artifacts",
    "wal_entries",
    "wal_sync_requests",
]

_LEVELS = list(AgreementLevel)
_U64_MAX = 2**64 - 1
_names = st.text(st.characters(codec="utf-8"), max_size=12)
_opt_names = st.none() | _names
_opt_uint = st.none() | st.integers(0, _U64_MAX)


def ticks(max_tick: int = 1_000) -> st.SearchStrategy[int]:
    """Ticks from 0 to `max_tick` (small by default, so ticks collide)."""
    return st.integers(0, max_tick)


def operation_ids(count: int = 4) -> st.SearchStrategy[str]:
    """One of `count` operation ids ``op-0`` .. ``op-{count-1}``, so entries
    of one operation meet often."""
    return st.sampled_from([f"op-{i}" for i in range(count)])


def agreement_levels() -> st.SearchStrategy[AgreementLevel]:
    """Any `AgreementLevel`."""
    return st.sampled_from(_LEVELS)


def plain_cbor(max_leaves: int = 10) -> st.SearchStrategy[Any]:
    """Plain CBOR data: ``None``, bools, 64-bit ints, finite floats, text,
    bytes, and lists and text-keyed maps of these (what a response or a
    request body may hold; it round-trips through the codec unchanged)."""
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(-(2**64), _U64_MAX)
        | st.floats(allow_nan=False, allow_infinity=False)
        | _names
        | st.binary(max_size=16)
    )
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_names, inner, max_size=4),
        max_leaves=max_leaves,
    )


def agreement_evidence(
    operation_id: st.SearchStrategy[str] | None = None,
    level: st.SearchStrategy[AgreementLevel] | None = None,
) -> st.SearchStrategy[AgreementEvidence]:
    """`AgreementEvidence` for `operation_id` (default `operation_ids`) at
    `level` (default any level)."""
    return st.builds(
        AgreementEvidence,
        evidence_id=st.sampled_from([f"ev-{i}" for i in range(8)]),
        operation_id=operation_ids() if operation_id is None else operation_id,
        session=_opt_uint,
        owner_id=_opt_names,
        level=agreement_levels() if level is None else level,
        kind=st.sampled_from(list(AgreementEvidenceKind)),
        reference=_names,
        authoritative=st.booleans(),
    )


def escalations(
    operation_id: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[Escalation]:
    """Any `Escalation`, forward or not (see `escalation_paths` for legal ones)."""
    return st.builds(
        Escalation,
        operation_id=operation_ids() if operation_id is None else operation_id,
        previous_level=agreement_levels(),
        new_level=agreement_levels(),
        evidence_id=st.none() | st.sampled_from([f"ev-{i}" for i in range(8)]),
        tick=ticks(),
    )


def evidence_produced(
    operation_id: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[EvidenceProduced]:
    """An `EvidenceProduced` entry."""
    return st.builds(EvidenceProduced, evidence=agreement_evidence(operation_id), tick=ticks())


def finalizations(
    operation_id: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[Finalization]:
    """A `Finalization` entry with any outcome."""
    return st.builds(
        Finalization,
        operation_id=operation_ids() if operation_id is None else operation_id,
        outcome=st.sampled_from(list(FinalizationOutcome)),
        materialization_proof_id=_opt_names,
        canonical_handle_id=_opt_names,
        tick=ticks(),
    )


def gate_crossings(
    operation_id: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[VisibilityGateCrossing]:
    """A `VisibilityGateCrossing` entry at any gate level."""
    return st.builds(
        VisibilityGateCrossing,
        operation_id=operation_ids() if operation_id is None else operation_id,
        downstream_coroutine_id=_names,
        gate_level=agreement_levels(),
        tick=ticks(),
    )


def wal_entries() -> st.SearchStrategy[WalEntry]:
    """Any single WAL entry, of any of the four kinds."""
    return escalations() | evidence_produced() | finalizations() | gate_crossings()


@st.composite
def escalation_paths(draw: st.DrawFn, operation_id: str, *, max_steps: int = 4) -> list[Escalation]:
    """A legal escalation sequence for `operation_id`: each escalation starts
    at or above the last one's `new_level` and never goes down; ticks are
    arbitrary. ``AgreementWalArtifact(entries=path)`` always validates."""
    steps = draw(st.integers(0, max_steps))
    path: list[Escalation] = []
    last = 0
    for _ in range(steps):
        previous = draw(st.integers(last, len(_LEVELS) - 1))
        new = draw(st.integers(previous, len(_LEVELS) - 1))
        evidence_id = draw(st.none() | st.sampled_from([f"ev-{i}" for i in range(8)]))
        path.append(
            Escalation(
                operation_id=operation_id,
                previous_level=_LEVELS[previous],
                new_level=_LEVELS[new],
                evidence_id=evidence_id,
                tick=draw(ticks()),
            )
        )
        last = new
    return path


@st.composite
def valid_wal_entries(
    draw: st.DrawFn, *, operations: int = 4, max_other: int = 12
) -> list[WalEntry]:
    """Entries of a valid WAL, in WAL order: per-operation monotonic
    escalations (`escalation_paths`) interleaved at random with up to
    `max_other` evidence, finalization and gate entries. Ticks are in no
    particular order. Gates may cross above what the WAL proves (the planner
    reports those as anomalies)."""
    ids = [f"op-{i}" for i in range(operations)]
    queues: list[list[WalEntry]] = [list(draw(escalation_paths(op))) for op in ids]
    others = draw(
        st.lists(
            evidence_produced(st.sampled_from(ids))
            | finalizations(st.sampled_from(ids))
            | gate_crossings(st.sampled_from(ids)),
            max_size=max_other,
        )
    )
    queues.append(list(others))
    labels = [index for index, queue in enumerate(queues) for _ in queue]
    order = draw(st.permutations(labels))
    return [queues[index].pop(0) for index in order]


def wal_artifacts(*, valid: bool = True) -> st.SearchStrategy[AgreementWalArtifact]:
    """`AgreementWalArtifact` values: valid ones (`valid_wal_entries`) or,
    with ``valid=False``, any entries at all (possibly regressing)."""
    entries = valid_wal_entries() if valid else st.lists(wal_entries(), max_size=12)
    return st.builds(AgreementWalArtifact, entries=entries)


def effect_failures() -> st.SearchStrategy[EffectFailure]:
    """An `EffectFailure` of any kind."""
    return st.builds(EffectFailure, kind=st.sampled_from(list(EffectFailureKind)), message=_names)


def effect_outcomes() -> st.SearchStrategy[EffectOutcome]:
    """Success (with a plain-CBOR response), blocked or failure outcomes."""
    return (
        st.builds(EffectOutcome.success, plain_cbor())
        | st.just(EffectOutcome.blocked())
        | st.builds(failed, effect_failures())
    )


def cache_entries() -> st.SearchStrategy[EvidenceOutcomeCacheEntry]:
    """An `EvidenceOutcomeCacheEntry` with any outcome."""
    return st.builds(
        EvidenceOutcomeCacheEntry,
        evidence_id=st.sampled_from([f"ev-{i}" for i in range(8)]),
        interface_name=_names,
        operation_name=_names,
        outcome=effect_outcomes(),
    )


def cache_artifacts() -> st.SearchStrategy[EvidenceOutcomeCacheArtifact]:
    """An `EvidenceOutcomeCacheArtifact` with distinct evidence ids."""
    entries = st.lists(cache_entries(), max_size=6, unique_by=lambda e: e.evidence_id)
    return st.builds(EvidenceOutcomeCacheArtifact, entries=entries)


def recovery_metadata() -> st.SearchStrategy[DurableRecoveryMetadata]:
    """Any `DurableRecoveryMetadata`."""
    ids = st.lists(_names, max_size=4)
    return st.builds(
        DurableRecoveryMetadata,
        checkpoint_tick=st.integers(0, _U64_MAX),
        wal_tail_start_tick=_opt_uint,
        highest_recovered_tick=_opt_uint,
        resumed_operation_ids=ids,
        terminal_operation_ids=ids,
        cached_evidence_ids=ids,
    )


def persisted_artifacts(*, valid: bool = True) -> st.SearchStrategy[PersistedDurabilityArtifact]:
    """A `PersistedDurabilityArtifact` holding a WAL (valid unless
    ``valid=False``), an evidence outcome cache or recovery metadata."""
    return (
        st.builds(PersistedDurabilityArtifact.agreement_wal, wal_artifacts(valid=valid))
        | st.builds(PersistedDurabilityArtifact.evidence_outcome_cache, cache_artifacts())
        | st.builds(PersistedDurabilityArtifact.recovery_metadata, recovery_metadata())
    )


def effect_requests() -> st.SearchStrategy[EffectRequest]:
    """An `EffectRequest` with a plain-CBOR `body`."""
    return st.builds(
        EffectRequest,
        interface_name=_names,
        operation_name=_names,
        tick=ticks(),
        operation_id=st.none() | operation_ids(),
        session=_opt_uint,
        effect_id=_opt_uint,
        body=plain_cbor(),
    )


def agreement_states() -> st.SearchStrategy[AgreementState]:
    """An `AgreementState` snapshot."""
    return st.builds(
        AgreementState,
        operation_id=operation_ids(),
        session=_opt_uint,
        owner_id=_opt_names,
        contract_name=_names,
        level=agreement_levels(),
        finalization=st.none() | st.sampled_from(list(FinalizationOutcome)),
        evidence_ids=st.lists(_names, max_size=3),
        last_updated_tick=st.none() | ticks(),
        reason=_opt_names,
    )


def wal_sync_requests() -> st.SearchStrategy[WalSyncRequest]:
    """A `WalSyncRequest` with optional state and evidence."""
    return st.builds(
        WalSyncRequest,
        operation_id=operation_ids(),
        downstream_coroutine_id=_names,
        gate_level=agreement_levels(),
        agreement_state=st.none() | agreement_states(),
        agreement_evidence=st.lists(agreement_evidence(), max_size=3),
        tick=ticks(),
    )


def assert_escalations_monotonic(entries: Iterable[WalEntry]) -> None:
    """Fail the test (`AssertionError`) unless the escalations in `entries`
    never regress nor are reordered per operation, exactly the rule every
    backend enforces on append.

    >>> assert_escalations_monotonic([])
    """
    try:
        AgreementWalArtifact(entries=entries).validate_monotonic_escalations()
    except EscalationOrderError as exc:
        raise AssertionError(str(exc)) from exc
