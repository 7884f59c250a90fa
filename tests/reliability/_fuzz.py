"""What the hostile-input suite feeds every decoder: seed inputs of each kind,
a seeded mutator (bit flips, interesting bytes, CBOR heads with huge lengths,
tags, cuts, splices), a file system that serves one input from memory (so log
decoding runs in process, thousands of times a second), and the decoders
themselves, each a callable that may raise only `DurabilityError`."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cbor2

from durability import (
    AgreementWalArtifact,
    DurableRecoveryMetadata,
    EffectOutcome,
    EffectRequest,
    EvidenceOutcomeCacheArtifact,
    FinalizationOutcome,
    PersistedDurabilityArtifact,
    RecordingHandler,
    ReplayHandler,
)
from durability.backends.file import (
    FileAgreementWal,
    FileEvidenceOutcomeCache,
    RecoveryMode,
    inspect_log,
)
from durability.fileio import FileSystem
from durability.store import decode_checkpoint
from tests.helpers import FAILED, L, binding, esc, ev, fin, gate

SPECS = Path(__file__).resolve().parents[2] / "specs" / "vectors"


class MemoryFile(FileSystem):
    """A file system holding one file, in memory: every path is that file."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = bytearray(data)

    def open_rw(self, path: str, *, create: bool = False) -> int:
        return 3

    def open_ro(self, path: str) -> int:
        return 3

    def size(self, fd: int, path: str) -> int:
        return len(self.data)

    def read_at(self, fd: int, offset: int, length: int, path: str) -> bytes:
        return bytes(self.data[offset : offset + length])

    def write_at(self, fd: int, data: bytes, offset: int, path: str) -> None:
        self.data[offset : offset + len(data)] = data

    def truncate(self, fd: int, length: int, path: str) -> None:
        del self.data[length:]

    def sync(self, fd: int, path: str) -> None:
        pass

    def close(self, fd: int) -> None:
        pass

    @contextmanager
    def locked(self, fd: int, path: str, *, exclusive: bool = True) -> Iterator[None]:
        yield

    def keep_copy(self, fd: int, path: str) -> str:
        return f"{path}.damaged-1"


# -- seeds ----------------------------------------------------------------------------


def _log_bytes(kind: str) -> bytes:
    fs = MemoryFile()
    if kind == "wal":
        wal = FileAgreementWal("fuzz.log", fs=fs)
        wal.append(esc("op", L.NONE, L.SOFT_SAFE, 1, "e1"))
        wal.append_batch([ev("op", "e1", L.SOFT_SAFE, 2), gate("op", L.SOFT_SAFE, 3)])
        wal.append(fin("op", FinalizationOutcome.FINALIZED, 4))
    else:
        cache = FileEvidenceOutcomeCache("fuzz.log", fs=fs)
        cache.put(binding("e1"))
        cache.put(binding("e2", FAILED))
    return bytes(fs.data)


def _checkpoint_bytes() -> bytes:
    metadata = DurableRecoveryMetadata(checkpoint_tick=7, resumed_operation_ids=["op"])
    envelope = cbor2.loads(PersistedDurabilityArtifact.recovery_metadata(metadata).to_cbor())
    return cbor2.dumps(
        {
            "format": "durability.checkpoint.v1",
            "tick": 7,
            "state": b"state",
            "recovery_metadata": envelope,
        }
    )


def _trace_bytes() -> bytes:
    class Echo:
        def handle_effect(self, request: EffectRequest) -> EffectOutcome:
            return EffectOutcome.success({"echo": request.body})

    recorder = RecordingHandler(Echo())
    for tick in range(3):
        recorder.handle_effect(
            EffectRequest(interface_name="I", operation_name="o", tick=tick, body=[tick, "x"])
        )
    return cbor2.dumps(recorder.trace())


def seeds() -> dict[str, list[bytes]]:
    """Valid inputs of each kind, to mutate."""
    artifacts = [
        PersistedDurabilityArtifact.agreement_wal(
            AgreementWalArtifact(
                entries=[esc("op", L.NONE, L.PROVISIONAL, 1), gate("op", L.NONE, 2)]
            )
        ).to_cbor(),
        PersistedDurabilityArtifact.evidence_outcome_cache(
            EvidenceOutcomeCacheArtifact(entries=[binding("e1"), binding("e2", FAILED)])
        ).to_cbor(),
        PersistedDurabilityArtifact.recovery_metadata(
            DurableRecoveryMetadata(checkpoint_tick=1, cached_evidence_ids=["e1"])
        ).to_cbor(),
    ]
    artifacts += [
        bytes.fromhex("".join(path.read_text().split()))
        for path in sorted(SPECS.glob("*_artifact_v1.hex"))
    ]
    logs = [_log_bytes("wal"), _log_bytes("cache")]
    logs.append(bytes.fromhex("".join((SPECS / "wal_log_v1.hex").read_text().split())))
    return {
        "artifact": artifacts,
        "log": logs,
        "checkpoint": [_checkpoint_bytes()],
        "trace": [_trace_bytes()],
    }


# -- the mutator ----------------------------------------------------------------------

_INTERESTING = [
    0x00,
    0x01,
    0x17,
    0x18,
    0x1B,
    0x1F,
    0x3F,
    0x5F,
    0x7F,
    0x80,
    0x9F,
    0xBF,
    0xC0,
    0xD8,
    0xD9,
    0xF4,
    0xF6,
    0xF7,
    0xFF,
]
_HUGE = [
    b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff",  # a byte string of 2^64-1 bytes
    b"\x7b\x00\x00\x00\x01\x00\x00\x00\x00",  # text of 2^32 bytes
    b"\x9b\x7f\xff\xff\xff\xff\xff\xff\xff",  # an array of 2^63-1 items
    b"\xbb\x00\x00\x10\x00\x00\x00\x00\x00",  # a map of 2^44 pairs
    b"\x9a\xff\xff\xff\xff",  # an array of 2^32-1 items
]
_TAGS = [
    b"\xc0",
    b"\xc1",
    b"\xc2",
    b"\xd8\x20",
    b"\xd9\xd9\xf7",
    b"\xda\x00\x01\x00\x00",
    b"\xdb\xff\xff\xff\xff\xff\xff\xff\xff",
]


def mutate(data: bytes, r: random.Random, corpus: list[bytes]) -> bytes:
    """1 to 4 random edits of `data`."""
    out = bytearray(data)
    for _ in range(r.randint(1, 4)):
        choice = r.randrange(9)
        at = r.randrange(len(out) + 1)
        if choice == 0 and out:
            out[min(at, len(out) - 1)] ^= 1 << r.randrange(8)
        elif choice == 1 and out:
            out[min(at, len(out) - 1)] = r.choice(_INTERESTING)
        elif choice == 2:
            out[at:at] = r.choice(_HUGE)
        elif choice == 3:
            out[at:at] = r.choice(_TAGS)
        elif choice == 4:
            del out[at : at + r.randint(1, 16)]
        elif choice == 5:
            out[at:at] = bytes(r.randrange(256) for _ in range(r.randint(1, 8)))
        elif choice == 6:
            del out[at:]
        elif choice == 7 and out:
            start = r.randrange(len(out))
            out[at:at] = out[start : start + r.randint(1, 32)]
        else:
            other = r.choice(corpus)
            out[at:] = other[r.randrange(len(other) + 1) :]
    return bytes(out)


# -- the decoders ---------------------------------------------------------------------

CHECKPOINT_PATH = Path("checkpoints/checkpoint-00000000000000000007.cbor")


def decode_artifact(data: bytes) -> Any:
    return PersistedDurabilityArtifact.from_cbor(data)


def decode_log(data: bytes) -> Any:
    """The three ways a log is read, all in memory: a WAL opened for writing
    (repairing), a cache opened read-only, and ``inspect_log``."""
    FileAgreementWal("fuzz.log", fs=MemoryFile(data)).load()
    FileEvidenceOutcomeCache("fuzz.log", fs=MemoryFile(data), read_only=True).load()
    FileAgreementWal("fuzz.log", fs=MemoryFile(data), recovery=RecoveryMode.POINT_IN_TIME).load()
    return inspect_log("fuzz.log", fs=MemoryFile(data))


def decode_checkpoint_bytes(data: bytes) -> Any:
    return decode_checkpoint(data, CHECKPOINT_PATH)


def decode_trace(data: bytes) -> Any:
    """A trace as a user would load it: their own CBOR decoding (which may
    build tags, floats, datetimes...), then `ReplayHandler`."""
    try:
        trace = cbor2.loads(data)
    except Exception:
        return None  # not CBOR at all: the user's decoder refused it
    return ReplayHandler(trace)


DECODERS: dict[str, Callable[[bytes], Any]] = {
    "artifact": decode_artifact,
    "log": decode_log,
    "checkpoint": decode_checkpoint_bytes,
    "trace": decode_trace,
}


def timed(decoder: Callable[[bytes], Any], data: bytes) -> float:
    """Run `decoder` on `data`; return the seconds it took. Only a
    `DurabilityError` may escape (the caller's ``pytest.raises``-free loop
    lets anything else fail the test with the input attached)."""
    from durability import DurabilityError

    started = time.perf_counter()
    try:
        decoder(data)
    except DurabilityError:
        pass
    except Exception as exc:
        raise AssertionError(f"{type(exc).__name__} escaped for input {data.hex()}") from exc
    return time.perf_counter() - started
