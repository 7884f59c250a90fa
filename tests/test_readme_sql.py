"""The README's "SQL backends" example is real code: run it in an empty
directory and it prints exactly what the README shows beside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import README, readme_section, run_readme_example

HEADING = "## SQL backends"


def test_the_sql_example_prints_what_the_readme_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    printed, shown = run_readme_example(readme_section(HEADING))
    assert printed == shown
    assert (tmp_path / "state.db").exists()


def test_the_section_sits_right_before_surviving_a_failover_then_the_command_line() -> None:
    headings = re.findall(r"^## (.*)$", README.read_text(), re.M)
    at = headings.index("SQL backends")
    assert headings[at + 1 : at + 4] == [
        "Surviving a failover",
        "Exactly-once effects",
        "Command line",
    ]
