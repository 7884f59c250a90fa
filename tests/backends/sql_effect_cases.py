"""Cases both SQL caches must pass for effects (API.md §11) beyond the
shipped contract's intent cases: ``transaction()`` (an effect's writes and
its outcome binding commit together, or not at all), the intents table of a
database made before it, the in-doubt query, and damaged intent rows.
`test_sqlite_effects.py` and `test_postgres_effects.py` subclass these."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from durability import (
    DecodeError,
    EffectOutcome,
    EffectRequest,
    EffectSemantics,
    EvidencePersistenceHandler,
    StorageError,
)
from durability.testing._builders import intent
from tests.backends.sql_cases import Raw
from tests.helpers import FAILED, binding

ID = "pay-1"
SINK = "CREATE TABLE IF NOT EXISTS payments (evidence_id TEXT NOT NULL, amount INTEGER NOT NULL)"


def payment(amount: int = 5) -> EffectRequest:
    return EffectRequest(
        interface_name="Payments",
        operation_name="pay",
        tick=1,
        operation_id="op-1",
        body={"amount": amount},
    )


class Pay:
    """An effect whose sink is the cache's own database: it inserts a row
    through ``cache.transaction()``, then answers from `script` (an outcome,
    or an exception to raise after the writes)."""

    def __init__(self, cache: Any, *script: Any, blocks: int = 1) -> None:
        self.cache, self.script, self.blocks = cache, list(script), blocks

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        for _ in range(self.blocks):
            with self.cache.transaction() as connection:
                connection.execute(
                    "INSERT INTO payments (evidence_id, amount) VALUES (%s, %s)"
                    if type(self.cache).__name__.startswith("Postgres")
                    else "INSERT INTO payments (evidence_id, amount) VALUES (?, ?)",
                    (ID, request.body["amount"]),
                )
        answer = self.script.pop(0) if self.script else EffectOutcome.success("paid")
        if isinstance(answer, BaseException):
            raise answer
        assert isinstance(answer, EffectOutcome)
        return answer


class SqlEffectCases:
    """Mixed into a test class for one dialect."""

    def make_cache(self, tmp_path: Path) -> Any:
        raise NotImplementedError

    def reopen(self, backend: Any, tmp_path: Path) -> Any:
        raise NotImplementedError

    def raw(self, tmp_path: Path) -> Raw:
        raise NotImplementedError

    def _sink(self, tmp_path: Path) -> Any:
        cache = self.make_cache(tmp_path)
        with cache.transaction() as connection:
            connection.execute(SINK)
        return cache

    def _rows(self, tmp_path: Path) -> list[tuple[Any, ...]]:
        return self.raw(tmp_path).fetch("SELECT evidence_id, amount FROM payments")

    def _handler(self, cache: Any, inner: Any, **options: Any) -> Any:
        return EvidencePersistenceHandler(inner, cache, lambda r: ID, **options)

    # -- transaction() outside a handler -----------------------------------------------

    def test_transaction_commits_when_the_block_ends(self, tmp_path: Path) -> None:
        cache = self._sink(tmp_path)
        with cache.transaction() as connection:
            connection.execute("INSERT INTO payments VALUES ('x', 1)")
        assert self._rows(tmp_path) == [("x", 1)]
        cache.put(binding("after"))  # the connection is free again
        assert cache.get("after") == binding("after")

    def test_transaction_rolls_back_when_the_block_raises(self, tmp_path: Path) -> None:
        cache = self._sink(tmp_path)
        with pytest.raises(KeyError), cache.transaction() as connection:
            connection.execute("INSERT INTO payments VALUES ('x', 1)")
            raise KeyError("changed my mind")
        assert self._rows(tmp_path) == []

    def test_cache_calls_inside_an_open_transaction_raise(self, tmp_path: Path) -> None:
        cache = self._sink(tmp_path)
        with cache.transaction(), pytest.raises(StorageError, match="open transaction"):
            cache.get("x")
        assert cache.get("x") is None

    # -- transaction() inside a handler: exactly once ------------------------------------

    def test_effect_writes_and_binding_commit_together(self, tmp_path: Path) -> None:
        cache = self._sink(tmp_path)
        handler = self._handler(cache, Pay(cache))
        assert handler.handle_effect(payment()) == EffectOutcome.success("paid")
        assert handler.handle_effect(payment()) == EffectOutcome.success("paid")
        assert self._rows(tmp_path) == [(ID, 5)]
        again = self.reopen(cache, tmp_path)
        assert again.get(ID) is not None and again.in_doubt() == []

    def test_two_blocks_of_one_effect_commit_as_one(self, tmp_path: Path) -> None:
        cache = self._sink(tmp_path)
        assert self._handler(cache, Pay(cache, blocks=2)).handle_effect(payment()).is_success
        assert self._rows(tmp_path) == [(ID, 5), (ID, 5)]

    def test_a_joining_block_that_raises_undoes_only_its_own_writes(self, tmp_path: Path) -> None:
        cache = self._sink(tmp_path)

        class Careful(Pay):
            def handle_effect(self, request: EffectRequest) -> EffectOutcome:
                outcome = super().handle_effect(request)  # one row, parked
                try:
                    with cache.transaction() as connection:
                        connection.execute("INSERT INTO payments VALUES ('extra', 1)")
                        raise LookupError("second thoughts")
                except LookupError:
                    pass
                return outcome

        assert self._handler(cache, Careful(cache)).handle_effect(payment()).is_success
        assert self._rows(tmp_path) == [(ID, 5)]
        assert cache.get(ID) is not None

    def test_an_effect_raising_after_its_writes_leaves_no_write(self, tmp_path: Path) -> None:
        cache = self._sink(tmp_path)
        handler = self._handler(cache, Pay(cache, TimeoutError("no answer")))
        with pytest.raises(TimeoutError):
            handler.handle_effect(payment())
        assert self._rows(tmp_path) == [] and cache.get(ID) is None
        assert [i.evidence_id for i in cache.in_doubt()] == [ID]  # a raise is in doubt
        # ... but with transaction() the binding's absence proves it did not happen
        retry = self._handler(cache, Pay(cache), reconcile=lambda request, evidence_id: None)
        assert retry.handle_effect(payment()).is_success
        assert self._rows(tmp_path) == [(ID, 5)] and cache.in_doubt() == []

    def test_blocked_rolls_the_writes_back_and_withdraws(self, tmp_path: Path) -> None:
        cache = self._sink(tmp_path)
        handler = self._handler(cache, Pay(cache, EffectOutcome.blocked()))
        assert handler.handle_effect(payment()).is_blocked
        assert self._rows(tmp_path) == []
        latest = cache.get_intent(ID)
        assert latest is not None and latest.withdrawn

    def test_a_binding_made_first_rolls_the_effect_back(self, tmp_path: Path) -> None:
        cache = self._sink(tmp_path)
        other = self.reopen(cache, tmp_path)

        class Racing(Pay):
            def handle_effect(self, request: EffectRequest) -> EffectOutcome:
                other.put(binding(ID, EffectOutcome.success("paid elsewhere")))
                return super().handle_effect(request)

        handler = self._handler(cache, Racing(cache), semantics=EffectSemantics.AT_LEAST_ONCE)
        assert handler.handle_effect(payment()) == EffectOutcome.success("paid elsewhere")
        assert self._rows(tmp_path) == []

    # -- the intents table -------------------------------------------------------------

    def test_a_database_made_before_intents_gets_the_table_on_first_write(
        self, tmp_path: Path
    ) -> None:
        cache = self.make_cache(tmp_path)
        cache.put(binding("old"))
        raw = self.raw(tmp_path)
        raw.execute("DROP TABLE durability_cache_intents")  # as an earlier version made it
        fresh = self.reopen(None, tmp_path)
        assert fresh.get_intent("old") is None and fresh.in_doubt() == []
        assert raw.fetch("SELECT version FROM durability_schema") == [(1,)]
        assert fresh.put_intent(intent("new")) == intent("new")  # creates the table
        assert self.reopen(None, tmp_path).in_doubt() == [intent("new")]
        assert raw.fetch("SELECT version FROM durability_schema") == [(1,)]
        assert fresh.get("old") == binding("old")

    def test_in_doubt_skips_terminal_bindings_and_keeps_blocked_ones(self, tmp_path: Path) -> None:
        cache = self.make_cache(tmp_path)
        for eid in ("a", "b", "c", "d"):
            cache.put_intent(intent(eid))
        cache.put(binding("a", FAILED))
        cache.put(binding("b", EffectOutcome.blocked()))
        cache.put(binding("d", EffectOutcome.success({"status": "blocked"})))  # looks alike
        assert [i.evidence_id for i in cache.in_doubt()] == ["b", "c"]

    def test_undecodable_intent_row_names_table_and_position(self, tmp_path: Path) -> None:
        cache = self.make_cache(tmp_path)
        cache.put_intent(intent("a"))
        cache.put_intent(intent("b"))
        self.raw(tmp_path).execute(
            "UPDATE durability_cache_intents SET intent = ? WHERE evidence_id = ?",
            (b"\xa1\x61x\x01", "b"),
        )
        assert cache.get_intent("a") == intent("a")
        for read in (lambda: cache.get_intent("b"), cache.in_doubt):
            with pytest.raises(DecodeError, match=r"durability_cache_intents.* at position 2"):
                read()
