"""Codec invariants on generated artifacts: round trip and byte stability."""

from __future__ import annotations

import collections
import enum
from typing import Any

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
from durability.codec import check_plain, decode_item, dumps, dumps_values, from_plain, to_plain
from durability.effects import EffectOutcome
from durability.errors import EncodeError, EscalationOrderError
from durability.limits import MAX_DEPTH, RESPONSE_DEPTH
from durability.persisted import PersistedDurabilityArtifact
from durability.testing import (
    assert_escalations_monotonic,
    cache_entries,
    persisted_artifacts,
    plain_cbor,
    valid_wal_entries,
    wal_artifacts,
    wal_entries,
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


class _Small(enum.IntEnum):
    ONE = 1


_Pair = collections.namedtuple("_Pair", "a b")


def _reference_check(value: object, depth: int, start: int) -> None:
    """`check_plain` as first written (one isinstance chain per value): the
    fast walk must raise the same error, or none, on every input."""
    if value is None or isinstance(value, bool | str | bytes):
        return
    if isinstance(value, int):
        if not -(2**64) <= value <= 2**64 - 1:
            raise EncodeError(f"integer {value} does not fit in 64 bits")
        return
    if isinstance(value, float):
        return
    if isinstance(value, list | tuple | dict):
        if depth >= MAX_DEPTH:
            where = (
                f" counted from the root of the artifact it is exported in ({start} of them "
                f"above it, so at most {MAX_DEPTH - start} of its own)"
                if start
                else ""
            )
            raise EncodeError(f"value nests deeper than {MAX_DEPTH} containers{where}")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise EncodeError(f"map key {key!r} is not text")
                _reference_check(item, depth + 1, start)
        else:
            for item in value:
                _reference_check(item, depth + 1, start)
        return
    raise EncodeError(f"{type(value).__name__} {value!r:.60} is not plain CBOR data")


_ODD_LEAVES = st.sampled_from(
    [2**64, 2**64 - 1, -(2**64), -(2**64) - 1, _Small.ONE, object(), {1, 2}, 1j, bytearray(b"x")]
)
_KEYS = st.text(max_size=3) | st.sampled_from([1, ("t",), None, b"k"])
_TREES = st.recursive(
    plain_cbor(max_leaves=3) | _ODD_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(_KEYS, inner, max_size=3)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3).map(collections.OrderedDict)
        | st.tuples(inner, inner).map(lambda pair: _Pair(*pair))
    ),
    max_leaves=8,
)


def _outcome(check: Any, value: object, depth: int) -> str | None:
    try:
        check(value, depth)
    except EncodeError as exc:
        return str(exc)
    return None


@settings(max_examples=500, deadline=None)
@given(_TREES, st.sampled_from([0, RESPONSE_DEPTH, MAX_DEPTH - 3, MAX_DEPTH - 1, MAX_DEPTH]))
def test_check_plain_raises_what_the_plain_isinstance_walk_raises(
    value: object, depth: int
) -> None:
    expected = _outcome(lambda v, d: _reference_check(v, d, d), value, depth)
    assert _outcome(check_plain, value, depth) == expected


@PROPS
@given(st.lists(wal_entries(), max_size=4) | st.lists(cache_entries(), max_size=3))
def test_dumps_values_writes_the_bytes_dumps_writes(values: list[Any]) -> None:
    assert dumps_values(values) == dumps([to_plain(value) for value in values])


@pytest.mark.parametrize("response", [2**64, {1: "int key"}, object()])
def test_dumps_values_walks_a_cache_entry_and_refuses_what_dumps_refuses(response: object) -> None:
    entry = EvidenceOutcomeCacheEntry(
        evidence_id="e",
        interface_name="i",
        operation_name="o",
        outcome=EffectOutcome.success(response),
    )
    with pytest.raises(EncodeError):
        dumps([to_plain(entry)])
    with pytest.raises(EncodeError):
        dumps_values([entry])
