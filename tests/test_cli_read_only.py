"""Read-only commands never create, modify or truncate anything under their
input, and work for a user who may only read it (API.md §9)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from durability import StateDirectory
from tests.helpers import L, esc, ev
from tests.test_cli import SCRIPT


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every path under `root` with its mode and content hash."""
    found: dict[str, tuple[int, str]] = {".": (root.stat().st_mode, "")}
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(mode) else ""
        found[str(path.relative_to(root))] = (mode, digest)
    return found


def make_read_only(root: Path) -> None:
    """Readable by everyone, writable by no one (but root)."""
    for path in [root, *root.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)


#: As root, `setpriv` drops the capabilities that let root ignore file modes.
AS_READER = (
    ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
    if os.geteuid() == 0 and shutil.which("setpriv")
    else []
)


def run_as_reader(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """Run the console script as a user who may only read what `make_read_only`
    left: the current user (as root, without the capabilities to override
    file modes), in `cwd` (give the input's directory: a file named ``-``
    written by mistake lands there)."""
    return subprocess.run([*AS_READER, SCRIPT, *args], capture_output=True, timeout=300, cwd=cwd)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A state directory whose WAL ends in a torn tail and whose evidence log
    is missing, readable by all and writable by none."""
    directory = tmp_path / "state"
    with StateDirectory(directory) as store:
        store.wal.append_batch([ev("a", "a/c", L.SOFT_SAFE, 1), esc("a", L.NONE, L.SOFT_SAFE, 1)])
        store.checkpoint(1, b"state@1")
        store.wal.append_batch([ev("b", "b/c", L.SOFT_SAFE, 2), esc("b", L.NONE, L.SOFT_SAFE, 2)])
    wal = directory / "wal.log"
    with open(wal, "r+b") as handle:
        handle.truncate(wal.stat().st_size - 5)
    (directory / "evidence.log").unlink()
    make_read_only(directory)
    try:
        yield directory
    finally:
        for path in [directory, *directory.rglob("*")]:
            path.chmod(0o700 if path.is_dir() else 0o600)


def test_the_reader_really_may_not_write(state: Path) -> None:
    if os.geteuid() == 0 and not AS_READER:
        pytest.skip("root without setpriv ignores file modes")
    result = subprocess.run(
        [*AS_READER, "sh", "-c", f"touch {state}/new"], capture_output=True, timeout=60
    )
    assert result.returncode != 0 and not (state / "new").exists()


def test_inspect_verify_and_export_never_write_under_their_input(state: Path) -> None:
    before = snapshot(state)
    wal = str(state / "wal.log")
    for args in (
        ("inspect", wal, "--json"),
        ("verify", wal, "--json"),
        ("export", wal, "-o", "-"),
    ):
        result = run_as_reader(*args, cwd=state)
        assert result.returncode == 0, (args, result.stderr.decode())
        assert snapshot(state) == before, args
    report = json.loads(run_as_reader("inspect", wal, "--json", cwd=state).stdout)
    assert report["torn_tail"]["dropped"] > 0


def test_plan_never_writes_under_its_input(state: Path) -> None:
    before = snapshot(state)
    result = run_as_reader("plan", str(state), "--json", cwd=state)
    assert result.returncode == 0, result.stderr.decode()
    assert snapshot(state) == before
    plan = json.loads(result.stdout)
    assert plan["repairs"]["wal.log"]["dropped"] > 0  # reported: what opening would cut
    assert plan["repairs"]["evidence.log"] is None
    assert plan["metadata"]["checkpoint_tick"] == 1
    assert plan["decisions"] == []  # b's batch was the torn record
    text = run_as_reader("plan", str(state), cwd=state)
    assert text.returncode == 0, text.stderr.decode()
    assert b"wal.log: torn tail at offset" in text.stdout
    assert snapshot(state) == before
