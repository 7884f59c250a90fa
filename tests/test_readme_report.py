"""The README's report section: its commands run as shown, and the
screenshot it shows is in the repository (made by test_report_browser.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.helpers import readme_section
from tests.test_cli import SCRIPT

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
HEADING = "### The report page"


def test_the_section_is_under_the_command_line() -> None:
    text = README.read_text()
    command_line = text.index("## Command line\n")
    assert (
        command_line < text.index("### The report page\n") < text.index("\n## ", command_line + 1)
    )
    block = text[command_line : text.index("### The report page\n")]
    assert "durability report DIR -o FILE.html [--checkpoint-tick N]" in block


def test_the_readme_shows_the_screenshot() -> None:
    images = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", readme_section(HEADING))
    assert images == ["docs/report.png"]
    data = (ROOT / images[0]).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 30_000


def test_the_commands_run_as_shown(tmp_path: Path) -> None:
    block = re.search(r"```sh\n(.*?)```", readme_section(HEADING), re.S)
    assert block is not None
    commands = block.group(1).strip().splitlines()
    assert commands == ["durability demo state", "durability report state -o report.html"]
    for command in commands:
        words = command.split()
        assert words[0] == "durability"
        result = subprocess.run(
            [SCRIPT, *words[1:], "--quiet"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and 'id="report-data"' in page
