"""`FileAgreementWal`: an agreement WAL in append-only segment files
(``specs/log_format.md``, ``specs/segments.md``).

The file at ``PATH`` is the active segment; once it passes `segment_bytes`
it is sealed (indexed, moved to ``PATH.seg/``) and the next one starts. A
single-file log written by an earlier version is a WAL with one active
segment and opens unchanged. Opening replays the active segment only;
`load`, `read_since`, `poll` and `scan` read sealed segments on demand, one
record at a time; `prune_through` removes sealed segments a checkpoint made
unnecessary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs

from ..artifact import (
    AgreementWalArtifact,
    WalEntry,
    check_entries,
    check_sequence_arguments,
)
from ..errors import SequenceConflictError
from ..fileio import DEFAULT_FS, FileSystem
from ..index import OperationSummary
from .filelog import FileLog, Path
from .logstate import WalState, gc_paused
from .modes import RecoveryMode, SyncPolicy
from .segindex import Layout, OpState, SegmentIndex
from .seglog import SegmentedWalEngine
from .segments import DEFAULT_SEGMENT_BYTES, Segment, prune_segments, read_layout, read_sealed

__all__ = ["DEFAULT_SEGMENT_BYTES", "FileAgreementWal", "WalPart"]

#: Entries per batch `scan` yields at most.
SCAN_BATCH = 10_000


@attrs.frozen(kw_only=True)
class WalPart:
    """One part of a WAL, in WAL order, for planning from a checkpoint:
    either `entries` read back, or, for a segment (or the pruned history)
    not read, its `index`, whose `states` say what its entries prove."""

    entries: tuple[WalEntry, ...] = ()
    index: SegmentIndex | None = None
    #: The WAL sequence of the first of `entries` (its 1-based position).
    first_sequence: int = 1

    def states(self, only: Iterable[str]) -> dict[str, OpState]:
        """The states of the operations in `only` with an entry in this part
        (an entries part has none: its entries are read)."""
        return {} if self.index is None else self.index.op_states(only)


class FileAgreementWal(FileLog[WalState]):
    """An agreement WAL in append-only log files.

    `path` is created (mode 0600) as an empty WAL if missing; a file holding
    one v1 WAL artifact opens as-is. Opening raises `PayloadKindError` for
    another kind of file and `DecodeError` (naming the file and byte offset)
    for a damaged one; a torn tail is truncated and reported (`torn_tail`).
    `segment_bytes` is the size past which the active segment is sealed and
    the next one started (``specs/segments.md``).

    >>> import tempfile, os
    >>> from durability import Escalation, AgreementLevel as L
    >>> d = tempfile.mkdtemp()
    >>> with FileAgreementWal(os.path.join(d, "wal.log")) as wal:
    ...     wal.append(Escalation(operation_id="op", previous_level=L.NONE,
    ...                           new_level=L.SOFT_SAFE, tick=1))
    ...     len(wal.load().entries)
    1
    1
    """

    _new_state = WalState
    _log: SegmentedWalEngine

    def __init__(
        self,
        path: Path,
        *,
        sync: SyncPolicy = SyncPolicy.DURABLE,
        recovery: RecoveryMode = RecoveryMode.TOLERATE_TORN_TAIL,
        read_only: bool = False,
        fs: FileSystem = DEFAULT_FS,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    ) -> None:
        self._log = SegmentedWalEngine(
            path,
            segment_bytes=segment_bytes,
            sync=sync,
            recovery=recovery,
            fs=fs,
            read_only=read_only,
        )

    # -- writing -------------------------------------------------------------------

    def append(self, entry: WalEntry, *, expected_sequence: int | None = None) -> int:
        """Append one entry durably; return its sequence. `EscalationOrderError`
        leaves the file byte-for-byte unchanged. See `append_batch`."""
        decide, last = _appending([entry], expected_sequence, self.path)
        self._log.write(decide)
        return last[0]

    def append_batch(
        self, entries: Iterable[WalEntry], *, expected_sequence: int | None = None
    ) -> int:
        """Append all of `entries` as one record (all or nothing, one sync),
        validated against everything any writer appended before; return the
        new last sequence. With `expected_sequence`, `SequenceConflictError`
        (nothing written) unless the last sequence is still that under the
        writers' lock."""
        decide, last = _appending(list(entries), expected_sequence, self.path)
        self._log.write(decide)
        return last[0]

    async def append_async(self, entry: WalEntry, *, expected_sequence: int | None = None) -> int:
        """`append` for asyncio code; never blocks the event loop. Under
        ``SyncPolicy.GROUP`` concurrent tasks share flushes."""
        return await self.append_batch_async([entry], expected_sequence=expected_sequence)

    async def append_batch_async(
        self, entries: Iterable[WalEntry], *, expected_sequence: int | None = None
    ) -> int:
        """`append_batch` for asyncio code; never blocks the event loop."""
        decide, last = _appending(list(entries), expected_sequence, self.path)
        await self._log.write_async(decide)
        return last[0]

    def prune_through(self, tick: int) -> int:
        """After a durable checkpoint at `tick` (or later): remove the sealed
        segments whose entries all have a tick at or below `tick`; return how
        many entries went. Their operations' states stay (``pruned.idx``), so
        escalation order, `operation_summary` levels and any plan from a
        checkpoint at `tick` or later are as before; identities of removed
        entries are forgotten. Sequences are never reused: `last_sequence`
        is unchanged and `poll` starts after the hole. The active segment is
        never removed. `StateDirectory.compact` calls this for you."""
        if not isinstance(tick, int) or isinstance(tick, bool) or tick < 0:
            raise ValueError(f"tick must be an int >= 0, got {tick!r}")
        return self._log.exclusive(
            lambda fs, state: prune_segments(fs, self.path, read_layout(fs, self.path), tick)
        )

    # -- reading -------------------------------------------------------------------

    @property
    def last_sequence(self) -> int:
        """The sequence (1-based position) of the last entry appended by
        anyone; 0 when empty."""
        return self._log.read(lambda s: s.last_sequence)

    @property
    def layout(self) -> Layout:
        """Where the segments are: the sealed ones' indexes, the pruned
        history, the active segment's number and first sequence."""
        return self._log.read(lambda s: s.layout)

    def scan(
        self, after_tick: int | None = None, *, batch: int = SCAN_BATCH
    ) -> Iterator[list[WalEntry]]:
        """The entries (with ``entry.tick > after_tick``, when given), in WAL
        order, in lists of at most `batch`: memory holds one batch and one
        record, never the whole WAL. Segments whose ticks are all at or below
        `after_tick` are not read."""
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        out: list[WalEntry] = []
        for _first, entries in self._stream(after_tick, 0):
            picked = entries if after_tick is None else [e for e in entries if e.tick > after_tick]
            start = 0
            while start < len(picked):  # whole slices: no Python step per entry
                end = start + batch - len(out)
                out.extend(picked[start:end])
                start = end
                if len(out) == batch:
                    yield out
                    out = []
        if out:
            yield out

    def load(self) -> AgreementWalArtifact:
        """The whole WAL (what is left after pruning), other writers' appends included."""
        return AgreementWalArtifact(entries=self._collect(None))

    def read_since(self, tick: int) -> list[WalEntry]:
        """Entries with ``entry.tick > tick``, in WAL order (segments with no
        such entry are not read)."""
        return self._collect(tick)

    def _collect(self, after_tick: int | None) -> list[WalEntry]:
        """Every entry with a tick above `after_tick` (all for ``None``), in a list."""
        found: list[WalEntry] = []
        with gc_paused():  # a million entries that stay: no collection walks them
            for _first, entries in self._stream(after_tick, 0):
                if after_tick is None:
                    found.extend(entries)
                else:
                    found.extend([e for e in entries if e.tick > after_tick])
        return found

    def poll(self, after_sequence: int, limit: int) -> list[tuple[int, WalEntry]]:
        """Up to `limit` ``(sequence, entry)`` pairs after `after_sequence`, in
        order, other writers' appends included: tail the WAL by passing the
        last sequence seen. Only the segments holding them are read."""
        check_sequence_arguments(after_sequence=after_sequence, limit=limit)
        found: list[tuple[int, WalEntry]] = []
        if not limit:
            return found
        for first, entries in self._stream(None, after_sequence):
            for i, entry in enumerate(entries):
                if first + i > after_sequence:
                    found.append((first + i, entry))
                    if len(found) == limit:
                        return found
        return found

    def operation_summary(self, operation_id: str) -> OperationSummary:
        """What the WAL holds about one operation (O(1) from the index, plus
        reading the sealed segments holding its entries for their identities)."""
        summary, where = self._log.read(
            lambda s: (s.index.summary(operation_id), tuple(s.where.get(operation_id, ())))
        )
        if not where:
            return summary
        ids = set(summary.identities)
        _view, opened = self._log.sealed(
            lambda s: [i for i in s.layout.sealed if i.segment in where], lambda s: None
        )
        for segment in _closing(opened, self._log.fs):
            for _record, entries in read_sealed(self._log.fs, self.path, segment):
                ids.update(e.stable_identity() for e in entries if e.operation_id == operation_id)
        return attrs.evolve(summary, identities=frozenset(ids))

    def parts(self, after_tick: int | None) -> Iterator[WalPart]:
        """The WAL in order for planning from a checkpoint at `after_tick`:
        the pruned history and each sealed segment whose ticks are all at or
        below it as its operations' states (not read), every other segment's
        entries read back, then the active segment's."""
        pick = _after(after_tick)
        active, opened = self._log.sealed(
            lambda s: [i for i in s.layout.sealed if pick(i)],
            lambda s: (s.layout, tuple(s.entries)),
        )
        layout, entries = active
        reading = iter(_closing(opened, self._log.fs))
        for index in layout.history:
            if index.pruned or not pick(index):
                yield WalPart(index=index)
                continue
            segment = next(reading)
            first = segment[0].first_sequence
            for _record, batch in read_sealed(self._log.fs, self.path, segment):
                if batch:
                    yield WalPart(entries=batch, first_sequence=first)
                    first += len(batch)
        yield WalPart(entries=entries, first_sequence=layout.first_sequence)

    def _stream(
        self, after_tick: int | None, after_sequence: int
    ) -> Iterator[tuple[int, tuple[WalEntry, ...]]]:
        """``(sequence of the first, entries)`` per record, in WAL order, from
        the sealed segments that may hold an entry after `after_tick` and
        `after_sequence`, then the active segment."""
        pick = _after(after_tick)
        active, opened = self._log.sealed(
            lambda s: [i for i in s.layout.sealed if pick(i) and i.last_sequence > after_sequence],
            lambda s: (s.layout.first_sequence, tuple(s.entries)),
        )
        for segment in _closing(opened, self._log.fs):
            first = segment[0].first_sequence
            for _record, entries in read_sealed(self._log.fs, self.path, segment):
                yield first, entries
                first += len(entries)
        yield active


def _after(tick: int | None) -> Callable[[SegmentIndex], bool]:
    """Whether a sealed segment may hold an entry with a tick above `tick`."""
    return lambda index: tick is None or (index.max_tick is not None and index.max_tick > tick)


def _closing(opened: list[Segment], fs: FileSystem) -> Iterator[Segment]:
    """Each opened segment in turn; every descriptor is closed at the end,
    however the iteration ends."""
    try:
        yield from opened
    finally:
        for _index, fd in opened:
            fs.close(fd)


def _appending(
    batch: list[WalEntry], expected: int | None, path: str
) -> tuple[Callable[[WalState], tuple[bytes, Any] | None], list[int]]:
    """The decision appending `batch`, validated against the state it meets
    (and its last sequence against `expected`), and the one-item list that
    holds the new last sequence once it ran. The payload is encoded here,
    by the caller, outside the log's locks (it depends on the entries only):
    under group commit, while a leader waits on the disk."""
    check_entries(batch)
    if expected is not None:
        check_sequence_arguments(expected_sequence=expected)
    last = [0]
    payload = WalState.encode_entries(batch) if batch else b""

    def decide(state: WalState) -> tuple[bytes, Any] | None:
        last[0] = state.last_sequence
        if expected is not None and expected != last[0]:
            raise SequenceConflictError(expected, last[0], path)
        if not batch:
            return None
        updates = state.index.check(batch)
        last[0] += len(batch)
        return payload, lambda: state.add(batch, updates)

    return decide, last
