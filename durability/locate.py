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
    """Every entry of the WAL log file `path` (with its sealed segments,
    ``specs/segments.md``), in WAL order, with its location: its WAL
    sequence, the file holding it, the byte offset of the record holding it
    (0 for a base, the v1 artifact a log may begin with), the record's
    sequence number (``None`` for a base) and the entry's index in it. Reads
    without changing anything (`inspect_log`; a torn tail is left out);
    raises as `inspect_log` does, and `PayloadKindError` for a cache log.
    """
    report = inspect_log(path, fs=fs)
    artifact = report.artifact
    if artifact is not None and not isinstance(artifact, AgreementWalArtifact):
        raise PayloadKindError(f"{report.path} holds an {report.kind} log, not an agreement WAL")
    entries = artifact.entries if artifact is not None else ()
    places: dict[int, tuple[str, int, int | None, int]] = {}
    for record in report.records:
        if record.first_sequence is not None:
            for i in range(record.entries):
                places[record.first_sequence + i] = (
                    record.file or report.path,
                    record.offset,
                    record.seq,
                    i,
                )
    last = max(places, default=len(entries))
    first = last - len(entries) + 1  # pruned segments' entries are gone
    # Entries no record holds are the base's: at the start of the first file.
    base_file = report.records[0].file or report.path if report.records else report.path
    located: list[Located] = []
    for sequence, entry in enumerate(entries, first):
        file, offset, seq, index = places.get(sequence, (base_file, 0, None, sequence - first))
        location = EntryLocation(
            sequence=sequence, path=file, offset=offset, record=seq, index=index
        )
        located.append((location, entry))
    return located


def sequence_locations(wal: SequencedAgreementWal) -> list[Located]:
    """Every entry of a WAL that numbers its entries (a SQL store), in order,
    located by its sequence (a pruned store's no longer start at 1)."""
    return [
        (EntryLocation(sequence=sequence), entry)
        for sequence, entry in wal.poll(0, wal.last_sequence)
    ]


class WalLocator:
    """An `EntryLocator` over what `read` returns (every entry of a WAL, in
    order, with its location), called once, on first use. A position is the
    entry's place in that list (1-based), or, `by_sequence`, its
    `EntryLocation.sequence` (a segmented file WAL, planned by sequence)."""

    def __init__(self, read: Callable[[], list[Located]], *, by_sequence: bool = False) -> None:
        self._read = read
        self._by_sequence = by_sequence
        self._found: dict[int, Located] | None = None

    def __call__(self, position: int) -> Located | None:
        """The location of the entry at `position`, and the entry stored
        there; ``None`` when there is none."""
        if self._found is None:
            self._found = {
                (found[0].sequence if self._by_sequence else n): found
                for n, found in enumerate(self._read(), 1)
            }
        return self._found.get(position)


def locator_for(wal: object) -> EntryLocator | None:
    """The `EntryLocator` of an open WAL backend: file and byte offset for a
    `FileAgreementWal` (read again from its path), the sequence for any WAL
    that numbers its entries (SQL, memory; read through the backend, which
    must still be open then); ``None`` for a WAL that does neither."""
    if isinstance(wal, FileAgreementWal):
        path = wal.path
        return WalLocator(lambda: file_entry_locations(path), by_sequence=True)
    if isinstance(wal, SequencedAgreementWal):
        numbered = wal
        return WalLocator(lambda: sequence_locations(numbered))
    return None
