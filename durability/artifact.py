"""The typed artifacts: WAL entries, the WAL, the evidence outcome cache, and
recovery metadata. Pure values and pure checks; encoding lives in `codec`.

Rules:

* WAL entries are facts about one operation at one tick; `stable_identity()`
  names a fact exactly (two entries with the same identity are the same fact);
* escalations for one operation never go down: an escalation whose
  `new_level` is below its `previous_level` is a *regression*, and one whose
  levels are below the operation's last accepted `new_level` is *reordered*.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from .effects import EffectOutcome
from .errors import EncodeError, EscalationOrderError
from .limits import MAX_DEPTH, RESPONSE_DEPTH
from .model import (
    AgreementEvidence,
    AgreementLevel,
    AgreementState,
    FinalizationOutcome,
    _opt_str,
    _str,
    _tick,
    _to_tuple,
)

__all__ = [
    "AgreementWalArtifact",
    "DurableRecoveryMetadata",
    "Escalation",
    "EvidenceOutcomeCacheArtifact",
    "EvidenceOutcomeCacheEntry",
    "EvidenceProduced",
    "Finalization",
    "VisibilityGateCrossing",
    "WalEntry",
    "WalSyncRequest",
    "check_cache_entry",
    "check_entries",
    "check_plain",
    "check_sequence_arguments",
    "sequenced",
]

_INT_MIN, _INT_MAX = -(2**64), 2**64 - 1

_level = attrs.validators.instance_of(AgreementLevel)


@attrs.frozen(kw_only=True)
class Escalation:
    """Operation `operation_id` moved from `previous_level` to `new_level`."""

    operation_id: str = attrs.field(validator=_str)
    previous_level: AgreementLevel = attrs.field(validator=_level)
    new_level: AgreementLevel = attrs.field(validator=_level)
    evidence_id: str | None = attrs.field(default=None, validator=_opt_str)
    tick: int = attrs.field(validator=_tick)

    def stable_identity(self) -> str:
        """``escalation:{op}:{Prev}:{New}:{evidence_id or -}:{tick}``."""
        return (
            f"escalation:{self.operation_id}:{self.previous_level.rust_name}:"
            f"{self.new_level.rust_name}:{self.evidence_id or '-'}:{self.tick}"
        )


@attrs.frozen(kw_only=True)
class EvidenceProduced:
    """`evidence` became durable at `tick`."""

    evidence: AgreementEvidence = attrs.field(
        validator=attrs.validators.instance_of(AgreementEvidence)
    )
    tick: int = attrs.field(validator=_tick)

    @property
    def operation_id(self) -> str:
        """The evidence's operation."""
        return self.evidence.operation_id

    def stable_identity(self) -> str:
        """``evidence:{op}:{evidence_id}:{Level}:{tick}``."""
        ev = self.evidence
        return f"evidence:{ev.operation_id}:{ev.evidence_id}:{ev.level.rust_name}:{self.tick}"


@attrs.frozen(kw_only=True)
class Finalization:
    """Operation `operation_id` reached terminal `outcome`."""

    operation_id: str = attrs.field(validator=_str)
    outcome: FinalizationOutcome = attrs.field(
        validator=attrs.validators.instance_of(FinalizationOutcome)
    )
    materialization_proof_id: str | None = attrs.field(default=None, validator=_opt_str)
    canonical_handle_id: str | None = attrs.field(default=None, validator=_opt_str)
    tick: int = attrs.field(validator=_tick)

    def stable_identity(self) -> str:
        """``finalization:{op}:{Outcome}:{proof_id or -}:{handle_id or -}:{tick}``."""
        return (
            f"finalization:{self.operation_id}:{self.outcome.rust_name}:"
            f"{self.materialization_proof_id or '-'}:{self.canonical_handle_id or '-'}:{self.tick}"
        )


@attrs.frozen(kw_only=True)
class VisibilityGateCrossing:
    """Output of `operation_id` was released to `downstream_coroutine_id`
    once the operation was durable at `gate_level`."""

    operation_id: str = attrs.field(validator=_str)
    downstream_coroutine_id: str = attrs.field(validator=_str)
    gate_level: AgreementLevel = attrs.field(validator=_level)
    tick: int = attrs.field(validator=_tick)

    def stable_identity(self) -> str:
        """``gate:{op}:{coroutine}:{GateLevel}:{tick}``."""
        return (
            f"gate:{self.operation_id}:{self.downstream_coroutine_id}:"
            f"{self.gate_level.rust_name}:{self.tick}"
        )


WalEntry = Escalation | EvidenceProduced | Finalization | VisibilityGateCrossing
"""One agreement WAL entry (the union of the four entry classes)."""

WAL_ENTRY_TYPES: tuple[type, ...] = (
    Escalation,
    EvidenceProduced,
    Finalization,
    VisibilityGateCrossing,
)


def proven_level(entry: WalEntry) -> AgreementLevel:
    """The level an entry proves: an escalation its `new_level`, an evidence
    its `level`, a `FINALIZED` finalization `FINALIZED`; otherwise `NONE`."""
    if isinstance(entry, Escalation):
        return entry.new_level
    if isinstance(entry, EvidenceProduced):
        return entry.evidence.level
    if isinstance(entry, Finalization) and entry.outcome is FinalizationOutcome.FINALIZED:
        return AgreementLevel.FINALIZED
    return AgreementLevel.NONE


def escalation_error(entry: Escalation, last: AgreementLevel | None) -> str | None:
    """Why `entry` may not follow an operation whose last accepted escalation
    reached `last` (``None``: no escalation yet), or ``None`` when it may."""
    if entry.new_level < entry.previous_level:
        return (
            f"agreement WAL regression for `{entry.operation_id}`: "
            f"{entry.previous_level.rust_name} -> {entry.new_level.rust_name}"
        )
    if last is not None and (entry.previous_level < last or entry.new_level < last):
        return (
            f"agreement WAL reordered or regressed for `{entry.operation_id}`: "
            f"last={last.rust_name}, entry={entry.previous_level.rust_name}"
            f"->{entry.new_level.rust_name}"
        )
    return None


def check_escalations(
    entries: Iterable[WalEntry], last_levels: dict[str, AgreementLevel]
) -> dict[str, AgreementLevel]:
    """Check `entries` in order against `last_levels` (not modified) and return
    the new last level of every operation they escalate.

    Raises `EscalationOrderError` at the first escalation out of order.
    """
    updates: dict[str, AgreementLevel] = {}
    for entry in entries:
        if not isinstance(entry, Escalation):
            continue
        op = entry.operation_id
        last = updates.get(op, last_levels.get(op))
        problem = escalation_error(entry, last)
        if problem is not None:
            raise EscalationOrderError(problem)
        updates[op] = entry.new_level
    return updates


@attrs.frozen(kw_only=True)
class AgreementWalArtifact:
    """A whole agreement WAL: its entries in append order."""

    entries: tuple[WalEntry, ...] = attrs.field(default=(), converter=_to_tuple)

    def read_since(self, tick: int) -> list[WalEntry]:
        """Entries with ``entry.tick > tick``, in WAL order."""
        return [entry for entry in self.entries if entry.tick > tick]

    def validate_monotonic_escalations(self) -> None:
        """Raise `EscalationOrderError` if any operation's escalations regress
        or are reordered (see the module rules)."""
        check_escalations(self.entries, {})


@attrs.frozen(kw_only=True)
class WalSyncRequest:
    """What an operation proved, sent before its visibility gate may cross.

    `AgreementWalHandler.wal_sync` records the facts it proves and crosses the
    gate only when the operation is durable at `gate_level` or above.
    """

    operation_id: str = attrs.field(validator=_str)
    downstream_coroutine_id: str = attrs.field(validator=_str)
    gate_level: AgreementLevel = attrs.field(validator=_level)
    agreement_state: AgreementState | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.instance_of(AgreementState)),
    )
    agreement_evidence: tuple[AgreementEvidence, ...] = attrs.field(default=(), converter=_to_tuple)
    tick: int = attrs.field(validator=_tick)


@attrs.frozen(kw_only=True)
class EvidenceOutcomeCacheEntry:
    """The outcome of the effect bound to `evidence_id` (its idempotency key)."""

    evidence_id: str = attrs.field(validator=_str)
    interface_name: str = attrs.field(validator=_str)
    operation_name: str = attrs.field(validator=_str)
    outcome: EffectOutcome = attrs.field(validator=attrs.validators.instance_of(EffectOutcome))


@attrs.frozen(kw_only=True)
class EvidenceOutcomeCacheArtifact:
    """A whole evidence outcome cache: its entries in binding order."""

    entries: tuple[EvidenceOutcomeCacheEntry, ...] = attrs.field(default=(), converter=_to_tuple)
    _by_id: dict[str, EvidenceOutcomeCacheEntry] = attrs.field(
        init=False, eq=False, repr=False, hash=False
    )

    def __attrs_post_init__(self) -> None:
        by_id: dict[str, EvidenceOutcomeCacheEntry] = {}
        for entry in self.entries:
            by_id.setdefault(entry.evidence_id, entry)
        object.__setattr__(self, "_by_id", by_id)

    def get(self, evidence_id: str) -> EvidenceOutcomeCacheEntry | None:
        """The (first) entry for `evidence_id`, or ``None``."""
        return self._by_id.get(evidence_id)


@attrs.frozen(kw_only=True)
class DurableRecoveryMetadata:
    """Summary of one recovery: the checkpoint it started from, the tick range
    of the WAL suffix it applied, and which operations it resumed or found
    terminal."""

    checkpoint_tick: int = attrs.field(validator=_tick)
    wal_tail_start_tick: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_tick)
    )
    highest_recovered_tick: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_tick)
    )
    resumed_operation_ids: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)
    terminal_operation_ids: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)
    cached_evidence_ids: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)


# -- pure checks every backend runs before accepting data ------------------------


def check_plain(value: Any, depth: int = 0) -> None:
    """Raise `EncodeError` unless `value` is plain CBOR data nested at most
    `MAX_DEPTH` containers deep when it sits `depth` containers below a root
    (the root of the artifact it is exported in: see `RESPONSE_DEPTH`).

    >>> check_plain({"rows": [[1, 2]]}, depth=MAX_DEPTH - 3)  # 3 of its own: fits
    >>> try:
    ...     check_plain({"rows": [[1, 2]]}, depth=MAX_DEPTH - 2)
    ... except EncodeError as exc:
    ...     print(str(exc)[:41])
    value nests deeper than 128 containers co
    """
    _check_plain(value, depth, depth)


#: Exact types that are plain CBOR leaves whatever their value (ints have a range).
_LEAVES = frozenset({str, bytes, bool, float, type(None)})


def _check_plain(value: Any, depth: int, start: int) -> None:
    """The walk: exact built-in types first, children checked in line when
    they are leaves (the common case), anything else by `_check_other`."""
    kind = type(value)
    if kind in _LEAVES:
        return
    if kind is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise EncodeError(f"integer {value} does not fit in 64 bits")
        return
    if kind is not dict and kind is not list and kind is not tuple:
        _check_other(value, depth, start)
        return
    if depth >= MAX_DEPTH:
        raise _too_deep(start)
    leaves, low, high = _LEAVES, _INT_MIN, _INT_MAX
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                raise EncodeError(f"map key {key!r} is not text")
            inner = type(item)
            if inner not in leaves and not (inner is int and low <= item <= high):
                _check_plain(item, depth + 1, start)
    else:
        for item in value:
            inner = type(item)
            if inner not in leaves and not (inner is int and low <= item <= high):
                _check_plain(item, depth + 1, start)


def _check_other(value: Any, depth: int, start: int) -> None:
    """Subclasses of the plain types (an ``IntEnum``, an ``OrderedDict``, a
    named tuple) are plain too; anything else is not."""
    if isinstance(value, bool | str | bytes | float):
        return
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise EncodeError(f"integer {value} does not fit in 64 bits")
        return
    if isinstance(value, list | tuple | dict):
        if depth >= MAX_DEPTH:
            raise _too_deep(start)
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise EncodeError(f"map key {key!r} is not text")
                _check_plain(item, depth + 1, start)
        else:
            for item in value:
                _check_plain(item, depth + 1, start)
        return
    raise EncodeError(f"{type(value).__name__} {value!r:.60} is not plain CBOR data")


def _too_deep(start: int) -> EncodeError:
    where = (
        f" counted from the root of the artifact it is exported in ({start} of them "
        f"above it, so at most {MAX_DEPTH - start} of its own)"
        if start
        else ""
    )
    return EncodeError(f"value nests deeper than {MAX_DEPTH} containers{where}")


def check_entries(entries: Sequence[object]) -> None:
    """Raise `TypeError` unless every item is a WAL entry. (A WAL entry holds
    no free-form data: its nesting in an exported artifact is fixed at
    `ENTRY_DEPTH` plus two.)"""
    for entry in entries:
        if not isinstance(entry, WAL_ENTRY_TYPES):
            raise TypeError(f"not a WAL entry: {entry!r:.80}")


def check_cache_entry(entry: object) -> None:
    """Raise `TypeError` unless `entry` is an `EvidenceOutcomeCacheEntry`, and
    `EncodeError` unless its response is plain CBOR data that the exported
    cache artifact can hold (`RESPONSE_DEPTH` containers sit above it), so
    whatever a cache accepts, ``durability export`` can write."""
    if not isinstance(entry, EvidenceOutcomeCacheEntry):
        raise TypeError(f"not an EvidenceOutcomeCacheEntry: {entry!r:.80}")
    try:
        check_plain(entry.outcome.response, RESPONSE_DEPTH)
    except EncodeError as exc:
        raise EncodeError(f"response of cache entry {entry.evidence_id!r}: {exc}") from None


def check_sequence_arguments(**values: int | None) -> None:
    """Raise `ValueError` unless each given sequence argument
    (``expected_sequence``, ``after_sequence``, ``limit``) is ``None`` or an
    int >= 0."""
    for name, value in values.items():
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")


def sequenced(
    entries: Sequence[WalEntry], after_sequence: int, limit: int
) -> list[tuple[int, WalEntry]]:
    """``(sequence, entry)`` pairs of a WAL whose entries are numbered by their
    1-based position: up to `limit` of them after `after_sequence`."""
    check_sequence_arguments(after_sequence=after_sequence, limit=limit)
    window = entries[after_sequence : after_sequence + limit]
    return list(enumerate(window, start=after_sequence + 1))
