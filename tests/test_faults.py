"""`FaultyFileSystem`'s faults (durability/testing/faults.py): a failed fsync,
a short write, a bit flip, each at the call chosen by operation, file and
count, and damage at rest (a flipped bit, a cut file), seeded so a failing
case replays. Every file backend takes it as ``fs=``.

The full sweep of faults at every call site of every operation is
``tests/reliability/test_fault_injection.py``."""

from __future__ import annotations

import doctest
import errno
from pathlib import Path

import pytest

import durability.testing.crashtest
import durability.testing.powerloss
from durability import (
    DecodeError,
    FileAgreementWal,
    FileEvidenceOutcomeCache,
    LogPoisonedError,
    StateDirectory,
    StorageError,
    TornTailWarning,
    open_cache,
    open_wal,
)
from durability.testing import Fault, FaultyFileSystem
from tests.helpers import L, binding, esc


def grown(path: Path, before: bytes) -> bytes:
    data = path.read_bytes()
    assert data.startswith(before)
    return data[len(before) :]


def test_the_next_fsync_fails_and_poisons_the_log(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    wal = FileAgreementWal(tmp_path / "wal.log", fs=fs)
    fs.inject(op="sync", error=errno.EIO)
    with pytest.raises(StorageError, match=r"sync .*wal\.log: Input/output error"):
        wal.append(esc("op", L.NONE, L.PROVISIONAL, 1))
    assert [call.op for call in fs.faults] == ["sync"]
    with pytest.raises(LogPoisonedError):
        wal.append(esc("op", L.NONE, L.PROVISIONAL, 1))


def test_nth_and_path_pick_the_call(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    cache = FileEvidenceOutcomeCache(tmp_path / "evidence.log", fs=fs)
    fs.inject(op="write", nth=2, path="evidence.log", error=errno.ENOSPC)
    cache.put(binding("e1"))  # the first write: fine
    with pytest.raises(StorageError, match="No space left on device"):
        cache.put(binding("e2"))
    assert [(call.op, Path(call.path).name) for call in fs.faults] == [("write", "evidence.log")]
    assert [e.evidence_id for e in FileEvidenceOutcomeCache(cache.path).load().entries] == ["e1"]


def test_a_path_filter_ignores_other_files(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    with StateDirectory(tmp_path / "state", fs=fs) as state:
        fs.inject(op="write", path="evidence.log", sticky=True)
        state.wal.append(esc("op", L.NONE, L.PROVISIONAL, 1))  # wal.log: untouched
        with pytest.raises(StorageError):
            state.cache.put(binding("e1"))


def test_sticky_fails_every_matching_call_from_then_on(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    fs.inject(op="sync", sticky=True)
    for name in ("a.log", "b.log"):
        with pytest.raises(StorageError):
            FileAgreementWal(tmp_path / name, fs=fs)
    assert [call.op for call in fs.faults] == ["sync", "sync"]
    fs.heal()
    FileAgreementWal(tmp_path / "c.log", fs=fs)


def short_write(path: Path, fs: FaultyFileSystem, **inject: object) -> bytes:
    """What a 100-byte write through `fs`, armed with a short write, left in `path`."""
    fd = fs.open_rw(str(path), create=True)
    try:
        fs.inject(Fault.SHORT_WRITE, op="write", error=errno.ENOSPC, **inject)  # type: ignore[arg-type]
        with pytest.raises(StorageError, match=r"write .* at offset 0: No space left on device"):
            fs.write_at(fd, bytes(range(100)), 0, str(path))
    finally:
        fs.close(fd)
    return path.read_bytes()


def test_a_short_write_stores_the_chosen_prefix_and_fails(tmp_path: Path) -> None:
    assert short_write(tmp_path / "f", FaultyFileSystem(), keep=10) == bytes(range(10))


def test_a_random_short_write_is_seeded(tmp_path: Path) -> None:
    kept = [
        len(short_write(tmp_path / f"f{n}", FaultyFileSystem(seed=s)))
        for n, s in enumerate((1, 1, 2, 3, 4))
    ]
    assert kept[0] == kept[1]  # the same seed, the same cut
    assert all(0 <= n < 100 for n in kept)  # fewer bytes than the write
    assert len(set(kept[1:])) > 1


def test_a_short_append_leaves_the_log_as_it_was(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    wal = FileAgreementWal(tmp_path / "wal.log", fs=fs)
    before = (tmp_path / "wal.log").read_bytes()
    fs.inject(Fault.SHORT_WRITE, op="write", keep=10)
    with pytest.raises(StorageError, match="Input/output error"):
        wal.append(esc("op", L.NONE, L.PROVISIONAL, 1))
    assert [call.op for call in fs.faults] == ["write"]
    with FileAgreementWal(tmp_path / "wal.log") as reopened:
        assert reopened.load().entries == ()
    assert (tmp_path / "wal.log").read_bytes() == before


def flipped_append(directory: Path, fs: FaultyFileSystem, **inject: object) -> tuple[bytes, bytes]:
    """The record an append wrote with a bit flip armed in `fs` (`inject`:
    its options), and the one a clean append writes."""
    directory.mkdir()
    clean_wal = FileAgreementWal(directory / "clean.log")
    wal = FileAgreementWal(directory / "wal.log", fs=fs)
    before = Path(wal.path).read_bytes()
    fs.inject(Fault.BIT_FLIP, **inject)  # type: ignore[arg-type]
    wal.append(esc("op", L.NONE, L.PROVISIONAL, 1))  # reported durable
    clean_wal.append(esc("op", L.NONE, L.PROVISIONAL, 1))
    return grown(Path(wal.path), before), grown(Path(clean_wal.path), before)


def differing_bits(a: bytes, b: bytes) -> list[int]:
    assert len(a) == len(b)
    return [
        i * 8 + bit
        for i, (x, y) in enumerate(zip(a, b, strict=True))
        for bit in range(8)
        if (x ^ y) >> bit & 1
    ]


def test_a_bit_flip_lands_silently_one_bit_off(tmp_path: Path) -> None:
    written, clean = flipped_append(tmp_path / "chosen", FaultyFileSystem(), bit=200)
    assert differing_bits(written, clean) == [200]
    picked = [
        differing_bits(*flipped_append(tmp_path / f"random-{n}", FaultyFileSystem(seed=seed)))
        for n, seed in enumerate((5, 5, 6, 7))
    ]
    assert picked[0] == picked[1] and all(len(bits) == 1 for bits in picked)
    assert len({bits[0] for bits in picked}) > 1


def test_a_bit_flip_is_caught_when_read(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    wal = FileAgreementWal(tmp_path / "wal.log", fs=fs)
    fs.inject(Fault.BIT_FLIP, bit=8 * 24 + 3)  # inside the first record's payload
    wal.append(esc("op", L.NONE, L.PROVISIONAL, 1))
    wal.append(esc("op", L.PROVISIONAL, L.SOFT_SAFE, 2))
    with pytest.raises(DecodeError, match="payload checksum mismatch in record 1"):
        FileAgreementWal(wal.path).load()


def test_flip_bit_at_rest_chosen_and_seeded(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(bytes(64))
    assert FaultyFileSystem().flip_bit(path, offset=5, bit=2) == (5, 2)
    assert path.read_bytes() == bytes(5) + b"\x04" + bytes(58)
    first = FaultyFileSystem(seed=9).flip_bit(path)
    again = FaultyFileSystem(seed=9).flip_bit(path)  # flips it back
    assert first == again and path.read_bytes() == bytes(5) + b"\x04" + bytes(58)
    with pytest.raises(ValueError, match="no bit 0 at offset 64 in 64 bytes"):
        FaultyFileSystem().flip_bit(path, offset=64, bit=0)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError, match="empty: no bit to flip"):
        FaultyFileSystem().flip_bit(tmp_path / "empty")


def test_truncate_file_at_a_chosen_or_seeded_point(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(bytes(range(100)))
    assert FaultyFileSystem().truncate_file(path, 40) == 40
    assert path.read_bytes() == bytes(range(40))
    cut = FaultyFileSystem(seed=3).truncate_file(path)
    assert 0 <= cut < 40 and path.read_bytes() == bytes(range(cut))
    path.write_bytes(bytes(range(40)))
    assert FaultyFileSystem(seed=3).truncate_file(path) == cut
    with pytest.raises(ValueError, match="cannot cut it to 99"):
        FaultyFileSystem().truncate_file(path, 99)


def test_a_cut_log_reopens_as_a_prefix(tmp_path: Path) -> None:
    fs = FaultyFileSystem(seed=11)
    path = tmp_path / "evidence.log"
    ends = []
    with FileEvidenceOutcomeCache(path, fs=fs) as cache:
        for n in range(5):
            cache.put(binding(f"e{n}"))
            ends.append(path.stat().st_size)
    fs.truncate_file(path, ends[2] + 17)  # inside the 4th record
    with pytest.warns(TornTailWarning), FileEvidenceOutcomeCache(path) as reopened:
        assert [e.evidence_id for e in reopened.load().entries] == ["e0", "e1", "e2"]
    cut = fs.truncate_file(path)  # somewhere before: still a prefix
    with FileEvidenceOutcomeCache(path, read_only=True) as reader:
        ids = [e.evidence_id for e in reader.load().entries]
    assert ids == [f"e{n}" for n in range(sum(end <= cut for end in ends))]


def test_injection_mistakes_are_refused() -> None:
    fs = FaultyFileSystem()
    with pytest.raises(ValueError, match="counts from 1"):
        fs.inject(nth=0)
    with pytest.raises(ValueError, match="a bit flip hits a write, not a sync"):
        fs.inject(Fault.BIT_FLIP, op="sync")


def test_every_file_backend_opener_takes_the_seam(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    open_wal(str(tmp_path / "w.log"), fs=fs).append(esc("op", L.NONE, L.PROVISIONAL, 1))
    open_cache(str(tmp_path / "c.log"), fs=fs).put(binding("e"))
    written = {Path(call.path).name for call in fs.calls if call.op == "write"}
    assert {"w.log", "c.log"} <= written


@pytest.mark.parametrize(
    "module",
    [durability.testing.faults, durability.testing.powerloss, durability.testing.crashtest],
    ids=lambda module: module.__name__,
)
def test_module_examples_run(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0
