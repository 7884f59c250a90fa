"""Read-only opening (API.md §9): a log or state directory opened with
``read_only=True`` never creates, writes, truncates or repairs anything, and
works for a user who may only read the directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from durability import DecodeError, StorageError
from durability.backends.file import (
    FileAgreementWal,
    FileEvidenceOutcomeCache,
    RecoveryMode,
)
from durability.store import StateDirectory
from tests.helpers import L, binding, esc, gate

NOBODY = 65534


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under `root` with its mode and (for files) bytes."""
    found: dict[str, tuple[int, bytes | None]] = {}
    for path in sorted(root.rglob("*")):
        data = path.read_bytes() if path.is_file() else None
        found[str(path.relative_to(root))] = (path.stat().st_mode, data)
    return found


def torn_wal(path: Path) -> int:
    """A WAL of two appends with half of a third record after them; returns
    the size of the good part."""
    wal = FileAgreementWal(path)
    wal.append(esc("op", L.NONE, L.SOFT_SAFE, 1))
    wal.append(gate("op", L.SOFT_SAFE, 2))
    wal.close()
    good = path.stat().st_size
    scratch = path.with_suffix(".scratch")
    shutil.copy(path, scratch)
    FileAgreementWal(scratch).append(gate("op", L.NONE, 3))
    extra = scratch.read_bytes()[good:]
    with open(path, "ab") as f:
        f.write(extra[: len(extra) // 2])
    return good


def test_read_only_wal_reports_a_torn_tail_without_cutting_it(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    good = torn_wal(path)
    before = path.read_bytes()
    wal = FileAgreementWal(path, read_only=True)
    assert len(wal.load().entries) == 2
    assert wal.torn_tail is not None and wal.torn_tail.offset == good
    assert wal.torn_tail.dropped == len(before) - good
    assert path.read_bytes() == before and wal.read_only


def test_read_only_wal_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    FileAgreementWal(path).append(esc("op", L.NONE, L.SOFT_SAFE, 1))
    before = path.read_bytes()
    wal = FileAgreementWal(path, read_only=True)
    with pytest.raises(StorageError, match="read-only"):
        wal.append(gate("op", L.NONE, 2))
    with pytest.raises(StorageError, match="read-only"):
        FileEvidenceOutcomeCache(tmp_path / "c.log", read_only=True).put(binding("e"))
    assert path.read_bytes() == before


def test_read_only_missing_log_is_empty_and_not_created(tmp_path: Path) -> None:
    wal = FileAgreementWal(tmp_path / "wal.log", read_only=True)
    assert wal.load().entries == ()
    assert not (tmp_path / "wal.log").exists()
    FileAgreementWal(tmp_path / "wal.log").append(gate("op", L.NONE, 1))
    assert len(wal.load().entries) == 1  # it appeared: now it is read


def test_read_only_wal_follows_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    writer = FileAgreementWal(path)
    reader = FileAgreementWal(path, read_only=True)
    writer.append(gate("op", L.NONE, 1))
    assert reader.read_since(0) == [gate("op", L.NONE, 1)]


def test_read_only_damage_fails_closed_in_every_mode(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path)
    wal.append(gate("op", L.NONE, 1))
    first_end = path.stat().st_size
    wal.append(gate("op", L.NONE, 2))
    data = bytearray(path.read_bytes())
    data[first_end - 5] ^= 0xFF  # inside the first record, with a record after it
    path.write_bytes(bytes(data))
    for mode in RecoveryMode:
        with pytest.raises(DecodeError, match="byte offset"):
            FileAgreementWal(path, read_only=True, recovery=mode)
        assert path.read_bytes() == bytes(data)
        assert not list(tmp_path.glob("*.damaged-*"))


def test_read_only_state_directory_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        StateDirectory(tmp_path / "missing", read_only=True)
    assert not (tmp_path / "missing").exists()
    store = StateDirectory(tmp_path, read_only=True)
    assert store.plan_recovery().decisions == ()
    with pytest.raises(StorageError, match="read-only"):
        store.checkpoint(1, b"state")
    assert list(tmp_path.iterdir()) == []


def test_read_only_state_directory_reports_torn_tails_it_would_cut(tmp_path: Path) -> None:
    good = torn_wal(tmp_path / "wal.log")
    before = snapshot(tmp_path)
    store = StateDirectory(tmp_path, read_only=True)
    repair = store.repairs["wal.log"]
    assert repair is not None and repair.offset == good
    assert [d.operation_id for d in store.plan_recovery().decisions] == ["op"]
    assert snapshot(tmp_path) == before


class ReaderOnly:
    """A directory tree, and a way to run a function as a user who may read
    it but not write it: as root, in a forked child that drops to uid/gid
    65534; otherwise, with the tree made read-only."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="durability-ro-"))
        os.chmod(self.root, 0o755)

    def freeze(self) -> None:
        """Make the whole tree read-only (readable by everyone)."""
        for path in self.root.rglob("*"):
            os.chmod(path, 0o555 if path.is_dir() else 0o444)
        os.chmod(self.root, 0o555)

    def run(self, fn: Callable[[Path], Any]) -> str:
        """`fn(root)` as a reader of the frozen tree; returns its result's repr."""
        if os.geteuid() != 0:
            return repr(fn(self.root))
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: drop privileges, run, report
            status = 1
            try:
                os.close(read)
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                os.write(write, repr(fn(self.root)).encode())
                status = 0
            except BaseException as exc:
                os.write(write, f"{type(exc).__name__}: {exc}".encode())
            finally:
                os._exit(status)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            report = pipe.read().decode()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, report
        return report

    def remove(self) -> None:
        for path in [self.root, *self.root.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        shutil.rmtree(self.root)


@pytest.fixture
def reader_only() -> Iterator[ReaderOnly]:
    tree = ReaderOnly()
    yield tree
    tree.remove()


def _plan_decisions(root: Path) -> list[str]:
    with StateDirectory(root / "state", read_only=True) as store:
        return [d.operation_id for d in store.plan_recovery().decisions]


def test_a_user_who_may_only_read_can_plan(reader_only: ReaderOnly) -> None:
    state = reader_only.root / "state"
    with StateDirectory(state) as store:
        store.wal.append(esc("op", L.NONE, L.SOFT_SAFE, 1))
        store.checkpoint(0, b"zero")
    torn_wal(state / "wal.log.torn")  # an unrelated torn log beside them stays as it is
    reader_only.freeze()
    before = snapshot(reader_only.root)
    assert reader_only.run(_plan_decisions) == "['op']"
    assert snapshot(reader_only.root) == before
