"""Codec invariants on generated artifacts: round trip and byte stability."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from durability.artifact import (
    AgreementWalArtifact,
    EvidenceOutcomeCacheArtifact,
    EvidenceOutcomeCacheEntry,
    WalEntry,
    check_cache_entry,
)
from durability.codec import decode_item, dumps, from_plain, to_plain
from durability.effects import EffectOutcome
from durability.errors import EncodeError, EscalationOrderError
from durability.limits import MAX_DEPTH, RESPONSE_DEPTH
from durability.persisted import PersistedDurabilityArtifact
from durability.testing import (
    assert_escalations_monotonic,
    persisted_artifacts,
    valid_wal_entries,
    wal_artifacts,
)

PROPS = settings(max_examples=100, deadline=None)


@PROPS
@given(persisted_artifacts(valid=False))
def test_round_trip_is_identity(artifact: PersistedDurabilityArtifact) -> None:
    assert PersistedDurabilityArtifact.from_cbor(artifact.to_cbor()) == artifact


@PROPS
@given(persisted_artifacts())
def test_to_cbor_is_byte_stable(artifact: PersistedDurabilityArtifact) -> None:
    data = artifact.to_cbor()
    assert artifact.to_cbor() == data
    assert PersistedDurabilityArtifact.from_cbor(data).to_cbor() == data


@PROPS
@given(valid_wal_entries())
def test_generated_valid_wals_pass_validation(entries: list[WalEntry]) -> None:
    AgreementWalArtifact(entries=entries).validate_monotonic_escalations()
    assert_escalations_monotonic(entries)


@PROPS
@given(wal_artifacts(valid=False))
def test_assert_helper_agrees_with_validation(wal: AgreementWalArtifact) -> None:
    try:
        wal.validate_monotonic_escalations()
    except EscalationOrderError:
        with pytest.raises(AssertionError, match="regress"):
            assert_escalations_monotonic(wal.entries)
    else:
        assert_escalations_monotonic(wal.entries)


def _nest(depth: int, use_maps: list[bool]) -> object:
    value: object = 0
    for level in range(depth):
        value = {"k": value} if use_maps[level % len(use_maps)] else [value]
    return value


@PROPS
@given(
    st.integers(min_value=MAX_DEPTH - RESPONSE_DEPTH - 4, max_value=MAX_DEPTH),
    st.lists(st.booleans(), min_size=1, max_size=5),
)
def test_a_cache_entry_encodes_exactly_when_its_exported_artifact_does(
    depth: int, use_maps: list[bool]
) -> None:
    # whatever a cache accepts (every backend runs check_cache_entry first),
    # export can write, and decoding a record of it agrees
    entry = EvidenceOutcomeCacheEntry(
        evidence_id="e",
        interface_name="i",
        operation_name="o",
        outcome=EffectOutcome.success(_nest(depth, use_maps)),
    )
    artifact = PersistedDurabilityArtifact.evidence_outcome_cache(
        EvidenceOutcomeCacheArtifact(entries=[entry])
    )
    try:
        check_cache_entry(entry)
    except EncodeError:
        with pytest.raises(EncodeError):
            artifact.to_cbor()
        assert depth > MAX_DEPTH - RESPONSE_DEPTH
        return
    assert depth <= MAX_DEPTH - RESPONSE_DEPTH
    assert PersistedDurabilityArtifact.from_cbor(artifact.to_cbor()) == artifact
    record = dumps([to_plain(entry)])
    decoded = from_plain({"entries": decode_item(record)[0]}, EvidenceOutcomeCacheArtifact)
    assert decoded.entries == (entry,)
