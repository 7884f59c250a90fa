"""Writing to the user's stdout and stderr for the command line, and how
its commands fail (`CommandError` with an exit code).

`write_stdout` writes all of its data or raises `OutputClosed` when the
reader went away (``durability inspect --json LOG | head -1``); the command
line then calls `silence_stdout` and exits quietly. `say` prints one
``durability: ...`` line on stderr, and `report_repairs_on_stderr` makes the
backends' torn-tail repairs such lines::

    try:
        write_stdout(json.dumps(document))
    except OutputClosed:
        silence_stdout()
        return 141
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

from .backends.modes import TornTailWarning

__all__ = [
    "FAILED",
    "OK",
    "USAGE",
    "CommandError",
    "OutputClosed",
    "emit",
    "progress_of",
    "report_repairs_on_stderr",
    "say",
    "silence_stdout",
    "write_stdout",
]

#: Exit codes: ok; verification failed or damaged input; usage error or unusable input.
OK, FAILED, USAGE = 0, 1, 2


class CommandError(Exception):
    """A one-line error with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class OutputClosed(Exception):
    """stdout's reader closed it (EPIPE): stop writing, quietly."""


def write_stdout(data: bytes | str) -> None:
    """Write all of `data` (text gets a newline) to stdout and flush it.

    Goes through the binary layer in a loop: with ``PYTHONUNBUFFERED=1`` that
    layer is the raw file, whose partial writes the text layer would silently
    drop. A reader that went away is noticed here, as `OutputClosed`, not in
    the interpreter's final flush. Raises `TypeError` for bytes when stdout
    was replaced by a text-only stream.
    """
    out = getattr(sys.stdout, "buffer", None)
    try:
        if isinstance(data, str):
            text = data + "\n"
            if out is None:  # stdout replaced by a text-only stream
                sys.stdout.write(text)
                sys.stdout.flush()
                return
            data = text.encode(sys.stdout.encoding or "utf-8", sys.stdout.errors or "strict")
        elif out is None:
            raise TypeError("stdout is a text-only stream: it cannot take bytes")
        sys.stdout.flush()  # whatever the text layer holds goes first
        view = memoryview(data)
        while view:
            written = out.write(view)
            view = view[written or 0 :]
        out.flush()
    except BrokenPipeError as exc:
        raise OutputClosed from exc


def silence_stdout() -> None:
    """Point file descriptor 1 at the null device, so that flushing what is
    still buffered (at exit) cannot fail on a closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError):  # stdout without a descriptor: no pipe to fail on
        pass


def say(line: str) -> None:
    """Print ``durability: <line>`` on stderr, flushed."""
    print(f"durability: {line}", file=sys.stderr, flush=True)


def report_repairs_on_stderr() -> None:
    """Torn-tail repairs reach stderr once, as a ``durability:`` line (the
    backends both log and warn; this keeps the log line, ignores the warning)."""
    warnings.simplefilter("ignore", TornTailWarning)
    logger = logging.getLogger("durability")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("durability: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def emit(args: argparse.Namespace, document: dict[str, Any], text: str) -> None:
    """Print `document` as JSON (with ``--json``) or `text` on stdout."""
    write_stdout(json.dumps(document, indent=2, sort_keys=False) if args.json else text)


def progress_of(args: argparse.Namespace) -> Callable[[str], None]:
    """`say`, unless ``--quiet``."""
    return say if not args.quiet else (lambda line: None)
