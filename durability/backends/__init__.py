"""Storage backends behind the `AgreementWal` and `EvidenceOutcomeCache` protocols.

`memory` is the readable reference (and the test oracle); `file` is the
append-only, checksummed, fsync'd log of FORMAT.md §2; `durability.fileio` is the one seam
through which all file I/O goes. This package imports nothing itself, so each
backend module can be imported on its own.
"""
