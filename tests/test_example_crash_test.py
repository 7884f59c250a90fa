"""``examples/crash_test_broken_handler.py`` and the README section that shows
it ("Crash-testing your own handlers"): `crash_test` catches the broken
checkout at exactly the crash points between a charge and its record, the
fixed checkout passes every point, and the script prints what the README
shows."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from durability.testing import Unsynced
from tests.helpers import readme_section

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "crash_test_broken_handler.py"
README = ROOT / "README.md"
HEADING = "## Crash-testing your own handlers"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crash_test_broken_handler", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_broken_checkout_is_caught_between_charge_and_record(example: ModuleType) -> None:
    reports = example.crash_both()
    broken, fixed = reports["broken"], reports["fixed"]
    # per order: the cache's write, then its fsync; the log's creation takes 3
    assert [str(run) for run in broken.failures] == [
        f"before write #{k} (evidence.log): AssertionError: order#{n} charged 2 times"
        for n, k in ((1, 4), (2, 6), (3, 8))
    ]
    assert broken.kills == 9 and broken.complete
    assert fixed.passed and fixed.kills == 15  # an intent and a binding per order


def test_with_the_power_cut_the_unsynced_record_is_lost_too(example: ModuleType) -> None:
    reports = example.crash_both(Unsynced.DROP)
    assert [run.point.k for run in reports["broken"].failures if run.point] == [4, 5, 6, 7, 8, 9]
    assert reports["fixed"].passed


def test_the_script_prints_what_the_readme_shows() -> None:
    commands = re.search(r"```sh\n(.*?)```", readme_section(HEADING), re.S)
    shown = re.search(r"```text\n(.*?)```", readme_section(HEADING), re.S)
    assert commands is not None and shown is not None
    assert commands.group(1) == ".venv/bin/python examples/crash_test_broken_handler.py\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's package, as installed by CI
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown.group(1)
    assert done.stdout.endswith("the broken checkout is caught, the fixed one passes\n")


def test_the_readme_quotes_the_example_verbatim() -> None:
    source = EXAMPLE.read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme_section(HEADING), re.S)
    assert len(blocks) == 2
    for block in blocks:
        assert block in source
