"""The README's "SQL backends" example is real code: run it in an empty
directory and it prints exactly what the README shows beside it."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def section() -> str:
    text = README.read_text()
    start = text.index("## SQL backends\n")
    return text[start : text.index("\n## ", start + 1)]


def test_the_sql_example_prints_what_the_readme_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = re.search(r"```python\n(.*?)```", section(), re.S)
    shown = re.search(r"```text\n(.*?)```", section(), re.S)
    assert code is not None and shown is not None
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.group(1), "README.md", "exec"), {})
    assert out.getvalue() == shown.group(1)
    assert (tmp_path / "state.db").exists()


def test_the_section_sits_right_before_surviving_a_failover_then_the_command_line() -> None:
    headings = re.findall(r"^## (.*)$", README.read_text(), re.M)
    at = headings.index("SQL backends")
    assert headings[at + 1 : at + 4] == [
        "Surviving a failover",
        "Exactly-once effects",
        "Command line",
    ]
