"""The error tree: every exception `durability` raises is a `DurabilityError`.

Messages are precise: they name the file, byte offset, operation or schema
version involved, so an operator can act on a single line. Errors raised while
handling a lower-level exception are chained with ``from``.
"""

from __future__ import annotations

__all__ = [
    "ArtifactTooLargeError",
    "DecodeError",
    "DurabilityError",
    "EncodeError",
    "EscalationOrderError",
    "InconsistentWalError",
    "LogInUseError",
    "LogPoisonedError",
    "PayloadKindError",
    "RepairRefusedError",
    "SchemaVersionError",
    "SequenceConflictError",
    "StorageError",
    "UnknownOperationError",
]

#: Every `DecodeError` message starts with this prefix (API.md §5).
DECODE_PREFIX = "decode persisted durability artifact"


class DurabilityError(Exception):
    """Base class of every error raised by `durability`."""


class DecodeError(DurabilityError):
    """Bytes that are not a valid v1 artifact or log.

    `reason` says what is wrong, `path` names the file (or database) and
    `offset` the byte offset (or, in a database, the sequence number: `unit`
    says which) where, when known. The message is formatted from them in one
    place and always starts with ``decode persisted durability artifact``::

        decode persisted durability artifact wal.log: sequence gap: expected
        record 4, found 6 at byte offset 4096
    """

    def __init__(
        self,
        reason: str,
        *,
        path: str | None = None,
        offset: int | None = None,
        unit: str = "byte offset",
    ) -> None:
        self.reason = reason
        self.path = path
        self.offset = offset
        self.unit = unit
        where = f" {path}" if path else ""
        at = f" at {unit} {offset}" if offset is not None else ""
        super().__init__(f"{DECODE_PREFIX}{where}: {reason}{at}")

    def located(
        self, *, path: str | None = None, at: int | None = None, context: str | None = None
    ) -> DecodeError:
        """The same error placed in file `path`, for bytes decoded from file
        offset `at` on: its offset (relative to those bytes, or their start
        when it had none) becomes a file offset, and its reason is prefixed
        by `context` (e.g. ``"record 3"``). Chain it ``from`` the original."""
        offset = self.offset if at is None else (self.offset or 0) + at
        return type(self)(
            f"{context}: {self.reason}" if context else self.reason,
            path=path if path is not None else self.path,
            offset=offset,
            unit=self.unit,
        )


class SchemaVersionError(DecodeError):
    """The artifact's ``schema_version`` is not one this toolkit reads.

    `version` is the version found and `supported` the versions the reader
    accepts (oldest first), when known."""

    def __init__(
        self,
        reason: str,
        *,
        path: str | None = None,
        offset: int | None = None,
        unit: str = "byte offset",
        version: str | int | None = None,
        supported: tuple[str, ...] = (),
    ) -> None:
        super().__init__(reason, path=path, offset=offset, unit=unit)
        self.version = version
        self.supported = supported

    def located(
        self, *, path: str | None = None, at: int | None = None, context: str | None = None
    ) -> DecodeError:
        moved = super().located(path=path, at=at, context=context)
        assert isinstance(moved, SchemaVersionError)
        moved.version, moved.supported = self.version, self.supported
        return moved


class ArtifactTooLargeError(DecodeError):
    """Input over `MAX_ARTIFACT_BYTES`, refused before it is read or decoded."""


class EncodeError(DurabilityError):
    """A value that cannot be written as plain v1 CBOR (for instance a tag,
    a non-text map key, an integer beyond 64 bits or nesting deeper than 128)."""


class PayloadKindError(DurabilityError):
    """An artifact or log holds a different payload kind than was asked for."""


class EscalationOrderError(DurabilityError):
    """An escalation regresses or is reordered for one operation.

    Raised by `AgreementWalArtifact.validate_monotonic_escalations` and by
    every backend's ``append``/``append_batch``, which then leave the WAL
    exactly as it was.
    """


class InconsistentWalError(DurabilityError):
    """The WAL would force an unsound recovery decision (a gate crossed above
    the level the WAL proves); the message names the operations."""

    def __init__(self, message: str, operation_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.operation_ids = operation_ids


class UnknownOperationError(DurabilityError, LookupError):
    """An operation id the object asked knows nothing about (a recovery plan
    asked to explain an operation with no entry after its checkpoint);
    `operation_id` names it."""

    def __init__(self, message: str, operation_id: str) -> None:
        super().__init__(message)
        self.operation_id = operation_id


class StorageError(DurabilityError):
    """The operating system refused a read, write, sync, lock or rename."""


class LogInUseError(StorageError):
    """Another process holds a log's lock, or has the log open, so it cannot
    be repaired now (``durability repair --apply``); nothing was changed.
    `path` names the log."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class RepairRefusedError(DurabilityError):
    """A log whose damage no repair may cut (a damaged base, a record written
    by a newer version, damage right after a base no checksum vouches for),
    or a repaired copy that failed verification; nothing was changed."""


class LogPoisonedError(StorageError):
    """A write or fsync of this log failed earlier; the instance refuses
    further writes until the log is reopened (a later write must never be
    reported durable after a failed fsync)."""


class SequenceConflictError(DurabilityError):
    """An append made with ``expected_sequence=n`` found the WAL's last
    sequence at `actual`, not `expected` (`n`): another writer appended first.

    Nothing was written, and the append is never retried by the toolkit. It is
    not a `StorageError`: the storage is fine, the caller's view is stale.
    """

    def __init__(self, expected: int, actual: int, where: str = "") -> None:
        self.expected = expected
        self.actual = actual
        place = f" in {where}" if where else ""
        super().__init__(
            f"sequence conflict{place}: expected last sequence {expected}, found {actual}; "
            "nothing was written"
        )
