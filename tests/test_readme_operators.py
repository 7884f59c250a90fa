"""The README's operator sections (`plan --explain`, `repair`) show real
output: their console transcripts are run, command by command, in one
directory, and each command must print exactly what the README shows (the
damaged copy's timestamp aside)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import README

ROOT = README.parent
SECTIONS = ("### Why a decision: `plan --explain`", "### Repairing a log: `repair`")
STAMP = re.compile(r"\.damaged-\d{8}T\d{6}Z")


def subsection(heading: str) -> str:
    text = README.read_text()
    start = text.index(heading + "\n")
    ends = [i for i in (text.find("\n### ", start + 1), text.find("\n## ", start + 1)) if i != -1]
    return text[start : min(ends)]


def transcript(heading: str) -> list[tuple[str, str]]:
    """``(command, output)`` pairs of the subsection's console blocks."""
    steps: list[tuple[str, str]] = []
    for block in re.findall(r"```console\n(.*?)```", subsection(heading), re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], ""))
            else:
                command, output = steps[-1]
                steps[-1] = (command, output + line + "\n")
    assert steps, f"{heading} shows no console transcript"
    return steps


def test_the_operator_sections_sit_in_the_command_line_section() -> None:
    text = README.read_text()
    start, end = text.index("\n## Command line\n"), text.index("\n## Testing your own backend\n")
    for heading in SECTIONS:
        assert start < text.index(heading) < end


def test_the_transcripts_print_what_the_readme_shows(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "durability"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m durability "$@"\n')
    wrapper.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
    }
    work = tmp_path / "work"
    work.mkdir()
    ran = 0
    for heading in SECTIONS:
        for command, shown in transcript(heading):
            result = subprocess.run(
                ["bash", "-c", command],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert "Traceback" not in result.stderr, result.stderr
            assert STAMP.sub(".damaged-<T>", result.stdout) == STAMP.sub(".damaged-<T>", shown), (
                command
            )
            ran += 1
    assert ran >= 6
    assert any(p.name.startswith("wal.log.damaged-") for p in (work / "state").iterdir())
