"""One failover trial, and what it found.

`run_trial(synchronous=...)`: a primary and its standby (`clusters.py`),
the durability tables created through the multi-host URL, writer processes
(`workers.py`) running operations through that URL; once each has synced
`warmup` operations the primary is killed (``SIGKILL`` to its postmaster
and its other processes) in the middle of their writes (with `lag`, once
its WAL sender was held that long), the standby is promoted a moment later, and
the same writers carry on against it until each has appended `after` more
entries past the WAL's end at promotion. Then fresh handles read everything
back and `Trial` says what was acknowledged and what of it is missing.

With ``at_most_once=True`` the writers run their effects at most once, each
run appending a line to a sink file of its own (`workers.py`), and the
primary is killed while the first writer's effect is in flight (it ran, its
outcome is not bound yet). `check` then also reads the sinks (no evidence id
may appear twice) and ``in_doubt()``: it must list exactly the effects the
writers were told are in doubt.

With ``vanish=True`` the primary's host vanishes instead (`netns.py`: its
network link goes down, its processes keep running, nothing it was sent is
answered or reset), so only libpq's timeouts in the URL (`Pair.url`) free
the writers from it. This needs a private network namespace and root
(``scripts/failover_demo.py --vanish`` makes one).
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from durability import DurableRecoveryPlan, StorageError, open_cache, open_wal
from tests.failover.clusters import Pair, start_pair
from tests.failover.workers import (
    WriterProcess,
    appended_entry,
    operation,
    synced_entries,
)

#: Every trial run in this process, in order (the terminal summary lists them).
RESULTS: list[Trial] = []
#: The summaries of trials run in child processes (listed after those).
CHILD_SUMMARIES: list[str] = []


@dataclass
class Trial:
    """What one trial found. `acknowledged` counts the writes that returned
    (``appends``, ``syncs``, ``bindings``); `lost` describes each of those
    missing after the failover."""

    synchronous: bool
    writers: int
    lag: float = 0.0  # seconds the standby was held behind before the crash
    operations: int = 0
    acknowledged: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    unknown: Counter[str] = field(default_factory=Counter)  # outcome-unknown errors, per step
    had_committed: int = 0  # in-doubt appends append_once found committed
    answered_from_cache: int = 0  # in-doubt bindings answered without running the effect again
    errors: int = 0
    failed_calls: dict[str, int] = field(default_factory=dict)  # per writer
    rolled_back: int = 0  # writers whose handle saw the WAL lose entries
    after_promotion: dict[str, int] = field(default_factory=dict)
    last_sequence: int = 0
    gapless: bool = False
    duplicates: list[str] = field(default_factory=list)
    repeated_effects: list[str] = field(default_factory=list)
    unplanned: list[str] = field(default_factory=list)  # synced operations the plan does not resume
    anomalies: tuple[str, ...] = ()
    plan: DurableRecoveryPlan | None = None
    failover_seconds: float = 0.0  # from the kill to the first append on the new primary
    seconds: float = 0.0
    vanished: bool = False  # the primary's host vanished (its processes were not killed)
    # -- at-most-once writers only ----------------------------------------------------
    at_most_once: bool = False
    sink_lines: int = 0  # runs of the effect, as the sinks hold them
    sink_duplicates: list[str] = field(default_factory=list)  # evidence ids run twice
    unreported_runs: list[str] = field(default_factory=list)  # a "ran" the sink lacks
    told_in_doubt: dict[str, list[str]] = field(default_factory=dict)  # per writer
    reported_in_doubt: list[str] = field(default_factory=list)  # cache.in_doubt() after
    in_doubt_had_run: int = 0  # of those, how many the sinks hold (they had happened)

    @property
    def replication(self) -> str:
        mode = f"{'' if self.synchronous else 'a'}synchronous replication"
        mode = f"{mode}, standby {self.lag:g} s behind" if self.lag else mode
        mode = f"{mode}, the primary's host vanished" if self.vanished else mode
        return f"{mode}, effects at most once" if self.at_most_once else mode

    @property
    def told(self) -> list[str]:
        """The evidence ids the writers were told are in doubt."""
        return sorted(i for ids in self.told_in_doubt.values() for i in ids)

    def effects_summary(self) -> str:
        if not self.at_most_once:
            return ""
        return (
            f"; effects: {self.sink_lines} runs in the sinks, {len(self.sink_duplicates)} "
            f"evidence ids run twice, {len(self.told)} in doubt (at most "
            f"{max((len(v) for v in self.told_in_doubt.values()), default=0)} per writer), "
            f"{len(self.reported_in_doubt)} reported by in_doubt() "
            f"({self.in_doubt_had_run} had run, {len(self.reported_in_doubt) - self.in_doubt_had_run}"
            " had not)"
        )

    def summary(self) -> str:
        a = self.acknowledged
        unknown = sum(self.unknown.values())
        return (
            f"{self.replication}: {self.writers} writers, {self.operations} "
            f"operations, {sum(a.values())} acknowledged ({a['appends']} appends, "
            f"{a['syncs']} syncs, {a['bindings']} bindings), lost {len(self.lost)}; "
            f"{self.errors} failed calls, {unknown} with outcome unknown "
            f"({self.had_committed} appends had committed, {self.answered_from_cache} bindings "
            f"answered from the cache); writers carried on "
            f"{self.failover_seconds:.1f} s after the kill, "
            f"min {min(self.after_promotion.values(), default=0)} appends each on the new primary; "
            f"WAL {'gapless' if self.gapless else 'WITH GAPS'} to {self.last_sequence}, "
            f"{len(self.duplicates)} duplicates, {len(self.anomalies)} plan anomalies"
            f"{self.effects_summary()}; {self.seconds:.1f} s"
        )


def _wait(
    writers: list[WriterProcess], done: Callable[[], bool], what: str, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for writer in writers:
            if writer.done:
                raise AssertionError(f"writer {writer.name} stopped early: {writer.messages[-3:]}")
        if done():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


def _last_sequence(url: str) -> int:
    deadline = time.monotonic() + 30
    while True:
        try:
            with open_wal(url) as wal:
                return wal.last_sequence
        except StorageError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def run_trial(
    *,
    synchronous: bool,
    lag: float = 0.0,
    writers: int = 3,
    warmup: int = 5,
    after: int = 10,
    at_most_once: bool = False,
    vanish: bool = False,
    say: Callable[[str], None] = lambda step: None,
    inspect: Callable[[str, Trial], None] = lambda url, trial: None,
) -> Trial:
    """Run one trial (see the module docs) and record it in `RESULTS`. With
    `lag` (seconds), the primary's WAL sender is held that long before the
    crash, so the standby is behind when the primary dies. With
    `at_most_once`, at-most-once writers with sinks; with `vanish`, the
    primary's host vanishes instead of its processes being killed. `say` is told each
    step; `inspect` gets the URL and the checked trial while the promoted
    standby still runs."""
    started = time.monotonic()
    sinks = Path(tempfile.mkdtemp(prefix="durability-sinks-")) if at_most_once else None
    processes = [  # they import meanwhile
        WriterProcess(f"w{i}", sinks / f"w{i}.jsonl" if sinks else None) for i in range(writers)
    ]
    try:
        with start_pair(synchronous=synchronous, vanishable=vanish) as pair:
            url = pair.url
            mode = "synchronous" if synchronous else "asynchronous"
            say(
                f"primary on port {pair.primary.port}, standby on port {pair.standby.port} ({mode})"
            )
            say(f"URL: {url}")
            with open_wal(url) as wal, open_cache(url) as cache:  # create the tables first
                wal.load()
                cache.load()
            try:
                promoted_at, killed, first = _fail_over(
                    pair, processes, url, lag=lag, warmup=warmup, after=after, say=say
                )
            finally:
                _stop(processes)
            trial = check(url, processes, promoted_at, synchronous=synchronous)
            trial.lag = lag
            trial.vanished = vanish
            trial.failover_seconds = first - killed
            inspect(url, trial)
    finally:
        _stop(processes)
        if sinks is not None:
            shutil.rmtree(sinks, ignore_errors=True)
    trial.seconds = time.monotonic() - started
    RESULTS.append(trial)
    return trial


def _stop(processes: list[WriterProcess]) -> None:
    for process in processes:
        process.ask_to_stop()
    for process in processes:
        process.stop()


def _fail_over(
    pair: Pair,
    processes: list[WriterProcess],
    url: str,
    *,
    lag: float,
    warmup: int,
    after: int,
    say: Callable[[str], None],
) -> tuple[int, float, float]:
    """The writers write, the primary dies, the standby takes over, the
    writers carry on. Returns the WAL's last sequence at the promotion, when
    the primary was killed and when a writer first appended on the new one."""
    for process in processes:
        process.begin(url)
    _wait(
        processes,
        lambda: all(len(p.of("synced")) >= warmup for p in processes),
        f"every writer synced {warmup} operations",
        timeout=60,
    )
    say(f"{len(processes)} writer processes are running operations through the URL")
    if processes[0].sink is not None:  # land while the first writer's effect is in flight
        _wait(processes, lambda: _in_flight(processes[0]), "an effect is in flight", 30)
        say(f"{processes[0].name}'s effect is in flight: it ran, its outcome is not bound yet")
    else:
        _pause(processes, random.uniform(0, 0.05))  # land anywhere in their writes
    if lag:
        pair.hold_wal_sender()
        say(f"the primary's WAL sender is held for {lag:g} s: the standby falls behind")
        _pause(processes, lag)
    if pair.host is not None:
        pair.vanish_primary()
        killed = time.monotonic()
        say("the primary's host vanishes (its link goes down; nothing it was sent is answered)")
    else:
        pair.kill_primary()
        killed = time.monotonic()
        say("the primary is killed (SIGKILL to its postmaster and its processes)")
    _pause(processes, 0.3)  # a failover takes a moment: the writers meet no primary
    pair.promote_standby()
    promoted_at = _last_sequence(url)
    say(f"the standby is promoted (pg_ctl promote); its WAL ends at {promoted_at}")
    first: list[float] = []

    def carried_on() -> bool:
        counts = [sum(1 for m in p.of("appended") if m[3] > promoted_at) for p in processes]
        if not first and any(counts):
            first.append(time.monotonic())
        return all(count >= after for count in counts)

    _wait(processes, carried_on, f"every writer appended {after} more", timeout=60)
    say(f"every writer carried on against the new primary ({after}+ appends each)")
    return promoted_at, killed, first[0]


def _in_flight(writer: WriterProcess) -> bool:
    """Whether `writer`'s latest effect ran and its outcome is not bound yet."""
    last = next((m for m in reversed(writer.messages) if m[0] in ("ran", "bound")), None)
    return last is not None and last[0] == "ran"


def _pause(writers: list[WriterProcess], seconds: float) -> None:
    end = time.monotonic() + seconds
    _wait(writers, lambda: time.monotonic() >= end, "a pause", timeout=seconds + 5)


def check(
    url: str, processes: list[WriterProcess], promoted_at: int, *, synchronous: bool
) -> Trial:
    """Read everything back with fresh handles and compare it with what the
    writers were told."""
    trial = Trial(synchronous=synchronous, writers=len(processes))
    with open_wal(url) as wal, open_cache(url) as cache:
        artifact = wal.load()  # decodes and validates every entry
        trial.last_sequence = wal.last_sequence
        pairs = wal.poll(0, trial.last_sequence + 1)
        bindings = cache.load()
        in_doubt = cache.in_doubt()
    trial.gapless = [s for s, _e in pairs] == list(range(1, trial.last_sequence + 1))
    at = dict(pairs)
    identities = Counter(entry.stable_identity() for _s, entry in pairs)
    trial.duplicates = sorted(i for i, count in identities.items() if count > 1)
    bound = {entry.evidence_id: entry for entry in bindings.entries}
    trial.plan = DurableRecoveryPlan.from_checkpoint(None, None, artifact, bindings, strict=False)
    trial.anomalies = trial.plan.anomalies
    for process in processes:
        _check_writer(trial, process, at, identities, bound, promoted_at)
    if processes and processes[0].sink is not None:
        _check_effects(trial, processes, [intent.evidence_id for intent in in_doubt])
    return trial


def _check_effects(trial: Trial, processes: list[WriterProcess], in_doubt: list[str]) -> None:
    """At-most-once writers: what the sinks hold, and what ``in_doubt()`` reports."""
    trial.at_most_once = True
    trial.reported_in_doubt = sorted(in_doubt)
    runs: Counter[str] = Counter()
    for process in processes:
        assert process.sink is not None
        lines = process.sink.read_text().splitlines() if process.sink.exists() else []
        runs.update(json.loads(line)["evidence_id"] for line in lines)
        ran = {f"{operation(process.name, m[2])}/cert" for m in process.of("ran")}
        trial.unreported_runs += sorted(ran - set(runs))
        trial.told_in_doubt[process.name] = [
            f"{operation(process.name, m[2])}/cert" for m in process.of("in doubt")
        ]
    trial.sink_lines = sum(runs.values())
    trial.sink_duplicates = sorted(i for i, count in runs.items() if count > 1)
    trial.in_doubt_had_run = sum(1 for i in trial.reported_in_doubt if runs[i])


def _check_writer(
    trial: Trial,
    process: WriterProcess,
    at: dict[int, Any],
    identities: Counter[str],
    bound: dict[str, Any],
    promoted_at: int,
) -> None:
    w = process.name
    runs: Counter[str] = Counter()
    unknown_binding: dict[str, int] = {}  # op -> its runs when its binding's outcome was unknown
    for message in process.messages:
        kind, k = message[0], message[2] if len(message) > 2 else None
        op = operation(w, k) if isinstance(k, int) else ""
        if kind == "ran":
            runs[op] = message[3]
        elif kind == "error":
            trial.errors += 1
            trial.failed_calls[w] = trial.failed_calls.get(w, 0) + 1
            if message[4]:
                trial.unknown[message[3]] += 1
                if message[3] == "bind":
                    unknown_binding[op] = runs[op]
        elif kind == "rolled back":
            trial.rolled_back += 1
        elif kind == "bound":
            trial.acknowledged["bindings"] += 1
            entry = bound.get(f"{op}/cert")
            if entry is None or entry.outcome.response != {"op": op, "run": message[3]}:
                trial.lost.append(f"binding of {op}/cert (run {message[3]})")
            if op in unknown_binding and runs[op] == unknown_binding[op]:
                trial.answered_from_cache += 1
        elif kind == "appended":
            trial.acknowledged["appends"] += 1
            trial.had_committed += bool(message[4])
            if at.get(message[3]) != appended_entry(op, k):  # type: ignore[arg-type]
                trial.lost.append(f"append of {op} at sequence {message[3]}")
            if message[3] > promoted_at:
                trial.after_promotion[w] = trial.after_promotion.get(w, 0) + 1
        elif kind == "synced":
            trial.acknowledged["syncs"] += 1
            trial.operations += 1
            missing = [
                entry.stable_identity()
                for entry in synced_entries(op, k)  # type: ignore[arg-type]
                if identities[entry.stable_identity()] == 0
            ]
            if missing:
                trial.lost.append(f"sync of {op}: {', '.join(missing)}")
            decision = trial.plan.decision(op) if trial.plan else None
            if decision is None or f"{op}/cert" not in decision.cached_evidence_ids:
                trial.unplanned.append(op)
    for op, run in runs.items():  # the bound outcome is the effect's last run
        entry = bound.get(f"{op}/cert")
        if entry is not None and entry.outcome.response != {"op": op, "run": run}:
            trial.repeated_effects.append(
                f"{op} ran {run} times, bound run {entry.outcome.response}"
            )
    trial.after_promotion.setdefault(w, 0)
    trial.failed_calls.setdefault(w, 0)
