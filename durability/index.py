"""Per-operation index of a WAL, kept in memory by every provided backend.

It answers, in O(1) per entry, what validating an append and serving a
`wal_sync` need: the last escalation level of an operation (escalation order),
the highest level its entries prove (visibility gates), and the stable
identities it already holds (idempotent syncs). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

from .artifact import WalEntry, check_escalations, proven_level
from .model import AgreementLevel, max_level

__all__ = ["OperationSummary", "WalIndex"]


@attrs.frozen(kw_only=True)
class OperationSummary:
    """What a WAL holds about one operation.

    `escalation_level` is the `new_level` of its last escalation (``None``
    before any); `proven_level` the highest level any of its entries proves;
    `identities` the stable identities of its entries.
    """

    operation_id: str
    escalation_level: AgreementLevel | None = None
    proven_level: AgreementLevel = AgreementLevel.NONE
    identities: frozenset[str] = frozenset()


class WalIndex:
    """Mutable per-operation index; `check` then `add` appends a batch."""

    __slots__ = ("_ids", "_last", "_proven")

    def __init__(self, entries: Iterable[WalEntry] = ()) -> None:
        self._last: dict[str, AgreementLevel] = {}
        self._proven: dict[str, AgreementLevel] = {}
        self._ids: dict[str, set[str]] = {}
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
        self._last.update(updates)
        for entry in entries:
            op = entry.operation_id
            level = proven_level(entry)
            self._proven[op] = max_level(self._proven.get(op, AgreementLevel.NONE), level)
            self._ids.setdefault(op, set()).add(entry.stable_identity())

    def summary(self, operation_id: str) -> OperationSummary:
        """The `OperationSummary` of one operation (empty if unknown)."""
        return OperationSummary(
            operation_id=operation_id,
            escalation_level=self._last.get(operation_id),
            proven_level=self._proven.get(operation_id, AgreementLevel.NONE),
            identities=frozenset(self._ids.get(operation_id, ())),
        )
