"""What a log's base and records build in memory: `LogState`, one subclass
per log kind (``backends/file.py``), and the bytes of a new, empty log. Pure:
records in, state out."""

from __future__ import annotations

import abc
from collections.abc import Sequence
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

__all__ = ["CacheState", "LogState", "WalState", "initial_bytes", "interpret_base"]

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


def initial_bytes(state: LogState[Any]) -> bytes:
    """A new, empty log of `state`'s kind: base plus its checksum record."""
    base = dumps(envelope_plain(state.artifact_type()))
    return base + encode_record(RecordType.BASE_CHECKSUM, 0, base_checksum_payload(base))


class WalState(LogState[WalEntry]):
    """A WAL log's entries, in order, and their per-operation index."""

    artifact_type = AgreementWalArtifact
    record_type = RecordType.WAL_ENTRIES

    def __init__(self) -> None:
        self.entries: list[WalEntry] = []
        self.index = WalIndex()

    def absorb(self, items: Sequence[WalEntry]) -> None:
        self.add(items, self.index.check(items))

    def add(self, items: Sequence[WalEntry], updates: dict[str, AgreementLevel]) -> None:
        self.entries.extend(items)
        self.index.add(items, updates)

    def artifact(self) -> AgreementWalArtifact:
        return AgreementWalArtifact(entries=self.entries)


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
