"""`durability demo` and effects in doubt: the killed worker leaves one effect
in flight (intent durable, write in the store, no outcome bound); the demo's
first plan shows it in doubt, the demo settles it as an operator would
(looking in the store, then `resolve`), and the plan after shows none. The
command it prints is the real one; the store holds each write once."""

from __future__ import annotations

import contextlib
import json
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

from durability import EffectOutcome, EffectRequest, StateDirectory
from durability.demo import settle_in_doubt
from durability.demo_worker import SINK_FILE, resolve_evidence, write_request
from tests.test_cli import run


def demo_report(directory: Path) -> dict[str, Any]:
    result = run("demo", str(directory), "--json", "--operations", "30")
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert "effect op#" in result.stderr and "in flight" in result.stderr  # progress
    return report


def test_the_demo_finds_the_interrupted_effect_in_doubt_and_settles_it(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    report = demo_report(directory)
    doubt = report["effects_in_doubt"]
    flight = doubt["in_flight_when_killed"]
    evidence_id = flight["evidence_id"]
    operation = evidence_id.split("/")[0]
    before = doubt["plan_before_settling"]
    assert before["in_doubt_evidence_ids"] == [evidence_id]
    decisions = {d["operation_id"]: d for d in before["decisions"]}
    assert decisions[operation]["in_doubt_evidence_ids"] == [evidence_id]
    assert evidence_id not in decisions[operation]["cached_evidence_ids"]
    [settled] = doubt["settled"]
    assert settled["evidence_id"] == evidence_id and settled["operation_id"] == operation
    assert settled["attempt"] == 1 and settled["verdict"] == "success"
    assert settled["stored_write"] == {
        "evidence_id": evidence_id,
        "key": operation,
        "tick": flight["tick"],
    }
    after = report["plan"]
    assert after["in_doubt_evidence_ids"] == []
    settled_decision = {d["operation_id"]: d for d in after["decisions"]}[operation]
    assert evidence_id in settled_decision["cached_evidence_ids"]
    assert settled_decision["in_doubt_evidence_ids"] == []
    assert report["replay"]["inner_handler_calls"] == 0
    assert report["all_decisions_sound"]
    # the store holds every write once: the interrupted one was not performed again
    lines = (directory / SINK_FILE).read_text().splitlines()
    writes = Counter(json.loads(line)["evidence_id"] for line in lines)
    assert writes[evidence_id] == 1 and set(writes.values()) == {1}
    effects = run("effects", str(directory), "--json")
    assert effects.returncode == 0 and json.loads(effects.stdout)["in_doubt"] == []
    # the command the demo prints is the real one (and settling again changes nothing)
    word, *rest = shlex.split(settled["command"])
    assert word == "durability" and rest[:2] == ["resolve", str(directory)]
    again = run(*rest, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["changed"] is False
    assert json.loads(again.stdout)["outcome"]["response"] == {
        "written": operation,
        "tick": flight["tick"],
    }


def test_the_demo_text_tells_the_story(tmp_path: Path) -> None:
    result = run("demo", str(tmp_path / "demo"), "--operations", "30")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    first, _, after = text.partition("recovery plan after settling:")
    assert after, text
    assert "(settle them with `durability resolve`)" in first
    assert "effect in doubt: op#" in first
    assert "the kill interrupted it in flight" in first
    assert ", so it happened" in first
    assert f"and settles it: durability resolve {tmp_path / 'demo'} op#" in first
    assert "effects in doubt: none" in after
    assert "the live handler ran 0 times" in after


class _Gateway:
    """An effect whose request never reached the store: it raises (fate unknown)."""

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        raise TimeoutError("no answer from the store")


def test_an_effect_missing_from_the_store_is_settled_as_not_done(tmp_path: Path) -> None:
    with StateDirectory(tmp_path) as state:
        with contextlib.suppress(TimeoutError):
            state.wrap(_Gateway(), resolve_evidence).handle_effect(write_request("op#001", 4))
        [item] = settle_in_doubt(state, str(tmp_path), str(tmp_path))
        assert item.verdict == "not_done" and item.stored_write is None
        assert item.command == f"durability resolve {tmp_path} op#001/certificate --not-done"
        assert state.cache.in_doubt() == [] and state.cache.get("op#001/certificate") is None
        intent = state.cache.get_intent("op#001/certificate")
        assert intent is not None and intent.withdrawn
