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

`LogReader` reads a log incrementally, as h11's readers read HTTP: feed it
bytes, get the next verified `Record` or `NEED_MORE`; after `LogReader.finish`
its `Tail` classifies what follows the last good record (the rules are in
`durability.tails`): a *torn tail* or damage. `scan_log` is the same over one
buffer. Damage in the base raises `DecodeError` at once.
"""

from __future__ import annotations

import enum
import struct
import zlib
from typing import Any, Final

import attrs
import cbor2

from .codec import decode_item, dumps
from .errors import ArtifactTooLargeError, DecodeError, EncodeError
from .limits import HEADER as _HEADER
from .limits import HEADER_SIZE, MAX_ARTIFACT_BYTES
from .tails import Failure, Tail, TailKind, classify_tail, payload_failure, zero_run_start

__all__ = [
    "END_OF_LOG",
    "HEADER_SIZE",
    "NEED_MORE",
    "LogReader",
    "LogScan",
    "NoRecord",
    "ReaderState",
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
    #: A CBOR array of effect intents (cache logs only; ``specs/effects.md``):
    #: each makes its attempt the latest of its evidence id, in doubt.
    INTENTS = 4
    #: A CBOR array of ``{"evidence_id": id, "attempt": n}``: each withdraws
    #: that attempt (it did not happen).
    INTENT_WITHDRAWALS = 5
    #: ``{"segment": n, "first_sequence": s, "entries": k}``: the last record
    #: of a sealed WAL segment (``specs/segments.md``); nothing follows it.
    SEGMENT_SEAL = 6


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


class NoRecord(enum.Enum):
    """What `LogReader.next_record` returns when it has no record to give."""

    #: Feed more bytes (or call `LogReader.finish`: there are none).
    NEED_MORE = "need_more"
    #: The input is finished and every good record was returned; see `LogReader.tail`.
    END_OF_LOG = "end_of_log"


NEED_MORE: Final = NoRecord.NEED_MORE
END_OF_LOG: Final = NoRecord.END_OF_LOG


class ReaderState(enum.Enum):
    """Where a `LogReader` is (its `LogReader.state`)."""

    #: At file offset 0, waiting for the whole base (one CBOR item) to arrive.
    BASE = "base"
    #: Returning each record once it has arrived whole and verified.
    RECORDS = "records"
    #: A record failed to verify. Whether it is a torn tail depends on where the
    #: run of zero bytes reaching the end of the input starts, so later bytes are
    #: only watched for zeros (not kept) until `LogReader.finish`.
    FAILED = "failed"
    #: Finished: `LogReader.tail` classifies what follows the last good record.
    DONE = "done"


def _header_at(data: bytearray, pos: int) -> tuple[int, bytes, int, int, int] | None:
    """``(type, reserved, seq, length, payload_crc)`` if the header verifies."""
    crc, rtype, reserved, seq, length, payload_crc = _HEADER.unpack_from(data, pos)
    if zlib.crc32(data[pos + 4 : pos + HEADER_SIZE]) != crc:
        return None
    return rtype, reserved, seq, length, payload_crc


def _check_base(base_end: int, base_crc: int, payload: bytes, name: str, offset: int) -> None:
    """Verify a base checksum record's payload against the base's length and crc32."""
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
    if claim["base_length"] != base_end or claim["base_crc32"] != base_crc:
        raise DecodeError(
            "toolkit-written base fails its checksum: damaged base", path=name, offset=0
        )


def _too_large(size: str, name: str) -> ArtifactTooLargeError:
    return ArtifactTooLargeError(
        f"base artifact of {size} bytes exceeds the {MAX_ARTIFACT_BYTES}-byte cap",
        path=name,
        offset=0,
    )


class LogReader:
    """A pure, incremental reader of log `name` from file offset `origin`.

    `feed` it the file's bytes in order, in chunks of any size, and call
    `next_record` until it returns `NEED_MORE` (feed more) or, once `finish`
    said there are no more bytes, `END_OF_LOG`; every other result is the
    next verified `Record`, in order. Then `tail` classifies the bytes after
    the last good record (``None``: there are none), exactly as `scan_log`
    does over the whole buffer, and `end` is where a repair would truncate.

    At ``origin == 0`` the base is decoded first, once its whole CBOR item
    has arrived (a partial item means "need more" until `finish`); `base`,
    `base_end` and `base_verified` describe it. Otherwise `origin` must be a
    record boundary whose record carries sequence number `next_seq`.
    `next_record` raises `DecodeError` for a damaged base or base checksum
    record and `ArtifactTooLargeError` for a base over `MAX_ARTIFACT_BYTES`;
    damage after the base is a `Tail`.

    Only unconsumed bytes are buffered: one record, or the base (tried again
    each time the buffer doubles, so up to twice its size, never much past
    `MAX_ARTIFACT_BYTES`), plus the last chunk fed; after a record fails to
    verify, later bytes are only watched for zeros. Linear time overall.

    >>> reader = LogReader("wal.log", origin=94, next_seq=1)
    >>> reader.next_record()
    <NoRecord.NEED_MORE: 'need_more'>
    >>> record = encode_record(RecordType.WAL_ENTRIES, 1, b"\\x80")
    >>> reader.feed(record + record[:10])
    >>> reader.next_record().seq, reader.next_record()
    (1, <NoRecord.NEED_MORE: 'need_more'>)
    >>> reader.finish()
    >>> reader.next_record() is END_OF_LOG, reader.tail.kind, reader.end
    (True, <TailKind.TORN: 'torn'>, 119)
    """

    def __init__(self, name: str, *, origin: int = 0, next_seq: int = 0) -> None:
        self.name = name
        self.origin = origin
        self.state = ReaderState.BASE if origin == 0 else ReaderState.RECORDS
        #: The decoded base item (plain data), or ``None``: not read (yet).
        self.base: Any = None
        self.base_end = origin
        self.base_verified = False
        #: The sequence number the next record must carry.
        self.next_seq = next_seq
        #: The classification of what follows the last good record, once `DONE`.
        self.tail: Tail | None = None
        self._pos = origin  # file offset of the next record (or of the base)
        self._buf = bytearray()  # unconsumed bytes from file offset _buf_at on
        self._buf_at = origin
        self._size = origin  # file offset after the last byte fed
        self._zeros = origin  # every byte fed from here on is zero
        self._eof = False
        self._failure: Failure | None = None
        self._bad_payload: tuple[int, int] | None = None  # (seq, end): reason needs the size
        self._base_crc = 0
        self._zero_base = False  # the base is the integer 0 unless every byte is zero
        self._decode_at = 1  # try decoding the base once this many bytes are buffered

    @property
    def end(self) -> int:
        """File offset after the base and the last record returned."""
        return self._pos

    @property
    def buffered(self) -> int:
        """How many bytes the reader holds (fed, not yet returned in a record)."""
        return max(0, self._buf_at + len(self._buf) - max(self._pos, self._buf_at))

    def feed(self, data: bytes) -> None:
        """Append the next `data` bytes of the file. Raises `ValueError` after `finish`."""
        if self._eof:
            raise ValueError(f"log reader of {self.name}: bytes fed after finish()")
        if not data:
            return
        nonzero = zero_run_start(data)
        if nonzero:  # not all zeros: the trailing run starts in this chunk
            self._zeros = self._size + nonzero
        self._size += len(data)
        if self.state is ReaderState.FAILED:
            return
        if self._pos > self._buf_at:  # drop what was consumed (each byte moves once)
            del self._buf[: self._pos - self._buf_at]
            self._buf_at = self._pos
        self._buf += data

    def finish(self) -> None:
        """Say that no more bytes follow: what is left becomes the `tail`."""
        self._eof = True

    def next_record(self) -> Record | NoRecord:
        """The next verified `Record`, `NEED_MORE` or, after `finish`, `END_OF_LOG`."""
        if self.state is ReaderState.BASE and not self._read_base():
            return NEED_MORE
        if self.state is ReaderState.RECORDS:
            found = self._read_record()
            if found is not None:
                return found
        if not self._eof:
            return NEED_MORE
        if self.state is not ReaderState.DONE:
            self._conclude()
        return END_OF_LOG

    def _read_base(self) -> bool:
        """Decode the base once its item is whole; ``False``: more bytes needed."""
        size = len(self._buf)
        if not size:
            if not self._eof:
                return False
        elif self._buf[0] == 0:  # CBOR 0; if every byte is zero there is no base (_conclude)
            self._take_base(0, 1)
            self._zero_base = True
        elif self._eof or size >= self._decode_at:  # retries double: linear time
            try:
                base, end = decode_item(bytes(self._buf))
            except DecodeError as exc:
                why = exc.__cause__ or exc
                if isinstance(why, cbor2.CBORDecodeEOF) and not self._eof:
                    if size > MAX_ARTIFACT_BYTES:
                        raise _too_large(f"more than {MAX_ARTIFACT_BYTES}", self.name) from exc
                    self._decode_at = min(2 * size, MAX_ARTIFACT_BYTES + 1)
                    return False
                raise DecodeError(
                    f"base artifact is not valid CBOR ({why})", path=self.name, offset=0
                ) from exc
            if end > MAX_ARTIFACT_BYTES:
                raise _too_large(str(end), self.name)
            self._take_base(base, end)
        else:
            return False
        self.state = ReaderState.RECORDS
        return True

    def _take_base(self, base: Any, end: int) -> None:
        self.base, self.base_end, self._pos = base, end, end
        self._base_crc = zlib.crc32(self._buf[:end])

    def _read_record(self) -> Record | NoRecord | None:
        """The next record, `NEED_MORE`, or ``None``: a clean end or a failure
        (then only the trailing zeros of later bytes matter: none are kept)."""
        found = self._verify_next()
        if not isinstance(found, Failure):
            return found
        self._failure, self.state = found, ReaderState.FAILED
        self._buf, self._buf_at = bytearray(), self._size
        return None

    def _verify_next(self) -> Record | NoRecord | Failure | None:
        buf, at, pos, seq = self._buf, self._pos - self._buf_at, self._pos, self.next_seq
        left = len(buf) - at
        if left < HEADER_SIZE:
            if not self._eof:
                return NEED_MORE
            return Failure(f"incomplete record header ({left} bytes)", torn=True) if left else None
        header = _header_at(buf, at)
        if header is None:  # zeros from inside the header explain it; its length is unknown
            return Failure(
                "record header checksum mismatch", zeros_explain_before=pos + HEADER_SIZE
            )
        rtype, reserved, rseq, length, payload_crc = header
        if rtype not in RecordType._value2member_map_:
            return Failure(f"unknown record type {rtype}", newer=True)
        if reserved != _RESERVED:
            return Failure(f"nonzero reserved header bytes in record {rseq}")
        if rseq != seq:
            return Failure(f"sequence gap: expected record {seq}, found {rseq}")
        if length > MAX_ARTIFACT_BYTES:
            return Failure(f"record length {length} exceeds the {MAX_ARTIFACT_BYTES}-byte cap")
        if left < HEADER_SIZE + length:
            if not self._eof:
                return NEED_MORE
            return Failure(
                f"payload of record {seq} runs past end of file "
                f"({length} bytes declared, {left - HEADER_SIZE} present)",
                torn=True,
            )
        payload = bytes(buf[at + HEADER_SIZE : at + HEADER_SIZE + length])
        end = pos + HEADER_SIZE + length
        if zlib.crc32(payload) != payload_crc:
            self._bad_payload = (seq, end)  # what it means depends on the bytes after it
            return Failure("payload checksum mismatch")
        kind = RecordType(rtype)
        if kind is RecordType.BASE_CHECKSUM:
            if self.base is None or pos != self.base_end or seq != 0:
                return Failure(f"unexpected base checksum record {seq}")
            _check_base(self.base_end, self._base_crc, payload, self.name, pos)
            self.base_verified = True
        self.next_seq, self._pos = seq + 1, end
        return Record(offset=pos, type=kind, seq=seq, payload=payload)

    def _conclude(self) -> None:
        self.state, self._buf = ReaderState.DONE, bytearray()
        size, failure = self._size, self._failure
        if self._zero_base and self._zeros == 0:  # nothing but zeros: no base at all
            self.base, self.base_end, self._pos = None, 0, 0
            failure = Failure("", torn=True)
        elif self._bad_payload is not None:
            failure = payload_failure(*self._bad_payload, size)
        if failure is not None:
            self.tail = classify_tail(failure, self._pos, size, self._zeros)


def scan_log(data: bytes, *, name: str, origin: int = 0, next_seq: int = 0) -> LogScan:
    """Scan `data`, the bytes of log `name` from file offset `origin` to its
    end: a `LogReader` fed all of `data` at once, then finished (an empty or
    all-zero `data` has no base). Offsets in the result and in error messages
    are file offsets; the errors are the reader's. Linear in ``len(data)``.
    """
    reader = LogReader(name, origin=origin, next_seq=next_seq)
    reader.feed(data)
    reader.finish()
    records = []
    while isinstance(found := reader.next_record(), Record):
        records.append(found)
    return LogScan(
        base=reader.base,
        base_end=reader.base_end,
        base_verified=reader.base_verified,
        records=tuple(records),
        end=reader.end,
        next_seq=reader.next_seq,
        tail=reader.tail,
    )
