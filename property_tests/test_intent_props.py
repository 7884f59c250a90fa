"""Intent bookkeeping on generated histories (API.md §11, specs/effects.md):
whatever sequence of intents, withdrawals and bindings a cache is given, the
file cache (and a reopened handle on its log) agrees with the in-memory
reference, and the in-doubt list is exactly what the definition says."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from durability import EffectOutcome, FileEvidenceOutcomeCache, InMemoryEvidenceOutcomeCache
from durability.testing._builders import FAILED, binding, intent

IDS = ["a", "b", "c"]
OUTCOMES = [EffectOutcome.success(1), FAILED, EffectOutcome.blocked()]

operations = st.lists(
    st.one_of(
        st.tuples(st.just("intent"), st.sampled_from(IDS), st.integers(1, 4)),
        st.tuples(st.just("withdraw"), st.sampled_from(IDS), st.integers(1, 4)),
        st.tuples(st.just("put"), st.sampled_from(IDS), st.sampled_from(OUTCOMES)),
        st.tuples(st.just("bind"), st.sampled_from(IDS), st.sampled_from(OUTCOMES)),
    ),
    max_size=25,
)


def apply(cache: Any, operation: tuple[str, str, Any]) -> Any:
    kind, eid, arg = operation
    if kind == "intent":
        return cache.put_intent(intent(eid, arg))
    if kind == "withdraw":
        return cache.withdraw_intent(eid, arg)
    if kind == "put":
        return cache.put(binding(eid, arg))
    return cache.put_if_absent(binding(eid, arg))


def expected_in_doubt(cache: Any) -> set[str]:
    doubts = set()
    for eid in IDS:
        latest, bound = cache.get_intent(eid), cache.get(eid)
        unbound = bound is None or bound.outcome.is_blocked
        if latest is not None and not latest.withdrawn and unbound:
            doubts.add(eid)
    return doubts


@settings(max_examples=60, deadline=None)
@given(operations)
def test_file_cache_agrees_with_the_reference_and_the_definition(
    history: list[tuple[str, str, Any]],
) -> None:
    reference = InMemoryEvidenceOutcomeCache()
    path = Path(tempfile.mkdtemp()) / "evidence.log"
    cache = FileEvidenceOutcomeCache(path)
    for operation in history:
        assert apply(cache, operation) == apply(reference, operation)
    reopened = FileEvidenceOutcomeCache(path)
    for handle in (cache, reopened):
        assert handle.in_doubt() == reference.in_doubt()
        assert [handle.get_intent(eid) for eid in IDS] == [reference.get_intent(e) for e in IDS]
        assert handle.load() == reference.load()
    assert {i.evidence_id for i in reference.in_doubt()} == expected_in_doubt(reference)
    for eid in IDS:  # attempts only ever rise by one
        latest = reference.get_intent(eid)
        if latest is not None:
            assert latest.attempt <= sum(
                1 for kind, e, _ in history if kind == "intent" and e == eid
            )
