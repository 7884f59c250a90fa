"""The index of a sealed WAL segment, and of the pruned history
(``specs/segments.md``). Pure: entries in, bytes out, and back.

A `SegmentIndex` says where a sealed segment sits in the WAL (its number,
the sequence of its first entry, how many entries), what it holds (lowest
and highest tick, byte length and crc32 of the file) and, per operation it
touches, an `OpState`: the `new_level` of its last escalation, the highest
level its entries prove, the outcome of its last finalization, how many
entries and their tick range. That is what validating an append (escalation
order), serving a `wal_sync` (levels) and planning from a checkpoint need
from entries that are not read again. The pruned history is one more index
of the same form (``pruned=True``): the operations of every segment pruned
so far, merged.

An index file is two CBOR items: a header map (protected by its own crc32,
and holding the length and crc32 of the second) and the body,
``{"ops": [op ids], "states": bytes}`` with one fixed-size `OpState` per id.
The header decodes alone, so opening a WAL reads each index's header only;
the body is decoded when an operation's state is asked for.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import attrs

from ..artifact import Escalation, Finalization, WalEntry, proven_level
from ..codec import decode_item, dumps
from ..errors import DecodeError, EncodeError
from ..model import AgreementLevel, FinalizationOutcome, max_level

__all__ = [
    "INDEX_FORMAT",
    "Layout",
    "OpState",
    "OpTable",
    "SegmentIndex",
    "decode_index",
    "encode_index",
]

#: The ``format`` field of every index file.
INDEX_FORMAT = "durability.segment-index.v1"
_LEVELS = tuple(AgreementLevel)
_OUTCOMES = tuple(FinalizationOutcome)
#: escalation level, proven level, finalization outcome (-1: none), entries,
#: lowest tick, highest tick.
_STATE = struct.Struct("<bbbxQQQ")


class OpState(NamedTuple):
    """What the entries of one segment (or the pruned history) say about one operation."""

    escalation: AgreementLevel | None
    proven: AgreementLevel
    finalization: FinalizationOutcome | None
    entries: int
    first_tick: int
    last_tick: int

    def then(self, later: OpState) -> OpState:
        """This state followed by `later` (the entries after it)."""
        return OpState(
            later.escalation if later.escalation is not None else self.escalation,
            max_level(self.proven, later.proven),
            later.finalization if later.finalization is not None else self.finalization,
            self.entries + later.entries,
            min(self.first_tick, later.first_tick),
            max(self.last_tick, later.last_tick),
        )


class OpTable:
    """Per-operation `OpState`s, built entry by entry in WAL order."""

    def __init__(self, states: Mapping[str, OpState] | None = None) -> None:
        self.states: dict[str, OpState] = dict(states or {})

    def add(self, entries: Iterable[WalEntry]) -> None:
        """Account for `entries`, in WAL order."""
        # one mutable row per operation (a segment holds thousands of entries):
        # [escalation, proven, finalization, entries, first tick, last tick]
        rows: dict[str, list[Any]] = {}
        for entry in entries:
            tick, level = entry.tick, proven_level(entry)
            row = rows.get(entry.operation_id)
            if row is None:
                row = rows[entry.operation_id] = [None, level, None, 1, tick, tick]
            else:
                row[3] += 1
                if level._rank > row[1]._rank:
                    row[1] = level
                if tick < row[4]:
                    row[4] = tick
                elif tick > row[5]:
                    row[5] = tick
            if isinstance(entry, Escalation):
                row[0] = entry.new_level
            elif isinstance(entry, Finalization):
                row[2] = entry.outcome
        self.then({op: OpState(*row) for op, row in rows.items()})

    def then(self, later: Mapping[str, OpState]) -> None:
        """Merge `later` (states of entries after these) into this table."""
        states = self.states
        for op, state in later.items():
            before = states.get(op)
            states[op] = state if before is None else before.then(state)

    def body(self) -> bytes:
        """The index body holding this table."""
        pack = _STATE.pack
        blob = b"".join(
            pack(
                -1 if s.escalation is None else _LEVELS.index(s.escalation),
                _LEVELS.index(s.proven),
                -1 if s.finalization is None else _OUTCOMES.index(s.finalization),
                s.entries,
                s.first_tick,
                s.last_tick,
            )
            for s in self.states.values()
        )
        return dumps({"ops": list(self.states), "states": blob})


@attrs.frozen(kw_only=True)
class SegmentIndex:
    """The index of sealed segment `segment` (or, with `pruned`, of every
    segment up to `segment`, pruned): its entries have sequences
    `first_sequence` .. `last_sequence` and ticks `min_tick` .. `max_tick`
    (``None`` without entries); the segment file is `size` bytes with crc32
    `crc32` (0 and 0 for the pruned history)."""

    segment: int
    first_sequence: int
    entries: int
    records: int
    min_tick: int | None
    max_tick: int | None
    size: int
    crc32: int
    pruned: bool = False
    body: bytes = attrs.field(default=b"", repr=False, eq=False)

    @property
    def last_sequence(self) -> int:
        """The sequence of the last entry (``first_sequence - 1`` when empty)."""
        return self.first_sequence + self.entries - 1

    def ops(self) -> list[str]:
        """The operations with an entry here, in first-appearance order."""
        return list(self._body()[0])

    def op_states(self, only: Iterable[str] | None = None) -> dict[str, OpState]:
        """The `OpState` of every operation here (or of those in `only`)."""
        ops, blob = self._body()
        positions: Iterable[int] = range(len(ops))
        if only is not None:
            hits = set(only).intersection(ops)
            positions = [i for i, op in enumerate(ops) if op in hits] if hits else ()
        unpack = _STATE.unpack_from
        found: dict[str, OpState] = {}
        for i in positions:
            op = ops[i]
            esc, proven, fin, count, first, last = unpack(blob, i * _STATE.size)
            found[op] = OpState(
                None if esc < 0 else _LEVELS[esc],
                _LEVELS[proven],
                None if fin < 0 else _OUTCOMES[fin],
                count,
                first,
                last,
            )
        return found

    def _body(self) -> tuple[list[str], bytes]:
        plain, _used = decode_item(self.body)
        return plain["ops"], plain["states"]


_FIELDS = ("segment", "first_sequence", "entries", "records", "min_tick", "max_tick")


def encode_index(index: SegmentIndex, table: OpTable) -> bytes:
    """The bytes of the index file of `index`, with `table` as its body."""
    body = table.body()
    header: dict[str, Any] = {
        "format": INDEX_FORMAT,
        **{name: getattr(index, name) for name in _FIELDS},
        "bytes": index.size,
        "crc32": index.crc32,
        "pruned": index.pruned,
        "body_length": len(body),
        "body_crc32": zlib.crc32(body),
    }
    return dumps({**header, "index_crc32": zlib.crc32(dumps(header))}) + body


def decode_index(data: bytes, name: str) -> SegmentIndex:
    """The index held by `data`, the bytes of index file `name`; `DecodeError`
    (naming the file) when it is damaged or not an index."""

    def damaged(reason: str, offset: int = 0) -> DecodeError:
        return DecodeError(f"segment index: {reason}", path=name, offset=offset)

    try:
        header, used = decode_item(data)
    except DecodeError as exc:
        raise damaged(exc.reason) from exc
    if not isinstance(header, dict) or header.get("format") != INDEX_FORMAT:
        raise damaged("not a segment index")
    claimed = header.pop("index_crc32", None)
    try:
        if claimed != zlib.crc32(dumps(header)):
            raise damaged("header fails its checksum")
    except EncodeError as exc:
        raise damaged(f"not plain CBOR data ({exc})") from exc
    body = data[used:]
    if len(body) != header.get("body_length") or zlib.crc32(body) != header.get("body_crc32"):
        raise damaged("body fails its checksum", used)
    ints = (*_FIELDS[:4], "bytes", "crc32")
    if not all(isinstance(header.get(k), int) and header[k] >= 0 for k in ints) or not all(
        header.get(k) is None or isinstance(header[k], int) for k in _FIELDS[4:]
    ):
        raise damaged("a field is missing or wrong")
    return SegmentIndex(
        **{k: header[k] for k in _FIELDS},
        size=header["bytes"],
        crc32=header["crc32"],
        pruned=bool(header.get("pruned")),
        body=body,
    )


@attrs.frozen(kw_only=True)
class Layout:
    """Where the active segment of a WAL sits: after the pruned history
    (`pruned`, ``None`` when nothing was pruned) and the `sealed` segments
    in order, as segment number `active`, its first entry taking sequence
    `first_sequence`. A single-file log is segment 1, from sequence 1."""

    sealed: tuple[SegmentIndex, ...] = ()
    pruned: SegmentIndex | None = None
    active: int = 1
    first_sequence: int = 1
    #: The names in ``PATH.seg/`` this was read from.
    names: frozenset[str] = attrs.field(default=frozenset(), repr=False, eq=False)

    @property
    def history(self) -> tuple[SegmentIndex, ...]:
        """The pruned history (if any), then the sealed segments."""
        return self.sealed if self.pruned is None else (self.pruned, *self.sealed)
