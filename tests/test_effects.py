"""Effects in doubt (API.md §11), as the evidence handler sees them: an intent
before each effect, blocked withdraws, an exception leaves the effect in
doubt; at most once by default, at least once on request, ``reconcile``
first; the request digest and its DETERMINISM refusal; the idempotency key in
sync, threaded and asyncio code; caches without intent methods; the async
handler and ``@evidence_cached`` alike. Storage of intents is in
test_effects_storage.py, the crash suite in test_effects_crash.py."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

from durability import (
    EffectFailure,
    EffectFailureKind,
    EffectIntent,
    EffectOutcome,
    EffectRequest,
    EffectSemantics,
    EffectSemanticsWarning,
    EvidenceOutcomeCacheArtifact,
    EvidenceOutcomeCacheEntry,
    EvidencePersistenceHandler,
    FileEvidenceOutcomeCache,
    InMemoryEvidenceOutcomeCache,
    current_idempotency_key,
    evidence_cached,
    request_digest,
)
from tests.helpers import binding

ID = "ev-1"
AT_LEAST_ONCE = EffectSemantics.AT_LEAST_ONCE


def request(body: Any = None, *, tick: int = 1, op: str | None = "op-1") -> EffectRequest:
    return EffectRequest(
        interface_name="Storage",
        operation_name="write",
        tick=tick,
        operation_id=op,
        body={"key": "k", "value": 1} if body is None else body,
    )


def in_doubt(attempt: int = 1, op: str | None = "op-1", note: str = "") -> EffectOutcome:
    return EffectOutcome.failure(
        EffectFailure.unavailable(
            f"effect `{ID}` is in doubt (attempt {attempt} of operation `{op}` started and "
            f"has no outcome); resolve it{note}"
        )
    )


class Effect:
    """A sync effect: answers from `script` (outcomes, or exceptions to raise)
    and records the idempotency key it saw each time."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.keys: list[str | None] = []

    @property
    def calls(self) -> int:
        return len(self.keys)

    def step(self) -> EffectOutcome:
        self.keys.append(current_idempotency_key())
        answer = self.script.pop(0) if self.script else EffectOutcome.success(self.calls)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        return self.step()


class AsyncEffect(Effect):
    async def handle_effect(self, request: EffectRequest) -> EffectOutcome:  # type: ignore[override]
        await asyncio.sleep(0)
        return self.step()


def wrap(inner: Any, cache: Any = None, **options: Any) -> Any:
    cache = InMemoryEvidenceOutcomeCache() if cache is None else cache
    return EvidencePersistenceHandler(inner, cache, lambda r: ID, **options)


def call(handler: Any, req: EffectRequest | None = None) -> EffectOutcome:
    outcome = handler.handle_effect(req or request())
    if asyncio.iscoroutine(outcome):
        outcome = asyncio.run(outcome)
    assert isinstance(outcome, EffectOutcome)
    return outcome


SYNC_AND_ASYNC = pytest.mark.parametrize("kind", [Effect, AsyncEffect], ids=["sync", "async"])


# -- intent before effect ------------------------------------------------------------


@SYNC_AND_ASYNC
def test_intent_is_durable_and_in_doubt_while_the_effect_runs(kind: type[Effect]) -> None:
    cache = InMemoryEvidenceOutcomeCache()
    seen: list[list[EffectIntent]] = []

    class Watching(kind):  # type: ignore[valid-type, misc]
        def step(self) -> EffectOutcome:
            seen.append(cache.in_doubt())
            return super().step()

    effect = Watching()
    assert call(wrap(effect, cache)) == EffectOutcome.success(1)
    [[intent]] = seen
    assert intent.evidence_id == ID and intent.attempt == 1 and not intent.withdrawn
    assert (intent.interface_name, intent.operation_name, intent.operation_id) == (
        "Storage",
        "write",
        "op-1",
    )
    assert intent.request_digest == request_digest(request())
    assert intent.created_unix_ms > 1_600_000_000_000
    assert cache.in_doubt() == [] and cache.get_intent(ID) == intent
    assert effect.keys == [ID]


@SYNC_AND_ASYNC
def test_terminal_outcome_is_bound_and_answers_from_then_on(kind: type[Effect]) -> None:
    cache = InMemoryEvidenceOutcomeCache()
    denied = EffectOutcome.failure(EffectFailure.denied("no"))
    effect = kind(denied)
    handler = wrap(effect, cache)
    assert call(handler) == call(handler) == denied
    assert effect.calls == 1 and cache.get(ID) == binding(ID, denied)


@SYNC_AND_ASYNC
def test_blocked_withdraws_the_attempt_and_the_next_call_runs(kind: type[Effect]) -> None:
    cache = InMemoryEvidenceOutcomeCache()
    effect = kind(EffectOutcome.blocked())
    handler = wrap(effect, cache)
    assert call(handler).is_blocked
    withdrawn = cache.get_intent(ID)
    assert withdrawn is not None and withdrawn.withdrawn and withdrawn.attempt == 1
    assert cache.get(ID) is None and cache.in_doubt() == []
    assert call(handler) == EffectOutcome.success(2)
    latest = cache.get_intent(ID)
    assert latest is not None and latest.attempt == 2 and not latest.withdrawn


@SYNC_AND_ASYNC
def test_an_exception_propagates_and_leaves_the_effect_in_doubt(kind: type[Effect]) -> None:
    cache = InMemoryEvidenceOutcomeCache()
    crash = ConnectionResetError("link down mid-write")
    effect = kind(crash)
    handler = wrap(effect, cache)
    with pytest.raises(ConnectionResetError) as caught:
        call(handler)
    assert caught.value is crash
    assert [i.evidence_id for i in cache.in_doubt()] == [ID]
    assert call(handler) == in_doubt()  # at most once: nothing runs
    assert call(handler, request(tick=9)) == in_doubt()
    assert effect.calls == 1 and cache.get(ID) is None


def test_in_doubt_message_names_the_attempt_and_operation() -> None:
    cache = InMemoryEvidenceOutcomeCache()
    handler = wrap(Effect(OSError("?"), OSError("?")), cache, semantics=AT_LEAST_ONCE)
    for _ in range(2):
        with pytest.raises(OSError):
            call(handler, request(op=None))
    assert call(wrap(Effect(), cache), request(op=None)) == in_doubt(attempt=2, op=None)


@SYNC_AND_ASYNC
def test_at_least_once_runs_a_new_attempt(kind: type[Effect]) -> None:
    cache = InMemoryEvidenceOutcomeCache()
    effect = kind(RuntimeError("lost"))
    handler = wrap(effect, cache, semantics=AT_LEAST_ONCE)
    with pytest.raises(RuntimeError):
        call(handler)
    assert call(handler) == EffectOutcome.success(2)
    latest = cache.get_intent(ID)
    assert latest is not None and latest.attempt == 2
    assert cache.in_doubt() == [] and effect.keys == [ID, ID]


def test_a_concurrent_call_sees_the_running_effect_in_doubt(tmp_path: Path) -> None:
    """From the moment the intent is durable, another call (another thread,
    another handle on the same log) finds the effect in doubt."""
    started, release = threading.Event(), threading.Event()

    class Slow(Effect):
        def step(self) -> EffectOutcome:
            started.set()
            release.wait(10)
            return super().step()

    def run(path: Any) -> None:
        wrap(Slow(), FileEvidenceOutcomeCache(path)).handle_effect(request())

    path = tmp_path / "cache.log"
    first = threading.Thread(target=run, args=(path,))
    first.start()
    assert started.wait(10)
    other = Effect()
    try:
        assert wrap(other, FileEvidenceOutcomeCache(path)).handle_effect(request()) == in_doubt()
    finally:
        release.set()
        first.join()
    assert other.calls == 0
    bound = FileEvidenceOutcomeCache(path).get(ID)
    assert bound is not None and bound.outcome == EffectOutcome.success(1)


# -- reconcile ---------------------------------------------------------------------


def _in_doubt_cache() -> InMemoryEvidenceOutcomeCache:
    cache = InMemoryEvidenceOutcomeCache()
    with pytest.raises(RuntimeError):
        wrap(Effect(RuntimeError("crash")), cache).handle_effect(request())
    return cache


@pytest.mark.parametrize("semantics", list(EffectSemantics))
def test_reconcile_terminal_binds_it_and_runs_nothing(semantics: EffectSemantics) -> None:
    cache = _in_doubt_cache()
    asked: list[tuple[EffectRequest, str]] = []

    def reconcile(req: EffectRequest, evidence_id: str) -> EffectOutcome:
        asked.append((req, evidence_id))
        return EffectOutcome.success("found in the sink")

    effect = Effect()
    handler = wrap(effect, cache, semantics=semantics, reconcile=reconcile)
    assert call(handler) == EffectOutcome.success("found in the sink")
    assert call(handler) == EffectOutcome.success("found in the sink")
    assert asked == [(request(), ID)] and effect.calls == 0
    assert cache.in_doubt() == []


@pytest.mark.parametrize("verdict", [None, EffectOutcome.blocked()], ids=["none", "blocked"])
def test_reconcile_not_done_runs_a_new_attempt_even_at_most_once(verdict: Any) -> None:
    cache = _in_doubt_cache()
    effect = Effect()
    assert call(wrap(effect, cache, reconcile=lambda r, e: verdict)) == EffectOutcome.success(1)
    latest = cache.get_intent(ID)
    assert latest is not None and latest.attempt == 2 and effect.calls == 1


def test_reconcile_raising_or_unsure_leaves_it_in_doubt() -> None:
    cache = _in_doubt_cache()

    def raising(req: EffectRequest, evidence_id: str) -> EffectOutcome:
        raise ValueError("sink unreachable")

    note = "; reconcile raised: ValueError('sink unreachable')"
    assert call(wrap(Effect(), cache, reconcile=raising)) == in_doubt(note=note)
    assert call(wrap(Effect(), cache, reconcile=lambda r, e: "maybe")) == in_doubt()
    effect = Effect()
    assert call(wrap(effect, cache, semantics=AT_LEAST_ONCE, reconcile=raising)).is_success
    assert effect.calls == 1


def test_reconcile_is_not_asked_when_nothing_is_in_doubt() -> None:
    asked: list[str] = []
    handler = wrap(Effect(), reconcile=lambda r, e: asked.append(e))
    assert call(handler) == call(handler) == EffectOutcome.success(1)
    assert asked == []


def test_async_reconcile_beside_an_async_effect() -> None:
    cache = _in_doubt_cache()

    async def reconcile(req: EffectRequest, evidence_id: str) -> EffectOutcome:
        await asyncio.sleep(0)
        return EffectOutcome.success("reconciled")

    effect = AsyncEffect()
    assert call(wrap(effect, cache, reconcile=reconcile)) == EffectOutcome.success("reconciled")
    assert effect.calls == 0


def test_an_async_reconcile_needs_an_async_effect() -> None:
    async def reconcile(req: EffectRequest, evidence_id: str) -> None:
        return None

    with pytest.raises(TypeError, match="async reconcile"):
        wrap(Effect(), reconcile=reconcile)


# -- the request digest (its encoding: test_effects_digest.py) ---------------------


@pytest.mark.parametrize("bound", [False, True], ids=["in-doubt", "bound"])
def test_another_request_under_a_recorded_id_is_a_determinism_failure(bound: bool) -> None:
    cache = InMemoryEvidenceOutcomeCache()
    first = Effect() if bound else Effect(RuntimeError("crash"))
    with contextlib.suppress(RuntimeError):
        call(wrap(first, cache), request({"amount": 5}))
    before = (cache.load(), cache.in_doubt(), cache.get_intent(ID))
    effect = Effect()
    outcome = call(wrap(effect, cache, semantics=AT_LEAST_ONCE), request({"amount": 6}))
    recorded, new = request_digest(request({"amount": 5})), request_digest(request({"amount": 6}))
    assert outcome == EffectOutcome.failure(
        EffectFailure.determinism(
            f"evidence `{ID}` was recorded for request digest {recorded}; "
            f"this request has digest {new}"
        )
    )
    assert effect.calls == 0
    assert (cache.load(), cache.in_doubt(), cache.get_intent(ID)) == before


def test_outcomes_without_an_intent_are_not_checked() -> None:
    cache = InMemoryEvidenceOutcomeCache()
    cache.put(binding(ID, EffectOutcome.success("from a v1 base")))
    assert call(wrap(Effect(), cache), request({"x": 1})) == EffectOutcome.success("from a v1 base")


def test_a_body_that_is_not_plain_cbor_runs_nothing() -> None:
    effect = Effect()
    outcome = call(wrap(effect), request({"when": object()}))
    assert outcome.failure is not None and outcome.failure.kind is EffectFailureKind.INVALID_INPUT
    assert effect.calls == 0


# -- cache errors ----------------------------------------------------------------------


class FailingIntents(InMemoryEvidenceOutcomeCache):
    def __init__(self, *, put: bool = False, withdraw: bool = False, get: bool = False) -> None:
        super().__init__()
        self.fail = {"put": put, "withdraw": withdraw, "get": get}

    def put_intent(self, intent: EffectIntent) -> EffectIntent | None:
        if self.fail["put"]:
            raise OSError("disk full")
        return super().put_intent(intent)

    def withdraw_intent(self, evidence_id: str, attempt: int) -> EffectIntent | None:
        if self.fail["withdraw"]:
            raise OSError("disk gone")
        return super().withdraw_intent(evidence_id, attempt)

    def get_intent(self, evidence_id: str) -> EffectIntent | None:
        if self.fail["get"]:
            raise OSError("unreadable")
        return super().get_intent(evidence_id)


@SYNC_AND_ASYNC
def test_intent_write_failure_runs_nothing(kind: type[Effect]) -> None:
    effect = kind()
    outcome = call(wrap(effect, FailingIntents(put=True)))
    assert outcome == EffectOutcome.failure(
        EffectFailure.unavailable(f"persist intent `{ID}`: disk full")
    )
    assert effect.calls == 0


@SYNC_AND_ASYNC
def test_withdrawal_failure_is_answered(kind: type[Effect]) -> None:
    cache = FailingIntents(withdraw=True)
    outcome = call(wrap(kind(EffectOutcome.blocked()), cache))
    assert outcome == EffectOutcome.failure(
        EffectFailure.unavailable(f"withdraw intent `{ID}`: disk gone")
    )
    assert cache.get(ID) is None and [i.attempt for i in cache.in_doubt()] == [1]


def test_intent_read_failure_is_a_load_failure() -> None:
    effect = Effect()
    outcome = call(wrap(effect, FailingIntents(get=True)))
    assert outcome == EffectOutcome.failure(
        EffectFailure.unavailable(f"load evidence outcome cache `{ID}`: unreadable")
    )
    assert effect.calls == 0


# -- caches without intent methods -------------------------------------------------------


class PlainCache:
    def __init__(self) -> None:
        self.entries: dict[str, EvidenceOutcomeCacheEntry] = {}

    def get(self, evidence_id: str) -> EvidenceOutcomeCacheEntry | None:
        return self.entries.get(evidence_id)

    def put(self, entry: EvidenceOutcomeCacheEntry) -> None:
        self.entries[entry.evidence_id] = entry

    def load(self) -> EvidenceOutcomeCacheArtifact:
        return EvidenceOutcomeCacheArtifact(entries=list(self.entries.values()))


def test_a_cache_without_intents_warns_unless_at_least_once() -> None:
    with pytest.warns(EffectSemanticsWarning, match="PlainCache has no intent methods"):
        wrap(Effect(), PlainCache())
    with pytest.warns(EffectSemanticsWarning):
        evidence_cached(PlainCache(), lambda r: ID)(lambda r: EffectOutcome.success())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wrap(Effect(), PlainCache(), semantics=AT_LEAST_ONCE)
        wrap(Effect(), InMemoryEvidenceOutcomeCache())
    assert issubclass(EffectSemanticsWarning, UserWarning)


def test_a_cache_without_intents_runs_at_least_once_as_before() -> None:
    cache = PlainCache()
    effect = Effect(RuntimeError("crash"))
    handler = wrap(effect, cache, semantics=AT_LEAST_ONCE)
    with pytest.raises(RuntimeError):
        call(handler)
    assert call(handler) == call(handler) == EffectOutcome.success(2)
    assert effect.keys == [ID, ID]


def test_reconcile_with_a_cache_without_intents_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="reconcile"):
        wrap(Effect(), PlainCache(), semantics=AT_LEAST_ONCE, reconcile=lambda r, e: None)


def test_a_cache_with_some_intent_methods_is_a_type_error() -> None:
    class Half(PlainCache):
        def put_intent(self, intent: EffectIntent) -> EffectIntent:
            return intent

    with pytest.raises(TypeError, match="all five or none"):
        wrap(Effect(), Half())


def test_semantics_must_be_an_effect_semantics() -> None:
    with pytest.raises(TypeError, match="semantics"):
        wrap(Effect(), semantics="at_most_once")


# -- the idempotency key --------------------------------------------------------------


def test_idempotency_key_is_none_outside_an_effect() -> None:
    assert current_idempotency_key() is None
    effect = Effect()
    call(wrap(effect))
    assert effect.keys == [ID] and current_idempotency_key() is None


def test_idempotency_key_per_thread() -> None:
    barrier = threading.Barrier(8)
    seen: dict[int, str | None] = {}

    class Meeting(Effect):
        def step(self) -> EffectOutcome:
            barrier.wait(10)  # all eight effects run at once
            return EffectOutcome.success(current_idempotency_key())

    handler = EvidencePersistenceHandler(
        Meeting(), InMemoryEvidenceOutcomeCache(), lambda r: r.body["id"]
    )

    def run(i: int) -> None:
        seen[i] = handler.handle_effect(request({"id": f"e{i}"})).response

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {i: f"e{i}" for i in range(8)}


def test_idempotency_key_per_asyncio_task() -> None:
    class Interleaving(AsyncEffect):
        async def handle_effect(self, request: EffectRequest) -> EffectOutcome:  # type: ignore[override]
            before = current_idempotency_key()
            await asyncio.sleep(0.01)  # the other tasks run meanwhile
            return EffectOutcome.success([before, current_idempotency_key()])

    handler = EvidencePersistenceHandler(
        Interleaving(), InMemoryEvidenceOutcomeCache(), lambda r: r.body["id"]
    )

    async def main() -> list[EffectOutcome]:
        calls = [handler.handle_effect(request({"id": f"e{i}"})) for i in range(8)]
        return list(await asyncio.gather(*calls))

    outcomes = asyncio.run(main())
    assert [o.response for o in outcomes] == [[f"e{i}", f"e{i}"] for i in range(8)]
    assert current_idempotency_key() is None


# -- the decorator ---------------------------------------------------------------------


def test_evidence_cached_keeps_intents_semantics_and_reconcile() -> None:
    cache = InMemoryEvidenceOutcomeCache()
    calls: list[str | None] = []

    @evidence_cached(cache, lambda r: ID)
    def write(req: EffectRequest) -> EffectOutcome:
        calls.append(current_idempotency_key())
        raise TimeoutError("no answer")

    with pytest.raises(TimeoutError):
        write(request())
    assert write(request()) == in_doubt() and calls == [ID]

    @evidence_cached(cache, lambda r: ID, reconcile=lambda r, e: EffectOutcome.success("seen"))
    def write_again(req: EffectRequest) -> EffectOutcome:
        raise AssertionError("never runs")

    assert write_again(request()) == EffectOutcome.success("seen")
    assert write_again.cached_outcome(ID) == EffectOutcome.success("seen")


def test_evidence_cached_async_at_least_once() -> None:
    cache = _in_doubt_cache()

    @evidence_cached(cache, lambda r: ID, semantics=AT_LEAST_ONCE)
    async def write(req: EffectRequest) -> EffectOutcome:
        return EffectOutcome.success(current_idempotency_key())

    assert asyncio.run(write(request())) == EffectOutcome.success(ID)
