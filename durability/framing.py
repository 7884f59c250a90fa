"""The append-only log framing (``specs/log_format.md``). Pure: bytes in, values out.

A log file is a *base* (one v1 artifact, FORMAT.md §1) followed by *records*::

    record := header payload
    header := header_crc:u32  type:u8  reserved:3 zero bytes  seq:u64
              length:u32  payload_crc:u32                  (24 bytes, little-endian)

``header_crc`` is ``zlib.crc32`` of the 20 header bytes after it, so a length
is trusted only once its header verifies; ``payload_crc`` covers the
``length`` payload bytes (one CBOR item). Sequence numbers run 0, 1, 2, ...
with no gap. A toolkit-written base is followed by a `RecordType.BASE_CHECKSUM`
record (sequence 0) holding the base's length and crc32.

`scan_log` classifies what follows the last good record: nothing, a *torn
tail* (exactly the four cases of FORMAT.md §2, `TailKind.TORN`) or damage
(`TailKind.DAMAGE`). Damage in the base raises `DecodeError` at once.

The fourth torn-tail case is a run of zero bytes reaching the end of the file
(a file system that extended the size but never wrote the blocks). It may
start anywhere inside a record, header included; the tail then starts at that
record's first byte. It is only ever used to explain a record that fails to
verify: a valid record whose payload happens to end in zero bytes is kept.
"""

from __future__ import annotations

import enum
import struct
import zlib
from typing import Any, NamedTuple

import attrs

from .codec import decode_item, dumps
from .errors import ArtifactTooLargeError, DecodeError, EncodeError
from .limits import HEADER as _HEADER
from .limits import HEADER_SIZE, MAX_ARTIFACT_BYTES

__all__ = [
    "HEADER_SIZE",
    "LogScan",
    "Record",
    "RecordType",
    "Tail",
    "TailKind",
    "base_checksum_payload",
    "encode_record",
    "scan_log",
    "zero_run_start",
]

_RESERVED = b"\x00\x00\x00"


class RecordType(enum.IntEnum):
    """What a record's payload holds. Numbers are on disk; new kinds get new
    numbers, and a reader meeting a number it does not know fails closed."""

    #: ``{"base_length": n, "base_crc32": c}`` of the base just before it.
    BASE_CHECKSUM = 1
    #: A CBOR array of WAL entries (one `append`/`append_batch`).
    WAL_ENTRIES = 2
    #: A CBOR array of evidence outcome cache entries, each replacing its id.
    CACHE_BINDINGS = 3


class TailKind(enum.Enum):
    """How the bytes after the last good record are classified."""

    #: A write cut short by a crash; safe to truncate.
    TORN = "torn"
    #: Anything else: never guessed at.
    DAMAGE = "damage"


@attrs.frozen(kw_only=True)
class Tail:
    """The bytes from `offset` to the end of the file (`dropped` of them) that
    are not whole, valid records, and why.

    `records_dropped` counts the records, whole or partial, a torn tail cuts:
    exactly one for a cut header, a payload running past the end of the file
    or a bad last payload; for a run of zero bytes a lower bound (the zeros
    hide how many records they replaced), which `reason` words as "at least".
    It is 0 for damage.
    """

    offset: int
    dropped: int
    kind: TailKind
    reason: str

    def error(self, name: str) -> DecodeError:
        """The `DecodeError` for these bytes of log `name` (when they are not
        to be repaired)."""
        return DecodeError(self.reason, path=name, offset=self.offset)

    records_dropped: int = 0


@attrs.frozen(kw_only=True)
class Record:
    """One verified record: its byte `offset`, `type`, sequence number `seq`
    and `payload` bytes (checksum already verified, not yet decoded)."""

    offset: int
    type: RecordType
    seq: int
    payload: bytes

    @property
    def end(self) -> int:
        """Offset of the byte after the record."""
        return self.offset + HEADER_SIZE + len(self.payload)


@attrs.frozen(kw_only=True)
class LogScan:
    """What `scan_log` found.

    `base` is the decoded base item (plain data; ``None`` when the scan did
    not start at offset 0 or the file is empty), ending at `base_end`;
    `base_verified` tells whether a base checksum record vouched for it.
    `records` are the good records in order, `end` the offset after the last
    of them (where a repair would truncate), `next_seq` the sequence number
    the next record must carry, `tail` the classification of what is left.
    """

    base: Any
    base_end: int
    base_verified: bool
    records: tuple[Record, ...]
    end: int
    next_seq: int
    tail: Tail | None


def encode_record(record_type: RecordType, seq: int, payload: bytes) -> bytes:
    """Header plus `payload`: one record ready to append. Raises `EncodeError`
    for a payload over `MAX_ARTIFACT_BYTES`."""
    if len(payload) > MAX_ARTIFACT_BYTES:
        raise EncodeError(
            f"encode log record: {len(payload)} bytes exceeds the {MAX_ARTIFACT_BYTES}-byte cap"
        )
    rest = _HEADER.pack(0, int(record_type), _RESERVED, seq, len(payload), zlib.crc32(payload))[4:]
    return struct.pack("<I", zlib.crc32(rest)) + rest + payload


def base_checksum_payload(base: bytes) -> bytes:
    """The payload of the `RecordType.BASE_CHECKSUM` record vouching for `base`."""
    return dumps({"base_length": len(base), "base_crc32": zlib.crc32(base)})


#: Bytes copied at a time while looking for the start of a trailing zero run.
_ZERO_SCAN_BLOCK = 64 * 1024


def zero_run_start(data: bytes) -> int:
    """Where the run of zero bytes that reaches the end of `data` starts
    (``len(data)`` if the last byte is not zero, 0 if every byte is).

    Costs O(length of the run): only the run and one block before it are read.

    >>> zero_run_start(b"ab\\0\\0"), zero_run_start(b"ab"), zero_run_start(bytes(3))
    (2, 2, 0)
    """
    end = len(data)
    while end:
        start = max(0, end - _ZERO_SCAN_BLOCK)
        kept = len(data[start:end].rstrip(b"\0"))
        if kept:
            return start + kept
        end = start
    return 0


class _Failure(NamedTuple):
    """Why the record at some offset does not verify, and what could explain it."""

    reason: str
    #: One of torn-tail cases 1-3 (the file ends inside or right after it).
    torn: bool = False
    #: A zero run reaching the end of the file that starts before this offset
    #: explains the failure (case 4); 0 when nothing would.
    zeros_explain_before: int = 0
    #: How many records such a zero run drops, at least.
    records_if_zeroed: int = 1


def _tail(failure: _Failure, pos: int, size: int, zeros: int, origin: int) -> Tail:
    """Classify the bytes from `pos` (a record boundary) on, where `failure`
    was found, given that every byte from `zeros` on is zero."""
    kind, count, reason = TailKind.TORN, 1, failure.reason
    if zeros <= pos:  # nothing but zeros from this record boundary on
        reason = _zero_reason(origin + pos, 1)
    elif failure.torn:
        pass
    elif zeros < failure.zeros_explain_before:  # zeros from inside this record on
        count = failure.records_if_zeroed
        reason = _zero_reason(origin + zeros, count)
    else:
        kind, count = TailKind.DAMAGE, 0
    return Tail(
        offset=origin + pos, dropped=size - pos, kind=kind, reason=reason, records_dropped=count
    )


def _zero_reason(offset: int, records: int) -> str:
    what = "record" if records == 1 else "records"
    return f"zero bytes from offset {offset} to end of file (at least {records} {what} dropped)"


def _header_at(data: bytes, pos: int) -> tuple[int, bytes, int, int, int] | None:
    """``(type, reserved, seq, length, payload_crc)`` if the header verifies."""
    crc, rtype, reserved, seq, length, payload_crc = _HEADER.unpack_from(data, pos)
    if zlib.crc32(data[pos + 4 : pos + HEADER_SIZE]) != crc:
        return None
    return rtype, reserved, seq, length, payload_crc


def _decode_base(data: bytes, name: str) -> tuple[Any, int]:
    try:
        base, end = decode_item(data, 0)
    except DecodeError as exc:
        why = exc.__cause__ or exc
        raise DecodeError(f"base artifact is not valid CBOR ({why})", path=name, offset=0) from exc
    if end > MAX_ARTIFACT_BYTES:
        raise ArtifactTooLargeError(
            f"base artifact of {end} bytes exceeds the {MAX_ARTIFACT_BYTES}-byte cap",
            path=name,
            offset=0,
        )
    return base, end


def _check_base(data: bytes, base_end: int, payload: bytes, name: str, offset: int) -> None:
    """Verify a base checksum record's payload against the base bytes."""
    try:
        claim, used = decode_item(payload)
    except DecodeError as exc:
        raise DecodeError("undecodable base checksum record", path=name, offset=offset) from exc
    if (
        used != len(payload)
        or not isinstance(claim, dict)
        or not isinstance(claim.get("base_length"), int)
        or not isinstance(claim.get("base_crc32"), int)
    ):
        raise DecodeError("malformed base checksum record", path=name, offset=offset)
    if claim["base_length"] != base_end or claim["base_crc32"] != zlib.crc32(data[:base_end]):
        raise DecodeError(
            "toolkit-written base fails its checksum: damaged base", path=name, offset=0
        )


def scan_log(data: bytes, *, name: str, origin: int = 0, next_seq: int = 0) -> LogScan:
    """Scan `data`, the bytes of log `name` from file offset `origin` to its end.

    At ``origin == 0`` the base is decoded first (an empty or all-zero `data`
    has none); otherwise `data` must start at a record boundary whose record
    carries sequence number `next_seq`. Offsets in the result and in error
    messages are file offsets. Raises `DecodeError` (naming `name` and the
    offset) for a damaged base or base checksum record, and
    `ArtifactTooLargeError` for a base over `MAX_ARTIFACT_BYTES`; damage
    after the base is returned as a `Tail` so callers choose the recovery.

    A run of zero bytes reaching the end of `data` that starts inside (or
    before) the first record failing to verify makes a torn tail starting at
    that record; `Tail.reason` and `Tail.records_dropped` say how many records
    it drops, at least. Linear in ``len(data)``.
    """
    size = len(data)
    zeros = zero_run_start(data)  # every byte from here to the end is zero
    pos, base, base_end, verified = 0, None, origin, False
    seq = next_seq
    records: list[Record] = []
    failure: _Failure | None = None

    if origin == 0 and zeros:  # an all-zero file has no base
        base, pos = _decode_base(data, name)
        base_end = pos
    while pos < size:
        left = size - pos
        if left < HEADER_SIZE:
            failure = _Failure(f"incomplete record header ({left} bytes)", torn=True)
            break
        header = _header_at(data, pos)
        if header is None:  # zeros from inside the header explain it; its length is unknown
            failure = _Failure(
                "record header checksum mismatch", zeros_explain_before=pos + HEADER_SIZE
            )
            break
        rtype, reserved, rseq, length, payload_crc = header
        if rtype not in RecordType._value2member_map_:
            failure = _Failure(f"unknown record type {rtype}")
        elif reserved != _RESERVED:
            failure = _Failure(f"nonzero reserved header bytes in record {rseq}")
        elif rseq != seq:
            failure = _Failure(f"sequence gap: expected record {seq}, found {rseq}")
        elif length > MAX_ARTIFACT_BYTES:
            failure = _Failure(f"record length {length} exceeds the {MAX_ARTIFACT_BYTES}-byte cap")
        if failure is not None:
            break
        end = pos + HEADER_SIZE + length
        if end > size:
            failure = _Failure(
                f"payload of record {seq} runs past end of file "
                f"({length} bytes declared, {left - HEADER_SIZE} present)",
                torn=True,
            )
            break
        payload = data[pos + HEADER_SIZE : end]
        if zlib.crc32(payload) != payload_crc:
            if end == size:
                failure = _Failure(f"payload checksum mismatch in last record {seq}", torn=True)
            else:  # zeros from inside it: it and at least one record after it are lost
                failure = _Failure(
                    f"payload checksum mismatch in record {seq} with {size - end} bytes after it",
                    zeros_explain_before=end,
                    records_if_zeroed=2,
                )
            break
        kind = RecordType(rtype)
        if kind is RecordType.BASE_CHECKSUM:
            if base is None or pos != base_end or seq != 0:
                failure = _Failure(f"unexpected base checksum record {seq}")
                break
            _check_base(data, base_end, payload, name, origin + pos)
            verified = True
        records.append(Record(offset=origin + pos, type=kind, seq=seq, payload=payload))
        seq += 1
        pos = end
    tail = None if failure is None else _tail(failure, pos, size, zeros, origin)
    return LogScan(
        base=base,
        base_end=base_end,
        base_verified=verified,
        records=tuple(records),
        end=origin + pos,
        next_seq=seq,
        tail=tail,
    )
