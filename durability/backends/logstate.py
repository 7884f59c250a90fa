"""What a log's base and records build in memory: `LogState`, one subclass
per log kind (``backends/file.py``), and the bytes of a new, empty log. Pure:
records in, state out."""

from __future__ import annotations

import abc
import contextlib
import gc
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from ..artifact import (
    AgreementWalArtifact,
    EvidenceOutcomeCacheArtifact,
    EvidenceOutcomeCacheEntry,
    WalEntry,
)
from ..codec import decode_item, dumps, dumps_values, from_plain
from ..errors import DecodeError, EscalationOrderError, PayloadKindError
from ..framing import Record, RecordType, base_checksum_payload, encode_record
from ..index import WalIndex
from ..intents import (
    EffectIntent,
    IntentBook,
    encode_intents,
    intent_from_plain,
    withdrawal_from_plain,
    withdrawal_to_plain,
)
from ..model import AgreementLevel
from ..persisted import Payload, envelope_plain, payload_from_envelope, wrong_kind_message
from .segindex import Layout

__all__ = [
    "CacheState",
    "LogState",
    "WalState",
    "decode_entries",
    "gc_paused",
    "initial_bytes",
    "interpret_base",
]

T = TypeVar("T")


class LogState(abc.ABC, Generic[T]):
    """What a log's base and records build in memory (one subclass per kind)."""

    #: The artifact class of the base (and of `artifact()`).
    artifact_type: ClassVar[type[Any]]
    #: The record type carrying this kind's items.
    record_type: ClassVar[RecordType]

    def seed(self, artifact: Any) -> None:
        """Take the items of the base artifact (`EscalationOrderError` if they
        break a rule)."""
        self.absorb(artifact.entries)

    @abc.abstractmethod
    def absorb(self, items: Sequence[T]) -> None:
        """Apply items read from the file or appended (`EscalationOrderError`
        if they break a rule)."""

    def take_base(self, payload: Payload, name: str) -> None:
        """Take the decoded base of log `name`; raises `PayloadKindError` when
        it holds another kind, `DecodeError` (naming the file, offset 0) when
        its items break a rule."""
        if not isinstance(payload, self.artifact_type):
            raise PayloadKindError(wrong_kind_message(type(payload), self.artifact_type))
        try:
            self.seed(payload)
        except EscalationOrderError as exc:
            raise DecodeError(f"base: {exc}", path=name, offset=0) from exc

    @abc.abstractmethod
    def artifact(self) -> Any:
        """Everything held, as one artifact."""

    def encode(self, items: Sequence[T]) -> bytes:
        """The record payload holding `items`."""
        return self.encode_entries(items)

    @staticmethod
    def encode_entries(items: Sequence[Any]) -> bytes:
        """The record payload holding `items` (pure: needs no state, so a
        writer encodes before it takes the log's locks)."""
        return dumps_values(items)

    def replay(self, record: Record, name: str) -> int:
        """Decode and apply one record of log `name`; return how many items it held."""
        if record.type is RecordType.BASE_CHECKSUM:
            return 0
        try:
            plain = _payload(record)
            if record.type is not self.record_type:
                return self.replay_other(record.type, plain)
            items = from_plain({"entries": plain}, self.artifact_type, where="entries").entries
            self.absorb(items)
        except (DecodeError, EscalationOrderError) as exc:
            reason = exc.reason if isinstance(exc, DecodeError) else str(exc)
            raise DecodeError(
                f"record {record.seq}: {reason}", path=name, offset=record.offset
            ) from exc
        return len(items)

    def replay_other(self, record_type: RecordType, plain: Any) -> int:
        """Apply a decoded record of another type than `record_type`; return
        how many items it held. `DecodeError` unless this kind of log holds it."""
        raise DecodeError(f"a {record_type.name} record in a {self.record_type.name} log")


def _payload(record: Record) -> Any:
    """The one CBOR item of a record's payload, decoded."""
    plain, used = decode_item(record.payload)
    if used != len(record.payload):
        raise DecodeError(f"{len(record.payload) - used} trailing payload bytes")
    return plain


def interpret_base(base: Any, name: str) -> Payload:
    """The payload of the decoded `base` of log `name` (`DecodeError`, or its
    subclass `SchemaVersionError`, naming the file when it is not a v1 artifact)."""
    return payload_from_envelope(base, path=name, offset=0)[1]


#: Objects a `gc_paused` block must have built to be filed as old at once.
_MANY_OBJECTS = 100_000


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block, when it runs.

    Replaying or loading builds millions of small objects that stay alive
    (and hold no cycles: reference counting frees what is dropped); each
    few hundred allocations would otherwise start a collection that walks
    them again. Only the caller that found the collector enabled enables it
    again, so pauses nest; a block must never yield to other code.

    When the block built many objects, they are then filed with the oldest
    generation (by ``gc.freeze``/``gc.unfreeze``, two list splices), so the
    next young collection does not walk them all once more; not when the
    program froze objects of its own (unfreezing would release them)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if gc.get_count()[0] > _MANY_OBJECTS and not gc.get_freeze_count():
            gc.freeze()
            gc.unfreeze()
        gc.enable()


def initial_bytes(state: LogState[Any]) -> bytes:
    """A new, empty log of `state`'s kind: base plus its checksum record."""
    base = dumps(envelope_plain(state.artifact_type()))
    return base + encode_record(RecordType.BASE_CHECKSUM, 0, base_checksum_payload(base))


class WalState(LogState[WalEntry]):
    """A WAL log's active segment: its entries, in order, where it sits among
    the segments (`layout`; ``specs/segments.md``) and the per-operation index
    of the whole WAL. A single-file log is one active segment.

    The index of the whole WAL is built on first use (`index`) from the
    segment indexes and the active entries, so opening reads no sealed
    segment; until then, records read are checked against the active
    segment's own entries, and building it checks them against the rest."""

    artifact_type = AgreementWalArtifact
    record_type = RecordType.WAL_ENTRIES

    def __init__(self) -> None:
        self.entries: list[WalEntry] = []
        self.layout = Layout()
        #: The log file's name, for errors (set by the engine).
        self.name = ""
        #: The payload of this segment's seal record, once read (``None``: open).
        self.seal: dict[str, Any] | None = None
        self._own = WalIndex()
        self._index: WalIndex | None = None
        #: op id -> the sealed segments holding its entries (with `_index`).
        self.where: dict[str, list[int]] = {}

    @property
    def last_sequence(self) -> int:
        """The sequence of the last entry (0 when empty)."""
        return self.layout.first_sequence - 1 + len(self.entries)

    @property
    def index(self) -> WalIndex:
        """The per-operation index of the whole WAL (built on first use)."""
        if self._index is None:
            index, where = WalIndex(), dict[str, list[int]]()
            for segment in self.layout.history:
                for op, st in segment.op_states().items():
                    ticks = (st.first_tick, st.last_tick)
                    index.seed(op, st.escalation, st.proven, st.entries, ticks)
                    if not segment.pruned:
                        where.setdefault(op, []).append(segment.segment)
            try:
                updates = index.check(self.entries)
            except EscalationOrderError as exc:
                raise DecodeError(
                    f"the active segment breaks escalation order across segments: {exc}",
                    path=self.name or None,
                ) from exc
            index.add(self.entries, updates)
            self._index, self.where = index, where
        return self._index

    def adopt(self, earlier: WalState, number: int) -> None:
        """Take the whole-WAL index of `earlier`, whose active segment was
        just sealed as segment `number` and nothing written since."""
        if (
            earlier._index is None
            or self.entries
            or self._index is not None
            or self.layout.first_sequence != earlier.last_sequence + 1
        ):
            return
        self._index, self.where = earlier._index, earlier.where
        for op in {entry.operation_id for entry in earlier.entries}:
            self.where.setdefault(op, []).append(number)

    def absorb(self, items: Sequence[WalEntry]) -> None:
        index = self._own if self._index is None else self._index
        self.add(items, index.check(items))

    def add(self, items: Sequence[WalEntry], updates: dict[str, AgreementLevel]) -> None:
        if self.seal is not None:
            raise DecodeError("entries after the segment's seal record")
        self.entries.extend(items)
        (self._own if self._index is None else self._index).add(items, updates)

    def replay_other(self, record_type: RecordType, plain: Any) -> int:
        if record_type is not RecordType.SEGMENT_SEAL:
            return super().replay_other(record_type, plain)
        if self.seal is not None or not isinstance(plain, dict):
            raise DecodeError("a second or malformed segment seal record")
        self.seal = plain
        return 0

    def artifact(self) -> AgreementWalArtifact:
        """The active segment's entries (the whole WAL of a single-file log)."""
        return AgreementWalArtifact(entries=self.entries)


def decode_entries(record: Record, name: str) -> tuple[WalEntry, ...]:
    """The WAL entries of a `RecordType.WAL_ENTRIES` record of log `name`
    (`DecodeError` naming the file and offset when they do not decode)."""
    try:
        plain = _payload(record)
        artifact = from_plain({"entries": plain}, AgreementWalArtifact, where="entries")
    except DecodeError as exc:
        raise DecodeError(
            f"record {record.seq}: {exc.reason}", path=name, offset=record.offset
        ) from exc
    return artifact.entries


class CacheState(LogState[EvidenceOutcomeCacheEntry]):
    """A cache log's bindings, one per evidence id, in binding order, and its
    intents (`RecordType.INTENTS` and `RecordType.INTENT_WITHDRAWALS` records;
    never part of the base or of `artifact`)."""

    artifact_type = EvidenceOutcomeCacheArtifact
    record_type = RecordType.CACHE_BINDINGS

    def __init__(self) -> None:
        self.bindings: dict[str, EvidenceOutcomeCacheEntry] = {}
        self.intents = IntentBook(self.bindings.get)

    def seed(self, artifact: Any) -> None:
        for entry in artifact.entries:  # a v1 artifact's first entry for an id wins
            self.bindings.setdefault(entry.evidence_id, entry)

    def absorb(self, items: Sequence[EvidenceOutcomeCacheEntry]) -> None:
        for entry in items:  # a record's binding replaces (and moves last)
            self.bindings.pop(entry.evidence_id, None)
            self.bindings[entry.evidence_id] = entry
            self.intents.bound_now(entry)

    def replay_other(self, record_type: RecordType, plain: Any) -> int:
        if not isinstance(plain, list):
            raise DecodeError(f"a {record_type.name} record holds {type(plain).__name__}")
        if record_type is RecordType.INTENTS:
            for item in plain:
                self.intents.replay_intent(intent_from_plain(item))
        elif record_type is RecordType.INTENT_WITHDRAWALS:
            for item in plain:
                self.intents.replay_withdrawal(*withdrawal_from_plain(item))
        else:
            return super().replay_other(record_type, plain)
        return len(plain)

    @staticmethod
    def encode_intent(intent: EffectIntent) -> tuple[RecordType, bytes]:
        """The record holding `intent`."""
        return RecordType.INTENTS, encode_intents([intent])

    @staticmethod
    def encode_withdrawal(evidence_id: str, attempt: int) -> tuple[RecordType, bytes]:
        """The record withdrawing `attempt` of `evidence_id`."""
        return RecordType.INTENT_WITHDRAWALS, dumps([withdrawal_to_plain(evidence_id, attempt)])

    def artifact(self) -> EvidenceOutcomeCacheArtifact:
        return EvidenceOutcomeCacheArtifact(entries=list(self.bindings.values()))
