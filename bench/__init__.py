"""The `durability` benchmark harness: ``python -m bench`` (``--quick`` in CI).

Every figure it reports is a ratio (or a rate) measured in one run, side by
side with its peer on the same disk, repetitions interleaved so that drift of
a shared machine hits both sides. It writes ``RESULTS.md`` (the targets table:
medians, ratios, target, met or missed; the machine and the date),
``results.json`` and ``chart.png`` into ``--out`` (this folder by default).

Modules, one per group of rows:

* `bench.append`: durable appends against the physical limits
  (``os.write`` + ``os.fdatasync`` of the same bytes), sqlite3 and the
  eventsourcing recorders; ``append_batch``; group commit from threads and
  from asyncio tasks;
* `bench.original`: the Rust original's algorithm, written here as a
  labelled baseline (rewrite the whole artifact per append; a planner that
  scans the suffix once per operation);
* `bench.load`: cold load, open + plan and peak memory against WAL size
  (and the chart);
* `bench.handlers`: ``wal_sync``, evidence cache reads, and evidence-cached
  effects against DBOS Transact steps;
* `bench.peers`: the optional peers (eventsourcing, DBOS) and sqlite3;
* `bench.runner`, `bench.report`, `bench.workload`: timing, output, data.

Nothing here is collected by pytest (``tests/test_bench.py`` runs the quick
harness as a subprocess) and nothing here is installed with the package.
"""
