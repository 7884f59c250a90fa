"""The README's "Exactly-once effects" example is real code: run it in an
empty directory and it prints exactly what the README shows beside it; its
excerpt of the demo is what the demo prints; the section sits right before
"Command line"."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import README, readme_section, run_readme_example

HEADING = "## Exactly-once effects"


def test_the_effects_example_prints_what_the_readme_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    printed, shown = run_readme_example(readme_section(HEADING))
    assert printed == shown
    with sqlite3.connect(tmp_path / "shop.db") as db:  # each order paid exactly once
        rows = db.execute("SELECT key, amount FROM payments ORDER BY key").fetchall()
    assert rows == [("order#1/pay", 30), ("order#2/pay", 30)]


def test_the_section_sits_right_before_the_command_line() -> None:
    headings = re.findall(r"^## (.*)$", README.read_text(), re.M)
    assert headings[headings.index("Exactly-once effects") + 1] == "Command line"


def test_the_demo_excerpt_is_what_the_demo_prints(tmp_path: Path) -> None:
    """The README's excerpt of `durability demo /tmp/demo`: each line it shows
    (``...`` stands for lines cut) comes out of a real run, in that order."""
    shown = re.search(r"```console\n(.*?)```", readme_section(HEADING), re.S)
    assert shown is not None
    directory = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "durability", "demo", str(directory)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    printed = result.stdout.splitlines()
    at = 0
    for line in shown.group(1).splitlines():
        if line == "...":
            continue
        expected = line.replace("/tmp/demo", str(directory))
        assert expected in printed[at:], f"not printed (in this order): {line}"
        at = printed.index(expected, at) + 1
