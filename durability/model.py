"""Agreement model: levels, outcomes, evidence and per-operation state.

Rules of this module:

* every value is a frozen attrs class, built by keyword, compared by value;
* sequence fields accept any iterable and are stored as tuples;
* a value that breaks a rule (a negative tick, a level that is not an
  `AgreementLevel`) cannot be built: construction raises `TypeError` or
  `ValueError`, as attrs validators do.

Enum values are the snake_case text the v1 format writes (FORMAT.md §1).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

import attrs

__all__ = [
    "AgreementEvidence",
    "AgreementEvidenceKind",
    "AgreementLevel",
    "AgreementState",
    "FinalizationOutcome",
]


class AgreementLevel(enum.Enum):
    """How far agreement on one operation has progressed, ordered by `rank`.

    >>> AgreementLevel.SOFT_SAFE > AgreementLevel.PROVISIONAL
    True
    >>> AgreementLevel.FINALIZED.at_least(AgreementLevel.SOFT_SAFE)
    True
    """

    NONE = "none"
    PROVISIONAL = "provisional"
    SOFT_SAFE = "soft_safe"
    FINALIZED = "finalized"

    # Set on each member below: plain attributes, because a dict keyed by a
    # member hashes it through `Enum.__hash__`, a Python call, and every
    # append and every entry replayed compares levels.
    _rank: int
    _rust_name: str

    @property
    def rank(self) -> int:
        """0 for `NONE` up to 3 for `FINALIZED`."""
        return self._rank

    @property
    def rust_name(self) -> str:
        """The spelling used in stable identities (``None``, ``SoftSafe``, ...)."""
        return self._rust_name

    def at_least(self, other: AgreementLevel) -> bool:
        """True when this level is `other` or higher."""
        return self._rank >= other._rank

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, AgreementLevel):
            return NotImplemented
        return self._rank < other._rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, AgreementLevel):
            return NotImplemented
        return self._rank <= other._rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, AgreementLevel):
            return NotImplemented
        return self._rank > other._rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, AgreementLevel):
            return NotImplemented
        return self._rank >= other._rank


def _rust_spelling(value: str) -> str:
    return "".join(part.capitalize() for part in value.split("_"))


for _position, _member in enumerate(AgreementLevel):
    _member._rank = _position
    _member._rust_name = _rust_spelling(_member.value)


def max_level(a: AgreementLevel, b: AgreementLevel) -> AgreementLevel:
    """The higher of two levels."""
    return a if a._rank >= b._rank else b


class FinalizationOutcome(enum.Enum):
    """How an operation ended: `FINALIZED`, or one of three terminal failures."""

    FINALIZED = "finalized"
    ABORTED = "aborted"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"

    _rust_name: str  # set on each member below (see `AgreementLevel`)

    @property
    def rust_name(self) -> str:
        """The spelling used in stable identities (``Finalized``, ``TimedOut``, ...)."""
        return self._rust_name


for _finalization in FinalizationOutcome:
    _finalization._rust_name = _rust_spelling(_finalization.value)
del _position, _member, _finalization


class AgreementEvidenceKind(enum.Enum):
    """What a piece of agreement evidence is."""

    WITNESS = "witness"
    CERTIFICATE = "certificate"
    COMMIT_FACT = "commit_fact"
    PUBLICATION = "publication"
    MATERIALIZATION = "materialization"


def _to_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    if isinstance(value, str | bytes):
        raise TypeError(f"expected a sequence, got {type(value).__name__} {value!r}")
    return tuple(value)


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= U64_MAX:
        raise ValueError(f"{attribute.name} must be an integer >= 0, got {value!r}")


U64_MAX = 2**64 - 1


def _tick(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= U64_MAX:
        raise ValueError(f"{attribute.name} must be an integer >= 0, got {value!r}")


_str = attrs.validators.instance_of(str)
_opt_str = attrs.validators.optional(_str)
_opt_uint = _non_negative
_bool = attrs.validators.instance_of(bool)
_level = attrs.validators.instance_of(AgreementLevel)


def _str_tuple(_inst: object, attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
    for item in value:
        if not isinstance(item, str):
            raise TypeError(f"{attribute.name} must hold str, got {item!r}")


@attrs.frozen(kw_only=True)
class AgreementEvidence:
    """One durable piece of evidence that an operation reached `level`.

    `evidence_id` is the idempotency key the evidence cache uses; `reference`
    points at the proof itself (a certificate, a commit record, ...).
    """

    evidence_id: str = attrs.field(validator=_str)
    operation_id: str = attrs.field(validator=_str)
    session: int | None = attrs.field(default=None, validator=_opt_uint)
    owner_id: str | None = attrs.field(default=None, validator=_opt_str)
    level: AgreementLevel = attrs.field(validator=_level)
    kind: AgreementEvidenceKind = attrs.field(
        validator=attrs.validators.instance_of(AgreementEvidenceKind)
    )
    reference: str = attrs.field(validator=_str)
    authoritative: bool = attrs.field(validator=_bool)


@attrs.frozen(kw_only=True)
class AgreementState:
    """A protocol's snapshot of one operation, as carried by a `WalSyncRequest`."""

    operation_id: str = attrs.field(validator=_str)
    session: int | None = attrs.field(default=None, validator=_opt_uint)
    owner_id: str | None = attrs.field(default=None, validator=_opt_str)
    contract_name: str = attrs.field(validator=_str)
    level: AgreementLevel = attrs.field(validator=_level)
    finalization: FinalizationOutcome | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.instance_of(FinalizationOutcome)),
    )
    evidence_ids: tuple[str, ...] = attrs.field(
        default=(), converter=_to_tuple, validator=_str_tuple
    )
    last_updated_tick: int | None = attrs.field(default=None, validator=_opt_uint)
    reason: str | None = attrs.field(default=None, validator=_opt_str)
