"""The in-memory backends pass the whole contract. They do not persist, so
they have no `reopen` and the persistence cases are skipped. The WAL's lazily
built summaries agree with a full index."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from durability import (
    AgreementWalArtifact,
    EscalationOrderError,
    InMemoryAgreementWal,
    InMemoryEvidenceOutcomeCache,
    WalEntry,
)
from durability.index import WalIndex
from durability.testing import AgreementWalContract, EvidenceOutcomeCacheContract, wal_entries


class TestInMemoryWal(AgreementWalContract):
    def make_wal(self, tmp_path: Path) -> InMemoryAgreementWal:
        return InMemoryAgreementWal()


class TestInMemoryCache(EvidenceOutcomeCacheContract):
    def make_cache(self, tmp_path: Path) -> InMemoryEvidenceOutcomeCache:
        return InMemoryEvidenceOutcomeCache()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["append", "batch", "summary"]), st.lists(wal_entries(), max_size=3)
        ),
        max_size=12,
    )
)
def test_summaries_and_escalation_checks_match_an_index_of_everything_appended(
    steps: list[tuple[str, list[WalEntry]]],
) -> None:
    # the in-memory WAL checks escalations on every append but indexes the
    # rest when a summary is asked for: neither may drift from a full index
    wal = InMemoryAgreementWal()
    accepted: list[WalEntry] = []
    for action, entries in steps:
        if action == "summary":
            index = WalIndex(accepted)
            for op in {e.operation_id for e in accepted} | {"op-0"}:
                assert wal.operation_summary(op) == index.summary(op)
            continue
        batches = [entries] if action == "batch" else [[entry] for entry in entries]
        for batch in batches:
            try:
                AgreementWalArtifact(entries=[*accepted, *batch]).validate_monotonic_escalations()
            except EscalationOrderError:
                with pytest.raises(EscalationOrderError):
                    if action == "batch":
                        wal.append_batch(batch)
                    else:
                        wal.append(batch[0])
                continue
            if action == "batch":
                assert wal.append_batch(batch) == len(accepted) + len(batch)
            else:
                assert wal.append(batch[0]) == len(accepted) + 1
            accepted.extend(batch)
    assert wal.load().entries == tuple(accepted)
    index = WalIndex(accepted)
    for op in {e.operation_id for e in accepted}:
        assert wal.operation_summary(op) == index.summary(op)
