"""State directories for the ``durability report`` tests, written through the
public API: one WAL batch, then cache bindings and intents.

`write_state(path, n)` makes `n` operations ``op-00000``... in five shapes
(by ``i % 5``): finalized, aborted, resumed (soft-safe, gate crossed),
re-executed (provisional), and soft-safe with an effect in doubt; with
``extras`` also an anomaly (a gate above the level its WAL proves) and an
operation whose id and evidence are hostile markup. Operation ``i`` lives at
ticks ``3i+1..3i+3``; the checkpoint, when given, is at tick `checkpoint`.
"""

from __future__ import annotations

from pathlib import Path

from durability import (
    AgreementLevel,
    EffectIntent,
    FinalizationOutcome,
    StateDirectory,
    WalEntry,
)
from durability.backends.file import SyncPolicy
from tests.helpers import binding, esc, ev, fin, gate

L = AgreementLevel
F = FinalizationOutcome
HOSTILE = "</script><script>alert(1)</script>"
HOSTILE_EVIDENCE = "<!-- --><img src=x onerror=alert(2)>&amp;"
ANOMALY = "op-anomaly"
SHAPES = ("reuse_finalized", "preserve_terminal", "resume_from_evidence_boundary")
SHAPES += ("reexecute_from_scratch", "resume_from_evidence_boundary")


def op_id(i: int) -> str:
    return f"op-{i:05d}"


def entries_of(op: str, shape: int, t: int) -> list[WalEntry]:
    """The WAL of one operation of shape `shape` (0..4) from tick `t`."""
    cert = f"{op}/cert"
    out: list[WalEntry] = [
        ev(op, f"{op}/witness", L.PROVISIONAL, t),
        esc(op, L.NONE, L.PROVISIONAL, t, f"{op}/witness"),
        gate(op, L.PROVISIONAL, t),
    ]
    if shape == 3:
        return out
    out += [ev(op, cert, L.SOFT_SAFE, t + 1), esc(op, L.PROVISIONAL, L.SOFT_SAFE, t + 1, cert)]
    if shape == 0:
        out += [fin(op, F.FINALIZED, t + 2), gate(op, L.FINALIZED, t + 2)]
    elif shape == 1:
        out.append(fin(op, F.ABORTED, t + 2))
    elif shape == 2:
        out.append(gate(op, L.SOFT_SAFE, t + 2))
    return out


def intent(op: str, evidence_id: str) -> EffectIntent:
    return EffectIntent(
        evidence_id=evidence_id,
        interface_name="Payments",
        operation_name="charge",
        operation_id=op,
        attempt=1,
        request_digest="ab" * 32,
        created_unix_ms=1_700_000_000_000,
    )


def write_state(path: Path, n: int, *, checkpoint: int | None = None, extras: bool = True) -> Path:
    """Write the state directory `path` (see the module docstring)."""
    entries: list[WalEntry] = []
    for i in range(n):
        entries += entries_of(op_id(i), i % 5, 3 * i + 1)
    last = 3 * n + 1
    if extras:
        entries += [
            ev(ANOMALY, f"{ANOMALY}/w", L.PROVISIONAL, last),
            gate(ANOMALY, L.FINALIZED, last),
        ]
        entries += [
            ev(HOSTILE, HOSTILE_EVIDENCE, L.SOFT_SAFE, last + 1),
            gate(HOSTILE, L.SOFT_SAFE, last + 1),
        ]
    with StateDirectory(path, sync=SyncPolicy.NONE) as store:
        store.wal.append_batch(entries)
        for i in range(n):
            op = op_id(i)
            if i % 5 in (0, 1, 2):
                store.cache.put(binding(f"{op}/cert"))
            if i % 5 == 4:
                store.cache.put_intent(intent(op, f"{op}/charge"))
        if extras:
            store.cache.put(binding(HOSTILE_EVIDENCE))
            store.cache.put(binding("orphan/effect"))  # tied to no operation of the WAL
        store.wal.sync()
        store.cache.sync()
        if checkpoint is not None:
            store.checkpoint(checkpoint, b"state")
    return path
