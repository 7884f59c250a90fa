"""Small builders shared by the tests: one line per WAL entry or cache entry,
and the README's sections and examples."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from pathlib import Path

from durability import (
    AgreementEvidence,
    AgreementEvidenceKind,
    AgreementLevel,
    EffectFailure,
    EffectOutcome,
    EffectRequest,
    Escalation,
    EvidenceOutcomeCacheEntry,
    EvidenceProduced,
    Finalization,
    FinalizationOutcome,
    VisibilityGateCrossing,
)

L = AgreementLevel

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_section(heading: str) -> str:
    """The README from the line `heading` to the next ``## `` heading (or its end)."""
    text = README.read_text()
    start = text.index(heading + "\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def run_readme_example(section: str) -> tuple[str, str]:
    """Run the first ``python`` block of `section` in the current directory:
    ``(what it printed, the first text block the README shows)``."""
    code = re.search(r"```python\n(.*?)```", section, re.S)
    shown = re.search(r"```text\n(.*?)```", section, re.S)
    assert code is not None and shown is not None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.group(1), "README.md", "exec"), {})
    return out.getvalue(), shown.group(1)


def esc(
    op: str, prev: AgreementLevel, new: AgreementLevel, tick: int, eid: str | None = None
) -> Escalation:
    return Escalation(
        operation_id=op, previous_level=prev, new_level=new, evidence_id=eid, tick=tick
    )


def evidence(
    op: str,
    eid: str,
    level: AgreementLevel = L.SOFT_SAFE,
    kind: AgreementEvidenceKind = AgreementEvidenceKind.CERTIFICATE,
) -> AgreementEvidence:
    return AgreementEvidence(
        evidence_id=eid,
        operation_id=op,
        level=level,
        kind=kind,
        reference=f"ref://{eid}",
        authoritative=True,
    )


def ev(op: str, eid: str, level: AgreementLevel, tick: int) -> EvidenceProduced:
    return EvidenceProduced(evidence=evidence(op, eid, level), tick=tick)


def fin(op: str, outcome: FinalizationOutcome, tick: int) -> Finalization:
    return Finalization(operation_id=op, outcome=outcome, tick=tick)


def gate(
    op: str, level: AgreementLevel, tick: int, coroutine: str = "coro#1"
) -> VisibilityGateCrossing:
    return VisibilityGateCrossing(
        operation_id=op, downstream_coroutine_id=coroutine, gate_level=level, tick=tick
    )


def binding(eid: str, outcome: EffectOutcome | None = None) -> EvidenceOutcomeCacheEntry:
    return EvidenceOutcomeCacheEntry(
        evidence_id=eid,
        interface_name="Storage",
        operation_name="write",
        outcome=outcome if outcome is not None else EffectOutcome.success({"written": eid}),
    )


FAILED = EffectOutcome.failure(EffectFailure.unavailable("disk gone"))


class Inner:
    """A sync handler counting its calls, with a protocol-specific method."""

    def __init__(self, outcome: EffectOutcome | None = None) -> None:
        self.calls: list[EffectRequest] = []
        self.outcome = outcome

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        self.calls.append(request)
        if self.outcome is not None:
            return self.outcome
        return EffectOutcome.success({"n": len(self.calls)})

    def handle_send(self, label: str) -> str:
        return f"sent {label}"


class AsyncInner(Inner):
    async def handle_effect(self, request: EffectRequest) -> EffectOutcome:  # type: ignore[override]
        await asyncio.sleep(0)
        return Inner.handle_effect(self, request)
