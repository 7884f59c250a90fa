"""Record the effects a run performs, then replay them without anything live.

`RecordingHandler` wraps a handler and records every ``handle_effect`` and
``wal_sync`` exchange; `RecordingHandler.trace` gives them as plain CBOR data
(a list of maps ``{"kind", "request", "outcome"}``, requests and outcomes in
their v1 form), which survives ``cbor2.dumps``/``cbor2.loads`` unchanged.
`ReplayHandler` answers each call with the next recorded outcome; a call that
does not match the next recorded exchange gets a ``DETERMINISM`` failure and
consumes nothing, so the run can be diagnosed at the first divergence.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, overload

import attrs

from .artifact import WalSyncRequest
from .codec import check_plain, from_plain, to_plain
from .effects import (
    AsyncEffectHandler,
    EffectFailure,
    EffectHandler,
    EffectOutcome,
    EffectRequest,
    failed,
    is_async_handler,
)
from .errors import DecodeError

__all__ = [
    "AsyncRecordingHandler",
    "AsyncReplayHandler",
    "ExchangeKind",
    "RecordedExchange",
    "RecordingHandler",
    "ReplayHandler",
]

ExchangeKind = Literal["handle_effect", "wal_sync"]
"""Which call an exchange records."""

_REQUEST_TYPES: dict[str, type[EffectRequest] | type[WalSyncRequest]] = {
    "handle_effect": EffectRequest,
    "wal_sync": WalSyncRequest,
}


def _plain(value: Any) -> Any:
    """`value` as CBOR round-trip-stable plain data (tuples become lists)."""
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


@attrs.frozen(kw_only=True)
class RecordedExchange:
    """One recorded call: its `kind`, the `request` it got and the `outcome`
    it answered."""

    kind: ExchangeKind = attrs.field(validator=attrs.validators.in_(tuple(_REQUEST_TYPES)))
    request: EffectRequest | WalSyncRequest = attrs.field(
        validator=attrs.validators.instance_of((EffectRequest, WalSyncRequest))
    )
    outcome: EffectOutcome = attrs.field(validator=attrs.validators.instance_of(EffectOutcome))

    def to_plain(self) -> dict[str, Any]:
        """The exchange as a plain CBOR map; raises `EncodeError` when a body
        or response is not plain CBOR data."""
        plain = {
            "kind": self.kind,
            "request": _plain(to_plain(self.request)),
            "outcome": _plain(to_plain(self.outcome)),
        }
        check_plain(plain)
        return plain

    @classmethod
    def from_plain(cls, data: Any, index: int = 0) -> RecordedExchange:
        """Build an exchange from its plain map; raises `DecodeError` naming
        the trace `index` when `data` is not one."""
        where = f"replay trace[{index}]"
        if not isinstance(data, Mapping):
            raise DecodeError(f"invalid {where}: expected a map, got {type(data).__name__}")
        kind = data.get("kind")
        request_type = _REQUEST_TYPES.get(kind) if isinstance(kind, str) else None
        if request_type is None:
            raise DecodeError(f"invalid {where}.kind: unknown exchange kind {kind!r}")
        for key in ("request", "outcome"):
            if key not in data:
                raise DecodeError(f"invalid {where}: missing {key!r}")
        request = from_plain(data["request"], request_type, where=f"{where}.request")
        outcome = from_plain(data["outcome"], EffectOutcome, where=f"{where}.outcome")
        return cls(kind=kind, request=request, outcome=outcome)  # type: ignore[arg-type]


class _RecordingHandlerInit:
    """The state of a `RecordingHandler` (a base: mypy reads a class's
    signature from ``__new__`` only when ``__init__`` is inherited)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._exchanges: list[RecordedExchange] = []


class RecordingHandler(_RecordingHandlerInit):
    """Wrap `inner`, forwarding every call and recording each ``handle_effect``
    and ``wal_sync`` exchange in `exchanges`, in call order.

    ``wal_sync`` exists exactly when `inner` has one; every other attribute is
    `inner`'s. An async `inner` gives an ``async def handle_effect``. A call
    that raises is not recorded. Thread-safe.

    >>> class Echo:
    ...     def handle_effect(self, request):
    ...         return EffectOutcome.success(request.body)
    >>> recorder = RecordingHandler(Echo())
    >>> recorder.handle_effect(
    ...     EffectRequest(interface_name="Clock", operation_name="now", tick=1, body=5)
    ... ).response
    5
    >>> [exchange.kind for exchange in recorder.exchanges]
    ['handle_effect']
    """

    @overload
    def __new__(cls, inner: AsyncEffectHandler) -> AsyncRecordingHandler: ...
    @overload
    def __new__(cls, inner: EffectHandler) -> RecordingHandler: ...
    def __new__(cls, inner: Any) -> RecordingHandler:
        if cls is RecordingHandler and is_async_handler(inner):
            cls = AsyncRecordingHandler
        return super().__new__(cls)

    @property
    def inner(self) -> Any:
        """The wrapped handler."""
        return self._inner

    @property
    def exchanges(self) -> tuple[RecordedExchange, ...]:
        """Every recorded exchange so far, in call order."""
        with self._lock:
            return tuple(self._exchanges)

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        """Forward `request` to `inner` and record the exchange."""
        outcome: EffectOutcome = self._inner.handle_effect(request)
        return self._record("handle_effect", request, outcome)

    def trace(self) -> list[dict[str, Any]]:
        """The recorded exchanges as plain CBOR data (a list of maps), ready
        for ``cbor2.dumps`` and for `ReplayHandler`.

        Raises `EncodeError` when a recorded body or response is not plain
        CBOR data.
        """
        return [exchange.to_plain() for exchange in self.exchanges]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_inner":
            raise AttributeError(name)
        attribute = getattr(self._inner, name)
        if name == "wal_sync" and callable(attribute):
            return self._recording_wal_sync(attribute)
        return attribute

    def _recording_wal_sync(self, wal_sync: Callable[[WalSyncRequest], Any]) -> Any:
        if inspect.iscoroutinefunction(wal_sync):

            async def record_async(sync: WalSyncRequest) -> EffectOutcome:
                return self._record("wal_sync", sync, await wal_sync(sync))

            return record_async

        def record(sync: WalSyncRequest) -> EffectOutcome:
            return self._record("wal_sync", sync, wal_sync(sync))

        return record

    def _record(
        self, kind: ExchangeKind, request: EffectRequest | WalSyncRequest, outcome: EffectOutcome
    ) -> EffectOutcome:
        exchange = RecordedExchange(kind=kind, request=request, outcome=outcome)
        with self._lock:
            self._exchanges.append(exchange)
        return outcome


class AsyncRecordingHandler(RecordingHandler):
    """`RecordingHandler` around an async handler: ``handle_effect`` is an
    ``async def``. Built by ``RecordingHandler(async_inner)``."""

    async def handle_effect(self, request: EffectRequest) -> EffectOutcome:  # type: ignore[override]
        """Await `inner` on `request` and record the exchange."""
        outcome: EffectOutcome = await self._inner.handle_effect(request)
        return self._record("handle_effect", request, outcome)


def _load_trace(trace: Iterable[Any]) -> list[RecordedExchange]:
    if isinstance(trace, str | bytes | bytearray | Mapping) or not isinstance(trace, Iterable):
        raise DecodeError(
            f"invalid replay trace: expected a list of maps, got {type(trace).__name__}"
        )
    exchanges: list[RecordedExchange] = []
    for index, item in enumerate(trace):
        if isinstance(item, RecordedExchange):
            exchanges.append(item)
        else:
            exchanges.append(RecordedExchange.from_plain(item, index))
    return exchanges


def _difference(expected: object, got: object) -> str:
    """Name the first field where two requests of one type differ."""
    expected_plain, got_plain = _plain(to_plain(expected)), _plain(to_plain(got))
    for name, value in expected_plain.items():
        if got_plain.get(name) != value:
            return f"field `{name}`: expected {value!r:.200}, got {got_plain.get(name)!r:.200}"
    return "requests differ"


class _ReplayHandlerInit:
    """The state of a `ReplayHandler` (a base: mypy reads a class's
    signature from ``__new__`` only when ``__init__`` is inherited)."""

    def __init__(self, trace: Iterable[Any], *, asynchronous: bool = False) -> None:
        self._exchanges = _load_trace(trace)
        self._position = 0
        self._lock = threading.Lock()


class ReplayHandler(_ReplayHandlerInit):
    """Answer calls from a recorded trace, calling nothing live.

    `trace` is what `RecordingHandler.trace` returned, as it is or after a
    CBOR round trip (a list of `RecordedExchange` values works too). Each
    ``handle_effect``/``wal_sync`` call is compared with the next recorded
    exchange: when kind and request match (by value, in their v1 plain form)
    the recorded outcome is returned and the exchange consumed. Otherwise, and
    for a call past the end, the answer is a ``DETERMINISM`` failure naming the
    exchange index, what was expected and what came, and nothing is consumed.

    Raises `DecodeError` at construction when `trace` is malformed. Pass
    ``asynchronous=True`` for an ``async def handle_effect``. Thread-safe.

    >>> request = EffectRequest(interface_name="Clock", operation_name="now", tick=1)
    >>> replay = ReplayHandler([RecordedExchange(
    ...     kind="handle_effect", request=request, outcome=EffectOutcome.success(42))])
    >>> replay.handle_effect(request).response, replay.remaining
    (42, 0)
    >>> replay.handle_effect(request).failure.kind.value
    'determinism'
    """

    @overload
    def __new__(
        cls, trace: Iterable[Any], *, asynchronous: Literal[True]
    ) -> AsyncReplayHandler: ...
    @overload
    def __new__(
        cls, trace: Iterable[Any], *, asynchronous: Literal[False] = ...
    ) -> ReplayHandler: ...
    def __new__(cls, trace: Iterable[Any], *, asynchronous: bool = False) -> ReplayHandler:
        if cls is ReplayHandler and asynchronous:
            cls = AsyncReplayHandler
        return super().__new__(cls)

    @property
    def remaining(self) -> int:
        """How many recorded exchanges are still to be replayed."""
        with self._lock:
            return len(self._exchanges) - self._position

    @property
    def position(self) -> int:
        """Index of the next exchange to replay (= how many were consumed)."""
        with self._lock:
            return self._position

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        """The recorded outcome of the next exchange, or a ``DETERMINISM``
        failure when `request` does not match it."""
        return self._answer("handle_effect", request)

    def wal_sync(self, sync: WalSyncRequest) -> EffectOutcome:
        """The recorded outcome of the next exchange, or a ``DETERMINISM``
        failure when `sync` does not match it."""
        return self._answer("wal_sync", sync)

    def _answer(self, kind: ExchangeKind, request: EffectRequest | WalSyncRequest) -> EffectOutcome:
        with self._lock:
            index = self._position
            if index >= len(self._exchanges):
                return failed(
                    EffectFailure.determinism(
                        f"replay diverged at exchange {index}: trace exhausted "
                        f"({len(self._exchanges)} exchanges recorded), got {kind} {request!r:.200}"
                    )
                )
            expected = self._exchanges[index]
            if expected.kind != kind:
                return failed(
                    EffectFailure.determinism(
                        f"replay diverged at exchange {index}: expected {expected.kind} "
                        f"{expected.request!r:.200}, got {kind} {request!r:.200}"
                    )
                )
            if not isinstance(request, type(expected.request)) or _plain(
                to_plain(request)
            ) != _plain(to_plain(expected.request)):
                detail = (
                    _difference(expected.request, request)
                    if isinstance(request, type(expected.request))
                    else f"expected {expected.request!r:.200}, got {request!r:.200}"
                )
                return failed(
                    EffectFailure.determinism(
                        f"replay diverged at exchange {index} ({kind}): {detail}"
                    )
                )
            self._position += 1
            return expected.outcome


class AsyncReplayHandler(ReplayHandler):
    """`ReplayHandler` whose ``handle_effect`` is an ``async def``. Built by
    ``ReplayHandler(trace, asynchronous=True)``."""

    async def handle_effect(self, request: EffectRequest) -> EffectOutcome:  # type: ignore[override]
        """See `ReplayHandler.handle_effect`."""
        return self._answer("handle_effect", request)
