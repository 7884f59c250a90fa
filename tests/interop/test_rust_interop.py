"""Files move to the Rust original and back, checked with real serde.

The checker (tests/interop/rust-checker, the Rust original's v1 layout under
serde_cbor) decodes a file and re-encodes it; it passes only when the bytes are
identical. `.ci/run` builds it and sets DURABILITY_RUST_CHECKER; without it
these tests are skipped locally with a loud warning, and fail under CI.
"""

from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durability import (
    AgreementWalArtifact,
    EffectOutcome,
    EvidenceOutcomeCacheArtifact,
    EvidenceOutcomeCacheEntry,
    PersistedDurabilityArtifact,
)
from durability.testing import effect_failures, valid_wal_entries

VECTORS = Path(__file__).resolve().parents[2] / "specs" / "vectors"


def checker() -> str:
    path = os.environ.get("DURABILITY_RUST_CHECKER", "")
    if path and os.access(path, os.X_OK):
        return path
    message = (
        "RUST INTEROP CHECK NOT RUN: set DURABILITY_RUST_CHECKER to the binary printed by "
        "tests/interop/rust-checker/build.sh"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    warnings.warn(message, stacklevel=2)
    pytest.skip(message)


def rust_check(path: Path) -> None:
    result = subprocess.run(
        [checker(), "check", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["wal", "cache", "meta"])
def test_golden_vectors_pass_the_rust_checker(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.cbor"
    path.write_bytes(bytes.fromhex((VECTORS / f"{name}_artifact_v1.hex").read_text().strip()))
    rust_check(path)


# Rust re-encodes floats and multi-key maps in its own way (API.md §2), so the
# generated responses avoid them.
_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.text(max_size=8)
    | st.binary(max_size=8)
)
_response = st.recursive(
    _scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=1)
    ),
    max_leaves=6,
)
_outcome = st.one_of(
    _response.map(EffectOutcome.success),
    st.just(EffectOutcome.blocked()),
    effect_failures().map(EffectOutcome.failure),
)
_entry = st.builds(
    EvidenceOutcomeCacheEntry,
    evidence_id=st.text(max_size=6),
    interface_name=st.text(max_size=6),
    operation_name=st.text(max_size=6),
    outcome=_outcome,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entries=valid_wal_entries())
def test_generated_wals_pass_the_rust_checker(entries: list, tmp_path: Path) -> None:  # type: ignore[type-arg]
    path = tmp_path / "wal.cbor"
    PersistedDurabilityArtifact.agreement_wal(AgreementWalArtifact(entries=entries)).write_to_path(
        path
    )
    rust_check(path)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entries=st.lists(_entry, max_size=4))
def test_generated_caches_pass_the_rust_checker(
    entries: list[EvidenceOutcomeCacheEntry], tmp_path: Path
) -> None:
    path = tmp_path / "cache.cbor"
    PersistedDurabilityArtifact.evidence_outcome_cache(
        EvidenceOutcomeCacheArtifact(entries=entries)
    ).write_to_path(path)
    rust_check(path)


def test_durability_export_output_passes_the_rust_checker(tmp_path: Path) -> None:
    from durability import FileAgreementWal, FileEvidenceOutcomeCache
    from durability.cli import main
    from tests.helpers import FAILED, L, binding, esc, ev, gate

    wal_log, cache_log = tmp_path / "wal.log", tmp_path / "evidence.log"
    with FileAgreementWal(wal_log) as wal:
        for n in range(20):
            op = f"op#{n}"
            wal.append_batch(
                [
                    ev(op, f"{op}/c", L.SOFT_SAFE, n + 1),
                    esc(op, L.NONE, L.SOFT_SAFE, n + 1),
                    gate(op, L.SOFT_SAFE, n + 1),
                ]
            )
    with FileEvidenceOutcomeCache(cache_log) as cache:
        cache.put(binding("a", EffectOutcome.success([1, "two", b"3"])))
        cache.put(binding("b", FAILED))
        cache.put(binding("a", EffectOutcome.success(None)))  # rebinding: export keeps the latest
    for log in (wal_log, cache_log):
        out = tmp_path / f"{log.stem}.cbor"
        assert main(["export", str(log), "-o", str(out), "--quiet"]) == 0
        rust_check(out)


def test_a_segmented_and_pruned_wal_exports_one_artifact_rust_reads(tmp_path: Path) -> None:
    from durability import FileAgreementWal, PersistedDurabilityArtifact
    from durability.cli import main
    from tests.helpers import L, esc, ev, gate

    wal_log = tmp_path / "wal.log"
    with FileAgreementWal(wal_log, segment_bytes=600) as wal:
        for n in range(20):
            op = f"op#{n}"
            wal.append(ev(op, f"{op}/c", L.SOFT_SAFE, n + 1))
            wal.append_batch([esc(op, L.NONE, L.SOFT_SAFE, n + 1), gate(op, L.SOFT_SAFE, n + 1)])
        assert len(wal.layout.sealed) > 5
        assert wal.prune_through(6) > 0
        remaining = wal.load().entries
    out = tmp_path / "wal.cbor"
    assert main(["export", str(wal_log), "-o", str(out), "--quiet"]) == 0
    rust_check(out)
    exported = PersistedDurabilityArtifact.from_cbor(out.read_bytes()).into_agreement_wal()
    assert exported.entries == remaining


def test_a_rust_written_file_opens_as_a_log_appends_and_exports_for_rust(tmp_path: Path) -> None:
    from durability import FileAgreementWal
    from durability.cli import main
    from tests.helpers import L, esc

    path = tmp_path / "rust-wal.cbor"
    path.write_bytes(bytes.fromhex((VECTORS / "wal_artifact_v1.hex").read_text().strip()))
    rust_check(path)
    with FileAgreementWal(path) as wal:
        assert not wal.base_verified
        wal.append(esc("op#2", L.NONE, L.PROVISIONAL, 9))
        assert len(wal.load().entries) == 5
    out = tmp_path / "back.cbor"
    assert main(["export", str(path), "-o", str(out), "--quiet"]) == 0
    rust_check(out)
