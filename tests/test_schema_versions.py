"""The schema-version registry (durability/schema_versions.py): a v2 read
beside v1 through an upcaster, an unknown version refused by name.

Every test extends a *copy* of the toolkit's registry, so nothing leaks into
other tests: the default reader stays a v1 reader (checked at the end)."""

from __future__ import annotations

import doctest
from pathlib import Path
from typing import Any

import cbor2
import pytest

import durability.schema_versions
from durability import (
    SCHEMA_VERSION,
    DecodeError,
    EffectOutcome,
    EvidenceOutcomeCacheEntry,
    FileEvidenceOutcomeCache,
    PersistedDurabilityArtifact,
    SchemaVersionError,
)
from durability.backends.file import export_log
from durability.persisted import SCHEMA_REGISTRY
from durability.schema_versions import SchemaRegistry
from tests.helpers import L, esc

V1 = SCHEMA_VERSION
V2 = "telltale.machine.durability.v2"
V3 = "telltale.machine.durability.v3"
CACHE = "evidence_outcome_cache"


def cache_v1_to_v2(body: dict[str, Any]) -> dict[str, Any]:
    """An imagined v2 cache: the effect's names grouped under ``"effect"``."""
    return {
        "entries": [
            {
                "evidence_id": entry["evidence_id"],
                "effect": {
                    "interface": entry["interface_name"],
                    "operation": entry["operation_name"],
                },
                "outcome": entry["outcome"],
            }
            for entry in body["entries"]
        ]
    }


def cache_v2_to_v3(body: dict[str, Any]) -> dict[str, Any]:
    """A v3 that keys the entries by evidence id."""
    return {"by_id": {entry["evidence_id"]: entry for entry in body["entries"]}}


@pytest.fixture
def v2_reader() -> SchemaRegistry:
    registry = SCHEMA_REGISTRY.copy()
    registry.add_version(CACHE, V2, cache_v1_to_v2)
    return registry


@pytest.fixture
def v1_cache_file(tmp_path: Path) -> Path:
    """A v1 cache artifact written by the real writers: a file cache log's
    puts, exported (`durability export`) and written with `write_to_path`."""
    with FileEvidenceOutcomeCache(tmp_path / "evidence.log") as cache:
        for n, response in ((1, "paid"), (2, {"receipt": 7})):
            cache.put(
                EvidenceOutcomeCacheEntry(
                    evidence_id=f"order#{n}/pay",
                    interface_name="Payments",
                    operation_name="pay",
                    outcome=EffectOutcome.success(response),
                )
            )
    out = tmp_path / "cache.cbor"
    export_log(tmp_path / "evidence.log").write_to_path(out)
    return out


def envelope(version: str, kind: str, body: object) -> bytes:
    return cbor2.dumps({"schema_version": version, "payload": {"kind": kind, "payload": body}})


def test_v1_file_reads_as_v2_through_the_upcaster(
    v2_reader: SchemaRegistry, v1_cache_file: Path
) -> None:
    data = v1_cache_file.read_bytes()
    assert cbor2.loads(data)["schema_version"] == V1  # the writer still writes v1
    read = v2_reader.read(data, path=str(v1_cache_file))
    assert (read.kind, read.version, read.current) == (CACHE, V1, V2)
    success = {"status": {"status": "success"}}
    assert read.body == {
        "entries": [
            {
                "evidence_id": "order#1/pay",
                "effect": {"interface": "Payments", "operation": "pay"},
                "outcome": {**success, "response": "paid"},
            },
            {
                "evidence_id": "order#2/pay",
                "effect": {"interface": "Payments", "operation": "pay"},
                "outcome": {**success, "response": {"receipt": 7}},
            },
        ]
    }
    assert v2_reader.readable(CACHE) == (V1, V2)


def test_v2_reader_reads_v2_as_is_and_other_kinds_stay_v1(v2_reader: SchemaRegistry) -> None:
    body = {"entries": [{"evidence_id": "e", "effect": {}, "outcome": {}}]}
    read = v2_reader.read(envelope(V2, CACHE, body))
    assert (read.version, read.current, read.body) == (V2, V2, body)
    wal = v2_reader.read(envelope(V1, "agreement_wal", {"entries": []}))
    assert (wal.version, wal.current) == (V1, V1)
    with pytest.raises(SchemaVersionError, match=rf"`{V2}` for agreement_wal payloads") as info:
        v2_reader.read(envelope(V2, "agreement_wal", {"entries": []}))
    assert info.value.supported == (V1,)


def test_unknown_v3_is_refused_naming_version_supported_and_file(
    v2_reader: SchemaRegistry, tmp_path: Path
) -> None:
    path = tmp_path / "future.cbor"
    path.write_bytes(envelope(V3, CACHE, "a v3 body this reader cannot know"))
    with pytest.raises(SchemaVersionError) as info:
        v2_reader.read(path.read_bytes(), path=str(path))
    error = info.value
    assert isinstance(error, DecodeError)
    assert (error.version, error.supported, error.path, error.offset) == (
        V3,
        (V1, V2),
        str(path),
        0,
    )
    assert str(error) == (
        f"decode persisted durability artifact {path}: unsupported schema version `{V3}` "
        f"(this toolkit reads {V1}, {V2}; a newer durability may read it) at byte offset 0"
    )


def test_the_toolkits_reader_refuses_v2_by_file(v1_cache_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "v2.cbor"
    path.write_bytes(envelope(V2, CACHE, {"entries": []}))
    with pytest.raises(SchemaVersionError, match=rf"{path}: unsupported schema version `{V2}`"):
        PersistedDurabilityArtifact.from_path(path)
    art = PersistedDurabilityArtifact.from_path(v1_cache_file)  # v1 still reads as v1 objects
    assert [entry.evidence_id for entry in art.into_evidence_outcome_cache().entries] == [
        "order#1/pay",
        "order#2/pay",
    ]


def test_upcasters_run_in_order_from_any_older_version(v2_reader: SchemaRegistry) -> None:
    v3_reader = v2_reader.copy()
    v3_reader.add_version(CACHE, V3, cache_v2_to_v3)
    entry = {"evidence_id": "e", "interface_name": "I", "operation_name": "o", "outcome": {}}
    from_v1 = v3_reader.read(envelope(V1, CACHE, {"entries": [entry]}))
    v2_entry = {"evidence_id": "e", "effect": {"interface": "I", "operation": "o"}, "outcome": {}}
    assert from_v1.body == {"by_id": {"e": v2_entry}}
    from_v2 = v3_reader.read(envelope(V2, CACHE, {"entries": [v2_entry]}))
    assert from_v2.body == from_v1.body
    assert v3_reader.readable(CACHE) == (V1, V2, V3)
    assert v2_reader.readable(CACHE) == (V1, V2)  # the copy left it alone


def test_a_body_that_is_not_a_map_cannot_be_upcast(v2_reader: SchemaRegistry) -> None:
    with pytest.raises(DecodeError, match=rf"payload is not a map \(cannot upcast it to `{V2}`\)"):
        v2_reader.read(envelope(V1, CACHE, ["not", "a", "map"]))


def test_registration_mistakes_are_refused(v2_reader: SchemaRegistry) -> None:
    with pytest.raises(ValueError, match=f"already reads schema version {V1}"):
        v2_reader.add_version(CACHE, V1, cache_v1_to_v2)
    with pytest.raises(KeyError, match="unknown payload kind 'ledger'"):
        v2_reader.add_version("ledger", V2, cache_v1_to_v2)
    with pytest.raises(TypeError, match="must be callable"):
        v2_reader.add_version(CACHE, V3, "not a function")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one payload kind"):
        SchemaRegistry([], V1)


def test_envelope_checks_come_first_and_name_the_file() -> None:
    registry = SchemaRegistry(["recovery_metadata"], V1)
    with pytest.raises(DecodeError, match=r"f\.cbor: expected a map, got list at byte offset 0"):
        registry.read(cbor2.dumps([1]), path="f.cbor")
    with pytest.raises(DecodeError, match="missing or non-text schema_version"):
        registry.read(cbor2.dumps({"schema_version": 1}))
    with pytest.raises(DecodeError, match="unknown payload kind 'agreement_wal'"):
        registry.read(envelope(V1, "agreement_wal", {}))
    with pytest.raises(DecodeError, match="2 trailing bytes at byte offset"):
        registry.read(envelope(V1, "recovery_metadata", {}) + b"\x00\x00")


def test_an_envelope_upgrade_must_reach_a_readable_version() -> None:
    registry = SchemaRegistry(["recovery_metadata"], V1)
    registry.add_envelope_upgrade("v0", lambda old: {"schema_version": "v0"})
    with pytest.raises(DecodeError, match="upgrade of schema version `v0` gave no readable"):
        registry.read(cbor2.dumps({"schema_version": "v0"}))
    registry.add_envelope_upgrade(
        "v0.5",
        lambda old: {
            "schema_version": V1,
            "payload": {"kind": "recovery_metadata", "payload": old["meta"]},
        },
    )
    read = registry.read(cbor2.dumps({"schema_version": "v0.5", "meta": {"checkpoint_tick": 2}}))
    assert (read.version, read.current, read.body) == ("v0.5", V1, {"checkpoint_tick": 2})


def test_a_located_error_keeps_version_and_supported() -> None:
    error = SchemaVersionError("x", version=V3, supported=(V1,))
    moved = error.located(path="wal.log", at=10)
    assert isinstance(moved, SchemaVersionError)
    assert (moved.version, moved.supported, moved.path, moved.offset) == (V3, (V1,), "wal.log", 10)


def test_the_log_base_goes_through_the_registry(tmp_path: Path) -> None:
    """A log whose base is a v2 artifact is refused by the v1 reader, naming
    the log file (logs read their base through the same registry)."""
    from durability import FileAgreementWal

    path = tmp_path / "wal.log"
    path.write_bytes(envelope(V2, "agreement_wal", {"entries": []}))
    with pytest.raises(SchemaVersionError, match=rf"{path}: unsupported schema version `{V2}`"):
        FileAgreementWal(path, read_only=True).load()
    with FileAgreementWal(tmp_path / "ok.log") as wal:  # and a v1 one opens as ever
        wal.append(esc("op", L.NONE, L.PROVISIONAL, 1))


def test_the_toolkits_registry_is_a_v1_reader_with_nothing_to_upcast() -> None:
    for kind in ("agreement_wal", "evidence_outcome_cache", "recovery_metadata"):
        assert SCHEMA_REGISTRY.readable(kind) == (V1,)
        assert SCHEMA_REGISTRY.current(kind) == V1


def test_module_examples_run() -> None:
    result = doctest.testmod(durability.schema_versions)
    assert result.attempted > 0 and result.failed == 0
