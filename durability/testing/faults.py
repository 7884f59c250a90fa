"""Fault injection for crash-safety tests, built on the `FileSystem` seam that
every file backend takes as ``fs=``.

* `FaultyFileSystem` records every call an operation makes through the seam
  (`FaultyFileSystem.calls`: open, stat, read, write, sync, truncate, lock,
  sync_dir, rename, link, mkdir) and fails a chosen one (or every one from
  it on) with the errno you name, or makes a write come back short. Count
  the call sites of an operation once, then fail the k-th for every k.
* `PowerLossFileSystem` remembers what each file held at its last sync;
  `lose_power` puts a file back to that, optionally keeping a torn or
  zero-filled version of what was written after it.
* `run_and_kill` is the crash runner: it forks a writer that acknowledges
  each durable write (``ack("...")`` after the call returned), SIGKILLs it
  after a delay and returns what it had acknowledged.

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
"""

from __future__ import annotations

import contextlib
import enum
import errno as errnos
import os
import random
import select
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator

import attrs

from ..errors import StorageError
from ..fileio import FileSystem

__all__ = [
    "Ack",
    "Call",
    "CrashTrial",
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


class FaultyFileSystem(FileSystem):
    """A `FileSystem` that records its calls and fails the ones you choose.

    `calls` lists every call in order (thread-safe). `fail_after(k, ...)` arms
    a fault at the k-th call from now; with ``sticky=True`` every call from
    it on fails too (a disk that went away), with ``short_write=True`` a
    write at that site first writes half its bytes (a full disk). Each fault
    raises the `StorageError` the real seam would raise for that errno.

    `write_chunk` splits every write into separate ``pwrite`` calls of that
    many bytes (``write_pause`` seconds apart), so a crash can land inside a
    record.
    """

    def __init__(self, *, write_chunk: int | None = None, write_pause: float = 0.0) -> None:
        self.calls: list[Call] = []
        self.faults: list[Call] = []
        self._fail_at: int | None = None
        self._error = errnos.EIO
        self._sticky = False
        self._short = False
        self._write_chunk = write_chunk
        self._write_pause = write_pause
        self._guard = threading.Lock()

    def fail_after(
        self, k: int, *, error: int = errnos.EIO, sticky: bool = False, short_write: bool = False
    ) -> None:
        """Fail the k-th call from now (0: the next one) with `error`."""
        with self._guard:
            self._fail_at = len(self.calls) + k
            self._error, self._sticky, self._short = error, sticky, short_write

    def heal(self) -> None:
        """Disarm: every later call succeeds."""
        with self._guard:
            self._fail_at = None

    def _site(self, op: str, path: str) -> OSError | None:
        """Record a call; return the error it must fail with, if any."""
        with self._guard:
            call = Call(len(self.calls), op, path)
            self.calls.append(call)
            at = self._fail_at
            if at is None or call.index < at or (call.index > at and not self._sticky):
                return None
            self.faults.append(call)
            return OSError(self._error, os.strerror(self._error))

    def _check(self, op: str, path: str) -> None:
        exc = self._site(op, path)
        if exc is not None:
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
        exc = self._site("write", path)
        if exc is not None:
            if self._short and data:
                self._write(fd, data[: len(data) // 2], offset, path)
            raise StorageError(f"write {path} at offset {offset}: {exc.strerror}") from exc
        self._write(fd, data, offset, path)

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


class Unsynced(enum.Enum):
    """What a power cut leaves of the bytes written after a file's last sync."""

    #: Nothing: the file is exactly what its last sync covered.
    DROP = "drop"
    #: A random prefix of them (a write torn by the cut).
    TORN = "torn"
    #: The file keeps its size; a random prefix of them survives and the
    #: rest reads as zeros (a file system that extended the size but never
    #: wrote the blocks).
    ZEROS = "zeros"


class PowerLossFileSystem(FileSystem):
    """A `FileSystem` that remembers, per file (by inode), the bytes its last
    sync covered, so a test can cut the power (`lose_power`) and reopen.

    Only data syncs count: a file created atomically (temporary file, sync,
    link) holds its synced contents from the start.
    """

    def __init__(self) -> None:
        self._synced: dict[tuple[int, int], bytes] = {}
        self._guard = threading.Lock()

    def sync(self, fd: int, path: str) -> None:
        super().sync(fd, path)
        st = os.fstat(fd)
        data = super().read_at(fd, 0, st.st_size, path)
        with self._guard:
            self._synced[(st.st_dev, st.st_ino)] = data

    def synced_bytes(self, path: str | os.PathLike[str]) -> bytes:
        """What `path` held at its last sync (``b""`` if it never synced)."""
        st = os.stat(path)
        with self._guard:
            return self._synced.get((st.st_dev, st.st_ino), b"")

    def lose_power(
        self,
        path: str | os.PathLike[str],
        unsynced: Unsynced = Unsynced.DROP,
        *,
        rng: random.Random | None = None,
    ) -> bytes:
        """Rewrite `path` as a power cut would leave it and return its bytes.

        Bytes written after the last sync are dropped, torn or zero-filled
        per `unsynced`; only when the file is its synced bytes followed by
        more does anything after them survive.
        """
        rng = rng or random.Random()
        with open(path, "rb") as f:
            now = f.read()
        synced = self.synced_bytes(path)
        after = now[len(synced) :] if now.startswith(synced) else b""
        kept = after[: rng.randint(0, len(after))] if unsynced is not Unsynced.DROP else b""
        image = synced + kept
        if unsynced is Unsynced.ZEROS:
            image += bytes(max(0, len(now) - len(image)))
        with open(path, "r+b") as f:
            f.truncate(0)
            f.write(image)
        return image


# -- the crash runner -----------------------------------------------------------------

#: What a writer calls after each durable write returned: ``ack("entry 7")``.
Ack = Callable[[str], None]


@attrs.frozen(kw_only=True)
class CrashTrial:
    """What one `run_and_kill` run saw: the acknowledgements the writer sent
    before it died (in order), whether SIGKILL ended it (``False``: it
    finished first), and the error it raised, if it failed on its own."""

    acked: tuple[str, ...]
    killed: bool
    error: str | None = None


def _sender(fd: int) -> Ack:
    def ack(message: str) -> None:
        line = f"{message}\n".encode()
        if "\n" in message or len(line) > select.PIPE_BUF:
            raise ValueError(f"an acknowledgement is one short line, not {message!r:.80}")
        os.write(fd, line)  # at most PIPE_BUF bytes: arrives whole or not at all

    return ack


def run_and_kill(workload: Callable[[Ack], None], *, after: float) -> CrashTrial:
    """Fork a child that runs ``workload(ack)``, SIGKILL it `after` seconds
    later (wherever it is: inside a write, an fsync, a repair on open), and
    return what it acknowledged.

    The child acknowledges with ``ack(text)`` once a write returned; each
    acknowledgement is one line written to a pipe in one call, so it arrives
    whole or not at all. An exception in the workload is reported in
    `CrashTrial.error` (with its traceback), never hidden.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(read_end)
            workload(_sender(write_end))
        except BaseException:
            code = 1
            text = " | ".join(traceback.format_exc().strip().splitlines()[-6:])
            with contextlib.suppress(OSError):
                os.write(write_end, b"!" + text.encode()[: select.PIPE_BUF - 8] + b"\n")
        finally:
            os._exit(code)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + after
    while (remaining := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([read_end], [], [], remaining)
        if ready:
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break  # the writer finished (or failed) before the kill
            chunks.append(chunk)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    while chunk := os.read(read_end, 1 << 16):
        chunks.append(chunk)
    os.close(read_end)
    text = b"".join(chunks).decode(errors="replace")
    lines = text.split("\n")[:-1]  # a last line cut short never arrived
    errors = [line[1:] for line in lines if line.startswith("!")]
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    return CrashTrial(
        acked=tuple(line for line in lines if not line.startswith("!")),
        killed=killed,
        error=errors[0] if errors else None,
    )
