"""Constants the reader and the writer share, in one place (as LevelDB's
``log_format.h``): the schema version, the size and nesting caps, and the log
record header layout of ``specs/log_format.md``. Imports nothing of ours."""

from __future__ import annotations

import struct

__all__ = [
    "ENTRIES_DEPTH",
    "ENTRY_DEPTH",
    "HEADER",
    "HEADER_SIZE",
    "MAX_ARTIFACT_BYTES",
    "MAX_DEPTH",
    "RESPONSE_DEPTH",
    "SCHEMA_VERSION",
]

#: The schema version this toolkit writes.
SCHEMA_VERSION = "telltale.machine.durability.v1"
#: Largest artifact (or log record) accepted, in bytes.
MAX_ARTIFACT_BYTES = 64 * 1024 * 1024

#: Containers allowed from an artifact's root (serde_cbor's own limit).
MAX_DEPTH = 128

# Nesting limits count from the root of the artifact the data would be exported
# in (FORMAT.md §2), so whatever a log accepts, ``durability export`` can write.
# The containers above a value in an exported WAL or cache artifact:
#
#   {"schema_version": ..., "payload":                 1  envelope map
#     {"kind": ..., "payload":                         2  payload map
#       {"entries":                                    3  WAL / cache artifact map
#         [                                            4  entries array (= a log record's payload)
#           {"evidence_id": ..., "outcome":            5  cache entry map
#             {"status": ..., "response": R}}]}}}      6  outcome map; R is the response

#: Containers above an artifact's ``entries`` array (envelope, payload, artifact
#: maps). A log record's payload, an array of entries, takes that array's place
#: when the log is exported.
ENTRIES_DEPTH = 3
#: Containers above one WAL or cache entry map in its exported artifact.
ENTRY_DEPTH = ENTRIES_DEPTH + 1
#: Containers above a cache entry's ``outcome.response`` in its exported
#: artifact: a response may itself nest ``MAX_DEPTH - RESPONSE_DEPTH`` (122).
RESPONSE_DEPTH = ENTRY_DEPTH + 2

#: A log record header, little-endian: ``header_crc:u32 type:u8 reserved:3
#: seq:u64 length:u32 payload_crc:u32`` (``header_crc`` covers the 20 bytes
#: after it).
HEADER = struct.Struct("<IB3sQII")
#: Bytes in a record header (24).
HEADER_SIZE = HEADER.size
