"""A small log of each kind, built write by write, and what each of its
prefixes holds: the fixture of the power-loss and corruption suites."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from durability import FinalizationOutcome
from durability.backends.file import FileAgreementWal, FileEvidenceOutcomeCache
from durability.fileio import FileSystem
from durability.framing import scan_log
from tests.helpers import FAILED, L, binding, esc, ev, fin, gate


class SmallLog:
    """A log built write by write. Record 0 is the base's checksum, record k
    (k >= 1) the k-th write; `starts`/`ends` are their offsets and `items[k]`
    what the log holds after k writes."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path, self.kind = path, kind
        ends: list[int] = []
        self.items: list[list[Any]] = []
        log = self.open()
        for write in [None, *WRITES[kind]]:
            if write is not None:
                write(log)
            ends.append(self.path.stat().st_size)
            self.items.append(list(log.load().entries))
        log.close()
        self.data = path.read_bytes()
        self.base_end = scan_log(self.data, name="small").base_end
        self.ends = ends
        self.starts = [self.base_end, *ends[:-1]]

    def open(self, **options: Any) -> Any:
        make = FileAgreementWal if self.kind == "wal" else FileEvidenceOutcomeCache
        return make(self.path, **options)

    def first_damaged(self, damaged: bytes) -> int | None:
        """The first record whose bytes `damaged` does not hold intact
        (``None`` when the records it holds are whole and nothing follows)."""
        for j, (start, end) in enumerate(zip(self.starts, self.ends, strict=True)):
            if start >= len(damaged):
                return None
            if damaged[start:end] != self.data[start:end]:
                return j
        return None


WRITES: dict[str, list[Callable[[Any], None]]] = {
    "wal": [
        lambda w: w.append(esc("op", L.NONE, L.PROVISIONAL, 1, "e1")),
        lambda w: w.append_batch(
            [ev("op", "e2", L.SOFT_SAFE, 2), esc("op", L.PROVISIONAL, L.SOFT_SAFE, 2, "e2")]
        ),
        lambda w: w.append(gate("op", L.SOFT_SAFE, 3)),
        lambda w: w.append(fin("op", FinalizationOutcome.FINALIZED, 4)),
        lambda w: w.append(gate("other", L.NONE, 5)),
    ],
    "cache": [
        lambda c: c.put(binding("e1")),
        lambda c: c.put(binding("e2", FAILED)),
        lambda c: c.put(binding("e1")),  # rebinding moves it last
        lambda c: c.put_if_absent(binding("e3")),
    ],
}


class NoSync(FileSystem):
    """Repairs without waiting for the disk: what is checked here is what a
    reader keeps, and thousands of repairs would spend minutes in fsync."""

    def sync(self, fd: int, path: str) -> None:
        pass

    def sync_dir(self, directory: str) -> None:
        pass


NO_SYNC = NoSync()


def overwrite(path: Path, data: bytes) -> None:
    """Make `path` hold `data`, in place: no truncation to zero first (ext4
    flushes a file truncated to zero when it is closed, which would make
    thousands of rewrites wait for the disk)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
