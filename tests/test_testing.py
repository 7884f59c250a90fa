"""`durability.testing` itself: what it exports and needs, and that the
contract suite fails backends that break the rules and skips, by name, the
cases a backend cannot take."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import durability.testing
from durability import (
    AgreementWalArtifact,
    EvidenceOutcomeCacheArtifact,
    EvidenceOutcomeCacheEntry,
    WalEntry,
)
from durability.testing import (
    AgreementWalContract,
    EvidenceOutcomeCacheContract,
    contract,
    crashtest,
    faults,
    machine,
    strategies,
)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_exports_are_the_submodules_exports() -> None:
    submodules = [
        *contract.__all__,
        *machine.__all__,
        *strategies.__all__,
        *crashtest.__all__,
        *faults.__all__,
    ]
    assert sorted(durability.testing.__all__) == sorted(submodules)
    for name in durability.testing.__all__:
        assert getattr(durability.testing, name) is not None
    assert set(durability.testing.__all__) <= set(dir(durability.testing))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        durability.testing.nope  # noqa: B018


def test_the_package_root_does_not_import_testing() -> None:
    result = run_python(
        """
        import sys, durability
        assert not [m for m in sys.modules if m.startswith("durability.testing")]
        assert "hypothesis" not in sys.modules and "pytest" not in sys.modules
        """
    )
    assert result.returncode == 0, result.stderr


def test_the_contract_suite_needs_pytest_not_hypothesis() -> None:
    result = run_python(
        """
        import sys
        sys.modules["hypothesis"] = None  # as if not installed
        from durability.testing import AgreementWalContract, EvidenceOutcomeCacheContract
        from durability.testing.contract import AgreementWalContract as same
        assert same is AgreementWalContract
        try:
            from durability.testing import valid_wal_entries
        except ImportError:
            pass
        else:
            raise SystemExit("strategies imported without hypothesis")
        """
    )
    assert result.returncode == 0, result.stderr


def test_the_crash_tools_need_neither_pytest_nor_hypothesis() -> None:
    result = run_python(
        """
        import sys
        sys.modules["hypothesis"] = None  # as if not installed
        sys.modules["pytest"] = None
        from durability.testing import FaultyFileSystem, crash_test
        report = crash_test(lambda directory, fs: None, lambda directory: None)
        assert report.passed and report.kills == 0, report
        """
    )
    assert result.returncode == 0, result.stderr


# -- backends that break the rules fail; missing methods skip by name ----------------


class ListWal:
    def __init__(self, entries: list[WalEntry] | None = None, validate: bool = True) -> None:
        self.entries = [] if entries is None else entries
        self.validate = validate

    def append(self, entry: WalEntry) -> None:
        if self.validate:
            AgreementWalArtifact(entries=[*self.entries, entry]).validate_monotonic_escalations()
        self.entries.append(entry)

    def read_since(self, tick: int) -> list[WalEntry]:
        return [e for e in self.entries if e.tick > tick]

    def load(self) -> AgreementWalArtifact:
        return AgreementWalArtifact(entries=self.entries)


class DictCache:
    def __init__(self) -> None:
        self.entries: dict[str, EvidenceOutcomeCacheEntry] = {}

    def get(self, evidence_id: str) -> EvidenceOutcomeCacheEntry | None:
        return self.entries.get(evidence_id)

    def put(self, entry: EvidenceOutcomeCacheEntry) -> None:
        self.entries[entry.evidence_id] = entry  # keeps the old position: wrong

    def load(self) -> EvidenceOutcomeCacheArtifact:
        return EvidenceOutcomeCacheArtifact(entries=self.entries.values())


def wal_suite(**methods: Any) -> AgreementWalContract:
    return type("TestSome", (AgreementWalContract,), methods)()  # type: ignore[no-any-return]


def test_a_wal_that_does_not_validate_fails(tmp_path: Path) -> None:
    suite = wal_suite(make_wal=lambda self, path: ListWal(validate=False))
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        suite.test_regression_is_rejected_and_wal_unchanged(tmp_path)


def test_a_second_handle_that_misses_appends_fails(tmp_path: Path) -> None:
    suite = wal_suite(
        make_wal=lambda self, path: ListWal(),
        reopen=lambda self, wal, path: ListWal(list(wal.entries)),  # a copy, not the storage
    )
    suite.test_append_then_load_keeps_order(tmp_path / "a")  # reopening after is fine
    with pytest.raises(AssertionError):
        suite.test_second_handle_sees_first_handles_appends(tmp_path / "b")


def test_a_cache_whose_put_keeps_the_old_position_fails(tmp_path: Path) -> None:
    suite = type(
        "TestSome", (EvidenceOutcomeCacheContract,), {"make_cache": lambda s, p: DictCache()}
    )()
    with pytest.raises(AssertionError):
        suite.test_put_replaces_same_id(tmp_path)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "test_batch_appends_in_order",
            "ListWal has no append_batch() (optional; this case needs it)",
        ),
        (
            "test_second_handle_sees_first_handles_appends",
            "reopen() not implemented by TestSome: persistence cases need a second handle",
        ),
        (
            "test_processes_appending_through_their_own_handles_lose_nothing",
            "reopen() not implemented by TestSome",
        ),
    ],
)
def test_cases_a_three_method_wal_cannot_take_skip_by_name(
    tmp_path: Path, case: str, message: str
) -> None:
    suite = wal_suite(make_wal=lambda self, path: ListWal())
    suite._case = case
    with pytest.raises(pytest.skip.Exception, match="^" + re.escape(f"{case}: {message}")):
        getattr(suite, case)(tmp_path)


def test_a_batching_wal_without_summary_skips_the_summary_cases(tmp_path: Path) -> None:
    class BatchWal(ListWal):
        def append_batch(self, entries: list[WalEntry]) -> None:
            AgreementWalArtifact(entries=[*self.entries, *entries]).validate_monotonic_escalations()
            self.entries.extend(entries)

    suite = wal_suite(make_wal=lambda self, path: BatchWal())
    suite.test_batch_is_all_or_nothing(tmp_path / "a")
    with pytest.raises(pytest.skip.Exception, match=r"has no operation_summary\(\)"):
        suite.test_operation_summary_tracks_levels_and_identities(tmp_path / "b")


def test_a_cache_without_put_if_absent_skips_by_name(tmp_path: Path) -> None:
    suite = type(
        "TestSome", (EvidenceOutcomeCacheContract,), {"make_cache": lambda s, p: DictCache()}
    )()
    suite._case = "test_first_binding_wins"
    with pytest.raises(
        pytest.skip.Exception, match=r"^test_first_binding_wins: DictCache has no put_if_absent\(\)"
    ):
        suite.test_first_binding_wins(tmp_path)


def test_a_suite_without_make_wal_says_so(tmp_path: Path) -> None:
    with pytest.raises(NotImplementedError, match=r"TestSome must implement make_wal\(tmp_path\)"):
        wal_suite().test_new_wal_is_empty(tmp_path)
