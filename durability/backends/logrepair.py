"""How a log engine carries out the tail policy (``backends/logread.py``)
for the bytes after the last good record: `TailRepairs`, a part of
`LogEngine` (``backends/log.py``) kept in its own module."""

from __future__ import annotations

import logging
import warnings

from ..errors import DecodeError
from ..fileio import FileSystem
from ..framing import Tail
from .logread import Access, TailAction, repair_message, tail_action, tail_error
from .modes import RecoveryMode, TornTail, TornTailWarning

__all__ = ["TailRepairs"]

logger = logging.getLogger("durability")


class TailRepairs:
    """The tail handling of `LogEngine` (see its module rules)."""

    path: str
    base_verified: bool
    torn_tail: TornTail | None
    _recovery: RecoveryMode
    _fs: FileSystem
    _fd: int | None
    _base_end: int
    _end: int
    _scanned: int

    def _sync_or_poison(self, fd: int, *, truncate_to: int | None) -> None:
        raise NotImplementedError

    def _on_tail(self, tail: Tail, access: Access) -> None:
        """Carry out what the tail policy table says for `tail`."""
        action = tail_action(tail.kind, self._recovery, access)
        if action is TailAction.CUT_KEEPING_COPY and self._damage_may_be_in_base(tail):
            raise DecodeError(
                f"{tail.reason}, right after an unverified base: the base itself may be "
                "damaged, and a damaged base is never repaired",
                path=self.path,
                offset=tail.offset,
            )
        if action is TailAction.FAIL_CLOSED or tail.newer_version:  # never cut a newer record
            raise tail_error(tail, self._recovery, self.path)
        if action is TailAction.REPORT:
            self.torn_tail = TornTail(offset=tail.offset, dropped=tail.dropped, reason=tail.reason)
        elif action is not TailAction.LEAVE:
            self._repair(tail, keep_copy=action is TailAction.CUT_KEEPING_COPY)

    def _damage_may_be_in_base(self, tail: Tail) -> bool:
        """Damage at the first byte after a base no checksum vouches for: a
        flipped bit can make a toolkit base decode shorter, so what looks like
        a damaged first record may be the base (and its checksum record)."""
        return not self.base_verified and tail.offset == self._base_end

    def _repair(self, tail: Tail, *, keep_copy: bool) -> None:
        assert self._fd is not None
        copy = self._fs.keep_copy(self._fd, self.path) if keep_copy else None
        self._fs.truncate(self._fd, tail.offset, self.path)
        self._sync_or_poison(self._fd, truncate_to=None)
        self._end = self._scanned = tail.offset
        self.torn_tail = TornTail(
            offset=tail.offset, dropped=tail.dropped, reason=tail.reason, copy_path=copy
        )
        message = repair_message(tail, self.path, copy)
        logger.warning(message)
        warnings.warn(message, TornTailWarning, stacklevel=2)
