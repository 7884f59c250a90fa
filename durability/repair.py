"""Repairing a log file, never in place: `repair_log` (``durability repair
PATH --apply``).

The repair makes the cut `scan_for_repair` describes (a torn tail as opening
for writing would cut it; damage as `RecoveryMode.POINT_IN_TIME` would, keeping
the valid prefix), but writes the repaired log beside the original first:

1. take the log's lock without waiting, and refuse (`LogInUseError`, nothing
   changed) when another process holds it or, where ``/proc`` shows it, has
   the log open at all: a writer that kept it open would go on appending to
   the damaged copy;
2. scan the log again under that lock;
3. copy the bytes to keep to a new file beside it (``PATH.repair-*``, the
   original's permissions), fsync it, and verify it with the verifier of
   ``durability verify`` (`verify_report`): it must read whole, with no torn
   tail, and hold exactly the records kept; otherwise it is removed and
   `RepairRefusedError` says why (nothing changed);
4. link the original as ``PATH.damaged-<UTC timestamp>``, rename the repaired
   file over ``PATH`` (atomic: ``PATH`` is always a whole log, old or new) and
   fsync the directory.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
from collections.abc import Callable
from datetime import UTC, datetime

import attrs

from .backends.inspection import inspect_log
from .errors import DurabilityError, LogInUseError, RepairRefusedError, StorageError
from .fileio import DEFAULT_FS, FileSystem
from .repair_scan import RepairPlan, RepairState, scan_open
from .verify import VerifyReport, verify_report

__all__ = ["COPY_CHUNK_BYTES", "RepairResult", "open_elsewhere", "repair_log"]

#: Bytes copied at a time into the repaired file.
COPY_CHUNK_BYTES = 1 << 20


@attrs.frozen(kw_only=True)
class RepairResult:
    """What `repair_log` did: the `plan` it carried out (found under the
    log's lock), whether it `applied` a repair (``False``: the log was clean),
    where the damaged file is kept (`damaged_copy`) and the verification of
    the repaired log (`verification`; its consistency problems, a gate above
    the proven level, were already in the bytes kept and are reported, not
    repaired)."""

    plan: RepairPlan
    applied: bool = False
    damaged_copy: str | None = None
    verification: VerifyReport | None = None


def repair_log(
    path: str | os.PathLike[str],
    *,
    fs: FileSystem = DEFAULT_FS,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RepairResult:
    """Repair the log file `path` as the module says; a clean log is left
    untouched. Raises `LogInUseError` when another process holds or has the
    log open, `RepairRefusedError` for damage no repair may cut or a repaired
    copy that fails verification, `StorageError` for what the system refuses;
    in each case nothing was changed. `now` gives the time in the name of the
    damaged copy."""
    name = os.fspath(path)
    fd = fs.open_ro(name)  # a link or anything but a regular file is refused
    try:
        _lock_now(fd, name)
        holders = open_elsewhere(name, ignore_fd=fd)
        if holders:
            pid, command = holders[0]
            raise LogInUseError(
                f"{name} is open in process {pid} ({command}): stop it, then repair; "
                "nothing was changed",
                name,
            )
        plan = scan_open(fs, fd, name)
        if plan.state is RepairState.CLEAN:
            return RepairResult(plan=plan)
        if plan.state is RepairState.UNREPAIRABLE or plan.offset is None:
            raise RepairRefusedError(
                f"{name} cannot be repaired: {plan.reason}; nothing was changed"
            )
        temp = _write_prefix(fs, fd, name, plan.offset)
        try:
            verification = _verify(fs, temp, plan, name)
            aside = _keep_aside(fs, name, now())
            fs.rename(temp, name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        fs.sync_dir(os.path.dirname(name))
    finally:
        fs.close(fd)  # releases the lock
    return RepairResult(plan=plan, applied=True, damaged_copy=aside, verification=verification)


def _lock_now(fd: int, name: str) -> None:
    """Take the log's exclusive lock (the one its writers take) without waiting."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        raise LogInUseError(
            f"{name} is in use: another process holds its lock (a writer appending?); "
            "stop it, then repair; nothing was changed",
            name,
        ) from exc
    except OSError as exc:
        raise StorageError(f"lock {name}: {exc.strerror or exc}") from exc


def open_elsewhere(path: str, *, ignore_fd: int | None = None) -> list[tuple[int, str]]:
    """``(pid, command name)`` of the processes ``/proc`` shows with `path`
    open, this one included but for its descriptor `ignore_fd` (empty where
    there is no ``/proc``; processes this user may not look into are not seen)."""
    try:
        target = os.stat(path)
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []
    me, found = os.getpid(), []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            if pid == me and fd == str(ignore_fd):
                continue
            try:
                info = os.stat(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if (info.st_dev, info.st_ino) == (target.st_dev, target.st_ino):
                found.append((pid, _command(pid)))
                break
    return found


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as comm:
            return comm.read().strip() or "?"
    except OSError:
        return "?"


def _write_prefix(fs: FileSystem, fd: int, name: str, length: int) -> str:
    """Copy the first `length` bytes of the open log to a new file beside it
    (the log's permission bits), fsynced; return its name."""
    temp = f"{name}.repair-{os.getpid()}-{secrets.token_hex(4)}"
    out = fs.open_rw_exclusive(temp)
    try:
        os.fchmod(out, stat.S_IMODE(os.fstat(fd).st_mode))
        done = 0
        while done < length:
            chunk = fs.read_at(fd, done, min(COPY_CHUNK_BYTES, length - done), name)
            if not chunk:
                raise StorageError(f"read {name}: the file ended at {done} bytes, before {length}")
            fs.write_at(out, chunk, done, temp)
            done += len(chunk)
        fs.sync(out, temp)
    except BaseException:
        fs.close(out)
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fs.close(out)
    return temp


def _verify(fs: FileSystem, temp: str, plan: RepairPlan, name: str) -> VerifyReport:
    """Verify the repaired file as ``durability verify --strict`` reads it,
    and that it holds what `plan` keeps; `RepairRefusedError` otherwise."""
    try:
        report = inspect_log(temp, fs=fs)
    except DurabilityError as exc:  # damage, a wrong kind: the copy is not a whole log
        raise RepairRefusedError(
            f"the repaired copy of {name} does not read back ({exc}); nothing was changed"
        ) from exc
    result = verify_report(report, strict=True)
    problems = [p for p in result.problems if p not in result.consistency_problems]
    records = len(report.records)
    size = report.size
    if records != plan.kept_records or size != plan.offset:
        problems.append(
            f"holds {records} records in {size} bytes, expected {plan.kept_records} "
            f"in {plan.offset}"
        )
    if problems:
        raise RepairRefusedError(
            f"the repaired copy of {name} fails verification ({'; '.join(problems)}); "
            "nothing was changed"
        )
    return result


def _keep_aside(fs: FileSystem, name: str, when: datetime) -> str:
    """Link the log as ``<name>.damaged-<UTC timestamp>`` (``-2``, ``-3``, ...
    when taken) and return that name."""
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1, 1000):
        aside = f"{name}.damaged-{stamp}" + (f"-{n}" if n > 1 else "")
        fs.refuse_link(aside, "create")
        if fs.link(name, aside):
            return aside
    raise StorageError(
        f"create {name}.damaged-{stamp}: {os.strerror(errno.EEXIST)} (999 times over)"
    )
