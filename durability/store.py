"""The state directory: the startup path in one object.

A state directory holds the agreement WAL (``wal.log``), the evidence outcome
cache (``evidence.log``) and checkpoints (``checkpoints/``)::

    with StateDirectory("state") as store:          # repairs a torn tail, if any
        plan = store.plan_recovery()                # from the latest checkpoint
        handler = store.wrap(my_handler, resolver)  # wal_sync + evidence cache

A checkpoint is one file, ``checkpoints/checkpoint-<tick>.cbor``, written
atomically: a CBOR map holding the tick, the caller's state bytes and the v1
recovery-metadata artifact of the WAL at that moment. Writers of checkpoints
are serialised by an owner-only lock file in the directory. Opened with
``read_only=True``, nothing under the directory is created, written or
repaired (what ``durability plan`` uses).

The WAL and the cache may live elsewhere, in any backend a §10 URL names,
while checkpoints stay in the directory::

    StateDirectory("state", wal="sqlite:///state.db", cache="sqlite:///state.db")
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

import attrs

from .artifact import DurableRecoveryMetadata, EvidenceOutcomeCacheArtifact
from .backends.file import (
    FileAgreementWal,
    FileEvidenceOutcomeCache,
    RecoveryMode,
    SyncPolicy,
)
from .codec import decode_item, dumps
from .effects import EffectRequest
from .errors import DecodeError, EncodeError, StorageError
from .evidence import EvidencePersistenceHandler
from .fileio import DEFAULT_FS, FileSystem
from .handlers import AgreementWalHandler, WalSyncMode
from .intents import EffectIntent
from .locate import locator_for
from .persisted import MAX_ARTIFACT_BYTES, envelope_plain, payload_from_envelope
from .planner import DurableRecoveryPlan
from .suffixplan import plan_from_parts
from .urls import AnyCache, AnyWal, open_cache, open_wal, parse_storage_url

__all__ = [
    "Checkpoint",
    "StateDirectory",
    "decode_checkpoint",
    "encode_checkpoint",
    "looks_like_checkpoint",
    "plan_wal",
]

WAL_FILE = "wal.log"
CACHE_FILE = "evidence.log"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_FORMAT = "durability.checkpoint.v1"
_CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d{20})\.cbor$")


@attrs.frozen(kw_only=True)
class Checkpoint:
    """One checkpoint: its `tick`, the caller's `state` bytes, and the recovery
    metadata of the WAL when it was written."""

    tick: int
    state: bytes
    metadata: DurableRecoveryMetadata
    path: Path


def decode_checkpoint(data: bytes, path: Path, *, tick: int | None = None) -> Checkpoint:
    """The checkpoint held by `data`, the bytes of file `path`; `tick`, when
    given, must be the one it holds (else the tick in its name, when it has
    the ``checkpoint-<tick>.cbor`` form). Raises `DecodeError` naming the file."""
    where = str(path)

    def damaged(reason: str) -> DecodeError:
        return DecodeError(reason, path=where, offset=0)  # the checkpoint as a whole

    try:
        obj, end = decode_item(data)
    except DecodeError as exc:
        raise exc.located(path=where) from exc
    if end != len(data) or not isinstance(obj, dict):
        raise damaged("not a checkpoint")
    if obj.get("format") != CHECKPOINT_FORMAT:
        raise damaged(f"unknown checkpoint format {obj.get('format')!r}")
    claimed = obj.pop("crc32", None)  # absent in checkpoints of earlier versions
    try:
        body = dumps(obj)
    except EncodeError as exc:
        raise damaged(f"not plain CBOR data ({exc})") from exc
    if claimed is not None and claimed != zlib.crc32(body):
        raise damaged("checkpoint fails its checksum")
    named = _CHECKPOINT_NAME.match(path.name)
    expected = tick if tick is not None else int(named.group(1)) if named else None
    found, state = obj.get("tick"), obj.get("state")
    if not isinstance(found, int) or found < 0 or not isinstance(state, bytes):
        raise damaged("tick or state field is wrong")
    if expected is not None and found != expected:
        raise damaged(f"holds tick {found}, expected {expected}")
    try:
        _version, metadata = payload_from_envelope(obj.get("recovery_metadata"), path=where)
    except DecodeError as exc:
        raise exc.located(at=0) from exc
    if not isinstance(metadata, DurableRecoveryMetadata):
        raise damaged(f"recovery_metadata holds a {type(metadata).__name__}")
    return Checkpoint(tick=found, state=state, metadata=metadata, path=path)


def encode_checkpoint(tick: int, state: bytes, metadata: DurableRecoveryMetadata) -> bytes:
    """The bytes of a checkpoint file: a CBOR map of the format, tick, state
    and recovery metadata, and a crc32 of the map without it."""
    body: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "tick": tick,
        "state": state,
        "recovery_metadata": envelope_plain(metadata),
    }
    return dumps({**body, "crc32": zlib.crc32(dumps(body))})


def looks_like_checkpoint(data: bytes) -> bool:
    """Whether `data` is a CBOR map naming the checkpoint format (damaged or not)."""
    try:
        obj, _end = decode_item(data)
    except DecodeError:
        return False
    return isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT


def _options_for(url: str | os.PathLike[str], options: dict[str, Any]) -> dict[str, Any]:
    """The file options for a file URL; only ``read_only`` for a SQL one."""
    if parse_storage_url(url).kind == "file":
        return options
    return {"read_only": options["read_only"]}


class StateDirectory:
    """Opens (creating if needed) a state directory and its two logs.

    Opening repairs a torn tail of either log (see `repairs`) and fails closed,
    with a `DecodeError` naming file and offset, on any other damage. New
    directories are owner-only and fsynced into their parent.

    With ``read_only=True`` the directory must exist; nothing is created,
    written, truncated or repaired (a missing log reads as empty, a torn tail
    is reported in `repairs` as what a writer would cut), `checkpoint` raises
    `StorageError`, and a user who may only read the directory can plan.
    `sync`, `recovery` and `fs` (the I/O seam) are passed to both file backends.

    `wal` and `cache` put the WAL and the cache elsewhere: a path or §10 URL
    (``sqlite:///state.db``, ``postgresql://...``; a SQL one opened
    ``read_only`` too when the directory is), or a backend already open (its
    own options kept). Either way the directory closes them; checkpoints
    stay in the directory.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        read_only: bool = False,
        sync: SyncPolicy = SyncPolicy.DURABLE,
        recovery: RecoveryMode = RecoveryMode.TOLERATE_TORN_TAIL,
        fs: FileSystem = DEFAULT_FS,
        wal: str | os.PathLike[str] | AnyWal | None = None,
        cache: str | os.PathLike[str] | AnyCache | None = None,
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._fs = fs
        if not self.path.is_dir():
            if not create or read_only:
                raise StorageError(f"state directory {self.path} does not exist")
            fs.make_dirs(str(self.path))
        options: dict[str, Any] = {
            "sync": sync,
            "recovery": recovery,
            "fs": fs,
            "read_only": read_only,
        }
        self.wal: AnyWal
        self.cache: AnyCache
        if wal is None:
            self.wal = FileAgreementWal(self.path / WAL_FILE, **options)
        elif isinstance(wal, str | os.PathLike):
            self.wal = open_wal(wal, **_options_for(wal, options))
        else:
            self.wal = wal
        if cache is None:
            self.cache = FileEvidenceOutcomeCache(self.path / CACHE_FILE, **options)
        elif isinstance(cache, str | os.PathLike):
            self.cache = open_cache(cache, **_options_for(cache, options))
        else:
            self.cache = cache
        self._names = (WAL_FILE if wal is None else None, CACHE_FILE if cache is None else None)
        self._checkpoints = self.path / CHECKPOINT_DIR

    # -- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        """Close both logs (optional: dropping the object releases them too)."""
        self.wal.close()
        self.cache.close()

    def __enter__(self) -> StateDirectory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def repairs(self) -> dict[str, Any]:
        """Torn tails cut away when the logs were opened (read-only: that a
        writer would cut), as `TornTail` by file name (``None`` for a clean
        log); a log given as `wal` or `cache` is named by its path. A SQL
        backend has no torn tail (it commits whole transactions): not listed."""
        found: dict[str, Any] = {}
        for name, log in zip(self._names, (self.wal, self.cache), strict=True):
            if isinstance(log, FileAgreementWal | FileEvidenceOutcomeCache):
                found[name or log.path] = log.torn_tail
        return found

    # -- checkpoints ---------------------------------------------------------

    def checkpoint(self, tick: int, state: bytes) -> Checkpoint:
        """Write a checkpoint at `tick` holding `state`, atomically.

        The recovery metadata stored beside the state is that of a plan from
        this tick over the WAL as it is now (non-strict). Raises `StorageError`
        if the file cannot be written (or the directory is open read-only, or
        the checkpoint or lock path is a symbolic link) and `EncodeError` if
        it would exceed `MAX_ARTIFACT_BYTES`.
        """
        if self.read_only:
            raise StorageError(f"state directory {self.path} is open read-only")
        if not isinstance(state, bytes):
            raise TypeError(f"checkpoint state must be bytes, got {type(state).__name__}")
        metadata = self._plan(tick, None, strict=False).metadata
        data = encode_checkpoint(tick, state, metadata)
        if len(data) > MAX_ARTIFACT_BYTES:
            raise StorageError(f"checkpoint at tick {tick} is {len(data)} bytes, over the cap")
        self._fs.make_dirs(str(self._checkpoints))
        target = self._checkpoints / f"checkpoint-{tick:020d}.cbor"
        with self._fs.lock_file(str(self.path / ".checkpoint.lock")):
            self._fs.refuse_link(str(target), "write")
            self._fs.replace_atomically(str(target), data)
        return Checkpoint(tick=tick, state=state, metadata=metadata, path=target)

    def checkpoint_ticks(self) -> list[int]:
        """Ticks of the checkpoints present, ascending. A symbolic link at
        ``checkpoints/`` is refused (`StorageError`), never followed."""
        self._fs.refuse_link(str(self._checkpoints))
        if not self._checkpoints.is_dir():
            return []
        ticks = []
        for name in os.listdir(self._checkpoints):
            match = _CHECKPOINT_NAME.match(name)
            if match:
                ticks.append(int(match.group(1)))
        return sorted(ticks)

    def load_checkpoint(self, tick: int) -> Checkpoint:
        """Read the checkpoint at `tick`; `StorageError` if absent, `DecodeError`
        (naming the file) if damaged."""
        path = self._checkpoints / f"checkpoint-{tick:020d}.cbor"
        self._fs.refuse_link(str(self._checkpoints))
        try:
            data = self._fs.read_capped(str(path), MAX_ARTIFACT_BYTES)
        except StorageError as exc:
            raise StorageError(f"no readable checkpoint at tick {tick}: {exc}") from exc
        return decode_checkpoint(data, path, tick=tick)

    def latest_checkpoint(self) -> Checkpoint | None:
        """The checkpoint with the highest tick, or ``None``."""
        ticks = self.checkpoint_ticks()
        return self.load_checkpoint(ticks[-1]) if ticks else None

    # -- recovery and handlers ----------------------------------------------

    def plan_recovery(
        self, checkpoint_tick: int | None = None, *, strict: bool = True
    ) -> DurableRecoveryPlan:
        """Plan recovery from the checkpoint at `checkpoint_tick` (default: the
        latest; with none, no checkpoint: every WAL entry, tick 0 included, is
        in the suffix) over the whole WAL and cache.

        Raises `EscalationOrderError` for an invalid WAL and, when `strict`,
        `InconsistentWalError` naming operations whose WAL forces an unsound
        decision. The plan's `explain` cites entries by file and byte offset
        (a file WAL, read again on first use) or sequence (a SQL WAL, read
        through this directory's connection: explain before closing it).
        """
        checkpoint: Checkpoint | None
        if checkpoint_tick is None:
            checkpoint = self.latest_checkpoint()
        else:
            checkpoint = self.load_checkpoint(checkpoint_tick)
        tick = checkpoint.tick if checkpoint else None
        state = checkpoint.state if checkpoint else None
        return self._plan(tick, state, strict=strict, in_doubt=self.cache.in_doubt())

    def _plan(
        self,
        tick: int | None,
        state: Any,
        *,
        strict: bool,
        in_doubt: Iterable[EffectIntent] = (),  # effects that may or may not have happened
    ) -> DurableRecoveryPlan:
        """The plan from a checkpoint at `tick` (see `plan_wal`)."""
        cache = self.cache.load()
        return plan_wal(self.wal, tick, state, cache, strict=strict, in_doubt=in_doubt)

    def compact(self) -> int:
        """Remove what the latest checkpoint made unnecessary from the WAL
        (`FileAgreementWal.prune_through` its tick: the sealed segments whose
        entries all have a tick at or below it; a SQL WAL prunes its own
        way); return how many entries went. Only a checkpoint that reads back
        whole counts (it is durable: written atomically); without one, or
        for a WAL that cannot prune, nothing is removed. Plans from that
        checkpoint or a later one are unchanged; `StorageError` when open
        read-only."""
        if self.read_only:
            raise StorageError(f"state directory {self.path} is open read-only")
        checkpoint = self.latest_checkpoint()
        prune = getattr(self.wal, "prune_through", None)
        if checkpoint is None or prune is None:
            return 0
        return int(prune(checkpoint.tick))

    def wrap(
        self,
        inner: Any,
        resolver: Callable[[EffectRequest], str | None],
        *,
        mode: WalSyncMode = WalSyncMode.IMMEDIATE,
    ) -> EvidencePersistenceHandler:
        """`inner` wrapped for durable execution: its `wal_sync` goes to this
        directory's WAL and outcomes resolved to an evidence id are cached."""
        handler = EvidencePersistenceHandler(
            AgreementWalHandler(inner, self.wal, mode), self.cache, resolver
        )
        return cast(EvidencePersistenceHandler, handler)


def plan_wal(
    wal: AnyWal,
    tick: int | None,
    state: Any,
    cache: EvidenceOutcomeCacheArtifact,
    *,
    strict: bool = True,
    in_doubt: Iterable[EffectIntent] = (),
) -> DurableRecoveryPlan:
    """`DurableRecoveryPlan.from_checkpoint` over an open WAL backend, its
    entries locatable by `explain`: a segmented file WAL is read from the
    checkpoint on (`plan_from_parts`, earlier segments by their indexes), any
    other WAL whole."""
    locator = locator_for(wal)
    if isinstance(wal, FileAgreementWal):
        parts = wal.parts(tick)
        return plan_from_parts(
            tick, state, parts, cache, strict=strict, in_doubt=in_doubt, entry_locator=locator
        )
    return DurableRecoveryPlan.from_checkpoint(
        tick, state, wal.load(), cache, strict=strict, in_doubt=in_doubt, entry_locator=locator
    )
