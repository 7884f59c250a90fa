"""The PostgreSQL cache's effect cases (`sql_effect_cases.py`) against the
test server (`pg_server.py`), each test in a schema of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from durability import PostgresEvidenceOutcomeCache
from tests.backends.sql_cases import Raw
from tests.backends.sql_effect_cases import SqlEffectCases
from tests.backends.test_postgres import PgRaw, _own_schema, url_for

__all__ = ["_own_schema"]  # the autouse fixture giving each test its schema


class TestPostgresEffects(SqlEffectCases):
    def make_cache(self, tmp_path: Path) -> PostgresEvidenceOutcomeCache:
        return PostgresEvidenceOutcomeCache(url_for(tmp_path))

    def reopen(self, backend: Any, tmp_path: Path) -> PostgresEvidenceOutcomeCache:
        return PostgresEvidenceOutcomeCache(url_for(tmp_path))

    def raw(self, tmp_path: Path) -> Raw:
        return PgRaw(url_for(tmp_path))
