"""The log engine shared by `FileAgreementWal` and `FileEvidenceOutcomeCache`:
one open file descriptor and one in-memory `LogState`. Its rules are those of
``specs/log_format.md`` ("Writers", "Readers"):

* every write goes through `LogEngine.write` (thread lock, exclusive
  ``flock``, catch up, validate with ``decide``, one ``pwrite`` per caller,
  sync per `SyncPolicy`) and the locks are released only after the sync: no
  reader anywhere sees a record before it is durable; under
  ``SyncPolicy.GROUP`` waiting callers share one write and one sync
  (``backends/group.py``), asyncio callers included;
* reads catch up under a shared ``flock`` in bounded chunks
  (``backends/logread.py``), never reading a byte twice;
* a tail is handled per the tail policy table, cut only under the exclusive
  lock and always reported; read-only, nothing is cut;
* a failed write or sync cuts the unsynced records away, rebuilds memory
  from what was durable and poisons the engine until reopened;
* after ``fork()`` an engine reopens the file before its first use.

All I/O goes through a `FileSystem` (`durability.fileio`), the seam tests replace.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from ..errors import DecodeError, LogPoisonedError, StorageError
from ..fileio import FileSystem
from ..framing import LogReader, RecordType, Tail, TailKind, encode_record
from .group import GroupCommit, Ticket
from .logread import Access, TailAction, read_records, tail_action
from .logrepair import TailRepairs
from .logstate import LogState, gc_paused, initial_bytes, interpret_base
from .modes import RecoveryMode, SyncPolicy, TornTail, TornTailWarning

__all__ = ["LogEngine", "LogState", "RecoveryMode", "SyncPolicy", "TornTail", "TornTailWarning"]

logger = logging.getLogger("durability")
T = TypeVar("T")
S = TypeVar("S", bound="LogState[Any]")


#: ``decide(state)`` validates against `state` and returns ``(payload, commit)``
#: (``commit()`` applies the payload to `state`), or ``None``: nothing to write.
#: A payload of another record type than the log's own is ``(type, bytes)``.
Decide = Callable[[S], tuple[bytes | tuple[RecordType, bytes], Callable[[], None]] | None]

#: Every live engine, so a forked child can make each drop its parent's file.
_ENGINES: weakref.WeakSet[LogEngine[Any]] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """In a forked child, no engine may use its parent's descriptor, lock or
    threads: each drops them here (one thread runs) and reopens on first use."""
    for engine in list(_ENGINES):
        engine._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)


class LogEngine(TailRepairs, Generic[S]):
    """One open log file and its in-memory state (see the module rules)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        new_state: Callable[[], S],
        *,
        sync: SyncPolicy,
        recovery: RecoveryMode,
        fs: FileSystem,
        read_only: bool = False,
    ) -> None:
        if not isinstance(sync, SyncPolicy):
            raise TypeError(f"sync must be a SyncPolicy, not {sync!r}")
        if not isinstance(recovery, RecoveryMode):
            raise TypeError(f"recovery must be a RecoveryMode, not {recovery!r}")
        self.path = os.fspath(path)
        self.read_only = read_only
        self._new_state = new_state
        self._sync, self._recovery, self._fs = sync, recovery, fs
        self._closed = False
        self._new_locks()
        self._fd: int | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._open()
        _ENGINES.add(self)

    def _new_locks(self) -> None:
        self._lock = threading.Lock()  # guards everything below; held for I/O
        self._group = GroupCommit()

    def _open(self) -> None:
        """Open the file (creating it unless read-only) and read it whole."""
        self.state: S = self._new_state()
        self.base_verified = False
        self.torn_tail: TornTail | None = None
        self._poisoned: str | None = None
        self._hidden_from: int | None = None
        self._end = self._scanned = self._next_seq = self._base_end = 0
        self._stale = False
        fd = self._open_fd()
        if fd is None:  # read-only and missing: an empty log until it appears
            return
        self._fd = fd
        self._finalizer = weakref.finalize(self, self._fs.close, fd)
        try:
            with self._fs.locked(fd, self.path, exclusive=not self.read_only):
                self._catch_up(exclusive=not self.read_only)
        except BaseException:
            self._release()
            raise

    def _open_fd(self) -> int | None:
        """The log's descriptor, creating the file if missing (read-only:
        ``None``); tried again if the file is moved away in between (a WAL
        segment sealed by another process)."""
        for attempt in range(100):
            try:
                opened = self._fs.open_ro if self.read_only else self._fs.open_rw
                return opened(self.path)
            except StorageError as exc:
                if not isinstance(exc.__cause__, FileNotFoundError) or attempt == 99:
                    raise
            if self.read_only:
                return None
            self._fs.create_atomically(self.path, initial_bytes(self._new_state()))
        raise AssertionError("unreachable")  # pragma: no cover

    def _release(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._fd = self._finalizer = None

    def _forked(self) -> None:
        """Called in a forked child: forget the parent's locks and queue, close
        this process's copy of the descriptor (the parent's ``flock`` stays the
        parent's), and reopen on first use."""
        self._new_locks()
        if self._finalizer is not None:
            self._finalizer.detach()
        if self._fd is not None:
            self._fs.close(self._fd)
        self._fd = self._finalizer = None
        self._stale = True

    def _ready(self, *, writing: bool) -> int | None:
        """Under `_lock`: refuse use after close (and writes when read-only or
        poisoned), reopen after a fork; return the descriptor."""
        if self._closed:
            raise StorageError(f"log {self.path} is closed")
        if self._stale:
            self._open()
        if writing:
            if self.read_only:
                raise StorageError(f"log {self.path} is open read-only")
            if self._poisoned is not None:
                raise self._poisoned_error()
        if self._fd is None and self.read_only:
            self._fd = self._open_fd()
            if self._fd is not None:
                self._finalizer = weakref.finalize(self, self._fs.close, self._fd)
        return self._fd

    # -- reading -------------------------------------------------------------

    def read(self, view: Callable[[S], T]) -> T:
        """Catch up if the file grew, then return ``view(state)``."""
        with self._lock:
            return self._read_locked(view)

    async def read_async(self, view: Callable[[S], T]) -> T:
        """`read` for asyncio code: answered at once unless a write or flush
        holds the log, in which case it waits in the default executor, never
        on the event loop."""
        if self._lock.acquire(blocking=False):
            try:
                return self._read_locked(view)
            finally:
                self._lock.release()
        return await asyncio.get_running_loop().run_in_executor(None, self.read, view)

    def _read_locked(self, view: Callable[[S], T]) -> T:
        fd = self._ready(writing=False)
        if fd is not None and self._fs.size(fd, self.path) != self._scanned:
            with self._fs.locked(fd, self.path, exclusive=False):
                self._catch_up(exclusive=False)
        return view(self.state)

    def _catch_up(self, *, exclusive: bool) -> None:
        """Apply the records appended since `_end` (the whole file at first)."""
        assert self._fd is not None
        size = self._fs.size(self._fd, self.path)
        if self._hidden_from is not None:  # never show what a failed flush left
            size = min(size, self._hidden_from)
        if size == self._end:
            self._scanned = size
            return
        if size < self._end:
            raise DecodeError(
                f"log shrank below the {self._end} bytes already read", path=self.path, offset=size
            )
        access = (
            Access.READ_ONLY if self.read_only else Access.WRITER if exclusive else Access.READER
        )
        reader = LogReader(self.path, origin=self._end, next_seq=self._next_seq)
        with gc_paused():  # millions of objects that stay: no collection walks them
            tail = self._replay(reader, size, access)
        self._scanned = size
        if tail is not None:
            self._on_tail(tail, access)

    def _replay(self, reader: LogReader, size: int, access: Access) -> Tail | None:
        """Apply the records `reader` finds before byte `size`; return the
        tail met (``None``: clean up to `size`)."""
        assert self._fd is not None
        base_pending = self._end == 0  # taken after the base checksum record verified
        replay, path = self.state.replay, self.path
        for record in read_records(self._fs, self._fd, path, reader, size):
            if base_pending:
                self._take_base(reader)
                base_pending = False
            try:
                replay(record, path)
            except DecodeError as exc:  # damage from this record on
                if tail_action(TailKind.DAMAGE, self._recovery, access) is TailAction.FAIL_CLOSED:
                    raise
                return Tail(
                    offset=record.offset,
                    dropped=size - record.offset,
                    kind=TailKind.DAMAGE,
                    reason=exc.reason,
                )
            self._end, self._next_seq = record.end, record.seq + 1
        if base_pending:
            self._take_base(reader)
        return reader.tail

    def _take_base(self, reader: LogReader) -> None:
        if reader.base is not None:
            self.state.take_base(interpret_base(reader.base, self.path), self.path)
            self._end = self._base_end = reader.base_end
            self.base_verified = reader.base_verified

    # -- writing -------------------------------------------------------------

    def write(self, decide: Decide[S]) -> None:
        """The one writer path. Under the locks, after catching up,
        ``decide(state)`` validates and returns ``(payload, commit)`` (or
        ``None``: nothing to write); the payload is appended as one record and
        synced per policy. Memory shows the record only once it is durable.

        Under ``SyncPolicy.GROUP``, callers arriving while a flush is in flight
        queue up; the next leader writes all their records in one ``pwrite``
        and covers them with one sync."""
        ticket = Ticket(decide)
        if self._sync is SyncPolicy.GROUP:
            self._group.submit(ticket, self._write_batch)
        else:
            self._write_batch([ticket])
        if ticket.error is not None:
            raise ticket.error

    async def write_async(self, decide: Decide[S]) -> None:
        """`write` for asyncio code: the event loop never blocks on the file.
        Under ``SyncPolicy.GROUP`` every task appending concurrently shares
        the flushes (one drainer leads in the default executor); otherwise
        the write runs in the default executor."""
        if self._sync is not SyncPolicy.GROUP:
            await asyncio.get_running_loop().run_in_executor(None, self.write, decide)
            return
        ticket = Ticket(decide)
        await self._group.submit_async(ticket, self._write_batch)
        if ticket.error is not None:
            raise ticket.error

    @property
    def queued(self) -> int:
        """Appends waiting for a group-commit leader."""
        return self._group.queued

    def _write_batch(self, tickets: list[Ticket]) -> None:
        """Decide, write and sync `tickets` as consecutive records. Each ticket
        ends done, with its own error if it failed."""
        try:
            with self._lock:
                self._write_locked(tickets)
        except BaseException as exc:
            for ticket in tickets:
                if ticket.error is None:
                    ticket.error = exc
            if not isinstance(exc, Exception):
                raise
        finally:  # only now: a waiter told "done" must find its record durable
            for ticket in tickets:
                ticket.done = True

    def _write_locked(self, tickets: list[Ticket]) -> None:
        """Under `_lock`: take the exclusive lock, catch up, append `tickets`."""
        fd = self._ready(writing=True)
        assert fd is not None
        with self._fs.locked(fd, self.path, exclusive=True):
            self._catch_up(exclusive=True)  # one lseek when nobody appended since
            self._append(fd, tickets)

    def _append(self, fd: int, tickets: list[Ticket]) -> None:
        """Under both locks: each ticket's decision is applied to memory at
        once (so the next ticket validates against it), but no reader can see
        memory or the file until the batch is durable; a failed write or sync
        truncates the batch away and rebuilds memory from the file."""
        start, state = self._end, self.state
        seq = 1 if start == 0 else self._next_seq
        chunks = [initial_bytes(state)] if start == 0 else []
        written: list[Ticket] = []
        for ticket in tickets:
            try:
                pending = ticket.decide(state)
                if pending is not None:
                    payload, commit = pending
                    if isinstance(payload, bytes):
                        chunks.append(encode_record(state.record_type, seq, payload))
                    else:
                        chunks.append(encode_record(payload[0], seq, payload[1]))
                    commit()
                    written.append(ticket)
                    seq += 1
            except Exception as exc:  # this caller's error only
                ticket.error = exc
        if not written:
            return
        data = b"".join(chunks)
        try:
            self._fs.write_at(fd, data, start, self.path)
            if self._sync is not SyncPolicy.NONE:
                self._fs.sync(fd, self.path)
        except StorageError as exc:
            error = self._poison(exc, truncate_to=start)
            for ticket in written:  # before anything else can fail
                ticket.error = error
            self._rebuild(start)
            return
        if start == 0:
            self.base_verified = True
        self._end = self._scanned = start + len(data)
        self._next_seq = seq

    def _rebuild(self, durable_end: int) -> None:
        """After a failed write or sync: memory again holds only the first
        `durable_end` bytes of the file (what was durable before)."""
        self.state = self._new_state()
        self.base_verified = False
        self._end = self._scanned = self._next_seq = 0
        if durable_end:
            self._catch_up(exclusive=False)

    def sync(self) -> None:
        """Make every record written so far durable (for ``SyncPolicy.NONE``)."""
        with self._lock:
            fd = self._ready(writing=True)
            assert fd is not None
            self._sync_or_poison(fd, truncate_to=None)

    def _sync_or_poison(self, fd: int, *, truncate_to: int | None) -> None:
        try:
            self._fs.sync(fd, self.path)
        except StorageError as exc:
            raise self._poison(exc, truncate_to=truncate_to) from exc

    def _poison(self, exc: StorageError, *, truncate_to: int | None) -> LogPoisonedError:
        """Refuse writes from now on; drop what was never acknowledged. If the
        file cannot be cut back, this instance still never shows those bytes."""
        self._poisoned = str(exc)
        if truncate_to is not None:
            assert self._fd is not None
            try:
                self._fs.truncate(self._fd, truncate_to, self.path)
            except StorageError:
                self._hidden_from = truncate_to
        return self._poisoned_error()

    def _poisoned_error(self) -> LogPoisonedError:
        return LogPoisonedError(
            f"log {self.path} refuses writes until reopened: an earlier write or fsync "
            f"failed ({self._poisoned})"
        )

    def close(self) -> None:
        """Release the file descriptor (idempotent). Waits for a write or flush
        in flight; nothing is written or synced through the descriptor after."""
        with self._lock:
            self._closed = True
            self._release()
