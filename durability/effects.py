"""Effects: the requests a protocol runtime sends to a handler and what comes back.

An *effect handler* is any object with ``handle_effect(request) -> EffectOutcome``
(or ``async def handle_effect``); it may also have ``wal_sync(sync)``.
`response` and `body` hold plain CBOR data: ``None``, bools, ints, floats, text,
bytes, lists and text-keyed maps of these. Whether a value is plain is checked
when it is encoded (`EncodeError`), not when it is built.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from .model import _non_negative, _opt_str, _str, _tick

__all__ = [
    "AsyncEffectHandler",
    "EffectFailure",
    "EffectFailureKind",
    "EffectHandler",
    "EffectOutcome",
    "EffectRequest",
    "EffectStatus",
    "is_async_handler",
]


class EffectFailureKind(enum.Enum):
    """Why an effect failed."""

    DENIED = "denied"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    STALE_AUTHORITY = "stale_authority"
    INVALID_EVIDENCE = "invalid_evidence"
    UNAVAILABLE = "unavailable"
    INVALID_INPUT = "invalid_input"
    DETERMINISM = "determinism"
    TOPOLOGY_DISRUPTION = "topology_disruption"
    CONTRACT_VIOLATION = "contract_violation"
    UNKNOWN = "unknown"


@attrs.frozen(kw_only=True)
class EffectFailure:
    """A typed failure: its `kind` and a human-readable `message`.

    Build one with the constructor named after its kind, e.g.
    ``EffectFailure.unavailable("disk gone")``.
    """

    kind: EffectFailureKind = attrs.field(validator=attrs.validators.instance_of(EffectFailureKind))
    message: str = attrs.field(validator=_str)

    @classmethod
    def denied(cls, message: str) -> EffectFailure:
        """A `DENIED` failure."""
        return cls(kind=EffectFailureKind.DENIED, message=message)

    @classmethod
    def timeout(cls, message: str) -> EffectFailure:
        """A `TIMEOUT` failure."""
        return cls(kind=EffectFailureKind.TIMEOUT, message=message)

    @classmethod
    def cancelled(cls, message: str) -> EffectFailure:
        """A `CANCELLED` failure."""
        return cls(kind=EffectFailureKind.CANCELLED, message=message)

    @classmethod
    def stale_authority(cls, message: str) -> EffectFailure:
        """A `STALE_AUTHORITY` failure."""
        return cls(kind=EffectFailureKind.STALE_AUTHORITY, message=message)

    @classmethod
    def invalid_evidence(cls, message: str) -> EffectFailure:
        """An `INVALID_EVIDENCE` failure."""
        return cls(kind=EffectFailureKind.INVALID_EVIDENCE, message=message)

    @classmethod
    def unavailable(cls, message: str) -> EffectFailure:
        """An `UNAVAILABLE` failure (what backend errors become in handlers)."""
        return cls(kind=EffectFailureKind.UNAVAILABLE, message=message)

    @classmethod
    def invalid_input(cls, message: str) -> EffectFailure:
        """An `INVALID_INPUT` failure."""
        return cls(kind=EffectFailureKind.INVALID_INPUT, message=message)

    @classmethod
    def determinism(cls, message: str) -> EffectFailure:
        """A `DETERMINISM` failure (what replay returns on a divergent request)."""
        return cls(kind=EffectFailureKind.DETERMINISM, message=message)

    @classmethod
    def topology_disruption(cls, message: str) -> EffectFailure:
        """A `TOPOLOGY_DISRUPTION` failure."""
        return cls(kind=EffectFailureKind.TOPOLOGY_DISRUPTION, message=message)

    @classmethod
    def contract_violation(cls, message: str) -> EffectFailure:
        """A `CONTRACT_VIOLATION` failure."""
        return cls(kind=EffectFailureKind.CONTRACT_VIOLATION, message=message)

    @classmethod
    def unknown(cls, message: str) -> EffectFailure:
        """An `UNKNOWN` failure."""
        return cls(kind=EffectFailureKind.UNKNOWN, message=message)


class EffectStatus(enum.Enum):
    """Whether an effect succeeded, is blocked (retry later) or failed."""

    SUCCESS = "success"
    BLOCKED = "blocked"
    FAILURE = "failure"


@attrs.frozen(kw_only=True, slots=False)
class EffectOutcome:
    """What an effect produced.

    Build with ``EffectOutcome.success(response)``, ``EffectOutcome.blocked()``
    or ``EffectOutcome.failure(EffectFailure...)``. On an instance, `failure` is
    the field (the `EffectFailure` or ``None``); on the class it is the
    constructor. A failure outcome carries a failure and only a failure outcome
    does.
    """

    status: EffectStatus = attrs.field(validator=attrs.validators.instance_of(EffectStatus))
    response: Any = None
    failure: EffectFailure | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.instance_of(EffectFailure)),
    )

    def __attrs_post_init__(self) -> None:
        if (self.status is EffectStatus.FAILURE) != (self.failure is not None):
            raise ValueError(
                f"an EffectOutcome with status {self.status.value} "
                f"{'needs' if self.status is EffectStatus.FAILURE else 'cannot have'} a failure"
            )

    @classmethod
    def success(cls, response: Any = None) -> EffectOutcome:
        """A successful outcome carrying `response` (plain CBOR data)."""
        return cls(status=EffectStatus.SUCCESS, response=response)

    @classmethod
    def blocked(cls) -> EffectOutcome:
        """A blocked outcome: not terminal, never cached."""
        return cls(status=EffectStatus.BLOCKED)

    @property
    def is_success(self) -> bool:
        """True for a success."""
        return self.status is EffectStatus.SUCCESS

    @property
    def is_blocked(self) -> bool:
        """True for a blocked outcome."""
        return self.status is EffectStatus.BLOCKED

    @property
    def is_terminal(self) -> bool:
        """True for success or failure (anything but blocked)."""
        return self.status is not EffectStatus.BLOCKED


def failed(failure: EffectFailure, response: Any = None) -> EffectOutcome:
    """A failure outcome (the typed spelling of ``EffectOutcome.failure(f)``)."""
    return EffectOutcome(status=EffectStatus.FAILURE, failure=failure, response=response)


class _FailureMember:
    """On the class, `EffectOutcome.failure` is the constructor; on an instance
    the field value, which lives in the instance ``__dict__`` and therefore
    shadows this non-data descriptor."""

    def __get__(self, instance: object, owner: type) -> Callable[[EffectFailure], EffectOutcome]:
        return failed


EffectOutcome.failure = _FailureMember()  # type: ignore[assignment]


@attrs.frozen(kw_only=True)
class EffectRequest:
    """A request for one effect: which interface and operation, at which tick,
    for which agreement operation, with an optional plain-CBOR `body`."""

    interface_name: str = attrs.field(validator=_str)
    operation_name: str = attrs.field(validator=_str)
    tick: int = attrs.field(validator=_tick)
    operation_id: str | None = attrs.field(default=None, validator=_opt_str)
    session: int | None = attrs.field(default=None, validator=_non_negative)
    effect_id: int | None = attrs.field(default=None, validator=_non_negative)
    body: Any = None


class EffectHandler(Protocol):
    """A synchronous effect handler: ``handle_effect(request) -> EffectOutcome``."""

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        """Perform the effect `request` asks for."""


class AsyncEffectHandler(Protocol):
    """An asynchronous effect handler: ``async def handle_effect(request)``."""

    async def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        """Perform the effect `request` asks for."""


class _Forwarding:
    """Base of the handler wrappers (`durability.handlers`,
    `durability.evidence`): forward every attribute the wrapper does not
    define to the wrapped handler `_inner`."""

    _inner: Any

    @property
    def inner(self) -> Any:
        """The wrapped handler."""
        return self._inner

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails. Dunders and our own private
        # state are never forwarded (copy, pickle and half-built instances).
        if name.startswith("__") or name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)


def is_async_handler(inner: object) -> bool:
    """True when `inner.handle_effect` is a coroutine function."""
    method = getattr(inner, "handle_effect", None)
    if method is None:
        raise TypeError(f"{type(inner).__name__} is not an effect handler: no handle_effect")
    return inspect.iscoroutinefunction(method) or inspect.iscoroutinefunction(
        getattr(method, "__call__", None)  # noqa: B004 - a callable object's async __call__
    )
