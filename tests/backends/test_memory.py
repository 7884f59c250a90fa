"""The in-memory backends pass the whole contract. They do not persist, so
they have no `reopen` and the persistence cases are skipped."""

from __future__ import annotations

from pathlib import Path

from durability import InMemoryAgreementWal, InMemoryEvidenceOutcomeCache
from durability.testing import AgreementWalContract, EvidenceOutcomeCacheContract


class TestInMemoryWal(AgreementWalContract):
    def make_wal(self, tmp_path: Path) -> InMemoryAgreementWal:
        return InMemoryAgreementWal()


class TestInMemoryCache(EvidenceOutcomeCacheContract):
    def make_cache(self, tmp_path: Path) -> InMemoryEvidenceOutcomeCache:
        return InMemoryEvidenceOutcomeCache()
