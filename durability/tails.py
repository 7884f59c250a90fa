"""What follows the last good record of a log (``specs/log_format.md``,
"Readers"), and the rules that classify it. Pure: offsets in, values out.

Exactly four things are a *torn tail* (`TailKind.TORN`, a write cut short by
a crash): fewer bytes left than a header; a header that verifies whose
payload runs past the end of the file; the last record, ending exactly at the
end of the file, with a bad payload checksum; a run of zero bytes reaching
the end of the file that starts inside (or before) the first record failing
to verify. Everything else is damage (`TailKind.DAMAGE`). `durability.framing`
finds the first record that fails and why (a `Failure`); `classify_tail`
applies the rules once the end of the file, and where its trailing run of
zeros starts, are known.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

import attrs

from .errors import DecodeError

__all__ = ["Failure", "Tail", "TailKind", "classify_tail", "payload_failure", "zero_run_start"]


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
        hint = " (written by a newer version?)" if self.newer_version else ""
        return DecodeError(self.reason + hint, path=name, offset=self.offset)

    records_dropped: int = 0
    #: The damage is a verified record of a type this reader does not know:
    #: a newer version's, which no recovery mode may cut (it fails closed).
    newer_version: bool = False


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
    if end and data[-1]:  # the common case: nothing to scan
        return end
    while end:
        start = max(0, end - _ZERO_SCAN_BLOCK)
        kept = len(data[start:end].rstrip(b"\0"))
        if kept:
            return start + kept
        end = start
    return 0


class Failure(NamedTuple):
    """Why the record at some offset does not verify, and what could explain it."""

    reason: str
    #: One of torn-tail cases 1-3 (the file ends inside or right after it).
    torn: bool = False
    #: A zero run reaching the end of the file that starts before this file
    #: offset explains the failure (case 4); 0 when nothing would.
    zeros_explain_before: int = 0
    #: How many records such a zero run drops, at least.
    records_if_zeroed: int = 1
    #: A verified header naming a record type this reader does not know.
    newer: bool = False


def payload_failure(seq: int, end: int, size: int) -> Failure:
    """Record `seq`, ending at `end`, failed its payload checksum in a file of `size` bytes."""
    if end == size:
        return Failure(f"payload checksum mismatch in last record {seq}", torn=True)
    return Failure(  # zeros from inside it: it and at least one record after it are lost
        f"payload checksum mismatch in record {seq} with {size - end} bytes after it",
        zeros_explain_before=end,
        records_if_zeroed=2,
    )


def classify_tail(failure: Failure, pos: int, size: int, zeros: int) -> Tail:
    """Classify the bytes from file offset `pos` (a record boundary) to `size`,
    where `failure` was found, given that every byte from `zeros` on is zero."""
    kind, count, reason = TailKind.TORN, 1, failure.reason
    if zeros <= pos:  # nothing but zeros from this record boundary on
        reason = _zero_reason(pos, 1)
    elif failure.torn:
        pass
    elif zeros < failure.zeros_explain_before:  # zeros from inside this record on
        count = failure.records_if_zeroed
        reason = _zero_reason(zeros, count)
    else:
        kind, count = TailKind.DAMAGE, 0
    return Tail(
        offset=pos,
        dropped=size - pos,
        kind=kind,
        reason=reason,
        records_dropped=count,
        newer_version=failure.newer and kind is TailKind.DAMAGE,
    )


def _zero_reason(offset: int, records: int) -> str:
    what = "record" if records == 1 else "records"
    return f"zero bytes from offset {offset} to end of file (at least {records} {what} dropped)"
