"""`crash_test`: crash your own code at every write and fsync, then check what
it left.

The runner runs ``workload(directory, fs)`` in a child process (``os.fork``,
so POSIX only) on a fresh, empty directory. `fs` is a `FileSystem` (the I/O
seam) that counts the writes and fsyncs made through it; pass it as ``fs=``
to every file backend the workload opens (`StateDirectory`,
`FileEvidenceOutcomeCache`, `FileAgreementWal`, `open_wal`/`open_cache` of a
file path). In run k the child SIGKILLs itself at the k-th counted call:
*before* making it (``when="before"``, the default: the program got that far,
and everything it did outside the seam since the last counted call, such as
a payment sent, has happened) or right *after* it returned
(``when="after"``), or each in turn (``"both"``). k runs from 1 until a run
completes without reaching k; that last run's state is checked too.

After each kill the parent calls ``check(directory)``: reopen the state the
way your program does on a restart (run its recovery, or run the workload
again to the end, with the default file system) and raise (``assert``) if an
invariant does not hold. A check that raises fails that crash point; the
`CrashReport` lists every run, and `CrashReport.assert_passed` raises with
the failed ones.

With ``power_loss=Unsynced.DROP`` (or ``TORN``, ``ZEROS``) every file written
through `fs` is also put back to what its last fsync covered before the kill
(`PowerLossFileSystem`), as a power cut would leave it; without it, a killed
process's writes stay in the page cache and survive. Writes that do not go
through `fs` are never crash points and are never lost.

    >>> import os
    >>> from durability import (EffectOutcome, EvidenceOutcomeCacheEntry,
    ...                         FileEvidenceOutcomeCache)
    >>> def workload(directory, fs):
    ...     with FileEvidenceOutcomeCache(directory / "evidence.log", fs=fs) as cache:
    ...         cache.put(EvidenceOutcomeCacheEntry(evidence_id="e", interface_name="I",
    ...             operation_name="o", outcome=EffectOutcome.success("done")))
    >>> def check(directory):
    ...     with FileEvidenceOutcomeCache(directory / "evidence.log") as cache:
    ...         entry = cache.get("e")
    ...         assert entry is None or entry.outcome.response == "done"
    >>> report = crash_test(workload, check)
    >>> report.passed, len(report.runs) > 1
    (True, True)
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Literal, NoReturn

import attrs

from ..fileio import FileSystem
from .crashreport import CrashPoint, CrashReport, CrashRun
from .powerloss import PowerLossFileSystem, Unsynced

__all__ = ["CrashPoint", "CrashReport", "CrashRun", "crash_test"]

#: Which calls through the seam are crash points.
Points = Literal["writes", "fsyncs", "both"]
#: Whether a kill lands before a crash point's call or right after it.
When = Literal["before", "after", "both"]

_OPS: dict[str, frozenset[str]] = {
    "writes": frozenset({"write"}),
    "fsyncs": frozenset({"sync", "sync_dir"}),
    "both": frozenset({"write", "sync", "sync_dir"}),
}
#: `FileSystem` names its temporary files ``<path>.tmp-<pid>-<hex>``: shown as
#: ``<path>.tmp`` so reports read the same every run.
_TEMP = re.compile(r"\.tmp-\d+-[0-9a-f]+$")


class _KillingFileSystem(PowerLossFileSystem):
    """The seam the workload gets: counts crash points and, at the chosen one,
    reports it on `report_fd`, cuts the power if asked, and SIGKILLs the process."""

    def __init__(
        self,
        *,
        directory: Path,
        kill_at: int,
        ops: frozenset[str],
        when: str,
        power_loss: Unsynced | None,
        rng: random.Random,
        report_fd: int,
    ) -> None:
        super().__init__()
        self.count = 0
        self._directory = str(directory)
        self._kill_at, self._ops, self._when = kill_at, ops, when
        self._power, self._rng, self._report = power_loss, rng, report_fd
        self._counting = threading.Lock()

    def _reached(self, op: str, path: str) -> bool:
        """Count `op` if it is a crash point; whether it is the chosen one (then
        the lock stays held, so no other thread passes a crash point)."""
        if op not in self._ops:
            return False
        self._counting.acquire()
        self.count += 1
        if self.count == self._kill_at:
            if self._when == "before":
                self._die(op, path)
            return True
        self._counting.release()
        return False

    def _die(self, op: str, path: str) -> NoReturn:
        if self._power is not None:
            self.lose_power_everywhere(self._power, rng=self._rng)
        shown = os.path.relpath(path, self._directory) if os.path.isabs(path) else path
        line = f"point\t{self.count}\t{op}\t{_TEMP.sub('.tmp', shown)}\n"
        os.write(self._report, line.encode()[: select.PIPE_BUF])
        os.kill(os.getpid(), signal.SIGKILL)
        raise SystemExit(137)  # pragma: no cover - SIGKILL is not delivered late

    def write_at(self, fd: int, data: bytes, offset: int, path: str) -> None:
        hit = self._reached("write", path)
        try:
            super().write_at(fd, data, offset, path)
        finally:  # "after": the call returned, or raised
            if hit:
                self._die("write", path)

    def sync(self, fd: int, path: str) -> None:
        hit = self._reached("sync", path)
        try:
            if self._power is not None:
                super().sync(fd, path)  # remembers what the sync covered
            else:
                FileSystem.sync(self, fd, path)
        finally:
            if hit:
                self._die("sync", path)

    def sync_dir(self, directory: str) -> None:
        hit = self._reached("sync_dir", directory)
        try:
            super().sync_dir(directory)
        finally:
            if hit:
                self._die("sync_dir", directory)


@attrs.frozen
class _Ended:
    """How one child ended: killed at `point`, finished after `count` crash
    points, or failed with `error` (its exception, or a timeout)."""

    point: CrashPoint | None = None
    count: int | None = None
    error: str | None = None


def _child(
    workload: Callable[[Path, FileSystem], object], directory: Path, fs: _KillingFileSystem
) -> NoReturn:  # pragma: no cover - runs in the forked child
    code, line = 0, ""
    try:
        workload(directory, fs)
        line = f"done\t{fs.count}\n"
    except BaseException as exc:
        code = 1
        where = traceback.format_exc().strip().splitlines()[-3:-1]
        text = f"{type(exc).__name__}: {exc} | {' | '.join(s.strip() for s in where)}"
        line = "error\t" + text.replace("\n", " ")[: select.PIPE_BUF - 16] + "\n"
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(OSError):
            os.write(fs._report, line.encode())
        os._exit(code)


def _run_once(
    workload: Callable[[Path, FileSystem], object],
    directory: Path,
    *,
    kill_at: int,
    ops: frozenset[str],
    when: str,
    power_loss: Unsynced | None,
    seed: int,
    timeout: float,
) -> _Ended:
    """Fork a child running `workload` that dies at crash point `kill_at`."""
    read_end, write_end = os.pipe()
    fs = _KillingFileSystem(
        directory=directory,
        kill_at=kill_at,
        ops=ops,
        when=when,
        power_loss=power_loss,
        rng=random.Random(seed * 1_000_003 + kill_at),
        report_fd=write_end,
    )
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_end)
        _child(workload, directory, fs)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    timed_out = True
    while (remaining := deadline - time.monotonic()) > 0:
        if select.select([read_end], [], [], remaining)[0]:
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                timed_out = False
                break
            chunks.append(chunk)
    if timed_out:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(read_end)
    if timed_out:
        return _Ended(error=f"the workload did not end within {timeout:g} s (killed)")
    for line in b"".join(chunks).decode(errors="replace").splitlines():
        kind, _, rest = line.partition("\t")
        if kind == "point":
            k, op, path = rest.split("\t", 2)
            return _Ended(point=CrashPoint(k=int(k), op=op, path=path, when=when))
        if kind == "done":
            return _Ended(count=int(rest))
        if kind == "error":
            return _Ended(error=rest)
    return _Ended(error="the workload's process died without a word (a signal, or os._exit)")


def _checked(check: Callable[[Path], object], directory: Path) -> str | None:
    """What `check` raised on `directory` (``Type: message``), or ``None``."""
    try:
        check(directory)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    return None


def _to_the_end(runs: list[CrashRun]) -> bool:
    """Whether `runs` holds a run to the end (checked once, not per `when`)."""
    return any(run.point is None for run in runs)


def crash_test(
    workload: Callable[[Path, FileSystem], object],
    check: Callable[[Path], object],
    *,
    points: Points = "both",
    when: When = "before",
    power_loss: Unsynced | None = None,
    seed: int = 0,
    workdir: str | os.PathLike[str] | None = None,
    max_points: int = 10_000,
    timeout: float = 60.0,
) -> CrashReport:
    """Kill ``workload(directory, fs)`` at every crash point in turn and run
    ``check(directory)`` on what each kill left; return the `CrashReport`.

    `points`: which calls through `fs` are crash points, ``"writes"``,
    ``"fsyncs"`` (file and directory) or ``"both"``. `when`: the kill lands
    ``"before"`` the call, ``"after"`` it returned, or ``"both"`` (every
    point twice). `power_loss`: also drop (or tear, or zero) what was
    written through `fs` after each file's last fsync. `seed` fixes the
    random choices of ``TORN``/``ZEROS``. Each run gets a new empty
    directory under `workdir` (default: a temporary one, removed at the
    end); with `workdir` given, the directories of failed runs are kept
    there (``before-00004``) and named in the report. A run that does not
    end within `timeout` seconds is killed and reported; more than
    `max_points` crash points stop the test (`CrashReport.complete` is then
    ``False``). A `workload` that raises stops the test, reported as a
    failed run. Both callables run in forked processes or this one, never
    in threads, so they may use anything a test may.
    """
    if points not in _OPS:
        raise ValueError(f"points must be 'writes', 'fsyncs' or 'both', not {points!r}")
    if when not in ("before", "after", "both"):
        raise ValueError(f"when must be 'before', 'after' or 'both', not {when!r}")
    if power_loss is not None and not isinstance(power_loss, Unsynced):
        raise TypeError(f"power_loss must be an Unsynced or None, not {power_loss!r}")
    base = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="crash-test-"))
    base.mkdir(parents=True, exist_ok=True)
    runs: list[CrashRun] = []
    complete, finished = True, False
    try:
        for moment in ("before", "after") if when == "both" else (when,):
            k = 0
            while not finished:
                k += 1
                if k > max_points:
                    complete = False
                    break
                directory = base / f"{moment}-{k:05d}"
                directory.mkdir()
                ended = _run_once(
                    workload,
                    directory,
                    kill_at=k,
                    ops=_OPS[points],
                    when=moment,
                    power_loss=power_loss,
                    seed=seed,
                    timeout=timeout,
                )
                run: CrashRun | None = None
                if ended.error is not None:  # the workload failed on its own: stop
                    run, finished = CrashRun(point=None, error=ended.error), True
                elif ended.point is not None or not _to_the_end(runs):
                    run = CrashRun(point=ended.point, failure=_checked(check, directory))
                keep = workdir is not None and run is not None and not run.passed
                if run is not None:
                    runs.append(attrs.evolve(run, directory=directory if keep else None))
                if not keep:
                    shutil.rmtree(directory, ignore_errors=True)
                if ended.point is None:
                    break  # it ended before crash point k: every point was tried
    finally:
        if workdir is None:
            shutil.rmtree(base, ignore_errors=True)
    return CrashReport(
        runs=tuple(runs), points=points, when=when, power_loss=power_loss, complete=complete
    )
