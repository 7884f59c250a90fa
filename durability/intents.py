"""Intent records: what makes an effect's fate known across crashes (API.md §11,
``specs/effects.md``). Pure: values in, values out; no files, no clock.

Before a handler runs an effect it makes an `EffectIntent` durable; then it
runs the effect; then it binds the outcome. An intent that is neither
withdrawn nor followed by a terminal binding is **in doubt**: the effect may
or may not have happened. `IntentBook` is the bookkeeping every provided cache
shares (the compare-and-set rule, withdrawals, the in-doubt list);
`current_idempotency_key` tells the running effect which evidence id it runs
for. (`durability.digest` fingerprints the request an intent is made for.)
"""

from __future__ import annotations

import contextvars
import enum
import re
from collections.abc import Callable
from typing import Any, Protocol

import attrs
import cbor2

from .artifact import EvidenceOutcomeCacheEntry
from .effects import EffectOutcome
from .errors import DecodeError, DurabilityError
from .model import _opt_str, _str

__all__ = [
    "EffectIntent",
    "EffectScope",
    "EffectSemantics",
    "EffectSemanticsWarning",
    "IntentBook",
    "ParkedTransaction",
    "check_intent",
    "current_effect_scope",
    "current_idempotency_key",
    "encode_intent",
    "encode_intents",
    "enter_effect",
    "intent_from_plain",
    "intent_to_plain",
    "leave_effect",
    "resolve_with",
    "withdrawal_from_plain",
    "withdrawal_to_plain",
]


class EffectSemantics(enum.Enum):
    """What a handler does with an effect left in doubt by a crash.

    * `AT_MOST_ONCE` (the default): never run it again on its own; answer an
      ``UNAVAILABLE`` failure until it is reconciled or resolved.
    * `AT_LEAST_ONCE`: run it again (a new attempt); the sink must deduplicate,
      e.g. by `current_idempotency_key`.
    """

    AT_MOST_ONCE = "at_most_once"
    AT_LEAST_ONCE = "at_least_once"


class EffectSemanticsWarning(UserWarning):
    """A handler was built over a cache without intent methods: it cannot
    know an effect's fate after a crash, so effects run at least once."""


_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value < 2**63:
        raise ValueError(f"{attribute.name} must be an integer >= 1, got {value!r}")


def _unix_ms(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise ValueError(f"{attribute.name} must be an integer >= 0, got {value!r}")


def _digest(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _DIGEST.match(value):
        raise ValueError(f"{attribute.name} must be 64 lowercase hex digits, got {value!r:.80}")


@attrs.frozen(kw_only=True)
class EffectIntent:
    """A durable note that attempt `attempt` of the effect bound to
    `evidence_id` is about to run.

    * `interface_name`, `operation_name`, `operation_id`: the request's;
    * `attempt`: 1 for the first intent of an id, one more for each next one;
    * `request_digest`: ``durability.digest.request_digest`` of the request
      (64 lowercase hex);
    * `created_unix_ms`: when the intent was made, in Unix milliseconds;
    * `withdrawn`: the attempt was withdrawn (it did not happen).

    >>> intent = EffectIntent(evidence_id="ev-1", interface_name="Storage",
    ...     operation_name="write", attempt=1, request_digest="0" * 64, created_unix_ms=0)
    >>> intent.withdrawn
    False
    """

    evidence_id: str = attrs.field(validator=_str)
    interface_name: str = attrs.field(validator=_str)
    operation_name: str = attrs.field(validator=_str)
    operation_id: str | None = attrs.field(default=None, validator=_opt_str)
    attempt: int = attrs.field(validator=_positive)
    request_digest: str = attrs.field(validator=_digest)
    created_unix_ms: int = attrs.field(validator=_unix_ms)
    withdrawn: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))


class ParkedTransaction(Protocol):
    """A cache transaction an effect left open for its outcome binding to
    join (``transaction()`` of the SQL caches)."""

    @property
    def connection(self) -> Any:
        """The connection the effect wrote through."""

    def bind(self, entry: EvidenceOutcomeCacheEntry) -> EvidenceOutcomeCacheEntry:
        """Bind `entry` first-binding-wins in the transaction, then commit it
        (roll it back when another binding won); return the bound entry."""

    def roll_back(self) -> None:
        """Roll the transaction back (the effect did not happen)."""


class EffectScope:
    """The effect a handler is running now: the `cache` its outcome will be
    bound in, its `evidence_id`, and the transaction of that cache the effect
    left open for the binding (`parked`, set by ``transaction()``)."""

    __slots__ = ("cache", "evidence_id", "parked")

    def __init__(self, cache: object, evidence_id: str) -> None:
        self.cache = cache
        self.evidence_id = evidence_id
        self.parked: ParkedTransaction | None = None


_SCOPE: contextvars.ContextVar[EffectScope | None] = contextvars.ContextVar(
    "durability_effect_scope", default=None
)


def current_idempotency_key() -> str | None:
    """The evidence id of the effect running now, while a handler's `inner`
    runs it (sync, threads and asyncio alike: a `contextvars` variable), else
    ``None``. A sink deduplicating by it makes an at-least-once effect land
    exactly once.

    >>> current_idempotency_key() is None
    True
    """
    scope = _SCOPE.get()
    return scope.evidence_id if scope is not None else None


def current_effect_scope() -> EffectScope | None:
    """The `EffectScope` of the effect running now, or ``None``."""
    return _SCOPE.get()


def enter_effect(scope: EffectScope) -> contextvars.Token[EffectScope | None]:
    """Make `scope` the running effect's (handlers only); undo with `leave_effect`."""
    return _SCOPE.set(scope)


def leave_effect(token: contextvars.Token[EffectScope | None]) -> None:
    """Undo `enter_effect`."""
    _SCOPE.reset(token)


def check_intent(intent: object) -> None:
    """Raise `TypeError` unless `intent` is an `EffectIntent`."""
    if not isinstance(intent, EffectIntent):
        raise TypeError(f"not an EffectIntent: {intent!r:.80}")


# -- the stored form ------------------------------------------------------------------

_INTENT_FIELDS = (
    "evidence_id",
    "interface_name",
    "operation_name",
    "operation_id",
    "attempt",
    "request_digest",
    "created_unix_ms",
)


def intent_to_plain(intent: EffectIntent) -> dict[str, Any]:
    """The stored map of an intent record: every field but `withdrawn` (a
    withdrawal is a record of its own), in declaration order."""
    return {name: getattr(intent, name) for name in _INTENT_FIELDS}


def encode_intent(intent: EffectIntent) -> bytes:
    """The CBOR of an intent's stored map (its fields are text and integers
    the class validated, so no plain-data check is needed)."""
    return cbor2.dumps(intent_to_plain(intent))


def encode_intents(intents: list[EffectIntent]) -> bytes:
    """The CBOR of an array of stored intent maps (an `INTENTS` record's payload)."""
    return cbor2.dumps([intent_to_plain(intent) for intent in intents])


def intent_from_plain(plain: Any) -> EffectIntent:
    """The intent a stored map holds (unknown keys ignored); `DecodeError` otherwise."""
    if not isinstance(plain, dict):
        raise DecodeError(f"an intent is a map, not {type(plain).__name__}")
    try:
        fields: dict[str, Any] = {name: plain.get(name) for name in _INTENT_FIELDS}
        return EffectIntent(**fields)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"invalid intent: {exc}") from exc


def withdrawal_to_plain(evidence_id: str, attempt: int) -> dict[str, Any]:
    """The stored map of a withdrawal: ``{"evidence_id": id, "attempt": n}``."""
    return {"evidence_id": evidence_id, "attempt": attempt}


def withdrawal_from_plain(plain: Any) -> tuple[str, int]:
    """``(evidence_id, attempt)`` of a stored withdrawal; `DecodeError` otherwise."""
    if not isinstance(plain, dict):
        raise DecodeError(f"a withdrawal is a map, not {type(plain).__name__}")
    evidence_id, attempt = plain.get("evidence_id"), plain.get("attempt")
    if not isinstance(evidence_id, str) or not isinstance(attempt, int) or attempt < 1:
        raise DecodeError(f"invalid withdrawal {plain!r:.80}")
    return evidence_id, attempt


# -- the bookkeeping ------------------------------------------------------------------


def _terminal(entry: EvidenceOutcomeCacheEntry | None) -> bool:
    return entry is not None and entry.outcome.is_terminal


class IntentBook:
    """The intents of one cache: the latest intent of each evidence id and
    which ids are in doubt, in the order their open attempt was recorded.

    Not thread-safe: the cache holding it serialises access. `bound(id)`
    answers the cache's binding of an id. Writers ask `admits` /
    `withdrawable` before writing and apply with `record` / `withdraw`;
    readers replaying a log apply with `replay_intent` / `replay_withdrawal`,
    which refuse what no writer could have written (`DecodeError`).
    """

    def __init__(self, bound: Callable[[str], EvidenceOutcomeCacheEntry | None]) -> None:
        self._bound = bound
        self.latest: dict[str, EffectIntent] = {}
        self._open: dict[str, None] = {}  # ordered set: ids in doubt

    def get(self, evidence_id: str) -> EffectIntent | None:
        """The latest intent recorded for `evidence_id`."""
        return self.latest.get(evidence_id)

    def admits(self, intent: EffectIntent) -> bool:
        """The compare-and-set rule: no terminal outcome is bound for the id
        and `intent.attempt` is one more than the latest recorded (1 if none)."""
        if _terminal(self._bound(intent.evidence_id)):
            return False
        latest = self.latest.get(intent.evidence_id)
        return intent.attempt == (latest.attempt + 1 if latest is not None else 1)

    def record(self, intent: EffectIntent) -> None:
        """Apply an admitted intent: it is now the id's latest, in doubt."""
        if intent.withdrawn:
            intent = attrs.evolve(intent, withdrawn=False)
        self.latest[intent.evidence_id] = intent
        self._open.pop(intent.evidence_id, None)
        self._open[intent.evidence_id] = None

    def withdrawable(self, evidence_id: str, attempt: int) -> bool:
        """Whether withdrawing `attempt` changes anything: it is the latest,
        not withdrawn, and no terminal outcome is bound."""
        latest = self.latest.get(evidence_id)
        return (
            latest is not None
            and latest.attempt == attempt
            and not latest.withdrawn
            and not _terminal(self._bound(evidence_id))
        )

    def withdraw(self, evidence_id: str) -> None:
        """Apply a withdrawal of the id's latest attempt."""
        latest = self.latest[evidence_id]
        self.latest[evidence_id] = attrs.evolve(latest, withdrawn=True)
        self._open.pop(evidence_id, None)

    def bound_now(self, entry: EvidenceOutcomeCacheEntry) -> None:
        """Account for a binding just made (call after the cache holds it): a
        terminal one settles the id; a blocked one reopens an open attempt."""
        evidence_id = entry.evidence_id
        if entry.outcome.is_terminal:
            self._open.pop(evidence_id, None)
            return
        latest = self.latest.get(evidence_id)
        if latest is not None and not latest.withdrawn and evidence_id not in self._open:
            self._open[evidence_id] = None

    def in_doubt(self) -> list[EffectIntent]:
        """The intents in doubt, in the order their attempt was recorded."""
        return [self.latest[evidence_id] for evidence_id in self._open]

    def replay_intent(self, intent: EffectIntent) -> None:
        """Apply an intent read back from storage; `DecodeError` unless a
        writer could have written it."""
        latest = self.latest.get(intent.evidence_id)
        expected = latest.attempt + 1 if latest is not None else 1
        if intent.attempt != expected:
            raise DecodeError(
                f"intent attempt {intent.attempt} of `{intent.evidence_id}` "
                f"does not follow attempt {expected - 1}"
            )
        self.record(intent)

    def replay_withdrawal(self, evidence_id: str, attempt: int) -> None:
        """Apply a withdrawal read back from storage; `DecodeError` unless it
        names the latest attempt."""
        latest = self.latest.get(evidence_id)
        if latest is None or latest.attempt != attempt:
            raise DecodeError(
                f"withdrawal of attempt {attempt} of `{evidence_id}`, which is not its latest"
            )
        self.withdraw(evidence_id)


def resolve_with(cache: Any, evidence_id: str, outcome: EffectOutcome) -> EffectOutcome:
    """`resolve` in terms of a cache's other methods (``get``,
    ``put_if_absent``, ``get_intent``, ``withdraw_intent``), each atomic: the
    implementation every provided cache shares.

    An id already bound to a terminal outcome answers it, unchanged. Else,
    with no intent recorded, `DurabilityError`; a terminal `outcome` is bound
    (first binding wins) and the bound one returned; a blocked one withdraws
    the latest attempt and is returned. Raises `TypeError` for a non-outcome.
    """
    if not isinstance(outcome, EffectOutcome):
        raise TypeError(f"resolve needs an EffectOutcome, got {outcome!r:.80}")
    bound = cache.get(evidence_id)
    if _terminal(bound):
        return bound.outcome  # type: ignore[no-any-return]
    intent = cache.get_intent(evidence_id)
    if intent is None:
        raise DurabilityError(
            f"resolve `{evidence_id}`: no intent is recorded for it, so nothing is in doubt"
        )
    if outcome.is_blocked:
        cache.withdraw_intent(evidence_id, intent.attempt)
        return outcome
    entry = EvidenceOutcomeCacheEntry(
        evidence_id=evidence_id,
        interface_name=intent.interface_name,
        operation_name=intent.operation_name,
        outcome=outcome,
    )
    winner: EvidenceOutcomeCacheEntry = cache.put_if_absent(entry)
    return winner.outcome
