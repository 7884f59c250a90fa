"""RecordingHandler and ReplayHandler: record a run, replay it without anything
live, and diverge loudly (API.md §7)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import cbor2
import pytest

from durability import (
    AgreementLevel,
    AgreementState,
    DecodeError,
    EffectFailure,
    EffectFailureKind,
    EffectOutcome,
    EffectRequest,
    EncodeError,
    InMemoryAgreementWal,
    WalSyncRequest,
)
from durability.handlers import AgreementWalHandler
from durability.replay import RecordedExchange, RecordingHandler, ReplayHandler
from tests.helpers import evidence

L = AgreementLevel


class Live:
    """A live handler: must never be called during replay."""

    def __init__(self) -> None:
        self.calls = 0

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        self.calls += 1
        if request.operation_name == "fail":
            return EffectOutcome.failure(EffectFailure.timeout("slow"))
        return EffectOutcome.success({"echo": request.body, "n": self.calls, "t": (1, b"x")})

    def handle_send(self, label: str) -> str:
        return f"sent {label}"


class AsyncLive(Live):
    async def handle_effect(self, request: EffectRequest) -> EffectOutcome:  # type: ignore[override]
        return Live.handle_effect(self, request)


def req(tick: int, name: str = "write", body: Any = None) -> EffectRequest:
    return EffectRequest(
        interface_name="Storage",
        operation_name=name,
        tick=tick,
        operation_id="op-1",
        session=2,
        effect_id=tick,
        body=body,
    )


SYNC = WalSyncRequest(
    operation_id="op-1",
    downstream_coroutine_id="coro#1",
    gate_level=L.SOFT_SAFE,
    agreement_state=AgreementState(
        operation_id="op-1", contract_name="c", level=L.SOFT_SAFE, evidence_ids=["ev-a"]
    ),
    agreement_evidence=[evidence("op-1", "ev-a")],
    tick=3,
)


def record_run() -> tuple[RecordingHandler, list[EffectOutcome]]:
    recorder = RecordingHandler(AgreementWalHandler(Live(), InMemoryAgreementWal()))
    outcomes = [
        recorder.handle_effect(req(1, body={"k": [1, 2], "b": b"\x00"})),
        recorder.wal_sync(SYNC),
        recorder.handle_effect(req(4, "fail")),
    ]
    return recorder, outcomes


def replay_run(replay: ReplayHandler) -> list[EffectOutcome]:
    return [
        replay.handle_effect(req(1, body={"k": [1, 2], "b": b"\x00"})),
        replay.wal_sync(SYNC),
        replay.handle_effect(req(4, "fail")),
    ]


def test_recording_records_every_exchange_in_order() -> None:
    recorder, outcomes = record_run()
    exchanges = recorder.exchanges
    assert [e.kind for e in exchanges] == ["handle_effect", "wal_sync", "handle_effect"]
    assert exchanges[1] == RecordedExchange(kind="wal_sync", request=SYNC, outcome=outcomes[1])
    assert [e.outcome for e in exchanges] == outcomes


def test_recording_forwards_other_attributes() -> None:
    recorder = RecordingHandler(Live())
    assert recorder.handle_send("x") == "sent x"
    assert not hasattr(recorder, "wal_sync")
    assert recorder.exchanges == ()


def test_trace_survives_cbor_round_trip_unchanged() -> None:
    recorder, _ = record_run()
    trace = recorder.trace()
    assert isinstance(trace, list) and all(isinstance(item, dict) for item in trace)
    assert cbor2.loads(cbor2.dumps(trace)) == trace
    assert trace[0]["kind"] == "handle_effect"
    assert trace[0]["outcome"]["response"]["t"] == [1, b"x"]


def test_trace_refuses_non_plain_response() -> None:
    class Odd:
        def handle_effect(self, request: EffectRequest) -> EffectOutcome:
            return EffectOutcome.success({1: "int key"})

    recorder = RecordingHandler(Odd())
    recorder.handle_effect(req(1))
    with pytest.raises(EncodeError):
        recorder.trace()


@pytest.mark.parametrize("round_trip", [False, True])
def test_record_then_replay_gives_same_outcomes(round_trip: bool) -> None:
    recorder, outcomes = record_run()
    trace: Any = recorder.trace()
    if round_trip:
        trace = cbor2.loads(cbor2.dumps(trace))
    replay = ReplayHandler(trace)
    assert replay.remaining == 3
    replayed = replay_run(replay)
    assert [o.status for o in replayed] == [o.status for o in outcomes]
    assert replayed[1:] == outcomes[1:]
    assert replayed[0].response == {"echo": {"k": [1, 2], "b": b"\x00"}, "n": 1, "t": [1, b"x"]}
    assert replay.remaining == 0


def test_replay_accepts_recorded_exchanges() -> None:
    recorder, outcomes = record_run()
    replay = ReplayHandler(recorder.exchanges)
    assert replay_run(replay) == outcomes


def test_replay_calls_nothing_live() -> None:
    live = Live()
    recorder = RecordingHandler(live)
    recorder.handle_effect(req(1))
    replay = ReplayHandler(recorder.trace())
    replay.handle_effect(req(1))
    assert live.calls == 1


def test_divergence_returns_determinism_and_consumes_nothing() -> None:
    recorder, outcomes = record_run()
    replay = ReplayHandler(recorder.trace())
    diverged = replay.handle_effect(req(1, body="other"))
    assert diverged.failure is not None
    assert diverged.failure.kind is EffectFailureKind.DETERMINISM
    assert "exchange 0" in diverged.failure.message
    assert "`body`" in diverged.failure.message
    assert "other" in diverged.failure.message
    assert replay.remaining == 3
    assert replay_run(replay)[1:] == outcomes[1:]


def test_wrong_kind_is_a_divergence() -> None:
    recorder, _ = record_run()
    replay = ReplayHandler(recorder.trace())
    outcome = replay.wal_sync(SYNC)
    assert outcome.failure is not None
    assert outcome.failure.kind is EffectFailureKind.DETERMINISM
    assert "expected handle_effect" in outcome.failure.message
    assert "got wal_sync" in outcome.failure.message
    assert replay.remaining == 3


def test_call_past_the_end_is_a_divergence() -> None:
    recorder, _ = record_run()
    replay = ReplayHandler(recorder.trace())
    replay_run(replay)
    outcome = replay.handle_effect(req(9))
    assert outcome.failure is not None
    assert outcome.failure.kind is EffectFailureKind.DETERMINISM
    assert "exchange 3" in outcome.failure.message
    assert "exhausted" in outcome.failure.message
    assert replay.remaining == 0


def test_tuple_and_list_bodies_replay_alike() -> None:
    recorder = RecordingHandler(Live())
    recorder.handle_effect(req(1, body=(1, 2)))
    replay = ReplayHandler(cbor2.loads(cbor2.dumps(recorder.trace())))
    assert replay.handle_effect(req(1, body=[1, 2])).is_success


@pytest.mark.parametrize(
    "trace",
    [
        {"kind": "handle_effect"},
        "not a trace",
        [42],
        [{"kind": "teleport", "request": {}, "outcome": {}}],
        [{"kind": "handle_effect", "outcome": {"status": {"status": "success"}}}],
        [{"kind": "wal_sync", "request": {"tick": "7"}, "outcome": {}}],
        [
            {
                "kind": "handle_effect",
                "request": {"interface_name": "i", "operation_name": "o", "tick": 1},
                "outcome": {"status": {"status": "exploded"}},
            }
        ],
    ],
)
def test_malformed_trace_raises_decode_error(trace: Any) -> None:
    with pytest.raises(DecodeError):
        ReplayHandler(trace)


def test_async_recording_and_replay() -> None:
    live = AsyncLive()
    recorder = RecordingHandler(live)
    assert inspect.iscoroutinefunction(recorder.handle_effect)
    outcome = asyncio.run(recorder.handle_effect(req(1)))
    assert recorder.exchanges[0].outcome == outcome

    replay = ReplayHandler(recorder.trace(), asynchronous=True)
    assert inspect.iscoroutinefunction(replay.handle_effect)
    assert asyncio.run(replay.handle_effect(req(1))).response == {
        "echo": None,
        "n": 1,
        "t": [1, b"x"],
    }
    assert live.calls == 1
    assert not inspect.iscoroutinefunction(ReplayHandler([]).handle_effect)


def test_async_inner_wal_sync_is_recorded() -> None:
    class AsyncSyncer(AsyncLive):
        async def wal_sync(self, sync: WalSyncRequest) -> EffectOutcome:
            return EffectOutcome.blocked()

    recorder = RecordingHandler(AsyncSyncer())
    assert asyncio.run(recorder.wal_sync(SYNC)).is_blocked
    assert [e.kind for e in recorder.exchanges] == ["wal_sync"]
