"""The log framing (specs/log_format.md), byte by byte: pure, no files."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from durability import (
    AgreementWalArtifact,
    ArtifactTooLargeError,
    DecodeError,
    EncodeError,
    PersistedDurabilityArtifact,
    framing,
)
from durability.codec import decode_item, dumps
from durability.framing import (
    END_OF_LOG,
    HEADER_SIZE,
    NEED_MORE,
    LogReader,
    ReaderState,
    RecordType,
    TailKind,
    base_checksum_payload,
    encode_record,
    scan_log,
)
from durability.persisted import payload_from_envelope
from tests.helpers import L, esc, gate

NAME = "wal.log"
BASE = PersistedDurabilityArtifact.agreement_wal(AgreementWalArtifact()).to_cbor()
CHECKSUM = encode_record(RecordType.BASE_CHECKSUM, 0, base_checksum_payload(BASE))
P1 = dumps([{"kind": "visibility_gate_crossing", "n": 1}])
P2 = dumps([{"kind": "visibility_gate_crossing", "n": 2}, {"x": 3}])


def toolkit_log(*payloads: bytes) -> bytes:
    """Base + checksum record + one WAL_ENTRIES record per payload."""
    out = BASE + CHECKSUM
    for seq, payload in enumerate(payloads, start=1):
        out += encode_record(RecordType.WAL_ENTRIES, seq, payload)
    return out


def flip_byte(data: bytes, offset: int, mask: int = 0xFF) -> bytes:
    """`data` with the bits `mask` of the byte at `offset` inverted (LevelDB's
    IncrementByte)."""
    return data[:offset] + bytes([data[offset] ^ mask]) + data[offset + 1 :]


def fix_header_crc(data: bytes, offset: int) -> bytes:
    """Recompute the header checksum of the record at `offset` (LevelDB's FixChecksum)."""
    crc = zlib.crc32(data[offset + 4 : offset + HEADER_SIZE])
    return data[:offset] + struct.pack("<I", crc) + data[offset + 4 :]


def test_header_layout_is_24_bytes_little_endian() -> None:
    record = encode_record(RecordType.WAL_ENTRIES, 7, P1)
    assert HEADER_SIZE == 24
    crc, rtype, reserved, seq, length, payload_crc = struct.unpack("<IB3sQII", record[:24])
    assert crc == zlib.crc32(record[4:24])
    assert (rtype, reserved, seq, length) == (2, b"\0\0\0", 7, len(P1))
    assert payload_crc == zlib.crc32(P1)
    assert record[24:] == P1


def test_records_scan_with_offsets_and_sequence() -> None:
    data = toolkit_log(P1, P2)
    scan = scan_log(data, name=NAME)
    assert scan.base_end == len(BASE) and scan.base_verified
    assert [(r.type, r.seq) for r in scan.records] == [
        (RecordType.BASE_CHECKSUM, 0),
        (RecordType.WAL_ENTRIES, 1),
        (RecordType.WAL_ENTRIES, 2),
    ]
    assert scan.records[1].offset == len(BASE) + len(CHECKSUM)
    assert scan.records[2].payload == P2
    assert scan.end == len(data) and scan.next_seq == 3 and scan.tail is None


def test_zero_length_data_is_an_empty_log() -> None:
    scan = scan_log(b"", name=NAME)
    assert scan.base is None and scan.records == () and scan.tail is None and scan.end == 0


def test_foreign_base_is_valid_but_unverified() -> None:
    base = PersistedDurabilityArtifact.agreement_wal(
        AgreementWalArtifact(entries=[esc("op", L.NONE, L.PROVISIONAL, 1)])
    ).to_cbor()
    scan = scan_log(base, name=NAME)
    assert scan.base["schema_version"] and not scan.base_verified and scan.tail is None
    appended = base + encode_record(RecordType.WAL_ENTRIES, 0, P1)
    assert [r.seq for r in scan_log(appended, name=NAME).records] == [0]


def test_damaged_toolkit_base_fails_closed() -> None:
    data = toolkit_log(P1)
    inside_text = BASE.index(b"telltale")  # still valid CBOR, wrong bytes
    with pytest.raises(
        DecodeError, match=r"base fails its checksum: damaged base at byte offset 0"
    ) as info:
        scan_log(flip_byte(data, inside_text, 0x01), name=NAME)
    assert str(info.value).startswith("decode persisted durability artifact wal.log")


def test_undecodable_base_fails_closed_naming_offset() -> None:
    with pytest.raises(DecodeError, match=r"wal\.log: base artifact is not valid CBOR"):
        scan_log(b"\xa2\x01", name=NAME)


@pytest.mark.parametrize("keep", range(1, HEADER_SIZE))
def test_torn_header_is_torn(keep: int) -> None:
    data = toolkit_log(P1)
    cut = toolkit_log() + encode_record(RecordType.WAL_ENTRIES, 1, P1)[:keep]
    scan = scan_log(cut, name=NAME)
    assert scan.tail is not None and scan.tail.kind is TailKind.TORN
    assert scan.tail.offset == len(toolkit_log()) and scan.tail.dropped == keep
    assert len(data) > len(cut)


def test_payload_past_end_of_file_is_torn() -> None:
    data = toolkit_log(P1, P2)[:-1]
    scan = scan_log(data, name=NAME)
    assert scan.tail is not None and scan.tail.kind is TailKind.TORN
    assert "runs past end of file" in scan.tail.reason
    assert [r.seq for r in scan.records] == [0, 1]


def test_last_record_with_bad_payload_crc_is_torn() -> None:
    data = toolkit_log(P1, P2)
    scan = scan_log(flip_byte(data, len(data) - 1), name=NAME)
    assert scan.tail is not None and scan.tail.kind is TailKind.TORN
    assert scan.tail.offset == len(toolkit_log(P1))


def test_zero_run_tail_is_torn() -> None:
    data = toolkit_log(P1)
    for zeros in (1, HEADER_SIZE - 1, HEADER_SIZE, 4096):
        scan = scan_log(data + bytes(zeros), name=NAME)
        assert scan.tail is not None and scan.tail.kind is TailKind.TORN
        assert (scan.tail.offset, scan.tail.dropped) == (len(data), zeros)
    whole = scan_log(bytes(100), name=NAME)
    assert whole.base is None and whole.tail is not None and whole.tail.kind is TailKind.TORN


def test_zeros_followed_by_data_are_damage() -> None:
    data = toolkit_log(P1) + bytes(HEADER_SIZE) + b"\x01"
    scan = scan_log(data, name=NAME)
    assert scan.tail is not None and scan.tail.kind is TailKind.DAMAGE


def test_header_crc_failure_mid_log_is_damage() -> None:
    data = toolkit_log(P1, P2)
    offset = len(toolkit_log())
    for byte in range(offset, offset + HEADER_SIZE):
        scan = scan_log(flip_byte(data, byte), name=NAME)
        assert scan.tail is not None and scan.tail.kind is TailKind.DAMAGE, byte
        assert scan.tail.offset == offset


def test_damaged_length_in_last_header_is_damage_not_torn() -> None:
    data = toolkit_log(P1)
    offset = len(toolkit_log())
    scan = scan_log(flip_byte(data, offset + 16), name=NAME)  # the length field
    assert scan.tail is not None and scan.tail.kind is TailKind.DAMAGE
    assert scan.tail.reason == "record header checksum mismatch"


def test_payload_crc_failure_with_bytes_after_is_damage() -> None:
    data = toolkit_log(P1, P2)
    scan = scan_log(flip_byte(data, len(toolkit_log()) + HEADER_SIZE), name=NAME)
    assert scan.tail is not None and scan.tail.kind is TailKind.DAMAGE
    assert "payload checksum mismatch in record 1" in scan.tail.reason


def test_sequence_gap_is_damage() -> None:
    data = toolkit_log(P1) + encode_record(RecordType.WAL_ENTRIES, 3, P2)
    scan = scan_log(data, name=NAME)
    assert scan.tail is not None and scan.tail.kind is TailKind.DAMAGE
    assert scan.tail.reason == "sequence gap: expected record 2, found 3"


def test_unknown_record_type_is_damage_naming_it() -> None:
    record = bytearray(encode_record(RecordType.WAL_ENTRIES, 2, P2))
    record[4] = 99
    data = toolkit_log(P1) + fix_header_crc(bytes(record), 0)
    scan = scan_log(data, name=NAME)
    assert scan.tail is not None and scan.tail.kind is TailKind.DAMAGE
    assert scan.tail.reason == "unknown record type 99"


def test_nonzero_reserved_bytes_are_damage() -> None:
    record = bytearray(encode_record(RecordType.WAL_ENTRIES, 2, P2))
    record[6] = 1
    scan = scan_log(toolkit_log(P1) + fix_header_crc(bytes(record), 0), name=NAME)
    assert scan.tail is not None and scan.tail.kind is TailKind.DAMAGE


def test_record_length_over_cap_is_damage(monkeypatch: pytest.MonkeyPatch) -> None:
    big = dumps([{"blob": "x" * 200}])
    data = toolkit_log(P1, big)
    monkeypatch.setattr(framing, "MAX_ARTIFACT_BYTES", len(big) - 1)
    scan = scan_log(data, name=NAME)
    assert scan.tail is not None and scan.tail.kind is TailKind.DAMAGE
    assert "exceeds the" in scan.tail.reason
    with pytest.raises(EncodeError):
        encode_record(RecordType.WAL_ENTRIES, 1, big)


def test_base_over_cap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(framing, "MAX_ARTIFACT_BYTES", len(BASE) - 1)
    with pytest.raises(ArtifactTooLargeError, match=r"wal\.log"):
        scan_log(toolkit_log(), name=NAME)


def test_base_checksum_out_of_place_is_damage() -> None:
    data = toolkit_log(P1) + encode_record(RecordType.BASE_CHECKSUM, 2, CHECKSUM[24:])
    scan = scan_log(data, name=NAME)
    assert scan.tail is not None and "unexpected base checksum record 2" in scan.tail.reason


def test_scan_from_an_offset_continues_the_sequence() -> None:
    data = toolkit_log(P1, P2)
    start = len(toolkit_log(P1))
    scan = scan_log(data[start:], name=NAME, origin=start, next_seq=2)
    assert scan.base is None and [r.offset for r in scan.records] == [start]
    assert scan.end == len(data) and scan.next_seq == 3


def test_cut_at_every_offset_after_the_base_is_clean_or_torn() -> None:
    data = toolkit_log(P1, P2)
    boundaries = {len(toolkit_log()), len(toolkit_log(P1)), len(data), len(BASE)}
    for size in range(len(BASE), len(data) + 1):
        scan = scan_log(data[:size], name=NAME)
        if size in boundaries:
            assert scan.tail is None, size
        else:
            assert scan.tail is not None and scan.tail.kind is TailKind.TORN, size
        assert scan.end <= size


def test_cut_inside_the_base_fails_closed() -> None:
    for size in range(1, len(BASE)):
        with pytest.raises(DecodeError):
            scan_log(BASE[:size], name=NAME)


def test_bit_flip_anywhere_is_never_silent() -> None:
    data = toolkit_log(P1, P2)
    for offset in range(len(data)):
        try:
            scan = scan_log(flip_byte(data, offset), name=NAME)
        except DecodeError:
            continue
        changed = scan.base != scan_log(data, name=NAME).base
        assert scan.tail is not None or changed, offset


# -- zero-filled tails (torn-tail case 4): a run of zero bytes reaching the end of
# the file may start anywhere inside a record, its header included ----------------

P3 = dumps([{"kind": "visibility_gate_crossing", "n": 3}])
#: A payload that legitimately ends in a zero byte.
PZ = dumps([{"n": 0}])
VECTOR = Path(__file__).resolve().parent.parent / "specs" / "vectors" / "wal_log_v1.hex"


def zero_from(data: bytes, offset: int) -> bytes:
    """`data` with every byte from `offset` to the end zeroed, its size kept
    (what XFS can leave after power loss: the size grew, the blocks never landed)."""
    return data[:offset] + bytes(len(data) - offset)


def record_starts(data: bytes) -> list[int]:
    """Offsets of the records of a clean log, and its end."""
    scan = scan_log(data, name=NAME)
    assert scan.tail is None
    return [r.offset for r in scan.records] + [scan.end]


def torn_tail(data: bytes) -> framing.Tail:
    scan = scan_log(data, name=NAME)
    assert scan.tail is not None and scan.tail.kind is TailKind.TORN, scan.tail
    assert scan.end == scan.tail.offset and scan.tail.dropped == len(data) - scan.tail.offset
    return scan.tail


def test_zero_run_starting_inside_the_last_header_is_a_torn_tail() -> None:
    data = toolkit_log(P1, P2)
    last = record_starts(data)[-2]
    for inside in range(1, HEADER_SIZE):
        tail = torn_tail(zero_from(data, last + inside))
        assert tail.offset == last, inside
        assert tail.records_dropped == 1
    tail = torn_tail(zero_from(data, last + 17))
    assert (
        tail.reason
        == f"zero bytes from offset {last + 17} to end of file (at least 1 record dropped)"
    )
    assert [r.seq for r in scan_log(zero_from(data, last + 17), name=NAME).records] == [0, 1]


def test_zero_run_starting_inside_the_last_payload_is_a_torn_tail() -> None:
    data = toolkit_log(P1, P2)
    last = record_starts(data)[-2]
    for inside in range(HEADER_SIZE, len(data) - last):
        tail = torn_tail(zero_from(data, last + inside))
        assert (tail.offset, tail.records_dropped) == (last, 1), inside
        assert tail.reason == "payload checksum mismatch in last record 2"


def test_zero_run_starting_inside_an_earlier_record_drops_it_and_every_later_one() -> None:
    data = toolkit_log(P1, P2, P3)
    first, second, *_ = record_starts(data)[1:]
    zeroed = zero_from(data, first + HEADER_SIZE + 3)  # inside record 1's payload
    scan = scan_log(zeroed, name=NAME)
    tail = torn_tail(zeroed)
    assert [r.seq for r in scan.records] == [0] and scan.base_verified
    assert tail.offset == first and tail.records_dropped == 2
    assert tail.reason == (
        f"zero bytes from offset {first + HEADER_SIZE + 3} to end of file "
        "(at least 2 records dropped)"
    )
    tail = torn_tail(zero_from(data, first + 5))  # inside record 1's header
    assert (tail.offset, tail.records_dropped) == (first, 1)
    tail = torn_tail(zero_from(data, second - 1))  # record 1's last byte
    assert (tail.offset, tail.records_dropped) == (first, 2)


def test_zero_run_starting_at_a_record_boundary_is_a_torn_tail() -> None:
    data = toolkit_log(P1, P2, P3)
    for boundary in record_starts(data)[1:-1]:
        tail = torn_tail(zero_from(data, boundary))
        assert (tail.offset, tail.records_dropped) == (boundary, 1)
        assert (
            tail.reason
            == f"zero bytes from offset {boundary} to end of file (at least 1 record dropped)"
        )


def test_zeroing_the_base_checksum_record_leaves_an_unverified_base() -> None:
    data = toolkit_log(P1)
    for start in (len(BASE), len(BASE) + 7, len(BASE) + HEADER_SIZE + 2):
        scan = scan_log(zero_from(data, start), name=NAME)
        assert scan.tail is not None and scan.tail.kind is TailKind.TORN
        assert scan.tail.offset == len(BASE) and scan.records == () and not scan.base_verified


def test_zero_run_starting_inside_the_base_never_yields_records() -> None:
    # Zeros inside a base fail closed whenever what is left is not a v1 artifact
    # of the log's kind (the base no longer decodes, or `payload_from_envelope`
    # refuses it). A base whose last bytes decode either way (zeros that turn the
    # empty WAL's "entries" key into an unknown one) is indistinguishable from a
    # foreign base whose encoding ends in zero bytes (next test): it stays an
    # unverified base with no entries, and the zeroed records are a torn tail.
    data = toolkit_log(P1, P2)
    for start in range(1, len(BASE)):
        try:
            scan = scan_log(zero_from(data, start), name=NAME)
            payload = payload_from_envelope(scan.base)[1]
        except DecodeError:
            continue
        assert payload == AgreementWalArtifact() and not scan.base_verified, start
        assert scan.records == () and scan.tail is not None, start
        assert scan.tail.kind is TailKind.TORN and scan.tail.offset <= len(BASE), start


def test_zero_run_after_a_foreign_base_ending_in_zero_bytes_is_a_torn_tail() -> None:
    base = PersistedDurabilityArtifact.agreement_wal(
        AgreementWalArtifact(entries=[esc("op", L.NONE, L.PROVISIONAL, 0)])
    ).to_cbor()
    assert base.endswith(b"\0")  # "tick": 0
    appended = base + encode_record(RecordType.WAL_ENTRIES, 0, P1)
    tail = torn_tail(zero_from(appended, len(base)))
    assert tail.offset == len(base)
    assert (
        scan_log(zero_from(appended, len(base)), name=NAME).base == scan_log(base, name=NAME).base
    )


def test_all_zero_file_is_a_torn_tail_with_no_base() -> None:
    scan = scan_log(zero_from(toolkit_log(P1), 0), name=NAME)
    assert scan.base is None and scan.records == () and scan.end == 0
    assert scan.tail is not None and scan.tail.kind is TailKind.TORN and scan.tail.offset == 0


def test_valid_record_ending_in_zero_bytes_is_kept_before_a_zero_run() -> None:
    data = toolkit_log(P1, PZ)
    assert PZ.endswith(b"\0")
    assert scan_log(data, name=NAME).tail is None
    tail = torn_tail(data + bytes(40))
    assert tail.offset == len(data) and tail.dropped == 40
    assert [r.payload for r in scan_log(data + bytes(40), name=NAME).records][-1] == PZ


def test_zeros_followed_by_nonzero_bytes_are_damage() -> None:
    data = toolkit_log(P1, P2, P3)
    first, second, _third, _end = record_starts(data)[1:]
    middle = data[: first + 30] + bytes(second - first - 30) + data[second:]
    scan = scan_log(middle, name=NAME)
    assert scan.tail is not None and scan.tail.kind is TailKind.DAMAGE
    assert scan.tail.offset == first and scan.tail.records_dropped == 0
    nonzero_last = zero_from(data, first + 30)[:-1] + b"\x01"
    scan = scan_log(nonzero_last, name=NAME)
    assert scan.tail is not None and scan.tail.kind is TailKind.DAMAGE


def test_payload_checksum_failure_before_a_zero_run_is_damage() -> None:
    # the zeros start after the bad record: they do not explain it
    data = toolkit_log(P1, P2, P3)
    first, second, *_ = record_starts(data)[1:]
    bad = zero_from(flip_byte(data, first + HEADER_SIZE + 2), second)
    scan = scan_log(bad, name=NAME)
    assert scan.tail is not None and scan.tail.kind is TailKind.DAMAGE
    assert scan.tail.offset == first
    assert "payload checksum mismatch in record 1" in scan.tail.reason


def test_header_checksum_failure_before_a_zero_run_in_its_payload_is_damage() -> None:
    # only zeros reaching into the header can explain a header that fails
    data = toolkit_log(P1, P2)
    first = record_starts(data)[1]
    bad = zero_from(flip_byte(data, first + 8), first + HEADER_SIZE + 1)
    scan = scan_log(bad, name=NAME)
    assert scan.tail is not None and scan.tail.kind is TailKind.DAMAGE
    assert scan.tail.reason == "record header checksum mismatch"


def test_zero_run_in_a_scan_from_an_offset_reports_file_offsets() -> None:
    data = toolkit_log(P1, P2, P3)
    first, _second, *_ = record_starts(data)[1:]
    zeroed = zero_from(data, first + HEADER_SIZE + 1)
    scan = scan_log(zeroed[first:], name=NAME, origin=first, next_seq=1)
    assert scan.tail is not None and scan.tail.kind is TailKind.TORN
    assert scan.tail.offset == first and scan.records == ()
    assert f"zero bytes from offset {first + HEADER_SIZE + 1} " in scan.tail.reason


def test_zeroing_from_every_offset_after_the_base_drops_exactly_the_records_from_there() -> None:
    data = toolkit_log(P1, P2, P3)
    starts = record_starts(data)  # the checksum record, records 1-3, the end
    assert all(data[end - 1] != 0 for end in starts[1:])  # no record ends in a zero byte
    for offset in range(len(BASE), len(data)):
        index = max(i for i, start in enumerate(starts[:-1]) if start <= offset)
        scan = scan_log(zero_from(data, offset), name=NAME)
        assert scan.tail is not None and scan.tail.kind is TailKind.TORN, offset
        assert scan.tail.offset == starts[index], offset
        assert [r.offset for r in scan.records] == starts[:index], offset
        assert 1 <= scan.tail.records_dropped <= len(starts) - 1 - index, offset


@pytest.mark.parametrize(
    ("zeros_from", "offset", "kept", "reason"),
    [
        (
            274,
            274,
            [94, 149],
            "zero bytes from offset 274 to end of file (at least 1 record dropped)",
        ),
        (
            291,
            274,
            [94, 149],
            "zero bytes from offset 291 to end of file (at least 1 record dropped)",
        ),
        (223, 149, [94], "zero bytes from offset 223 to end of file (at least 2 records dropped)"),
        (123, 94, [], "zero bytes from offset 123 to end of file (at least 2 records dropped)"),
    ],
)
def test_golden_log_zero_filled_from_an_offset_is_torn_at_that_record(
    zeros_from: int, offset: int, kept: list[int], reason: str
) -> None:
    # the worked example of specs/log_format.md, row by row
    data = bytes.fromhex("".join(VECTOR.read_text().split()))
    assert record_starts(data) == [94, 149, 274, 567]
    scan = scan_log(zero_from(data, zeros_from), name=NAME)
    tail = torn_tail(zero_from(data, zeros_from))
    assert (tail.offset, tail.dropped, tail.reason) == (offset, 567 - offset, reason)
    assert tail.records_dropped == int(reason.split("at least ")[1][0])
    assert [r.offset for r in scan.records] == kept
    assert scan.base_verified == bool(kept)


def test_golden_log_with_a_bad_payload_before_a_zero_run_is_damage() -> None:
    data = bytes.fromhex("".join(VECTOR.read_text().split()))
    scan = scan_log(zero_from(flip_byte(data, 149 + 30), 274), name=NAME)
    assert scan.tail is not None and scan.tail.kind is TailKind.DAMAGE
    assert (scan.tail.offset, scan.tail.reason) == (
        149,
        "payload checksum mismatch in record 1 with 293 bytes after it",
    )


# -- the incremental reader: bytes in, a record or "need more" out (h11's readers) --


def read_in_chunks(
    data: bytes, size: int, *, origin: int = 0, next_seq: int = 0
) -> tuple[framing.LogScan, framing.LogReader]:
    """What a `LogReader` fed `data` `size` bytes at a time, only when it asks
    for more, makes of it, as a `LogScan` (to compare with `scan_log`)."""
    reader = LogReader(NAME, origin=origin, next_seq=next_seq)
    records, pos = [], 0
    while True:
        found = reader.next_record()
        if found is NEED_MORE:
            if pos < len(data):
                reader.feed(data[pos : pos + size])
                pos += size
            else:
                reader.finish()
        elif found is END_OF_LOG:
            break
        else:
            assert isinstance(found, framing.Record)
            records.append(found)
    scan = framing.LogScan(
        base=reader.base,
        base_end=reader.base_end,
        base_verified=reader.base_verified,
        records=tuple(records),
        end=reader.end,
        next_seq=reader.next_seq,
        tail=reader.tail,
    )
    return scan, reader


def outcome(read: Callable[[], object]) -> object:
    """A scan, or the error it raised (type and message)."""
    try:
        return read()
    except DecodeError as exc:
        return (type(exc), str(exc))


def same_in_every_chunking(data: bytes, sizes: Iterable[int], **where: int) -> None:
    at_once = outcome(lambda: scan_log(data, name=NAME, **where))
    for size in sizes:
        chunked = outcome(lambda size=size: read_in_chunks(data, size, **where)[0])
        assert chunked == at_once, (size, data.hex())


def test_reader_returns_each_record_once_its_last_byte_arrives() -> None:
    data = toolkit_log(P1, P2)
    starts = record_starts(data)
    reader = LogReader(NAME)
    seen = []
    for offset in range(len(data)):
        reader.feed(data[offset : offset + 1])
        found = reader.next_record()
        if offset + 1 in starts[1:]:  # a record ends here
            assert isinstance(found, framing.Record) and found.end == offset + 1, offset
            seen.append(found.seq)
            found = reader.next_record()
        assert found is NEED_MORE, offset
    reader.finish()
    assert reader.next_record() is END_OF_LOG and reader.next_record() is END_OF_LOG
    assert seen == [0, 1, 2] and reader.tail is None and reader.base_verified
    assert reader.state is ReaderState.DONE and reader.end == len(data)


def test_reader_states_from_base_to_done() -> None:
    data = toolkit_log(P1) + encode_record(RecordType.WAL_ENTRIES, 5, P2)  # a sequence gap
    reader = LogReader(NAME)
    assert reader.state is ReaderState.BASE
    reader.feed(data[:10])
    assert reader.next_record() is NEED_MORE and reader.state is ReaderState.BASE
    reader.feed(data[10:])
    assert [reader.next_record(), reader.next_record()] != [NEED_MORE] * 2
    assert reader.state is ReaderState.RECORDS
    assert reader.next_record() is NEED_MORE and reader.state is ReaderState.FAILED
    reader.finish()
    assert reader.next_record() is END_OF_LOG and reader.state is ReaderState.DONE
    assert reader.tail is not None and reader.tail.kind is TailKind.DAMAGE
    with pytest.raises(ValueError, match="after finish"):
        reader.feed(b"x")
    assert LogReader(NAME, origin=94, next_seq=1).state is ReaderState.RECORDS


def test_a_partial_base_is_need_more_until_the_input_ends() -> None:
    reader = LogReader(NAME)
    reader.feed(BASE[:-1])
    assert reader.next_record() is NEED_MORE and reader.base is None
    reader.finish()
    with pytest.raises(DecodeError, match="base artifact is not valid CBOR"):
        reader.next_record()


def test_garbage_base_fails_closed_before_the_input_ends() -> None:
    reader = LogReader(NAME)
    reader.feed(b"\x1c" + bytes(100))  # a reserved integer subtype
    with pytest.raises(DecodeError, match="base artifact is not valid CBOR"):
        reader.next_record()


def test_base_decoding_is_retried_geometrically(monkeypatch: pytest.MonkeyPatch) -> None:
    base = PersistedDurabilityArtifact.agreement_wal(
        AgreementWalArtifact(entries=[gate(f"op{n}", L.NONE, n) for n in range(200)])
    ).to_cbor()
    calls = []

    def counting(data: bytes, offset: int = 0) -> tuple[object, int]:
        calls.append(len(data))
        return decode_item(data, offset)

    monkeypatch.setattr(framing, "decode_item", counting)
    reader = LogReader(NAME)
    for offset in range(len(base)):  # one byte at a time
        reader.feed(base[offset : offset + 1])
        assert reader.next_record() is NEED_MORE
    reader.finish()
    assert reader.next_record() is END_OF_LOG and reader.base_end == len(base)
    assert len(calls) <= len(base).bit_length() + 1  # doubling: linear time in all
    assert sum(calls) <= 4 * len(base)


def test_an_incomplete_base_over_the_cap_fails_before_the_input_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(framing, "MAX_ARTIFACT_BYTES", 50)
    reader = LogReader(NAME)
    for offset in range(60):
        reader.feed(BASE[offset : offset + 1])
        if offset < 50:
            assert reader.next_record() is NEED_MORE
    with pytest.raises(ArtifactTooLargeError, match="more than 50 bytes"):
        reader.next_record()


def test_reader_holds_only_unconsumed_bytes() -> None:
    data = toolkit_log(*[P1, P2, P3] * 30)
    longest = HEADER_SIZE + max(len(P1), len(P2), len(P3))
    reader = LogReader(NAME)
    for start in range(0, len(data), 7):
        reader.feed(data[start : start + 7])
        while isinstance(reader.next_record(), framing.Record):
            pass
        assert reader.buffered < max(2 * len(BASE), longest) + 7, start
    reader.finish()
    assert reader.next_record() is END_OF_LOG and reader.buffered == 0


def test_after_a_failure_later_bytes_are_watched_for_zeros_not_kept() -> None:
    data = flip_byte(toolkit_log(P1, P2), len(toolkit_log()) + 2)  # record 1's header
    reader = LogReader(NAME)
    reader.feed(data)
    while isinstance(reader.next_record(), framing.Record):
        pass
    assert reader.state is ReaderState.FAILED and reader.buffered == 0
    for _ in range(100):
        reader.feed(bytes(4096))
        assert reader.next_record() is NEED_MORE and reader.buffered == 0
    reader.finish()
    reader.next_record()
    assert reader.tail is not None and reader.tail.kind is TailKind.DAMAGE
    assert reader.tail.dropped == len(data) - len(toolkit_log()) + 100 * 4096


def test_every_chunking_of_a_clean_or_cut_log_reads_as_at_once() -> None:
    data = toolkit_log(P1, P2, PZ)
    for cut in range(len(data) + 1):
        same_in_every_chunking(data[:cut], (1, 5, 24, 25, 60))
    same_in_every_chunking(data, range(1, len(data) + 1))


def test_every_chunking_of_a_zero_filled_tail_reads_as_at_once() -> None:
    # the run of zeros, and the record it explains, may span any chunk boundary
    data = bytes.fromhex("".join(VECTOR.read_text().split()))
    for offset in range(0, len(data), 3):
        same_in_every_chunking(zero_from(data, offset), (1, 2, 23, 24, 25, 97, 300))
    same_in_every_chunking(zero_from(data, 223), range(1, len(data) + 1))
    same_in_every_chunking(data + bytes(100), range(1, 130))


def test_every_chunking_of_damage_reads_as_at_once() -> None:
    data = toolkit_log(P1, P2, P3)
    for offset in range(len(data)):
        same_in_every_chunking(flip_byte(data, offset), (1, 24, 31, 200))
    second = record_starts(data)[2]
    bad = zero_from(flip_byte(data, second - 3), second)  # damage, then zeros
    same_in_every_chunking(bad, range(1, len(bad) + 1))


def test_every_chunking_from_an_offset_reads_as_at_once() -> None:
    data = toolkit_log(P1, P2, P3)
    first = record_starts(data)[1]
    for tail in (b"", bytes(30), b"\x01\x02", encode_record(RecordType.WAL_ENTRIES, 9, P1)):
        same_in_every_chunking((data + tail)[first:], range(1, 90), origin=first, next_seq=1)


def test_every_chunking_of_a_zero_prefix_reads_as_at_once() -> None:
    # a first byte of zero is the CBOR integer 0 unless every byte is zero
    for data in (bytes(1), bytes(30), bytes(30) + b"\x05", b"\x00\x05", bytes(3) + BASE):
        same_in_every_chunking(data, range(1, len(data) + 1))
