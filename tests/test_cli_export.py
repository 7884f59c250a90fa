"""`durability export`: never its own input, `-o -` is stdout, torn tails are told."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest

from durability import FileAgreementWal, PersistedDurabilityArtifact
from tests.test_cli import SCRIPT, make_wal, one_line_error, run


def export_bytes(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([SCRIPT, "export", *args], capture_output=True, cwd=cwd, timeout=300)


def tear(path: Path, cut: int = 5) -> None:
    """Cut the last `cut` bytes: the last record becomes a torn tail."""
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size - cut)


@pytest.mark.parametrize("spelling", ["same", "dot-slash", "dot-dot", "symlink", "hardlink"])
def test_export_refuses_to_overwrite_its_own_input(tmp_path: Path, spelling: str) -> None:
    log = tmp_path / "wal.log"
    make_wal(log)
    before = log.read_bytes()
    (tmp_path / "sub").mkdir()
    if spelling == "same":
        output = str(log)
    elif spelling == "dot-slash":
        output = "./wal.log"
    elif spelling == "dot-dot":
        output = "sub/../wal.log"
    elif spelling == "symlink":
        (tmp_path / "link.cbor").symlink_to(log)
        output = "link.cbor"
    else:
        os.link(log, tmp_path / "hard.cbor")
        output = "hard.cbor"
    result = subprocess.run(
        [SCRIPT, "export", str(log), "-o", output],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 2
    assert "input" in one_line_error(result)
    assert result.stdout == ""
    assert log.read_bytes() == before
    if spelling == "symlink":
        assert (tmp_path / "link.cbor").is_symlink()


def test_export_dash_writes_the_artifact_to_stdout_and_nothing_else(tmp_path: Path) -> None:
    make_wal(tmp_path / "wal.log")
    expected = PersistedDurabilityArtifact.agreement_wal(
        FileAgreementWal(tmp_path / "wal.log").load()
    ).to_cbor()
    for extra in ((), ("--json",)):
        result = export_bytes("wal.log", "-o", "-", *extra, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected
        assert not (tmp_path / "-").exists()
        if extra:
            summary = json.loads(result.stderr)
            assert summary["output"] == "-" and summary["bytes"] == len(expected)
        else:
            assert result.stderr.decode().startswith("durability: wrote stdout: one v1 artifact")
    quiet = export_bytes("wal.log", "-o", "-", "--quiet", cwd=tmp_path)
    assert quiet.stdout == expected and quiet.stderr == b""


def test_export_dash_refuses_to_write_binary_to_a_terminal(tmp_path: Path) -> None:
    make_wal(tmp_path / "wal.log")
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run(
            [SCRIPT, "export", "wal.log", "-o", "-"],
            stdout=terminal,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert result.returncode == 2
    assert "terminal" in one_line_error(result)
    assert not (tmp_path / "-").exists()


def test_export_says_when_it_leaves_a_torn_tail_out(tmp_path: Path) -> None:
    log = tmp_path / "wal.log"
    make_wal(log)
    tear(log)
    torn = run("inspect", str(log), "--json")
    tail = json.loads(torn.stdout)["torn_tail"]
    result = run("export", str(log), "-o", str(tmp_path / "out.cbor"), "--json")
    assert result.returncode == 0, result.stderr
    left_out = json.loads(result.stdout)["torn_tail_left_out"]
    assert (left_out["offset"], left_out["dropped"]) == (tail["offset"], tail["dropped"])
    warning = result.stderr.strip().splitlines()
    assert len(warning) == 1 and "torn tail" in warning[0] and "left out" in warning[0]
    assert str(tail["offset"]) in warning[0]
    text = run("export", str(log), "-o", str(tmp_path / "out2.cbor"))
    assert "left out" in text.stderr
    assert log.stat().st_size == (tmp_path / "wal.log").stat().st_size  # input untouched


def test_export_of_a_clean_log_reports_no_torn_tail(tmp_path: Path) -> None:
    make_wal(tmp_path / "wal.log")
    result = run("export", str(tmp_path / "wal.log"), "-o", str(tmp_path / "o.cbor"), "--json")
    assert result.returncode == 0 and result.stderr == ""
    assert json.loads(result.stdout)["torn_tail_left_out"] is None


def test_export_says_how_many_in_doubt_intents_it_leaves_out(tmp_path: Path) -> None:
    from durability import EffectIntent, FileEvidenceOutcomeCache

    log = tmp_path / "cache.log"
    with FileEvidenceOutcomeCache(log) as cache:
        cache.put_intent(
            EffectIntent(
                evidence_id="e1",
                interface_name="kv",
                operation_name="put",
                attempt=1,
                request_digest="0" * 64,
                created_unix_ms=1,
            )
        )
    result = run("export", str(log), "-o", str(tmp_path / "out.cbor"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["in_doubt_intents_left_out"] == 1
    text = run("export", str(log), "-o", str(tmp_path / "out2.cbor"))
    assert "1 in-doubt effect intents left out" in text.stdout
    artifact = PersistedDurabilityArtifact.from_path(tmp_path / "out.cbor")
    assert artifact.into_evidence_outcome_cache().entries == ()
