"""The failover trials report what they measured at the end of every run
(``pytest -q`` included), so a CI log shows the numbers, not only a pass."""

from __future__ import annotations

from typing import Any

from tests.failover.trial import CHILD_SUMMARIES, RESULTS


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers",
        "negative_control: runs the failover harness where loss is expected, to show the "
        "harness can see it; reports, never fails on loss",
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS and not CHILD_SUMMARIES:
        return
    terminalreporter.section("failover trials")
    summaries = [trial.summary() for trial in RESULTS] + CHILD_SUMMARIES
    for number, summary in enumerate(summaries, 1):
        terminalreporter.write_line(f"trial {number}: {summary}")
