"""What `crash_test` found: one `CrashRun` per crash point tried (where the
process was killed, and what the check said about the state it left), in a
`CrashReport` that prints as a summary and raises on failure
(`CrashReport.assert_passed`)."""

from __future__ import annotations

from pathlib import Path

import attrs

from .powerloss import Unsynced

__all__ = ["CrashPoint", "CrashReport", "CrashRun"]

#: How a crash point's call is named in reports.
_CALLS = {"write": "write", "sync": "fsync", "sync_dir": "directory fsync"}
_POINTS = {"writes": "write", "fsyncs": "fsync", "both": "write and fsync"}
_LOST = {
    Unsynced.DROP: "unsynced writes dropped",
    Unsynced.TORN: "unsynced writes torn",
    Unsynced.ZEROS: "unsynced writes zero-filled",
}


@attrs.frozen(kw_only=True)
class CrashPoint:
    """Where a run was killed: at the `k`-th crash point (from 1), a call
    `op` (``"write"``, ``"sync"`` or ``"sync_dir"``) on `path` (relative to
    the run's directory; a temporary file's random suffix shown as
    ``.tmp``), ``"before"`` it was made or ``"after"`` it returned (`when`)."""

    k: int
    op: str
    path: str
    when: str

    def __str__(self) -> str:
        return f"{self.when} {_CALLS.get(self.op, self.op)} #{self.k} ({self.path})"


@attrs.frozen(kw_only=True)
class CrashRun:
    """One run of the workload: killed at `point` (``None``: it ran to the
    end), and what went wrong: `failure`, what the check raised on the state
    left (``"AssertionError: ..."``), or `error`, what the workload itself
    raised (it was not killed). `directory` is the state, when kept."""

    point: CrashPoint | None
    failure: str | None = None
    error: str | None = None
    directory: Path | None = None

    @property
    def passed(self) -> bool:
        """Whether the check accepted the state and the workload raised nothing."""
        return self.failure is None and self.error is None

    def __str__(self) -> str:
        where = str(self.point) if self.point is not None else "run to the end"
        if self.error is not None:
            return f"{where}: the workload raised {self.error}"
        first = (self.failure or "passed").splitlines()[0]
        return f"{where}: {first}"


@attrs.frozen(kw_only=True)
class CrashReport:
    """Every run `crash_test` made, in order, and how it was asked to crash.

    ``str(report)`` is a summary: one line with the counts, then one line
    per failed run. `complete` is ``False`` when `max_points` stopped it
    before a run got to the end."""

    runs: tuple[CrashRun, ...]
    points: str = "both"
    when: str = "before"
    power_loss: Unsynced | None = None
    complete: bool = True

    @property
    def failures(self) -> tuple[CrashRun, ...]:
        """The runs whose check (or workload) failed."""
        return tuple(run for run in self.runs if not run.passed)

    @property
    def passed(self) -> bool:
        """Whether every run passed and the test got to the end."""
        return self.complete and not self.failures

    @property
    def kills(self) -> int:
        """How many runs were killed at a crash point."""
        return sum(run.point is not None for run in self.runs)

    def __str__(self) -> str:
        when = "before and after" if self.when == "both" else self.when
        power = f" with power lost ({_LOST[self.power_loss]})" if self.power_loss else ""
        ended = "a run to the end" if self.complete else "no run to the end (max_points hit)"
        verdict = f"{len(self.failures)} failed" if self.failures else "all passed"
        head = f"{self.kills} kills{power}, {when} each {_POINTS[self.points]}, and {ended}"
        return "\n".join([f"{head}: {verdict}", *(f"  {run}" for run in self.failures)])

    def assert_passed(self) -> None:
        """Raise `AssertionError` with the summary unless every run passed."""
        if not self.passed:
            raise AssertionError(f"crash test failed: {self}")
