"""The v1 codec: Rust layout byte for byte, lenient shape, strict content."""

from __future__ import annotations

from pathlib import Path

import attrs
import cbor2
import pytest

from durability import (
    AgreementLevel,
    AgreementWalArtifact,
    DecodeError,
    DurableRecoveryMetadata,
    EffectOutcome,
    EncodeError,
    EvidenceOutcomeCacheArtifact,
    EvidenceProduced,
    Finalization,
    FinalizationOutcome,
    PersistedDurabilityArtifact,
)
from durability.model import AgreementEvidenceKind
from tests.helpers import FAILED, binding, esc, evidence, fin, gate

VECTORS = Path(__file__).resolve().parent.parent / "specs" / "vectors"
V1 = "telltale.machine.durability.v1"
L = AgreementLevel


def golden(name: str) -> bytes:
    return bytes.fromhex((VECTORS / f"{name}_artifact_v1.hex").read_text().strip())


def golden_wal() -> PersistedDurabilityArtifact:
    ev = evidence("op#1", "evidence#1", L.SOFT_SAFE, AgreementEvidenceKind.COMMIT_FACT)
    ev = attrs.evolve(ev, reference="commit://1")
    return PersistedDurabilityArtifact.agreement_wal(
        AgreementWalArtifact(
            entries=[
                EvidenceProduced(evidence=ev, tick=4),
                esc("op#1", L.PROVISIONAL, L.SOFT_SAFE, 4, "evidence#1"),
                Finalization(
                    operation_id="op#1",
                    outcome=FinalizationOutcome.FINALIZED,
                    materialization_proof_id="proof#1",
                    canonical_handle_id="handle#1",
                    tick=6,
                ),
                gate("op#1", L.FINALIZED, 7, "coro#9"),
            ]
        )
    )


def golden_cache() -> PersistedDurabilityArtifact:
    return PersistedDurabilityArtifact.evidence_outcome_cache(
        EvidenceOutcomeCacheArtifact(
            entries=[binding("evidence#2", EffectOutcome.blocked()), binding("evidence#3", FAILED)]
        )
    )


def golden_meta() -> PersistedDurabilityArtifact:
    return PersistedDurabilityArtifact.recovery_metadata(
        DurableRecoveryMetadata(
            checkpoint_tick=1,
            wal_tail_start_tick=2,
            highest_recovered_tick=5,
            resumed_operation_ids=["op#provisional", "op#softsafe"],
            terminal_operation_ids=["op#finalized", "op#terminal"],
            cached_evidence_ids=["soft#1"],
        )
    )


@pytest.mark.parametrize(
    ("name", "build"), [("wal", golden_wal), ("cache", golden_cache), ("meta", golden_meta)]
)
def test_golden_vectors_match_rust_bytes_both_ways(name: str, build: object) -> None:
    artifact = build()  # type: ignore[operator]
    assert artifact.to_cbor() == golden(name)
    assert PersistedDurabilityArtifact.from_cbor(golden(name)) == artifact


def test_wal_entry_kind_is_the_first_key() -> None:
    plain = cbor2.loads(golden_wal().to_cbor())
    for entry in plain["payload"]["payload"]["entries"]:
        assert next(iter(entry)) == "kind"


def _envelope(kind: str, payload: object, version: str = V1) -> bytes:
    return cbor2.dumps({"schema_version": version, "payload": {"kind": kind, "payload": payload}})


def test_reading_accepts_any_key_order_missing_options_and_unknown_keys() -> None:
    entry = {
        "tick": 3,
        "new_level": "soft_safe",
        "future_field": [1, 2],
        "previous_level": "none",
        "operation_id": "op",
        "kind": "escalation",
    }
    wal = PersistedDurabilityArtifact.from_cbor(_envelope("agreement_wal", {"entries": [entry]}))
    assert wal.into_agreement_wal().entries == (esc("op", L.NONE, L.SOFT_SAFE, 3),)
    meta = PersistedDurabilityArtifact.from_cbor(
        _envelope("recovery_metadata", {"checkpoint_tick": 9})
    )
    assert meta.into_recovery_metadata() == DurableRecoveryMetadata(checkpoint_tick=9)


@pytest.mark.parametrize(
    "bad_entry",
    [
        {
            "kind": "escalation",
            "operation_id": "op",
            "previous_level": "none",
            "new_level": "soft_safe",
            "tick": "3",
        },
        {
            "kind": "escalation",
            "operation_id": "op",
            "previous_level": "none",
            "new_level": "Soft",
            "tick": 3,
        },
        {
            "kind": "escalation",
            "operation_id": 7,
            "previous_level": "none",
            "new_level": "none",
            "tick": 3,
        },
        {
            "kind": "escalation",
            "operation_id": "op",
            "previous_level": "none",
            "new_level": "none",
            "tick": -1,
        },
        {
            "kind": "escalation",
            "operation_id": "op",
            "previous_level": "none",
            "new_level": "none",
            "tick": True,
        },
        {"kind": "escalation", "operation_id": "op", "previous_level": "none", "new_level": "none"},
        {"kind": "teleport", "operation_id": "op", "tick": 1},
        ["escalation"],
    ],
)
def test_wrong_field_types_are_decode_errors(bad_entry: object) -> None:
    with pytest.raises(DecodeError, match=r"^decode persisted durability artifact"):
        PersistedDurabilityArtifact.from_cbor(_envelope("agreement_wal", {"entries": [bad_entry]}))


def test_every_tag_is_refused() -> None:
    tags = [*range(0, 1100), 55799, 2**32, 2**63]
    for tag in tags:
        data = _envelope("recovery_metadata", {"checkpoint_tick": cbor2.CBORTag(tag, 1)})
        with pytest.raises(DecodeError, match=r"^decode persisted durability artifact"):
            PersistedDurabilityArtifact.from_cbor(data)


def test_tag_inside_a_response_is_refused() -> None:
    outcome = {"status": {"status": "success"}, "response": cbor2.CBORTag(1, 0)}
    entry = {"evidence_id": "e", "interface_name": "i", "operation_name": "o", "outcome": outcome}
    with pytest.raises(DecodeError):
        PersistedDurabilityArtifact.from_cbor(
            _envelope("evidence_outcome_cache", {"entries": [entry]})
        )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xa2",  # truncated map
        bytes.fromhex("bf") + cbor2.dumps("schema_version")[0:0] + b"\xff",  # indefinite map
        golden("wal")[:-1],
        golden("wal") + b"\x00",  # trailing byte
        cbor2.dumps([1, 2]),
        cbor2.dumps({"schema_version": V1, "schema_version ": 1, "payload": 3}),
        b"\xa2\x61a\x01\x61a\x02",  # duplicate key
        b"\xf7",  # undefined
    ],
)
def test_malformed_input_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError, match=r"^decode persisted durability artifact"):
        PersistedDurabilityArtifact.from_cbor(data)


def _nested(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_is_bounded_to_128_from_the_root() -> None:
    # envelope(1) > payload(2) > artifact(3) > entries(4) > entry(5) > outcome(6) > response
    ok = EffectOutcome.success(_nested(122))
    art = PersistedDurabilityArtifact.evidence_outcome_cache(
        EvidenceOutcomeCacheArtifact(entries=[binding("e", ok)])
    )
    assert PersistedDurabilityArtifact.from_cbor(art.to_cbor()) == art
    too_deep = EffectOutcome.success(_nested(123))
    deep = PersistedDurabilityArtifact.evidence_outcome_cache(
        EvidenceOutcomeCacheArtifact(entries=[binding("e", too_deep)])
    )
    with pytest.raises(EncodeError, match="128"):
        deep.to_cbor()
    raw = cbor2.dumps(
        {
            "schema_version": V1,
            "payload": {
                "kind": "evidence_outcome_cache",
                "payload": {
                    "entries": [
                        {
                            "evidence_id": "e",
                            "interface_name": "i",
                            "operation_name": "o",
                            "outcome": {"status": {"status": "success"}, "response": _nested(123)},
                        }
                    ]
                },
            },
        }
    )
    with pytest.raises(DecodeError):
        PersistedDurabilityArtifact.from_cbor(raw)


@pytest.mark.parametrize(
    "response",
    [
        {1: "int key"},
        2**64,
        -(2**64) - 1,
        object(),
        {"set": {1, 2}},
        cbor2.CBORTag(1, 0),
    ],
)
def test_encoding_refuses_what_decoding_would_refuse(response: object) -> None:
    art = PersistedDurabilityArtifact.evidence_outcome_cache(
        EvidenceOutcomeCacheArtifact(entries=[binding("e", EffectOutcome.success(response))])
    )
    with pytest.raises(EncodeError):
        art.to_cbor()


def test_to_cbor_is_byte_stable() -> None:
    assert golden_wal().to_cbor() == golden_wal().to_cbor()
    assert (
        fin("a", FinalizationOutcome.TIMED_OUT, 1).stable_identity()
        == "finalization:a:TimedOut:-:-:1"
    )
