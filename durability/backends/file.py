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
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from ..artifact import (
    AgreementWalArtifact,
    EvidenceOutcomeCacheArtifact,
    EvidenceOutcomeCacheEntry,
    WalEntry,
    check_cache_entry,
    check_entries,
    check_sequence_arguments,
    sequenced,
)
from ..effects import EffectOutcome
from ..errors import SequenceConflictError
from ..fileio import DEFAULT_FS, FileSystem
from ..index import OperationSummary
from ..intents import EffectIntent, check_intent, resolve_with
from .inspection import LogReport, RecordSummary, export_artifact, export_log, inspect_log
from .log import LogEngine
from .logstate import CacheState, LogState, WalState
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
    "export_artifact",
    "export_log",
    "inspect_log",
]

Path = str | os.PathLike[str]


_S = TypeVar("_S", bound=LogState[Any])


class _FileLog(Generic[_S]):
    """What both file backends share: the engine, attributes, closing."""

    _log: LogEngine[_S]
    _new_state: Callable[[], _S]

    def __init__(
        self,
        path: Path,
        *,
        sync: SyncPolicy = SyncPolicy.DURABLE,
        recovery: RecoveryMode = RecoveryMode.TOLERATE_TORN_TAIL,
        read_only: bool = False,
        fs: FileSystem = DEFAULT_FS,
    ) -> None:
        self._log = LogEngine(
            path, self._new_state, sync=sync, recovery=recovery, fs=fs, read_only=read_only
        )

    @property
    def path(self) -> str:
        """The log file's path."""
        return self._log.path

    @property
    def read_only(self) -> bool:
        """Whether the log was opened with ``read_only=True``: it is never
        created, written, truncated or repaired, and writes raise `StorageError`."""
        return self._log.read_only

    @property
    def base_verified(self) -> bool:
        """Whether a checksum vouches for the base (``False`` for a foreign
        base: a file written by ``write_to_path`` or the Rust original)."""
        return self._log.base_verified

    @property
    def torn_tail(self) -> TornTail | None:
        """The last repair made while opening or catching up (``None`` if the
        log was clean); read-only, the torn tail a writer would cut."""
        return self._log.torn_tail

    def sync(self) -> None:
        """Make everything written so far durable (for ``SyncPolicy.NONE``).
        A failure raises `LogPoisonedError`."""
        self._log.sync()

    def close(self) -> None:
        """Release the file; optional (dropping the instance does the same)."""
        self._log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"


class FileAgreementWal(_FileLog[WalState]):
    """An agreement WAL in an append-only log file.

    `path` is created (mode 0600) as an empty WAL if missing; a file holding
    one v1 WAL artifact opens as-is. Opening raises `PayloadKindError` for
    another kind of file and `DecodeError` (naming the file and byte offset)
    for a damaged one; a torn tail is truncated and reported (`torn_tail`).

    >>> import tempfile, os
    >>> from durability import Escalation, AgreementLevel as L
    >>> d = tempfile.mkdtemp()
    >>> with FileAgreementWal(os.path.join(d, "wal.log")) as wal:
    ...     wal.append(Escalation(operation_id="op", previous_level=L.NONE,
    ...                           new_level=L.SOFT_SAFE, tick=1))
    ...     len(wal.load().entries)
    1
    """

    _new_state = WalState

    def append(self, entry: WalEntry, *, expected_sequence: int | None = None) -> int:
        """Append one entry durably; return its sequence. `EscalationOrderError`
        leaves the file byte-for-byte unchanged. See `append_batch`."""
        return self.append_batch([entry], expected_sequence=expected_sequence)

    def append_batch(
        self, entries: Iterable[WalEntry], *, expected_sequence: int | None = None
    ) -> int:
        """Append all of `entries` as one record (all or nothing, one sync),
        validated against everything any writer appended before; return the
        new last sequence. With `expected_sequence`, `SequenceConflictError`
        (nothing written) unless the last sequence is still that under the
        writers' lock."""
        decide, last = _appending(list(entries), expected_sequence, self.path)
        self._log.write(decide)
        return last[0]

    async def append_async(self, entry: WalEntry, *, expected_sequence: int | None = None) -> int:
        """`append` for asyncio code; never blocks the event loop. Under
        ``SyncPolicy.GROUP`` concurrent tasks share flushes."""
        return await self.append_batch_async([entry], expected_sequence=expected_sequence)

    async def append_batch_async(
        self, entries: Iterable[WalEntry], *, expected_sequence: int | None = None
    ) -> int:
        """`append_batch` for asyncio code; never blocks the event loop."""
        decide, last = _appending(list(entries), expected_sequence, self.path)
        await self._log.write_async(decide)
        return last[0]

    @property
    def last_sequence(self) -> int:
        """The sequence (1-based position) of the last entry appended by
        anyone; 0 when empty."""
        return self._log.read(lambda s: len(s.entries))

    def poll(self, after_sequence: int, limit: int) -> list[tuple[int, WalEntry]]:
        """Up to `limit` ``(sequence, entry)`` pairs after `after_sequence`, in
        order, other writers' appends included: tail the WAL by passing the
        last sequence seen."""
        return self._log.read(lambda s: sequenced(s.entries, after_sequence, limit))

    def read_since(self, tick: int) -> list[WalEntry]:
        """Entries with ``entry.tick > tick``, in WAL order."""
        return self._log.read(lambda s: [e for e in s.entries if e.tick > tick])

    def load(self) -> AgreementWalArtifact:
        """The whole WAL, including other writers' appends."""
        return self._log.read(lambda s: s.artifact())

    def operation_summary(self, operation_id: str) -> OperationSummary:
        """What the WAL holds about one operation (O(1), from the index)."""
        return self._log.read(lambda s: s.index.summary(operation_id))


def _appending(
    batch: list[WalEntry], expected: int | None, path: str
) -> tuple[Callable[[WalState], tuple[bytes, Any] | None], list[int]]:
    """The decision appending `batch`, validated against the state it meets
    (and its last sequence against `expected`), and the one-item list that
    holds the new last sequence once it ran."""
    check_entries(batch)
    check_sequence_arguments(expected_sequence=expected)
    last = [0]

    def decide(state: WalState) -> tuple[bytes, Any] | None:
        last[0] = len(state.entries)
        if expected is not None and expected != last[0]:
            raise SequenceConflictError(expected, last[0], path)
        if not batch:
            return None
        updates = state.index.check(batch)
        last[0] += len(batch)
        return state.encode(batch), lambda: state.add(batch, updates)

    return decide, last


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


class FileEvidenceOutcomeCache(_FileLog[CacheState]):
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
