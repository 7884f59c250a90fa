"""The intent cases of the evidence outcome cache contract (API.md §11;
private: `EvidenceOutcomeCacheContract` inherits them). Each is skipped, by
name, when the cache lacks the intent methods."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..backends.protocols import INTENT_METHODS, IntentCache
from ..effects import EffectOutcome
from ..errors import DurabilityError
from ..intents import EffectIntent
from ._builders import FAILED, binding, intent
from ._case import ContractCase

__all__ = ["IntentCacheContract"]

RACERS = 4


class IntentCacheContract(ContractCase):
    """Intent cases: ``put_intent`` is a compare-and-set, ``withdraw_intent``
    and terminal bindings take an effect out of doubt, ``resolve`` records an
    operator's verdict, and none of it is ever part of ``load()``."""

    def make_cache(self, tmp_path: Path) -> Any:
        raise NotImplementedError

    def _persists(self) -> bool:
        raise NotImplementedError

    def _again(self, cache: Any, tmp_path: Path) -> Any:
        raise NotImplementedError

    def _second_handle(self, cache: Any, tmp_path: Path) -> Any:
        raise NotImplementedError

    def reopen(self, backend: Any, tmp_path: Path) -> Any:
        raise NotImplementedError

    def _intents(self, tmp_path: Path) -> IntentCache:
        cache = self.make_cache(tmp_path)
        if not all(callable(getattr(cache, name, None)) for name in INTENT_METHODS):
            self._skip_without("put_intent", cache)
        assert isinstance(cache, IntentCache)
        return cache

    # -- put_intent: a compare-and-set ----------------------------------------------

    def test_first_intent_is_recorded_and_in_doubt(self, tmp_path: Path) -> None:
        cache = self._intents(tmp_path)
        assert cache.get_intent("e") is None and cache.in_doubt() == []
        assert cache.put_intent(intent("e")) == intent("e")
        again = self._again(cache, tmp_path)
        assert again.get_intent("e") == intent("e")
        assert again.in_doubt() == [intent("e")]

    def test_put_intent_needs_the_next_attempt(self, tmp_path: Path) -> None:
        cache = self._intents(tmp_path)
        assert cache.put_intent(intent("e", 2)) is None  # attempt 1 comes first
        assert cache.get_intent("e") is None
        first = intent("e", 1)
        assert cache.put_intent(first) == first
        assert cache.put_intent(intent("e", 1, created=5)) == first  # lost the race
        assert cache.put_intent(intent("e", 3)) == first
        assert cache.put_intent(intent("e", 2)) == intent("e", 2)
        assert self._again(cache, tmp_path).get_intent("e") == intent("e", 2)
        assert cache.in_doubt() == [intent("e", 2)]

    def test_no_intent_once_a_terminal_outcome_is_bound(self, tmp_path: Path) -> None:
        cache = self._intents(tmp_path)
        cache.put_intent(intent("e"))
        cache.put(binding("e"))
        assert cache.in_doubt() == []
        assert cache.put_intent(intent("e", 2)) == intent("e")
        cache.put(binding("v1", FAILED))  # bound with no intent (a v1 base, say)
        assert cache.put_intent(intent("v1")) is None
        assert self._again(cache, tmp_path).get_intent("v1") is None

    def test_a_blocked_binding_leaves_the_effect_in_doubt(self, tmp_path: Path) -> None:
        cache = self._intents(tmp_path)
        cache.put(binding("e", EffectOutcome.blocked()))
        assert cache.put_intent(intent("e")) == intent("e")
        assert self._again(cache, tmp_path).in_doubt() == [intent("e")]

    def test_in_doubt_lists_open_attempts_in_recording_order(self, tmp_path: Path) -> None:
        cache = self._intents(tmp_path)
        for eid in ("c", "a", "b", "d"):
            cache.put_intent(intent(eid))
        cache.put(binding("b", FAILED))  # settled by a failure outcome
        cache.withdraw_intent("d", 1)
        cache.put_intent(intent("c", 2))  # a new attempt moves last
        expected = [intent("a"), intent("c", 2)]
        assert cache.in_doubt() == expected
        assert self._again(cache, tmp_path).in_doubt() == expected

    # -- withdraw_intent ---------------------------------------------------------

    def test_withdrawn_attempt_is_not_in_doubt_and_the_next_may_run(self, tmp_path: Path) -> None:
        cache = self._intents(tmp_path)
        cache.put_intent(intent("e"))
        withdrawn = cache.withdraw_intent("e", 1)
        assert withdrawn is not None and withdrawn.withdrawn and withdrawn.attempt == 1
        again = self._again(cache, tmp_path)
        assert again.in_doubt() == []
        latest = again.get_intent("e")
        assert latest is not None and latest.withdrawn
        assert cache.put_intent(intent("e", 2)) == intent("e", 2)
        assert again.in_doubt() == [intent("e", 2)]

    def test_withdrawing_anything_but_the_open_attempt_changes_nothing(
        self, tmp_path: Path
    ) -> None:
        cache = self._intents(tmp_path)
        assert cache.withdraw_intent("none", 1) is None
        cache.put_intent(intent("e"))
        cache.put_intent(intent("e", 2))
        assert cache.withdraw_intent("e", 1) == intent("e", 2)  # a stale attempt
        cache.put(binding("e"))
        assert cache.withdraw_intent("e", 2) == intent("e", 2)  # bound: nothing to withdraw
        assert self._again(cache, tmp_path).get_intent("e") == intent("e", 2)

    # -- resolve -----------------------------------------------------------------

    def test_resolve_binds_a_terminal_verdict(self, tmp_path: Path) -> None:
        cache = self._intents(tmp_path)
        cache.put_intent(intent("e"))
        assert cache.resolve("e", EffectOutcome.success("done")) == EffectOutcome.success("done")
        again = self._again(cache, tmp_path)
        assert again.in_doubt() == []
        assert again.get("e") == binding("e", EffectOutcome.success("done"))
        assert cache.resolve("e", FAILED) == EffectOutcome.success("done")  # first wins
        assert cache.resolve("e", EffectOutcome.blocked()) == EffectOutcome.success("done")

    def test_resolve_not_done_withdraws_so_the_next_call_runs_it(self, tmp_path: Path) -> None:
        cache = self._intents(tmp_path)
        cache.put_intent(intent("e"))
        assert cache.resolve("e", EffectOutcome.blocked()) == EffectOutcome.blocked()
        again = self._again(cache, tmp_path)
        assert again.in_doubt() == [] and again.get("e") is None
        assert cache.put_intent(intent("e", 2)) == intent("e", 2)

    def test_resolve_an_id_with_no_intent_raises(self, tmp_path: Path) -> None:
        cache = self._intents(tmp_path)
        with pytest.raises(DurabilityError, match="`nothing`"):
            cache.resolve("nothing", EffectOutcome.success())
        assert cache.get("nothing") is None

    # -- storage -------------------------------------------------------------------

    def test_intents_are_never_part_of_load(self, tmp_path: Path) -> None:
        cache = self._intents(tmp_path)
        cache.put(binding("a"))
        cache.put_intent(intent("b"))
        cache.put_intent(intent("c"))
        cache.withdraw_intent("c", 1)
        again = self._again(cache, tmp_path)
        assert [e.evidence_id for e in again.load().entries] == ["a"]

    def test_processes_racing_for_attempt_one_record_it_once(self, tmp_path: Path) -> None:
        """Processes put attempt 1 of one id through their own handles at
        once: exactly one intent is recorded, and every process is told it."""
        cache = self._intents(tmp_path)
        self._skip_without_reopen(self._persists())

        def racer(index: int) -> EffectIntent | None:
            mine = self.reopen(cache, tmp_path)
            recorded: EffectIntent | None = mine.put_intent(intent("shared", created=index))
            return recorded

        recorded = self._in_processes(RACERS, racer)
        assert recorded[0] is not None and recorded.count(recorded[0]) == RACERS
        assert cache.in_doubt() == [recorded[0]]
        assert self.reopen(cache, tmp_path).get_intent("shared") == recorded[0]
