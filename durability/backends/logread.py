"""How the file backends read a log back: the new bytes go, a bounded chunk
at a time, through a `LogReader` (`read_records`), and what follows the last
good record is handled by one table keyed by what it is (`TailKind`), the
user's `RecoveryMode` and how the engine holds the file (`Access`), read like
RocksDB's "WAL Recovery Modes" wiki: one row per mode, saying what it
tolerates. ``backends/log.py`` carries the action out.

A record that verifies but does not decode or apply (a bad payload, an
escalation out of order) is damage starting at that record.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator

from ..errors import DecodeError
from ..fileio import FileSystem
from ..framing import END_OF_LOG, NEED_MORE, LogReader, Record, Tail, TailKind
from .modes import RecoveryMode

__all__ = [
    "READ_CHUNK_BYTES",
    "TAIL_POLICY",
    "Access",
    "TailAction",
    "read_records",
    "repair_message",
    "tail_action",
    "tail_error",
]

#: Bytes read at a time when opening or catching up (tests may lower it).
READ_CHUNK_BYTES = 1 << 20


def read_records(
    fs: FileSystem, fd: int, path: str, reader: LogReader, size: int
) -> Iterator[Record]:
    """Feed `reader` the bytes of the open log `path` from its origin up to
    `size`, `READ_CHUNK_BYTES` at a time and only as it asks for them, and
    yield each record as it arrives; once this ends, ``reader.tail`` is set.
    Memory holds one chunk plus what `reader` keeps (at most the base or one
    record), never the whole file."""
    offset = reader.origin
    while True:
        found = reader.next_record()
        if found is NEED_MORE:
            chunk = b""
            if offset < size:
                chunk = fs.read_at(fd, offset, min(READ_CHUNK_BYTES, size - offset), path)
            if chunk:
                reader.feed(chunk)
                offset += len(chunk)
            else:  # at `size` (or the file ended sooner)
                reader.finish()
        elif found is END_OF_LOG:
            return
        else:
            yield found


class Access(enum.Enum):
    """How the engine holds the file while it reads what others appended."""

    #: Holding the exclusive lock: opening for writing, or about to append.
    WRITER = "writer"
    #: A writable instance catching up without cutting: a read (shared lock),
    #: or rebuilding memory after a failed flush.
    READER = "reader"
    #: Opened with ``read_only=True``: the file is never changed.
    READ_ONLY = "read_only"


class TailAction(enum.Enum):
    """What to do with a tail."""

    #: Truncate at the tail's offset, fsync, and report it (``logging``,
    #: `TornTailWarning`, the backend's ``torn_tail``).
    CUT = "cut"
    #: First copy the whole file to ``<path>.damaged-<n>``, then as `CUT`.
    CUT_KEEPING_COPY = "cut_keeping_copy"
    #: Change nothing; ``torn_tail`` says what a writer would cut.
    REPORT = "report"
    #: Change and report nothing: the next writer, holding the exclusive
    #: lock, decides (another process's write may still be in flight).
    LEAVE = "leave"
    #: Raise `DecodeError` naming the file and byte offset; change nothing.
    FAIL_CLOSED = "fail_closed"


_CUT, _COPY, _REPORT = TailAction.CUT, TailAction.CUT_KEEPING_COPY, TailAction.REPORT
_LEAVE, _FAIL = TailAction.LEAVE, TailAction.FAIL_CLOSED
_TORN, _DAMAGE = TailKind.TORN, TailKind.DAMAGE

#: (tail kind, recovery mode) -> the action for a writer, a reader, read-only.
_ROWS: dict[tuple[TailKind, RecoveryMode], tuple[TailAction, TailAction, TailAction]] = {
    # TOLERATE_TORN_TAIL: a crash's torn write is cut; damage is never guessed at.
    (_TORN, RecoveryMode.TOLERATE_TORN_TAIL): (_CUT, _LEAVE, _REPORT),
    (_DAMAGE, RecoveryMode.TOLERATE_TORN_TAIL): (_FAIL, _FAIL, _FAIL),
    # ABSOLUTE_CONSISTENCY: every byte must be accounted for; nothing is cut.
    (_TORN, RecoveryMode.ABSOLUTE_CONSISTENCY): (_FAIL, _FAIL, _FAIL),
    (_DAMAGE, RecoveryMode.ABSOLUTE_CONSISTENCY): (_FAIL, _FAIL, _FAIL),
    # POINT_IN_TIME: back to the last consistent point; damage is kept aside first.
    (_TORN, RecoveryMode.POINT_IN_TIME): (_CUT, _LEAVE, _REPORT),
    (_DAMAGE, RecoveryMode.POINT_IN_TIME): (_COPY, _FAIL, _FAIL),
}

#: The whole policy: (tail kind, recovery mode, access) -> action.
TAIL_POLICY: dict[tuple[TailKind, RecoveryMode, Access], TailAction] = {
    (kind, mode, access): action
    for (kind, mode), actions in _ROWS.items()
    for access, action in zip(Access, actions, strict=True)
}


def tail_action(kind: TailKind, mode: RecoveryMode, access: Access) -> TailAction:
    """The `TAIL_POLICY` entry; a missing one raises `LookupError` naming all three.

    >>> tail_action(TailKind.TORN, RecoveryMode.TOLERATE_TORN_TAIL, Access.WRITER)
    <TailAction.CUT: 'cut'>
    """
    try:
        return TAIL_POLICY[kind, mode, access]
    except KeyError:
        raise LookupError(
            f"no tail policy for a {kind.value} tail in {mode.name} mode, {access.value} access"
        ) from None


def tail_error(tail: Tail, mode: RecoveryMode, path: str) -> DecodeError:
    """The error `TailAction.FAIL_CLOSED` raises for `tail` of log `path`."""
    if tail.kind is TailKind.DAMAGE:
        return tail.error(path)
    return DecodeError(
        f"torn tail of {tail.dropped} bytes ({tail.reason}), "
        f"not truncated in {mode.name} recovery mode",
        path=path,
        offset=tail.offset,
    )


def repair_message(tail: Tail, path: str, copy: str | None) -> str:
    """What is logged and warned when `tail` of log `path` was cut (after
    copying the file to `copy`, for damage)."""
    what = "torn tail" if copy is None else "damage"
    kept = f"; the damaged file was copied to {copy}" if copy else ""
    return (
        f"{what} at byte offset {tail.offset} in {path}: {tail.reason}; "
        f"truncated {tail.dropped} bytes{kept}"
    )
