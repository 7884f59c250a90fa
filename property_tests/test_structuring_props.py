"""The hand-written fast path (`durability.structuring`) against the cattrs
converter: on generated plain data, valid and broken, the fast path either
builds exactly the converter's value or declines, and declines whenever the
converter refuses; unstructuring gives the converter's maps byte for byte."""

from __future__ import annotations

import copy
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from durability.artifact import (
    AgreementWalArtifact,
    EvidenceOutcomeCacheArtifact,
    EvidenceOutcomeCacheEntry,
)
from durability.codec import converter, from_plain
from durability.effects import EffectOutcome
from durability.errors import DecodeError
from durability.structuring import structurer, unstructure_fast
from durability.testing import (
    agreement_evidence,
    cache_artifacts,
    cache_entries,
    effect_outcomes,
    plain_cbor,
    wal_artifacts,
    wal_entries,
)

PROPS = settings(max_examples=300, deadline=None)

#: Each covered class and a strategy for its valid values.
COVERED: dict[type, st.SearchStrategy[Any]] = {
    AgreementWalArtifact: wal_artifacts(valid=False),
    EvidenceOutcomeCacheArtifact: cache_artifacts(),
    EvidenceOutcomeCacheEntry: cache_entries(),
    EffectOutcome: effect_outcomes(),
}

#: Values that break a field in many ways: wrong types, out of range, enum
#: text in the wrong place, containers where scalars go, and the reverse.
ODD = st.sampled_from(
    [
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
        "escalation",
        "evidence_produced",
        "witness",
        "timed_out",
        "denied",
        b"escalation",
        [],
        {},
        ["escalation"],
        {"status": "failure"},
        {"kind": "escalation"},
    ]
) | plain_cbor(max_leaves=4)


def as_decoded(value: Any) -> Any:
    """The plain form of `value` exactly as decoding a log gives it back."""
    return cbor2.loads(cbor2.dumps(converter.unstructure(value)))


def _slots(node: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key or index) pair in a plain tree."""
    if isinstance(node, dict | list):
        for key, item in list(node.items() if isinstance(node, dict) else enumerate(node)):
            out.append((node, key))
            _slots(item, out)
    return out


@st.composite
def broken(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> Any:
    """The decoded plain form of a valid value with one thing broken: a value
    replaced, a key or item dropped, an unknown key or item added, or the
    whole of it replaced."""
    plain = copy.deepcopy(as_decoded(draw(values)))
    slots = _slots(plain, [])
    action = draw(st.sampled_from(["replace", "drop", "add", "root"]))
    if action == "root" or not slots:
        return draw(ODD)
    parent, key = draw(st.sampled_from(slots))
    if action == "replace":
        parent[key] = draw(ODD)
    elif action == "drop":
        del parent[key]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = draw(ODD)
    else:
        parent.insert(key, draw(ODD))
    return plain


def converter_result(plain: Any, cls: type) -> tuple[bool, Any]:
    try:
        return True, converter.structure(plain, cls)
    except Exception as exc:
        return False, exc


def identical(a: Any, b: Any) -> bool:
    """Equal, of one type, and the same CBOR bytes (so ``True`` is not ``1``)."""
    return (
        type(a) is type(b)
        and a == b
        and cbor2.dumps(converter.unstructure(a)) == cbor2.dumps(converter.unstructure(b))
    )


@pytest.mark.parametrize("cls", list(COVERED), ids=lambda cls: cls.__name__)
@PROPS
@given(data=st.data())
def test_valid_plain_data_takes_the_fast_path_to_the_converters_value(
    cls: type, data: st.DataObject
) -> None:
    plain = as_decoded(data.draw(COVERED[cls]))
    fast = structurer(cls)
    assert fast is not None
    ok, expected = converter_result(plain, cls)
    assert ok, expected
    assert identical(fast(copy.deepcopy(plain)), expected)
    assert identical(from_plain(plain, cls), expected)


@pytest.mark.parametrize("cls", list(COVERED), ids=lambda cls: cls.__name__)
@PROPS
@given(data=st.data())
def test_broken_plain_data_is_refused_by_the_fast_path_whenever_the_converter_refuses_it(
    cls: type, data: st.DataObject
) -> None:
    plain = data.draw(broken(COVERED[cls]))
    fast = structurer(cls)
    assert fast is not None
    ok, expected = converter_result(plain, cls)
    try:
        got = fast(copy.deepcopy(plain))
    except Exception:
        got = None
        declined = True
    else:
        declined = False
    if not ok:
        assert declined, f"the fast path took what the converter refuses: {expected!r}"
        with pytest.raises(DecodeError):
            from_plain(plain, cls)
    else:
        if not declined:
            assert identical(got, expected)
        assert identical(from_plain(plain, cls), expected)


@PROPS
@given(st.one_of(wal_entries(), agreement_evidence(), cache_entries(), effect_outcomes()))
def test_unstructuring_gives_the_converters_maps_byte_for_byte(value: Any) -> None:
    fast = unstructure_fast(value)
    assert fast is not None
    assert cbor2.dumps(fast) == cbor2.dumps(converter.unstructure(value))
