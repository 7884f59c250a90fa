"""Copying a WAL or cache between any two backends, then checking the copy:
`migrate(source, destination)`, what ``durability migrate`` runs.

Both ends are paths or API.md §10 URLs (a log file, ``sqlite:``,
``postgresql:``), in any combination::

    report = migrate("state/wal.log", "postgresql://app@db/prod")
    assert report.ok, report.problems

The source is read without changing it (`read_store`; a log file's torn tail
is left out, as opening it would, and reported). The destination must hold
nothing of that kind under that name (`DestinationNotEmptyError`), unless
``append=True``: the copy then goes after what it holds (a WAL checks
escalation order against it; a cache binding with the same evidence id is
replaced). Entries are copied in order, `batch` at a time (each batch one
transaction, or one log record made durable at the end), so a SQL WAL's
copy gets gapless sequences from 1 (a pruned source's holes close up).
Then the destination is read back, through a new read-only handle, and
compared entry by entry with the source: `MigrationReport.problems` lists
any difference (none: `ok`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from .artifact import AgreementWalArtifact
from .backends.file import FileAgreementWal, FileEvidenceOutcomeCache, SyncPolicy, TornTail
from .backends.sqlcache import SqlEvidenceOutcomeCache
from .errors import DurabilityError
from .reading import Kind, cache_for_reading, read_store, same_store, wal_for_reading
from .urls import AnyCache, AnyWal, StorageUrl, open_cache, open_wal, parse_storage_url

__all__ = ["BATCH", "DestinationNotEmptyError", "MigrationError", "MigrationReport", "migrate"]

#: Entries copied per transaction (or log record).
BATCH = 1000

Progress = Callable[[int, int], None]


class MigrationError(DurabilityError):
    """A copy that could not be made (the message says how far it got)."""


class DestinationNotEmptyError(MigrationError):
    """The destination already holds a WAL or cache of that kind and name."""


@attrs.frozen(kw_only=True)
class MigrationReport:
    """What `migrate` copied and found reading the copy back.

    `source` and `destination` are the URLs as messages show them (never a
    password); `kind` is ``"wal"`` or ``"cache"``; `name` the WAL's or
    cache's name in a SQL database (``None`` between log files);
    `source_entries` what the source holds (a cache: bindings), `copied` how
    many were written, `destination_before` what the destination held
    before (0 unless appending), `destination_entries` what it holds now,
    read back. `problems` lists every difference found between the copy and
    the source; `torn_tail_left_out` is a log file source's torn tail.
    """

    source: str
    destination: str
    kind: Kind
    name: str | None
    source_entries: int
    copied: int
    destination_before: int
    destination_entries: int
    problems: tuple[str, ...] = ()
    torn_tail_left_out: TornTail | None = None

    @property
    def ok(self) -> bool:
        """Whether the copy read back equal to the source."""
        return not self.problems


def migrate(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    kind: Kind | None = None,
    name: str | None = None,
    append: bool = False,
    batch: int = BATCH,
    progress: Progress | None = None,
) -> MigrationReport:
    """Copy the WAL or cache `source` names to `destination`, then read the
    copy back and compare it with the source (module docs).

    `kind` (``"wal"``/``"cache"``) is needed only when the source alone
    cannot tell (an empty log file; a SQL name held by both kinds); `name`
    picks the WAL or cache within SQL databases, on both ends (``"default"``
    unless given); `progress(copied, total)` is called after each batch.
    Raises what `read_store` raises for the source, `MigrationError` for a
    source and destination that are one store, `DestinationNotEmptyError`
    (nothing written) unless `append`, and `MigrationError` naming how far
    the copy got when writing fails.
    """
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    src, dst = parse_storage_url(source), parse_storage_url(destination)
    sql = src.kind != "file" or dst.kind != "file"
    if name is not None and not sql:
        raise MigrationError("a name (--name) picks a WAL or cache within a SQL database only")
    if same_store(src, dst):
        raise MigrationError(f"{src.shown} and {dst.shown} are one store: nothing to copy")
    report = read_store(source, kind=kind, name=name if src.kind != "file" else None)
    if report.artifact is None:
        if kind is None:
            raise MigrationError(
                f"{src.shown} is an empty log: its kind is unknown (--kind wal or --kind cache)"
            )
        entries: Sequence[Any] = ()
    else:
        entries = report.artifact.entries
        kind = "wal" if isinstance(report.artifact, AgreementWalArtifact) else "cache"
    dst_name = name if dst.kind != "file" else None
    with _open_destination(destination, dst, kind, dst_name) as target:
        before = len(target.load().entries)
        if before and not append:
            what = "WAL" if kind == "wal" else "cache"
            raise DestinationNotEmptyError(
                f"{dst.shown} already holds a {what} with {before} "
                f"entr{'ies' if before != 1 else 'y'}: refusing to copy into it "
                "(--append copies after them)"
            )
        _copy(target, entries, batch, progress or (lambda done, total: None))
    reader = wal_for_reading if kind == "wal" else cache_for_reading
    with reader(destination, name=dst_name) as copy:  # a new handle, read-only
        found = list(copy.load().entries)
    return MigrationReport(
        source=src.shown,
        destination=dst.shown,
        kind=kind,
        name=(name or "default") if sql else None,
        source_entries=len(entries),
        copied=len(entries),
        destination_before=before,
        destination_entries=len(found),
        problems=_differences(kind, list(entries), found, before),
        torn_tail_left_out=report.torn_tail,
    )


def _open_destination(
    destination: str | os.PathLike[str], dst: StorageUrl, kind: Kind, name: str | None
) -> AnyWal | AnyCache:
    """The destination, writable; a log file without a sync per append (one
    at the end)."""
    options: dict[str, Any] = (
        {"sync": SyncPolicy.NONE} if dst.kind == "file" else {"name": name or "default"}
    )
    return (open_wal if kind == "wal" else open_cache)(destination, **options)


def _copy(
    target: AnyWal | AnyCache, entries: Sequence[Any], batch: int, progress: Progress
) -> None:
    total, done = len(entries), 0
    try:
        for start in range(0, total, batch):
            chunk = list(entries[start : start + batch])
            if isinstance(target, FileEvidenceOutcomeCache):
                for entry in chunk:
                    target.put(entry)
            elif isinstance(target, SqlEvidenceOutcomeCache):
                target.put_many(chunk)
            else:
                target.append_batch(chunk)
            done += len(chunk)
            progress(done, total)
        if isinstance(target, FileAgreementWal | FileEvidenceOutcomeCache):
            target.sync()
    except DurabilityError as exc:
        raise MigrationError(
            f"copying into {_where(target)} stopped after {done} of {total} entries "
            f"(those are in it, maybe not durably): {exc}"
        ) from exc


def _where(target: AnyWal | AnyCache) -> str:
    return (
        target.path
        if isinstance(target, FileAgreementWal | FileEvidenceOutcomeCache)
        else (f"`{target.name}` in {target.database}")
    )


def _differences(kind: Kind, source: list[Any], found: list[Any], before: int) -> tuple[str, ...]:
    """How the destination read back differs from `before` entries followed
    by the source (a cache: the source's bindings last, in order)."""
    expected = before + len(source) if kind == "wal" else None
    if expected is not None and len(found) != expected:
        return (f"the copy holds {len(found)} entries, expected {expected}",)
    tail = found[len(found) - len(source) :] if source else []
    if len(tail) != len(source):
        return (f"the copy holds {len(found)} bindings, fewer than the source's {len(source)}",)
    if kind == "cache" and not before and len(found) != len(source):
        return (f"the copy holds {len(found)} bindings, expected {len(source)}",)
    for i, (want, got) in enumerate(zip(source, tail, strict=True)):
        if want != got:
            unit = "entry" if kind == "wal" else "binding"
            return (f"{unit} {i + 1} of the source reads back different from the copy",)
    return ()
