"""Append-only file backends: `FileAgreementWal` and `FileEvidenceOutcomeCache`.

Each is a thin layer over one `LogEngine` (``backends/log.py``): a log file
(``specs/log_format.md``) is a v1 artifact (the base) followed by
checksummed records, one per ``append``/``append_batch``/``put``. Appends cost
O(1) amortised (nothing written is read or rewritten), are durable before they
return (`SyncPolicy`), are safe across threads, instances and processes
(``flock``), and a crash can only leave a torn tail, which the next open
truncates and reports (`RecoveryMode`).

`inspect_log` and `export_log` read a log without changing it (``durability
inspect``/``verify``/``export``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from ..artifact import (
    EvidenceOutcomeCacheArtifact,
    EvidenceOutcomeCacheEntry,
    check_cache_entry,
)
from ..effects import EffectOutcome
from ..intents import EffectIntent, check_intent, resolve_with
from .filelog import FileLog
from .filewal import FileAgreementWal, WalPart
from .inspection import LogReport, RecordSummary, export_artifact, export_log, inspect_log
from .logstate import CacheState, LogState
from .modes import RecoveryMode, SyncPolicy, TornTail, TornTailWarning

__all__ = [
    "FileAgreementWal",
    "FileEvidenceOutcomeCache",
    "LogReport",
    "RecordSummary",
    "RecoveryMode",
    "SyncPolicy",
    "TornTail",
    "TornTailWarning",
    "WalPart",
    "export_artifact",
    "export_log",
    "inspect_log",
]

Path = str | os.PathLike[str]


_S = TypeVar("_S", bound=LogState[Any])


def _binding_if_absent(
    entry: EvidenceOutcomeCacheEntry,
) -> tuple[Callable[[CacheState], tuple[bytes, Any] | None], list[EvidenceOutcomeCacheEntry]]:
    """The decision binding `entry` unless a terminal outcome is bound, and
    the one-item list that holds the entry bound once it ran."""
    bound = [entry]

    def decide(state: CacheState) -> tuple[bytes, Any] | None:
        existing = state.bindings.get(entry.evidence_id)
        if existing is not None and existing.outcome.is_terminal:
            bound[0] = existing
            return None
        return state.encode([entry]), lambda: state.absorb([entry])

    return decide, bound


def _recording(
    intent: EffectIntent,
) -> tuple[Callable[[CacheState], tuple[Any, Any] | None], list[EffectIntent | None]]:
    """The decision recording `intent` if the compare-and-set admits it, and
    the one-item list that holds the intent recorded once it ran."""
    check_intent(intent)
    recorded: list[EffectIntent | None] = [None]

    def decide(state: CacheState) -> tuple[Any, Any] | None:
        if not state.intents.admits(intent):
            recorded[0] = state.intents.get(intent.evidence_id)
            return None
        recorded[0] = intent
        return state.encode_intent(intent), lambda: state.intents.record(intent)

    return decide, recorded


def _withdrawing(
    evidence_id: str, attempt: int
) -> tuple[Callable[[CacheState], tuple[Any, Any] | None], list[EffectIntent | None]]:
    """The decision withdrawing `attempt` of `evidence_id` when it is open,
    and the one-item list that holds the latest intent once it ran."""
    latest: list[EffectIntent | None] = [None]

    def decide(state: CacheState) -> tuple[Any, Any] | None:
        latest[0] = state.intents.get(evidence_id)
        if not state.intents.withdrawable(evidence_id, attempt):
            return None

        def commit() -> None:
            state.intents.withdraw(evidence_id)
            latest[0] = state.intents.get(evidence_id)

        return state.encode_withdrawal(evidence_id, attempt), commit

    return decide, latest


class FileEvidenceOutcomeCache(FileLog[CacheState]):
    """An evidence outcome cache in an append-only log file.

    Same file rules as `FileAgreementWal`. `put` appends a binding;
    `put_if_absent` decides under the log's lock, after reading every other
    writer's bindings, so the first durable binding wins across processes.
    Intents (API.md §11) are records of their own types in the same log
    (``specs/effects.md``), decided the same way; they are never part of
    `load` or of an export.
    """

    _new_state = CacheState

    def get(self, evidence_id: str) -> EvidenceOutcomeCacheEntry | None:
        """The entry bound to `evidence_id`, or ``None``."""
        return self._log.read(lambda s: s.bindings.get(evidence_id))

    async def get_async(self, evidence_id: str) -> EvidenceOutcomeCacheEntry | None:
        """`get` for asyncio code: never waits for a flush on the event loop."""
        return await self._log.read_async(lambda s: s.bindings.get(evidence_id))

    def put(self, entry: EvidenceOutcomeCacheEntry) -> None:
        """Bind `entry` durably, replacing any entry with its id."""
        check_cache_entry(entry)
        self._log.write(lambda state: (state.encode([entry]), lambda: state.absorb([entry])))

    def put_if_absent(self, entry: EvidenceOutcomeCacheEntry) -> EvidenceOutcomeCacheEntry:
        """First durable binding wins: return the bound terminal entry if there
        is one, else bind `entry` (replacing a blocked one) and return it."""
        check_cache_entry(entry)
        decide, bound = _binding_if_absent(entry)
        self._log.write(decide)
        return bound[0]

    async def put_if_absent_async(
        self, entry: EvidenceOutcomeCacheEntry
    ) -> EvidenceOutcomeCacheEntry:
        """`put_if_absent` for asyncio code; never blocks the event loop.
        Under ``SyncPolicy.GROUP`` concurrent tasks share flushes."""
        check_cache_entry(entry)
        decide, bound = _binding_if_absent(entry)
        await self._log.write_async(decide)
        return bound[0]

    def load(self) -> EvidenceOutcomeCacheArtifact:
        """The whole cache, in binding order."""
        return self._log.read(lambda s: s.artifact())

    # -- intents (API.md §11) ------------------------------------------------------

    def put_intent(self, intent: EffectIntent) -> EffectIntent | None:
        """Durably record `intent` if, under the log's lock and after reading
        every other writer's records, no terminal outcome is bound for its id
        and its attempt is one more than the latest (1 when none); return the
        intent now recorded (``None``: none, a terminal outcome was bound
        without one)."""
        decide, recorded = _recording(intent)
        self._log.write(decide)
        return recorded[0]

    async def put_intent_async(self, intent: EffectIntent) -> EffectIntent | None:
        """`put_intent` for asyncio code; never blocks the event loop. Under
        ``SyncPolicy.GROUP`` concurrent tasks share flushes."""
        decide, recorded = _recording(intent)
        await self._log.write_async(decide)
        return recorded[0]

    def get_intent(self, evidence_id: str) -> EffectIntent | None:
        """The latest intent recorded for `evidence_id` by anyone, or ``None``."""
        return self._log.read(lambda s: s.intents.get(evidence_id))

    async def get_intent_async(self, evidence_id: str) -> EffectIntent | None:
        """`get_intent` for asyncio code: never waits for a flush on the event loop."""
        return await self._log.read_async(lambda s: s.intents.get(evidence_id))

    def withdraw_intent(self, evidence_id: str, attempt: int) -> EffectIntent | None:
        """Durably withdraw `attempt` of `evidence_id` if it is the latest, not
        withdrawn and unbound (else nothing is written); return the latest intent."""
        decide, latest = _withdrawing(evidence_id, attempt)
        self._log.write(decide)
        return latest[0]

    async def withdraw_intent_async(self, evidence_id: str, attempt: int) -> EffectIntent | None:
        """`withdraw_intent` for asyncio code; never blocks the event loop."""
        decide, latest = _withdrawing(evidence_id, attempt)
        await self._log.write_async(decide)
        return latest[0]

    def in_doubt(self) -> list[EffectIntent]:
        """The intents in doubt (anyone's), in the order they were recorded."""
        return self._log.read(lambda s: s.intents.in_doubt())

    def resolve(self, evidence_id: str, outcome: EffectOutcome) -> EffectOutcome:
        """An operator's verdict on an effect in doubt: see `IntentCache.resolve`."""
        return resolve_with(self, evidence_id, outcome)
