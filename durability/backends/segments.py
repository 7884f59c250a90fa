"""The files of a segmented WAL (``specs/segments.md``) and the steps that
change them: reading where the segments are (`read_layout`), streaming a
sealed segment's entries (`read_sealed`), sealing the active segment and
starting the next (`seal_record`, `finish_rollover`), and pruning
(`prune_segments`). Every step is crash-safe on its own; the engine
(``backends/seglog.py``) runs them under the log's exclusive lock.

A WAL at ``PATH`` keeps its sealed segments beside it, in ``PATH.seg/``:
``0000000001.log`` (a sealed segment, a log file of its own ending with a
`RecordType.SEGMENT_SEAL` record), ``0000000001.idx`` (its index) and
``pruned.idx`` (the merged index of every segment pruned so far). ``PATH``
itself is always the active segment.
"""

from __future__ import annotations

import contextlib
import os
import re
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

from ..artifact import AgreementWalArtifact, WalEntry
from ..codec import dumps
from ..errors import DecodeError, PayloadKindError, StorageError
from ..fileio import FileSystem
from ..framing import LogReader, Record, RecordType, encode_record
from ..limits import MAX_ARTIFACT_BYTES
from .logread import READ_CHUNK_BYTES, read_records
from .logstate import WalState, decode_entries, gc_paused, initial_bytes, interpret_base
from .segindex import Layout, OpTable, SegmentIndex, decode_index, encode_index

__all__ = [
    "DEFAULT_SEGMENT_BYTES",
    "Segment",
    "file_crc32",
    "finish_rollover",
    "index_file",
    "open_sealed",
    "prune_segments",
    "pruned_file",
    "read_layout",
    "read_sealed",
    "seal_record",
    "segment_dir",
    "segment_file",
]

#: The active segment is sealed once it passes this many bytes (1 MiB: about
#: 8,000 typical entries, so opening replays at most that many).
DEFAULT_SEGMENT_BYTES = 1 << 20
_LOG = re.compile(r"^(\d{10})\.log$")

#: A sealed segment to read: its index and an open descriptor.
Segment = tuple[SegmentIndex, int]


def segment_dir(path: str) -> str:
    """The directory holding the sealed segments of the WAL at `path`."""
    return f"{path}.seg"


def segment_file(path: str, number: int) -> str:
    """The file of sealed segment `number` of the WAL at `path`."""
    return os.path.join(segment_dir(path), f"{number:010d}.log")


def index_file(path: str, number: int) -> str:
    """The index file of sealed segment `number` of the WAL at `path`."""
    return os.path.join(segment_dir(path), f"{number:010d}.idx")


def pruned_file(path: str) -> str:
    """The merged index of the pruned segments of the WAL at `path`."""
    return os.path.join(segment_dir(path), "pruned.idx")


def _read_index(fs: FileSystem, name: str) -> SegmentIndex:
    return decode_index(fs.read_capped(name, MAX_ARTIFACT_BYTES), name)


def read_layout(fs: FileSystem, path: str, known: Layout | None = None) -> Layout:
    """Where the segments of the WAL at `path` are: `DecodeError` naming the
    file when a sealed segment has no readable index or one is missing.
    `known` (read before) is returned as it is when ``PATH.seg/`` still
    holds the same names: index files are never rewritten in place."""
    directory = segment_dir(path)
    names = fs.list_dir(directory)
    if not names:
        return Layout()
    if known is not None and known.names == frozenset(names):
        return known
    pruned = _read_index(fs, pruned_file(path)) if "pruned.idx" in names else None
    through = pruned.segment if pruned is not None else 0
    expected = pruned.last_sequence + 1 if pruned is not None else 1
    sealed: list[SegmentIndex] = []
    numbers = sorted(int(m.group(1)) for m in map(_LOG.match, names) if m)
    for number in (n for n in numbers if n > through):  # at or below: pruned, left over
        name = index_file(path, number)
        if os.path.basename(name) not in names:
            raise DecodeError("sealed segment has no index", path=segment_file(path, number))
        index = _read_index(fs, name)
        previous = sealed[-1].segment if sealed else through
        if index.segment != number or number != previous + 1:
            raise DecodeError(f"segment {previous + 1} is missing", path=name, offset=0)
        if index.first_sequence != expected:
            raise DecodeError(
                f"first sequence {index.first_sequence}, expected {expected}", path=name, offset=0
            )
        sealed.append(index)
        expected = index.last_sequence + 1
    active = (sealed[-1].segment if sealed else through) + 1
    return Layout(
        sealed=tuple(sealed),
        pruned=pruned,
        active=active,
        first_sequence=expected,
        names=frozenset(names),
    )


def open_sealed(fs: FileSystem, path: str, indexes: Sequence[SegmentIndex]) -> list[Segment]:
    """Open the sealed segments of `indexes` (so a prune cannot remove them
    while they are read); `StorageError` if one is gone."""
    opened: list[Segment] = []
    try:
        for index in indexes:
            opened.append((index, fs.open_ro(segment_file(path, index.segment))))
    except BaseException:
        for _index, fd in opened:
            fs.close(fd)
        raise
    return opened


def read_sealed(
    fs: FileSystem, path: str, segment: Segment, *, crc: list[int] | None = None
) -> Iterator[tuple[Record | None, tuple[WalEntry, ...]]]:
    """Yield each record of an open sealed segment, in order, with the
    entries it holds (none but for an entries record); memory holds one
    record and one read chunk. The entries of the segment's base, when it
    has any (a log that began as a v1 WAL artifact), come first, with
    ``None`` for a record. Raises
    `DecodeError` (naming the segment file and offset) unless the file is
    whole: the size its index says, verified records, its seal record last.
    With `crc`, ``crc[0]`` becomes the crc32 of the file's bytes."""
    index, fd = segment
    name = segment_file(path, index.segment)
    size = fs.size(fd, name)
    if size != index.size:
        raise DecodeError(f"{size} bytes, its index says {index.size}", path=name, offset=0)
    reader = LogReader(name)
    sealed, first = False, True
    for record in read_records(fs, fd, name, reader, size):
        if first:
            first = False
            base = _base_entries(reader.base, name)
            if base:
                yield None, base
        entries: tuple[WalEntry, ...] = ()
        if sealed or record.type not in (RecordType.WAL_ENTRIES, RecordType.BASE_CHECKSUM):
            if sealed or record.type is not RecordType.SEGMENT_SEAL:
                raise DecodeError(
                    f"unexpected {record.type.name} record", path=name, offset=record.offset
                )
            sealed = True
        elif record.type is RecordType.WAL_ENTRIES:
            with gc_paused():  # not across the yield: the caller's code runs there
                entries = decode_entries(record, name)
        yield record, entries
    if reader.tail is not None:
        raise reader.tail.error(name)
    if not sealed:
        raise DecodeError("sealed segment lacks its seal record", path=name, offset=size)
    if crc is not None:
        crc[0] = file_crc32(fs, fd, name, size)


def _base_entries(base: Any, name: str) -> tuple[WalEntry, ...]:
    """The entries of a segment's decoded `base` (``None``: no base)."""
    if base is None:
        return ()
    payload = interpret_base(base, name)
    if not isinstance(payload, AgreementWalArtifact):
        raise PayloadKindError(f"segment {name} does not begin with an agreement WAL")
    return tuple(payload.entries)


def file_crc32(fs: FileSystem, fd: int, name: str, size: int) -> int:
    """The crc32 of the first `size` bytes of open file `name`."""
    crc, offset = 0, 0
    while offset < size:
        chunk = fs.read_at(fd, offset, min(READ_CHUNK_BYTES, size - offset), name)
        if not chunk:
            raise DecodeError("file ended early", path=name, offset=offset)
        crc, offset = zlib.crc32(chunk, crc), offset + len(chunk)
    return crc


def seal_record(state: WalState, seq: int) -> tuple[bytes, dict[str, Any]]:
    """The seal record ending the active segment of `state` (record `seq`),
    and its payload."""
    layout = state.layout
    plain: dict[str, Any] = {
        "segment": layout.active,
        "first_sequence": layout.first_sequence,
        "entries": len(state.entries),
    }
    return encode_record(RecordType.SEGMENT_SEAL, seq, dumps(plain)), plain


def finish_rollover(fs: FileSystem, path: str, fd: int, state: WalState, records: int) -> None:
    """The rest of a rollover, once the active segment (`fd`, holding
    `records` records, its seal last) is sealed and durable; each step is
    idempotent, so a crash anywhere is finished by the next writer: write
    its index (atomically), move it to ``PATH.seg/`` unless already moved,
    and create the new, empty active segment at `path` unless one exists."""
    layout, number = state.layout, state.layout.active
    if (state.seal or {}).get("segment") != number:
        raise DecodeError(
            f"seal record names segment {(state.seal or {}).get('segment')}, "
            f"this is segment {number}",
            path=path,
            offset=0,
        )
    fs.make_dirs(segment_dir(path))
    size = fs.size(fd, path)
    ticks = [entry.tick for entry in state.entries]
    table = OpTable()
    table.add(state.entries)
    index = SegmentIndex(
        segment=number,
        first_sequence=layout.first_sequence,
        entries=len(state.entries),
        records=records,
        min_tick=min(ticks, default=None),
        max_tick=max(ticks, default=None),
        size=size,
        crc32=file_crc32(fs, fd, path, size),
    )
    fs.replace_atomically(index_file(path, number), encode_index(index, table))
    if fs.is_at(fd, path):
        fs.rename(path, segment_file(path, number))
        fs.sync_dir(segment_dir(path))
        fs.sync_dir(os.path.dirname(path))
    fs.create_atomically(path, initial_bytes(WalState()))


def prune_segments(fs: FileSystem, path: str, layout: Layout, tick: int) -> int:
    """Remove the leading sealed segments of `layout` whose entries all have
    a tick at or below `tick`: first their states are merged into
    ``pruned.idx`` (written atomically: the commit point), then their files
    are removed. Returns how many entries were removed."""
    doomed: list[SegmentIndex] = []
    for index in layout.sealed:
        if index.max_tick is not None and index.max_tick > tick:
            break
        doomed.append(index)
    if not doomed:
        return 0
    table = OpTable(layout.pruned.op_states() if layout.pruned is not None else {})
    for index in doomed:
        table.then(index.op_states())
    history = [index for index in (layout.pruned, *doomed) if index is not None]
    low = [i.min_tick for i in history if i.min_tick is not None]
    high = [i.max_tick for i in history if i.max_tick is not None]
    merged = SegmentIndex(
        segment=doomed[-1].segment,
        first_sequence=1,
        entries=doomed[-1].last_sequence,
        records=sum(i.records for i in history),
        min_tick=min(low, default=None),
        max_tick=max(high, default=None),
        size=0,
        crc32=0,
        pruned=True,
    )
    fs.replace_atomically(pruned_file(path), encode_index(merged, table))
    for name in fs.list_dir(segment_dir(path)):
        number = name.partition(".")[0]
        if number.isdigit() and int(number) <= merged.segment and name.endswith((".log", ".idx")):
            with contextlib.suppress(StorageError):  # left over: ignored, removed next time
                fs.remove(os.path.join(segment_dir(path), name))
    fs.sync_dir(segment_dir(path))
    return sum(i.entries for i in doomed)
