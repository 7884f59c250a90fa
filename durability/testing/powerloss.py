"""Power loss for crash-safety tests: a `FileSystem` (the seam every file
backend takes as ``fs=``) that remembers what each sync made durable, so a
test can cut the power and reopen.

The model keeps a file's data as of its last data sync (by inode, so a file
created atomically, linked or renamed into place, holds what its temporary
file synced); directory entries are taken as durable (the toolkit syncs a
directory before acknowledging a new file in it).

    >>> import os, tempfile
    >>> from durability import AgreementLevel, FileAgreementWal, SyncPolicy, VisibilityGateCrossing
    >>> def gate(tick):
    ...     return VisibilityGateCrossing(operation_id="op", downstream_coroutine_id="c",
    ...                                   gate_level=AgreementLevel.NONE, tick=tick)
    >>> path = os.path.join(tempfile.mkdtemp(), "wal.log")
    >>> fs = PowerLossFileSystem()
    >>> wal = FileAgreementWal(path, fs=fs, sync=SyncPolicy.NONE)
    >>> _ = wal.append(gate(1)); wal.sync(); _ = wal.append(gate(2))  # 2 is never synced
    >>> _ = fs.lose_power_everywhere()
    >>> [entry.tick for entry in FileAgreementWal(path).load().entries]
    [1]
"""

from __future__ import annotations

import enum
import os
import random
import threading

from ..fileio import FileSystem

__all__ = ["PowerLossFileSystem", "Unsynced"]


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
    sync covered, so a test can cut the power (`lose_power`, or
    `lose_power_everywhere` for every file written through it) and reopen.

    Only data syncs count: a file created atomically (temporary file, sync,
    link) holds its synced contents from the start.
    """

    def __init__(self) -> None:
        self._synced: dict[tuple[int, int], bytes] = {}
        self._written: dict[str, None] = {}  # paths written through this seam, in order
        self._guard = threading.Lock()

    def sync(self, fd: int, path: str) -> None:
        super().sync(fd, path)
        st = os.fstat(fd)
        data = super().read_at(fd, 0, st.st_size, path)
        with self._guard:
            self._synced[(st.st_dev, st.st_ino)] = data

    def write_at(self, fd: int, data: bytes, offset: int, path: str) -> None:
        with self._guard:
            self._written[path] = None
        super().write_at(fd, data, offset, path)

    def truncate(self, fd: int, length: int, path: str) -> None:
        with self._guard:
            self._written[path] = None
        super().truncate(fd, length, path)

    def rename(self, source: str, target: str) -> None:
        with self._guard:
            self._written[target] = None
        super().rename(source, target)

    def link(self, source: str, target: str) -> bool:
        with self._guard:
            self._written[target] = None
        return super().link(source, target)

    @property
    def written(self) -> tuple[str, ...]:
        """Every path written, truncated, renamed or linked to through this
        seam (temporary files included, even once gone), in first-use order."""
        with self._guard:
            return tuple(self._written)

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

    def lose_power_everywhere(
        self, unsynced: Unsynced = Unsynced.DROP, *, rng: random.Random | None = None
    ) -> dict[str, bytes]:
        """`lose_power` on every file written through this seam that still
        exists (a regular file, not a link); returns what each now holds."""
        rng = rng or random.Random()
        left: dict[str, bytes] = {}
        for path in self.written:
            if os.path.isfile(path) and not os.path.islink(path):
                left[path] = self.lose_power(path, unsynced, rng=rng)
        return left
