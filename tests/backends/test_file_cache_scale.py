"""The evidence cache at scale (issue 12): a cache of many one-binding
records opens with one read per chunk (one read when it fits in one) and no
system call per record; after open, ``get`` costs one size check and no read
or lock, whatever the cache holds, and ``put`` one lock and one write. Counted
through the `FileSystem` seam (calls, never time)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from durability import EffectOutcome, FileEvidenceOutcomeCache, SyncPolicy
from durability.backends import logread
from durability.fileio import FileSystem
from tests.helpers import binding

BINDINGS = 3000


class CountingFS(FileSystem):
    """Counts the calls the engine makes through the seam."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def reset(self) -> None:
        self.calls.clear()

    def size(self, fd: int, path: str) -> int:
        self.calls["size"] += 1
        return super().size(fd, path)

    def read_at(self, fd: int, offset: int, length: int, path: str) -> bytes:
        self.calls["read_at"] += 1
        return super().read_at(fd, offset, length, path)

    def write_at(self, fd: int, data: bytes, offset: int, path: str) -> None:
        self.calls["write_at"] += 1
        super().write_at(fd, data, offset, path)

    def sync(self, fd: int, path: str) -> None:
        self.calls["sync"] += 1
        super().sync(fd, path)

    def locked(self, fd: int, path: str, *, exclusive: bool = True) -> Any:
        self.calls["locked"] += 1
        return super().locked(fd, path, exclusive=exclusive)


def big_cache(path: Path, n: int = BINDINGS) -> Path:
    """A cache of `n` records, one binding each (as `n` separate puts write it)."""
    with FileEvidenceOutcomeCache(path, sync=SyncPolicy.NONE) as cache:
        for i in range(n):
            cache.put(binding(f"e{i}"))
        cache.sync()
    return path


def test_a_cache_that_fits_in_one_chunk_opens_with_one_read(tmp_path: Path) -> None:
    path = big_cache(tmp_path / "cache.log")
    assert path.stat().st_size < logread.READ_CHUNK_BYTES
    fs = CountingFS()
    cache = FileEvidenceOutcomeCache(path, fs=fs)
    assert fs.calls["read_at"] == 1
    assert fs.calls["size"] + fs.calls["locked"] <= 4  # a constant, not one per record
    assert cache.get(f"e{BINDINGS - 1}") == binding(f"e{BINDINGS - 1}")


def test_a_bigger_cache_opens_with_one_read_per_chunk_never_one_per_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = big_cache(tmp_path / "cache.log")
    size = path.stat().st_size
    monkeypatch.setattr(logread, "READ_CHUNK_BYTES", 64 * 1024)
    fs = CountingFS()
    cache = FileEvidenceOutcomeCache(path, fs=fs)
    assert fs.calls["read_at"] == math.ceil(size / (64 * 1024)) < BINDINGS / 10
    assert len(cache.load().entries) == BINDINGS


@pytest.mark.parametrize("n", [10, BINDINGS])
def test_get_after_open_is_one_size_check_and_no_read_or_lock(tmp_path: Path, n: int) -> None:
    path = big_cache(tmp_path / "cache.log", n)
    fs = CountingFS()
    cache = FileEvidenceOutcomeCache(path, fs=fs)
    fs.reset()
    for i in range(0, n, max(1, n // 100)):
        assert cache.get(f"e{i}") == binding(f"e{i}")
    assert cache.get("missing") is None
    gets = len(range(0, n, max(1, n // 100))) + 1
    assert fs.calls == Counter({"size": gets})


def test_put_after_open_is_one_lock_one_write_one_sync(tmp_path: Path) -> None:
    path = big_cache(tmp_path / "cache.log")
    fs = CountingFS()
    cache = FileEvidenceOutcomeCache(path, fs=fs)
    fs.reset()
    cache.put(binding("new", EffectOutcome.success(1)))
    assert fs.calls["locked"] == 1 and fs.calls["write_at"] == 1 and fs.calls["sync"] == 1
    assert fs.calls["read_at"] == 0
    assert cache.get("new") == binding("new", EffectOutcome.success(1))


def test_get_sees_another_handles_binding_and_replacement_once_durable(tmp_path: Path) -> None:
    # a bound id is not frozen: `put` replaces, so every get checks for appends
    path = big_cache(tmp_path / "cache.log", 10)
    reader, writer = FileEvidenceOutcomeCache(path), FileEvidenceOutcomeCache(path)
    assert reader.get("e1") == binding("e1")
    writer.put(binding("e1", EffectOutcome.success("replaced")))
    writer.put(binding("fresh"))
    assert reader.get("e1") == binding("e1", EffectOutcome.success("replaced"))
    assert reader.get("fresh") == binding("fresh")
