"""What both file backends share (`FileLog`): the engine, the attributes
every log file has, closing."""

from __future__ import annotations

import os
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from ..fileio import DEFAULT_FS, FileSystem
from .log import LogEngine
from .logstate import LogState
from .modes import RecoveryMode, SyncPolicy, TornTail

__all__ = ["FileLog", "Path"]

Path = str | os.PathLike[str]

_S = TypeVar("_S", bound=LogState[Any])


class FileLog(Generic[_S]):
    """What both file backends share: the engine, attributes, closing."""

    _log: LogEngine[_S]
    _new_state: Callable[[], _S]

    def __init__(
        self,
        path: Path,
        *,
        sync: SyncPolicy = SyncPolicy.DURABLE,
        recovery: RecoveryMode = RecoveryMode.TOLERATE_TORN_TAIL,
        read_only: bool = False,
        fs: FileSystem = DEFAULT_FS,
    ) -> None:
        self._log = LogEngine(
            path, self._new_state, sync=sync, recovery=recovery, fs=fs, read_only=read_only
        )

    @property
    def path(self) -> str:
        """The log file's path."""
        return self._log.path

    @property
    def read_only(self) -> bool:
        """Whether the log was opened with ``read_only=True``: it is never
        created, written, truncated or repaired, and writes raise `StorageError`."""
        return self._log.read_only

    @property
    def base_verified(self) -> bool:
        """Whether a checksum vouches for the base (``False`` for a foreign
        base: a file written by ``write_to_path`` or the Rust original)."""
        return self._log.base_verified

    @property
    def torn_tail(self) -> TornTail | None:
        """The last repair made while opening or catching up (``None`` if the
        log was clean); read-only, the torn tail a writer would cut."""
        return self._log.torn_tail

    def sync(self) -> None:
        """Make everything written so far durable (for ``SyncPolicy.NONE``).
        A failure raises `LogPoisonedError`."""
        self._log.sync()

    def close(self) -> None:
        """Release the file; optional (dropping the instance does the same)."""
        self._log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"
