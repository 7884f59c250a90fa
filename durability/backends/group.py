"""Group commit: callers that arrive while a flush is in flight queue up, and
the next leader writes all their records at once and covers them with one
flush (``SyncPolicy.GROUP``).

A caller is a `Ticket`. Threads wait on a condition and one of them leads;
asyncio tasks never block their event loop: they queue a ticket, a drainer
running in the loop's default executor leads for them, and the task awaits a
future the drainer settles. A ticket is marked done only after the write and
flush covering it returned, so no caller is told its entry is durable before
it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["GroupCommit", "Ticket", "WriteBatch"]


class Ticket:
    """One caller's write: its ``decide`` function, and, once a leader wrote
    and flushed it, ``done`` and its own ``error`` (``None`` on success)."""

    __slots__ = ("decide", "done", "error", "wake")

    def __init__(self, decide: Callable[[Any], Any]) -> None:
        self.decide = decide
        self.done = False
        self.error: BaseException | None = None
        #: Set for an asyncio caller: settles its future (thread-safe).
        self.wake: Callable[[], None] | None = None


#: Writes and flushes a batch of tickets, marking each done.
WriteBatch = Callable[[list[Ticket]], None]


class GroupCommit:
    """The queue and the leadership of one log's group commit.

    Callers pass `write_batch(tickets)`, which writes and flushes the tickets
    it is given as one batch; it must mark each ``done`` (with its ``error``)
    and never raise an `Exception`. (It is passed per call, not kept, so the
    log owning this object is freed as soon as it is dropped.)
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Fresh locks and an empty queue (in a child after ``fork()``: the
        parent's waiters do not exist there)."""
        self._cond = threading.Condition()
        self._queue: list[Ticket] = []
        self._leading = False
        self._draining = False

    @property
    def queued(self) -> int:
        """Tickets waiting for a leader."""
        with self._cond:
            return len(self._queue)

    def submit(self, ticket: Ticket, write_batch: WriteBatch) -> None:
        """Queue `ticket` and return once it is done: a follower waits; the
        first caller to find no leader leads one batch (everything queued)."""
        with self._cond:
            self._queue.append(ticket)
            while self._leading and not ticket.done:
                self._cond.wait()
            if ticket.done:
                return
            self._leading = True
            batch, self._queue = self._queue, []
        self._lead(batch, write_batch)

    async def submit_async(self, ticket: Ticket, write_batch: WriteBatch) -> None:
        """Queue `ticket` and await it without blocking the event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def settle() -> None:
            if not future.done():
                future.set_result(None)

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(settle)

        ticket.wake = wake
        with self._cond:
            self._queue.append(ticket)
            start, self._draining = not self._draining, True
        if start:
            drainer = loop.run_in_executor(None, self._drain, write_batch)
        await future
        if start:
            await drainer

    def _lead(self, batch: list[Ticket], write_batch: WriteBatch) -> None:
        try:
            write_batch(batch)
        finally:
            with self._cond:
                self._leading = False
                self._cond.notify_all()
            for ticket in batch:
                if ticket.wake is not None:
                    ticket.wake()

    def _drain(self, write_batch: WriteBatch) -> None:
        """Lead for asyncio callers (in an executor thread) until no asyncio
        ticket is left in the queue."""
        while True:
            with self._cond:
                while self._leading:
                    self._cond.wait()
                if not any(ticket.wake is not None for ticket in self._queue):
                    self._draining = False
                    return
                self._leading = True
                batch, self._queue = self._queue, []
            self._lead(batch, write_batch)
