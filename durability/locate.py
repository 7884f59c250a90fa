"""Where each WAL entry is stored: the locations `DurableRecoveryPlan.explain`
cites.

A WAL entry's *position* is its 1-based place in the WAL as loaded. In a log
file it lies in the base (the v1 artifact at byte offset 0) or in a record (at
a byte offset, with a record sequence number), at some index of that record's
array of entries; in a SQL store it is a row with a sequence. `file_entry_locations`
maps positions to places in a log file (the one function a WAL spread over
several files adapts); `locator_for` gives the `EntryLocator` of an open WAL
backend, which reads the WAL once, on first use, without changing it::

    plan = attrs.evolve(plan, entry_locator=locator_for(wal))
    plan.explain("op#1").entries[0].location   # EntryLocation(sequence=.., path=.., offset=..)
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .artifact import AgreementWalArtifact
from .backends.file import FileAgreementWal, inspect_log
from .backends.protocols import SequencedAgreementWal
from .errors import PayloadKindError
from .explanation import EntryLocation, EntryLocator, Located
from .fileio import DEFAULT_FS, FileSystem

__all__ = ["WalLocator", "file_entry_locations", "locator_for", "sequence_locations"]


def file_entry_locations(
    path: str | os.PathLike[str], *, fs: FileSystem = DEFAULT_FS
) -> list[Located]:
    """Every entry of the WAL log file `path`, in WAL order, with its location:
    the file, the byte offset of the record holding it (0 for the base), the
    record's sequence number (``None`` for the base) and the entry's index in
    it. Reads the file without changing it (`inspect_log`; a torn tail is left
    out); raises as `inspect_log` does, and `PayloadKindError` for a cache log.
    """
    report = inspect_log(path, fs=fs)
    artifact = report.artifact
    if artifact is not None and not isinstance(artifact, AgreementWalArtifact):
        raise PayloadKindError(f"{report.path} holds an {report.kind} log, not an agreement WAL")
    entries = artifact.entries if artifact is not None else ()
    places: list[tuple[int, int | None, int]] = [(0, None, i) for i in range(report.base_entries)]
    for record in report.records:
        places.extend((record.offset, record.seq, i) for i in range(record.entries))
    if len(places) != len(entries):  # a record kind holding entries the WAL does not list
        raise PayloadKindError(
            f"{report.path}: {len(places)} entries in records, {len(entries)} in the WAL"
        )
    return [
        (
            EntryLocation(sequence=n, path=report.path, offset=offset, record=record, index=index),
            entry,
        )
        for n, ((offset, record, index), entry) in enumerate(zip(places, entries, strict=True), 1)
    ]


def sequence_locations(wal: SequencedAgreementWal) -> list[Located]:
    """Every entry of a WAL that numbers its entries (a SQL store), in order,
    located by its sequence (a pruned store's no longer start at 1)."""
    return [
        (EntryLocation(sequence=sequence), entry)
        for sequence, entry in wal.poll(0, wal.last_sequence)
    ]


class WalLocator:
    """An `EntryLocator` over what `read` returns (every entry of a WAL, in
    order, with its location), called once, on first use."""

    def __init__(self, read: Callable[[], list[Located]]) -> None:
        self._read = read
        self._found: list[Located] | None = None

    def __call__(self, position: int) -> Located | None:
        """The location of the `position`-th (1-based) entry, and the entry
        stored there; ``None`` past the end."""
        if self._found is None:
            self._found = self._read()
        if 1 <= position <= len(self._found):
            return self._found[position - 1]
        return None


def locator_for(wal: object) -> EntryLocator | None:
    """The `EntryLocator` of an open WAL backend: file and byte offset for a
    `FileAgreementWal` (read again from its path), the sequence for any WAL
    that numbers its entries (SQL, memory; read through the backend, which
    must still be open then); ``None`` for a WAL that does neither."""
    if isinstance(wal, FileAgreementWal):
        path = wal.path
        return WalLocator(lambda: file_entry_locations(path))
    if isinstance(wal, SequencedAgreementWal):
        numbered = wal
        return WalLocator(lambda: sequence_locations(numbered))
    return None
