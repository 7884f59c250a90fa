#!/usr/bin/env python3
"""Failover without loss, shown: a PostgreSQL primary dies mid-append and
its synchronous standby takes over, and no acknowledged write is lost.

Run it from a checkout (it uses the failover tests' harness, tests/failover):

    python scripts/failover_demo.py                 # synchronous replication
    python scripts/failover_demo.py --asynchronous  # what asynchronous loses
    python scripts/failover_demo.py --at-most-once  # effects at most once: in doubt
    python scripts/failover_demo.py --vanish        # the primary's host vanishes (root)

It starts two private clusters (a primary and a standby made with
``pg_basebackup -R``) on free local ports in a temporary directory, with
Debian's server binaries (``/usr/lib/postgresql/*/bin``; as root they run as
user ``postgres``), and writer processes running operations through
``open_wal``/``open_cache`` of one URL naming both servers
(``target_session_attrs=read-write``): bind an effect's outcome, append its
evidence, ``wal_sync`` its gate. Then it holds the primary's WAL sender (the
standby falls behind), kills the primary (``SIGKILL``), promotes the standby
(``pg_ctl promote``) and lets the same writers carry on. It prints how many
acknowledged writes were lost, and the recovery plan of what the new primary
holds. With ``--at-most-once`` the effects run at most once (each run appends
a line to a sink file), the primary dies while an effect is in flight, and it
also prints the effects in doubt and how many ran twice (none). With
``--vanish`` the primary's host vanishes instead of its processes being
killed: the whole run happens in a private network namespace (``unshare
--net``, as root), the primary in one of its own behind a veth link that goes
down; the writers are freed by the URL's ``tcp_user_timeout``, keepalives and
``connect_timeout``. Everything is
removed on exit. Needs psycopg (``pip install -e '.[dev]'``).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import subprocess

from durability import DurableRecoveryPlan, open_cache, open_wal
from tests.failover import netns
from tests.failover.trial import Trial, run_trial


def report(url: str, trial: Trial) -> None:
    """What was lost, and the recovery plan from what the new primary holds."""
    acknowledged = sum(trial.acknowledged.values())
    print(f"{trial.replication}: {acknowledged} acknowledged writes, lost {len(trial.lost)}")
    for lost in trial.lost[:5]:
        print(f"  lost: {lost}")
    with open_wal(url) as wal, open_cache(url) as cache:
        plan = DurableRecoveryPlan.from_checkpoint(
            None, None, wal.load(), cache.load(), strict=trial.synchronous
        )
    actions = Counter(decision.action.value for decision in plan.decisions)
    print("recovery plan (from_checkpoint(None, None, wal.load(), cache.load())):")
    print(f"  {len(plan.wal_suffix)} WAL entries, {len(plan.evidence_cache.entries)} bindings")
    for action, count in sorted(actions.items()):
        print(f"  {count} operations: {action}")
    print(f"  anomalies: {', '.join(plan.anomalies) if plan.anomalies else 'none'}")
    for decision in plan.decisions[:3]:
        print(
            f"  e.g. {decision.operation_id}: {decision.action.value} at "
            f"{decision.level.value}, gate crossed: {decision.gate_crossed}, "
            f"cached evidence {list(decision.cached_evidence_ids)}"
        )
    if trial.at_most_once:
        print(
            f"effects at most once: {trial.sink_lines} runs, "
            f"{len(trial.sink_duplicates)} evidence ids run twice; in doubt after the failover "
            f"(cache.in_doubt()): {', '.join(trial.reported_in_doubt) or 'none'}"
        )
        for evidence_id in trial.reported_in_doubt:
            print(
                f"  an operator settles {evidence_id}: durability resolve URL {evidence_id} "
                "--success JSON (it happened) | --not-done (it did not)"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--asynchronous", action="store_true", help="no synchronous standby")
    parser.add_argument("--writers", type=int, default=3, help="writer processes (3)")
    parser.add_argument(
        "--at-most-once", action="store_true", help="effects at most once, with sinks"
    )
    parser.add_argument(
        "--lag", type=float, default=0.25, help="seconds the standby is held behind (0.25)"
    )
    parser.add_argument(
        "--vanish", action="store_true", help="the primary's host vanishes (root; unshare)"
    )
    args = parser.parse_args()
    if args.vanish and not netns.in_private_namespace():
        lacking = netns.missing_tools()
        if lacking:
            parser.error(f"--vanish needs {', '.join(lacking)}")
        argv = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]]
        return subprocess.run(netns.private_namespace_command(argv)).returncode
    trial = run_trial(
        synchronous=not args.asynchronous,
        lag=args.lag,
        writers=args.writers,
        at_most_once=args.at_most_once,
        vanish=args.vanish,
        say=lambda step: print(f"- {step}", flush=True),
        inspect=report,
    )
    print(trial.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
