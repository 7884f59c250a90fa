"""The SQL backends' table layout (version `SQL_SCHEMA_VERSION`): the
statements that create it, in each dialect's column types. ``sql.py`` runs
them; ``specs/effects.md`` and the README describe the tables."""

from __future__ import annotations

__all__ = [
    "CACHE_ENTRIES",
    "CACHE_HEADS",
    "CACHE_INTENTS",
    "SCHEMA_TABLE",
    "SQL_SCHEMA_VERSION",
    "WAL_ENTRIES",
    "WAL_HEADS",
    "intents_ddl",
    "schema_ddl",
]

#: The version of the table layout below; a database holding a newer one is
#: refused (`SchemaVersionError`) and never altered.
SQL_SCHEMA_VERSION = 1

SCHEMA_TABLE = "durability_schema"
WAL_HEADS = "durability_wal_heads"
WAL_ENTRIES = "durability_wal_entries"
CACHE_HEADS = "durability_cache_heads"
CACHE_ENTRIES = "durability_cache_entries"
CACHE_INTENTS = "durability_cache_intents"


def schema_ddl(*, bigint: str, blob: str, tick: str) -> list[str]:
    """The statements creating schema version 1, in a dialect's types.

    One head row per WAL (its last sequence: the writers' lock) and per cache
    (its last binding position); one row per WAL entry (sequence, tick, CBOR)
    and per cache binding (evidence id, position, CBOR).
    """
    return [
        f"""CREATE TABLE {SCHEMA_TABLE} (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL)""",
        f"""CREATE TABLE {WAL_HEADS} (
            wal TEXT PRIMARY KEY,
            last_sequence {bigint} NOT NULL CHECK (last_sequence >= 0),
            pruned_through {bigint} NOT NULL DEFAULT 0,
            prunes {bigint} NOT NULL DEFAULT 0)""",
        f"""CREATE TABLE {WAL_ENTRIES} (
            wal TEXT NOT NULL,
            sequence {bigint} NOT NULL CHECK (sequence > 0),
            tick {tick},
            entry {blob} NOT NULL,
            PRIMARY KEY (wal, sequence))""",
        f"""CREATE TABLE {CACHE_HEADS} (
            cache TEXT PRIMARY KEY,
            last_position {bigint} NOT NULL CHECK (last_position >= 0))""",
        f"""CREATE TABLE {CACHE_ENTRIES} (
            cache TEXT NOT NULL,
            evidence_id TEXT NOT NULL,
            position {bigint} NOT NULL,
            entry {blob} NOT NULL,
            PRIMARY KEY (cache, evidence_id))""",
        f"CREATE INDEX {CACHE_ENTRIES}_order ON {CACHE_ENTRIES} (cache, position)",
        *intents_ddl(bigint=bigint, blob=blob),
    ]


def intents_ddl(*, bigint: str, blob: str) -> list[str]:
    """The intents table (API.md §11, ``specs/effects.md``): additive, so still
    schema version 1 (an older database gets it on its first intent write)."""
    return [
        f"""CREATE TABLE {CACHE_INTENTS} (
            cache TEXT NOT NULL,
            evidence_id TEXT NOT NULL,
            attempt {bigint} NOT NULL CHECK (attempt > 0),
            withdrawn INTEGER NOT NULL CHECK (withdrawn IN (0, 1)),
            position {bigint} NOT NULL,
            intent {blob} NOT NULL,
            PRIMARY KEY (cache, evidence_id))""",
        f"CREATE INDEX {CACHE_INTENTS}_open ON {CACHE_INTENTS} (cache, withdrawn, position)",
    ]
