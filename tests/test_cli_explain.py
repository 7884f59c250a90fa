"""`durability plan DIR --explain`: each decision with the planner rule that
chose it and the WAL entries behind it, checked against the bytes: every
entry cited is read back, independently of the toolkit's reader, at the file
and byte offset (or SQL sequence) the command names."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import cbor2
import pytest

from durability import StateDirectory, open_wal
from durability.codec import to_plain
from tests.helpers import L, esc, ev, gate
from tests.test_cli_read_only import AS_READER, make_read_only

ROOT = Path(__file__).resolve().parent.parent
HEADER = struct.Struct("<IB3sQII")  # specs/log_format.md: 24 bytes, little-endian


def durability(*args: str) -> subprocess.CompletedProcess[str]:
    """The command line of this source tree, as a user runs it."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "durability", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("durability: error: ")
    return lines[0]


def log_records(path: Path) -> list[tuple[int, int, list[Any]]]:
    """``(offset, record sequence, entries)`` of every WAL record, parsed here
    from the format spec alone (header checksum, payload checksum, CBOR)."""
    data = path.read_bytes()
    stream = io.BytesIO(data)
    cbor2.CBORDecoder(stream).decode()  # the base: one CBOR item
    pos, found = stream.tell(), []
    while pos + HEADER.size <= len(data):
        crc, rtype, _reserved, seq, length, payload_crc = HEADER.unpack_from(data, pos)
        assert crc == zlib.crc32(data[pos + 4 : pos + HEADER.size])
        payload = data[pos + HEADER.size : pos + HEADER.size + length]
        assert zlib.crc32(payload) == payload_crc
        found.append((pos, seq, cbor2.loads(payload) if rtype == 2 else []))
        pos += HEADER.size + length
    assert pos == len(data)
    return found


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("explain") / "state"
    result = durability("demo", str(directory), "--quiet")
    assert result.returncode == 0, result.stderr
    return directory


def test_explain_json_cites_entries_that_are_at_those_offsets(demo_dir: Path) -> None:
    before = snapshot(demo_dir)
    result = durability("plan", str(demo_dir), "--explain", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert snapshot(demo_dir) == before  # read only: bytes and mtimes unchanged
    decisions = {d["operation_id"]: d for d in document["decisions"]}
    explained = {e["operation_id"]: e for e in document["explanations"]}
    assert list(explained) == sorted(decisions) and decisions
    assert list(document["rules"]) == [
        "gate-above-level",
        "finalized",
        "terminal",
        "soft-safe",
        "below-soft-safe",
    ]
    wal = demo_dir / "wal.log"
    records = log_records(wal)
    by_offset = {offset: (seq, entries) for offset, seq, entries in records}
    in_order = [entry for _offset, _seq, entries in records for entry in entries]
    cited = 0
    for op, why in explained.items():
        assert why["action"] == decisions[op]["action"] and not why["anomaly"]
        assert why["level"] == decisions[op]["level"]
        assert why["rule_statement"] == document["rules"][why["rule"]]
        for entry in why["entries"]:
            assert entry["path"] == str(wal)
            seq, entries = by_offset[entry["offset"]]  # a record starts at that offset
            assert seq == entry["record"]
            assert entries[entry["index"]] == entry["entry"]
            assert in_order[entry["position"] - 1] == entry["entry"]
            assert entry["sequence"] == entry["position"]
            assert entry["entry"]["tick"] == entry["tick"]
            plain = entry["entry"]
            assert (plain.get("operation_id") or plain["evidence"]["operation_id"]) == op
            cited += 1
    assert cited >= len(explained)
    roles = {e["role"] for why in explained.values() for e in why["entries"]}
    assert roles == {"checkpoint_level", "level", "finalization", "gate"}


def test_explain_text_shows_rule_and_offsets_of_each_decision(demo_dir: Path) -> None:
    result = durability("plan", str(demo_dir), "--explain")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    document = json.loads(durability("plan", str(demo_dir), "--explain", "--json").stdout)
    assert "why (planner rules in specs/recovery.md" in text
    for why in document["explanations"]:
        headline = f"{why['operation_id']}  {why['action']}  rule {why['rule']}: {why['reason']}"
        assert headline in text.splitlines()
        for entry in why["entries"]:
            where = (
                f"wal.log @ {entry['offset']} (record {entry['record']}, entry {entry['index']})"
            )
            assert where in text
    plain = durability("plan", str(demo_dir)).stdout
    assert text.startswith(plain.rstrip("\n"))  # the plan itself, unchanged, comes first


def test_one_operation_and_unknown_operations(demo_dir: Path) -> None:
    document = json.loads(durability("plan", str(demo_dir), "--json").stdout)
    op = document["decisions"][0]["operation_id"]
    one = json.loads(
        durability("plan", str(demo_dir), "--explain", "--operation", op, "--json").stdout
    )
    assert [e["operation_id"] for e in one["explanations"]] == [op]
    missing = durability("plan", str(demo_dir), "--explain", "--operation", "op#nobody")
    assert missing.returncode == 2
    assert "`op#nobody`" in one_line_error(missing)
    alone = durability("plan", str(demo_dir), "--operation", op)
    assert alone.returncode == 2 and "--explain" in one_line_error(alone)


def test_anomaly_is_explained_by_its_gate_above_the_proven_level(tmp_path: Path) -> None:
    with StateDirectory(tmp_path) as store:
        store.wal.append(esc("a", L.NONE, L.PROVISIONAL, 1))
        store.wal.append_batch([ev("b", "b/1", L.PROVISIONAL, 2), gate("b", L.SOFT_SAFE, 2)])
    strict = durability("plan", str(tmp_path))
    assert strict.returncode == 1 and "`b`" in one_line_error(strict)
    result = durability("plan", str(tmp_path), "--explain", "--json")
    assert result.returncode == 1  # as without --explain: an anomaly fails the plan
    document = json.loads(result.stdout)
    assert document["anomalies"] == ["b"]
    why = {e["operation_id"]: e for e in document["explanations"]}["b"]
    assert (why["anomaly"], why["action"], why["rule"]) == (True, None, "gate-above-level")
    cited = {e["role"]: e for e in why["entries"]}
    assert cited["gate"]["position"] == 3 and cited["gate"]["value"] == "soft_safe"
    assert cited["level"]["position"] == 2 and cited["level"]["value"] == "provisional"
    assert why["reason"] == (
        "gate soft_safe (WAL entry 3) is above the proven level provisional (WAL entry 2)"
    )
    text = durability("plan", str(tmp_path), "--explain").stdout
    assert "b  anomaly: no decision  rule gate-above-level: gate soft_safe" in text


def test_sql_store_entries_are_cited_by_sequence(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    assert durability("demo", str(directory), "--store", "sqlite", "--quiet").returncode == 0
    url = f"sqlite:///{directory.resolve() / 'demo.db'}"
    result = durability("plan", str(directory), "--store", url, "--explain", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    with open_wal(url, read_only=True) as wal:
        rows = dict(wal.poll(0, wal.last_sequence))
    entries = [e for why in document["explanations"] for e in why["entries"]]
    assert entries
    for entry in entries:
        assert entry["path"] is None and entry["offset"] is None
        assert to_plain(rows[entry["sequence"]]) == entry["entry"]
    text = durability("plan", str(directory), "--store", url, "--explain").stdout
    assert f"sequence {entries[0]['sequence']}" in text


@pytest.mark.skipif(
    not AS_READER and os.geteuid() == 0, reason="as root without setpriv every file is writable"
)
def test_explain_works_for_a_user_who_may_only_read(demo_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "state"
    shutil.copytree(demo_dir, copy)
    make_read_only(copy)
    before = snapshot(copy)
    command = [*AS_READER, sys.executable, "-m", "durability", "plan", str(copy), "--explain"]
    result = subprocess.run(
        [*command, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    entries = [e for why in json.loads(result.stdout)["explanations"] for e in why["entries"]]
    assert entries and all(e["path"] == str(copy / "wal.log") for e in entries)
    assert snapshot(copy) == before
