"""The in-memory backends pass the whole contract."""

from __future__ import annotations

from pathlib import Path

from durability import InMemoryAgreementWal, InMemoryEvidenceOutcomeCache
from tests.contract.cache import SingleBindingCacheContract
from tests.contract.wal import BatchWalContract


class TestInMemoryWal(BatchWalContract):
    def make_wal(self, tmp_path: Path) -> InMemoryAgreementWal:
        return InMemoryAgreementWal()


class TestInMemoryCache(SingleBindingCacheContract):
    def make_cache(self, tmp_path: Path) -> InMemoryEvidenceOutcomeCache:
        return InMemoryEvidenceOutcomeCache()
