"""What ``durability inspect`` shows of a segmented WAL's files
(``specs/segments.md``): one row per sealed segment, then the pruned
history, as table rows and as JSON. The active segment is the log file
itself, which the rest of the report describes."""

from __future__ import annotations

from typing import Any

from .backends.file import LogReport
from .backends.segindex import SegmentIndex

__all__ = ["SEGMENT_HEADERS", "segment_rows", "segments_json"]

#: The columns of `segment_rows`.
SEGMENT_HEADERS = ("segment", "entries", "sequences", "ticks", "bytes", "crc32")


def _row(index: SegmentIndex) -> tuple[str, int, str, str, int | str, str]:
    name = f"pruned through {index.segment}" if index.pruned else str(index.segment)
    sequences = f"{index.first_sequence}..{index.last_sequence}" if index.entries else "-"
    ticks = f"{index.min_tick}..{index.max_tick}" if index.min_tick is not None else "-"
    if index.pruned:
        return name, index.entries, sequences, ticks, "-", "-"
    return name, index.entries, sequences, ticks, index.size, f"{index.crc32:08x}"


def segment_rows(report: LogReport) -> list[tuple[str, int, str, str, int | str, str]]:
    """The pruned history (if any), then each sealed segment."""
    history = (report.pruned,) if report.pruned is not None else ()
    return [_row(index) for index in (*history, *report.segments)]


def segments_json(report: LogReport) -> list[dict[str, Any]]:
    """``inspect --json``'s ``segments``: the pruned history (``pruned``:
    true), then each sealed segment, as its index says."""
    return [
        {
            "segment": index.segment,
            "pruned": index.pruned,
            "entries": index.entries,
            "first_sequence": index.first_sequence,
            "last_sequence": index.last_sequence,
            "min_tick": index.min_tick,
            "max_tick": index.max_tick,
            "bytes": None if index.pruned else index.size,
            "crc32": None if index.pruned else index.crc32,
        }
        for index in ((report.pruned,) if report.pruned else ()) + report.segments
    ]
