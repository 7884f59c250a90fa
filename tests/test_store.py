"""The state directory: checkpoints, planning, wrapped handlers, reopening."""

from __future__ import annotations

from pathlib import Path

import pytest

from durability import (
    AgreementLevel,
    AgreementState,
    DecodeError,
    EffectOutcome,
    EffectRequest,
    StorageError,
    WalSyncRequest,
)
from durability.store import StateDirectory
from tests.helpers import L, esc, ev, evidence


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        self.calls += 1
        return EffectOutcome.success(self.calls)


def resolver(request: EffectRequest) -> str | None:
    return request.operation_id


def test_three_line_startup_wraps_plans_and_survives_reopen(tmp_path: Path) -> None:
    inner = Counter()
    with StateDirectory(tmp_path / "state") as store:
        handler = store.wrap(inner, resolver)
        request = EffectRequest(
            interface_name="kv", operation_name="put", tick=1, operation_id="op"
        )
        assert handler.handle_effect(request) == EffectOutcome.success(1)
        state = AgreementState(
            operation_id="op",
            contract_name="c",
            level=AgreementLevel.SOFT_SAFE,
            evidence_ids=["op/c"],
        )
        sync = WalSyncRequest(
            operation_id="op",
            downstream_coroutine_id="next",
            gate_level=L.SOFT_SAFE,
            agreement_state=state,
            agreement_evidence=[evidence("op", "op/c")],
            tick=1,
        )
        assert handler.wal_sync(sync).is_success
    with StateDirectory(tmp_path / "state") as store:
        plan = store.plan_recovery()
        again = store.wrap(inner, resolver)
        assert again.handle_effect(request) == EffectOutcome.success(1)  # cached: inner not called
    assert inner.calls == 1
    [decision] = plan.decisions
    assert decision.action.value == "resume_from_evidence_boundary" and decision.gate_crossed


def test_checkpoints_are_listed_and_latest_is_used(tmp_path: Path) -> None:
    with StateDirectory(tmp_path) as store:
        assert store.latest_checkpoint() is None
        store.wal.append(esc("a", L.NONE, L.PROVISIONAL, 1))
        store.checkpoint(1, b"one")
        store.wal.append(esc("a", L.PROVISIONAL, L.SOFT_SAFE, 5))
        store.checkpoint(5, b"five")
        assert store.checkpoint_ticks() == [1, 5]
        latest = store.latest_checkpoint()
        assert (
            latest is not None and latest.state == b"five" and latest.metadata.checkpoint_tick == 5
        )
        assert store.plan_recovery().checkpoint_state == b"five"
        plan = store.plan_recovery(1)
        assert plan.checkpoint_state == b"one"
        assert [d.level for d in plan.decisions] == [L.SOFT_SAFE]
        assert [d.checkpoint_level for d in plan.decisions] == [L.PROVISIONAL]


def test_no_checkpoint_plans_every_entry_tick_zero_included(tmp_path: Path) -> None:
    with StateDirectory(tmp_path) as store:
        store.wal.append(ev("at-zero", "e0", L.SOFT_SAFE, 0))
        store.wal.append(ev("a", "e", L.PROVISIONAL, 1))
        plan = store.plan_recovery()
    assert plan.metadata.checkpoint_tick == 0 and plan.checkpoint_state is None
    assert [d.operation_id for d in plan.decisions] == ["a", "at-zero"]
    assert [d.checkpoint_level for d in plan.decisions] == [L.NONE, L.NONE]


def test_damaged_checkpoint_fails_closed_naming_file(tmp_path: Path) -> None:
    with StateDirectory(tmp_path) as store:
        checkpoint = store.checkpoint(3, b"state")
        checkpoint.path.write_bytes(checkpoint.path.read_bytes()[:-2])
        with pytest.raises(DecodeError, match="checkpoint-"):
            store.plan_recovery()
        with pytest.raises(StorageError):
            store.load_checkpoint(4)


def test_missing_directory_without_create_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        StateDirectory(tmp_path / "absent", create=False)


def test_a_flipped_bit_in_a_checkpoint_fails_its_checksum(tmp_path: Path) -> None:
    with StateDirectory(tmp_path) as store:
        checkpoint = store.checkpoint(3, b"the state bytes")
        data = bytearray(checkpoint.path.read_bytes())
        data[data.index(b"the state") + 4] ^= 0x01  # still valid CBOR, other bytes
        checkpoint.path.write_bytes(bytes(data))
        with pytest.raises(DecodeError, match="checksum") as caught:
            store.load_checkpoint(3)
    assert caught.value.path == str(checkpoint.path) and caught.value.offset == 0


def test_a_checkpoint_from_an_earlier_version_without_checksum_loads(tmp_path: Path) -> None:
    import cbor2

    with StateDirectory(tmp_path) as store:
        checkpoint = store.checkpoint(3, b"state")
        obj = cbor2.loads(checkpoint.path.read_bytes())
        del obj["crc32"]
        checkpoint.path.write_bytes(cbor2.dumps(obj))
        assert store.load_checkpoint(3).state == b"state"


def test_a_link_at_the_checkpoints_directory_is_refused(tmp_path: Path) -> None:
    with StateDirectory(tmp_path / "elsewhere") as other:
        other.checkpoint(5, b"not yours")
    with StateDirectory(tmp_path / "state") as store:
        (tmp_path / "state" / "checkpoints").symlink_to(tmp_path / "elsewhere" / "checkpoints")
        with pytest.raises(StorageError, match="symbolic link"):
            store.checkpoint_ticks()
        with pytest.raises(StorageError, match="symbolic link"):
            store.load_checkpoint(5)
        with pytest.raises(StorageError, match="symbolic link"):
            store.plan_recovery()
