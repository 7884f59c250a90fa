"""`run_and_kill`: fork a writer, SIGKILL it after a delay, and return what it
acknowledged before it died (``ack("...")`` once a durable write returned).

A kill lands wherever the writer is (inside a write, an fsync, a repair on
open), so many runs with random delays probe every moment;
`durability.testing.crash_test` (``crashtest.py``) instead kills at each
write and fsync in turn. Both need ``os.fork`` (POSIX).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
import traceback
from collections.abc import Callable

import attrs

__all__ = ["Ack", "CrashTrial", "run_and_kill"]

#: What a writer calls after each durable write returned: ``ack("entry 7")``.
Ack = Callable[[str], None]


@attrs.frozen(kw_only=True)
class CrashTrial:
    """What one `run_and_kill` run saw: the acknowledgements the writer sent
    before it died (in order), whether SIGKILL ended it (``False``: it
    finished first), and the error it raised, if it failed on its own."""

    acked: tuple[str, ...]
    killed: bool
    error: str | None = None


def _sender(fd: int) -> Ack:
    def ack(message: str) -> None:
        line = f"{message}\n".encode()
        if "\n" in message or len(line) > select.PIPE_BUF:
            raise ValueError(f"an acknowledgement is one short line, not {message!r:.80}")
        os.write(fd, line)  # at most PIPE_BUF bytes: arrives whole or not at all

    return ack


def run_and_kill(workload: Callable[[Ack], None], *, after: float) -> CrashTrial:
    """Fork a child that runs ``workload(ack)``, SIGKILL it `after` seconds
    later (wherever it is: inside a write, an fsync, a repair on open), and
    return what it acknowledged.

    The child acknowledges with ``ack(text)`` once a write returned; each
    acknowledgement is one line written to a pipe in one call, so it arrives
    whole or not at all. An exception in the workload is reported in
    `CrashTrial.error` (with its traceback), never hidden.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(read_end)
            workload(_sender(write_end))
        except BaseException:
            code = 1
            text = " | ".join(traceback.format_exc().strip().splitlines()[-6:])
            with contextlib.suppress(OSError):
                os.write(write_end, b"!" + text.encode()[: select.PIPE_BUF - 8] + b"\n")
        finally:
            os._exit(code)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + after
    while (remaining := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([read_end], [], [], remaining)
        if ready:
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break  # the writer finished (or failed) before the kill
            chunks.append(chunk)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    while chunk := os.read(read_end, 1 << 16):
        chunks.append(chunk)
    os.close(read_end)
    text = b"".join(chunks).decode(errors="replace")
    lines = text.split("\n")[:-1]  # a last line cut short never arrived
    errors = [line[1:] for line in lines if line.startswith("!")]
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    return CrashTrial(
        acked=tuple(line for line in lines if not line.startswith("!")),
        killed=killed,
        error=errors[0] if errors else None,
    )
