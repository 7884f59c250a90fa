"""Failover with effects at most once (issue 17 item 3): the same failover as
`test_failover.py`, with writers whose effects run through
`EvidencePersistenceHandler` under ``AT_MOST_ONCE`` on the multi-host URL
(intents included), each run appending one line to a sink file. The primary
is killed while the first writer's effect is in flight (it ran; its outcome
was not bound yet), the standby is promoted, the writers carry on. Then:

* no outcome a writer saw bound is lost;
* no evidence id appears twice in the sinks: no effect ran again;
* ``in_doubt()`` reports exactly the effects the writers were told are in
  doubt, at most one per writer: a writer has one effect in flight when its
  connection is lost, and only that one can be left without a known fate
  (its intent committed, its binding did not, or the COMMIT of either was
  cut off). Nothing else is reported in doubt.

``DURABILITY_FAILOVER_TRIALS`` (default 2 here) sets the number of trials;
every other one holds the standby 0.25 s behind first, so the kill lands in
the middle of every writer's COMMIT. The numbers are printed at the end of
the run ("failover trials"). ``scripts/failover_demo.py --at-most-once``
shows one trial; `test_vanish.py` runs it (with the primary's host vanishing).
"""

from __future__ import annotations

import os

import pytest

from tests.failover import clusters
from tests.failover.trial import Trial, run_trial

pytest.importorskip("psycopg") if not os.environ.get("CI") else __import__("psycopg")

TRIALS = int(os.environ.get("DURABILITY_FAILOVER_TRIALS", "2"))
LAG = 0.25


@pytest.fixture(scope="module")
def trials() -> list[Trial]:
    clusters.require_clusters()
    return [
        run_trial(synchronous=True, lag=LAG if n % 2 else 0.0, at_most_once=True)
        for n in range(TRIALS)
    ]


def test_no_bound_outcome_is_lost(trials: list[Trial]) -> None:
    for trial in trials:
        assert trial.acknowledged["bindings"] > 0, trial.summary()
        assert trial.lost == [], trial.summary()
        assert trial.duplicates == [] and trial.gapless, trial.summary()


def test_no_effect_runs_twice(trials: list[Trial]) -> None:
    for trial in trials:
        assert trial.sink_lines >= trial.acknowledged["bindings"] > 0, trial.summary()
        assert trial.unreported_runs == [], trial.summary()  # the sinks saw every run
        assert trial.sink_duplicates == [], trial.summary()
        assert trial.repeated_effects == [], trial.summary()


def test_every_effect_in_doubt_is_reported_and_nothing_else(trials: list[Trial]) -> None:
    for trial in trials:
        assert trial.reported_in_doubt == trial.told, trial.summary()
        assert all(len(ids) <= 1 for ids in trial.told_in_doubt.values()), trial.summary()
    # the kill landed while an effect was in flight: the check above is not vacuous
    assert sum(len(trial.told) for trial in trials) >= 1


def test_the_writers_carried_on_and_the_plan_is_sound(trials: list[Trial]) -> None:
    for trial in trials:
        assert min(trial.after_promotion.values()) >= 10, trial.summary()
        assert trial.anomalies == () and trial.unplanned == [], trial.summary()
