"""Where intents live (API.md §11, specs/effects.md): records of their own
types in a cache log, never part of a base, ``load()`` or an export; a
reader meeting a record type it does not know fails closed in every recovery
mode; logs and artifacts written before intents open with none; and the
planner and the state directory report the effects in doubt."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from durability import (
    DecodeError,
    DurableRecoveryPlan,
    EffectOutcome,
    EffectRequest,
    EvidenceOutcomeCacheArtifact,
    FileEvidenceOutcomeCache,
    PersistedDurabilityArtifact,
    RecoveryMode,
    StateDirectory,
    export_log,
    inspect_log,
)
from durability.backends.inspection import export_artifact
from durability.codec import dumps, to_plain
from durability.framing import RecordType, base_checksum_payload, encode_record
from durability.planner import DurableRecoveryDecision
from durability.testing._builders import intent
from tests.helpers import L, binding, esc, ev

ROOT = Path(__file__).resolve().parent.parent


def cache_log_of_an_earlier_version(path: Path) -> None:
    """Bytes as the toolkit wrote them before intents: base, checksum, bindings."""
    base = PersistedDurabilityArtifact.evidence_outcome_cache(
        EvidenceOutcomeCacheArtifact()
    ).to_cbor()
    bindings = dumps([to_plain(binding("e1"))])
    path.write_bytes(
        base
        + encode_record(RecordType.BASE_CHECKSUM, 0, base_checksum_payload(base))
        + encode_record(RecordType.CACHE_BINDINGS, 1, bindings)
    )


def crashed(cache: FileEvidenceOutcomeCache, *eids: str) -> None:
    """Leave each of `eids` in doubt, as a crash mid-effect would."""
    for eid in eids:
        assert cache.put_intent(intent(eid)) == intent(eid)


# -- the record types ----------------------------------------------------------------


def test_intents_and_withdrawals_have_record_types_of_their_own(tmp_path: Path) -> None:
    assert (RecordType.INTENTS, RecordType.INTENT_WITHDRAWALS) == (4, 5)
    path = tmp_path / "evidence.log"
    cache = FileEvidenceOutcomeCache(path)
    crashed(cache, "a", "b")
    cache.withdraw_intent("b", 1)
    cache.put(binding("a"))
    kinds = [record.type for record in inspect_log(path).records]
    assert kinds == ["BASE_CHECKSUM", "INTENTS", "INTENTS", "INTENT_WITHDRAWALS", "CACHE_BINDINGS"]


def unknown_record(path: Path, record_type: int) -> int:
    """Append a well-formed record of `record_type` to the log; its offset."""
    size = path.stat().st_size
    seq = len(inspect_log(path).records)
    record = bytearray(encode_record(RecordType.INTENTS, seq, dumps([])))
    record[4] = record_type
    import struct
    import zlib

    record[0:4] = struct.pack("<I", zlib.crc32(bytes(record[4:24])))
    with path.open("ab") as out:
        out.write(record)
    return size


@pytest.mark.parametrize("mode", list(RecoveryMode))
def test_a_record_type_from_a_newer_version_fails_closed_in_every_mode(
    tmp_path: Path, mode: RecoveryMode
) -> None:
    path = tmp_path / "evidence.log"
    crashed(FileEvidenceOutcomeCache(path), "a")
    newer = max(RecordType) + 1  # a type no version of this reader knows
    offset = unknown_record(path, newer)
    before = path.read_bytes()
    for read_only in (False, True):
        with pytest.raises(DecodeError) as caught:
            FileEvidenceOutcomeCache(path, recovery=mode, read_only=read_only).in_doubt()
        error = caught.value
        assert error.offset == offset and error.path == str(path)
        assert f"unknown record type {newer} (written by a newer version?)" in str(error)
    assert path.read_bytes() == before  # nothing cut, nothing kept aside
    assert [p.name for p in tmp_path.iterdir()] == ["evidence.log"]
    with pytest.raises(DecodeError, match="written by a newer version"):
        inspect_log(path)


def test_intent_records_in_a_wal_log_are_damage(tmp_path: Path) -> None:
    from durability import FileAgreementWal

    path = tmp_path / "wal.log"
    FileAgreementWal(path).append(esc("op", L.NONE, L.SOFT_SAFE, 1))
    with path.open("ab") as out:
        out.write(encode_record(RecordType.INTENTS, 2, dumps([])))
    with pytest.raises(DecodeError, match="a INTENTS record in a WAL_ENTRIES log"):
        FileAgreementWal(path).load()


def test_an_intent_that_skips_an_attempt_is_damage(tmp_path: Path) -> None:
    from durability.intents import intent_to_plain

    path = tmp_path / "evidence.log"
    crashed(FileEvidenceOutcomeCache(path), "a")
    offset = path.stat().st_size
    with path.open("ab") as out:
        out.write(encode_record(RecordType.INTENTS, 2, dumps([intent_to_plain(intent("a", 3))])))
    with pytest.raises(DecodeError, match="attempt 3 of `a` does not follow attempt 1") as caught:
        FileEvidenceOutcomeCache(path)
    assert caught.value.offset == offset


def test_a_torn_intent_record_is_cut_like_any_record(tmp_path: Path) -> None:
    path = tmp_path / "evidence.log"
    cache = FileEvidenceOutcomeCache(path)
    crashed(cache, "a", "b")
    data = path.read_bytes()
    path.write_bytes(data[:-5])  # the crash cut the last intent short: "b" never ran
    with pytest.warns(Warning, match="torn tail"):
        reopened = FileEvidenceOutcomeCache(path)
    assert [i.evidence_id for i in reopened.in_doubt()] == ["a"]


# -- written before intents ------------------------------------------------------------


def test_a_log_written_before_intents_opens_with_none(tmp_path: Path) -> None:
    path = tmp_path / "evidence.log"
    cache_log_of_an_earlier_version(path)
    cache = FileEvidenceOutcomeCache(path)
    assert cache.in_doubt() == [] and cache.get_intent("e1") is None
    assert cache.get("e1") == binding("e1")
    crashed(cache, "e2")  # and takes intents from then on
    assert [i.evidence_id for i in FileEvidenceOutcomeCache(path).in_doubt()] == ["e2"]


def test_a_v1_artifact_file_opens_with_no_intents(tmp_path: Path) -> None:
    path = tmp_path / "evidence.cbor"
    path.write_bytes(bytes.fromhex((ROOT / "specs/vectors/cache_artifact_v1.hex").read_text()))
    cache = FileEvidenceOutcomeCache(path)
    assert cache.in_doubt() == [] and len(cache.load().entries) == 2
    assert cache.get_intent("evidence#2") is None


# -- never part of load or an export ---------------------------------------------------


def test_export_leaves_intents_out_and_counts_those_in_doubt(tmp_path: Path) -> None:
    path = tmp_path / "evidence.log"
    cache = FileEvidenceOutcomeCache(path)
    cache.put(binding("bound"))
    crashed(cache, "x", "y", "z")
    cache.put(binding("x"))  # settled
    cache.withdraw_intent("y", 1)  # did not happen
    report = inspect_log(path)
    assert report.in_doubt_intents == 1 and report.intents == 3
    assert [i.evidence_id for i in report.in_doubt] == ["z"]
    artifact, data = export_artifact(report)
    assert artifact.into_evidence_outcome_cache() == cache.load()
    assert [e.evidence_id for e in cache.load().entries] == ["bound", "x"]
    assert export_log(path).to_cbor() == data
    assert b"request_digest" not in data


# -- the planner and the state directory -------------------------------------------------


def test_decisions_list_their_operations_effects_in_doubt_in_order() -> None:
    from durability import AgreementWalArtifact

    wal = AgreementWalArtifact(
        entries=[ev("op-a", "a/cert", L.SOFT_SAFE, 1), ev("op-b", "b/cert", L.SOFT_SAFE, 2)]
    )
    doubts = [intent("a/2", op="op-a"), intent("b/1", op="op-b"), intent("a/1", op="op-a")]
    doubts.append(intent("lone", op=None))
    plan = DurableRecoveryPlan.from_checkpoint(
        None, None, wal, EvidenceOutcomeCacheArtifact(), in_doubt=doubts
    )
    by_op = {d.operation_id: d.in_doubt_evidence_ids for d in plan.decisions}
    assert by_op == {"op-a": ("a/2", "a/1"), "op-b": ("b/1",)}
    assert plan.in_doubt_evidence_ids == ("a/2", "b/1", "a/1", "lone")
    plain = DurableRecoveryPlan.from_checkpoint(None, None, wal, EvidenceOutcomeCacheArtifact())
    assert plain.in_doubt_evidence_ids == ()
    assert all(d.in_doubt_evidence_ids == () for d in plain.decisions)
    decision = DurableRecoveryDecision(
        operation_id="op", level=L.NONE, action=plain.decisions[0].action
    )
    assert decision.in_doubt_evidence_ids == ()


def test_the_state_directory_plans_with_its_caches_intents(tmp_path: Path) -> None:
    class Crashing:
        def handle_effect(self, request: EffectRequest) -> EffectOutcome:
            raise OSError("killed mid-effect")

    with StateDirectory(tmp_path / "state") as store:
        store.wal.append(ev("op-1", "op-1/cert", L.SOFT_SAFE, 1))
        handler = store.wrap(Crashing(), lambda r: r.body)
        request = EffectRequest(
            interface_name="Storage",
            operation_name="write",
            tick=2,
            operation_id="op-1",
            body="op-1/cert",
        )
        with pytest.raises(OSError):
            handler.handle_effect(request)
    os.chmod(tmp_path / "state", 0o500)
    try:
        with StateDirectory(tmp_path / "state", read_only=True) as store:
            plan = store.plan_recovery()
    finally:
        os.chmod(tmp_path / "state", 0o700)
    assert plan.in_doubt_evidence_ids == ("op-1/cert",)
    assert plan.decisions[0].in_doubt_evidence_ids == ("op-1/cert",)
