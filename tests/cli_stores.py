"""What the CLI tests on SQL stores share: a PostgreSQL schema of the test's
own on the private server (`pg_server.py`, as ``tests/backends/test_postgres.py``
gets one), filling a WAL and a cache through any URL, and snapshots that show
nothing changed."""

from __future__ import annotations

import contextlib
import gc
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from durability import FinalizationOutcome as F
from durability import open_cache, open_wal
from tests.backends import pg_server
from tests.helpers import FAILED, L, binding, esc, ev, fin, gate


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A URL whose search path is an empty schema of this test's own (dropped
    after it); skips loudly, or fails under CI, without a server."""
    pg_server.require_server()
    url = pg_server.fresh_schema_url(str(tmp_path))
    yield url
    gc.collect()  # handles the test dropped close their connections
    with contextlib.suppress(Exception):
        pg_server.drop_schema(str(tmp_path))


def sqlite_url(path: Path) -> str:
    """``sqlite:////abs/path`` (absolute: the CLI may run elsewhere)."""
    return f"sqlite:///{path.resolve()}"


def fill_wal(url: str, operations: int = 6, **options: object) -> int:
    """Write a WAL of `operations` operations (evidence, escalation, gate; every
    third finalized) to `url`; return how many entries."""
    with open_wal(url, **options) as wal:  # type: ignore[arg-type]
        for n in range(operations):
            op = f"op#{n:03d}"
            wal.append_batch(
                [
                    ev(op, f"{op}/c", L.SOFT_SAFE, n + 1),
                    esc(op, L.NONE, L.SOFT_SAFE, n + 1),
                    gate(op, L.SOFT_SAFE, n + 1),
                ]
            )
            if n % 3 == 0:
                wal.append(fin(op, F.FINALIZED, n + 2))
        return len(wal.load().entries)


def fill_cache(url: str, bindings: int = 4, **options: object) -> int:
    """Bind `bindings` evidence ids (one of them failed, one rebound) in the
    cache at `url`; return how many bindings it holds."""
    with open_cache(url, **options) as cache:  # type: ignore[arg-type]
        for n in range(bindings):
            cache.put(binding(f"op#{n:03d}/c", FAILED if n == 1 else None))
        cache.put(binding("op#000/c"))  # rebound: moves last
        return len(cache.load().entries)


def files_under(root: Path) -> dict[str, str]:
    """Every file under `root` with its content hash."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def pg_tables(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every table of the URL's schema with all its rows, sorted."""
    with pg_server.admin_connect(url) as conn:
        (schema,) = conn.execute("SELECT current_schema()").fetchone() or (None,)
        names = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename",
                (schema,),
            ).fetchall()
        ]
        return {
            name: sorted(conn.execute(f"SELECT * FROM {name}").fetchall(), key=repr)
            for name in names
        }
