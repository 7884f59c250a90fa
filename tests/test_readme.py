"""The README's tour is real code: run it, and hold it to what it says.

The tour must print exactly the output the README shows beside it, and that
output must show what the tour's comments claim: a gate that crosses and one
that is blocked, a decision that lists cached evidence, and a resumed effect
answered from the cache without calling the handler. The state directory it
leaves behind is checked too, so the printed words cannot drift from the data.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from durability import DurableRecoveryPlan, StateDirectory, VisibilityGateCrossing

README = Path(__file__).resolve().parent.parent / "README.md"

# What the tour's comments and the prose after it promise, line by line.
PROMISED = [
    "op#1 put: success",
    "op#1 sync: success",
    "op#2 sync: blocked",
    "op#1 resume_from_evidence_boundary soft_safe ['op#1/cert']",
    "op#2 reexecute_from_scratch provisional []",
    "op#1 put again: {'written': 'op#1'} / Storage calls: 0",
]


def tour_section() -> str:
    text = README.read_text()
    start = text.index("## Five-minute tour\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def tour_code_and_output() -> tuple[str, str]:
    section = tour_section()
    code = re.search(r"```python\n(.*?)```", section, re.S)
    output = re.search(r"```text\n(.*?)```", section, re.S)
    assert code is not None, "the tour has no python block"
    assert output is not None, "the tour does not show its output in a text block"
    return code.group(1), output.group(1)


def run_tour(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    return out.getvalue()


@pytest.fixture
def tour(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, Path]:
    code, shown = tour_code_and_output()
    monkeypatch.chdir(tmp_path)
    printed = run_tour(code)
    return printed, shown, tmp_path / "state"


def test_tour_prints_what_the_readme_shows(tour: tuple[str, str, Path]) -> None:
    printed, shown, _ = tour
    assert printed.strip(), "the tour prints nothing"
    assert printed == shown


def test_tour_output_shows_blocked_and_crossing_gates_cache_and_plan(
    tour: tuple[str, str, Path],
) -> None:
    printed, _, _ = tour
    assert printed.splitlines() == PROMISED


def test_tour_leaves_the_state_its_output_describes(tour: tuple[str, str, Path]) -> None:
    _, _, state = tour
    assert (state / "wal.log").exists() and (state / "evidence.log").exists()
    with StateDirectory(state, create=False) as store:
        gates = [e for e in store.wal.load().entries if isinstance(e, VisibilityGateCrossing)]
        assert [g.operation_id for g in gates] == ["op#1"]  # op#2's gate was blocked
        assert {e.operation_id for e in store.wal.load().entries} == {"op#1", "op#2"}
        assert [e.evidence_id for e in store.cache.load().entries] == ["op#1/cert"]
        plan = store.plan_recovery()
        assert plan.anomalies == ()
        # However "no checkpoint" is planned (tick 0 or none), the tour's
        # operations are after it: the decisions do not depend on it.
        for checkpoint in (0, None):
            other = DurableRecoveryPlan.from_checkpoint(
                checkpoint, None, store.wal.load(), store.cache.load()
            )
            assert other.decisions == plan.decisions
