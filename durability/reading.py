"""Reading a WAL or cache named by a path or an API.md §10 URL, without
changing it: what ``durability inspect``, ``verify``, ``export``, ``plan`` and
``migrate`` read.

* A path or ``file:///`` URL is read with `inspect_log`: records, byte
  offsets, and a torn tail reported, never repaired.
* A ``sqlite:`` or ``postgresql:`` URL is opened read-only: no table is
  created, nothing is written (SQLite through a ``mode=ro`` URI, PostgreSQL in
  ``READ ONLY`` transactions of ``SELECT``s). A SQL store has no bytes,
  records or torn tail: its `StoreReport` counts entries and sequences.

A database may hold a WAL and a cache, and several of each told apart by
name (``"default"`` unless given): `kind` (``"wal"`` or ``"cache"``) says
which; without it, the one that exists under that name is read, and a name
held by both, or by neither, is an error listing what the database holds::

    report = read_store("sqlite:///state.db", kind="wal")
    print(report.entries, report.last_sequence)
"""

from __future__ import annotations

import os
from typing import Any, Literal

import attrs

from .artifact import AgreementWalArtifact, EvidenceOutcomeCacheArtifact
from .backends.file import LogReport, export_artifact, inspect_log
from .backends.sql import SqlBackend
from .errors import ArtifactTooLargeError, DurabilityError, PayloadKindError, StorageError
from .index import OperationSummary, WalIndex
from .limits import MAX_ARTIFACT_BYTES, SCHEMA_VERSION
from .persisted import PersistedDurabilityArtifact
from .urls import AnyCache, AnyWal, StorageUrl, open_cache, open_wal, parse_storage_url

__all__ = [
    "KINDS",
    "PAYLOAD_KINDS",
    "Kind",
    "StoreReport",
    "artifact_bytes",
    "cache_for_reading",
    "read_store",
    "same_file",
    "same_store",
    "wal_for_reading",
]

Kind = Literal["wal", "cache"]
#: The kinds a store can be, as ``--kind`` takes them.
KINDS: tuple[Kind, ...] = ("wal", "cache")
#: Each kind's payload kind text (what `LogReport.kind` holds).
PAYLOAD_KINDS: dict[str, str] = {"wal": "agreement_wal", "cache": "evidence_outcome_cache"}
_WORDS = {"wal": "WAL", "cache": "cache"}
DEFAULT_NAME = "default"


@attrs.frozen(kw_only=True)
class StoreReport:
    """What `read_store` read from a SQL WAL or cache.

    `path` is the URL as messages show it (never a password), `database` the
    database (SQLite: the absolute file), `name` the WAL's or cache's name in
    it, `kind` the payload kind text (``"agreement_wal"`` or
    ``"evidence_outcome_cache"``), `entries` how many entries (a cache: one
    binding per evidence id). A WAL has `sequences` (its entries', ascending;
    holes where it was pruned) and `last_sequence` (0 when empty); a cache
    has neither. `torn_tail` is always ``None``: a SQL store commits whole
    transactions.
    """

    path: str
    backend: Literal["sqlite", "postgresql"]
    database: str
    name: str
    kind: str
    entries: int
    artifact: AgreementWalArtifact | EvidenceOutcomeCacheArtifact = attrs.field(
        repr=False, eq=False
    )
    operations: tuple[OperationSummary, ...] = attrs.field(default=(), repr=False, eq=False)
    sequences: tuple[int, ...] = attrs.field(default=(), repr=False)
    last_sequence: int | None = None
    torn_tail: None = None

    @property
    def pruned(self) -> int:
        """Sequences below `last_sequence` no entry holds (a pruned WAL)."""
        return (self.last_sequence or 0) - len(self.sequences)


def _no_name_for_files(parsed: StorageUrl, name: str | None) -> None:
    if name is not None and parsed.kind == "file":
        raise DurabilityError(
            f"{parsed.shown} is a log file: a name (--name) picks a WAL or cache "
            "within a SQL database only"
        )


def _sql_options(parsed: StorageUrl, name: str | None) -> dict[str, Any]:
    return {"read_only": True, "name": name or DEFAULT_NAME}


def _existing_file(parsed: StorageUrl) -> str:
    assert parsed.path is not None
    if not os.path.isfile(parsed.path):
        raise StorageError(f"no log file at {parsed.path}")
    return parsed.path


def wal_for_reading(url: str | os.PathLike[str], *, name: str | None = None) -> AnyWal:
    """The WAL `url` names, opened read-only (`name` within a SQL database,
    ``"default"`` unless given). A log file must exist; `StorageError`
    otherwise."""
    parsed = parse_storage_url(url)
    _no_name_for_files(parsed, name)
    if parsed.kind == "file":
        return open_wal(_existing_file(parsed), read_only=True)
    return open_wal(url, **_sql_options(parsed, name))


def cache_for_reading(url: str | os.PathLike[str], *, name: str | None = None) -> AnyCache:
    """The cache `url` names, opened read-only (see `wal_for_reading`)."""
    parsed = parse_storage_url(url)
    _no_name_for_files(parsed, name)
    if parsed.kind == "file":
        return open_cache(_existing_file(parsed), read_only=True)
    return open_cache(url, **_sql_options(parsed, name))


def read_store(
    url: str | os.PathLike[str], *, kind: Kind | None = None, name: str | None = None
) -> LogReport | StoreReport:
    """Read the WAL or cache `url` names without changing it.

    A log file gives its `LogReport` (`inspect_log`); a SQL URL its
    `StoreReport`. `kind` (``"wal"``/``"cache"``) must match what is there;
    `name` picks a WAL or cache within a SQL database. Raises
    `PayloadKindError` for a log of the other kind, `DurabilityError` for a
    name the database holds as both kinds (give `kind`) or as neither,
    `StorageError` for what cannot be read (a missing file, a database
    without durability tables), `DecodeError` for damage.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    parsed = parse_storage_url(url)
    _no_name_for_files(parsed, name)
    if parsed.kind == "file":
        assert parsed.path is not None
        report = inspect_log(parsed.path)
        if kind is not None and report.kind not in (None, PAYLOAD_KINDS[kind]):
            other = "cache" if kind == "wal" else "wal"
            raise PayloadKindError(
                f"{parsed.shown} holds an {PAYLOAD_KINDS[other].replace('_', ' ')} log, "
                f"not an {PAYLOAD_KINDS[kind].replace('_', ' ')} (--kind {kind})"
            )
        return report
    name = name or DEFAULT_NAME
    with open_wal(url, **_sql_options(parsed, name)) as probe:
        assert isinstance(probe, SqlBackend)
        kind = _pick_kind(parsed, probe.catalog(), kind, name)
    if kind == "wal":
        with open_wal(url, **_sql_options(parsed, name)) as wal:
            return _wal_report(parsed, wal)
    with open_cache(url, **_sql_options(parsed, name)) as cache:
        assert isinstance(cache, SqlBackend)
        artifact = cache.load()
        return _report(parsed, cache, "cache", artifact)


def _pick_kind(
    parsed: StorageUrl, catalog: dict[str, tuple[str, ...]], kind: Kind | None, name: str
) -> Kind:
    found = [k for k in KINDS if name in catalog[k]]
    if kind is not None and kind in found:
        return kind
    if len(found) == 1 and kind is None:
        return found[0]
    held = [f"{_WORDS[k]} `{n}`" for k in KINDS for n in catalog[k]]
    holds = f"it holds {', '.join(held)}" if held else "it holds none"
    if len(found) == 2:
        raise DurabilityError(
            f"{parsed.shown} holds both a WAL and a cache named `{name}`: "
            "say which with --kind wal or --kind cache"
        )
    wanted = f"{_WORDS[kind]}" if kind is not None else "WAL or cache"
    raise DurabilityError(f"{parsed.shown} holds no {wanted} named `{name}` ({holds})")


def _wal_report(parsed: StorageUrl, wal: AnyWal) -> StoreReport:
    assert isinstance(wal, SqlBackend)
    last: int = wal.last_sequence
    pairs = [(s, e) for s, e in wal.poll(0, last) if s <= last]  # one snapshot: up to `last`
    artifact = AgreementWalArtifact(entries=[entry for _sequence, entry in pairs])
    return _report(parsed, wal, "wal", artifact, tuple(s for s, _e in pairs), last)


def _report(
    parsed: StorageUrl,
    backend: SqlBackend,
    kind: Kind,
    artifact: AgreementWalArtifact | EvidenceOutcomeCacheArtifact,
    sequences: tuple[int, ...] = (),
    last: int | None = None,
) -> StoreReport:
    operations: tuple[OperationSummary, ...] = ()
    if isinstance(artifact, AgreementWalArtifact):
        operations = WalIndex(artifact.entries).summaries()
    assert parsed.kind != "file"
    return StoreReport(
        path=parsed.shown,
        backend=parsed.kind,
        database=backend.database,
        name=backend.name,
        kind=PAYLOAD_KINDS[kind],
        entries=len(artifact.entries),
        artifact=artifact,
        operations=operations,
        sequences=sequences,
        last_sequence=last,
    )


def artifact_bytes(report: LogReport | StoreReport) -> bytes:
    """The v1 artifact (FORMAT.md §1) holding what `report` read, as bytes:
    what ``durability export`` writes. Raises `PayloadKindError` for an empty
    log file (its kind is unknown) and `ArtifactTooLargeError` over
    `MAX_ARTIFACT_BYTES`."""
    if isinstance(report, LogReport):
        return export_artifact(report)[1]
    artifact = PersistedDurabilityArtifact(schema_version=SCHEMA_VERSION, payload=report.artifact)
    data = artifact.to_cbor()
    if len(data) > MAX_ARTIFACT_BYTES:
        raise ArtifactTooLargeError(
            f"exported artifact would be {len(data)} bytes, max is {MAX_ARTIFACT_BYTES}",
            path=report.path,
        )
    return data


def same_file(a: str, b: str) -> bool:
    """Whether paths `a` and `b` name one file: through symbolic or hard links
    and any spelling of the path (``./x``, ``dir/../x``)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one is missing: compare where they would resolve
        return os.path.realpath(a) == os.path.realpath(b)


def same_store(a: StorageUrl, b: StorageUrl) -> bool:
    """Whether two parsed URLs name one database or log file (PostgreSQL:
    the same URL text; two spellings of one server are not recognised)."""
    if a.kind != b.kind:
        return False
    if a.kind == "postgresql":
        return a.conninfo == b.conninfo
    assert a.path is not None and b.path is not None
    return same_file(a.path, b.path)
