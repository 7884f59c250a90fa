"""What a user chooses and is told about a log file: when appends are made
durable (`SyncPolicy`), what opening does with bytes that are not whole,
valid records (`RecoveryMode`, modelled on RocksDB's WAL recovery modes), and
the report of a repair (`TornTail`, `TornTailWarning`)."""

from __future__ import annotations

import enum

import attrs

__all__ = ["RecoveryMode", "SyncPolicy", "TornTail", "TornTailWarning"]


class SyncPolicy(enum.Enum):
    """When an append is made durable.

    * ``DURABLE`` (default): ``fdatasync`` before every append returns.
    * ``GROUP``: group commit. Appends that arrive (from threads sharing the
      instance) while a flush is in flight queue up; the next one writes all
      of them with one ``pwrite`` and covers them with one ``fdatasync``.
      Each append is still durable before it returns, and no reader sees it
      before its flush succeeded.
    * ``NONE``: never syncs; the caller calls ``sync()`` (or accepts losing
      the latest appends on power loss, never the file's consistency).
      Readers may see an append before it is durable.
    """

    DURABLE = "durable"
    GROUP = "group"
    NONE = "none"


class RecoveryMode(enum.Enum):
    """What opening (or catching up on) a log does with bytes that are not
    whole, valid records. Modelled on RocksDB's WAL recovery modes.

    * ``TOLERATE_TORN_TAIL`` (default): a torn tail (a write cut short by a
      crash: one of the four cases of ``specs/log_format.md``) is truncated
      and reported; anything else fails closed with `DecodeError`. Pick it
      unless you have a reason not to: it loses only writes that were never
      acknowledged.
    * ``ABSOLUTE_CONSISTENCY``: a torn tail is an error too and nothing is
      ever truncated. Pick it when every byte of the file must be accounted
      for (for instance with ``SyncPolicy.DURABLE`` on storage that never
      tears a write), or to inspect a log without repairing it.
    * ``POINT_IN_TIME``: keeps the valid prefix before the first damage: the
      damaged file is first copied aside to ``<path>.damaged-<n>``, then
      truncated at the damage and reported. Pick it, as an operator, to bring
      a damaged log back to its last consistent point; nothing is lost
      silently (the copy keeps every byte). A damaged base is never repaired.
    """

    TOLERATE_TORN_TAIL = "tolerate_torn_tail"
    ABSOLUTE_CONSISTENCY = "absolute_consistency"
    POINT_IN_TIME = "point_in_time"


class TornTailWarning(UserWarning):
    """Emitted when a log is repaired (a torn tail or, in ``POINT_IN_TIME``
    mode, damage truncated away)."""


@attrs.frozen(kw_only=True)
class TornTail:
    """A repair: `dropped` bytes cut from byte `offset` of the log, and why.
    `copy_path` names the copy kept aside (``POINT_IN_TIME`` damage only)."""

    offset: int
    dropped: int
    reason: str
    copy_path: str | None = None
