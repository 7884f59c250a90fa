"""``durability effects`` and ``durability resolve`` (API.md §9, §11), run in
process through `durability.cli_effects.main` (the command functions the
``durability`` parser wires in with `add_commands`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from durability import (
    EffectFailure,
    EffectOutcome,
    EffectRequest,
    SqliteEvidenceOutcomeCache,
    StateDirectory,
)
from durability.cli_effects import add_commands, cmd_effects, cmd_resolve, main


def request(eid: str, op: str = "op-1") -> EffectRequest:
    return EffectRequest(
        interface_name="Storage", operation_name="write", tick=1, operation_id=op, body=eid
    )


class Crash:
    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        raise OSError("killed mid-effect")


class Count:
    calls = 0

    def handle_effect(self, request: EffectRequest) -> EffectOutcome:
        self.calls += 1
        return EffectOutcome.success("ran")


def state_with_doubts(tmp_path: Path, *eids: str) -> Path:
    directory = tmp_path / "state"
    with StateDirectory(directory) as store:
        handler = store.wrap(Crash(), lambda r: r.body)
        for i, eid in enumerate(eids):
            with pytest.raises(OSError):
                handler.handle_effect(request(eid, f"op-{i}"))
    return directory


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- effects ---------------------------------------------------------------------------


def test_effects_lists_what_is_in_doubt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = state_with_doubts(tmp_path, "a/cert", "b/cert")
    code, out, err = run(capsys, "effects", str(directory))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"2 effects in doubt in {directory / 'evidence.log'}"
    assert lines[1].split() == ["evidence", "id", "operation", "effect", "attempt", "started",
                                "(UTC)", "digest"]  # fmt: skip
    assert lines[2].split()[:4] == ["a/cert", "op-0", "Storage.write", "1"]
    assert lines[3].split()[:4] == ["b/cert", "op-1", "Storage.write", "1"]
    assert f"durability resolve {directory} EVIDENCE_ID" in out


def test_effects_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = state_with_doubts(tmp_path, "a/cert")
    code, out, _ = run(capsys, "effects", "--json", str(directory))
    document = json.loads(out)
    assert code == 0 and document["count"] == 1
    [item] = document["in_doubt"]
    assert item["evidence_id"] == "a/cert" and item["attempt"] == 1
    assert item["operation_id"] == "op-0" and len(item["request_digest"]) == 64
    assert set(item) == {
        "evidence_id",
        "interface_name",
        "operation_name",
        "operation_id",
        "attempt",
        "request_digest",
        "created_unix_ms",
    }


def test_effects_with_none_in_doubt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = state_with_doubts(tmp_path)
    code, out, _ = run(capsys, "effects", str(directory))
    assert code == 0 and out.startswith("no effects in doubt in ")


def test_effects_only_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = state_with_doubts(tmp_path, "a/cert")
    log = directory / "evidence.log"
    with log.open("ab") as out:
        out.write(b"\x01\x02\x03")  # a torn tail: a writer would cut it
    before = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    code, out, _ = run(capsys, "effects", str(directory))
    assert code == 0 and "1 effect in doubt" in out
    assert {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()} == before


def test_effects_refuses_what_is_not_a_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "effects", str(tmp_path / "missing"))
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith("durability: error: no cache log at")
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "effects", str(tmp_path / "empty"))
    assert code == 2 and err.startswith("durability: error: no cache log in the directory")
    assert "give its URL" in err
    assert not (tmp_path / "empty" / "evidence.log").exists()


# -- resolve ---------------------------------------------------------------------------


def test_resolve_success_binds_and_the_next_call_answers_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = state_with_doubts(tmp_path, "a/cert", "b/cert")
    code, out, _ = run(capsys, "resolve", str(directory), "a/cert", "--success", '{"rows": 1}')
    assert code == 0 and out.strip() == 'bound `a/cert`: success {"rows": 1}'
    inner = Count()
    with StateDirectory(directory) as store:
        handler = store.wrap(inner, lambda r: r.body)
        assert handler.handle_effect(request("a/cert", "op-0")) == EffectOutcome.success(
            {"rows": 1}
        )
        assert [i.evidence_id for i in store.cache.in_doubt()] == ["b/cert"]
    assert inner.calls == 0


def test_resolve_failure_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = state_with_doubts(tmp_path, "a/cert")
    argv = ["resolve", "--json", str(directory), "a/cert", "--failure", "denied", "refused"]
    code, out, _ = run(capsys, *argv)
    document = json.loads(out)
    assert code == 0 and document["changed"] is True and document["evidence_id"] == "a/cert"
    assert document["outcome"] == {
        "status": "failure",
        "response": None,
        "failure": {"kind": "denied", "message": "refused"},
    }
    with StateDirectory(directory) as store:
        bound = store.cache.get("a/cert")
    assert bound is not None and bound.outcome == EffectOutcome.failure(
        EffectFailure.denied("refused")
    )
    code, out, _ = run(capsys, "resolve", str(directory), "a/cert", "--success", "1")
    assert code == 0 and "already bound (unchanged): failure denied: refused" in out


def test_resolve_not_done_lets_the_next_call_run_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = state_with_doubts(tmp_path, "a/cert")
    code, out, _ = run(capsys, "resolve", str(directory), "a/cert", "--not-done")
    assert code == 0 and "withdrew attempt 1 of `a/cert`" in out
    inner = Count()
    with StateDirectory(directory) as store:
        outcome = store.wrap(inner, lambda r: r.body).handle_effect(request("a/cert", "op-0"))
    assert outcome == EffectOutcome.success("ran") and inner.calls == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nope", "--success", "1"], "resolve `nope`: no intent is recorded for it"),
        (["a/cert", "--failure", "bogus", "m"], "unknown failure kind 'bogus'"),
        (["a/cert", "--success", "{not json"], "--success takes a JSON response"),
    ],
)
def test_resolve_refusals_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    directory = state_with_doubts(tmp_path, "a/cert")
    code, out, err = run(capsys, "resolve", str(directory), *argv)
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and message in err
    with StateDirectory(directory) as store:
        assert [i.evidence_id for i in store.cache.in_doubt()] == ["a/cert"]


def test_resolve_needs_exactly_one_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = state_with_doubts(tmp_path, "a/cert")
    assert run(capsys, "resolve", str(directory), "a/cert")[0] == 2
    argv = ["resolve", str(directory), "a/cert", "--not-done", "--success", "1"]
    assert run(capsys, *argv)[0] == 2


def test_effects_and_resolve_on_a_sqlite_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "state.db"
    from durability import EvidencePersistenceHandler

    handler = EvidencePersistenceHandler(
        Crash(), SqliteEvidenceOutcomeCache(path), lambda r: r.body
    )
    with pytest.raises(OSError):
        handler.handle_effect(request("a/cert"))
    url = f"sqlite:///{path}"
    code, out, _ = run(capsys, "effects", "--json", url)
    assert code == 0 and [i["evidence_id"] for i in json.loads(out)["in_doubt"]] == ["a/cert"]
    assert run(capsys, "resolve", url, "a/cert", "--success", "null")[0] == 0
    assert SqliteEvidenceOutcomeCache(path).in_doubt() == []
    code, _, err = run(capsys, "effects", f"sqlite:///{tmp_path / 'missing.db'}")
    assert code == 2 and "no SQLite database" in err
    assert not (tmp_path / "missing.db").exists()


def test_add_commands_wires_both_into_a_parser(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="durability")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true")
    add_commands(parser.add_subparsers(dest="command", required=True), common)
    effects = parser.parse_args(["effects", "DIR", "--json"])
    assert effects.run is cmd_effects and effects.dir == "DIR" and effects.json
    resolve = parser.parse_args(["resolve", "DIR", "ev", "--failure", "timeout", "late"])
    assert resolve.run is cmd_resolve and resolve.failure == ["timeout", "late"]
