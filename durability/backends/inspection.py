"""Read-only inspection of a log file: `inspect_log` (what ``durability
inspect``/``verify`` show) and `export_log` / `export_artifact` (one v1
artifact, what ``durability export`` writes). Nothing here opens a log for
writing, creates, truncates or repairs anything.
"""

from __future__ import annotations

import os
from typing import Any

import attrs

from ..artifact import AgreementWalArtifact, EvidenceOutcomeCacheArtifact, WalEntry
from ..errors import ArtifactTooLargeError, DecodeError, EscalationOrderError, PayloadKindError
from ..fileio import DEFAULT_FS, FileSystem
from ..framing import LogReader, Record, TailKind
from ..index import OperationSummary
from ..intents import EffectIntent
from ..limits import MAX_ARTIFACT_BYTES, SCHEMA_VERSION
from ..persisted import PersistedDurabilityArtifact, kind_of
from .logread import read_records
from .logstate import CacheState, LogState, WalState, interpret_base
from .modes import TornTail
from .segindex import Layout, SegmentIndex
from .segments import open_sealed, read_layout, read_sealed, segment_file

__all__ = ["LogReport", "RecordSummary", "export_artifact", "export_log", "inspect_log"]

Path = str | os.PathLike[str]


@attrs.frozen(kw_only=True)
class RecordSummary:
    """One record of a log: byte `offset`, `type` name, sequence number `seq`,
    payload `length` and the number of entries it holds."""

    offset: int
    type: str
    seq: int
    length: int
    entries: int
    #: The file holding it: a sealed segment's (``PATH.seg/<n>.log``), or
    #: ``None`` for the log file itself (the active segment).
    file: str | None = None
    #: The WAL sequence of its first entry (``None`` when it holds none).
    first_sequence: int | None = None


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
    #: A cache's intents in doubt (API.md §11), in the order they were
    #: recorded: never part of `artifact`, so an export leaves them out.
    in_doubt: tuple[EffectIntent, ...] = attrs.field(default=(), repr=False, eq=False)
    #: How many evidence ids of a cache have an intent recorded (0 for a WAL).
    intents: int = 0
    #: A WAL's sealed segments, as their indexes say (each file's size and
    #: crc32 were checked against them), oldest first; ``pruned`` the merged
    #: index of the segments pruned away (``None``: none).
    segments: tuple[SegmentIndex, ...] = attrs.field(default=(), repr=False, eq=False)
    pruned: SegmentIndex | None = attrs.field(default=None, repr=False, eq=False)

    def record_holding(self, sequence: int) -> RecordSummary | None:
        """The record holding WAL entry `sequence` (``None``: no such entry,
        or pruned): its `RecordSummary.file` (``None``: this log file) and
        `RecordSummary.offset` say where it lies."""
        for record in self.records:
            first = record.first_sequence
            if first is not None and first <= sequence < first + record.entries:
                return record
        return None

    @property
    def in_doubt_intents(self) -> int:
        """How many intents are in doubt: what an export of the log leaves out."""
        return len(self.in_doubt)


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
            layout = read_layout(fs, name)
            sealed, older = _read_sealed(fs, name, layout)
            size = fs.size(fd, name)
            reader = LogReader(name)
            sequence = layout.first_sequence
            for record in read_records(fs, fd, name, reader, size):
                if pending:  # the base, once the base checksum record verified
                    state, kind, base_entries = _inspect_base(reader.base, name)
                    sequence += base_entries
                    pending = False
                count = state.replay(record, name) if state is not None else 0
                summaries.append(_summary(record, count, None, sequence))
                sequence += count
            if pending:
                state, kind, base_entries = _inspect_base(reader.base, name)
    finally:
        fs.close(fd)
    if layout.history and kind not in (None, "agreement_wal"):
        raise PayloadKindError(f"log {name} holds a cache, but WAL segments lie beside it")
    if older and not isinstance(state, WalState):
        state, kind = WalState(), "agreement_wal"
    if isinstance(state, WalState) and layout.history:
        state.entries[:0] = older
        state.layout = attrs.evolve(layout, sealed=())  # their entries are read
        try:
            state.index.summaries()
        except EscalationOrderError as exc:
            raise DecodeError(f"across segments: {exc}", path=name, offset=0) from exc
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
        records=(*sealed, *summaries),
        entries=len(artifact.entries) if artifact is not None else 0,
        torn_tail=torn,
        artifact=artifact,
        operations=state.index.summaries() if isinstance(state, WalState) else (),
        in_doubt=tuple(state.intents.in_doubt()) if isinstance(state, CacheState) else (),
        intents=len(state.intents.latest) if isinstance(state, CacheState) else 0,
        segments=layout.sealed,
        pruned=layout.pruned,
    )


def _summary(record: Record, count: int, file: str | None, sequence: int) -> RecordSummary:
    return RecordSummary(
        offset=record.offset,
        type=record.type.name,
        seq=record.seq,
        length=len(record.payload),
        entries=count,
        file=file,
        first_sequence=sequence if count else None,
    )


def _read_sealed(
    fs: FileSystem, name: str, layout: Layout
) -> tuple[list[RecordSummary], list[WalEntry]]:
    """The records and entries of every sealed segment, each file checked
    against its index (size, crc32, entry count): `DecodeError` naming the
    segment file otherwise."""
    summaries: list[RecordSummary] = []
    entries: list[WalEntry] = []
    for segment in open_sealed(fs, name, layout.sealed):
        index, fd = segment
        file = segment_file(name, index.segment)
        try:
            crc, sequence, count = [0], index.first_sequence, 0
            for record, held in read_sealed(fs, name, segment, crc=crc):
                if record is not None:  # else the base's entries, at offset 0
                    summaries.append(_summary(record, len(held), file, sequence))
                entries.extend(held)
                sequence += len(held)
                count += len(held)
        finally:
            fs.close(fd)
        if crc[0] != index.crc32 or count != index.entries:
            raise DecodeError(
                f"segment fails its index ({count} entries, crc32 {crc[0]:#010x}; "
                f"the index says {index.entries}, {index.crc32:#010x})",
                path=file,
                offset=0,
            )
    return summaries, entries


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
    would refuse it). What was left out: the report's `torn_tail`, and a
    cache's intents (never part of an artifact), of which
    `LogReport.in_doubt_intents` were in doubt.
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
