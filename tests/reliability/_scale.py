"""How big the reliability suites run: CI size by default, the long runs with
``DURABILITY_LONG=1`` in the environment (README, "Reliability"). Seeds are
fixed unless ``DURABILITY_SEED`` says otherwise, so a CI failure replays."""

from __future__ import annotations

import os
import random

#: Run the long sizes (``DURABILITY_LONG=1``).
LONG = os.environ.get("DURABILITY_LONG", "") not in ("", "0")
#: Base seed of every random choice in the suites.
SEED = int(os.environ.get("DURABILITY_SEED", "20240613"))


def scaled(ci: int, long: int) -> int:
    """`ci` normally, `long` under ``DURABILITY_LONG=1``."""
    return long if LONG else ci


def rng(salt: str) -> random.Random:
    """A random source of its own for each test, from the base seed."""
    return random.Random(f"{SEED}:{salt}")


def figure(suite: str, **counts: object) -> None:
    """Record what a suite tried and saw, as one JSON line appended to the file
    named by ``DURABILITY_FIGURES`` (how the README's table is made); a no-op
    without it."""
    target = os.environ.get("DURABILITY_FIGURES")
    if target:
        import json

        with open(target, "a") as out:
            out.write(json.dumps({"suite": suite, "long": LONG, **counts}) + "\n")
