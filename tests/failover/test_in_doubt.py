"""Writes whose outcome is unknown, made deterministic: the connection is lost
during ``COMMIT`` either after the server committed (the reply is what got
lost) or before. A failover makes such writes at random (`test_failover.py`);
here each case is forced, on the PostgreSQL test server (`pg_server.py`).

* `append_once` (the README's recipe, which the failover writers run) writes
  an in-doubt append at most once, and tells its own committed entry from
  another writer's;
* a ``wal_sync`` re-run after an unknown outcome writes nothing twice;
* an effect whose binding had committed is answered from the cache, not run
  again, and ``put_if_absent`` returns the bound outcome.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durability import (
    AgreementWalHandler,
    EffectOutcome,
    EffectRequest,
    EffectSemantics,
    EvidencePersistenceHandler,
    PostgresAgreementWal,
    PostgresEvidenceOutcomeCache,
    StorageError,
)
from tests.backends import pg_server
from tests.failover import workers
from tests.failover.workers import append_once, appended_entry, sync_request, synced_entries
from tests.helpers import L, binding, gate

psycopg = pytest.importorskip("psycopg") if not os.environ.get("CI") else __import__("psycopg")

README = Path(__file__).resolve().parents[2] / "README.md"
UNKNOWN = "outcome is unknown"


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    pg_server.require_server()
    yield pg_server.fresh_schema_url(str(tmp_path))
    gc.collect()
    with contextlib.suppress(Exception):
        pg_server.drop_schema(str(tmp_path))


@contextlib.contextmanager
def commit_lost(backend: Any, *, committed: bool) -> Iterator[list[str]]:
    """The next ``COMMIT`` of `backend` loses its connection: after the server
    committed (`committed`: only the reply is lost) or before it."""
    original = psycopg.Cursor.execute
    seen: list[str] = []

    def execute(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if query != "COMMIT" or cursor.connection is not backend._db._connection or seen:
            return original(cursor, query, *args, **kwargs)
        seen.append(query)
        if committed:
            original(cursor, query, *args, **kwargs)
        cursor.connection.close()  # without COMMIT, the server rolls back
        raise psycopg.OperationalError("server closed the connection unexpectedly (injected)")

    psycopg.Cursor.execute = execute
    try:
        yield seen
    finally:
        psycopg.Cursor.execute = original


@pytest.mark.parametrize("committed", [True, False])
def test_append_once_writes_an_in_doubt_append_once(url: str, committed: bool) -> None:
    wal = PostgresAgreementWal(url)
    before = wal.append(gate("a", L.NONE, 1))
    entry = gate("b", L.NONE, 2)
    with commit_lost(wal, committed=committed), pytest.raises(StorageError, match=UNKNOWN):
        wal.append(entry)
    assert append_once(wal, entry, before) == (2, committed)
    assert PostgresAgreementWal(url).load().entries == (gate("a", L.NONE, 1), entry)


@pytest.mark.parametrize("committed", [True, False])
def test_append_once_tells_its_own_entry_from_another_writers(url: str, committed: bool) -> None:
    wal, other = PostgresAgreementWal(url), PostgresAgreementWal(url)
    before = wal.append(gate("a", L.NONE, 1))
    entry = gate("mine", L.NONE, 2)
    with commit_lost(wal, committed=committed), pytest.raises(StorageError, match=UNKNOWN):
        wal.append(entry)
    theirs = gate("theirs", L.NONE, 3)
    other.append(theirs)
    sequence, had_committed = append_once(wal, entry, before)
    assert had_committed is committed
    expected = (
        [gate("a", L.NONE, 1), entry, theirs]
        if committed
        else [gate("a", L.NONE, 1), theirs, entry]
    )
    assert list(PostgresAgreementWal(url).load().entries) == expected
    assert sequence == expected.index(entry) + 1


@pytest.mark.parametrize("committed", [True, False])
def test_a_wal_sync_rerun_after_an_unknown_outcome_writes_nothing_twice(
    url: str, committed: bool
) -> None:
    wal = PostgresAgreementWal(url)
    handler = AgreementWalHandler(workers._Nothing(), wal)
    wal.append(appended_entry("op", 7))
    with commit_lost(wal, committed=committed) as lost:
        first = handler.wal_sync(sync_request("op", 7))
    assert lost == ["COMMIT"]
    assert first.failure is not None and UNKNOWN in first.failure.message
    assert handler.wal_sync(sync_request("op", 7)).is_success
    assert handler.wal_sync(sync_request("op", 7)).is_success  # and again: nothing new
    entries = PostgresAgreementWal(url).load().entries
    assert list(entries) == [appended_entry("op", 7), *synced_entries("op", 7)]


class Effect:
    """Counts its runs; on its first run it arms `arm` (the lost COMMIT is then
    the binding's, after the intent committed)."""

    def __init__(self, arm: Any) -> None:
        self.runs = 0
        self.arm = arm

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        self.runs += 1
        if self.runs == 1:
            self.arm()
        return EffectOutcome.success({"run": self.runs})


@pytest.mark.parametrize("committed", [True, False])
def test_an_effect_whose_binding_committed_is_not_run_again(url: str, committed: bool) -> None:
    cache = PostgresEvidenceOutcomeCache(url)
    cache.load()  # the tables exist: the COMMIT lost is the binding's
    with contextlib.ExitStack() as stack:
        effect = Effect(lambda: stack.enter_context(commit_lost(cache, committed=committed)))
        handler = EvidencePersistenceHandler(  # a binding lost is re-run: at least once
            effect, cache, lambda request: "ev-1", semantics=EffectSemantics.AT_LEAST_ONCE
        )
        request = EffectRequest(interface_name="Storage", operation_name="write", tick=1)
        first = handler.handle_effect(request)
    assert effect.runs == 1
    assert first.failure is not None and UNKNOWN in first.failure.message
    again = handler.handle_effect(request)
    # bound: answered from the cache, the effect ran once; not bound: it runs again
    assert again.response == {"run": 1 if committed else 2}
    assert effect.runs == (1 if committed else 2)
    late = binding("ev-1", EffectOutcome.success({"run": "late"}))
    bound = PostgresEvidenceOutcomeCache(url).put_if_absent(late)
    assert bound.outcome == again  # first binding wins: the late one is not bound


def test_the_readme_recipe_is_what_the_failover_writers_run() -> None:
    text = README.read_text()
    start = text.index("## Surviving a failover\n")
    section = text[start : text.index("\n## ", start + 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert any(inspect.getsource(append_once) in block for block in blocks)
