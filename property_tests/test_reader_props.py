"""The incremental log reader reads any log, whole or damaged, the same
whatever the chunks it is fed: the records, the base and the tail (or the
error) are those of reading everything at once (`scan_log`)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from durability.artifact import AgreementWalArtifact
from durability.codec import dumps
from durability.errors import DecodeError
from durability.framing import (
    END_OF_LOG,
    NEED_MORE,
    LogReader,
    LogScan,
    Record,
    RecordType,
    base_checksum_payload,
    encode_record,
    scan_log,
)
from durability.persisted import PersistedDurabilityArtifact
from durability.testing import wal_artifacts

PROPS = settings(max_examples=300, deadline=None)


@st.composite
def logs(draw: st.DrawFn) -> bytes:
    """A toolkit-written, foreign-based or empty log of a few records."""
    base = PersistedDurabilityArtifact.agreement_wal(
        draw(st.one_of(st.just(AgreementWalArtifact()), wal_artifacts()))
    ).to_cbor()
    style = draw(st.sampled_from(["toolkit", "foreign", "empty"]))
    if style == "empty":
        return b""
    data, seq = base, 0
    if style == "toolkit":
        data += encode_record(RecordType.BASE_CHECKSUM, 0, base_checksum_payload(base))
        seq = 1
    for payload in draw(st.lists(st.binary(max_size=60), max_size=5)):
        data += encode_record(RecordType.WAL_ENTRIES, seq, dumps([{"p": payload}]))
        seq += 1
    return data


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A log after a few crashes, flipped bits, zero-filled blocks and garbage."""
    data = bytearray(draw(logs()))
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from(["flip", "zero tail", "zero hole", "cut", "append"]))
        at = draw(st.integers(0, len(data)))
        if what == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif what == "zero tail":
            data[at:] = bytes(len(data) - at)
        elif what == "zero hole":
            end = min(len(data), at + draw(st.integers(1, 40)))
            data[at:end] = bytes(end - at)
        elif what == "cut":
            del data[at:]
        else:
            data += draw(st.one_of(st.binary(min_size=1, max_size=40), st.just(bytes(50))))
    return bytes(data)


def read(data: bytes, cuts: list[int]) -> object:
    """A `LogReader` fed `data` split at `cuts`, as a `LogScan` (or the error)."""
    reader = LogReader("wal.log")
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    records: list[Record] = []
    try:
        while (found := reader.next_record()) is not END_OF_LOG:
            if found is NEED_MORE:
                if chunks:
                    reader.feed(chunks.pop(0))
                else:
                    reader.finish()
            else:
                assert isinstance(found, Record)
                records.append(found)
    except DecodeError as exc:
        return (type(exc), str(exc))
    return LogScan(
        base=reader.base,
        base_end=reader.base_end,
        base_verified=reader.base_verified,
        records=tuple(records),
        end=reader.end,
        next_seq=reader.next_seq,
        tail=reader.tail,
    )


def at_once(data: bytes) -> object:
    try:
        return scan_log(data, name="wal.log")
    except DecodeError as exc:
        return (type(exc), str(exc))


@PROPS
@given(st.data())
def test_any_chunking_reads_as_reading_at_once(data: st.DataObject) -> None:
    log = data.draw(damaged())
    cuts = sorted(data.draw(st.lists(st.integers(0, len(log)), max_size=12)))
    assert repr(read(log, cuts)) == repr(at_once(log))  # repr: a base may hold NaN


@PROPS
@given(logs(), st.integers(1, 64))
def test_a_clean_log_read_in_fixed_chunks_has_no_tail(log: bytes, size: int) -> None:
    scan = read(log, list(range(size, len(log), size)))
    assert isinstance(scan, LogScan) and scan.tail is None and scan.end == len(log)
    assert scan == scan_log(log, name="wal.log")
