"""One call of the evidence handler, written once for sync and async code.

`call_flow` is a generator (sans I/O, as h11's state machines are): it
yields the *steps* a call needs, and a driver runs them (`drive` in sync
code, `drive_async` under asyncio) and sends each result back, or throws the
step's exception in:

* `Io`: a cache call (in asyncio: its async variant, else in a thread, so the
  event loop never waits for a disk or a database);
* `OnLoop`: a call made where the handler runs (``reconcile``, which may be
  ``async`` beside an async `inner`; the binding of a parked transaction);
* `INNER`: the effect itself, with `current_idempotency_key` set; its
  exception is never thrown in: it propagates to the caller unchanged.

The rules it follows are API.md §7 and §11: intent before effect, outcome
after; blocked withdraws; an exception leaves the effect in doubt.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import attrs

from .artifact import EvidenceOutcomeCacheEntry
from .digest import request_digest, same_request
from .effects import EffectFailure, EffectOutcome, EffectRequest, failed
from .errors import EncodeError
from .intents import (
    EffectIntent,
    EffectScope,
    EffectSemantics,
    ParkedTransaction,
    enter_effect,
    leave_effect,
)

__all__ = ["INNER", "CallPolicy", "Io", "OnLoop", "call_flow", "drive", "drive_async"]

#: How many times a call looks again after losing the intent compare-and-set.
ROUNDS = 8


@attrs.frozen
class Io:
    """A cache call: `call()`, or in asyncio ``await call_async()`` when given."""

    call: Callable[[], Any]
    call_async: Callable[[], Awaitable[Any]] | None = None


@attrs.frozen
class OnLoop:
    """A call made where the handler runs; in asyncio an awaitable result is awaited."""

    call: Callable[[], Any]


class _Inner:
    def __repr__(self) -> str:
        return "INNER"


#: The step running the effect; its result is ``(outcome, parked transaction or None)``.
INNER = _Inner()

Step = Io | OnLoop | _Inner


@attrs.frozen
class CallPolicy:
    """What a handler brings to each call: its cache, whether that cache keeps
    intents, the semantics, ``reconcile``, and how it binds an entry (first
    binding wins) in sync and async code."""

    cache: Any
    intents: bool
    semantics: EffectSemantics
    reconcile: Callable[[EffectRequest, str], Any] | None
    bind: Callable[[EvidenceOutcomeCacheEntry], EffectOutcome]
    bind_async: Callable[[EvidenceOutcomeCacheEntry], Awaitable[EffectOutcome]] | None = None


def _entry(request: EffectRequest, evidence_id: str, outcome: EffectOutcome) -> Any:
    return EvidenceOutcomeCacheEntry(
        evidence_id=evidence_id,
        interface_name=request.interface_name,
        operation_name=request.operation_name,
        outcome=outcome,
    )


def _unavailable(message: str) -> EffectOutcome:
    return failed(EffectFailure.unavailable(message))


def in_doubt_failure(intent: EffectIntent, note: str = "") -> EffectOutcome:
    """The ``UNAVAILABLE`` failure an at-most-once call answers for an effect in doubt."""
    return _unavailable(
        f"effect `{intent.evidence_id}` is in doubt (attempt {intent.attempt} of operation "
        f"`{intent.operation_id}` started and has no outcome); resolve it{note}"
    )


def _async_call(method: Any, *args: Any) -> Callable[[], Awaitable[Any]] | None:
    return (lambda: method(*args)) if callable(method) else None


def call_flow(
    policy: CallPolicy, request: EffectRequest, evidence_id: str
) -> Generator[Step, Any, EffectOutcome]:
    """The steps of one call for `request`, bound to `evidence_id`; returns its outcome."""
    cache = policy.cache
    digest = ""
    if policy.intents:
        try:
            digest = request_digest(request)
        except EncodeError as exc:
            return failed(
                EffectFailure.invalid_input(
                    f"evidence `{evidence_id}`: the request body has no digest ({exc})"
                )
            )
    attempt = 0
    recorded: EffectIntent | None = None
    for _round in range(ROUNDS):
        try:
            bound = yield Io(
                lambda: cache.get(evidence_id),
                _async_call(getattr(cache, "get_async", None), evidence_id),
            )
            intent: EffectIntent | None = None
            if policy.intents:
                intent = yield Io(
                    lambda: cache.get_intent(evidence_id),
                    _async_call(getattr(cache, "get_intent_async", None), evidence_id),
                )
        except Exception as exc:
            return _unavailable(f"load evidence outcome cache `{evidence_id}`: {exc}")
        if intent is not None and not same_request(intent.request_digest, digest, request):
            return failed(
                EffectFailure.determinism(
                    f"evidence `{evidence_id}` was recorded for request digest "
                    f"{intent.request_digest}; this request has digest {digest}"
                )
            )
        if bound is not None and bound.outcome.is_terminal:
            outcome: EffectOutcome = bound.outcome
            return outcome
        if not policy.intents:
            break
        if intent is not None and not intent.withdrawn:  # in doubt
            note, done = "", False
            if policy.reconcile is not None:
                reconcile = policy.reconcile
                try:
                    verdict = yield OnLoop(functools.partial(reconcile, request, evidence_id))
                except Exception as exc:
                    verdict, note = attrs.NOTHING, f"; reconcile raised: {exc!r}"
                if inspect.iscoroutine(verdict):  # an async reconcile where nothing awaits it
                    verdict.close()
                if isinstance(verdict, EffectOutcome) and verdict.is_terminal:
                    entry = _entry(request, evidence_id, verdict)
                    try:
                        return (yield _binding(policy, entry))  # type: ignore[no-any-return]
                    except Exception as exc:
                        return _unavailable(f"persist evidence outcome `{evidence_id}`: {exc}")
                done = verdict is None or (
                    isinstance(verdict, EffectOutcome) and verdict.is_blocked
                )
            if not done and policy.semantics is EffectSemantics.AT_MOST_ONCE:
                return in_doubt_failure(intent, note)
        new = EffectIntent(
            evidence_id=evidence_id,
            interface_name=request.interface_name,
            operation_name=request.operation_name,
            operation_id=request.operation_id,
            attempt=intent.attempt + 1 if intent is not None else 1,
            request_digest=digest,
            created_unix_ms=time.time_ns() // 1_000_000,
        )
        try:
            recorded = yield Io(
                functools.partial(cache.put_intent, new),
                _async_call(getattr(cache, "put_intent_async", None), new),
            )
        except Exception as exc:
            return _unavailable(f"persist intent `{evidence_id}`: {exc}")
        if recorded == new:
            attempt = new.attempt
            break
        # another caller recorded an attempt (or bound an outcome) first: look again
    else:
        if recorded is not None:
            return in_doubt_failure(recorded)
        return _unavailable(f"persist intent `{evidence_id}`: other callers kept writing first")
    return (yield from _run(policy, request, evidence_id, attempt))


def _binding(policy: CallPolicy, entry: EvidenceOutcomeCacheEntry) -> Io:
    bind_async = policy.bind_async
    return Io(lambda: policy.bind(entry), (lambda: bind_async(entry)) if bind_async else None)


def _run(
    policy: CallPolicy, request: EffectRequest, evidence_id: str, attempt: int
) -> Generator[Step, Any, EffectOutcome]:
    """Run the effect, then withdraw (blocked) or bind (terminal)."""
    ran: tuple[EffectOutcome, ParkedTransaction | None] = yield INNER
    outcome, parked = ran
    if parked is not None:  # the effect's own writes wait in a cache transaction
        if not outcome.is_terminal:
            yield OnLoop(parked.roll_back)
        else:
            entry = _entry(request, evidence_id, outcome)
            try:
                winner: EvidenceOutcomeCacheEntry = yield OnLoop(lambda: parked.bind(entry))
            except Exception as exc:
                return _unavailable(f"persist evidence outcome `{evidence_id}`: {exc}")
            return winner.outcome
    if outcome.is_blocked:
        if policy.intents:
            cache = policy.cache
            try:
                yield Io(
                    lambda: cache.withdraw_intent(evidence_id, attempt),
                    _async_call(
                        getattr(cache, "withdraw_intent_async", None), evidence_id, attempt
                    ),
                )
            except Exception as exc:
                return _unavailable(f"withdraw intent `{evidence_id}`: {exc}")
        return outcome
    try:
        return (yield _binding(policy, _entry(request, evidence_id, outcome)))  # type: ignore[no-any-return]
    except Exception as exc:
        return _unavailable(f"persist evidence outcome `{evidence_id}`: {exc}")


# -- drivers ----------------------------------------------------------------------------


def drive(
    flow: Generator[Step, Any, EffectOutcome],
    inner: Callable[[], EffectOutcome],
    scope: EffectScope,
) -> EffectOutcome:
    """Run `flow` in sync code; `inner()` performs the effect within `scope`."""
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            step = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            result: EffectOutcome = stop.value
            return result
        value, error = None, None
        if step is INNER:
            token = enter_effect(scope)
            try:
                value = (inner(), scope.parked)
            except BaseException:
                if scope.parked is not None:
                    scope.parked.roll_back()
                raise
            finally:
                leave_effect(token)
            continue
        try:
            assert isinstance(step, Io | OnLoop)
            value = step.call()
        except Exception as exc:
            error = exc


async def drive_async(
    flow: Generator[Step, Any, EffectOutcome],
    inner: Callable[[], Awaitable[EffectOutcome]],
    scope: EffectScope,
) -> EffectOutcome:
    """Run `flow` under asyncio: cache calls never block the event loop."""
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            step = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            result: EffectOutcome = stop.value
            return result
        value, error = None, None
        if step is INNER:
            token = enter_effect(scope)
            try:
                value = (await inner(), scope.parked)
            except BaseException:
                if scope.parked is not None:
                    scope.parked.roll_back()
                raise
            finally:
                leave_effect(token)
            continue
        try:
            if isinstance(step, OnLoop):
                value = step.call()
                if inspect.isawaitable(value):
                    value = await value
            else:
                assert isinstance(step, Io)
                if step.call_async is not None:
                    value = await step.call_async()
                else:
                    value = await asyncio.to_thread(step.call)
        except Exception as exc:
            error = exc
