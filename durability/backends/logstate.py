"""What a log's base and records build in memory: `LogState`, one subclass
per log kind (``backends/file.py``), and the bytes of a new, empty log. Pure:
records in, state out."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from ..codec import decode_item, dumps, from_plain, to_plain
from ..errors import DecodeError
from ..framing import LogScan, Record, RecordType, base_checksum_payload, encode_record
from ..persisted import Payload, envelope_plain, payload_from_envelope

__all__ = ["LogState", "initial_bytes", "interpret_base"]

T = TypeVar("T")


class LogState(abc.ABC, Generic[T]):
    """What a log's base and records build in memory (one subclass per kind)."""

    #: The artifact class of the base (and of `artifact()`).
    artifact_type: ClassVar[type[Any]]
    #: The record type carrying this kind's items.
    record_type: ClassVar[RecordType]

    def seed(self, artifact: Any, where: str) -> None:
        """Take the items of the base artifact."""
        self.absorb(artifact.entries, where)

    @abc.abstractmethod
    def absorb(self, items: Sequence[T], where: str) -> None:
        """Apply items read from the file (`DecodeError` if they break a rule)."""

    @abc.abstractmethod
    def artifact(self) -> Any:
        """Everything held, as one artifact."""

    def encode(self, items: Sequence[T]) -> bytes:
        """The record payload holding `items`."""
        return dumps([to_plain(item) for item in items])

    def replay(self, record: Record, name: str) -> int:
        """Decode and apply one record of log `name`; return how many items it held."""
        where = f"{name} record {record.seq} at byte offset {record.offset}"
        if record.type is RecordType.BASE_CHECKSUM:
            return 0
        if record.type is not self.record_type:
            raise DecodeError(
                f"{where}: a {record.type.name} record in a {self.record_type.name} log"
            )
        plain, used = decode_item(record.payload)
        if used != len(record.payload):
            raise DecodeError(f"{where}: {len(record.payload) - used} trailing payload bytes")
        items = from_plain({"entries": plain}, self.artifact_type, where=where).entries
        self.absorb(items, where)
        return len(items)


def interpret_base(scan: LogScan, name: str) -> Payload:
    """The payload of the base `scan` decoded (`DecodeError`, or its subclass
    `SchemaVersionError`, naming the file when it is not a v1 artifact)."""
    return payload_from_envelope(scan.base, where=f"{name} base at byte offset 0")[1]


def initial_bytes(state: LogState[Any]) -> bytes:
    """A new, empty log of `state`'s kind: base plus its checksum record."""
    base = dumps(envelope_plain(state.artifact_type()))
    return base + encode_record(RecordType.BASE_CHECKSUM, 0, base_checksum_payload(base))
