"""Fault injection for crash-safety tests, built on the `FileSystem` seam that
every file backend takes as ``fs=`` (`FileAgreementWal`,
`FileEvidenceOutcomeCache`, `StateDirectory`, `open_wal`/`open_cache` of a
file path).

* `FaultyFileSystem` records every call an operation makes through the seam
  (`FaultyFileSystem.calls`: open, stat, read, write, sync, truncate, lock,
  sync_dir, rename, link, mkdir) and injects one `Fault` at the call you
  choose (`inject`: the n-th write, the next fsync, ..., of a file or any):
  a failed call with the errno you name (a failed fsync), a short write, or
  a write whose data lands with a bit flipped. At rest, `flip_bit` and
  `truncate_file` damage a file at a chosen or random (seeded) point.
* `PowerLossFileSystem` (``durability/testing/powerloss.py``) remembers what
  each file held at its last sync; `lose_power` puts a file back to that,
  optionally keeping a torn or zero-filled version of what was written after.
* `run_and_kill` forks a writer that acknowledges each durable write (``ack(
  "...")`` after the call returned), SIGKILLs it after a delay and returns
  what it had acknowledged (``durability/testing/timedkill.py``);
  `durability.testing.crash_test` kills at every write and fsync in turn
  (``durability/testing/crashtest.py``).

Failing the k-th call site of an append::

    >>> import errno, os, tempfile
    >>> from durability import AgreementLevel, VisibilityGateCrossing, DurabilityError
    >>> from durability.backends.file import FileAgreementWal
    >>> path = os.path.join(tempfile.mkdtemp(), "wal.log")
    >>> fs = FaultyFileSystem()
    >>> wal = FileAgreementWal(path, fs=fs)
    >>> entry = VisibilityGateCrossing(operation_id="op", downstream_coroutine_id="c",
    ...                                gate_level=AgreementLevel.NONE, tick=1)
    >>> start = len(fs.calls); _ = wal.append(entry)
    >>> ops = [call.op for call in fs.calls[start:]]  # e.g. lock, stat, write, sync
    >>> "write" in ops and "sync" in ops
    True
    >>> fs.fail_after(ops.index("sync"), error=errno.EIO)  # the same append's sync
    >>> try:
    ...     wal.append(entry)
    ... except DurabilityError as exc:
    ...     print(type(exc).__name__)
    LogPoisonedError

A bit flipped on its way to the disk goes unnoticed until the log is read
(random choices are seeded, so this one flips the same bit every run)::

    >>> from durability import DecodeError
    >>> fs = FaultyFileSystem(seed=7)
    >>> wal = FileAgreementWal(os.path.join(tempfile.mkdtemp(), "wal.log"), fs=fs)
    >>> fs.inject(Fault.BIT_FLIP, path="wal.log")  # the next write to wal.log
    >>> _ = wal.append(entry); _ = wal.append(entry)  # both reported durable
    >>> try:
    ...     FileAgreementWal(wal.path).load()
    ... except DecodeError as exc:
    ...     print(type(exc).__name__, "at byte offset", exc.offset)  # the first append's record
    DecodeError at byte offset 149
"""

from __future__ import annotations

import contextlib
import enum
import errno as errnos
import os
import random
import threading
import time
from collections.abc import Iterator

import attrs

from ..errors import StorageError
from ..fileio import FileSystem
from .powerloss import PowerLossFileSystem, Unsynced
from .timedkill import Ack, CrashTrial, run_and_kill

__all__ = [
    "Ack",
    "Call",
    "CrashTrial",
    "Fault",
    "FaultyFileSystem",
    "PowerLossFileSystem",
    "Unsynced",
    "run_and_kill",
]


@attrs.frozen
class Call:
    """One call through the seam: its position, operation name and path."""

    index: int
    op: str
    path: str


class Fault(enum.Enum):
    """What `FaultyFileSystem.inject` does at the call it picks."""

    #: The call fails with the errno given (``EIO`` by default) and does
    #: nothing: on a ``sync``, a failed fsync.
    ERROR = "error"
    #: A write stores only a prefix of its data (``keep`` bytes, or a random
    #: number fewer than all), then fails with the errno (a full disk). Any
    #: other call fails as `ERROR`.
    SHORT_WRITE = "short_write"
    #: A write stores its data with one bit flipped (``bit``, or a random
    #: one) and reports success: silent corruption. Only writes are picked.
    BIT_FLIP = "bit_flip"


@attrs.define
class _Armed:
    """The fault waiting for its call: `remaining` matching calls to go."""

    fault: Fault
    op: str | None
    path: str | None
    remaining: int
    error: int
    sticky: bool
    keep: int | None
    bit: int | None
    half: bool = False

    def matches(self, op: str, path: str) -> bool:
        if self.op is not None and op != self.op:
            return False
        return self.path is None or path == self.path or path.endswith(os.sep + self.path)


class FaultyFileSystem(FileSystem):
    """A `FileSystem` that records its calls and injects the faults you choose.

    `calls` lists every call in order (thread-safe) and `faults` the calls a
    fault hit. `inject` arms one `Fault` at the n-th call matching an
    operation and a path from now; `fail_after(k, ...)` at the k-th call of
    any kind. With ``sticky=True`` every matching call from it on fails too
    (a disk that went away). An error raises the `StorageError` the real seam
    would raise for that errno. Random choices (how short a short write, which
    bit, where to cut) come from `rng`, seeded by `seed`, so a failing case
    can be replayed.

    `write_chunk` splits every write into separate ``pwrite`` calls of that
    many bytes (``write_pause`` seconds apart), so a crash can land inside a
    record.
    """

    def __init__(
        self,
        *,
        write_chunk: int | None = None,
        write_pause: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.calls: list[Call] = []
        self.faults: list[Call] = []
        #: Where random faults and damage are chosen (seeded by `seed`).
        self.rng = random.Random(seed)
        self._armed: _Armed | None = None
        self._write_chunk = write_chunk
        self._write_pause = write_pause
        self._guard = threading.Lock()

    def inject(
        self,
        fault: Fault = Fault.ERROR,
        *,
        op: str | None = None,
        nth: int = 1,
        path: str | None = None,
        error: int = errnos.EIO,
        sticky: bool = False,
        keep: int | None = None,
        bit: int | None = None,
    ) -> None:
        """Arm `fault` at the `nth` call from now (1: the next) whose
        operation is `op` (``"write"``, ``"sync"``, ...; ``None``: any) on
        `path` (a full path or a file name; ``None``: any file). It replaces
        a fault still armed. ``inject(op="sync")`` fails the next fsync;
        ``inject(Fault.SHORT_WRITE, op="write", nth=3, keep=10)`` lets the
        third write store 10 bytes and fail.
        """
        if nth < 1:
            raise ValueError(f"nth counts from 1, got {nth}")
        if fault is Fault.BIT_FLIP and op not in (None, "write"):
            raise ValueError(f"a bit flip hits a write, not a {op}")
        only = "write" if fault is Fault.BIT_FLIP else op
        sticky = sticky and fault is not Fault.BIT_FLIP
        self._arm(_Armed(fault, only, path, nth, error, sticky, keep, bit))

    def _arm(self, armed: _Armed) -> None:
        with self._guard:
            self._armed = armed

    def fail_after(
        self, k: int, *, error: int = errnos.EIO, sticky: bool = False, short_write: bool = False
    ) -> None:
        """Fail the k-th call from now (0: the next), whatever it is, with
        `error`; with `short_write`, a write there first stores half its data."""
        fault = Fault.SHORT_WRITE if short_write else Fault.ERROR
        self._arm(_Armed(fault, None, None, k + 1, error, sticky, None, None, half=True))

    def heal(self) -> None:
        """Disarm: every later call succeeds."""
        with self._guard:
            self._armed = None

    def flip_bit(
        self, path: str | os.PathLike[str], offset: int | None = None, bit: int | None = None
    ) -> tuple[int, int]:
        """Flip bit `bit` (0-7; random if ``None``) of the byte at `offset`
        (random if ``None``) of the file at `path`, in place; returns
        ``(offset, bit)``. Damage at rest, made outside the seam."""
        with open(path, "r+b") as f:
            data = bytearray(f.read())
            if not data:
                raise ValueError(f"{os.fspath(path)} is empty: no bit to flip")
            at = self.rng.randrange(len(data)) if offset is None else offset
            which = self.rng.randrange(8) if bit is None else bit
            if not (0 <= at < len(data) and 0 <= which < 8):
                raise ValueError(f"no bit {which} at offset {at} in {len(data)} bytes")
            data[at] ^= 1 << which
            f.seek(0)
            f.write(data)
        return at, which

    def truncate_file(self, path: str | os.PathLike[str], at: int | None = None) -> int:
        """Cut the file at `path` to `at` bytes (a random length shorter than
        it is if ``None``); returns the length. Damage at rest (a lost tail),
        made outside the seam."""
        size = os.path.getsize(path)
        length = self.rng.randrange(size) if at is None and size else (at or 0)
        if length > size:
            raise ValueError(f"{os.fspath(path)} has {size} bytes, cannot cut it to {length}")
        os.truncate(path, length)
        return length

    def _site(self, op: str, path: str) -> _Armed | None:
        """Record a call; return the fault it must suffer, if any."""
        with self._guard:
            call = Call(len(self.calls), op, path)
            self.calls.append(call)
            armed = self._armed
            if armed is None or not armed.matches(op, path):
                return None
            armed.remaining -= 1
            if armed.remaining > 0 or (armed.remaining < 0 and not armed.sticky):
                return None
            self.faults.append(call)
            return armed

    @staticmethod
    def _error(armed: _Armed) -> OSError:
        return OSError(armed.error, os.strerror(armed.error))

    def _check(self, op: str, path: str) -> None:
        armed = self._site(op, path)
        if armed is not None:
            exc = self._error(armed)
            raise StorageError(f"{op} {path}: {exc.strerror}") from exc

    def open_rw(self, path: str, *, create: bool = False) -> int:
        self._check("open", path)
        return super().open_rw(path, create=create)

    def open_ro(self, path: str) -> int:
        self._check("open", path)
        return super().open_ro(path)

    def open_rw_exclusive(self, path: str) -> int:
        self._check("open", path)
        return super().open_rw_exclusive(path)

    def size(self, fd: int, path: str) -> int:
        self._check("stat", path)
        return super().size(fd, path)

    def read_at(self, fd: int, offset: int, length: int, path: str) -> bytes:
        self._check("read", path)
        return super().read_at(fd, offset, length, path)

    def write_at(self, fd: int, data: bytes, offset: int, path: str) -> None:
        armed = self._site("write", path)
        if armed is None:
            self._write(fd, data, offset, path)
            return
        if armed.fault is Fault.BIT_FLIP and data:
            flipped = bytearray(data)
            at = armed.bit if armed.bit is not None else self.rng.randrange(len(data) * 8)
            flipped[at // 8] ^= 1 << (at % 8)
            self._write(fd, bytes(flipped), offset, path)
            return
        if armed.fault is Fault.SHORT_WRITE and data:
            keep = len(data) // 2 if armed.half else armed.keep
            if keep is None:
                keep = self.rng.randrange(len(data))
            self._write(fd, data[: min(keep, len(data))], offset, path)
        exc = self._error(armed)
        raise StorageError(f"write {path} at offset {offset}: {exc.strerror}") from exc

    def _write(self, fd: int, data: bytes, offset: int, path: str) -> None:
        step = self._write_chunk or len(data) or 1
        for start in range(0, len(data), step):
            super().write_at(fd, data[start : start + step], offset + start, path)
            if self._write_pause:
                time.sleep(self._write_pause)

    def sync(self, fd: int, path: str) -> None:
        self._check("sync", path)
        super().sync(fd, path)

    def truncate(self, fd: int, length: int, path: str) -> None:
        self._check("truncate", path)
        super().truncate(fd, length, path)

    @contextlib.contextmanager
    def locked(self, fd: int, path: str, *, exclusive: bool = True) -> Iterator[None]:
        self._check("lock", path)
        with super().locked(fd, path, exclusive=exclusive):
            yield

    def sync_dir(self, directory: str) -> None:
        self._check("sync_dir", directory)
        super().sync_dir(directory)

    def rename(self, source: str, target: str) -> None:
        self._check("rename", target)
        super().rename(source, target)

    def link(self, source: str, target: str) -> bool:
        self._check("link", target)
        return super().link(source, target)

    def make_dirs(self, path: str) -> None:
        self._check("mkdir", path)
        super().make_dirs(path)
