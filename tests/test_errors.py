"""Structured errors (API.md §12): a `DecodeError` carries `.path` and
`.offset`, its message is formatted from them in one place, and the CLI's
``--json`` error output carries them too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from durability import (
    ArtifactTooLargeError,
    DecodeError,
    DurabilityError,
    FileAgreementWal,
    PersistedDurabilityArtifact,
    SchemaVersionError,
    SequenceConflictError,
    StorageError,
)
from durability.backends.file import inspect_log
from durability.store import StateDirectory
from tests.helpers import L, esc, gate
from tests.test_cli import run

PREFIX = "decode persisted durability artifact"


def test_message_is_formatted_from_reason_path_and_offset() -> None:
    error = DecodeError("sequence gap", path="wal.log", offset=4096)
    assert str(error) == f"{PREFIX} wal.log: sequence gap at byte offset 4096"
    assert (error.reason, error.path, error.offset) == ("sequence gap", "wal.log", 4096)
    assert str(DecodeError("bad")) == f"{PREFIX}: bad"
    assert DecodeError("bad").path is None and DecodeError("bad").offset is None


def test_a_database_error_names_a_sequence_not_a_byte_offset() -> None:
    error = DecodeError("table t: bad", path="postgresql://app@db/x", offset=7, unit="sequence")
    assert str(error) == f"{PREFIX} postgresql://app@db/x: table t: bad at sequence 7"
    assert (error.path, error.offset, error.unit) == ("postgresql://app@db/x", 7, "sequence")
    assert error.located(context="row").unit == "sequence"


def test_a_sequence_conflict_is_not_a_storage_error() -> None:
    error = SequenceConflictError(3, 5, "WAL `w` in state.db")
    assert (error.expected, error.actual) == (3, 5)
    assert isinstance(error, DurabilityError) and not isinstance(error, StorageError)
    assert str(error) == (
        "sequence conflict in WAL `w` in state.db: expected last sequence 3, found 5; "
        "nothing was written"
    )


def test_located_moves_an_error_into_a_file() -> None:
    inner = SchemaVersionError("unsupported", offset=3)
    placed = inner.located(path="c.log", at=100, context="record 2")
    assert type(placed) is SchemaVersionError
    assert (placed.path, placed.offset, placed.reason) == ("c.log", 103, "record 2: unsupported")
    assert DecodeError("x").located(path="f", at=7).offset == 7


def two_record_wal(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "wal.log"
    wal = FileAgreementWal(path)
    wal.append(esc("op", L.NONE, L.SOFT_SAFE, 1))
    first = path.stat().st_size
    wal.append(gate("op", L.SOFT_SAFE, 2))
    return path, first


def test_damage_in_a_log_names_path_and_offset(tmp_path: Path) -> None:
    path, first = two_record_wal(tmp_path)
    data = bytearray(path.read_bytes())
    data[first - 3] ^= 0x55  # a payload byte of the first record, with one after it
    path.write_bytes(bytes(data))
    for attempt in (lambda: FileAgreementWal(path), lambda: inspect_log(path)):
        with pytest.raises(DecodeError) as caught:
            attempt()
        assert caught.value.path == str(path)
        assert caught.value.offset is not None and caught.value.offset < first
        assert str(caught.value).startswith(f"{PREFIX} {path}: ")
        assert str(caught.value).endswith(f" at byte offset {caught.value.offset}")


def test_artifact_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.cbor"
    path.write_bytes(b"\xa1")  # a map that never ends
    with pytest.raises(DecodeError) as caught:
        PersistedDurabilityArtifact.from_path(path)
    assert caught.value.path == str(path) and caught.value.offset == 0
    with pytest.raises(DecodeError) as caught:
        PersistedDurabilityArtifact.from_cbor(b"\xa1")
    assert caught.value.path is None


def test_size_cap_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "big.cbor"
    with open(path, "wb") as f:
        f.truncate(64 * 1024 * 1024 + 1)
    with pytest.raises(ArtifactTooLargeError) as caught:
        PersistedDurabilityArtifact.from_path(path)
    assert caught.value.path == str(path)


def test_a_damaged_checkpoint_names_its_file(tmp_path: Path) -> None:
    with StateDirectory(tmp_path) as store:
        checkpoint = store.checkpoint(3, b"state")
        checkpoint.path.write_bytes(checkpoint.path.read_bytes()[:-2])
        with pytest.raises(DecodeError) as caught:
            store.plan_recovery()
    assert caught.value.path == str(checkpoint.path)


def test_cli_json_error_carries_path_and_offset(tmp_path: Path) -> None:
    path, first = two_record_wal(tmp_path)
    data = bytearray(path.read_bytes())
    data[first - 3] ^= 0x55
    path.write_bytes(bytes(data))
    result = run("verify", str(path), "--json")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False and document["kind"] == "DecodeError"
    assert document["path"] == str(path) and isinstance(document["offset"], int)
    assert f"at byte offset {document['offset']}" in document["error"]
