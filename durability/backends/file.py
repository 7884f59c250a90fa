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

import attrs

from ..artifact import (
    AgreementWalArtifact,
    EvidenceOutcomeCacheArtifact,
    EvidenceOutcomeCacheEntry,
    WalEntry,
    check_cache_entry,
    check_entries,
)
from ..errors import ArtifactTooLargeError, PayloadKindError
from ..fileio import DEFAULT_FS, FileSystem
from ..framing import LogReader, TailKind
from ..index import OperationSummary
from ..limits import MAX_ARTIFACT_BYTES, SCHEMA_VERSION
from ..persisted import PersistedDurabilityArtifact, kind_of
from .log import LogEngine
from .logread import read_records
from .logstate import CacheState, LogState, WalState, interpret_base
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

    def append(self, entry: WalEntry) -> None:
        """Append one entry durably; `EscalationOrderError` leaves the file
        byte-for-byte unchanged."""
        self.append_batch([entry])

    def append_batch(self, entries: Iterable[WalEntry]) -> None:
        """Append all of `entries` as one record (all or nothing, one sync),
        validated against everything any writer appended before."""
        batch = list(entries)
        check_entries(batch)
        if batch:
            self._log.write(_appending(batch))

    async def append_async(self, entry: WalEntry) -> None:
        """`append` for asyncio code; never blocks the event loop. Under
        ``SyncPolicy.GROUP`` concurrent tasks share flushes."""
        await self.append_batch_async([entry])

    async def append_batch_async(self, entries: Iterable[WalEntry]) -> None:
        """`append_batch` for asyncio code; never blocks the event loop."""
        batch = list(entries)
        check_entries(batch)
        if batch:
            await self._log.write_async(_appending(batch))

    def read_since(self, tick: int) -> list[WalEntry]:
        """Entries with ``entry.tick > tick``, in WAL order."""
        return self._log.read(lambda s: [e for e in s.entries if e.tick > tick])

    def load(self) -> AgreementWalArtifact:
        """The whole WAL, including other writers' appends."""
        return self._log.read(lambda s: s.artifact())

    def operation_summary(self, operation_id: str) -> OperationSummary:
        """What the WAL holds about one operation (O(1), from the index)."""
        return self._log.read(lambda s: s.index.summary(operation_id))


def _appending(batch: list[WalEntry]) -> Callable[[WalState], tuple[bytes, Any]]:
    """The decision appending `batch`, validated against the state it meets."""

    def decide(state: WalState) -> tuple[bytes, Any]:
        updates = state.index.check(batch)
        return state.encode(batch), lambda: state.add(batch, updates)

    return decide


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


class FileEvidenceOutcomeCache(_FileLog[CacheState]):
    """An evidence outcome cache in an append-only log file.

    Same file rules as `FileAgreementWal`. `put` appends a binding;
    `put_if_absent` decides under the log's lock, after reading every other
    writer's bindings, so the first durable binding wins across processes.
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


# -- read-only inspection ----------------------------------------------------


@attrs.frozen(kw_only=True)
class RecordSummary:
    """One record of a log: byte `offset`, `type` name, sequence number `seq`,
    payload `length` and the number of entries it holds."""

    offset: int
    type: str
    seq: int
    length: int
    entries: int


@attrs.frozen(kw_only=True)
class LogReport:
    """What `inspect_log` found. `kind` is the payload kind text
    (``"agreement_wal"``, ``"evidence_outcome_cache"``) or ``None`` for an
    empty file; `torn_tail` is what opening the log would truncate."""

    path: str
    size: int
    kind: str | None
    base_verified: bool
    base_bytes: int
    base_entries: int
    records: tuple[RecordSummary, ...]
    #: Entries the log holds now (bindings, for a cache: one per evidence id).
    entries: int
    torn_tail: TornTail | None
    #: The log's content (``None`` for an empty file).
    artifact: AgreementWalArtifact | EvidenceOutcomeCacheArtifact | None = attrs.field(
        repr=False, eq=False
    )
    #: A WAL's operations, by id, as its index summarises them (entries,
    #: proven level, tick range); empty for a cache.
    operations: tuple[OperationSummary, ...] = attrs.field(default=(), repr=False, eq=False)


_STATES: dict[type, type[LogState[Any]]] = {
    AgreementWalArtifact: WalState,
    EvidenceOutcomeCacheArtifact: CacheState,
}


def inspect_log(path: Path, *, fs: FileSystem = DEFAULT_FS) -> LogReport:
    """Read and verify a WAL or cache log without changing it.

    The file is read in bounded chunks under a shared lock, as opening it
    would. Raises `DecodeError` (naming the file and byte offset) on damage,
    `PayloadKindError` for a file holding recovery metadata, `StorageError`
    when the file cannot be read. A torn tail is reported, not an error.
    """
    name = os.fspath(path)
    state: LogState[Any] | None = None
    kind, base_entries, pending, summaries = None, 0, True, []
    fd = fs.open_ro(name)
    try:
        with fs.locked(fd, name, exclusive=False):
            size = fs.size(fd, name)
            reader = LogReader(name)
            for record in read_records(fs, fd, name, reader, size):
                if pending:  # the base, once the base checksum record verified
                    state, kind, base_entries = _inspect_base(reader.base, name)
                    pending = False
                count = state.replay(record, name) if state is not None else 0
                summaries.append(
                    RecordSummary(
                        offset=record.offset,
                        type=record.type.name,
                        seq=record.seq,
                        length=len(record.payload),
                        entries=count,
                    )
                )
            if pending:
                state, kind, base_entries = _inspect_base(reader.base, name)
    finally:
        fs.close(fd)
    tail, torn = reader.tail, None
    if tail is not None:
        if tail.kind is TailKind.DAMAGE:
            raise tail.error(name)
        torn = TornTail(offset=tail.offset, dropped=tail.dropped, reason=tail.reason)
    artifact = state.artifact() if state is not None else None
    return LogReport(
        path=name,
        size=size,
        kind=kind,
        base_verified=reader.base_verified,
        base_bytes=reader.base_end,
        base_entries=base_entries,
        records=tuple(summaries),
        entries=len(artifact.entries) if artifact is not None else 0,
        torn_tail=torn,
        artifact=artifact,
        operations=state.index.summaries() if isinstance(state, WalState) else (),
    )


def _inspect_base(base: Any, name: str) -> tuple[LogState[Any] | None, str | None, int]:
    """The state a decoded `base` (``None``: an empty log) starts, its kind
    and how many entries it holds."""
    if base is None:
        return None, None, 0
    payload = interpret_base(base, name)
    make = _STATES.get(type(payload))
    if make is None:
        raise PayloadKindError(
            f"persisted durability artifact {name} contains recovery metadata, "
            "not an agreement WAL or evidence outcome cache log"
        )
    state = make()
    state.take_base(payload, name)
    return state, kind_of(payload), len(payload.entries)  # type: ignore[union-attr]


def export_artifact(report: LogReport) -> tuple[PersistedDurabilityArtifact, bytes]:
    """The v1 artifact of a log `inspect_log` read, and its bytes.

    Raises `PayloadKindError` for an empty log (its kind is unknown) and
    `ArtifactTooLargeError` over `MAX_ARTIFACT_BYTES` (the Rust original
    would refuse it). The report's `torn_tail` is what was left out.
    """
    if report.artifact is None:
        raise PayloadKindError(f"log {report.path} is empty: its payload kind is unknown")
    artifact = PersistedDurabilityArtifact(schema_version=SCHEMA_VERSION, payload=report.artifact)
    data = artifact.to_cbor()
    if len(data) > MAX_ARTIFACT_BYTES:
        raise ArtifactTooLargeError(
            f"exported artifact would be {len(data)} bytes, max is {MAX_ARTIFACT_BYTES}",
            path=report.path,
        )
    return artifact, data


def export_log(path: Path, *, fs: FileSystem = DEFAULT_FS) -> PersistedDurabilityArtifact:
    """The whole log as one v1 artifact (what the Rust original reads).

    A torn tail is left out (as opening would); damage raises `DecodeError`;
    see `export_artifact` for the other errors.
    """
    return export_artifact(inspect_log(path, fs=fs))[0]
