"""`durability.testing.crash_test`: a real SIGKILL at every write and fsync
through the seam, before or after the call, with or without power loss, and
each state handed to the check.

The checks below run in this process, so they record what they saw; the
workloads mark their progress in plain files (outside the seam: never a
crash point), which shows exactly where each kill stopped them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from durability import FileEvidenceOutcomeCache, StateDirectory, StorageError, SyncPolicy
from durability.fileio import FileSystem
from durability.testing import (
    CrashPoint,
    CrashReport,
    CrashRun,
    FaultyFileSystem,
    Unsynced,
    crash_test,
)
from tests.helpers import L, binding, esc

IDS = ("e0", "e1", "e2")


def three_puts(directory: Path, fs: FileSystem, *, sync: SyncPolicy = SyncPolicy.DURABLE) -> None:
    """Put three bindings; after each, a marker file ``done-eN`` (not through the seam)."""
    assert os.listdir(directory) == [], "every run starts in an empty directory"
    with FileEvidenceOutcomeCache(directory / "evidence.log", fs=fs, sync=sync) as cache:
        for eid in IDS:
            cache.put(binding(eid))
            (directory / f"done-{eid}").touch()


def unsynced_puts(directory: Path, fs: FileSystem) -> None:
    three_puts(directory, fs, sync=SyncPolicy.NONE)


class Seen:
    """A check that records, per run, the bindings and markers it found."""

    def __init__(self) -> None:
        self.states: list[tuple[list[str], list[str]]] = []

    def __call__(self, directory: Path) -> None:
        with FileEvidenceOutcomeCache(directory / "evidence.log", read_only=True) as cache:
            bound = [entry.evidence_id for entry in cache.load().entries]
        done = sorted(name[5:] for name in os.listdir(directory) if name.startswith("done-"))
        self.states.append((bound, done))


def calls_of(workload: object, ops: set[str], tmp_path: Path) -> list[str]:
    """The crash points a workload passes, counted in this process with a
    `FaultyFileSystem` (which records every call)."""
    fs = FaultyFileSystem()
    directory = tmp_path / "counted"
    directory.mkdir()
    workload(directory, fs)  # type: ignore[operator]
    return [call.op for call in fs.calls if call.op in ops]


def test_a_kill_before_each_write_and_fsync_stops_the_workload_there(tmp_path: Path) -> None:
    seen = Seen()
    report = crash_test(three_puts, seen)
    assert report.passed and report.complete
    ops = calls_of(three_puts, {"write", "sync", "sync_dir"}, tmp_path)
    assert report.kills == len(ops) == 9  # creating the log: 3; each put: write + fsync
    assert [run.point.op for run in report.runs if run.point] == ops
    assert [run.point.k for run in report.runs if run.point] == list(range(1, 10))
    assert report.runs[-1].point is None  # then a run to the end, checked too
    # killed before put n's write: n-1 bindings, n-1 markers; before its
    # fsync: the write is in the page cache (it survives a kill), no marker yet
    assert seen.states == [
        ([], []),
        ([], []),
        ([], []),
        ([], []),
        (["e0"], []),
        (["e0"], ["e0"]),
        (["e0", "e1"], ["e0"]),
        (["e0", "e1"], ["e0", "e1"]),
        (["e0", "e1", "e2"], ["e0", "e1"]),
        (["e0", "e1", "e2"], ["e0", "e1", "e2"]),
    ]


def test_points_are_named_by_call_and_file(tmp_path: Path) -> None:
    report = crash_test(three_puts, Seen(), workdir=tmp_path / "runs")
    shown = [str(run.point) for run in report.runs if run.point][:5]
    assert shown == [
        "before write #1 (evidence.log.tmp)",  # the new log, created atomically
        "before fsync #2 (evidence.log.tmp)",
        "before directory fsync #3 (.)",
        "before write #4 (evidence.log)",
        "before fsync #5 (evidence.log)",
    ]
    assert os.listdir(tmp_path / "runs") == []  # passing runs leave nothing behind


def test_a_kill_after_the_call_keeps_what_it_did(tmp_path: Path) -> None:
    seen = Seen()
    report = crash_test(three_puts, seen, when="after", points="writes")
    assert report.passed and report.kills == 4
    assert [str(run.point) for run in report.runs if run.point][1:] == [
        "after write #2 (evidence.log)",
        "after write #3 (evidence.log)",
        "after write #4 (evidence.log)",
    ]
    assert seen.states[1:] == [
        (["e0"], []),  # the write happened; the program went no further
        (["e0", "e1"], ["e0"]),
        (["e0", "e1", "e2"], ["e0", "e1"]),
        (["e0", "e1", "e2"], ["e0", "e1", "e2"]),
    ]


@pytest.mark.parametrize(
    ("points", "ops"), [("writes", {"write"}), ("fsyncs", {"sync", "sync_dir"})]
)
def test_points_choose_the_calls(points: str, ops: set[str], tmp_path: Path) -> None:
    report = crash_test(three_puts, Seen(), points=points)  # type: ignore[arg-type]
    counted = calls_of(three_puts, ops, tmp_path)
    assert report.kills == len(counted) > 0
    assert [run.point.op for run in report.runs if run.point] == counted


def test_both_kills_before_and_after_and_checks_the_end_once() -> None:
    report = crash_test(three_puts, Seen(), when="both")
    assert report.kills == 18
    assert [run.point.when for run in report.runs if run.point] == ["before"] * 9 + ["after"] * 9
    assert sum(run.point is None for run in report.runs) == 1


def test_power_loss_drops_what_was_never_fsynced() -> None:
    kept, lost = Seen(), Seen()
    assert crash_test(unsynced_puts, kept, points="writes").passed
    assert crash_test(unsynced_puts, lost, points="writes", power_loss=Unsynced.DROP).passed
    # killed before put 3's write: without power loss puts 1 and 2 survive
    # in the page cache; with it, nothing written after the log's creation
    assert kept.states[3] == (["e0", "e1"], ["e0", "e1"])
    assert lost.states[3] == ([], ["e0", "e1"])
    assert lost.states[-1] == (["e0", "e1", "e2"], ["e0", "e1", "e2"])  # the end is not cut


def test_power_loss_keeps_what_was_fsynced() -> None:
    seen = Seen()
    assert crash_test(three_puts, seen, points="fsyncs", power_loss=Unsynced.DROP).passed
    # fsyncs: the new log's file and directory, then one per put; before
    # put n's fsync its write is lost, the puts before it (fsynced) are kept
    assert seen.states[2:] == [
        ([], []),
        (["e0"], ["e0"]),
        (["e0", "e1"], ["e0", "e1"]),
        (["e0", "e1", "e2"], ["e0", "e1", "e2"]),
    ]


def test_a_failing_check_is_reported_with_its_point(tmp_path: Path) -> None:
    def all_three_bound(directory: Path) -> None:
        with FileEvidenceOutcomeCache(directory / "evidence.log") as cache:
            missing = [eid for eid in IDS if cache.get(eid) is None]
        assert not missing, f"missing {missing}"

    report = crash_test(three_puts, all_three_bound, points="writes", workdir=tmp_path)
    assert not report.passed and report.complete
    assert [str(run) for run in report.failures] == [
        "before write #1 (evidence.log.tmp): AssertionError: missing ['e0', 'e1', 'e2']",
        "before write #2 (evidence.log): AssertionError: missing ['e0', 'e1', 'e2']",
        "before write #3 (evidence.log): AssertionError: missing ['e1', 'e2']",
        "before write #4 (evidence.log): AssertionError: missing ['e2']",
    ]
    kept = [run.directory for run in report.failures]
    assert kept == [tmp_path / f"before-{k:05d}" for k in (1, 2, 3, 4)]
    assert all(path is not None and path.is_dir() for path in kept)
    assert sorted(os.listdir(tmp_path)) == [f"before-{k:05d}" for k in (1, 2, 3, 4)]
    assert str(report).splitlines()[0] == (
        "4 kills, before each write, and a run to the end: 4 failed"
    )
    with pytest.raises(AssertionError, match=r"crash test failed: 4 kills.*\n  before write #1"):
        report.assert_passed()


def test_a_workload_that_raises_stops_the_test() -> None:
    def fails_at_second_put(directory: Path, fs: FileSystem) -> None:
        with FileEvidenceOutcomeCache(directory / "evidence.log", fs=fs) as cache:
            cache.put(binding("e0"))
            raise RuntimeError("no card on file")

    report = crash_test(fails_at_second_put, Seen(), when="both")
    last = report.runs[-1]
    assert last.point is None and last.error is not None and not last.passed
    assert last.error.startswith("RuntimeError: no card on file | ")
    assert report.kills == 5 and len(report.runs) == 6  # the "after" round never ran
    assert "the workload raised RuntimeError: no card on file" in str(report)


def test_a_workload_that_hangs_is_killed_and_reported() -> None:
    def hangs(directory: Path, fs: FileSystem) -> None:
        os.read(os.pipe()[0], 1)  # blocks forever: nobody writes

    report = crash_test(hangs, Seen(), timeout=0.3)
    assert [run.error for run in report.runs] == ["the workload did not end within 0.3 s (killed)"]


def test_a_crash_point_whose_call_fails_still_kills_after_it() -> None:
    def writes_that_fail(directory: Path, fs: FileSystem) -> None:
        for _ in range(2):
            try:
                fs.write_at(-1, b"x", 0, str(directory / "nowhere"))  # a bad descriptor
            except StorageError:
                (directory / "went-on").touch()

    went_on: list[bool] = []
    report = crash_test(
        writes_that_fail,
        lambda d: went_on.append((d / "went-on").exists()),
        when="after",
        timeout=10,
    )
    assert report.passed and report.kills == 2
    assert went_on == [False, True, True]  # killed right after each failed call


def test_max_points_stops_an_endless_workload() -> None:
    report = crash_test(three_puts, Seen(), max_points=3)
    assert report.kills == 3 and not report.complete and not report.passed
    assert "no run to the end (max_points hit): all passed" in str(report)


def test_a_state_directory_takes_the_seam() -> None:
    def state_workload(directory: Path, fs: FileSystem) -> None:
        with StateDirectory(directory / "state", fs=fs) as state:
            state.wal.append(esc("op", L.NONE, L.PROVISIONAL, 1))
            state.cache.put(binding("e0"))

    def plans(directory: Path) -> None:
        if (directory / "state").is_dir():
            with StateDirectory(directory / "state") as state:
                state.plan_recovery()

    report = crash_test(state_workload, plans)
    files = {run.point.path for run in report.runs if run.point}
    assert {"state/wal.log", "state/evidence.log", "state", "."} <= files
    assert report.passed


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="points must be"):
        crash_test(three_puts, Seen(), points="reads")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="when must be"):
        crash_test(three_puts, Seen(), when="during")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="power_loss must be"):
        crash_test(three_puts, Seen(), power_loss="drop")  # type: ignore[arg-type]


def test_report_values_read_as_documented() -> None:
    point = CrashPoint(k=3, op="sync_dir", path=".", when="after")
    failed = CrashRun(point=point, failure="AssertionError: lost\nassert 1 == 2")
    report = CrashReport(
        runs=(failed, CrashRun(point=None)), points="fsyncs", power_loss=Unsynced.ZEROS
    )
    assert str(failed) == "after directory fsync #3 (.): AssertionError: lost"
    assert str(report) == (
        "1 kills with power lost (unsynced writes zero-filled), before each fsync, and a run "
        "to the end: 1 failed\n  after directory fsync #3 (.): AssertionError: lost"
    )
    assert report.failures == (failed,) and not report.passed
    CrashReport(runs=(CrashRun(point=None),)).assert_passed()  # passes silently
