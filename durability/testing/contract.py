"""The backend contract suite (API.md §6, §12): check your own backend.

Subclass `AgreementWalContract` or `EvidenceOutcomeCacheContract` in a
``Test...`` class and implement `make_wal(tmp_path)` / `make_cache(tmp_path)`;
pytest collects every case. A backend that persists also implements
`reopen(backend, tmp_path)`: a new, independent handle on the storage
`make_...` created in `tmp_path` (the first handle stays open). Then every
case also checks what a reopened handle sees, and the persistence cases run:
two handles at once, and several processes appending or binding through
their own handles at once. Without `reopen` those are skipped, and the skip
message names the case and why. Cases needing an optional method
(`append_batch`, `operation_summary`, `put_if_absent`, the intent methods of
API.md §11) are skipped, saying so, when the backend lacks it; a class with
only the protocol's required methods passes every other case::

    from durability.testing import AgreementWalContract

    class TestMyWal(AgreementWalContract):
        def make_wal(self, tmp_path):
            return MyWal(tmp_path / "wal.db")

        def reopen(self, backend, tmp_path):
            return MyWal(tmp_path / "wal.db")

The multi-process cases fork (``multiprocessing`` "fork" start method; they
skip where it is missing): each child calls `reopen` on its copy of the
parent's handle to get its own. Handles are never closed by the suite.

This module needs `pytest`, not `hypothesis`. The base classes' names do not
start with ``Test``, so pytest collects only your subclasses.
"""

from __future__ import annotations

from ._cache_contract import EvidenceOutcomeCacheContract
from ._wal_contract import AgreementWalContract

__all__ = ["AgreementWalContract", "EvidenceOutcomeCacheContract"]

AgreementWalContract.__module__ = __name__
EvidenceOutcomeCacheContract.__module__ = __name__
