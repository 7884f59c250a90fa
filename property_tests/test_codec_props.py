"""Codec invariants on generated artifacts: round trip and byte stability."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from durability.artifact import AgreementWalArtifact, WalEntry
from durability.errors import EscalationOrderError
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
