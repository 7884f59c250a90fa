"""The log engine shared by `FileAgreementWal` and `FileEvidenceOutcomeCache`.

One `LogEngine` owns one open file descriptor and one in-memory `LogState`.
Rules:

* every write goes through `LogEngine.write`: thread lock, exclusive
  ``flock``, catch up on what others appended, validate (``decide``), one
  ``pwrite`` of one record, sync per `SyncPolicy`, then update memory;
* reads ``fstat`` and, only when the file grew, catch up under a shared
  ``flock``; nothing already read is read again;
* bytes after the last good record are handled per `RecoveryMode`, only while
  the exclusive lock is held (so another process's write in flight is never
  cut), and every repair is reported (``logging``, ``warnings``, `torn_tail`);
* a failed write or sync poisons the engine: `LogPoisonedError` on every
  later write until the log is reopened.

All I/O goes through a `FileSystem` (``fileio``), the seam tests replace.
"""

from __future__ import annotations

import abc
import contextlib
import enum
import logging
import os
import threading
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

import attrs

from ..codec import decode_item, dumps, from_plain, to_plain
from ..errors import DECODE_PREFIX, DecodeError, LogPoisonedError, PayloadKindError, StorageError
from ..fileio import FileSystem
from ..framing import (
    LogScan,
    Record,
    RecordType,
    Tail,
    TailKind,
    base_checksum_payload,
    damage_error,
    encode_record,
    scan_log,
)
from ..persisted import Payload, envelope_plain, payload_from_envelope, wrong_kind_message

__all__ = ["LogEngine", "LogState", "RecoveryMode", "SyncPolicy", "TornTail", "TornTailWarning"]

logger = logging.getLogger("durability")
T = TypeVar("T")
S = TypeVar("S", bound="LogState[Any]")


class SyncPolicy(enum.Enum):
    """When an append is made durable.

    * ``DURABLE`` (default): ``fdatasync`` before every append returns.
    * ``GROUP``: appenders running concurrently in one process (threads) share
      one ``fdatasync``; each append is still durable before it returns.
    * ``NONE``: never syncs; the caller calls ``sync()`` (or accepts losing
      the latest appends on power loss, never the file's consistency).
    """

    DURABLE = "durable"
    GROUP = "group"
    NONE = "none"


class RecoveryMode(enum.Enum):
    """What opening (or catching up on) a log does with bytes that are not
    whole, valid records. Modelled on RocksDB's WAL recovery modes.

    * ``TOLERATE_TORN_TAIL`` (default): a torn tail (a write cut short by a
      crash: one of the four cases of ``specs/log_format.md``) is truncated
      and reported; anything else fails closed with `DecodeError`. Pick it
      unless you have a reason not to: it loses only writes that were never
      acknowledged.
    * ``ABSOLUTE_CONSISTENCY``: a torn tail is an error too and nothing is
      ever truncated. Pick it when every byte of the file must be accounted
      for (for instance with ``SyncPolicy.DURABLE`` on storage that never
      tears a write), or to inspect a log without repairing it.
    * ``POINT_IN_TIME``: keeps the valid prefix before the first damage: the
      damaged file is first copied aside to ``<path>.damaged-<n>``, then
      truncated at the damage and reported. Pick it, as an operator, to bring
      a damaged log back to its last consistent point; nothing is lost
      silently (the copy keeps every byte). A damaged base is never repaired.
    """

    TOLERATE_TORN_TAIL = "tolerate_torn_tail"
    ABSOLUTE_CONSISTENCY = "absolute_consistency"
    POINT_IN_TIME = "point_in_time"


class TornTailWarning(UserWarning):
    """Emitted when a log is repaired (a torn tail or, in ``POINT_IN_TIME``
    mode, damage truncated away)."""


@attrs.frozen(kw_only=True)
class TornTail:
    """A repair: `dropped` bytes cut from byte `offset` of the log, and why.
    `copy_path` names the copy kept aside (``POINT_IN_TIME`` damage only)."""

    offset: int
    dropped: int
    reason: str
    copy_path: str | None = None


class LogState(abc.ABC, Generic[T]):
    """What a log's base and records build in memory (one subclass per kind)."""

    #: The artifact class of the base (and of `artifact()`).
    artifact_type: ClassVar[type[Any]]
    #: The record type carrying this kind's items.
    record_type: ClassVar[RecordType]

    def seed(self, artifact: Any, where: str) -> None:
        """Take the items of the base artifact."""
        self.absorb(artifact.entries, where)

    @abc.abstractmethod
    def absorb(self, items: Sequence[T], where: str) -> None:
        """Apply items read from the file (`DecodeError` if they break a rule)."""

    @abc.abstractmethod
    def artifact(self) -> Any:
        """Everything held, as one artifact."""

    def encode(self, items: Sequence[T]) -> bytes:
        """The record payload holding `items`."""
        return dumps([to_plain(item) for item in items])

    def replay(self, record: Record, name: str) -> int:
        """Decode and apply one record of log `name`; return how many items it held."""
        where = f"{name} record {record.seq} at byte offset {record.offset}"
        if record.type is RecordType.BASE_CHECKSUM:
            return 0
        if record.type is not self.record_type:
            raise DecodeError(
                f"{where}: a {record.type.name} record in a {self.record_type.name} log"
            )
        plain, used = decode_item(record.payload)
        if used != len(record.payload):
            raise DecodeError(f"{where}: {len(record.payload) - used} trailing payload bytes")
        items = from_plain({"entries": plain}, self.artifact_type, where=where).entries
        self.absorb(items, where)
        return len(items)


def interpret_base(scan: LogScan, name: str) -> Payload:
    """The payload of the base `scan` decoded (`DecodeError`, or its subclass
    `SchemaVersionError`, naming the file when it is not a v1 artifact)."""
    return payload_from_envelope(scan.base, where=f"{name} base at byte offset 0")[1]


def initial_bytes(state: LogState[Any]) -> bytes:
    """A new, empty log of `state`'s kind: base plus its checksum record."""
    base = dumps(envelope_plain(state.artifact_type()))
    return base + encode_record(RecordType.BASE_CHECKSUM, 0, base_checksum_payload(base))


class LogEngine(Generic[S]):
    """One open log file and its in-memory state (see the module rules)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        state: S,
        *,
        sync: SyncPolicy,
        recovery: RecoveryMode,
        fs: FileSystem,
    ) -> None:
        if not isinstance(sync, SyncPolicy):
            raise TypeError(f"sync must be a SyncPolicy, not {sync!r}")
        if not isinstance(recovery, RecoveryMode):
            raise TypeError(f"recovery must be a RecoveryMode, not {recovery!r}")
        self.path = os.fspath(path)
        self.state = state
        self.base_verified = False
        self.torn_tail: TornTail | None = None
        self._sync, self._recovery, self._fs = sync, recovery, fs
        self._lock = threading.Lock()
        self._group = threading.Condition()
        self._synced = 0
        self._syncing = False
        self._poisoned: str | None = None
        self._closed = False
        self._end = 0
        self._next_seq = 0
        self._fd = self._open()
        self._finalizer = weakref.finalize(self, fs.close, self._fd)
        try:
            with fs.locked(self._fd, self.path, exclusive=True):
                self._catch_up(exclusive=True)
        except BaseException:
            self._finalizer()
            raise

    def _open(self) -> int:
        try:
            return self._fs.open_rw(self.path)
        except StorageError as exc:
            if not isinstance(exc.__cause__, FileNotFoundError):
                raise
        self._fs.create_atomically(self.path, initial_bytes(self.state))
        return self._fs.open_rw(self.path)

    # -- reading -------------------------------------------------------------

    def read(self, view: Callable[[S], T]) -> T:
        """Catch up if the file grew, then return ``view(state)``."""
        with self._lock:
            self._check(writing=False)
            if self._fs.size(self._fd, self.path) != self._end:
                with self._fs.locked(self._fd, self.path, exclusive=False):
                    self._catch_up(exclusive=False)
            return view(self.state)

    def _catch_up(self, *, exclusive: bool) -> None:
        """Apply the records appended since `_end` (the whole file at first)."""
        size = self._fs.size(self._fd, self.path)
        if size == self._end:
            return
        if size < self._end:
            raise damage_error(
                self.path, size, f"log shrank below the {self._end} bytes already read"
            )
        data = self._fs.read_at(self._fd, self._end, size - self._end, self.path)
        scan = scan_log(data, name=self.path, origin=self._end, next_seq=self._next_seq)
        if scan.base is not None:
            payload = interpret_base(scan, self.path)
            if not isinstance(payload, self.state.artifact_type):
                raise PayloadKindError(wrong_kind_message(type(payload), self.state.artifact_type))
            self.state.seed(payload, f"{self.path} base at byte offset 0")
            self._end = scan.base_end
            self.base_verified = scan.base_verified
        tail = scan.tail
        for record in scan.records:
            try:
                self.state.replay(record, self.path)
            except DecodeError as exc:
                if not (exclusive and self._recovery is RecoveryMode.POINT_IN_TIME):
                    raise
                reason = str(exc).removeprefix(DECODE_PREFIX).lstrip(": ")
                tail = Tail(
                    offset=record.offset,
                    dropped=size - record.offset,
                    kind=TailKind.DAMAGE,
                    reason=reason,
                )
                break
            self._end, self._next_seq = record.end, record.seq + 1
        if tail is not None:
            self._on_tail(tail, exclusive)

    def _on_tail(self, tail: Tail, exclusive: bool) -> None:
        if tail.kind is TailKind.TORN:
            if self._recovery is RecoveryMode.ABSOLUTE_CONSISTENCY:
                raise damage_error(
                    self.path,
                    tail.offset,
                    f"torn tail of {tail.dropped} bytes ({tail.reason}), "
                    "not truncated in ABSOLUTE_CONSISTENCY recovery mode",
                )
            if exclusive:
                self._repair(tail, keep_copy=False)
        elif exclusive and self._recovery is RecoveryMode.POINT_IN_TIME:
            self._repair(tail, keep_copy=True)
        else:
            raise damage_error(self.path, tail.offset, tail.reason)

    def _repair(self, tail: Tail, *, keep_copy: bool) -> None:
        copy = self._fs.keep_copy(self._fd, self.path) if keep_copy else None
        self._fs.truncate(self._fd, tail.offset, self.path)
        self._sync_now()
        self._end = tail.offset
        self.torn_tail = TornTail(
            offset=tail.offset, dropped=tail.dropped, reason=tail.reason, copy_path=copy
        )
        what = "damage" if keep_copy else "torn tail"
        kept = f"; the damaged file was copied to {copy}" if copy else ""
        message = (
            f"{what} at byte offset {tail.offset} in {self.path}: {tail.reason}; "
            f"truncated {tail.dropped} bytes{kept}"
        )
        logger.warning(message)
        warnings.warn(message, TornTailWarning, stacklevel=2)

    # -- writing -------------------------------------------------------------

    def write(self, decide: Callable[[], tuple[bytes, Callable[[], None]] | None]) -> None:
        """The one writer path. Under the locks, after catching up, ``decide()``
        validates against the current state and returns ``(payload, commit)``
        (or ``None``: nothing to write); the payload is appended as one record
        and synced per policy, then ``commit()`` updates memory."""
        with self._lock:
            self._check(writing=True)
            with self._fs.locked(self._fd, self.path, exclusive=True):
                self._catch_up(exclusive=True)
                pending = decide()
                if pending is None:
                    return
                payload, commit = pending
                start = self._end
                seq = 1 if start == 0 else self._next_seq
                data = encode_record(self.state.record_type, seq, payload)
                if start == 0:  # a zero-length file: write its base first
                    data = initial_bytes(self.state) + data
                try:
                    self._fs.write_at(self._fd, data, start, self.path)
                except StorageError as exc:
                    raise self._poison(exc, truncate_to=start) from exc
                if self._sync is SyncPolicy.DURABLE:
                    self._sync_now(truncate_to=start)
                if start == 0:
                    self.base_verified = True
                self._end, self._next_seq = start + len(data), seq + 1
                commit()
                written = self._end
        if self._sync is SyncPolicy.GROUP:
            self._group_sync(written)

    def sync(self) -> None:
        """Make every record written so far durable (for ``SyncPolicy.NONE``)."""
        with self._lock:
            self._check(writing=True)
            self._sync_now()

    def _sync_now(self, truncate_to: int | None = None) -> None:
        try:
            self._fs.sync(self._fd, self.path)
        except StorageError as exc:
            raise self._poison(exc, truncate_to=truncate_to) from exc

    def _group_sync(self, written: int) -> None:
        """Leader/follower sync: one ``fdatasync`` covers every record written
        before it started; each caller returns once its record is covered."""
        with self._group:
            while True:
                if self._synced >= written:
                    return
                if self._poisoned is not None:
                    raise self._poisoned_error()
                if not self._syncing:
                    break
                self._group.wait()
            self._syncing = True
            target = self._end
        try:
            self._fs.sync(self._fd, self.path)
        except StorageError as exc:
            with self._group:
                self._syncing = False
                error = self._poison(exc, truncate_to=None)
                self._group.notify_all()
            raise error from exc
        with self._group:
            self._synced = max(self._synced, target)
            self._syncing = False
            self._group.notify_all()

    def _poison(self, exc: StorageError, *, truncate_to: int | None) -> LogPoisonedError:
        self._poisoned = str(exc)
        if truncate_to is not None:  # best effort: drop the record never acknowledged
            with contextlib.suppress(StorageError):
                self._fs.truncate(self._fd, truncate_to, self.path)
        return self._poisoned_error()

    def _poisoned_error(self) -> LogPoisonedError:
        return LogPoisonedError(
            f"log {self.path} refuses writes until reopened: an earlier write or fsync "
            f"failed ({self._poisoned})"
        )

    def _check(self, *, writing: bool) -> None:
        if self._closed:
            raise StorageError(f"log {self.path} is closed")
        if writing and self._poisoned is not None:
            raise self._poisoned_error()

    def close(self) -> None:
        """Release the file descriptor (idempotent)."""
        with self._lock:
            self._closed = True
            self._finalizer()
