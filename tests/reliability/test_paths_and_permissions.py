"""Permissions and paths (issue 13, suite 7), beyond ``tests/test_fileio.py``
(owner-only modes under the default umask, links at log, lock and
checkpoint paths): modes under a permissive umask for every kind of file the
toolkit makes, links planted where a repair copies a damaged log or at the
checkpoints directory, hard links at the lock path, FIFOs and directories at
a log path, and a whole session that must write nothing outside its state
directory."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from durability import (
    AgreementWalArtifact,
    DurabilityError,
    EffectOutcome,
    EffectRequest,
    PersistedDurabilityArtifact,
    StateDirectory,
    StorageError,
    WalSyncRequest,
)
from durability.backends.file import FileAgreementWal, FileEvidenceOutcomeCache, RecoveryMode
from durability.fileio import FileSystem
from tests.helpers import L, binding, esc, gate


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def damaged_copy(path: Path) -> Path:
    """Damage a log before its last record and repair it point-in-time;
    return the copy kept aside."""
    with FileAgreementWal(path) as wal:
        wal.append(gate("a", L.NONE, 1))
        wal.append(gate("b", L.NONE, 2))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside record "a", with "b" after it: damage
    path.write_bytes(bytes(data))
    with FileAgreementWal(path, recovery=RecoveryMode.POINT_IN_TIME) as wal:
        assert wal.torn_tail is not None and wal.torn_tail.copy_path is not None
        return Path(wal.torn_tail.copy_path)


def test_every_file_and_directory_the_toolkit_makes_is_owner_only_whatever_the_umask(
    tmp_path: Path,
) -> None:
    with umask(0):
        state = tmp_path / "deep" / "state"
        with StateDirectory(state) as store:
            store.wal.append(esc("op", L.NONE, L.SOFT_SAFE, 1))
            store.cache.put(binding("e1"))
            store.checkpoint(1, b"state")
        artifact = tmp_path / "artifact.cbor"
        PersistedDurabilityArtifact.agreement_wal(AgreementWalArtifact()).write_to_path(artifact)
        copy = damaged_copy(tmp_path / "damaged.log")
        FileEvidenceOutcomeCache(tmp_path / "lone.log").put(binding("e"))
    made = [p for p in tmp_path.rglob("*")]
    assert {p.name for p in made} >= {"wal.log", "evidence.log", ".checkpoint.lock", copy.name}
    for path in made:
        expected = 0o700 if path.is_dir() else 0o600
        assert mode(path) == expected, f"{path.relative_to(tmp_path)}: {oct(mode(path))}"


def test_a_link_planted_where_a_damaged_copy_would_go_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    path = tmp_path / "wal.log"
    (tmp_path / "wal.log.damaged-1").symlink_to(victim)
    copy = damaged_copy(path)
    assert copy.name == "wal.log.damaged-2" and not copy.is_symlink()
    assert victim.read_bytes() == b"keep"


def test_a_link_planted_at_the_checkpoints_directory_is_refused_for_writing(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store = StateDirectory(tmp_path / "state")
    (tmp_path / "state" / "checkpoints").symlink_to(outside)
    with pytest.raises(StorageError, match="symbolic link"):
        store.checkpoint(1, b"state")
    assert list(outside.iterdir()) == []


def test_a_link_planted_at_the_checkpoints_directory_is_never_read(tmp_path: Path) -> None:
    elsewhere = StateDirectory(tmp_path / "elsewhere")
    elsewhere.checkpoint(5, b"not yours")
    store = StateDirectory(tmp_path / "state")
    (tmp_path / "state" / "checkpoints").symlink_to(tmp_path / "elsewhere" / "checkpoints")
    try:
        found = store.latest_checkpoint()
    except DurabilityError:
        found = None
    assert found is None


def test_a_hard_link_planted_at_the_lock_path_is_never_written(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    victim.chmod(0o644)
    store = StateDirectory(tmp_path / "state")
    os.link(victim, tmp_path / "state" / ".checkpoint.lock")
    store.checkpoint(1, b"state")
    assert victim.read_bytes() == b"keep" and mode(victim) == 0o644


@pytest.mark.parametrize("read_only", [False, True])
def test_a_fifo_or_a_directory_at_a_log_path_is_refused_without_blocking(
    tmp_path: Path, read_only: bool
) -> None:
    os.mkfifo(tmp_path / "fifo.log")
    (tmp_path / "dir.log").mkdir()
    for name in ("fifo.log", "dir.log"):
        probe = (
            "from durability.backends.file import FileAgreementWal as W\n"
            f"W({str(tmp_path / name)!r}, read_only={read_only})"
        )
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 1 and "StorageError" in done.stderr, done.stderr[-500:]


def test_inspect_refuses_a_fifo_instead_of_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "wal.log")
    done = subprocess.run(
        [sys.executable, "-m", "durability", "inspect", str(tmp_path / "wal.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "not a regular file" in done.stderr


class Recorder(FileSystem):
    """Records every path the toolkit hands the seam."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def open_rw(self, path: str, *, create: bool = False) -> int:
        self.paths.append(path)
        return super().open_rw(path, create=create)

    def open_ro(self, path: str) -> int:
        self.paths.append(path)
        return super().open_ro(path)

    def open_rw_exclusive(self, path: str) -> int:
        self.paths.append(path)
        return super().open_rw_exclusive(path)

    def rename(self, source: str, target: str) -> None:
        self.paths += [source, target]
        super().rename(source, target)

    def link(self, source: str, target: str) -> bool:
        self.paths += [source, target]
        return super().link(source, target)

    def sync_dir(self, directory: str) -> None:
        self.paths.append(directory)
        super().sync_dir(directory)

    def make_dirs(self, path: str) -> None:
        self.paths.append(path)
        super().make_dirs(path)


class Echo:
    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        return EffectOutcome.success(request.tick)


def test_a_whole_session_writes_nothing_outside_its_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    state = tmp_path / "state"
    fs = Recorder()
    with StateDirectory(state, fs=fs) as store:
        handler = store.wrap(Echo(), lambda r: f"ev-{r.tick}")
        handler.handle_effect(EffectRequest(interface_name="I", operation_name="o", tick=1))
        handler.wal_sync(
            WalSyncRequest(
                operation_id="op", downstream_coroutine_id="c", gate_level=L.NONE, tick=2
            )
        )
        store.checkpoint(2, b"state")
        store.plan_recovery()
    with open(state / "wal.log", "ab") as f:
        f.write(b"\x00\x01torn")
    with StateDirectory(state, fs=fs) as store:  # repairs the torn tail
        store.wal.append(gate("op", L.NONE, 3))
    with StateDirectory(state, fs=fs, read_only=True) as store:
        store.plan_recovery()
    root = os.path.realpath(state)
    outside = [p for p in fs.paths if os.path.commonpath([os.path.realpath(p), root]) != root]
    assert outside == [str(tmp_path)], outside  # only the parent's fsync of the new directory
    assert list(work.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "state"]
