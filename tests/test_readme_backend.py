"""The README's "Testing your own backend" is real code: its backend and test
module, written out as the file names in their first lines say, pass the
shipped contract suite under pytest in a fresh process. The cases it says run
do run and pass, and the skips it quotes are the skips pytest reports, with
and without `reopen`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import readme_section

HEADING = "## Testing your own backend"

PERSISTENCE_CASES = [
    "test_reopened_handles_validate_against_what_is_stored",
    "test_second_handle_sees_first_handles_appends",
    "test_processes_appending_through_their_own_handles_lose_nothing",
]


def example_files() -> dict[str, str]:
    """The section's python blocks, by the file name their first line gives."""
    files = {}
    for block in re.findall(r"```python\n(.*?)```", readme_section(HEADING), re.S):
        name = re.fullmatch(r"# (\w+\.py)", block.splitlines()[0])
        assert name is not None, f"a python block does not start with '# file.py': {block[:40]!r}"
        files[name.group(1)] = block
    return files


def run_pytest(directory: Path, files: dict[str, str]) -> str:
    for name, code in files.items():
        (directory / name).write_text(code)
    (directory / "pytest.ini").write_text("[pytest]\n")  # no config from elsewhere
    tests = [name for name in files if name.startswith("test_")]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider", *tests],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return " ".join(result.stdout.split())  # README prose wraps lines


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    found = example_files()
    assert set(found) == {"my_wal.py", "test_my_wal.py"}
    return found


@pytest.fixture(scope="module")
def output(files: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """What pytest reports on the README's test module, as the README has it."""
    return run_pytest(tmp_path_factory.mktemp("readme-backend"), files)


def test_the_readme_backend_passes_the_contract(output: str) -> None:
    for case in PERSISTENCE_CASES:  # reopen is implemented: these ran
        assert f"{case} PASSED" in output


def test_the_skips_are_the_ones_the_readme_quotes(output: str) -> None:
    quoted = " ".join(readme_section(HEADING).split())
    skips = re.findall(
        r"SKIPPED \[1\] \S+ (test_\w+: [^\]]*?\(optional; this case needs it\))", output
    )
    assert skips, "no case was skipped"
    first = "test_batch_is_all_or_nothing: SnapshotWal has no append_batch() (optional; this case needs it)"
    assert first in skips and f"`{first}`" in quoted
    assert all("has no append_batch()" in skip for skip in skips)


def test_without_reopen_the_persistence_cases_skip_by_name(
    files: dict[str, str], tmp_path: Path
) -> None:
    test_module = files["test_my_wal.py"]
    without = re.sub(r"\n    def reopen\(.*?\n(?:        .*\n)+", "\n", test_module)
    assert "reopen" not in without.split("class ", 1)[1]
    out = run_pytest(tmp_path, {**files, "test_my_wal.py": without})
    message = "reopen() not implemented by TestSnapshotWal: "
    assert f"`{message}...`" in " ".join(readme_section(HEADING).split())
    for case in PERSISTENCE_CASES:
        assert f"{case}: {message}persistence cases need a second handle" in out
