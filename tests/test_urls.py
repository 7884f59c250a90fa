"""`open_wal` / `open_cache` (API.md §10): every accepted URL form opens the
right backend with the right options; everything else is refused with a
`DurabilityError` naming the accepted forms, and never shows a password."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from durability import (
    DurabilityError,
    FileAgreementWal,
    FileEvidenceOutcomeCache,
    PostgresAgreementWal,
    SqliteAgreementWal,
    SqliteEvidenceOutcomeCache,
    StorageError,
    open_cache,
    open_wal,
)
from durability.urls import parse_storage_url
from tests.helpers import L, binding, gate


def test_a_plain_path_or_file_url_opens_the_file_backends(tmp_path: Path) -> None:
    wal = open_wal(tmp_path / "wal.log")
    assert isinstance(wal, FileAgreementWal) and wal.path == str(tmp_path / "wal.log")
    wal.append(gate("a", L.NONE, 1))
    spaced = tmp_path / "a dir"
    spaced.mkdir()
    again = open_wal(f"file://{tmp_path}/wal.log")
    assert isinstance(again, FileAgreementWal) and again.load() == wal.load()
    cache = open_cache(f"file:///{str(spaced).lstrip('/').replace(' ', '%20')}/cache.log")
    assert isinstance(cache, FileEvidenceOutcomeCache)
    assert cache.path == str(spaced / "cache.log")
    assert isinstance(open_wal(str(tmp_path / "plain.log")), FileAgreementWal)
    assert isinstance(open_wal(f"file://localhost{tmp_path}/x.log"), FileAgreementWal)
    for handle in (wal, again, cache):
        handle.close()


def test_options_go_to_the_backend(tmp_path: Path) -> None:
    wal = open_wal(tmp_path / "wal.log", read_only=True)
    assert isinstance(wal, FileAgreementWal) and wal.read_only
    named = open_wal(f"sqlite:///{tmp_path}/state.db", name="other", retries=7)
    assert isinstance(named, SqliteAgreementWal)
    assert named.name == "other" and named._db.retries == 7
    with pytest.raises(TypeError):
        open_wal(tmp_path / "wal2.log", no_such_option=1)


def test_sqlite_urls_relative_and_absolute_percent_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_wal("sqlite:///state%20one.db")
    assert isinstance(relative, SqliteAgreementWal)
    assert relative.path == str(tmp_path / "state one.db")
    absolute = open_cache(f"sqlite:///{tmp_path}/state%20one.db")  # four slashes in all
    assert isinstance(absolute, SqliteEvidenceOutcomeCache)
    assert absolute.path == str(tmp_path / "state one.db")
    relative.append(gate("a", L.NONE, 1))
    absolute.put(binding("e"))  # a WAL and a cache share one database
    assert open_wal(f"sqlite:////{str(tmp_path).lstrip('/')}/state%20one.db").last_sequence == 1


def test_sqlite_query_parameters(tmp_path: Path) -> None:
    parsed = parse_storage_url("sqlite:///x.db?synchronous=extra&busy_timeout=2.5")
    assert parsed.kind == "sqlite" and parsed.path == "x.db"
    assert dict(parsed.options) == {"synchronous": "EXTRA", "busy_timeout": 2.5}
    wal = open_wal(f"sqlite:///{tmp_path}/s.db?synchronous=OFF&busy_timeout=0")
    assert isinstance(wal, SqliteAgreementWal)
    assert (wal._db.synchronous, wal._db.busy_timeout) == ("OFF", 0.0)
    default = open_wal(f"sqlite:///{tmp_path}/s.db")
    assert (default._db.synchronous, default._db.busy_timeout) == ("FULL", 30.0)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("sqlite://", "sqlite:///RELATIVE or sqlite:////ABSOLUTE"),
        ("sqlite:///", "must name a database file"),
        ("sqlite:///:memory:", "must name a database file"),
        ("sqlite://:memory:", "sqlite:///RELATIVE"),
        ("sqlite:relative.db", "sqlite:///RELATIVE"),
        ("sqlite://host/x.db", "sqlite:///RELATIVE"),
        ("sqlite:///x.db?journal=wal", "unknown query parameter 'journal'"),
        ("sqlite:///x.db?synchronous=sometimes", "synchronous must be one of"),
        ("sqlite:///x.db?busy_timeout=soon", "busy_timeout must be"),
        ("sqlite:///x.db?busy_timeout=-1", "busy_timeout must be"),
        ("sqlite:///x.db?busy_timeout=nan", "busy_timeout must be"),
        ("sqlite:///x.db?synchronous=FULL&synchronous=OFF", "given twice"),
        ("file://server/share/wal.log", "absolute local path"),
        ("file:relative.log", "absolute local path"),
        ("file:///wal.log?sync=none", "no query parameters"),
        ("mysql://user:hunter2@db/x", "unknown scheme 'mysql'"),
        ("s3://bucket/wal.log", "unknown scheme 's3'"),
        ("", "empty"),
    ],
)
def test_other_forms_are_refused_naming_the_accepted_ones(url: str, why: str) -> None:
    for opener in (open_wal, open_cache):
        with pytest.raises(DurabilityError) as caught:
            opener(url)
        message = str(caught.value)
        assert why in message
        assert "sqlite:///RELATIVE/PATH" in message and "postgresql://" in message
        assert "file:///ABSOLUTE/PATH" in message
        assert "hunter2" not in message


def test_an_option_also_in_the_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DurabilityError, match="synchronous given both"):
        open_wal(f"sqlite:///{tmp_path}/x.db?synchronous=FULL", synchronous="OFF")


def test_postgresql_urls_go_to_libpq_as_they_are() -> None:
    for scheme in ("postgresql", "postgres"):
        url = f"{scheme}://app:hunter2@h1:5432,h2:5433/db?target_session_attrs=read-write"
        parsed = parse_storage_url(url)
        assert parsed.kind == "postgresql" and parsed.conninfo == url
        assert "hunter2" not in repr(parsed) and "hunter2" not in parsed.shown
        wal = open_wal(url)  # nothing connects before the first call
        assert isinstance(wal, PostgresAgreementWal)
        assert wal.database == "postgresql://app@h1:5432,h2:5433/db"
        assert "hunter2" not in repr(wal)


def test_an_unknown_libpq_parameter_is_refused() -> None:
    with pytest.raises(DurabilityError) as caught:
        open_wal("postgresql://app:hunter2@db/x?no_such_parameter=1")
    message = str(caught.value)
    assert "no_such_parameter" in message and "postgresql://" in message
    assert "hunter2" not in message and not isinstance(caught.value, StorageError)


def test_postgresql_without_psycopg_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed
    for opener in (open_wal, open_cache):
        with pytest.raises(StorageError, match=r"pip install 'durability\[postgres\]'"):
            opener("postgresql://app:hunter2@db/x")


def test_a_colon_in_a_file_name_reads_as_a_scheme(tmp_path: Path) -> None:
    with pytest.raises(DurabilityError, match=r"\./NAME"):
        open_wal("wal:1.log")
    assert isinstance(open_wal(f"{tmp_path}/wal:1.log"), FileAgreementWal)


def test_parse_refuses_non_text(tmp_path: Path) -> None:
    bad: Any = 42
    with pytest.raises(TypeError):
        parse_storage_url(bad)
