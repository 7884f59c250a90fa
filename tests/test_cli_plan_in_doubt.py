"""`durability plan` shows the effects in doubt (API.md §11): per decision in
``--json`` and for the whole plan in text and ``--json``."""

from __future__ import annotations

import json
from pathlib import Path

from durability import EffectIntent, StateDirectory
from tests.helpers import L, esc
from tests.test_cli import run


def test_plan_lists_effects_in_doubt(tmp_path: Path) -> None:
    with StateDirectory(tmp_path) as store:
        store.wal.append(esc("op", L.NONE, L.PROVISIONAL, 1))
        store.cache.put_intent(
            EffectIntent(
                evidence_id="op/cert",
                interface_name="kv",
                operation_name="put",
                operation_id="op",
                attempt=1,
                request_digest="0" * 64,
                created_unix_ms=1,
            )
        )
    document = json.loads(run("plan", str(tmp_path), "--json").stdout)
    assert document["in_doubt_evidence_ids"] == ["op/cert"]
    assert document["decisions"][0]["in_doubt_evidence_ids"] == ["op/cert"]
    text = run("plan", str(tmp_path)).stdout
    assert "effects in doubt: op/cert (settle them with `durability resolve`)" in text
    clean = run("plan", str(tmp_path / "nothing"))
    assert clean.returncode == 2  # not a state directory: unchanged behaviour
