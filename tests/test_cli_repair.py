"""`durability repair LOG [--apply]`: the dry run changes nothing (bytes and
mtimes of every file in the directory), says what it would cut and what each
recovery mode does; `--apply` never overwrites in place: it keeps the damaged
file aside, and the repaired log verifies with `durability verify`."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from durability import FileAgreementWal, FileEvidenceOutcomeCache, inspect_log
from durability import repair as repair_module
from durability.errors import LogInUseError, RepairRefusedError
from durability.repair import repair_log
from durability.repair_scan import RepairState, scan_for_repair
from tests.helpers import L, binding, esc, ev, gate
from tests.test_cli_explain import durability, one_line_error
from tests.test_cli_read_only import AS_READER, make_read_only

RECORDS = 12  # WAL records written by `make_wal`, each holding 3 entries (and record 0)
STAMP = re.compile(r"^wal\.log\.damaged-\d{8}T\d{6}Z$")


def make_wal(path: Path) -> list[tuple[int, int]]:
    """A WAL of `RECORDS` records; returns each record's ``(offset, end)``."""
    with FileAgreementWal(path) as wal:
        for n in range(RECORDS):
            op = f"op#{n}"
            wal.append_batch(
                [
                    ev(op, f"{op}/c", L.SOFT_SAFE, n),
                    esc(op, L.NONE, L.SOFT_SAFE, n),
                    gate(op, L.SOFT_SAFE, n),
                ]
            )
    report = inspect_log(path)
    return [(r.offset, r.offset + 24 + r.length) for r in report.records if r.seq > 0]


def snapshot(directory: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under `directory`: bytes, mtime and mode."""
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def repair_json(*args: str) -> tuple[int, dict[str, object]]:
    result = durability("repair", *args, "--json")
    return result.returncode, json.loads(result.stdout)


@pytest.fixture
def torn(tmp_path: Path) -> tuple[Path, bytes, int]:
    """A WAL whose last record was cut short by a crash: its path, its bytes,
    and the offset where the torn record starts."""
    path = tmp_path / "wal.log"
    records = make_wal(path)
    data = path.read_bytes()[:-10]  # the last record's write was cut short
    path.write_bytes(data)
    return path, data, records[-1][0]


def test_dry_run_on_a_torn_tail_says_what_it_would_cut_and_changes_nothing(
    torn: tuple[Path, bytes, int],
) -> None:
    path, data, offset = torn
    (path.parent / "other.txt").write_text("bystander")
    before = snapshot(path.parent)
    code, document = repair_json(str(path))
    text = durability("repair", str(path))
    assert snapshot(path.parent) == before
    assert code == 1 and text.returncode == 1  # the log needs a repair
    assert document["state"] == "torn_tail" and document["applied"] is False
    assert (document["offset"], document["dropped"]) == (offset, len(data) - offset)
    assert (document["kept_records"], document["kept_entries"]) == (RECORDS, 3 * (RECORDS - 1))
    modes = {m["mode"]: m["action"] for m in document["modes"]}
    assert modes == {
        "tolerate_torn_tail": "cut",
        "absolute_consistency": "fail_closed",
        "point_in_time": "cut",
    }
    assert document["repair_mode"] == "tolerate_torn_tail"
    assert f"torn tail at byte offset {offset} ({len(data) - offset} bytes)" in text.stdout
    assert f"--apply would cut {len(data) - offset} bytes at offset {offset}" in text.stdout


@pytest.mark.skipif(
    not AS_READER and os.geteuid() == 0, reason="as root without setpriv every file is writable"
)
def test_dry_run_works_for_a_user_who_may_only_read(torn: tuple[Path, bytes, int]) -> None:
    path, _data, offset = torn
    make_read_only(path.parent)
    before = snapshot(path.parent)
    env_runner = [*AS_READER, sys.executable, "-m", "durability", "repair", str(path), "--json"]
    root = str(Path(__file__).resolve().parent.parent)
    result = subprocess.run(
        env_runner,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["offset"] == offset
    assert snapshot(path.parent) == before


def test_apply_keeps_the_damaged_file_and_the_result_verifies(
    torn: tuple[Path, bytes, int],
) -> None:
    path, data, offset = torn
    code, document = repair_json(str(path), "--apply")
    assert code == 0 and document["applied"] is True and document["verified"] is True
    names = sorted(p.name for p in path.parent.iterdir())
    assert len(names) == 2 and names[0] == "wal.log"  # no temporary file left behind
    assert STAMP.match(names[1]), names
    assert document["damaged_copy"] == str(path.parent / names[1])
    assert (path.parent / names[1]).read_bytes() == data  # every byte kept aside
    assert path.read_bytes() == data[:offset]
    verified = durability("verify", str(path), "--strict")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    with FileAgreementWal(path, read_only=True) as wal:
        assert len(wal.load().entries) == 3 * (RECORDS - 1)
    again = durability("repair", str(path), "--apply")
    assert again.returncode == 0 and "nothing to repair" in again.stdout


def flip(path: Path, at: int) -> bytes:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x40
    path.write_bytes(bytes(data))
    return bytes(data)


def test_mid_log_damage_counts_the_records_after_it_and_apply_keeps_the_prefix(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wal.log"
    records = make_wal(path)
    start, end = records[4]  # record 5 of 12
    data = flip(path, end - 3)  # in its payload
    before = snapshot(tmp_path)
    code, document = repair_json(str(path))
    assert code == 1 and snapshot(tmp_path) == before
    assert document["state"] == "damage" and document["offset"] == start
    assert (
        document["damaged_record"] == 5 and document["kept_records"] == 5
    )  # the base checksum record and 1..4
    assert document["after_damage"] == {
        "records": RECORDS - 5,
        "entries": 3 * (RECORDS - 5),
        "first_record": 6,
        "first_offset": end,
        "last_record": RECORDS,
    }
    modes = {m["mode"]: m["action"] for m in document["modes"]}
    assert modes == {
        "tolerate_torn_tail": "fail_closed",
        "absolute_consistency": "fail_closed",
        "point_in_time": "cut_keeping_copy",
    }
    text = durability("repair", str(path)).stdout
    assert (
        f"{RECORDS - 5} intact records ({3 * (RECORDS - 5)} entries) lie after the damage" in text
    )
    assert "as point_in_time recovery does" in text
    code, applied = repair_json(str(path), "--apply")
    assert code == 0 and applied["repair_mode"] == "point_in_time"
    assert path.read_bytes() == data[:start]
    assert Path(str(applied["damaged_copy"])).read_bytes() == data
    assert durability("verify", str(path), "--strict").returncode == 0


def test_damage_in_a_header_is_skipped_to_the_next_record_that_verifies(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    records = make_wal(path)
    start, end = records[7]  # record 8
    flip(path, start + 10)  # its sequence number: the header checksum fails
    scan = scan_for_repair(path)
    assert scan.state is RepairState.DAMAGE and (scan.offset, scan.damaged_record) == (start, 8)
    assert scan.after is not None
    assert (scan.after.first_record, scan.after.first_offset) == (9, end)
    assert scan.after.records == RECORDS - 8
    zeroed = bytearray(path.read_bytes())
    zeroed[records[2][0] : records[5][1] - 5] = bytes(records[5][1] - 5 - records[2][0])
    path.write_bytes(bytes(zeroed))  # records 3..6 zeroed, 8's header still damaged
    scan = scan_for_repair(path)
    assert scan.after is not None and scan.damaged_record == 3
    assert (scan.after.records, scan.after.first_record) == (1 + RECORDS - 8, 7)
    assert "(records 3..6 unreadable)" in scan.lost


def test_a_clean_log_has_nothing_to_repair_and_is_left_alone(tmp_path: Path) -> None:
    make_wal(tmp_path / "wal.log")
    before = snapshot(tmp_path)
    for args in ((), ("--apply",)):
        result = durability("repair", str(tmp_path / "wal.log"), *args)
        assert (
            result.returncode == 0
            and "clean" in result.stdout
            and "nothing to repair" in result.stdout
        )
    assert snapshot(tmp_path) == before


def test_a_cache_log_is_repaired_too(tmp_path: Path) -> None:
    path = tmp_path / "evidence.log"
    with FileEvidenceOutcomeCache(path) as cache:
        for n in range(4):
            cache.put(binding(f"e{n}"))
    path.write_bytes(path.read_bytes()[:-5])
    code, document = repair_json(str(path), "--apply")
    assert code == 0 and document["kind"] == "evidence_outcome_cache"
    assert document["kept_entries"] == 3
    with FileEvidenceOutcomeCache(path, read_only=True) as cache:
        assert [e.evidence_id for e in cache.load().entries] == ["e0", "e1", "e2"]
        assert cache.torn_tail is None


HOLD = """
import fcntl, sys, time
fd = open(sys.argv[1], "rb")
if sys.argv[2] == "lock":
    fcntl.flock(fd, fcntl.LOCK_EX)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize(
    ("how", "words"), [("lock", "holds its lock"), ("open", "is open in process")]
)
def test_apply_refuses_a_log_another_process_holds(
    torn: tuple[Path, bytes, int], how: str, words: str
) -> None:
    path, _data, _offset = torn
    if how == "open" and not Path("/proc/self/fd").is_dir():
        pytest.skip("no /proc: only the lock is checked")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), how], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        before = snapshot(path.parent)
        result = durability("repair", str(path), "--apply")
        assert result.returncode == 2
        line = one_line_error(result)
        assert words in line and str(path) in line and "nothing was changed" in line
        assert snapshot(path.parent) == before
    finally:
        holder.kill()
        holder.wait()


def test_damage_no_repair_may_cut_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "base" / "wal.log"
    base.parent.mkdir()
    make_wal(base)
    flip(base, 5)  # inside the base
    newer = tmp_path / "newer" / "wal.log"
    newer.parent.mkdir()
    make_wal(newer)
    rest = struct.pack("<B3sQII", 99, b"\0\0\0", RECORDS + 1, 1, zlib.crc32(b"\x80"))
    with newer.open("ab") as out:  # a record type from a newer version
        out.write(struct.pack("<I", zlib.crc32(rest)) + rest + b"\x80")
    for path, reason in ((base, "damaged base"), (newer, "newer version")):
        before = snapshot(path.parent)
        code, document = repair_json(str(path))
        assert (
            code == 1 and document["state"] == "unrepairable" and reason in str(document["reason"])
        )
        assert {m["action"] for m in document["modes"]} == {"fail_closed"}
        applied = durability("repair", str(path), "--apply")
        assert applied.returncode == 1 and "cannot be repaired" in one_line_error(applied)
        assert snapshot(path.parent) == before


def test_usage_errors(tmp_path: Path) -> None:
    for target in (f"sqlite:///{tmp_path / 'x.db'}", str(tmp_path), str(tmp_path / "absent.log")):
        result = durability("repair", target)
        assert result.returncode == 2
        one_line_error(result)
    assert "no torn tail to cut" in durability("repair", f"sqlite:///{tmp_path / 'x.db'}").stderr
    assert not (tmp_path / "x.db").exists()


def test_a_copy_that_fails_verification_changes_nothing(
    torn: tuple[Path, bytes, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _data, _offset = torn
    before = snapshot(path.parent)
    real = repair_module._write_prefix
    monkeypatch.setattr(
        repair_module,
        "_write_prefix",
        lambda fs, fd, name, length: real(fs, fd, name, length - 7),  # a short copy
    )
    with pytest.raises(RepairRefusedError, match="fails verification"):
        repair_log(path)
    assert snapshot(path.parent) == before


def test_a_log_this_process_has_open_is_refused_too(torn: tuple[Path, bytes, int]) -> None:
    path, _data, _offset = torn
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("no /proc: only the lock is checked")
    before = snapshot(path.parent)
    with path.open("rb"), pytest.raises(LogInUseError, match=f"open in process {os.getpid()}"):
        repair_log(path)
    assert snapshot(path.parent) == before
    assert repair_log(path).applied  # once closed


def test_two_repairs_in_one_second_keep_both_copies(tmp_path: Path) -> None:
    path = tmp_path / "wal.log"
    make_wal(path)
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    copies = []
    for _ in range(2):
        path.write_bytes(path.read_bytes()[:-10])
        result = repair_log(path, now=lambda: when)
        copies.append(Path(str(result.damaged_copy)).name)
    assert copies == ["wal.log.damaged-20260102T030405Z", "wal.log.damaged-20260102T030405Z-2"]
