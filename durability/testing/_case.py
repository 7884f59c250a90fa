"""What both contract suites share: naming the running case in skip messages,
and running work in forked processes (private; see `contract`)."""

from __future__ import annotations

import multiprocessing
import queue
import traceback
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import pytest

T = TypeVar("T")

CHILD_TIMEOUT = 120.0


class ContractCase:
    """Base of the contract suites: skips name the case they skip."""

    _case = "this case"

    @pytest.fixture(autouse=True)
    def _name_the_running_case(self, request: pytest.FixtureRequest) -> None:
        self._case = request.node.name

    def _skip(self, why: str) -> NoReturn:
        pytest.skip(f"{self._case}: {why}")

    def _skip_without_reopen(self, persists: bool) -> None:
        if not persists:
            self._skip(
                f"reopen() not implemented by {type(self).__name__}: "
                "persistence cases need a second handle on the same storage"
            )

    def _skip_without(self, method: str, backend: object) -> NoReturn:
        self._skip(f"{type(backend).__name__} has no {method}() (optional; this case needs it)")

    def _in_processes(self, count: int, work: Callable[[int], T]) -> list[T]:
        """Run ``work(0)`` .. ``work(count - 1)`` at once, each in its own
        forked process; return their results in that order. A child's
        exception fails the case with the child's traceback."""
        if "fork" not in multiprocessing.get_all_start_methods():
            self._skip("needs the 'fork' start method, which this platform lacks")
        fork = multiprocessing.get_context("fork")
        results: Any = fork.Queue()

        def child(index: int) -> None:
            try:
                results.put((index, None, work(index)))
            except BaseException:
                results.put((index, traceback.format_exc(), None))

        processes = [fork.Process(target=child, args=(index,)) for index in range(count)]
        for process in processes:
            process.start()
        found: dict[int, T] = {}
        try:
            for _ in range(count):
                index, error, value = results.get(timeout=CHILD_TIMEOUT)
                if error is not None:
                    pytest.fail(f"process {index} of {count} failed:\n{error}")
                found[index] = value
        except queue.Empty:
            pytest.fail(f"processes did not finish within {CHILD_TIMEOUT:.0f}s")
        finally:
            for process in processes:
                process.join(CHILD_TIMEOUT)
                if process.is_alive():
                    process.kill()
                    process.join()
        codes = [process.exitcode for process in processes]
        assert codes == [0] * count, f"exit codes of the processes: {codes}"
        return [found[index] for index in range(count)]
