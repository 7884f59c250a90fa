"""Output closed early by its reader (`| head`) ends a command quietly."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from durability import AgreementWalArtifact, PersistedDurabilityArtifact, StateDirectory
from tests.helpers import L, esc, ev, gate
from tests.test_cli import SCRIPT

#: Enough operations that every command's output overflows a pipe buffer
#: (64 KiB on Linux) many times, so the writer really meets EPIPE.
OPERATIONS = 3000
OUTPUT_CLOSED = 141


def write_big_wal(path: Path) -> None:
    """A WAL of `OPERATIONS` operations, written as one v1 artifact (a valid log)."""
    entries = []
    for n in range(OPERATIONS):
        op = f"operation#{n:05d}"
        entries += [
            ev(op, f"{op}/certificate", L.SOFT_SAFE, n + 1),
            esc(op, L.NONE, L.SOFT_SAFE, n + 1),
            gate(op, L.SOFT_SAFE, n + 1),
        ]
    PersistedDurabilityArtifact.agreement_wal(AgreementWalArtifact(entries=entries)).write_to_path(
        path
    )


@pytest.fixture(scope="module")
def big_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pipes") / "state"
    StateDirectory(directory).close()
    write_big_wal(directory / "wal.log")
    return directory


def environment(unbuffered: bool) -> dict[str, str]:
    """The test's environment with ``PYTHONUNBUFFERED`` set or removed (with
    it, Python's stdout is the raw file and writes to a pipe may be partial)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    return env


def read_a_little_then_close(*args: str, unbuffered: bool, cwd: Path) -> tuple[int, bytes, bytes]:
    """Run the console script, read one line (at most 100 bytes) of its
    stdout, close the pipe, then collect stderr and the exit code."""
    proc = subprocess.Popen(
        [SCRIPT, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(unbuffered),
        cwd=cwd,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline(100)
    proc.stdout.close()
    stderr = proc.stderr.read()
    proc.stderr.close()
    return proc.wait(timeout=300), first, stderr


@pytest.mark.parametrize(
    "command",
    [
        ("inspect", "--json", "{wal}"),
        ("inspect", "{wal}"),
        ("plan", "--json", "{dir}"),
        ("plan", "{dir}"),
        ("export", "{wal}", "-o", "-"),
    ],
    ids=" ".join,
)
@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "PYTHONUNBUFFERED"])
def test_output_closed_by_its_reader_ends_quietly(
    big_state: Path, command: tuple[str, ...], unbuffered: bool
) -> None:
    args = [a.format(wal=big_state / "wal.log", dir=big_state) for a in command]
    code, first, stderr = read_a_little_then_close(*args, unbuffered=unbuffered, cwd=big_state)
    assert first  # the command did start writing
    assert stderr == b"", stderr.decode(errors="replace")
    assert code == OUTPUT_CLOSED


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "PYTHONUNBUFFERED"])
def test_output_piped_into_head_ends_quietly(big_state: Path, unbuffered: bool) -> None:
    for command in (
        f"{shlex.quote(SCRIPT)} inspect --json {shlex.quote(str(big_state / 'wal.log'))}",
        f"{shlex.quote(SCRIPT)} plan --json {shlex.quote(str(big_state))}",
    ):
        result = subprocess.run(
            ["sh", "-c", f"{command} | head -1"],
            capture_output=True,
            text=True,
            timeout=300,
            env=environment(unbuffered),
        )
        assert result.stdout.splitlines()[0] == "{", result.stdout[:200]
        assert result.stderr == "", result.stderr


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "PYTHONUNBUFFERED"])
def test_output_read_to_the_end_is_whole_and_exits_0(big_state: Path, unbuffered: bool) -> None:
    result = subprocess.run(
        [SCRIPT, "inspect", "--json", str(big_state / "wal.log")],
        capture_output=True,
        timeout=300,
        env=environment(unbuffered),
    )
    assert result.returncode == 0
    assert result.stderr == b""
    assert result.stdout.count(b"operation_id") == OPERATIONS
