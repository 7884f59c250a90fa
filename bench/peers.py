"""The peers the toolkit is compared with: ``sqlite3`` (standard library),
and the optional, bench-only eventsourcing and DBOS Transact.

Optional peers are imported with `optional`; a missing one makes its rows
``skipped``, and RESULTS.md says so loudly. Install them with
``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import importlib
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "DbosSteps",
    "EventsourcingRecorder",
    "SqliteLog",
    "optional",
    "version_of",
]

_SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def optional(name: str) -> ModuleType | None:
    """`name` imported, or ``None`` when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def version_of(distribution: str) -> str | None:
    """The installed version of `distribution`, or ``None``."""
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


class SqliteLog:
    """Entries as rows of one sqlite3 table, journal in WAL mode,
    ``synchronous=FULL``, autocommit: one commit (and one WAL fsync) per insert."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        self._conn.execute("PRAGMA synchronous=FULL")
        sync = self._conn.execute("PRAGMA synchronous").fetchone()[0]
        self.settings = f"journal_mode={mode}, synchronous={_SYNCHRONOUS.get(sync, sync)}"
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS wal (seq INTEGER PRIMARY KEY, entry BLOB NOT NULL)"
        )

    def append(self, entry: bytes) -> None:
        """Insert one row: one transaction, committed."""
        self._conn.execute("INSERT INTO wal (entry) VALUES (?)", (entry,))

    def close(self) -> None:
        self._conn.close()


class EventsourcingRecorder:
    """An eventsourcing aggregate recorder (POPO, or SQLite at `path`)
    storing one `StoredEvent` per WAL entry: the operation is the aggregate
    (``originator_id``), the entry's position in it the version, its kind
    the topic and its CBOR the state."""

    def __init__(self, path: Path | None) -> None:
        persistence = importlib.import_module("eventsourcing.persistence")
        self._stored_event: Callable[..., Any] = persistence.StoredEvent
        self.settings = ""
        if path is None:
            popo = importlib.import_module("eventsourcing.popo")
            self._recorder: Any = popo.POPOAggregateRecorder()
        else:
            es_sqlite = importlib.import_module("eventsourcing.sqlite")
            self._datastore: Any = es_sqlite.SQLiteDatastore(db_name=str(path))
            self._recorder = es_sqlite.SQLiteAggregateRecorder(self._datastore)
            self._recorder.create_table()
            with self._datastore.transaction(commit=False) as cursor:
                cursor.execute("PRAGMA journal_mode")
                mode = cursor.fetchone()[0]
                cursor.execute("PRAGMA synchronous")
                sync = cursor.fetchone()[0]
            self.settings = (
                f"journal_mode={mode}, synchronous={_SYNCHRONOUS.get(sync, sync)} "
                "(the library's own settings)"
            )

    def events(self, kinds: list[str], blobs: list[bytes], operations: list[str]) -> list[Any]:
        """The stored events of entries given by kind, CBOR and operation id."""
        versions: dict[str, int] = {}
        out = []
        for kind, blob, op in zip(kinds, blobs, operations, strict=True):
            versions[op] = versions.get(op, 0) + 1
            out.append(
                self._stored_event(
                    originator_id=uuid.uuid5(uuid.NAMESPACE_URL, op),
                    originator_version=versions[op],
                    topic=f"durability.artifact:{kind}",
                    state=blob,
                )
            )
        return out

    def insert(self, event: Any) -> None:
        """Record one event (its own transaction, for SQLite)."""
        self._recorder.insert_events([event])

    def close(self) -> None:
        if hasattr(self, "_datastore"):
            self._datastore.close()


class DbosSteps:
    """DBOS Transact with its system database in SQLite at `folder`: one
    workflow calling a ``@DBOS.step`` `n` times. DBOS records each step's
    output in its system database before the workflow goes on."""

    def __init__(self, folder: Path) -> None:
        dbos = importlib.import_module("dbos")
        self._dbos: Any = dbos.DBOS
        database = folder / "dbos_system.sqlite"
        config: dict[str, Any] = {
            "name": "durability-bench",
            "system_database_url": f"sqlite:///{database}",
            "run_admin_server": False,
            "log_level": "ERROR",
            "console_log_level": "ERROR",
        }
        self._dbos(config=config)
        DBOS = self._dbos

        @DBOS.step()  # type: ignore[untyped-decorator]
        def effect(i: int) -> dict[str, Any]:
            return {"written": i}

        @DBOS.workflow()  # type: ignore[untyped-decorator]
        def workflow(n: int) -> int:
            for i in range(n):
                effect(i)
            return n

        self._workflow: Callable[[int], int] = workflow
        DBOS.launch()
        for name in ("dbos", "sqlalchemy"):
            logging.getLogger(name).setLevel(logging.ERROR)
        probe = sqlite3.connect(database)
        mode = probe.execute("PRAGMA journal_mode").fetchone()[0]
        sync = probe.execute("PRAGMA synchronous").fetchone()[0]
        probe.close()
        self.settings = (
            f"system database {database.name}: journal_mode={mode}, "
            f"synchronous={_SYNCHRONOUS.get(sync, sync)} (sqlite3 default; DBOS sets none)"
        )

    def run(self, n: int) -> float:
        """Seconds one workflow of `n` steps took."""
        start = time.perf_counter()
        done = self._workflow(n)
        elapsed = time.perf_counter() - start
        if done != n:
            raise RuntimeError(f"DBOS workflow returned {done!r}, not {n}")
        return elapsed

    def close(self) -> None:
        self._dbos.destroy()
