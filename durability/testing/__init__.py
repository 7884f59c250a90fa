"""What users import to test their own code and backends.

- Hypothesis strategies for every value (`durability.testing.strategies`):
  `valid_wal_entries()`, `escalation_paths()`, `wal_artifacts()`, ... and
  `assert_escalations_monotonic`. They need `hypothesis`
  (``pip install durability[testing]``).
- The backend contract suite (`durability.testing.contract`, API.md §12):
  subclass `AgreementWalContract` / `EvidenceOutcomeCacheContract` in a
  ``Test...`` class to check your own backend. It needs only `pytest`.
- `wal_state_machine(make_wal, reopen, ...)` (`durability.testing.machine`): a
  hypothesis state machine driving your WAL beside the in-memory oracle.
- Crash tests of your own code (`durability.testing.crashtest`):
  ``crash_test(workload, check)`` runs ``workload(directory, fs)`` in a child
  process, kills it at every write and fsync in turn (optionally cutting the
  power too) and hands each directory it left to ``check(directory)``;
  the `CrashReport` lists the crash points whose check failed.
- Fault injection (`durability.testing.faults`): `FaultyFileSystem` (pass it
  as ``fs=`` wherever a file WAL or cache is opened) injects a `Fault` (a
  failed call such as an fsync, a short write, a bit flip) at the call you
  choose and damages files at rest (`flip_bit`, `truncate_file`), seeded;
  `PowerLossFileSystem` drops, tears or zeroes what was never fsynced
  (`Unsynced`).

Names are imported on first use, so each needs only its own module's
dependencies: ``from durability.testing import AgreementWalContract`` works
without `hypothesis`, and any strategy without it raises `ImportError`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .contract import AgreementWalContract, EvidenceOutcomeCacheContract
    from .crashtest import CrashPoint, CrashReport, CrashRun, crash_test
    from .faults import (
        Ack,
        Call,
        CrashTrial,
        Fault,
        FaultyFileSystem,
        PowerLossFileSystem,
        Unsynced,
        run_and_kill,
    )
    from .machine import wal_state_machine
    from .strategies import (
        agreement_evidence,
        agreement_levels,
        agreement_states,
        assert_escalations_monotonic,
        cache_artifacts,
        cache_entries,
        effect_failures,
        effect_outcomes,
        effect_requests,
        escalation_paths,
        escalations,
        evidence_produced,
        finalizations,
        gate_crossings,
        operation_ids,
        persisted_artifacts,
        plain_cbor,
        recovery_metadata,
        ticks,
        valid_wal_entries,
        wal_artifacts,
        wal_entries,
        wal_sync_requests,
    )

__all__ = [
    "AgreementWalContract",
    "EvidenceOutcomeCacheContract",
    "wal_state_machine",
    "CrashPoint",
    "CrashReport",
    "CrashRun",
    "crash_test",
    "Ack",
    "Call",
    "CrashTrial",
    "Fault",
    "FaultyFileSystem",
    "PowerLossFileSystem",
    "Unsynced",
    "run_and_kill",
    "agreement_evidence",
    "agreement_levels",
    "agreement_states",
    "assert_escalations_monotonic",
    "cache_artifacts",
    "cache_entries",
    "effect_failures",
    "effect_outcomes",
    "effect_requests",
    "escalation_paths",
    "escalations",
    "evidence_produced",
    "finalizations",
    "gate_crossings",
    "operation_ids",
    "persisted_artifacts",
    "plain_cbor",
    "recovery_metadata",
    "ticks",
    "valid_wal_entries",
    "wal_artifacts",
    "wal_entries",
    "wal_sync_requests",
]

# Where each name lives; every other name in __all__ is a strategy.
_HOME = {
    "AgreementWalContract": "contract",
    "EvidenceOutcomeCacheContract": "contract",
    "wal_state_machine": "machine",
    "CrashPoint": "crashtest",
    "CrashReport": "crashtest",
    "CrashRun": "crashtest",
    "crash_test": "crashtest",
    "Ack": "faults",
    "Call": "faults",
    "CrashTrial": "faults",
    "run_and_kill": "faults",
    "Fault": "faults",
    "FaultyFileSystem": "faults",
    "PowerLossFileSystem": "faults",
    "Unsynced": "faults",
}


def _rewrite_asserts_under_pytest() -> None:
    """Have pytest rewrite the suite's asserts, as it does a test module's, so
    a failed case shows the values compared (the submodules are not imported
    yet; outside pytest this does nothing)."""
    try:
        import pytest
    except ImportError:  # the strategies do not need pytest
        return
    suite = ("_case", "_wal_contract", "_intent_contract", "_cache_contract", "contract", "machine")
    pytest.register_assert_rewrite(*(f"{__name__}.{module}" for module in suite))


_rewrite_asserts_under_pytest()


def __getattr__(name: str) -> Any:
    """Import `name` from the submodule that defines it, on first use."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    home = _HOME.get(name, "strategies")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
