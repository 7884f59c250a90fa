"""Verifying a log: what ``durability verify`` checks, as a library call.

`verify_log` reads a WAL or cache log without changing it (`inspect_log`:
checksums, framing, decoding), then, for a WAL, checks escalation order and
planner consistency: every operation must have a sound recovery decision
when the whole WAL is planned with no checkpoint (after pruned WAL segments,
from what their merged index says), so a visibility gate
crossed above the level the WAL proves is reported wherever it lies, tick 0
included. With ``strict=True`` a torn tail fails verification too.
`verify_report` checks a SQL store's `StoreReport` (`read_store`) the same
way; reading it decoded every row, and it has no torn tail.
"""

from __future__ import annotations

import os

import attrs

from .artifact import AgreementWalArtifact, EvidenceOutcomeCacheArtifact
from .backends.file import LogReport, WalPart, inspect_log
from .errors import EscalationOrderError
from .fileio import DEFAULT_FS, FileSystem
from .reading import StoreReport
from .suffixplan import plan_from_parts

__all__ = ["VerifyReport", "verify_log", "verify_report"]


@attrs.frozen(kw_only=True)
class VerifyReport:
    """What `verify_log` found.

    `report` is the `LogReport` of the log (the `StoreReport` of a SQL
    store); `consistency_checked` tells whether escalation order and planner
    consistency were checked (a WAL), `consistency_problems` what failed
    them; `problems` lists everything that fails verification (those, then a
    torn tail when `strict`); `ok` is true when there is none.
    """

    report: LogReport | StoreReport
    strict: bool
    consistency_checked: bool
    consistency_problems: tuple[str, ...] = ()

    @property
    def problems(self) -> tuple[str, ...]:
        """Everything that fails verification, one line each."""
        torn = self.report.torn_tail
        if torn is None or not self.strict:
            return self.consistency_problems
        tail = f"torn tail at offset {torn.offset} ({torn.dropped} bytes): {torn.reason}"
        return (*self.consistency_problems, tail)

    @property
    def ok(self) -> bool:
        """Whether the log passed verification."""
        return not self.problems


def verify_report(report: LogReport | StoreReport, *, strict: bool = False) -> VerifyReport:
    """Check the log `inspect_log` (or the store `read_store`) read: escalation order and planner
    consistency for a WAL (planned from no checkpoint: the whole WAL), and,
    when `strict`, the absence of a torn tail. Never raises for what it finds.
    """
    artifact = report.artifact
    problems: list[str] = []
    if isinstance(artifact, AgreementWalArtifact):
        try:
            artifact.validate_monotonic_escalations()
            pruned = report.pruned if isinstance(report, LogReport) else None
            parts = [WalPart(index=pruned)] if pruned is not None else []
            parts.append(WalPart(entries=artifact.entries))
            plan = plan_from_parts(None, None, parts, EvidenceOutcomeCacheArtifact(), strict=False)
            if plan.anomalies:
                problems.append(
                    f"gates crossed above the proven level for: {', '.join(plan.anomalies)}"
                )
        except EscalationOrderError as exc:
            problems.append(str(exc))
    return VerifyReport(
        report=report,
        strict=strict,
        consistency_checked=isinstance(artifact, AgreementWalArtifact),
        consistency_problems=tuple(problems),
    )


def verify_log(
    path: str | os.PathLike[str], *, strict: bool = False, fs: FileSystem = DEFAULT_FS
) -> VerifyReport:
    """Verify the WAL or cache log at `path` without changing it.

    Damage raises as `inspect_log` does (`DecodeError` naming the file and
    byte offset, `PayloadKindError`, `StorageError`); what verification finds
    in a readable log is in the returned `VerifyReport`.

    >>> import tempfile, os
    >>> from durability import FileAgreementWal, VisibilityGateCrossing, AgreementLevel
    >>> path = os.path.join(tempfile.mkdtemp(), "wal.log")
    >>> _ = FileAgreementWal(path).append(VisibilityGateCrossing(operation_id="op",
    ...     downstream_coroutine_id="c", gate_level=AgreementLevel.SOFT_SAFE, tick=0))
    >>> verify_log(path).problems
    ('gates crossed above the proven level for: op',)
    """
    return verify_report(inspect_log(path, fs=fs), strict=strict)
