"""durability: make agreement protocols crash-safe.

Typed, versioned CBOR artifacts (the agreement WAL, the evidence outcome
cache, recovery metadata) compatible with the Rust original; memory and
append-only file backends; effect-handler decorators; a sound recovery
planner; and the ``durability`` command line. This module only re-exports.
"""

from .artifact import (
    AgreementWalArtifact,
    DurableRecoveryMetadata,
    Escalation,
    EvidenceOutcomeCacheArtifact,
    EvidenceOutcomeCacheEntry,
    EvidenceProduced,
    Finalization,
    VisibilityGateCrossing,
    WalEntry,
    WalSyncRequest,
)
from .backends.file import (
    FileAgreementWal,
    FileEvidenceOutcomeCache,
    LogReport,
    RecordSummary,
    RecoveryMode,
    SyncPolicy,
    TornTail,
    TornTailWarning,
    export_log,
    inspect_log,
)
from .backends.memory import InMemoryAgreementWal, InMemoryEvidenceOutcomeCache
from .backends.postgres import PostgresAgreementWal, PostgresEvidenceOutcomeCache
from .backends.protocols import AgreementWal, EvidenceOutcomeCache
from .backends.sqlite import SqliteAgreementWal, SqliteEvidenceOutcomeCache
from .decorators import evidence_cached, wal_synced
from .digest import request_digest
from .effects import EffectFailure, EffectFailureKind, EffectOutcome, EffectRequest, EffectStatus
from .errors import (
    ArtifactTooLargeError,
    DecodeError,
    DurabilityError,
    EncodeError,
    EscalationOrderError,
    InconsistentWalError,
    LogPoisonedError,
    PayloadKindError,
    SchemaVersionError,
    SequenceConflictError,
    StorageError,
    UnknownOperationError,
)
from .evidence import EvidencePersistenceHandler
from .explanation import CitedEntry, DecisionExplanation, EntryLocation, EntryRole
from .handlers import AgreementWalHandler, WalSyncMode
from .index import OperationSummary
from .intents import (
    EffectIntent,
    EffectSemantics,
    EffectSemanticsWarning,
    current_idempotency_key,
)
from .model import (
    AgreementEvidence,
    AgreementEvidenceKind,
    AgreementLevel,
    AgreementState,
    FinalizationOutcome,
)
from .persisted import (
    MAX_ARTIFACT_BYTES,
    SCHEMA_VERSION,
    PersistedDurabilityArtifact,
    register_schema_version,
)
from .planner import (
    DurableRecoveryAction,
    DurableRecoveryDecision,
    DurableRecoveryPlan,
    PlannerRule,
    is_sound,
)
from .replay import RecordedExchange, RecordingHandler, ReplayHandler
from .store import Checkpoint, StateDirectory
from .urls import open_cache, open_wal

__version__ = "0.1.0"

__all__ = [
    "EffectIntent",
    "EffectSemantics",
    "EffectSemanticsWarning",
    "current_idempotency_key",
    "request_digest",
    "open_wal",
    "open_cache",
    "SqliteAgreementWal",
    "SqliteEvidenceOutcomeCache",
    "PostgresAgreementWal",
    "PostgresEvidenceOutcomeCache",
    "SequenceConflictError",
    "StateDirectory",
    "Checkpoint",
    "inspect_log",
    "export_log",
    "TornTailWarning",
    "TornTail",
    "SyncPolicy",
    "RecoveryMode",
    "RecordSummary",
    "LogReport",
    "FileEvidenceOutcomeCache",
    "FileAgreementWal",
    "is_sound",
    "DurableRecoveryPlan",
    "DurableRecoveryDecision",
    "DurableRecoveryAction",
    "ReplayHandler",
    "RecordingHandler",
    "RecordedExchange",
    "wal_synced",
    "evidence_cached",
    "WalSyncMode",
    "EvidencePersistenceHandler",
    "AgreementWalHandler",
    "MAX_ARTIFACT_BYTES",
    "SCHEMA_VERSION",
    "AgreementEvidence",
    "AgreementEvidenceKind",
    "AgreementLevel",
    "AgreementState",
    "AgreementWal",
    "AgreementWalArtifact",
    "ArtifactTooLargeError",
    "DecodeError",
    "DurabilityError",
    "DurableRecoveryMetadata",
    "EffectFailure",
    "EffectFailureKind",
    "EffectOutcome",
    "EffectRequest",
    "EffectStatus",
    "EncodeError",
    "Escalation",
    "EscalationOrderError",
    "EvidenceOutcomeCache",
    "EvidenceOutcomeCacheArtifact",
    "EvidenceOutcomeCacheEntry",
    "EvidenceProduced",
    "Finalization",
    "FinalizationOutcome",
    "InMemoryAgreementWal",
    "InMemoryEvidenceOutcomeCache",
    "InconsistentWalError",
    "LogPoisonedError",
    "OperationSummary",
    "PayloadKindError",
    "PersistedDurabilityArtifact",
    "SchemaVersionError",
    "StorageError",
    "VisibilityGateCrossing",
    "WalEntry",
    "WalSyncRequest",
    "register_schema_version",
    "UnknownOperationError",
    "PlannerRule",
    "DecisionExplanation",
    "CitedEntry",
    "EntryLocation",
    "EntryRole",
]
