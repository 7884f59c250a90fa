"""The SQLite cache's effect cases (`sql_effect_cases.py`), plus an asyncio
effect writing through ``transaction()``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from durability import (
    EffectOutcome,
    EffectRequest,
    EvidencePersistenceHandler,
    SqliteEvidenceOutcomeCache,
    current_idempotency_key,
)
from tests.backends.sql_cases import Raw
from tests.backends.sql_effect_cases import SINK, SqlEffectCases, payment
from tests.backends.test_sqlite import SqliteRaw, db


class TestSqliteEffects(SqlEffectCases):
    def make_cache(self, tmp_path: Path) -> SqliteEvidenceOutcomeCache:
        return SqliteEvidenceOutcomeCache(db(tmp_path))

    def reopen(self, backend: Any, tmp_path: Path) -> SqliteEvidenceOutcomeCache:
        return SqliteEvidenceOutcomeCache(db(tmp_path))

    def raw(self, tmp_path: Path) -> Raw:
        return SqliteRaw(db(tmp_path))


def test_an_async_effect_commits_its_writes_with_its_binding(tmp_path: Path) -> None:
    cache = SqliteEvidenceOutcomeCache(db(tmp_path))
    with cache.transaction() as connection:
        connection.execute(SINK)

    class AsyncPay:
        async def handle_effect(self, request: EffectRequest) -> EffectOutcome:
            await asyncio.sleep(0)
            with cache.transaction() as connection:
                connection.execute(
                    "INSERT INTO payments VALUES (?, ?)", (current_idempotency_key(), 5)
                )
            return EffectOutcome.success("paid")

    handler = EvidencePersistenceHandler(AsyncPay(), cache, lambda r: "pay-1")
    assert asyncio.run(handler.handle_effect(payment())) == EffectOutcome.success("paid")
    assert asyncio.run(handler.handle_effect(payment())) == EffectOutcome.success("paid")
    assert SqliteRaw(db(tmp_path)).fetch("SELECT * FROM payments") == [("pay-1", 5)]
