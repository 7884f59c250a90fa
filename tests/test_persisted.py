"""The persisted envelope: kinds, schema versions, size cap, files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import cbor2
import pytest

import durability.persisted as persisted
from durability import (
    MAX_ARTIFACT_BYTES,
    SCHEMA_VERSION,
    AgreementWalArtifact,
    ArtifactTooLargeError,
    DecodeError,
    DurabilityError,
    DurableRecoveryMetadata,
    EvidenceOutcomeCacheArtifact,
    PayloadKindError,
    PersistedDurabilityArtifact,
    SchemaVersionError,
    register_schema_version,
)
from tests.helpers import L, esc

WAL = PersistedDurabilityArtifact.agreement_wal(
    AgreementWalArtifact(entries=[esc("op", L.NONE, L.PROVISIONAL, 1)])
)
CACHE = PersistedDurabilityArtifact.evidence_outcome_cache(EvidenceOutcomeCacheArtifact())
META = PersistedDurabilityArtifact.recovery_metadata(DurableRecoveryMetadata(checkpoint_tick=3))


def test_constants() -> None:
    assert SCHEMA_VERSION == "telltale.machine.durability.v1"
    assert MAX_ARTIFACT_BYTES == 64 * 1024 * 1024


@pytest.mark.parametrize(
    ("artifact", "method", "message"),
    [
        (
            CACHE,
            "into_agreement_wal",
            "contains an evidence outcome cache payload, not an agreement WAL",
        ),
        (META, "into_agreement_wal", "contains recovery metadata, not an agreement WAL"),
        (
            WAL,
            "into_evidence_outcome_cache",
            "contains an agreement WAL payload, not an evidence outcome cache",
        ),
        (
            META,
            "into_evidence_outcome_cache",
            "contains recovery metadata, not an evidence outcome cache",
        ),
        (WAL, "into_recovery_metadata", "contains an agreement WAL payload, not recovery metadata"),
    ],
)
def test_into_wrong_kind_names_the_payload_found(
    artifact: PersistedDurabilityArtifact, method: str, message: str
) -> None:
    with pytest.raises(PayloadKindError, match=message):
        getattr(artifact, method)()


def test_into_right_kind_returns_payload() -> None:
    assert WAL.into_agreement_wal() is WAL.payload
    assert CACHE.into_evidence_outcome_cache() is CACHE.payload
    assert META.into_recovery_metadata() is META.payload


def test_unknown_schema_version_is_named_before_payload_is_read() -> None:
    data = cbor2.dumps(
        {"schema_version": "telltale.machine.durability.v9", "payload": "not even a map"}
    )
    with pytest.raises(SchemaVersionError, match=r"durability\.v9") as info:
        PersistedDurabilityArtifact.from_cbor(data)
    assert isinstance(info.value, DecodeError)
    assert str(info.value).startswith("decode persisted durability artifact")


def test_registered_schema_version_is_upgraded(monkeypatch: pytest.MonkeyPatch) -> None:
    # registered in a copy of the registry, so the version does not leak into other tests
    monkeypatch.setattr(persisted, "SCHEMA_REGISTRY", persisted.SCHEMA_REGISTRY.copy())

    def upgrade(envelope: dict[str, object]) -> dict[str, object]:
        old = envelope["payload"]
        assert isinstance(old, dict)
        return {
            "schema_version": SCHEMA_VERSION,
            "payload": {"kind": "recovery_metadata", "payload": old},
        }

    register_schema_version("test.durability.v0", upgrade)
    data = cbor2.dumps({"schema_version": "test.durability.v0", "payload": {"checkpoint_tick": 5}})
    art = PersistedDurabilityArtifact.from_cbor(data)
    assert art.into_recovery_metadata() == DurableRecoveryMetadata(checkpoint_tick=5)
    assert art.schema_version == "test.durability.v0"


def test_oversized_input_is_refused_before_decoding() -> None:
    with pytest.raises(ArtifactTooLargeError, match="max is 67108864"):
        PersistedDurabilityArtifact.from_cbor(b"\xff" * (MAX_ARTIFACT_BYTES + 1))


def test_oversized_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.cbor"
    with open(path, "wb") as handle:
        handle.truncate(MAX_ARTIFACT_BYTES + 1)  # sparse: nothing to read
    with pytest.raises(ArtifactTooLargeError, match=str(path)):
        PersistedDurabilityArtifact.from_path(path)


def test_write_then_read_path_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "wal.cbor"
    WAL.write_to_path(path)
    assert PersistedDurabilityArtifact.from_path(str(path)) == WAL
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    META.write_to_path(path)  # replaces atomically
    assert PersistedDurabilityArtifact.from_path(path) == META
    assert sorted(os.listdir(tmp_path)) == ["wal.cbor"]  # no temporary left behind


def test_missing_file_error_names_it(tmp_path: Path) -> None:
    with pytest.raises(DurabilityError, match=r"nope\.cbor"):
        PersistedDurabilityArtifact.from_path(tmp_path / "nope.cbor")


def test_damaged_file_error_names_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.cbor"
    path.write_bytes(WAL.to_cbor()[:-3])
    with pytest.raises(DecodeError, match=r"^decode persisted durability artifact.*bad\.cbor"):
        PersistedDurabilityArtifact.from_path(path)
