"""The v1 persisted envelope: ``{"schema_version", "payload": {"kind", "payload"}}``.

`PersistedDurabilityArtifact` is what files hold, what the Rust original
reads and writes, and what `durability export` produces. The schema-version
registry (`SCHEMA_REGISTRY`, ``durability/schema_versions.py``) holds, per
payload kind, the version this toolkit reads and the upcasters that bring an
older version's plain data up to it, so a future v2 reader keeps reading v1
by registering one function per kind.
"""

from __future__ import annotations

import os
from typing import Any

import attrs

from .artifact import (
    AgreementWalArtifact,
    DurableRecoveryMetadata,
    EvidenceOutcomeCacheArtifact,
)
from .codec import dumps, from_plain, to_plain
from .errors import DecodeError, PayloadKindError, StorageError
from .fileio import DEFAULT_FS
from .limits import MAX_ARTIFACT_BYTES, SCHEMA_VERSION
from .schema_versions import EnvelopeUpgrade, SchemaRegistry, Upcast

__all__ = [
    "MAX_ARTIFACT_BYTES",
    "SCHEMA_VERSION",
    "SCHEMA_REGISTRY",
    "PersistedDurabilityArtifact",
    "register_schema_version",
]


Payload = AgreementWalArtifact | EvidenceOutcomeCacheArtifact | DurableRecoveryMetadata

#: Payload classes by their ``"kind"`` text, and how error messages name them.
PAYLOAD_KINDS: dict[str, type[Payload]] = {
    "agreement_wal": AgreementWalArtifact,
    "evidence_outcome_cache": EvidenceOutcomeCacheArtifact,
    "recovery_metadata": DurableRecoveryMetadata,
}
_KIND_OF = {cls: kind for kind, cls in PAYLOAD_KINDS.items()}
_CONTAINS = {
    AgreementWalArtifact: "an agreement WAL payload",
    EvidenceOutcomeCacheArtifact: "an evidence outcome cache payload",
    DurableRecoveryMetadata: "recovery metadata",
}
_NOT = {
    AgreementWalArtifact: "an agreement WAL",
    EvidenceOutcomeCacheArtifact: "an evidence outcome cache",
    DurableRecoveryMetadata: "recovery metadata",
}

#: The versions this toolkit reads, per payload kind, and their upcasters
#: (``durability/schema_versions.py``; ``specs/artifact_v1.md``, "Adding a
#: version"). Every kind is at v1 today, with nothing to upcast.
SCHEMA_REGISTRY = SchemaRegistry(PAYLOAD_KINDS, SCHEMA_VERSION)


def register_schema_version(version: str, upgrade: EnvelopeUpgrade) -> None:
    """Teach the reader `version`: `upgrade` turns its plain-data envelope into
    the current layout (it runs before the payload is interpreted). A change
    of one kind's body is an upcaster instead: ``SCHEMA_REGISTRY.add_version``."""
    SCHEMA_REGISTRY.add_envelope_upgrade(version, upgrade)


def kind_of(payload: Payload) -> str:
    """The ``"kind"`` text of a payload (``"agreement_wal"``, ...)."""
    return _KIND_OF[type(payload)]


def wrong_kind_message(found: type, wanted: type) -> str:
    """``persisted durability artifact contains X, not Y``."""
    return f"persisted durability artifact contains {_CONTAINS[found]}, not {_NOT[wanted]}"


def envelope_plain(payload: Payload, schema_version: str = SCHEMA_VERSION) -> dict[str, Any]:
    """The plain-data envelope around `payload`."""
    return {
        "schema_version": schema_version,
        "payload": {"kind": kind_of(payload), "payload": to_plain(payload)},
    }


def payload_from_envelope(
    obj: Any, *, path: str | None = None, offset: int | None = None
) -> tuple[str, Payload]:
    """Check and upcast a decoded envelope (`SCHEMA_REGISTRY`); return
    ``(schema_version, payload)``, the version being the one found.

    Errors name `path` and `offset` (where the envelope starts), when given.
    """
    read = SCHEMA_REGISTRY.read_envelope(obj, path=path, offset=offset)
    return read.version, _payload(read, path, offset)


def _payload(read: Upcast, path: str | None, offset: int | None) -> Payload:
    """The payload object of an artifact whose body is current (v1) plain data."""
    try:
        return from_plain(read.body, PAYLOAD_KINDS[read.kind], where=f"{read.kind} payload")
    except DecodeError as exc:
        raise exc.located(path=path, at=offset) from exc


def decode_envelope_bytes(data: bytes, *, path: str | None = None) -> tuple[str, Payload]:
    """Decode exactly one artifact from `data`, the bytes of file `path` (no
    trailing bytes; the size cap is checked first)."""
    read = SCHEMA_REGISTRY.read(data, path=path)
    return read.version, _payload(read, path, 0 if path else None)


@attrs.frozen(kw_only=True)
class PersistedDurabilityArtifact:
    """One persisted artifact: a schema version and a kind-tagged payload.

    >>> art = PersistedDurabilityArtifact.agreement_wal(AgreementWalArtifact())
    >>> PersistedDurabilityArtifact.from_cbor(art.to_cbor()) == art
    True
    """

    schema_version: str
    payload: Payload

    @classmethod
    def agreement_wal(cls, wal: AgreementWalArtifact) -> PersistedDurabilityArtifact:
        """Wrap a WAL."""
        return cls(schema_version=SCHEMA_VERSION, payload=wal)

    @classmethod
    def evidence_outcome_cache(
        cls, cache: EvidenceOutcomeCacheArtifact
    ) -> PersistedDurabilityArtifact:
        """Wrap an evidence outcome cache."""
        return cls(schema_version=SCHEMA_VERSION, payload=cache)

    @classmethod
    def recovery_metadata(cls, metadata: DurableRecoveryMetadata) -> PersistedDurabilityArtifact:
        """Wrap recovery metadata."""
        return cls(schema_version=SCHEMA_VERSION, payload=metadata)

    def to_cbor(self) -> bytes:
        """The v1 bytes (equal artifacts give equal bytes). Raises `EncodeError`
        for a value v1 cannot hold."""
        return dumps(envelope_plain(self.payload, self.schema_version))

    @classmethod
    def from_cbor(cls, data: bytes) -> PersistedDurabilityArtifact:
        """Decode one artifact. Raises `DecodeError` (or its subclasses
        `SchemaVersionError`, `ArtifactTooLargeError`)."""
        version, payload = decode_envelope_bytes(bytes(data))
        return cls(schema_version=version, payload=payload)

    def write_to_path(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (a crash leaves the old file or the new, never a
        mix); the file is created readable by its owner only."""
        DEFAULT_FS.replace_atomically(os.fspath(path), self.to_cbor())

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> PersistedDurabilityArtifact:
        """Read one artifact file; the size cap is checked before reading.
        A missing or unreadable file raises `StorageError` naming it."""
        name = os.fspath(path)
        try:
            data = DEFAULT_FS.read_capped(name, MAX_ARTIFACT_BYTES)
        except StorageError as exc:
            raise StorageError(f"read persisted durability artifact {name}: {exc}") from exc
        version, payload = decode_envelope_bytes(data, path=name)
        return cls(schema_version=version, payload=payload)

    def _into(self, wanted: type[Payload]) -> Any:
        if not isinstance(self.payload, wanted):
            raise PayloadKindError(wrong_kind_message(type(self.payload), wanted))
        return self.payload

    def into_agreement_wal(self) -> AgreementWalArtifact:
        """The WAL payload, or `PayloadKindError` naming what it holds."""
        result: AgreementWalArtifact = self._into(AgreementWalArtifact)
        return result

    def into_evidence_outcome_cache(self) -> EvidenceOutcomeCacheArtifact:
        """The cache payload, or `PayloadKindError` naming what it holds."""
        result: EvidenceOutcomeCacheArtifact = self._into(EvidenceOutcomeCacheArtifact)
        return result

    def into_recovery_metadata(self) -> DurableRecoveryMetadata:
        """The metadata payload, or `PayloadKindError` naming what it holds."""
        result: DurableRecoveryMetadata = self._into(DurableRecoveryMetadata)
        return result
