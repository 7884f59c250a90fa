"""Reading any store without changing it (`durability.reading`), the SQL
backends' read-only mode and catalog, `put_many`, and a state directory whose
WAL and cache live in a SQL database."""

from __future__ import annotations

from pathlib import Path

import pytest

from durability import (
    DurabilityError,
    SqliteAgreementWal,
    SqliteEvidenceOutcomeCache,
    StateDirectory,
    StorageError,
)
from durability.reading import StoreReport, read_store
from tests.cli_stores import fill_cache, fill_wal, sqlite_url
from tests.helpers import L, binding, esc, ev, gate


def test_a_read_only_sqlite_backend_creates_nothing_and_writes_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "absent.db"
    with pytest.raises(StorageError, match="no SQLite database file"):
        SqliteAgreementWal(missing, read_only=True).load()
    assert not missing.exists()
    fill_wal(sqlite_url(tmp_path / "state.db"), operations=2)
    before = (tmp_path / "state.db").read_bytes()
    wal = SqliteAgreementWal(tmp_path / "state.db", read_only=True)
    assert wal.read_only and len(wal.load().entries) == 7
    with pytest.raises(StorageError, match="opened read-only"):
        wal.append(gate("x", L.NONE, 9))
    cache = SqliteEvidenceOutcomeCache(tmp_path / "state.db", read_only=True)
    assert cache.load().entries == ()  # tables exist, no cache named default: empty
    with pytest.raises(StorageError, match="opened read-only"):
        cache.put(binding("e"))
    assert wal.catalog() == {"wal": ("default",), "cache": ()}
    wal.close()
    cache.close()
    assert (tmp_path / "state.db").read_bytes() == before


def test_put_many_binds_in_order_in_one_transaction(tmp_path: Path) -> None:
    with SqliteEvidenceOutcomeCache(tmp_path / "state.db") as cache:
        cache.put(binding("a"))
        assert cache.put_many([binding("b"), binding("a"), binding("c")]) == 3
        assert [e.evidence_id for e in cache.load().entries] == ["b", "a", "c"]
        assert cache.put_many([]) == 0


def test_a_pruned_wal_reports_its_sequences_and_what_pruning_removed(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "state.db")
    with SqliteAgreementWal(tmp_path / "state.db") as wal:
        wal.append_batch([ev("a", "a/w", L.PROVISIONAL, 1), esc("a", L.NONE, L.PROVISIONAL, 1)])
        wal.append_batch([ev("a", "a/c", L.SOFT_SAFE, 2), esc("a", L.PROVISIONAL, L.SOFT_SAFE, 2)])
        wal.append(gate("b", L.NONE, 3))
        removed = wal.prune_through(2)
    report = read_store(url)
    assert isinstance(report, StoreReport) and removed > 0
    assert report.last_sequence == 5 and report.pruned == removed
    assert report.entries == 5 - removed == len(report.sequences)


def test_read_store_names_what_a_database_holds_when_the_name_is_not_there(
    tmp_path: Path,
) -> None:
    url = sqlite_url(tmp_path / "state.db")
    fill_wal(url, operations=1, name="w")
    fill_cache(url, bindings=1, name="c")
    with pytest.raises(
        DurabilityError, match=r"no cache named `w` \(it holds WAL `w`, cache `c`\)"
    ):
        read_store(url, kind="cache", name="w")
    assert read_store(url, name="c").kind == "evidence_outcome_cache"


def test_a_state_directory_keeps_checkpoints_and_puts_its_logs_at_urls(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "state.db")
    log = tmp_path / "elsewhere" / "evidence.log"
    log.parent.mkdir()
    with StateDirectory(tmp_path / "state", wal=url, cache=str(log)) as store:
        store.wal.append_batch([ev("a", "a/c", L.SOFT_SAFE, 1), esc("a", L.NONE, L.SOFT_SAFE, 1)])
        store.cache.put(binding("a/c"))
        store.checkpoint(1, b"state@1")
        assert store.repairs == {str(log): None}  # the SQL WAL has no torn tail: not listed
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [
        ".checkpoint.lock",
        "checkpoints",
    ]
    with StateDirectory(tmp_path / "state", read_only=True, wal=url, cache=str(log)) as store:
        assert store.wal.read_only
        assert store.plan_recovery().metadata.checkpoint_tick == 1
        assert [e.evidence_id for e in store.cache.load().entries] == ["a/c"]
