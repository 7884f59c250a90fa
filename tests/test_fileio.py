"""Paths and permissions (FORMAT.md §2, last paragraph): files the toolkit
creates are owner-only, new directories and files are fsynced into their
parent, and a symbolic link at a log, lock or checkpoint path is refused,
never followed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from durability import DurabilityError, StorageError
from durability.backends.file import FileAgreementWal, FileEvidenceOutcomeCache
from durability.fileio import FileSystem
from durability.store import StateDirectory
from tests.helpers import L, binding, esc, gate


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


class DirSyncRecordingFS(FileSystem):
    def __init__(self) -> None:
        self.synced_dirs: list[str] = []

    def sync_dir(self, directory: str) -> None:
        self.synced_dirs.append(os.path.abspath(directory))
        super().sync_dir(directory)


def test_state_directory_files_and_directories_are_owner_only(tmp_path: Path) -> None:
    state = tmp_path / "a" / "state"
    with StateDirectory(state) as store:
        store.wal.append(esc("op", L.NONE, L.SOFT_SAFE, 1))
        store.checkpoint(1, b"state")
    assert mode(tmp_path / "a") == 0o700 and mode(state) == 0o700
    assert mode(state / "checkpoints") == 0o700
    for name in ("wal.log", "evidence.log", ".checkpoint.lock"):
        assert mode(state / name) == 0o600, name
    for checkpoint in (state / "checkpoints").iterdir():
        assert mode(checkpoint) == 0o600


def test_new_directories_are_fsynced_into_their_parent(tmp_path: Path) -> None:
    fs = DirSyncRecordingFS()
    state = tmp_path / "a" / "state"
    with StateDirectory(state, fs=fs) as store:
        assert str(tmp_path) in fs.synced_dirs  # `a` made durable in its parent
        assert str(tmp_path / "a") in fs.synced_dirs  # `state` in `a`
        fs.synced_dirs.clear()
        store.checkpoint(1, b"state")
    assert str(state) in fs.synced_dirs  # `checkpoints/` and the lock file
    assert str(state / "checkpoints") in fs.synced_dirs  # the checkpoint file


def test_symlink_at_a_log_path_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.log"
    FileAgreementWal(target).append(gate("op", L.NONE, 1))
    with open(target, "ab") as f:
        f.write(b"\x01\x02\x03")  # a torn tail a repair would cut
    before = target.read_bytes()
    link = tmp_path / "wal.log"
    link.symlink_to(target)
    for open_log in (FileAgreementWal, FileEvidenceOutcomeCache):
        with pytest.raises(StorageError, match="symbolic link"):
            open_log(link)
    with pytest.raises(StorageError, match="symbolic link"):
        FileAgreementWal(link, read_only=True)
    assert target.read_bytes() == before


def test_dangling_symlink_at_a_log_path_is_refused_not_created(tmp_path: Path) -> None:
    link = tmp_path / "cache.log"
    link.symlink_to(tmp_path / "planted")
    with pytest.raises(StorageError, match="symbolic link"):
        FileEvidenceOutcomeCache(link).put(binding("e"))
    assert not (tmp_path / "planted").exists()


def test_symlink_at_the_checkpoint_lock_path_is_a_durability_error(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_bytes(b"keep")
    state = tmp_path / "state"
    store = StateDirectory(state)
    (state / ".checkpoint.lock").symlink_to(target)
    with pytest.raises(DurabilityError, match="symbolic link"):
        store.checkpoint(1, b"state")
    assert target.read_bytes() == b"keep"
    assert store.checkpoint_ticks() == []


def test_symlink_at_a_checkpoint_path_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_bytes(b"keep")
    store = StateDirectory(tmp_path / "state")
    store.checkpoint(1, b"one")
    (tmp_path / "state" / "checkpoints" / f"checkpoint-{2:020d}.cbor").symlink_to(target)
    with pytest.raises(StorageError, match="symbolic link"):
        store.checkpoint(2, b"two")
    with pytest.raises(StorageError, match="symbolic link"):
        store.load_checkpoint(2)
    assert target.read_bytes() == b"keep"
