"""Peak memory of one scan, measured from outside.

``python -m bench.rss_probe measure idle`` and
``python -m bench.rss_probe measure scan PATH`` run the probe (``idle``: an
interpreter with `durability` imported; ``scan``: that plus opening the WAL
at PATH read-only and streaming every entry through ``scan()``, a bounded
batch at a time) in a child process and print the
child's peak resident set size in KiB (``RUSAGE_CHILDREN``), so that nothing
else the harness did counts.
"""

from __future__ import annotations

import resource
import subprocess
import sys


def main(argv: list[str]) -> int:
    if argv[:1] == ["measure"]:
        subprocess.run(
            [sys.executable, "-m", "bench.rss_probe", *argv[1:]],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        return 0
    import durability

    if argv[:1] == ["idle"]:
        return 0
    if argv[:1] == ["scan"] and len(argv) == 2:
        wal = durability.FileAgreementWal(argv[1], read_only=True)
        print(sum(len(batch) for batch in wal.scan()))
        wal.close()
        return 0
    print("usage: python -m bench.rss_probe [measure] (idle | scan PATH)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
