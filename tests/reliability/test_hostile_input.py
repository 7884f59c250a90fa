"""Hostile input (issue 13, suite 6): every decoder is fed inputs built to hurt.

Decoders: `PersistedDurabilityArtifact.from_cbor`, log files (a WAL opened
for writing, a cache opened read-only, a point-in-time open and
``inspect_log``, all through an in-memory `FileSystem`), checkpoints
(``store.decode_checkpoint``), replay traces (``ReplayHandler`` after the
user's own CBOR decoding), and the command line (``durability inspect`` and
``verify`` on a handful of random files). Only `DurabilityError` subclasses
may escape, and no input may take a second.

Inputs: a seeded mutator over valid seeds (bit flips, interesting bytes,
CBOR heads declaring huge lengths, tags, cuts, splices; 51,000 inputs in CI,
1,020,000 with ``DURABILITY_LONG=1``), atheris (coverage-guided, the same
decoders: ``fuzz_atheris.py``, 100,000 inputs in CI, 1,000,000 long),
hypothesis (random bytes and random plain CBOR trees), and exhaustive cases:
every field of every artifact kind given a value of every wrong type, every
tag, nesting far past the limit, huge declared lengths.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durability import DecodeError, DurabilityError, PersistedDurabilityArtifact, ReplayHandler
from durability.backends.file import FileAgreementWal
from durability.framing import RecordType, encode_record, scan_log
from tests.reliability._fuzz import DECODERS, MemoryFile, decode_artifact, mutate, seeds, timed
from tests.reliability._scale import LONG, figure, rng, scaled

SEEDS = seeds()
#: Mutated inputs per decoder (a log input is read four ways).
MUTATED = {
    "artifact": scaled(26_000, 520_000),
    "log": scaled(9_000, 180_000),
    "checkpoint": scaled(10_000, 200_000),
    "trace": scaled(6_000, 120_000),
}
SECOND = 1.0


@pytest.mark.parametrize("kind", sorted(MUTATED))
def test_mutated_inputs_raise_only_durability_errors_within_a_second(kind: str) -> None:
    r, decoder, corpus = rng(f"fuzz-{kind}"), DECODERS[kind], SEEDS[kind]
    slowest = 0.0
    for _ in range(MUTATED[kind]):
        data = mutate(r.choice(corpus), r, corpus)
        slowest = max(slowest, timed(decoder, data))
    assert slowest < SECOND
    figure(f"fuzz-{kind}", inputs=MUTATED[kind], slowest_ms=round(slowest * 1000, 1))


FUZZ_SETTINGS = settings(
    max_examples=scaled(500, 5_000),
    deadline=int(SECOND * 1000),
    derandomize=not LONG,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


@FUZZ_SETTINGS
@given(data=st.binary(max_size=600), kind=st.sampled_from(sorted(DECODERS)))
def test_random_bytes_raise_only_durability_errors(data: bytes, kind: str) -> None:
    timed(DECODERS[kind], data)


def plain_trees() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**64), max_value=2**64 - 1),
        st.floats(allow_nan=True),
        st.text(max_size=12),
        st.binary(max_size=12),
        st.sampled_from(
            ["agreement_wal", "telltale.machine.durability.v1", "escalation", "entries"]
        ),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.text(max_size=8) | st.sampled_from(KEYS), inner, max_size=4),
        ),
        max_leaves=30,
    )


KEYS = [
    "schema_version",
    "payload",
    "kind",
    "entries",
    "tick",
    "status",
    "response",
    "format",
    "state",
    "request",
    "outcome",
]


@FUZZ_SETTINGS
@given(tree=plain_trees(), kind=st.sampled_from(sorted(DECODERS)))
def test_random_cbor_trees_raise_only_durability_errors(tree: Any, kind: str) -> None:
    timed(DECODERS[kind], cbor2.dumps(tree))
    if kind == "trace":  # a trace handed over as data, not bytes
        with contextlib.suppress(DurabilityError):
            ReplayHandler(tree if isinstance(tree, list) else [tree])


# -- exhaustive hostile shapes -----------------------------------------------------------

WRONG = [0, -1, 2**64 - 1, -(2**64), "text", b"bytes", [], [1], {}, {"k": 1}, None, True, 1.5]


def paths(tree: Any, where: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every position in a plain tree: each map value and list item."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield (*where, key)
            yield from paths(value, (*where, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield (*where, i)
            yield from paths(value, (*where, i))


def replaced(tree: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(tree, dict):
        return {k: replaced(v, rest, value) if k == head else v for k, v in tree.items()}
    return [replaced(v, rest, value) if i == head else v for i, v in enumerate(tree)]


def get(tree: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        tree = tree[step]
    return tree


def test_a_wrong_type_in_every_field_of_every_artifact_is_refused() -> None:
    tried = refused = 0
    for data in SEEDS["artifact"]:
        tree = cbor2.loads(data)
        for path in paths(tree):
            original = get(tree, path)
            free_form = "response" in path or "body" in path
            for value in WRONG:
                if type(value) is type(original) or free_form:
                    continue
                tried += 1
                try:
                    decode_artifact(cbor2.dumps(replaced(tree, path, value)))
                except DecodeError:
                    refused += 1
                    continue
                # accepted: only an optional field (text, or a tick) may read null or
                # a value of its own type, and a list may be empty
                optional = original is None and (
                    isinstance(value, str) or (type(value) is int and 0 <= value < 2**64)
                )
                empty_list = value == [] and isinstance(original, list)
                assert value is None or optional or empty_list, (path, value)
    figure("fuzz-wrong-types", tried=tried, refused=refused)


TAGS = [
    0,
    1,
    2,
    3,
    4,
    5,
    21,
    24,
    25,
    28,
    29,
    30,
    32,
    35,
    36,
    37,
    52,
    54,
    100,
    256,
    258,
    260,
    261,
    1004,
    55799,
    65536,
    2**32,
    2**64 - 1,
]


@pytest.mark.parametrize("kind", ["artifact", "checkpoint", "trace", "log"])
def test_an_unknown_or_semantic_tag_anywhere_is_refused(kind: str) -> None:
    tried = 0
    for data in SEEDS[kind][:1]:
        if kind == "log":
            tried += tags_in_a_record(data)
            continue
        tree = cbor2.loads(data)
        for path in list(paths(tree))[:40]:
            for tag in TAGS:
                tagged = replaced(tree, path, cbor2.CBORTag(tag, get(tree, path)))
                tried += 1
                try:
                    raw = cbor2.dumps(tagged)
                except Exception:
                    continue  # cbor2 cannot write this tag's content
                if kind == "trace":  # the user's own decoding builds what the tag means
                    try:
                        loaded = cbor2.loads(raw)
                    except Exception:
                        continue  # their decoder refused it
                    if is_plain(loaded):
                        continue  # a tag their decoder resolves (sharing, self-describe)
                    with pytest.raises(DurabilityError):
                        ReplayHandler(loaded)
                    continue
                with pytest.raises(DurabilityError):
                    DECODERS[kind](raw)
    figure(f"fuzz-tags-{kind}", tried=tried)


def tags_in_a_record(data: bytes) -> int:
    """Tag each position of a WAL log's first entries record, re-framed with
    good checksums so the tag reaches the decoder: the log fails closed."""
    record = next(r for r in scan_log(data, name="x").records if r.type is RecordType.WAL_ENTRIES)
    tree, tried = cbor2.loads(record.payload), 0
    for path in paths(tree):
        for tag in TAGS:
            payload = cbor2.dumps(replaced(tree, path, cbor2.CBORTag(tag, get(tree, path))))
            damaged = data[: record.offset] + encode_record(record.type, record.seq, payload)
            tried += 1
            with pytest.raises(DecodeError):
                FileAgreementWal("x.log", fs=MemoryFile(damaged)).load()
    return tried


def is_plain(value: Any) -> bool:
    """Plain CBOR data as a decoder hands it over (lists may come as tuples)."""
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return True
    if isinstance(value, list | tuple):
        return all(is_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    return False


def nested(depth: int) -> bytes:
    return b"\x81" * depth + b"\x00"


def test_nesting_far_past_the_limit_is_refused_without_recursion_errors() -> None:
    deep = nested(100_000)
    wal = cbor2.loads(SEEDS["artifact"][0])
    holder = cbor2.dumps(wal)[:-1]  # ... then the deep item where the last entry list ends
    for data in (deep, holder + deep, SEEDS["checkpoint"][0][:-1] + deep):
        for decoder in DECODERS.values():
            assert timed(decoder, data) < SECOND


@pytest.mark.parametrize("head", [b"\x5b", b"\x7b", b"\x9b", b"\xbb"])
@pytest.mark.parametrize("length", [2**32, 2**63 - 1, 2**64 - 1])
def test_a_huge_declared_length_is_refused_at_once(head: bytes, length: int) -> None:
    item = head + length.to_bytes(8, "big") + b"\x00" * 16
    artifact = SEEDS["artifact"][0]
    for data in (item, artifact[:40] + item, SEEDS["log"][0] + item):
        for decoder in DECODERS.values():
            assert timed(decoder, data) < SECOND
    with pytest.raises(DecodeError):
        PersistedDurabilityArtifact.from_cbor(item)


# -- the command line ---------------------------------------------------------------------


def test_inspect_and_verify_on_random_files_exit_cleanly_with_one_line(tmp_path: Path) -> None:
    r = rng("fuzz-cli")
    corpus = [*SEEDS["log"], *SEEDS["checkpoint"], *SEEDS["artifact"]]
    files = [bytes(r.randrange(256) for _ in range(300)), nested(5_000), b"\x9b" + b"\xff" * 8]
    files += [mutate(r.choice(corpus), r, corpus) for _ in range(3)]
    runs = 0
    for i, data in enumerate(files):
        path = tmp_path / f"input-{i}"
        path.write_bytes(data)
        for command in ("inspect", "verify"):
            done = subprocess.run(
                [sys.executable, "-m", "durability", command, str(path)],
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, "DURABILITY_DEBUG": ""},
            )
            runs += 1
            assert done.returncode in (0, 1, 2), done
            assert "Traceback" not in done.stderr and "internal error" not in done.stderr, (
                done.stderr
            )
            assert len(done.stderr.strip().splitlines()) <= 1, done.stderr
    figure("fuzz-cli", runs=runs)


def test_a_replay_trace_whose_request_body_is_not_plain_data_is_refused() -> None:
    """A tag (or any object) in a request's body: once accepted, because the
    codec's generic attrs hook shadowed the one that checks the body."""
    for body in (cbor2.CBORTag(1000, [0]), {1: "int key"}, object()):
        trace = [
            {
                "kind": "handle_effect",
                "request": {"interface_name": "I", "operation_name": "o", "tick": 0, "body": body},
                "outcome": {"status": {"status": "success"}, "response": None},
            }
        ]
        with pytest.raises(DecodeError, match="body"):
            ReplayHandler(trace)


ATHERIS_RUNS = scaled(100_000, 1_000_000)


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris is not installed")
def test_coverage_guided_fuzzing_finds_no_crash(tmp_path: Path) -> None:
    script = Path(__file__).with_name("fuzz_atheris.py")
    done = subprocess.run(
        [sys.executable, str(script), f"-runs={ATHERIS_RUNS}", "-seed=1", "-timeout=1"],
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Done {ATHERIS_RUNS} runs" in done.stderr
    final = [line for line in done.stderr.splitlines() if "DONE" in line]
    figure("fuzz-atheris", inputs=ATHERIS_RUNS, final=final[-1] if final else "")
