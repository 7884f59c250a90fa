"""Per-operation index of a WAL, kept in memory by every provided backend.

It answers, in O(1) per entry, what validating an append and serving a
`wal_sync` need: the last escalation level of an operation (escalation order),
the highest level its entries prove (visibility gates), and the stable
identities it already holds (idempotent syncs). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from .artifact import WalEntry, check_escalations, proven_level
from .model import AgreementLevel, max_level

__all__ = ["OperationSummary", "WalIndex"]


@attrs.frozen(kw_only=True)
class OperationSummary:
    """What a WAL holds about one operation.

    `escalation_level` is the `new_level` of its last escalation (``None``
    before any); `proven_level` the highest level any of its entries proves;
    `identities` the stable identities of its entries; `entries` how many it
    has, with ticks from `first_tick` to `last_tick` (the lowest and highest;
    ``None`` without entries).
    """

    operation_id: str
    escalation_level: AgreementLevel | None = None
    proven_level: AgreementLevel = AgreementLevel.NONE
    identities: frozenset[str] = frozenset()
    entries: int = 0
    first_tick: int | None = None
    last_tick: int | None = None


class WalIndex:
    """Mutable per-operation index; `check` then `add` appends a batch.

    Per operation it keeps one small list: ``[entries, first tick, last
    tick, proven level, the entries added]``. Stable identities are built
    only when a summary asks for them (never while appending or replaying):
    the entries themselves are kept, so `summary` answers exactly what
    building the strings at `add` would have."""

    __slots__ = ("_last", "_ops")

    def __init__(self, entries: Iterable[WalEntry] = ()) -> None:
        self._last: dict[str, AgreementLevel] = {}
        self._ops: dict[str, list[Any]] = {}
        batch = list(entries)
        self.add(batch, self.check(batch))

    def check(self, entries: Sequence[WalEntry]) -> dict[str, AgreementLevel]:
        """Validate a batch against the index (which is not changed).

        Returns the escalation updates to pass to `add`; raises
        `EscalationOrderError` when an escalation is out of order.
        """
        return check_escalations(entries, self._last)

    def add(self, entries: Sequence[WalEntry], updates: dict[str, AgreementLevel]) -> None:
        """Record a batch that `check` accepted."""
        if updates:
            self._last.update(updates)
        ops = self._ops
        for entry in entries:
            op, tick, level = entry.operation_id, entry.tick, proven_level(entry)
            seen = ops.get(op)
            if seen is None:
                ops[op] = [1, tick, tick, level, [entry]]
                continue
            seen[0] += 1
            if tick < seen[1]:
                seen[1] = tick
            elif tick > seen[2]:
                seen[2] = tick
            if level._rank > seen[3]._rank:
                seen[3] = level
            seen[4].append(entry)

    def seed(
        self,
        operation_id: str,
        escalation: AgreementLevel | None,
        proven: AgreementLevel,
        entries: int,
        ticks: tuple[int, int],
    ) -> None:
        """Account for `entries` earlier entries of an operation known only by
        their summary (a sealed or pruned WAL segment's index): the last
        escalation reached `escalation`, they prove `proven`, their ticks run
        from ``ticks[0]`` to ``ticks[1]``. Their identities are not known."""
        if escalation is not None:
            self._last[operation_id] = escalation
        seen = self._ops.get(operation_id)
        if seen is None:
            self._ops[operation_id] = [entries, ticks[0], ticks[1], proven, []]
            return
        seen[0] += entries
        seen[1], seen[2] = min(seen[1], ticks[0]), max(seen[2], ticks[1])
        seen[3] = max_level(seen[3], proven)

    def summary(self, operation_id: str) -> OperationSummary:
        """The `OperationSummary` of one operation (empty if unknown)."""
        seen = self._ops.get(operation_id)
        if seen is None:
            return OperationSummary(
                operation_id=operation_id, escalation_level=self._last.get(operation_id)
            )
        count, first, last, proven, held = seen
        return OperationSummary(
            operation_id=operation_id,
            escalation_level=self._last.get(operation_id),
            proven_level=proven,
            identities=frozenset([entry.stable_identity() for entry in held]),
            entries=count,
            first_tick=first,
            last_tick=last,
        )

    def summaries(self) -> tuple[OperationSummary, ...]:
        """The `OperationSummary` of every operation with an entry, by operation id."""
        return tuple(self.summary(op) for op in sorted(self._ops))
