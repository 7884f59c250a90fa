"""Corruption (issue 13, suite 3): bits flipped at every byte offset of a small
log, of each v1 artifact kind and of a checkpoint.

A log is checksummed throughout (its base by the base checksum record), so a
flip is never silent: opening gives a typed `DecodeError` naming the file and
offset, or (tail only, tolerant modes) a dropped torn tail and a prefix of
the entries, never different data. Every `RecoveryMode` is tried on every
flip, and read-only opens and ``inspect_log`` too.

v1 artifacts carry no checksum (the Rust original's format), so a flip may
decode to a different artifact; what must hold there is that nothing but a
`DurabilityError` escapes and that errors from files name the file and an
offset. CI flips one bit per offset (its position rotating with the offset)
and the whole byte; ``DURABILITY_LONG=1`` each of the 8 bits and the byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durability import (
    AgreementWalArtifact,
    DecodeError,
    DurabilityError,
    DurableRecoveryMetadata,
    EvidenceOutcomeCacheArtifact,
    PersistedDurabilityArtifact,
    StateDirectory,
)
from durability.backends.file import RecoveryMode, inspect_log
from tests.helpers import FAILED, L, binding, esc, ev, gate
from tests.reliability._logs import NO_SYNC, SmallLog, overwrite
from tests.reliability._scale import LONG, figure

SPECS = Path(__file__).resolve().parents[2] / "specs" / "vectors"


def flips(data: bytes) -> Iterator[tuple[int, bytes]]:
    """`(offset, damaged)` for every offset: one rotating bit and the whole
    byte (every single bit too under ``DURABILITY_LONG=1``)."""
    for offset, byte in enumerate(data):
        masks = [1 << bit for bit in range(8)] if LONG else [1 << (offset % 8)]
        for mask in [*masks, 0xFF]:
            yield offset, data[:offset] + bytes([byte ^ mask]) + data[offset + 1 :]


@pytest.fixture(params=["wal", "cache"])
def small_log(request: pytest.FixtureRequest, tmp_path: Path) -> SmallLog:
    return SmallLog(tmp_path / f"{request.param}.log", request.param)


def assert_names_the_file(exc: DecodeError, path: Path, flipped: int) -> None:
    """`exc` names `path` and an offset no later than the flipped byte's record
    (a flip in the base can make it decode shorter, and the damage then shows
    at the record the reader expected after it)."""
    assert str(exc).startswith("decode persisted durability artifact")
    assert exc.path == str(path)
    assert exc.offset is not None and 0 <= exc.offset <= flipped + 24, (exc.offset, flipped)


def loads_a_prefix(log: SmallLog, entries: list[Any]) -> int:
    """Which prefix of the log's writes `entries` is (fails if none)."""
    assert entries in log.items, "a damaged log loaded entries it never held"
    return log.items.index(entries)


def test_a_flipped_bit_anywhere_in_a_log_is_detected_in_every_recovery_mode(
    small_log: SmallLog,
) -> None:
    path, last = small_log.path, small_log.starts[-1]
    tally = {"flips": 0, "errors": 0, "torn": 0, "cut_by_point_in_time": 0}
    tally["point_in_time_refused"] = 0
    for flipped, damaged in flips(small_log.data):
        tally["flips"] += 1
        in_last_payload = flipped >= last + 24
        # strict: every flip is an error, never repaired
        overwrite(path, damaged)
        with pytest.raises(DecodeError) as strict:
            small_log.open(recovery=RecoveryMode.ABSOLUTE_CONSISTENCY, fs=NO_SYNC)
        assert_names_the_file(strict.value, path, flipped)
        # read-only and inspect: an error, or (last payload only) a reported torn tail
        for read in (lambda: small_log.open(read_only=True), lambda: inspect_log(path)):
            try:
                opened = read()
            except DecodeError as exc:
                assert_names_the_file(exc, path, flipped)
                continue
            assert in_last_payload and opened.torn_tail is not None
            artifact = opened.load() if hasattr(opened, "load") else opened.artifact
            assert loads_a_prefix(small_log, list(artifact.entries)) == len(small_log.items) - 2
        # tolerant: the same, and a writer cuts the torn tail
        try:
            with small_log.open(fs=NO_SYNC) as log:
                loads_a_prefix(small_log, list(log.load().entries))
                assert in_last_payload and log.torn_tail is not None
                tally["torn"] += 1
        except DecodeError as exc:
            assert_names_the_file(exc, path, flipped)
            tally["errors"] += 1
        # point in time: damage after the base is cut at its record, a copy kept
        # (a damaged base: test_point_in_time_never_keeps_a_damaged_base)
        if flipped < small_log.base_end:
            continue
        overwrite(path, damaged)
        try:
            with small_log.open(recovery=RecoveryMode.POINT_IN_TIME, fs=NO_SYNC) as log:
                kept = loads_a_prefix(small_log, list(log.load().entries))
                assert log.torn_tail is not None
                assert log.torn_tail.offset <= flipped
                assert kept == max(
                    0, next(j for j, end in enumerate(small_log.ends) if end > flipped) - 1
                )
                if log.torn_tail.copy_path is not None:
                    assert Path(log.torn_tail.copy_path).read_bytes() == damaged
                    Path(log.torn_tail.copy_path).unlink()
                    tally["cut_by_point_in_time"] += 1
        except DecodeError as exc:
            assert flipped < small_log.ends[0], "point in time refused damage after the base"
            assert_names_the_file(exc, path, flipped)
            tally["point_in_time_refused"] += 1
    figure(f"corruption-log-{small_log.kind}", offsets=len(small_log.data), **tally)


def test_point_in_time_never_keeps_a_damaged_base(tmp_path: Path) -> None:
    for kind in ("wal", "cache"):
        log = SmallLog(tmp_path / f"{kind}.log", kind)
        for flipped, damaged in flips(log.data[: log.base_end]):
            overwrite(log.path, damaged + log.data[log.base_end :])
            with pytest.raises(DecodeError):
                log.open(recovery=RecoveryMode.POINT_IN_TIME, fs=NO_SYNC)
            assert flipped < log.base_end


# -- v1 artifacts -------------------------------------------------------------------


def artifacts() -> dict[str, bytes]:
    wal = AgreementWalArtifact(
        entries=[
            esc("op", L.NONE, L.SOFT_SAFE, 1, "e1"),
            ev("op", "e1", L.SOFT_SAFE, 1),
            gate("op", L.SOFT_SAFE, 2),
        ]
    )
    cache = EvidenceOutcomeCacheArtifact(entries=[binding("e1"), binding("e2", FAILED)])
    metadata = DurableRecoveryMetadata(
        checkpoint_tick=3,
        wal_tail_start_tick=4,
        highest_recovered_tick=9,
        resumed_operation_ids=["a"],
        terminal_operation_ids=["b"],
        cached_evidence_ids=["e1"],
    )
    made = {
        "wal": PersistedDurabilityArtifact.agreement_wal(wal).to_cbor(),
        "cache": PersistedDurabilityArtifact.evidence_outcome_cache(cache).to_cbor(),
        "metadata": PersistedDurabilityArtifact.recovery_metadata(metadata).to_cbor(),
    }
    for vector in sorted(SPECS.glob("*_artifact_v1.hex")):
        made[vector.stem] = bytes.fromhex("".join(vector.read_text().split()))
    return made


ARTIFACTS = artifacts()


@pytest.mark.parametrize("kind", sorted(ARTIFACTS))
def test_a_flipped_artifact_is_a_typed_error_or_a_v1_artifact(kind: str, tmp_path: Path) -> None:
    data, path = ARTIFACTS[kind], tmp_path / "artifact.cbor"
    original = PersistedDurabilityArtifact.from_cbor(data)
    tally = {"flips": 0, "errors": 0, "same": 0, "different": 0}
    for _flipped, damaged in flips(data):
        tally["flips"] += 1
        try:
            decoded = PersistedDurabilityArtifact.from_cbor(damaged)
        except DurabilityError as exc:
            assert isinstance(exc, DecodeError), exc
            tally["errors"] += 1
        else:
            assert isinstance(decoded, PersistedDurabilityArtifact)
            tally["same" if decoded == original else "different"] += 1
        overwrite(path, damaged)
        try:
            PersistedDurabilityArtifact.from_path(path)
        except DecodeError as exc:  # an offset in the file, wherever the decoder noticed
            assert exc.path == str(path) and exc.offset is not None, exc
    figure(f"corruption-artifact-{kind}", offsets=len(data), **tally)


# -- checkpoints --------------------------------------------------------------------

CHECKPOINT_OFFSET_BUG = (
    "BUG: store.decode_checkpoint raises DecodeError without an offset ('not a "
    "checkpoint', 'unknown checkpoint format', 'tick or state field is wrong', "
    "'holds tick', and the recovery_metadata envelope errors)"
)


def checkpoint_file(tmp_path: Path) -> tuple[StateDirectory, Path, Any]:
    store = StateDirectory(tmp_path / "state")
    store.wal.append(esc("op", L.NONE, L.SOFT_SAFE, 1, "e1"))
    store.cache.put(binding("e1"))
    checkpoint = store.checkpoint(7, b"the caller's state \x00\x01")
    return store, checkpoint.path, checkpoint


def flipped_checkpoints(store: StateDirectory, path: Path) -> Iterator[tuple[int, Any]]:
    """Each flip of checkpoint file `path`: `(offset, what loading it gave)`,
    a `Checkpoint` or the `DurabilityError` raised (nothing else may escape)."""
    data = path.read_bytes()
    for flipped, damaged in flips(data):
        overwrite(path, damaged)
        result: Any
        try:
            result = store.load_checkpoint(7)
        except DurabilityError as exc:
            result = exc
        yield flipped, result
    path.write_bytes(data)


def test_a_flipped_checkpoint_raises_only_decode_errors_naming_the_file(tmp_path: Path) -> None:
    store, path, original = checkpoint_file(tmp_path)
    tally = {"flips": 0, "errors": 0, "same": 0, "different": 0}
    for _flipped, result in flipped_checkpoints(store, path):
        tally["flips"] += 1
        if isinstance(result, DurabilityError):
            assert isinstance(result, DecodeError) and result.path == str(path), result
            tally["errors"] += 1
        else:
            same = (result.tick, result.state, result.metadata) == (
                original.tick,
                original.state,
                original.metadata,
            )
            tally["same" if same else "different"] += 1
    figure("corruption-checkpoint", offsets=len(path.read_bytes()), **tally)


def test_a_flipped_checkpoint_never_loads_as_different_data(tmp_path: Path) -> None:
    store, path, original = checkpoint_file(tmp_path)
    for flipped, result in flipped_checkpoints(store, path):
        if not isinstance(result, DurabilityError):
            assert (result.state, result.metadata) == (original.state, original.metadata), flipped


def test_a_damaged_checkpoint_error_names_its_offset(tmp_path: Path) -> None:
    store, path, _ = checkpoint_file(tmp_path)
    for flipped, result in flipped_checkpoints(store, path):
        if isinstance(result, DecodeError):
            assert result.offset is not None, (flipped, str(result))
