"""``durability report``: the data gathered per operation, the page's
safety (no network, hostile ids stay text) and the command line. The page
in a real browser is tests/test_report_browser.py."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from durability import DurableRecoveryPlan, EffectIntent, StateDirectory
from durability import FinalizationOutcome as F
from durability.rationale import Explainer, rule_explainer
from durability.report import OperationReport, Report, gather_report
from durability.report_html import embed_json, render_html, report_json
from tests.helpers import L, binding, esc, ev, fin, gate
from tests.report_states import HOSTILE, HOSTILE_EVIDENCE, op_id, write_state
from tests.test_cli import SCRIPT, one_line_error, run
from tests.test_cli_read_only import make_read_only, run_as_reader, snapshot


def small_state(path: Path) -> Path:
    """Five operations around a checkpoint at tick 10 (see each comment)."""
    with StateDirectory(path) as store:
        store.wal.append_batch(
            [
                # done: settled before the checkpoint, nothing after it
                ev("done", "done/c", L.SOFT_SAFE, 2),
                esc("done", L.NONE, L.SOFT_SAFE, 2, "done/c"),
                fin("done", F.FINALIZED, 3),
                # fin: soft-safe before, finalized after
                ev("fin", "fin/c", L.SOFT_SAFE, 4),
                esc("fin", L.NONE, L.SOFT_SAFE, 4, "fin/c"),
                gate("fin", L.SOFT_SAFE, 5),
            ]
        )
        store.checkpoint(10, b"state@10")
        store.wal.append_batch(
            [
                fin("fin", F.FINALIZED, 11),
                gate("fin", L.FINALIZED, 11),
                # resume: soft-safe after the checkpoint, its certificate cached
                ev("resume", "resume/c", L.SOFT_SAFE, 12),
                esc("resume", L.NONE, L.SOFT_SAFE, 12, "resume/c"),
                gate("resume", L.PROVISIONAL, 13),
                # redo: provisional only, an effect in doubt
                ev("redo", "redo/w", L.PROVISIONAL, 14),
                # bad: a gate at finalized over a provisional WAL
                ev("bad", "bad/w", L.PROVISIONAL, 15),
                gate("bad", L.FINALIZED, 15),
            ]
        )
        store.cache.put(binding("resume/c"))
        store.cache.put(binding("done/c"))
        store.cache.put(binding("nobody/x"))
        store.cache.put_intent(
            EffectIntent(
                evidence_id="redo/pay",
                interface_name="Payments",
                operation_name="charge",
                operation_id="redo",
                attempt=1,
                request_digest="0" * 64,
                created_unix_ms=1_700_000_000_000,
            )
        )
    return path


def report_of(path: Path, tick: int | None = None, explain: Explainer = rule_explainer) -> Report:
    with StateDirectory(path, create=False, read_only=True) as store:
        return gather_report(store, tick, explain=explain)


def by_id(report: Report) -> dict[str, OperationReport]:
    return {op.operation_id: op for op in report.operations}


# -- the data -------------------------------------------------------------------------


def test_each_operation_gets_the_plans_action_levels_and_timeline(tmp_path: Path) -> None:
    report = report_of(small_state(tmp_path / "s"))
    ops = {op.operation_id: op for op in report.operations}
    assert list(ops) == ["bad", "done", "fin", "redo", "resume"]  # sorted by id
    assert report.checkpoint_tick == 10 and report.checkpoint_ticks == (10,)
    assert {k: o.action for k, o in ops.items()} == {
        "bad": None,
        "done": None,
        "fin": "reuse_finalized",
        "redo": "reexecute_from_scratch",
        "resume": "resume_from_evidence_boundary",
    }
    assert ops["bad"].anomaly and report.anomalies == ("bad",)
    assert not ops["done"].anomaly
    assert report.action_counts == {
        "anomaly": 1,
        "no_decision": 1,
        "reexecute_from_scratch": 1,
        "resume_from_evidence_boundary": 1,
        "reuse_finalized": 1,
    }
    fin_op = ops["fin"]
    assert (fin_op.checkpoint_level, fin_op.level) == (L.SOFT_SAFE, L.FINALIZED)
    assert fin_op.finalization == "finalized" and fin_op.gate_level is L.FINALIZED
    timeline = [(e.tick, e.kind, e.after_checkpoint) for e in fin_op.events]
    assert timeline == [
        (4, "evidence", False),
        (4, "escalation", False),
        (5, "gate", False),
        (11, "finalization", True),
        (11, "gate", True),
    ]
    assert [e.level_after for e in fin_op.events] == [L.SOFT_SAFE] * 3 + [L.FINALIZED] * 2
    assert fin_op.events[3].outcome == "finalized" and fin_op.events[3].level is L.FINALIZED
    assert fin_op.events[2].level is L.SOFT_SAFE  # a gate shows its own level
    assert ops["done"].finalization == "finalized" and ops["done"].level is L.FINALIZED


def test_cached_evidence_and_effects_in_doubt_are_per_operation(tmp_path: Path) -> None:
    report = report_of(small_state(tmp_path / "s"))
    ops = {op.operation_id: op for op in report.operations}
    (resume_cert,) = ops["resume"].cached
    assert (resume_cert.evidence_id, resume_cert.effect, resume_cert.status) == (
        "resume/c",
        "Storage.write",
        "success",
    )
    assert resume_cert.used_by_plan and '"written": "resume/c"' in resume_cert.outcome
    (done_cert,) = ops["done"].cached
    assert not done_cert.used_by_plan  # before the checkpoint: not the plan's
    (doubt,) = ops["redo"].in_doubt
    assert (doubt.evidence_id, doubt.effect, doubt.attempt) == ("redo/pay", "Payments.charge", 1)
    assert report.in_doubt_count == 1
    assert report.unattached_cache_entries == 1  # nobody/x
    assert (report.wal_entries, report.cache_entries) == (14, 3)


def test_explanations_follow_the_planners_rules(tmp_path: Path) -> None:
    ops = {op.operation_id: op for op in report_of(small_state(tmp_path / "s")).operations}
    assert ops["fin"].why[0] == (
        "rule finalized: the last finalization is finalized: reuse its result"
    )
    assert "last finalization `finalized`" in ops["fin"].why
    assert ops["resume"].why[0].startswith("rule soft-safe: ")
    assert "soft_safe or above" in ops["resume"].why[0]
    assert "1 cached outcome to reuse" in " ".join(ops["resume"].why)
    assert ops["redo"].why[0].startswith("rule below-soft-safe: ")
    assert "less than soft_safe" in ops["redo"].why[0]
    assert any("in doubt" in line and "durability resolve" in line for line in ops["redo"].why)
    assert ops["bad"].why[0].startswith("no decision (anomaly): rule gate-above-level: a gate ")
    assert ops["done"].why == (
        "no decision: no WAL entry after checkpoint tick 10; "
        "recovery takes it as the checkpoint state holds it",
    )


def test_the_explainer_is_the_one_source_of_why(tmp_path: Path) -> None:
    asked: list[str] = []

    def explainer(plan: DurableRecoveryPlan) -> Callable[[str], list[str]]:
        def explain(operation_id: str) -> list[str]:
            asked.append(operation_id)
            return [f"because {operation_id}"]

        return explain

    report = report_of(small_state(tmp_path / "s"), explain=explainer)
    assert sorted(asked) == ["bad", "done", "fin", "redo", "resume"]
    assert all(op.why == (f"because {op.operation_id}",) for op in report.operations)


def test_a_checkpoint_tick_and_no_checkpoint_change_the_plan(tmp_path: Path) -> None:
    state = small_state(tmp_path / "s")
    with StateDirectory(state) as store:
        store.checkpoint(1, b"early")
    early = by_id(report_of(state, 1))
    assert early["done"].action == "reuse_finalized"  # its entries are after tick 1
    assert early["fin"].checkpoint_level is L.NONE
    latest = report_of(state)
    assert latest.checkpoint_tick == 10 and latest.checkpoint_ticks == (1, 10)
    assert by_id(latest)["done"].action is None
    assert by_id(latest)["fin"].checkpoint_level is L.SOFT_SAFE
    with StateDirectory(tmp_path / "bare") as store:
        store.wal.append(ev("x", "x/c", L.SOFT_SAFE, 0))
    bare = report_of(tmp_path / "bare")
    assert bare.checkpoint_tick is None and bare.checkpoint_ticks == ()
    assert bare.operations[0].action == "resume_from_evidence_boundary"  # tick 0 included
    assert bare.operations[0].events[0].after_checkpoint


def test_a_generated_directory_of_ten_thousand_operations(tmp_path: Path) -> None:
    report = report_of(write_state(tmp_path / "big", 10_000, checkpoint=15_000))
    assert len(report.operations) == 10_002  # and the anomaly and the hostile one
    counts = report.action_counts
    assert counts["no_decision"] == 5_000  # ticks 1..15000: the first 5,000 operations
    assert counts["reuse_finalized"] == counts["preserve_terminal"] == 1_000
    assert counts["resume_from_evidence_boundary"] == 2_001  # with the hostile one
    assert counts["anomaly"] == 1 and report.in_doubt_count == 2_000
    last = by_id(report)[op_id(9_999)]
    assert last.in_doubt[0].evidence_id == f"{op_id(9_999)}/charge"
    assert [e.tick for e in last.events] == [29_998] * 3 + [29_999] * 2


# -- the page -------------------------------------------------------------------------


def embedded(page: str) -> object:
    match = re.search(
        r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S
    )
    assert match is not None
    return json.loads(match.group(1))


def test_embedded_json_cannot_close_its_script_element() -> None:
    value = {"id": HOSTILE, "evidence": HOSTILE_EVIDENCE, "text": "a & b <!-- c -->"}
    text = embed_json(value)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == value


def test_the_page_embeds_the_report_and_keeps_hostile_ids_as_data(tmp_path: Path) -> None:
    report = report_of(write_state(tmp_path / "s", 20))
    page = render_html(report)
    assert HOSTILE not in page and "<img" not in page and "alert(1)</script>" not in page
    data = embedded(page)
    assert data == json.loads(json.dumps(report_json(report)))
    ops = data["operations"]  # type: ignore[index]
    assert HOSTILE in [op["id"] for op in ops]
    assert page.count("<script") == 2  # the data and the code, nothing injected


def test_the_page_loads_nothing_from_anywhere(tmp_path: Path) -> None:
    page = render_html(report_of(small_state(tmp_path / "s")))
    code = re.sub(r'<script type="application/json".*?</script>', "", page, flags=re.S)
    assert "http://" not in code and "https://" not in code and "file:" not in code
    script = re.search(r"<script>(.*?)</script>", code, re.S)
    assert script is not None
    markup = code.replace(script.group(1), "")
    for tag in re.findall(r"<[a-zA-Z][^>]*>", markup):
        assert not re.search(r"\s(src|href|srcset|action|formaction|poster|data)\s*=", tag), tag
    assert "url(" not in code and "@import" not in code
    for loader in ("fetch(", "XMLHttpRequest", "import(", "WebSocket", "EventSource", ".src"):
        assert loader not in script.group(1), loader
    assert "default-src &#x27;none&#x27;" in page  # the Content-Security-Policy forbids it too


def test_the_summary_is_there_without_the_script(tmp_path: Path) -> None:
    page = render_html(report_of(small_state(tmp_path / "s")))
    body = page[: page.index('<script type="application/json"')]
    for label, value in [
        ("operations", "5"),
        ("WAL entries", "14"),
        ("anomalies", "1"),
        ("effects in doubt", "1"),
        ("reuse finalized", "1"),
    ]:
        assert f"<dt>{label}</dt><dd>{value}</dd>" in body
    assert "planned from checkpoint tick 10" in body and "<noscript>" in body


def test_json_interns_repeated_explanations(tmp_path: Path) -> None:
    data = report_json(report_of(write_state(tmp_path / "s", 50)))
    texts = data["texts"]
    assert len(texts) == len(set(texts)) < 20
    for op in data["operations"]:
        assert all(isinstance(i, int) and 0 <= i < len(texts) for i in op["why"])


# -- the command line -----------------------------------------------------------------


def test_report_writes_the_page_and_summarises_it(tmp_path: Path) -> None:
    state = small_state(tmp_path / "s")
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    result = run("report", str(state), "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["path"] == str(out) and summary["operations"] == 5
    assert summary["bytes"] == out.stat().st_size > 10_000
    assert summary["anomalies"] == ["bad"] and summary["in_doubt"] == 1
    assert embedded(out.read_text())["checkpoint_tick"] == 10  # type: ignore[index]
    text = run("report", str(state), "-o", str(out), "--checkpoint-tick", "10")
    assert text.returncode == 0 and text.stdout.startswith(f"wrote {out}: 5 operations, ")
    stdout = run("report", str(state), "-o", "-")
    assert stdout.returncode == 0 and stdout.stdout.startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("wal.log", "report never writes under its input"),
        ("evidence.log", "report never writes under its input"),
        ("checkpoints/checkpoint-00000000000000000010.cbor", "report never writes under its input"),
        ("checkpoints/new.html", "report never writes under its input"),
        ("report.html", "report never writes under its input"),
        (".", "is a directory"),
    ],
)
def test_report_never_writes_over_its_input(tmp_path: Path, target: str, words: str) -> None:
    state = small_state(tmp_path / "s")
    before = snapshot(state)
    result = run("report", str(state), "-o", str(state / target))
    assert result.returncode == 2 and words in one_line_error(result)
    assert snapshot(state) == before


def test_report_usage_errors_and_damage(tmp_path: Path) -> None:
    state = small_state(tmp_path / "s")
    out = str(tmp_path / "r.html")
    missing = run("report", str(tmp_path / "nothing"), "-o", out)
    assert missing.returncode == 2 and "is not a state directory" in one_line_error(missing)
    tick = run("report", str(state), "-o", out, "--checkpoint-tick", "7")
    assert tick.returncode == 2
    assert (
        "no checkpoint at tick 7" in one_line_error(tick)
        and "checkpoints exist at tick 10)" in tick.stderr
    )
    no_output = run("report", str(state))
    assert no_output.returncode == 2 and "-o" in one_line_error(no_output)
    wal = state / "wal.log"
    data = bytearray(wal.read_bytes())
    data[40] ^= 0xFF  # damage inside the base
    wal.write_bytes(bytes(data))
    damaged = run("report", str(state), "-o", out, "--json")
    assert damaged.returncode == 1 and "wal.log" in one_line_error(damaged)
    assert json.loads(damaged.stdout)["ok"] is False and not Path(out).exists()


def test_report_never_writes_under_a_read_only_input(tmp_path: Path) -> None:
    state = small_state(tmp_path / "s")
    wal = state / "wal.log"
    with open(wal, "r+b") as handle:  # a torn tail: shown, never cut
        handle.truncate(wal.stat().st_size - 3)
    make_read_only(state)
    try:
        before = snapshot(state)
        out = tmp_path / "report.html"
        result = run_as_reader("report", str(state), "-o", str(out), cwd=state)
        assert result.returncode == 0, result.stderr.decode()
        assert snapshot(state) == before
        data = embedded(out.read_text())
        assert data["repairs"]["wal.log"] is not None  # type: ignore[index]
        assert "torn tails</dt><dd>wal.log" in out.read_text()
    finally:
        for path in [state, *state.rglob("*")]:
            path.chmod(0o700 if path.is_dir() else 0o600)


def test_effects_in_doubt_without_wal_entries_still_get_a_row(tmp_path: Path) -> None:
    state = small_state(tmp_path / "s")
    with StateDirectory(state) as store:
        for evidence_id, operation in (("lost/pay", "lost"), ("anon/pay", None)):
            store.cache.put_intent(
                EffectIntent(
                    evidence_id=evidence_id,
                    interface_name="Payments",
                    operation_name="charge",
                    operation_id=operation,
                    attempt=1,
                    request_digest="1" * 64,
                    created_unix_ms=1,
                )
            )
    ops = by_id(report_of(state))
    assert [d.evidence_id for d in ops["lost"].in_doubt] == ["lost/pay"]
    assert [d.evidence_id for d in ops[""].in_doubt] == ["anon/pay"]  # no operation id
    assert ops["lost"].events == () and ops["lost"].action is None


def test_a_page_on_stdout_cut_short_by_its_reader_ends_quietly(tmp_path: Path) -> None:
    state = write_state(tmp_path / "s", 2_000)
    result = subprocess.run(
        ["sh", "-c", f"{shlex.quote(SCRIPT)} report {shlex.quote(str(state))} -o - | head -c 15"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.stdout == "<!DOCTYPE html>" and result.stderr == ""
