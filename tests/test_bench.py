"""The benchmark harness still runs: ``python -m bench --quick`` writes
RESULTS.md and results.json with every row of its catalog. No timing is
asserted (the machine is shared and noisy; figures live in bench/RESULTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

if not (REPO / "bench" / "__main__.py").is_file():  # pragma: no cover - an sdist without bench/
    pytest.skip("bench/ is not in this checkout", allow_module_level=True)

if str(REPO) not in sys.path:  # pragma: no cover - pytest's rootdir is usually there
    sys.path.insert(0, str(REPO))
from bench.runner import CATALOG  # noqa: E402

STATUSES = {"met", "missed", "info", "skipped"}


@pytest.fixture(scope="module")
def quick_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("bench") / "out"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return out, result


def test_quick_run_exits_zero(quick_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, result = quick_run
    assert result.returncode == 0, result.stderr[-4000:]
    assert "[bench" in result.stderr  # progress goes to stderr
    assert result.stdout == ""


def test_results_json_has_every_row(
    quick_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, _ = quick_run
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert data["mode"] == "quick"
    rows = {row["id"]: row for row in data["rows"]}
    assert list(rows) == [entry.id for entry in CATALOG]
    for entry in CATALOG:
        row = rows[entry.id]
        assert row["status"] in STATUSES, (entry.id, row["status"], row["note"])
        if row["status"] == "skipped":
            assert any(
                why in row["note"]
                for why in ("not installed", "could not", "no PostgreSQL binaries")
            ), row
            continue
        assert isinstance(row["figure"], float), entry.id
        assert row["ours"]["samples"], entry.id
        if entry.target is not None:
            assert row["status"] in ("met", "missed")
            assert row["target"]["value"] == entry.target.value
    assert data["machine"]["python"]
    assert data["date"]


def test_results_md_has_every_row(quick_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    out, _ = quick_run
    text = (out / "RESULTS.md").read_text(encoding="utf-8")
    assert "QUICK MODE" in text
    assert "## Targets" in text and "## Machine" in text
    for entry in CATALOG:
        assert entry.title in text, entry.id
        assert f"`{entry.id}`" in text, entry.id
    table = text.split("## Targets", 1)[1].split("## Context", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + sum(entry.target is not None for entry in CATALOG)  # + header
    for line in rows[1:]:
        assert any(word in line for word in ("**met**", "**MISSED**", "**SKIPPED**")), line


def test_missing_peers_are_said_loudly(
    quick_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, _ = quick_run
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    text = (out / "RESULTS.md").read_text(encoding="utf-8")
    for row in data["rows"]:
        if row["status"] == "skipped":
            assert f"**SKIPPED: {row['title']}**" in text
    if not (out / "chart.png").exists():
        assert "**NO CHART**" in text


def test_only_runs_one_group(tmp_path: Path) -> None:
    out = tmp_path / "only"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "original", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    for row in data["rows"]:
        expected = "not run" if row["group"] != "original" else row["status"]
        assert row["status"] == expected
    assert not list(out.glob(".scratch-*"))  # scratch files are removed


def test_sql_rows_are_context_against_the_file_backend() -> None:
    sql = [entry for entry in CATALOG if entry.group == "sql"]
    assert [entry.id for entry in sql] == [
        f"{kind}_{row}"
        for kind in ("sqlite", "postgres")
        for row in (
            "append_vs_file",
            "batch64_vs_file",
            "cold_load_vs_file",
            "plan_vs_file",
            "4procs_vs_file",
        )
    ]
    for entry in sql:
        assert entry.target is None, entry.id
        assert "file backend" in entry.title, entry.id


def test_unknown_only_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "nope", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "unknown --only 'nope'" in result.stderr
