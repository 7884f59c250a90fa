"""The evidence outcome cache contract every backend passes (API.md §6)."""

from __future__ import annotations

from pathlib import Path

from durability import EffectOutcome, EvidenceOutcomeCache, EvidenceOutcomeCacheArtifact
from tests.helpers import FAILED, binding


class CacheContract:
    """Rules of `get`, `put` and `load`."""

    def make_cache(self, tmp_path: Path) -> EvidenceOutcomeCache:
        raise NotImplementedError

    def reopen(self, cache: EvidenceOutcomeCache, tmp_path: Path) -> EvidenceOutcomeCache:
        return cache

    def test_new_cache_is_empty(self, tmp_path: Path) -> None:
        cache = self.make_cache(tmp_path)
        assert cache.get("e") is None
        assert cache.load() == EvidenceOutcomeCacheArtifact()

    def test_put_then_get(self, tmp_path: Path) -> None:
        cache = self.make_cache(tmp_path)
        cache.put(binding("e1"))
        cache.put(binding("e2", FAILED))
        again = self.reopen(cache, tmp_path)
        assert again.get("e1") == binding("e1")
        assert again.get("e2") == binding("e2", FAILED)
        assert [e.evidence_id for e in again.load().entries] == ["e1", "e2"]

    def test_put_replaces_same_id(self, tmp_path: Path) -> None:
        cache = self.make_cache(tmp_path)
        cache.put(binding("e1"))
        cache.put(binding("e2"))
        cache.put(binding("e1", FAILED))
        again = self.reopen(cache, tmp_path)
        assert again.get("e1") == binding("e1", FAILED)
        assert [e.evidence_id for e in again.load().entries] == ["e2", "e1"]

    def test_responses_round_trip(self, tmp_path: Path) -> None:
        cache = self.make_cache(tmp_path)
        response = {
            "rows": [1, -2, 2**63],
            "blob": b"\x00\xff",
            "ok": True,
            "none": None,
            "pi": 3.5,
        }
        cache.put(binding("e", EffectOutcome.success(response)))
        got = self.reopen(cache, tmp_path).get("e")
        assert got is not None and got.outcome.response == response


class SingleBindingCacheContract(CacheContract):
    """Rules of `put_if_absent` (provided backends)."""

    def test_first_binding_wins(self, tmp_path: Path) -> None:
        cache = self.make_cache(tmp_path)
        first = cache.put_if_absent(binding("e", EffectOutcome.success(1)))  # type: ignore[attr-defined]
        second = cache.put_if_absent(binding("e", EffectOutcome.success(2)))  # type: ignore[attr-defined]
        assert first == second == binding("e", EffectOutcome.success(1))
        assert self.reopen(cache, tmp_path).get("e") == first

    def test_blocked_binding_counts_as_absent(self, tmp_path: Path) -> None:
        cache = self.make_cache(tmp_path)
        cache.put(binding("e", EffectOutcome.blocked()))
        bound = cache.put_if_absent(binding("e", EffectOutcome.success(7)))  # type: ignore[attr-defined]
        assert bound.outcome == EffectOutcome.success(7)
        assert self.reopen(cache, tmp_path).get("e") == bound
