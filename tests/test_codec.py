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


# -- nesting limits count from the root of the exported artifact (FORMAT.md §2) ----


def _deepest_exportable_response() -> int:
    """Containers a response may nest: 128 minus the 6 above it in a cache
    artifact (envelope, payload, cache artifact, entries, entry, outcome)."""
    return 128 - 6


def _cache_record_log(response: object) -> bytes:
    """A toolkit cache log whose one CACHE_BINDINGS record binds `response`,
    written byte by byte (no encoder check in the way)."""
    from durability.framing import RecordType, base_checksum_payload, encode_record

    base = PersistedDurabilityArtifact.evidence_outcome_cache(
        EvidenceOutcomeCacheArtifact()
    ).to_cbor()
    entry = {
        "evidence_id": "e",
        "interface_name": "Storage",
        "operation_name": "write",
        "outcome": {"status": {"status": "success"}, "response": response},
    }
    return (
        base
        + encode_record(RecordType.BASE_CHECKSUM, 0, base_checksum_payload(base))
        + encode_record(RecordType.CACHE_BINDINGS, 1, cbor2.dumps([entry]))
    )


def test_response_depth_offset_is_the_containers_above_it_in_the_exported_artifact() -> None:
    from durability.codec import to_plain
    from durability.limits import RESPONSE_DEPTH
    from durability.persisted import envelope_plain

    sentinel = ["sentinel"]
    plain = envelope_plain(
        EvidenceOutcomeCacheArtifact(entries=[binding("e", EffectOutcome.success(sentinel))])
    )

    def depth_of(value: object, depth: int) -> int | None:
        if value is sentinel:
            return depth
        children = value.values() if isinstance(value, dict) else value
        if isinstance(value, dict | list | tuple):
            for child in children:  # type: ignore[union-attr]
                found = depth_of(child, depth + 1)
                if found is not None:
                    return found
        return None

    assert depth_of(plain, 0) == RESPONSE_DEPTH == 6
    assert (
        to_plain(binding("e", EffectOutcome.success(sentinel)))["outcome"]["response"] is sentinel
    )


def test_cache_put_accepts_exactly_what_export_can_write(tmp_path: Path) -> None:
    from durability import FileEvidenceOutcomeCache
    from durability.backends.file import export_log

    deepest = _deepest_exportable_response()
    path = tmp_path / "cache.log"
    with FileEvidenceOutcomeCache(path) as cache:
        cache.put(binding("deepest", EffectOutcome.success(_nested(deepest))))
    exported = export_log(path)
    data = exported.to_cbor()
    assert PersistedDurabilityArtifact.from_cbor(data) == exported
    response = exported.into_evidence_outcome_cache().entries[0].outcome.response
    assert response == _nested(deepest)


@pytest.mark.parametrize("extra", [1, 2, 3])
def test_cache_put_refuses_a_response_too_deep_to_export(tmp_path: Path, extra: int) -> None:
    from durability import FileEvidenceOutcomeCache

    path = tmp_path / "cache.log"
    too_deep = binding(
        "deep", EffectOutcome.success(_nested(_deepest_exportable_response() + extra))
    )
    with FileEvidenceOutcomeCache(path) as cache:
        before = path.read_bytes()
        with pytest.raises(EncodeError, match="128"):
            cache.put(too_deep)
        with pytest.raises(EncodeError, match="128"):
            cache.put_if_absent(too_deep)
        assert cache.get("deep") is None
    assert path.read_bytes() == before


@pytest.mark.parametrize("extra", [1, 3])
def test_cache_record_too_deep_to_export_from_an_earlier_version_opens_and_export_says_why(
    tmp_path: Path, extra: int
) -> None:
    from durability import FileEvidenceOutcomeCache
    from durability.backends.file import export_log, inspect_log

    path = tmp_path / "cache.log"
    deep = _nested(_deepest_exportable_response() + extra)
    path.write_bytes(_cache_record_log(deep))
    before = path.read_bytes()
    with FileEvidenceOutcomeCache(path) as cache:  # nothing acknowledged is lost
        bound = cache.get("e")
        assert bound is not None and bound.outcome.response == deep
    assert inspect_log(path).entries == 1
    with pytest.raises(EncodeError, match="128"):
        export_log(path).to_cbor()
    assert path.read_bytes() == before


def test_cache_record_at_the_deepest_exportable_depth_is_read_and_exports(tmp_path: Path) -> None:
    from durability import FileEvidenceOutcomeCache
    from durability.backends.file import export_log

    deepest = _nested(_deepest_exportable_response())
    path = tmp_path / "cache.log"
    path.write_bytes(_cache_record_log(deepest))
    with FileEvidenceOutcomeCache(path) as cache:
        bound = cache.get("e")
        assert bound is not None and bound.outcome.response == deepest
    exported = export_log(path)
    assert PersistedDurabilityArtifact.from_cbor(exported.to_cbor()) == exported


def test_wal_entries_carry_no_free_form_data() -> None:
    # A WAL entry's depth in the exported artifact is fixed by its fields, so no
    # WAL append can exceed the nesting limit; a free-form (Any) field would need
    # its own depth offset, as a cache entry's response has.
    import typing

    from durability.artifact import WAL_ENTRY_TYPES

    def fields_are_typed(cls: type, seen: set[type]) -> None:
        if cls in seen:
            return
        seen.add(cls)
        hints = typing.get_type_hints(cls)
        for field in attrs.fields(cls):
            hint = hints[field.name]
            assert hint is not typing.Any, f"{cls.__name__}.{field.name} is free-form"
            for arg in (hint, *typing.get_args(hint)):
                if attrs.has(arg):
                    fields_are_typed(arg, seen)

    seen: set[type] = set()
    for cls in WAL_ENTRY_TYPES:
        fields_are_typed(cls, seen)
    assert len(seen) > len(WAL_ENTRY_TYPES)  # AgreementEvidence was walked too


def test_check_cache_entry_counts_the_response_from_the_exported_artifact_root() -> None:
    from durability.artifact import check_cache_entry, check_entries
    from durability.limits import ENTRY_DEPTH

    deepest = _deepest_exportable_response()
    check_cache_entry(binding("e", EffectOutcome.success(_nested(deepest))))
    check_entries([gate("op", AgreementLevel.SOFT_SAFE, 1)])
    for response in (_nested(deepest + 1), {"set": {1}}, object()):
        with pytest.raises(EncodeError):
            check_cache_entry(binding("e", EffectOutcome.success(response)))
    assert ENTRY_DEPTH == 4  # envelope, payload, artifact, entries array


def test_make_converter_gives_an_independent_converter_with_the_v1_layout() -> None:
    from durability.codec import converter, make_converter, to_plain

    fresh = make_converter()
    assert fresh is not converter
    wal = AgreementWalArtifact(
        entries=[
            esc("op", AgreementLevel.NONE, AgreementLevel.SOFT_SAFE, 1),
            gate("op", AgreementLevel.SOFT_SAFE, 2),
        ]
    )
    plain = fresh.unstructure(wal)
    assert plain == to_plain(wal)
    assert next(iter(plain["entries"][0])) == "kind"  # the tag comes first
    assert fresh.structure(plain, AgreementWalArtifact) == wal
    cache = EvidenceOutcomeCacheArtifact(entries=[binding("e", FAILED)])
    assert fresh.structure(fresh.unstructure(cache), EvidenceOutcomeCacheArtifact) == cache


def test_configure_converter_works_on_a_users_converter_whatever_it_registered_first() -> None:
    import cattrs

    from durability.codec import configure_converter, to_plain

    mine = cattrs.Converter()
    mine.register_unstructure_hook(complex, lambda z: [z.real, z.imag])  # theirs, first
    configure_converter(mine)
    entry = gate("op", AgreementLevel.FINALIZED, 3)
    assert mine.unstructure(entry) == to_plain(entry)
    assert mine.unstructure(1 + 2j) == [1.0, 2.0]
