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


def _map(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Unfit
    return value


def _setters(cls: type) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setters of `cls`'s `FIELDS`, in order: they write a frozen
    instance's fields directly, as the class's own ``__init__`` does."""
    return tuple(cls.__dict__[name].__set__ for name in FIELDS[cls])


_ESCALATION = _setters(Escalation)
_EVIDENCE = _setters(AgreementEvidence)
_EVIDENCE_PRODUCED = _setters(EvidenceProduced)
_FINALIZATION = _setters(Finalization)
_GATE = _setters(VisibilityGateCrossing)
_CACHE_ENTRY = _setters(EvidenceOutcomeCacheEntry)
_EFFECT_FAILURE = _setters(EffectFailure)


# -- structuring (plain -> value) ----------------------------------------------------
#
# Each function reads its fields, checks them as the converter's hooks and the
# class's validators would (text is exactly `str`, a tick exactly an `int` in
# 0..2**64-1, an option `None` or its type, an enum one of its values), then
# builds the value without running them again.


def _escalation(o: dict[str, Any]) -> Escalation:
    op, evidence_id, tick = o["operation_id"], o.get("evidence_id"), o["tick"]
    if (
        type(op) is not str
        or (evidence_id is not None and type(evidence_id) is not str)
        or type(tick) is not int
        or not 0 <= tick <= _U64_MAX
    ):
        raise Unfit
    set_op, set_previous, set_new, set_evidence_id, set_tick = _ESCALATION
    entry = _new(Escalation)
    set_op(entry, op)
    set_previous(entry, _LEVEL[o["previous_level"]])
    set_new(entry, _LEVEL[o["new_level"]])
    set_evidence_id(entry, evidence_id)
    set_tick(entry, tick)
    return entry


def _evidence(o: Any) -> AgreementEvidence:
    o = _map(o)
    evidence_id, op, reference = o["evidence_id"], o["operation_id"], o["reference"]
    session, owner_id, authoritative = o.get("session"), o.get("owner_id"), o["authoritative"]
    if (
        type(evidence_id) is not str
        or type(op) is not str
        or type(reference) is not str
        or type(authoritative) is not bool
        or (owner_id is not None and type(owner_id) is not str)
        or (session is not None and (type(session) is not int or not 0 <= session <= _U64_MAX))
    ):
        raise Unfit
    set_id, set_op, set_session, set_owner, set_level, set_kind, set_ref, set_auth = _EVIDENCE
    evidence = _new(AgreementEvidence)
    set_id(evidence, evidence_id)
    set_op(evidence, op)
    set_session(evidence, session)
    set_owner(evidence, owner_id)
    set_level(evidence, _LEVEL[o["level"]])
    set_kind(evidence, _EVIDENCE_KIND[o["kind"]])
    set_ref(evidence, reference)
    set_auth(evidence, authoritative)
    return evidence


def _evidence_produced(o: dict[str, Any]) -> EvidenceProduced:
    tick = o["tick"]
    if type(tick) is not int or not 0 <= tick <= _U64_MAX:
        raise Unfit
    set_evidence, set_tick = _EVIDENCE_PRODUCED
    entry = _new(EvidenceProduced)
    set_evidence(entry, _evidence(o["evidence"]))
    set_tick(entry, tick)
    return entry


def _finalization(o: dict[str, Any]) -> Finalization:
    op, tick = o["operation_id"], o["tick"]
    proof, handle = o.get("materialization_proof_id"), o.get("canonical_handle_id")
    if (
        type(op) is not str
        or (proof is not None and type(proof) is not str)
        or (handle is not None and type(handle) is not str)
        or type(tick) is not int
        or not 0 <= tick <= _U64_MAX
    ):
        raise Unfit
    set_op, set_outcome, set_proof, set_handle, set_tick = _FINALIZATION
    entry = _new(Finalization)
    set_op(entry, op)
    set_outcome(entry, _OUTCOME[o["outcome"]])
    set_proof(entry, proof)
    set_handle(entry, handle)
    set_tick(entry, tick)
    return entry


def _gate(o: dict[str, Any]) -> VisibilityGateCrossing:
    op, coroutine, tick = o["operation_id"], o["downstream_coroutine_id"], o["tick"]
    if (
        type(op) is not str
        or type(coroutine) is not str
        or type(tick) is not int
        or not 0 <= tick <= _U64_MAX
    ):
        raise Unfit
    set_op, set_coroutine, set_level, set_tick = _GATE
    entry = _new(VisibilityGateCrossing)
    set_op(entry, op)
    set_coroutine(entry, coroutine)
    set_level(entry, _LEVEL[o["gate_level"]])
    set_tick(entry, tick)
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
        plain_failure = _map(status_map["failure"])
        message = plain_failure["message"]
        if type(message) is not str:
            raise Unfit
        set_kind, set_message = _EFFECT_FAILURE
        failure = _new(EffectFailure)
        set_kind(failure, _FAILURE_KIND[plain_failure["kind"]])
        set_message(failure, message)
    response = o.get("response")
    check_plain(response)
    outcome = _new(EffectOutcome)  # not slotted: its fields live in its __dict__
    _set(outcome, "status", status)
    _set(outcome, "response", response)
    _set(outcome, "failure", failure)
    return outcome


def _cache_entry(o: Any) -> EvidenceOutcomeCacheEntry:
    o = _map(o)
    evidence_id, interface, operation = o["evidence_id"], o["interface_name"], o["operation_name"]
    if type(evidence_id) is not str or type(interface) is not str or type(operation) is not str:
        raise Unfit
    set_evidence_id, set_interface, set_operation, set_outcome = _CACHE_ENTRY
    entry = _new(EvidenceOutcomeCacheEntry)
    set_evidence_id(entry, evidence_id)
    set_interface(entry, interface)
    set_operation(entry, operation)
    set_outcome(entry, _outcome(o["outcome"]))
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
