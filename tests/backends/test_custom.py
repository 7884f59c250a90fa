"""A user's own backend with only the protocol's required methods passes the
contract (the cases needing an optional method, or `reopen`, are skipped by
name), and is accepted where the protocols are expected."""

from __future__ import annotations

from pathlib import Path

from durability import (
    AgreementWal,
    AgreementWalArtifact,
    EvidenceOutcomeCache,
    EvidenceOutcomeCacheArtifact,
    EvidenceOutcomeCacheEntry,
    WalEntry,
)
from durability.testing import AgreementWalContract, EvidenceOutcomeCacheContract


class ListWal:
    """What a user might write: a list, validated before it changes."""

    def __init__(self) -> None:
        self.entries: list[WalEntry] = []

    def append(self, entry: WalEntry) -> None:
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
        self.entries.pop(entry.evidence_id, None)
        self.entries[entry.evidence_id] = entry

    def load(self) -> EvidenceOutcomeCacheArtifact:
        return EvidenceOutcomeCacheArtifact(entries=self.entries.values())


def test_user_classes_satisfy_the_protocols() -> None:
    assert isinstance(ListWal(), AgreementWal)
    assert isinstance(DictCache(), EvidenceOutcomeCache)
    assert not isinstance(object(), AgreementWal)


class TestCustomWal(AgreementWalContract):
    def make_wal(self, tmp_path: Path) -> ListWal:
        return ListWal()


class TestCustomCache(EvidenceOutcomeCacheContract):
    def make_cache(self, tmp_path: Path) -> DictCache:
        return DictCache()
