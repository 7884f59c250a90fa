"""What repairing a log file would do, found without changing anything:
`scan_for_repair` (``durability repair PATH``, the dry run).

A log is read as opening it would (``backends/logread.py``: framing, then
each record decoded and applied), but nothing stops at the first bad byte:

* a *torn tail* (a write cut short by a crash) would be cut at its offset,
  as opening for writing does (`RecoveryMode.TOLERATE_TORN_TAIL`);
* *damage* in the middle (a record that fails its checksums, or verifies but
  does not decode or apply) would be cut at the damage, keeping the valid
  prefix, as `RecoveryMode.POINT_IN_TIME` does; the bytes after the damage
  are searched for records that still verify (a header whose checksum holds,
  with a later sequence number, and its payload's), so the report says how
  many records, holding how many entries, only the damaged copy would keep;
* damage no repair may cut is *unrepairable*: a damaged base, a record of a
  type this version does not know (a newer version's), damage right after a
  base no checksum vouches for (the base itself may be damaged).

What each recovery mode does with the log when opened for writing is read
from `TAIL_POLICY`, so the report cannot drift from what opening does.
"""

from __future__ import annotations

import enum
import mmap
import os
import zlib

import attrs

from .backends.logread import TAIL_POLICY, Access, TailAction, read_records
from .backends.logstate import CacheState, LogState, WalState, interpret_base
from .backends.modes import RecoveryMode
from .codec import decode_item
from .errors import DecodeError, PayloadKindError
from .fileio import DEFAULT_FS, FileSystem
from .framing import LogReader, Record, RecordType, Tail, TailKind
from .limits import HEADER, HEADER_SIZE, MAX_ARTIFACT_BYTES
from .persisted import kind_of
from .tails import zero_run_start

__all__ = [
    "AfterDamage",
    "ModeOutcome",
    "RepairPlan",
    "RepairState",
    "scan_for_repair",
    "scan_open",
]


class RepairState(enum.Enum):
    """What a log needs."""

    #: Nothing to repair.
    CLEAN = "clean"
    #: A torn tail to cut.
    TORN_TAIL = "torn_tail"
    #: Damage in the middle: keep the valid prefix, the rest only in a copy.
    DAMAGE = "damage"
    #: Damage no repair may cut (see the module rules).
    UNREPAIRABLE = "unrepairable"


@attrs.frozen(kw_only=True)
class AfterDamage:
    """The records found intact after mid-log damage: how many (`records`),
    the entries they hold (`entries`), the first one's sequence number and
    byte offset, and the last one's sequence number (``None``: none found)."""

    records: int = 0
    entries: int = 0
    first_record: int | None = None
    first_offset: int | None = None
    last_record: int | None = None


@attrs.frozen(kw_only=True)
class ModeOutcome:
    """What opening the log for writing in `mode` does (`action`, from
    `TAIL_POLICY`) and keeps, in words (`text`)."""

    mode: RecoveryMode
    action: TailAction
    text: str


@attrs.frozen(kw_only=True)
class RepairPlan:
    """What `scan_for_repair` found in log `path` (`size` bytes, payload
    `kind` text or ``None`` for an empty log).

    `state` says what is needed and `reason` why (``None`` when clean). A
    repair cuts at byte `offset`, dropping `dropped` bytes and keeping the
    base and `kept_records` records (counted as ``durability inspect`` and
    ``verify`` count them, the base checksum record included) holding
    `kept_entries` entries (WAL
    entries, cache bindings or intents). For damage, `damaged_record` is the
    sequence number of the first record lost and `after` what lies intact
    after it.
    """

    path: str
    size: int
    kind: str | None
    state: RepairState
    reason: str | None = None
    offset: int | None = None
    kept_records: int = 0
    kept_entries: int = 0
    damaged_record: int | None = None
    after: AfterDamage | None = None

    @property
    def dropped(self) -> int:
        """Bytes a repair cuts (0 when none)."""
        return self.size - self.offset if self.offset is not None else 0

    @property
    def needed(self) -> bool:
        """Whether the log needs a repair (repairable or not)."""
        return self.state is not RepairState.CLEAN

    @property
    def mode(self) -> RecoveryMode | None:
        """The recovery mode whose cut a repair makes: `TOLERATE_TORN_TAIL`
        for a torn tail, `POINT_IN_TIME` for damage, else ``None``."""
        return _REPAIR_MODE.get(self.state)

    @property
    def lost(self) -> str:
        """What a repair of damage leaves only in the damaged copy, in words."""
        after = self.after or AfterDamage()
        if not after.records:
            return "no intact record lies after the damage"
        unreadable = ""
        if after.first_record is not None and self.damaged_record is not None:
            first, last = self.damaged_record, after.first_record - 1
            unreadable = f"record {first}" if first == last else f"records {first}..{last}"
            unreadable = f" ({unreadable} unreadable)"
        return (
            f"{after.records} intact records ({after.entries} entries) lie after the damage"
            f"{unreadable}, from byte offset {after.first_offset}: they stay only in the copy"
        )

    def modes(self) -> list[ModeOutcome]:
        """What each recovery mode does when the log is opened for writing."""
        if self.state is RepairState.CLEAN:
            return []
        kind = TailKind.TORN if self.state is RepairState.TORN_TAIL else TailKind.DAMAGE
        outcomes = []
        for mode in RecoveryMode:
            action = TAIL_POLICY[kind, mode, Access.WRITER]
            if self.state is RepairState.UNREPAIRABLE:
                action = TailAction.FAIL_CLOSED  # the engine never cuts these
            outcomes.append(ModeOutcome(mode=mode, action=action, text=self._words(action)))
        return outcomes

    def _words(self, action: TailAction) -> str:
        kept = f"keeping {self.kept_records} records ({self.kept_entries} entries)"
        cut = f"cuts {self.dropped} bytes at offset {self.offset}, {kept}"
        if action is TailAction.CUT:
            return cut
        if action is TailAction.CUT_KEEPING_COPY:
            return f"copies the file to {os.path.basename(self.path)}.damaged-<n>, {cut}"
        return f"refuses to open it (fails closed at offset {self.offset}): cuts nothing"


_REPAIR_MODE = {
    RepairState.TORN_TAIL: RecoveryMode.TOLERATE_TORN_TAIL,
    RepairState.DAMAGE: RecoveryMode.POINT_IN_TIME,
}
_STATES: dict[str, type[LogState[object]]] = {
    "agreement_wal": WalState,  # type: ignore[dict-item]
    "evidence_outcome_cache": CacheState,  # type: ignore[dict-item]
}


def scan_for_repair(path: str | os.PathLike[str], *, fs: FileSystem = DEFAULT_FS) -> RepairPlan:
    """What repairing the log file `path` would do; changes nothing (the file
    is read under a shared lock, as a reader would). Raises `StorageError`
    when it cannot be read and `PayloadKindError` when it holds recovery
    metadata, not a WAL or cache log."""
    name = os.fspath(path)
    fd = fs.open_ro(name)
    try:
        with fs.locked(fd, name, exclusive=False):
            return scan_open(fs, fd, name)
    finally:
        fs.close(fd)


def scan_open(fs: FileSystem, fd: int, name: str) -> RepairPlan:
    """`scan_for_repair` of the log `name` open as `fd`, under the caller's lock."""
    size = fs.size(fd, name)
    reader = LogReader(name)
    state: LogState[object] | None = None
    kind: str | None = None
    kept = entries = 0
    last_seq = -1
    bad: tuple[Record, str] | None = None
    try:
        for record in read_records(fs, fd, name, reader, size):
            if state is None:
                state, kind = _start(reader.base, name)
            try:
                count = state.replay(record, name)
            except DecodeError as exc:  # verifies, but does not decode or apply
                bad = (record, exc.reason)
                break
            kept, entries = kept + 1, entries + count
            last_seq = record.seq
        else:
            if state is None and reader.base is not None:
                state, kind = _start(reader.base, name)
    except DecodeError as exc:  # the base, or its checksum record: never repaired
        return RepairPlan(
            path=name,
            size=size,
            kind=kind,
            state=RepairState.UNREPAIRABLE,
            reason=str(exc),
            offset=0,
        )
    plan = RepairPlan(
        path=name,
        size=size,
        kind=kind,
        state=RepairState.CLEAN,
        kept_records=kept,
        kept_entries=entries,
    )
    if bad is not None:
        record, why = bad
        damage = Tail(
            offset=record.offset, dropped=size - record.offset, kind=TailKind.DAMAGE, reason=why
        )
        return _damage(fs, fd, plan, damage, record.seq, resync_from=record.end)
    tail = reader.tail
    if tail is None:
        return plan
    if tail.kind is TailKind.TORN:
        return attrs.evolve(
            plan, state=RepairState.TORN_TAIL, reason=tail.reason, offset=tail.offset
        )
    why = ""
    if tail.newer_version:
        why = (
            f"{tail.reason}: written by a newer version of durability (upgrade; no repair cuts it)"
        )
    elif not reader.base_verified and tail.offset == reader.base_end:
        why = (
            f"{tail.reason}, right after a base no checksum vouches for: the base itself may be "
            "damaged, and a damaged base is never repaired"
        )
    if why:
        return attrs.evolve(plan, state=RepairState.UNREPAIRABLE, reason=why, offset=tail.offset)
    return _damage(fs, fd, plan, tail, last_seq + 1, resync_from=None)


def _start(base: object, name: str) -> tuple[LogState[object], str]:
    """The state a decoded base starts, and its kind text."""
    payload = interpret_base(base, name)
    kind = kind_of(payload)
    make = _STATES.get(kind)
    if make is None:
        raise PayloadKindError(f"{name} holds {kind.replace('_', ' ')}, not a WAL or cache log")
    state = make()
    state.take_base(payload, name)
    return state, kind


def _damage(
    fs: FileSystem, fd: int, plan: RepairPlan, tail: Tail, damaged: int, *, resync_from: int | None
) -> RepairPlan:
    """`plan` for damage at `tail`, first losing record `damaged`; the search
    for intact records starts at `resync_from` (a record boundary) or at the
    first verifying header after the damage."""
    after = _intact_after(fs, fd, plan.path, tail.offset, damaged, resync_from)
    return attrs.evolve(
        plan,
        state=RepairState.DAMAGE,
        reason=tail.reason,
        offset=tail.offset,
        damaged_record=damaged,
        after=after,
    )


def _intact_after(
    fs: FileSystem, fd: int, name: str, offset: int, damaged: int, boundary: int | None
) -> AfterDamage:
    """Count the records that still verify after damage at `offset`: from
    record boundary `boundary`, or from the first header after `offset` that
    verifies with a sequence number of at least `damaged`; after further
    damage, the search starts again past it."""
    size = fs.size(fd, name)
    found = AfterDamage()
    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as data:
        zeros = zero_run_start(data)  # type: ignore[arg-type]
        at: tuple[int, int] | None = (boundary, damaged + 1) if boundary is not None else None
        search, min_seq = offset + 1, damaged
        while True:
            if at is None:
                at = _next_header(data, search, min_seq, zeros)
            if at is None:
                return found
            reader = LogReader(name, origin=at[0], next_seq=at[1])
            for record in read_records(fs, fd, name, reader, size):
                found = AfterDamage(
                    records=found.records + 1,
                    entries=found.entries + _items(record),
                    first_record=found.first_record
                    if found.first_record is not None
                    else record.seq,
                    first_offset=found.first_offset
                    if found.first_offset is not None
                    else record.offset,
                    last_record=record.seq,
                )
            tail = reader.tail
            if tail is None or tail.kind is TailKind.TORN:
                return found
            search, min_seq, at = tail.offset + 1, reader.next_seq, None


def _next_header(data: mmap.mmap, start: int, min_seq: int, zeros: int) -> tuple[int, int] | None:
    """``(offset, sequence)`` of the first record at or after `start` whose
    header and payload verify and whose sequence is at least `min_seq`; none
    starts in the run of zeros from `zeros` to the end. Candidates are found
    by their three reserved zero bytes."""
    size = len(data)
    hit = data.find(b"\0\0\0", start + 5)
    while hit != -1 and hit - 5 < zeros and hit - 5 + HEADER_SIZE <= size:
        pos = hit - 5
        crc, rtype, _reserved, seq, length, payload_crc = HEADER.unpack_from(data, pos)
        stop = pos + HEADER_SIZE + length
        if (
            seq >= min_seq
            and rtype in RecordType._value2member_map_
            and length <= MAX_ARTIFACT_BYTES
            and stop <= size
            and zlib.crc32(data[pos + 4 : pos + HEADER_SIZE]) == crc
            and zlib.crc32(data[pos + HEADER_SIZE : stop]) == payload_crc
        ):
            return pos, seq
        hit = data.find(b"\0\0\0", hit + 1)
    return None


def _items(record: Record) -> int:
    """How many items (entries, bindings, intents) a record's payload holds."""
    try:
        plain, _used = decode_item(record.payload)
    except DecodeError:
        return 0
    return len(plain) if isinstance(plain, list) else 0
