"""The engine of a segmented file WAL (``specs/segments.md``): a `LogEngine`
whose file at ``PATH`` is the active segment, sealed and moved to
``PATH.seg/`` once it passes `segment_bytes`, the next one starting empty.

Its rules, on top of ``backends/log.py``'s:

* opening (and rebuilding after a failed write) reads where the segments
  are (their indexes' headers) and replays only the active segment;
* a rollover runs right after the append that passed the threshold, under
  the same thread lock and exclusive ``flock``, before any waiter is told
  its append is done: the seal record is written and synced, then
  `finish_rollover` writes the index, moves the file and creates the next;
  a crash or a failed step leaves a sealed segment at ``PATH``, which the
  next writer (this instance once reopened, or any other) finishes;
* an instance that meets a seal record (another process rolled over) or
  finds its file moved reopens ``PATH`` before going on; read-only, a
  sealed ``PATH`` not moved yet is read as the active segment.
* sealed segments are read outside the locks, through descriptors opened
  under the shared lock (`sealed`), so a concurrent prune cannot pull a
  file away mid-read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import TypeVar

from ..errors import StorageError
from ..fileio import FileSystem
from .group import Ticket
from .log import LogEngine
from .logstate import WalState
from .modes import RecoveryMode, SyncPolicy
from .segindex import SegmentIndex
from .segments import Segment, finish_rollover, open_sealed, read_layout, seal_record

__all__ = ["SegmentedWalEngine"]

logger = logging.getLogger("durability")
T = TypeVar("T")


class SegmentedWalEngine(LogEngine[WalState]):
    """A WAL's `LogEngine` over segment files (see the module rules)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        segment_bytes: int,
        sync: SyncPolicy,
        recovery: RecoveryMode,
        fs: FileSystem,
        read_only: bool = False,
    ) -> None:
        if not isinstance(segment_bytes, int) or isinstance(segment_bytes, bool):
            raise TypeError(f"segment_bytes must be an int, not {segment_bytes!r}")
        if segment_bytes < 1:
            raise ValueError(f"segment_bytes must be at least 1, got {segment_bytes}")
        self.segment_bytes = segment_bytes
        self._moved = False
        super().__init__(path, WalState, sync=sync, recovery=recovery, fs=fs, read_only=read_only)

    def _open(self) -> None:
        earlier: WalState | None = getattr(self, "state", None)
        while True:
            self._moved = False
            super()._open()
            if self._fd is None:  # read-only and no active file: the sealed ones
                self.state.layout = read_layout(self._fs, self.path)
                break
            if not self._moved:
                break
            self._release()
        if earlier is not None and earlier.seal is not None:
            self.state.adopt(earlier, earlier.layout.active)

    def _catch_up(self, *, exclusive: bool) -> None:
        assert self._fd is not None
        if self._end == 0:  # a fresh state: where this file sits among the segments
            # (a file moved away since it was opened is sealed: its seal record says so)
            self.state.layout = read_layout(self._fs, self.path)
            self.state.name = self.path
        super()._catch_up(exclusive=exclusive)
        if self.state.seal is None or self._moved:
            return
        if not self._fs.is_at(self._fd, self.path):  # sealed and moved by another
            self._moved = True
        elif exclusive and not self.read_only:  # a rollover left unfinished: finish it
            finish_rollover(self._fs, self.path, self._fd, self.state, self._next_seq)
            self._moved = True

    def _move_on(self) -> None:
        """Drop the sealed file; the next use reopens ``PATH``."""
        self._release()
        self._moved, self._stale = False, True

    def _read_locked(self, view: Callable[[WalState], T]) -> T:
        while True:
            fd = self._ready(writing=False)
            if fd is not None and not self._moved:
                if self.state.seal is not None and not self._fs.is_at(fd, self.path):
                    self._moved = True
                elif self._fs.size(fd, self.path) != self._scanned:
                    with self._fs.locked(fd, self.path, exclusive=False):
                        self._catch_up(exclusive=False)
            if not self._moved:
                return view(self.state)
            self._move_on()

    def _write_locked(self, tickets: list[Ticket]) -> None:
        while True:
            fd = self._ready(writing=True)
            assert fd is not None
            with self._fs.locked(fd, self.path, exclusive=True):
                self._catch_up(exclusive=True)
                appended = not self._moved
                if appended:
                    self._append(fd, tickets)
                    if self._poisoned is None and self._end >= self.segment_bytes:
                        self._roll(fd)
            if self._moved:
                self._move_on()
            if appended:
                return

    def _roll(self, fd: int) -> None:
        """Seal the active segment (its records are durable) and start the
        next. A failure poisons the engine; reopening finishes the rollover."""
        record, plain = seal_record(self.state, self._next_seq)
        try:
            self._fs.write_at(fd, record, self._end, self.path)
            self._fs.sync(fd, self.path)
        except StorageError as exc:
            self._poison(exc, truncate_to=self._end)
            logger.warning("sealing %s failed: %s", self.path, exc)
            return
        self.state.seal = plain
        self._end = self._scanned = self._end + len(record)
        self._next_seq += 1
        try:
            finish_rollover(self._fs, self.path, fd, self.state, self._next_seq)
        except StorageError as exc:
            self._poison(exc, truncate_to=None)
            logger.warning("rollover of %s left for the next writer: %s", self.path, exc)
            return
        self._moved = True

    @property
    def fs(self) -> FileSystem:
        """The I/O seam this engine uses."""
        return self._fs

    def exclusive(self, work: Callable[[FileSystem, WalState], T]) -> T:
        """Run ``work(fs, state)`` under the thread lock and the exclusive
        lock, caught up (what pruning needs); then read the layout again."""
        with self._lock:
            while True:
                fd = self._ready(writing=True)
                assert fd is not None
                with self._fs.locked(fd, self.path, exclusive=True):
                    self._catch_up(exclusive=True)
                    if not self._moved:
                        result = work(self._fs, self.state)
                        self.state.layout = read_layout(self._fs, self.path)
                        return result
                self._move_on()

    def sealed(
        self,
        pick: Callable[[WalState], Sequence[SegmentIndex]],
        view: Callable[[WalState], T],
    ) -> tuple[T, list[Segment]]:
        """Catch up, then, under the shared lock, read the segment layout
        again (another process may have pruned) and return ``view(state)``
        and the sealed segments ``pick(state)`` chooses, opened (the caller
        closes them)."""
        with self._lock:
            self._read_locked(lambda state: None)
            fd = self._fd
            # a single file gains segments by a seal only, and a prune only removes some
            if not self.state.layout.history or not pick(self.state):
                return view(self.state), []
            if fd is None:
                return self._pick(pick, view)
            with self._fs.locked(fd, self.path, exclusive=False):  # no prune in between
                return self._pick(pick, view)

    def _pick(
        self,
        pick: Callable[[WalState], Sequence[SegmentIndex]],
        view: Callable[[WalState], T],
    ) -> tuple[T, list[Segment]]:
        layout = read_layout(self._fs, self.path, self.state.layout)
        if layout.active == self.state.layout.active:
            self.state.layout = layout
        return view(self.state), open_sealed(self._fs, self.path, pick(self.state))
