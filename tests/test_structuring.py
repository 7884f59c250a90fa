"""The hand-written fast path (`durability.structuring`): it covers every
field of the classes it builds, and on every single fault in a sample of each
covered type it declines exactly when the converter refuses (and otherwise
builds the converter's value), so `from_plain` errors stay the converter's."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import attrs
import cbor2
import pytest

from durability import (
    AgreementLevel,
    AgreementWalArtifact,
    DecodeError,
    EffectOutcome,
    EvidenceOutcomeCacheArtifact,
    EvidenceOutcomeCacheEntry,
    Finalization,
    FinalizationOutcome,
)
from durability.codec import converter, from_plain
from durability.model import _to_tuple
from durability.structuring import FIELDS, structurer
from tests.helpers import FAILED, binding, esc, ev, gate

L = AgreementLevel

#: One of each entry kind, every optional field both set and unset somewhere.
WAL = AgreementWalArtifact(
    entries=[
        esc("op", L.NONE, L.PROVISIONAL, 1),
        esc("op", L.PROVISIONAL, L.SOFT_SAFE, 2, "ev#1"),
        ev("op", "ev#1", L.SOFT_SAFE, 3),
        Finalization(
            operation_id="op",
            outcome=FinalizationOutcome.TIMED_OUT,
            materialization_proof_id="proof",
            tick=4,
        ),
        gate("op", L.FINALIZED, 5),
    ]
)
CACHE = EvidenceOutcomeCacheArtifact(
    entries=[
        binding("a", EffectOutcome.success({"rows": [1, b"x", None, 2.5, True]})),
        binding("b", FAILED),
        binding("c", EffectOutcome.blocked()),
    ]
)
SAMPLES: dict[type, Any] = {
    AgreementWalArtifact: WAL,
    EvidenceOutcomeCacheArtifact: CACHE,
    EvidenceOutcomeCacheEntry: CACHE.entries[1],
    EffectOutcome: FAILED,
}

#: What a single fault puts in place of a value.
ODD: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**64 - 1,
    2**64,
    -(2**64),
    1.5,
    "",
    "none",
    "soft_safe",
    "success",
    "failure",
    "blocked",
    "escalation",
    "finalization",
    "certificate",
    "timed_out",
    "unavailable",
    b"none",
    [],
    {},
    ["escalation"],
    {"status": "failure"},
    {"kind": "escalation"},
]


def decoded(value: Any) -> Any:
    return cbor2.loads(cbor2.dumps(converter.unstructure(value)))


def paths(node: Any, trail: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value below `node`."""
    if isinstance(node, dict | list):
        for key, item in node.items() if isinstance(node, dict) else enumerate(node):
            yield (*trail, key)
            yield from paths(item, (*trail, key))


def faults(plain: Any) -> Iterator[tuple[str, Any]]:
    """Every single fault of `plain`: each value replaced by each `ODD`
    value, each key or item dropped, an unknown key added to each map."""
    for path in paths(plain):
        for odd in ODD:
            broken = copy.deepcopy(plain)
            parent = broken
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = odd
            yield f"{path} = {odd!r}", broken
        broken = copy.deepcopy(plain)
        parent = broken
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]
        if isinstance(parent, dict):
            parent["unknown"] = 1
        yield f"del {path}", broken
    for odd in ODD:
        yield f"root = {odd!r}", odd


def identical(a: Any, b: Any) -> bool:
    return (
        type(a) is type(b)
        and a == b
        and cbor2.dumps(converter.unstructure(a)) == cbor2.dumps(converter.unstructure(b))
    )


@pytest.mark.parametrize("cls", list(FIELDS), ids=lambda cls: cls.__name__)
def test_the_fast_path_sets_every_field_of_each_class_it_builds(cls: type) -> None:
    fields = attrs.fields(cls)
    assert tuple(field.name for field in fields if field.init) == FIELDS[cls]
    # built without __init__: no converter may be skipped but the one making
    # a tuple, and the fast path gives a tuple already
    assert all(field.converter in (None, _to_tuple) for field in fields)
    # and no post-init step but the two written out (the cache artifact's
    # index, called; the outcome's status/failure check, true by construction)
    post_init = hasattr(cls, "__attrs_post_init__")
    assert post_init == (cls in (EvidenceOutcomeCacheArtifact, EffectOutcome))


@pytest.mark.parametrize("cls", list(SAMPLES), ids=lambda cls: cls.__name__)
def test_every_single_fault_is_declined_exactly_when_the_converter_refuses_it(cls: type) -> None:
    fast = structurer(cls)
    assert fast is not None
    plain = decoded(SAMPLES[cls])
    assert identical(fast(copy.deepcopy(plain)), SAMPLES[cls])
    checked = 0
    for fault, broken in faults(plain):
        try:
            expected = converter.structure(copy.deepcopy(broken), cls)
        except Exception:
            expected = None
        try:
            got = fast(copy.deepcopy(broken))
        except Exception:
            got = None
        if expected is None:
            assert got is None, f"{cls.__name__}: the fast path took {fault}"
            with pytest.raises(DecodeError):
                from_plain(broken, cls)
        elif got is not None:
            assert identical(got, expected), f"{cls.__name__}: {fault} built another value"
        checked += 1
    assert checked > 100


def test_from_plain_errors_are_the_converters_path_and_reason() -> None:
    plain = decoded(WAL)
    plain["entries"][2]["evidence"]["session"] = -1
    with pytest.raises(DecodeError) as caught:
        from_plain(plain, AgreementWalArtifact, where="entries")
    assert str(caught.value) == (
        "decode persisted durability artifact: invalid entries: invalid value "
        "(session must be an integer >= 0, got -1) @ $.entries.evidence"
    )
