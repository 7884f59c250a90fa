"""The hot types' v1 plain forms, written out by hand: the fast path under
the one cattrs converter in `codec`.

Opening a log structures every entry it holds, and every append unstructures
what it writes, so the types met there (the four WAL entries, the WAL and
cache artifacts, cache entries and effect outcomes) get plain Python
functions here instead of the converter's generic ones. The rules:

* a `structurer` returns exactly what ``converter.structure`` returns for
  the same input, or raises (anything) for input it does not take, whether
  the converter would take it or not. `codec.from_plain` then asks the
  converter, which returns the value or raises the precise error (field path,
  reason). So this module never words an error, and it is never less strict:
  each field is checked here exactly as the converter's hook and the class's
  validators check it, before the value is built without running them again.
* `unstructure_fast` returns exactly what ``converter.unstructure`` returns
  (same maps, same key order, so the same CBOR bytes), or ``None`` for a type
  it does not cover.

``property_tests/test_structuring_props.py`` checks both against the
converter on generated values, valid and broken; ``tests/test_structuring.py``
checks that every class's fields are the ones written out here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .artifact import (
    AgreementWalArtifact,
    Escalation,
    EvidenceOutcomeCacheArtifact,
    EvidenceOutcomeCacheEntry,
    EvidenceProduced,
    Finalization,
    VisibilityGateCrossing,
    check_plain,
)
from .effects import EffectFailure, EffectFailureKind, EffectOutcome, EffectStatus
from .model import AgreementEvidence, AgreementEvidenceKind, AgreementLevel, FinalizationOutcome

__all__ = ["FIELDS", "Unfit", "outcome_plain", "structurer", "unstructure_fast"]

_U64_MAX = 2**64 - 1
_new = object.__new__
_set = object.__setattr__

_LEVEL = {member.value: member for member in AgreementLevel}
_OUTCOME = {member.value: member for member in FinalizationOutcome}
_EVIDENCE_KIND = {member.value: member for member in AgreementEvidenceKind}
_STATUS = {member.value: member for member in EffectStatus}
_FAILURE_KIND = {member.value: member for member in EffectFailureKind}
_FAILURE = EffectStatus.FAILURE

#: The fields each class built here has, in declaration order: the functions
#: below set exactly these (a test compares them with ``attrs.fields``).
FIELDS: dict[type, tuple[str, ...]] = {
    Escalation: ("operation_id", "previous_level", "new_level", "evidence_id", "tick"),
    EvidenceProduced: ("evidence", "tick"),
    Finalization: (
        "operation_id",
        "outcome",
        "materialization_proof_id",
        "canonical_handle_id",
        "tick",
    ),
    VisibilityGateCrossing: ("operation_id", "downstream_coroutine_id", "gate_level", "tick"),
    AgreementEvidence: (
        "evidence_id",
        "operation_id",
        "session",
        "owner_id",
        "level",
        "kind",
        "reference",
        "authoritative",
    ),
    EvidenceOutcomeCacheEntry: ("evidence_id", "interface_name", "operation_name", "outcome"),
    EffectOutcome: ("status", "response", "failure"),
    EffectFailure: ("kind", "message"),
    AgreementWalArtifact: ("entries",),  # (its converter makes a tuple: given one)
    EvidenceOutcomeCacheArtifact: ("entries",),
}


class Unfit(Exception):
    """Input the fast path does not take (the converter decides)."""


def _text(value: Any) -> str:
    if type(value) is not str:
        raise Unfit
    return value


def _opt_text(value: Any) -> str | None:
    if value is not None and type(value) is not str:
        raise Unfit
    return value


def _tick(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= _U64_MAX:
        raise Unfit
    return value


def _map(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Unfit
    return value


# -- structuring (plain -> value) ----------------------------------------------------


def _escalation(o: dict[str, Any]) -> Escalation:
    entry = _new(Escalation)
    _set(entry, "operation_id", _text(o["operation_id"]))
    _set(entry, "previous_level", _LEVEL[o["previous_level"]])
    _set(entry, "new_level", _LEVEL[o["new_level"]])
    _set(entry, "evidence_id", _opt_text(o.get("evidence_id")))
    _set(entry, "tick", _tick(o["tick"]))
    return entry


def _evidence(o: Any) -> AgreementEvidence:
    o = _map(o)
    session = o.get("session")
    if session is not None:
        _tick(session)
    authoritative = o["authoritative"]
    if type(authoritative) is not bool:
        raise Unfit
    evidence = _new(AgreementEvidence)
    _set(evidence, "evidence_id", _text(o["evidence_id"]))
    _set(evidence, "operation_id", _text(o["operation_id"]))
    _set(evidence, "session", session)
    _set(evidence, "owner_id", _opt_text(o.get("owner_id")))
    _set(evidence, "level", _LEVEL[o["level"]])
    _set(evidence, "kind", _EVIDENCE_KIND[o["kind"]])
    _set(evidence, "reference", _text(o["reference"]))
    _set(evidence, "authoritative", authoritative)
    return evidence


def _evidence_produced(o: dict[str, Any]) -> EvidenceProduced:
    entry = _new(EvidenceProduced)
    _set(entry, "evidence", _evidence(o["evidence"]))
    _set(entry, "tick", _tick(o["tick"]))
    return entry


def _finalization(o: dict[str, Any]) -> Finalization:
    entry = _new(Finalization)
    _set(entry, "operation_id", _text(o["operation_id"]))
    _set(entry, "outcome", _OUTCOME[o["outcome"]])
    _set(entry, "materialization_proof_id", _opt_text(o.get("materialization_proof_id")))
    _set(entry, "canonical_handle_id", _opt_text(o.get("canonical_handle_id")))
    _set(entry, "tick", _tick(o["tick"]))
    return entry


def _gate(o: dict[str, Any]) -> VisibilityGateCrossing:
    entry = _new(VisibilityGateCrossing)
    _set(entry, "operation_id", _text(o["operation_id"]))
    _set(entry, "downstream_coroutine_id", _text(o["downstream_coroutine_id"]))
    _set(entry, "gate_level", _LEVEL[o["gate_level"]])
    _set(entry, "tick", _tick(o["tick"]))
    return entry


_ENTRY_BY_KIND: dict[str, Callable[[dict[str, Any]], Any]] = {
    "escalation": _escalation,
    "evidence_produced": _evidence_produced,
    "finalization": _finalization,
    "visibility_gate_crossing": _gate,
}


def _entries(data: Any) -> tuple[Any, ...]:
    """The ``entries`` of a WAL artifact's plain map: a list of tagged maps."""
    items = _map(data).get("entries", [])
    if not isinstance(items, list):
        raise Unfit
    by_kind = _ENTRY_BY_KIND
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise Unfit
        out.append(by_kind[item["kind"]](item))
    return tuple(out)


def _wal_artifact(data: Any) -> AgreementWalArtifact:
    artifact = _new(AgreementWalArtifact)
    _set(artifact, "entries", _entries(data))
    return artifact


def _outcome(o: Any) -> EffectOutcome:
    o = _map(o)
    status_map = _map(o["status"])
    status = _STATUS[status_map["status"]]
    failure = None
    if status is _FAILURE:
        f = _map(status_map["failure"])
        failure = _new(EffectFailure)
        _set(failure, "kind", _FAILURE_KIND[f["kind"]])
        _set(failure, "message", _text(f["message"]))
    response = o.get("response")
    check_plain(response)
    outcome = _new(EffectOutcome)
    _set(outcome, "status", status)
    _set(outcome, "response", response)
    _set(outcome, "failure", failure)
    return outcome


def _cache_entry(o: Any) -> EvidenceOutcomeCacheEntry:
    o = _map(o)
    entry = _new(EvidenceOutcomeCacheEntry)
    _set(entry, "evidence_id", _text(o["evidence_id"]))
    _set(entry, "interface_name", _text(o["interface_name"]))
    _set(entry, "operation_name", _text(o["operation_name"]))
    _set(entry, "outcome", _outcome(o["outcome"]))
    return entry


def _cache_artifact(data: Any) -> EvidenceOutcomeCacheArtifact:
    items = _map(data).get("entries", [])
    if not isinstance(items, list):
        raise Unfit
    artifact = _new(EvidenceOutcomeCacheArtifact)
    _set(artifact, "entries", tuple([_cache_entry(item) for item in items]))
    artifact.__attrs_post_init__()  # its index by evidence id
    return artifact


_STRUCTURE: dict[Any, Callable[[Any], Any]] = {
    AgreementWalArtifact: _wal_artifact,
    EvidenceOutcomeCacheArtifact: _cache_artifact,
    EvidenceOutcomeCacheEntry: _cache_entry,
    EffectOutcome: _outcome,
}


def structurer(cls: Any) -> Callable[[Any], Any] | None:
    """The fast function structuring plain data as a `cls`, or ``None`` when
    `cls` is not covered here. It returns what the converter builds from the
    same data, or raises for input it does not take (see the module rules)."""
    return _STRUCTURE.get(cls)


# -- unstructuring (value -> plain) ----------------------------------------------------


def _escalation_plain(e: Escalation) -> dict[str, Any]:
    return {
        "kind": "escalation",
        "operation_id": e.operation_id,
        "previous_level": e.previous_level.value,
        "new_level": e.new_level.value,
        "evidence_id": e.evidence_id,
        "tick": e.tick,
    }


def _evidence_plain(ev: AgreementEvidence) -> dict[str, Any]:
    return {
        "evidence_id": ev.evidence_id,
        "operation_id": ev.operation_id,
        "session": ev.session,
        "owner_id": ev.owner_id,
        "level": ev.level.value,
        "kind": ev.kind.value,
        "reference": ev.reference,
        "authoritative": ev.authoritative,
    }


def _evidence_produced_plain(e: EvidenceProduced) -> dict[str, Any]:
    return {"kind": "evidence_produced", "evidence": _evidence_plain(e.evidence), "tick": e.tick}


def _finalization_plain(e: Finalization) -> dict[str, Any]:
    return {
        "kind": "finalization",
        "operation_id": e.operation_id,
        "outcome": e.outcome.value,
        "materialization_proof_id": e.materialization_proof_id,
        "canonical_handle_id": e.canonical_handle_id,
        "tick": e.tick,
    }


def _gate_plain(e: VisibilityGateCrossing) -> dict[str, Any]:
    return {
        "kind": "visibility_gate_crossing",
        "operation_id": e.operation_id,
        "downstream_coroutine_id": e.downstream_coroutine_id,
        "gate_level": e.gate_level.value,
        "tick": e.tick,
    }


def outcome_plain(outcome: EffectOutcome) -> dict[str, Any]:
    """An outcome's v1 map: ``{"status": {"status": S, ["failure": F]}, "response": R}``."""
    status: dict[str, Any] = {"status": outcome.status.value}
    failure = outcome.failure
    if failure is not None:
        status["failure"] = {"kind": failure.kind.value, "message": failure.message}
    return {"status": status, "response": outcome.response}


def _cache_entry_plain(e: EvidenceOutcomeCacheEntry) -> dict[str, Any]:
    return {
        "evidence_id": e.evidence_id,
        "interface_name": e.interface_name,
        "operation_name": e.operation_name,
        "outcome": outcome_plain(e.outcome),
    }


_UNSTRUCTURE: dict[type, Callable[[Any], dict[str, Any]]] = {
    Escalation: _escalation_plain,
    EvidenceProduced: _evidence_produced_plain,
    Finalization: _finalization_plain,
    VisibilityGateCrossing: _gate_plain,
    AgreementEvidence: _evidence_plain,
    EvidenceOutcomeCacheEntry: _cache_entry_plain,
    EffectOutcome: outcome_plain,
}


def unstructure_fast(value: Any) -> dict[str, Any] | None:
    """The converter's plain form of `value` when its exact type is covered
    here, else ``None``."""
    unstructure = _UNSTRUCTURE.get(type(value))
    return None if unstructure is None else unstructure(value)
