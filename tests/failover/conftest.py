"""The failover trials report what they measured at the end of every run
(``pytest -q`` included), so a CI log shows the numbers, not only a pass."""

from __future__ import annotations

from typing import Any

from tests.failover.trial import RESULTS


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers",
        "negative_control: runs the failover harness where loss is expected, to show the "
        "harness can see it; reports, never fails on loss",
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    terminalreporter.section("failover trials")
    for number, trial in enumerate(RESULTS, 1):
        terminalreporter.write_line(f"trial {number}: {trial.summary()}")
