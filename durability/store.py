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
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import attrs

from .artifact import DurableRecoveryMetadata
from .backends.file import (
    FileAgreementWal,
    FileEvidenceOutcomeCache,
    RecoveryMode,
    SyncPolicy,
)
from .codec import decode_item, dumps
from .effects import EffectRequest
from .errors import DecodeError, StorageError
from .evidence import EvidencePersistenceHandler
from .fileio import DEFAULT_FS, FileSystem
from .handlers import AgreementWalHandler, WalSyncMode
from .persisted import MAX_ARTIFACT_BYTES, envelope_plain, payload_from_envelope
from .planner import DurableRecoveryPlan

__all__ = ["Checkpoint", "StateDirectory", "decode_checkpoint", "looks_like_checkpoint"]

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
    try:
        obj, end = decode_item(data)
    except DecodeError as exc:
        raise exc.located(path=where) from exc
    if end != len(data) or not isinstance(obj, dict):
        raise DecodeError("not a checkpoint", path=where)
    if obj.get("format") != CHECKPOINT_FORMAT:
        raise DecodeError(f"unknown checkpoint format {obj.get('format')!r}", path=where)
    named = _CHECKPOINT_NAME.match(path.name)
    expected = tick if tick is not None else int(named.group(1)) if named else None
    found, state = obj.get("tick"), obj.get("state")
    if not isinstance(found, int) or found < 0 or not isinstance(state, bytes):
        raise DecodeError("tick or state field is wrong", path=where)
    if expected is not None and found != expected:
        raise DecodeError(f"holds tick {found}, expected {expected}", path=where)
    _version, metadata = payload_from_envelope(obj.get("recovery_metadata"), path=where)
    if not isinstance(metadata, DurableRecoveryMetadata):
        raise DecodeError(f"recovery_metadata holds a {type(metadata).__name__}", path=where)
    return Checkpoint(tick=found, state=state, metadata=metadata, path=path)


def looks_like_checkpoint(data: bytes) -> bool:
    """Whether `data` is a CBOR map naming the checkpoint format (damaged or not)."""
    try:
        obj, _end = decode_item(data)
    except DecodeError:
        return False
    return isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT


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
        self.wal = FileAgreementWal(self.path / WAL_FILE, **options)
        self.cache = FileEvidenceOutcomeCache(self.path / CACHE_FILE, **options)
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
        writer would cut), as `TornTail` by file name (``None`` for a clean log)."""
        return {WAL_FILE: self.wal.torn_tail, CACHE_FILE: self.cache.torn_tail}

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
        metadata = DurableRecoveryPlan.from_checkpoint(
            tick, None, self.wal.load(), self.cache.load(), strict=False
        ).metadata
        data = dumps(
            {
                "format": CHECKPOINT_FORMAT,
                "tick": tick,
                "state": state,
                "recovery_metadata": envelope_plain(metadata),
            }
        )
        if len(data) > MAX_ARTIFACT_BYTES:
            raise StorageError(f"checkpoint at tick {tick} is {len(data)} bytes, over the cap")
        self._fs.make_dirs(str(self._checkpoints))
        target = self._checkpoints / f"checkpoint-{tick:020d}.cbor"
        with self._fs.lock_file(str(self.path / ".checkpoint.lock")):
            self._fs.refuse_link(str(target))
            self._fs.replace_atomically(str(target), data)
        return Checkpoint(tick=tick, state=state, metadata=metadata, path=target)

    def checkpoint_ticks(self) -> list[int]:
        """Ticks of the checkpoints present, ascending."""
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
        decision.
        """
        checkpoint: Checkpoint | None
        if checkpoint_tick is None:
            checkpoint = self.latest_checkpoint()
        else:
            checkpoint = self.load_checkpoint(checkpoint_tick)
        tick = checkpoint.tick if checkpoint else None
        state = checkpoint.state if checkpoint else None
        return DurableRecoveryPlan.from_checkpoint(
            tick,
            state,
            self.wal.load(),
            self.cache.load(),
            strict=strict,
            in_doubt=self.cache.in_doubt(),  # effects that may or may not have happened
        )

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
