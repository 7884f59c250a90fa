"""The evidence outcome cache half of the contract suite (private; import it
from `durability.testing` or `durability.testing.contract`)."""

from __future__ import annotations

from pathlib import Path

from ..artifact import EvidenceOutcomeCacheArtifact, EvidenceOutcomeCacheEntry
from ..backends.protocols import EvidenceOutcomeCache, SingleBindingCache
from ..effects import EffectOutcome
from ._builders import FAILED, binding
from ._intent_contract import IntentCacheContract

__all__ = ["EvidenceOutcomeCacheContract"]

PROCESSES, BINDINGS = 4, 20


class EvidenceOutcomeCacheContract(IntentCacheContract):
    """The evidence outcome cache contract: subclass it as ``Test...`` and
    implement `make_cache` (and `reopen` if your cache persists). See
    `durability.testing.contract`. The intent cases (API.md §11) run when the
    cache has the five intent methods and are skipped, by name, otherwise."""

    def make_cache(self, tmp_path: Path) -> EvidenceOutcomeCache:
        """A new, empty cache whose storage (if any) lives in `tmp_path`."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_cache(tmp_path)")

    def reopen(self, backend: EvidenceOutcomeCache, tmp_path: Path) -> EvidenceOutcomeCache:
        """A new handle on the storage `backend` uses in `tmp_path`, while
        `backend` stays open. Implement it for a cache that persists; left as
        is, the persistence cases are skipped."""
        raise NotImplementedError(f"{type(self).__name__} does not implement reopen()")

    # -- helpers -----------------------------------------------------------------

    def _persists(self) -> bool:
        return type(self).reopen is not EvidenceOutcomeCacheContract.reopen

    def _again(self, cache: EvidenceOutcomeCache, tmp_path: Path) -> EvidenceOutcomeCache:
        """A reopened handle when the cache persists, else the same one."""
        return self.reopen(cache, tmp_path) if self._persists() else cache

    def _second_handle(self, cache: EvidenceOutcomeCache, tmp_path: Path) -> EvidenceOutcomeCache:
        self._skip_without_reopen(self._persists())
        return self.reopen(cache, tmp_path)

    def _single_binding(self, cache: EvidenceOutcomeCache) -> SingleBindingCache:
        if not isinstance(cache, SingleBindingCache):
            self._skip_without("put_if_absent", cache)
        return cache

    # -- get, put, load ------------------------------------------------------------

    def test_new_cache_is_empty(self, tmp_path: Path) -> None:
        cache = self.make_cache(tmp_path)
        assert cache.get("e") is None
        assert cache.load() == EvidenceOutcomeCacheArtifact()

    def test_put_then_get(self, tmp_path: Path) -> None:
        cache = self.make_cache(tmp_path)
        cache.put(binding("e1"))
        cache.put(binding("e2", FAILED))
        again = self._again(cache, tmp_path)
        assert again.get("e1") == binding("e1")
        assert again.get("e2") == binding("e2", FAILED)
        assert [e.evidence_id for e in again.load().entries] == ["e1", "e2"]

    def test_put_replaces_same_id(self, tmp_path: Path) -> None:
        cache = self.make_cache(tmp_path)
        cache.put(binding("e1"))
        cache.put(binding("e2"))
        cache.put(binding("e1", FAILED))
        again = self._again(cache, tmp_path)
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
        got = self._again(cache, tmp_path).get("e")
        assert got is not None and got.outcome.response == response

    # -- put_if_absent (optional) ----------------------------------------------------

    def test_first_binding_wins(self, tmp_path: Path) -> None:
        cache = self._single_binding(self.make_cache(tmp_path))
        first = cache.put_if_absent(binding("e", EffectOutcome.success(1)))
        second = cache.put_if_absent(binding("e", EffectOutcome.success(2)))
        assert first == second == binding("e", EffectOutcome.success(1))
        assert self._again(cache, tmp_path).get("e") == first

    def test_blocked_binding_counts_as_absent(self, tmp_path: Path) -> None:
        cache = self._single_binding(self.make_cache(tmp_path))
        cache.put(binding("e", EffectOutcome.blocked()))
        bound = cache.put_if_absent(binding("e", EffectOutcome.success(7)))
        assert bound.outcome == EffectOutcome.success(7)
        assert self._again(cache, tmp_path).get("e") == bound

    # -- persistence: two handles, several processes ----------------------------------

    def test_second_handle_sees_first_handles_puts(self, tmp_path: Path) -> None:
        c1 = self.make_cache(tmp_path)
        c2 = self._second_handle(c1, tmp_path)
        c1.put(binding("e", FAILED))
        assert c2.get("e") == binding("e", FAILED)
        c2.put(binding("e"))  # and back: c1 sees c2's replacement
        assert c1.get("e") == binding("e")
        assert c1.load() == c2.load()

    def test_second_handle_put_if_absent_sees_first_handles_binding(self, tmp_path: Path) -> None:
        c1 = self.make_cache(tmp_path)
        c2 = self._single_binding(self._second_handle(c1, tmp_path))
        c1.put(binding("e", FAILED))
        assert c2.put_if_absent(binding("e")) == binding("e", FAILED)
        assert c1.get("e") == binding("e", FAILED)

    def test_processes_binding_through_their_own_handles_lose_nothing(self, tmp_path: Path) -> None:
        """Several processes put through their own handle at once: no binding
        is lost; and when the cache has `put_if_absent`, processes racing to
        bind one id all get the same, first, binding."""
        cache = self.make_cache(tmp_path)
        self._skip_without_reopen(self._persists())

        def binder(index: int) -> EvidenceOutcomeCacheEntry | None:
            mine = self.reopen(cache, tmp_path)
            for i in range(BINDINGS):
                mine.put(binding(f"p{index}/{i}"))
            if not isinstance(mine, SingleBindingCache):
                return None
            return mine.put_if_absent(binding("shared", EffectOutcome.success(index)))

        bound = self._in_processes(PROCESSES, binder)
        again = self.reopen(cache, tmp_path)
        for handle in (cache, again):
            for index in range(PROCESSES):
                for i in range(BINDINGS):
                    assert handle.get(f"p{index}/{i}") == binding(f"p{index}/{i}")
        if isinstance(cache, SingleBindingCache):
            assert bound[0] is not None and bound.count(bound[0]) == PROCESSES
            assert cache.get("shared") == again.get("shared") == bound[0]
        assert cache.load() == again.load()
