"""The I/O seam: every open, read, write, sync, lock and rename `durability`
performs on a file goes through a `FileSystem`.

Tests (and, later, `durability.testing`'s fault-injecting backend) replace the
instance a backend uses to inject short writes, failed fsyncs or crashes. Every
`OSError` leaves here as a `StorageError` naming the file.

The sync calls are looked up on the `os` module at call time
(``os.fdatasync``), so a test that patches `os` sees every sync.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
from collections.abc import Iterator

from .errors import ArtifactTooLargeError, StorageError

__all__ = ["DEFAULT_FS", "FileSystem"]

#: Files the toolkit creates are readable and writable by their owner only.
FILE_MODE = 0o600
#: Directories it creates are the owner's only.
DIR_MODE = 0o700
#: Never follow a symbolic link at a log, lock or checkpoint path (FORMAT.md).
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def _os_error(action: str, path: str, exc: OSError) -> StorageError:
    """The `StorageError` for a failed call; a symbolic link gets its own words."""
    if exc.errno == errno.ELOOP:
        return StorageError(
            f"{action} {path}: refusing a symbolic link (durability never follows a link "
            "at a log, lock or checkpoint path)"
        )
    return StorageError(f"{action} {path}: {exc.strerror or exc}")


def _open_regular(path: str, flags: int) -> int:
    """Open `path` (never following a link, never blocking on a FIFO) and
    refuse anything but a regular file."""
    try:
        fd = os.open(path, flags | _NOFOLLOW | os.O_NONBLOCK, FILE_MODE)
    except OSError as exc:
        raise _os_error("open", path, exc) from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StorageError(f"open {path}: not a regular file")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except OSError as exc:
        os.close(fd)
        raise _os_error("open", path, exc) from exc
    except BaseException:
        os.close(fd)
        raise
    return fd


class _Unlocking:
    """Releases the ``flock`` `FileSystem.locked` took when its block ends (a
    plain class: every append and every catch-up takes the lock, and a
    generator-based context manager costs several times the two syscalls)."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        try:  # noqa: SIM105 - suppress() would cost an object per unlock
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        except OSError:  # the descriptor is gone, and its lock with it
            pass


class FileSystem:
    """Thin, replaceable wrappers around the `os` calls the backends use."""

    def open_rw(self, path: str, *, create: bool = False) -> int:
        """Open `path` for reading and writing (creating it 0600 if asked);
        a symbolic link, or anything but a regular file, is refused."""
        return _open_regular(path, os.O_RDWR | (os.O_CREAT if create else 0))

    def open_ro(self, path: str) -> int:
        """Open `path` read-only; a symbolic link, or anything but a regular
        file (a FIFO would block the open forever), is refused."""
        return _open_regular(path, os.O_RDONLY)

    def size(self, fd: int, path: str) -> int:
        """Current size of the open file. (``lseek`` to the end: a third of
        the cost of an ``fstat``, on every read's check for other writers'
        appends; all I/O here is positional, so the offset it moves is unused.)"""
        try:
            return os.lseek(fd, 0, os.SEEK_END)
        except OSError as exc:
            raise StorageError(f"stat {path}: {exc.strerror or exc}") from exc

    def read_at(self, fd: int, offset: int, length: int, path: str) -> bytes:
        """Read exactly `length` bytes at `offset` (fewer only at end of file)."""
        chunks: list[bytes] = []
        try:
            while length > 0:
                chunk = os.pread(fd, min(length, 1 << 24), offset)
                if not chunk:
                    break
                chunks.append(chunk)
                offset += len(chunk)
                length -= len(chunk)
        except OSError as exc:
            raise StorageError(f"read {path} at offset {offset}: {exc.strerror or exc}") from exc
        return b"".join(chunks)

    def write_at(self, fd: int, data: bytes, offset: int, path: str) -> None:
        """Write all of `data` at `offset`, retrying short writes."""
        view = memoryview(data)
        try:
            while view:
                written = os.pwrite(fd, view, offset)
                view = view[written:]
                offset += written
        except OSError as exc:
            raise StorageError(f"write {path} at offset {offset}: {exc.strerror or exc}") from exc

    def sync(self, fd: int, path: str) -> None:
        """Make written data durable (``os.fdatasync`` where it exists)."""
        try:
            if hasattr(os, "fdatasync"):
                os.fdatasync(fd)
            else:  # pragma: no cover - macOS
                os.fsync(fd)
        except OSError as exc:
            raise StorageError(f"fsync {path}: {exc.strerror or exc}") from exc

    def truncate(self, fd: int, length: int, path: str) -> None:
        """Cut the file to `length` bytes."""
        try:
            os.ftruncate(fd, length)
        except OSError as exc:
            raise StorageError(f"truncate {path} to {length} bytes: {exc.strerror or exc}") from exc

    def close(self, fd: int) -> None:
        """Close a descriptor, ignoring errors (nothing is left to lose)."""
        with contextlib.suppress(OSError):
            os.close(fd)

    def locked(
        self, fd: int, path: str, *, exclusive: bool = True
    ) -> contextlib.AbstractContextManager[None]:
        """Hold an advisory ``flock`` on the open file for the ``with`` block
        (taken by this call, released when the block ends)."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except OSError as exc:
            raise StorageError(f"lock {path}: {exc.strerror or exc}") from exc
        return _Unlocking(fd)

    def sync_dir(self, directory: str) -> None:
        """fsync a directory so a rename or link in it is durable."""
        try:
            fd = os.open(directory or ".", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise StorageError(f"open directory {directory}: {exc.strerror or exc}") from exc
        try:
            os.fsync(fd)
        except OSError as exc:
            raise StorageError(f"fsync directory {directory}: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)

    def _temp_beside(self, path: str, data: bytes) -> str:
        """Write `data` durably to a new 0600 temporary file next to `path`."""
        temp = f"{path}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        fd = self.open_rw_exclusive(temp)
        try:
            self.write_at(fd, data, 0, temp)
            self.sync(fd, temp)
        except BaseException:
            self.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        self.close(fd)
        return temp

    def open_rw_exclusive(self, path: str) -> int:
        """Create `path` (0600); fail if it exists."""
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, FILE_MODE)
        except OSError as exc:
            raise _os_error("create", path, exc) from exc

    def replace_atomically(self, path: str, data: bytes) -> None:
        """Replace `path` with `data`: a crash leaves the old file or the new
        one, never a mix (temp file, fsync, rename, fsync directory). A
        symbolic link at `path` is replaced, never followed."""
        temp = self._temp_beside(path, data)
        try:
            self.rename(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        self.sync_dir(os.path.dirname(path))

    def rename(self, source: str, target: str) -> None:
        """Rename `source` over `target` (``os.replace``: atomic, a link at
        `target` is replaced, never followed)."""
        try:
            os.replace(source, target)
        except OSError as exc:
            raise StorageError(f"rename {source} to {target}: {exc.strerror or exc}") from exc

    def link(self, source: str, target: str) -> bool:
        """Hard-link `source` as `target`; False when `target` exists."""
        try:
            os.link(source, target)
        except FileExistsError:
            return False
        except OSError as exc:
            raise StorageError(f"create {target}: {exc.strerror or exc}") from exc
        return True

    def create_atomically(self, path: str, data: bytes) -> bool:
        """Create `path` holding `data` unless it exists; never a partial file.

        Returns False when another process created it first (its file wins).
        """
        temp = self._temp_beside(path, data)
        try:
            created = self.link(temp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        if created:
            self.sync_dir(os.path.dirname(path))
        return created

    def keep_copy(self, fd: int, path: str) -> str:
        """Copy the open file `path` to a new ``<path>.damaged-<n>`` (0600,
        fsynced; `n` the first unused number) and return the copy's name."""
        data = self.read_at(fd, 0, self.size(fd, path), path)
        n = 1
        while True:
            name = f"{path}.damaged-{n}"
            try:
                out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, FILE_MODE)
            except FileExistsError:
                n += 1
                continue
            except OSError as exc:
                raise _os_error("create", name, exc) from exc
            break
        try:
            self.write_at(out, data, 0, name)
            self.sync(out, name)
        finally:
            self.close(out)
        self.sync_dir(os.path.dirname(path))
        return name

    def refuse_link(self, path: str, action: str = "use") -> None:
        """Raise `StorageError` if `path` is a symbolic link (a missing path is fine)."""
        try:
            is_link = stat.S_ISLNK(os.lstat(path).st_mode)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _os_error("stat", path, exc) from exc
        if is_link:
            raise _os_error(action, path, OSError(errno.ELOOP, os.strerror(errno.ELOOP)))

    def make_dirs(self, path: str) -> None:
        """Create directory `path` and any missing parents, owner-only (0700);
        each new directory's entry is fsynced into its parent. A symbolic
        link at `path` is refused (`StorageError`), never followed."""
        self.refuse_link(path)  # a planted link must not move writes elsewhere
        missing: list[str] = []
        current = os.path.abspath(path)
        while not os.path.isdir(current):
            missing.append(current)
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
        for directory in reversed(missing):
            try:
                os.mkdir(directory, DIR_MODE)
            except FileExistsError as exc:
                if not os.path.isdir(directory):
                    raise StorageError(
                        f"create directory {directory}: a file is in the way"
                    ) from exc
                continue  # another process made it; it made it durable too
            except OSError as exc:
                raise _os_error("create directory", directory, exc) from exc
            self.sync_dir(os.path.dirname(directory))

    def list_dir(self, path: str) -> list[str]:
        """The names in directory `path` (none when it is missing); a symbolic
        link there is refused."""
        self.refuse_link(path)
        try:
            return os.listdir(path)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _os_error("list directory", path, exc) from exc

    def remove(self, path: str) -> None:
        """Remove file `path` (already missing is fine)."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _os_error("remove", path, exc) from exc

    def is_at(self, fd: int, path: str) -> bool:
        """Whether the open file `fd` is still the file at `path` (not
        renamed away or replaced)."""
        try:
            mine, there = os.fstat(fd), os.lstat(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _os_error("stat", path, exc) from exc
        return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)

    @contextlib.contextmanager
    def lock_file(self, path: str) -> Iterator[None]:
        """Hold an exclusive ``flock`` on the lock file `path` (created 0600 and
        fsynced into its directory if missing; a symbolic link is refused)."""
        created = not os.path.lexists(path)
        fd = self.open_rw(path, create=True)
        try:
            if created:
                self.sync_dir(os.path.dirname(path))
            with self.locked(fd, path):
                yield
        finally:
            self.close(fd)

    def read_capped(self, path: str, cap: int) -> bytes:
        """Read a whole file, refusing (before reading) one over `cap` bytes."""
        fd = self.open_ro(path)
        try:
            size = self.size(fd, path)
            if size > cap:
                raise ArtifactTooLargeError(f"file is {size} bytes, max is {cap}", path=path)
            return self.read_at(fd, 0, size, path)
        finally:
            self.close(fd)


DEFAULT_FS = FileSystem()
