"""The request digest (API.md §11, specs/effects.md "The request digest"):
SHA-256 of the deterministic CBOR (RFC 8949 §4.2.1) of ``[interface_name,
operation_name, body]``, pinned against ``cbor2.dumps(..., canonical=True)``
and against a small independent encoder written from the RFC; bodies that
are not plain are refused, not crashed on; intents recorded by the first
release (code-point key order, 64-bit floats) still match their request."""

from __future__ import annotations

import contextlib
import hashlib
import math
import struct
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from durability import (
    EffectFailure,
    EffectFailureKind,
    EffectOutcome,
    EffectRequest,
    EffectSemantics,
    EncodeError,
    EvidencePersistenceHandler,
    FileEvidenceOutcomeCache,
    InMemoryEvidenceOutcomeCache,
    request_digest,
)
from durability.digest import legacy_request_digest, same_request

LEGACY_LOG = Path(__file__).parent / "data" / "cache_log_legacy_digest.hex"


def request(body: Any, *, interface: str = "Storage", operation: str = "write") -> EffectRequest:
    return EffectRequest(interface_name=interface, operation_name=operation, tick=1, body=body)


def canonical(body: Any) -> str:
    return hashlib.sha256(cbor2.dumps(["Storage", "write", body], canonical=True)).hexdigest()


# -- an encoder written from RFC 8949 §4.2.1, to check cbor2's canonical mode against --


def _head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes([major << 5 | extra]) + value.to_bytes(size, "big")
    raise ValueError(value)


def _float(value: float) -> bytes:
    if math.isnan(value):
        return b"\xf9\x7e\x00"
    for code, fmt in ((0xF9, ">e"), (0xFA, ">f")):
        with contextlib.suppress(OverflowError):
            packed = struct.pack(fmt, value)
            if struct.unpack(fmt, packed)[0] == value:
                return bytes([code]) + packed
    return b"\xfb" + struct.pack(">d", value)


def rfc8949(value: Any) -> bytes:
    """Core deterministic encoding: shortest heads, shortest exact floats,
    map entries sorted by the bytes of their encoded keys."""
    if value is None or isinstance(value, bool):
        return {None: b"\xf6", False: b"\xf4", True: b"\xf5"}[value]
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, bytes):
        return _head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return _head(3, len(raw)) + raw
    if isinstance(value, list):
        return _head(4, len(value)) + b"".join(rfc8949(item) for item in value)
    pairs = sorted((rfc8949(key), rfc8949(item)) for key, item in value.items())
    return _head(5, len(pairs)) + b"".join(key + item for key, item in pairs)


BODIES = {
    "keys of different lengths": {"to": "bob", "amount": 5, "currency": "EUR"},
    "nested maps": {"meta": {"zz": [1, {"bbb": 2, "a": 1}], "a": b"\x00"}, "id": {"x": {}}},
    "floats": [1.0, 0.1, 1.5, -0.0, 65504.0, 100000.0, 1e300, math.inf, math.nan, 5.960464477539063e-08],
    "non-ASCII keys": {"é": 1, "z": 2, "aa": 3, "ab": {"日本": None, "ü": True}},
    "integers at the edges": [0, 23, 24, 255, 256, 65536, 2**32, 2**64 - 1, -1, -25, -(2**63), -(2**64)],
    "a long key": {"k" * 30: 1, "k" * 24: 2, "k" * 23: 3, "k" * 300: 4},
}  # fmt: skip


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
def test_the_digest_is_sha256_of_cbor2_canonical_and_of_rfc_8949_deterministic(body: Any) -> None:
    digest = request_digest(request(body))
    assert digest == canonical(body)
    assert digest == hashlib.sha256(rfc8949(["Storage", "write", body])).hexdigest()
    assert len(digest) == 64 and digest == digest.lower()


def test_text_keys_go_shorter_first_not_in_code_point_order() -> None:
    encoded = cbor2.dumps(["S", "w", {"amount": 1, "to": "x"}], canonical=True)
    assert encoded.hex().startswith("8361536177a262746f6178")  # "to": "x" comes first
    assert request_digest(request({"amount": 1, "to": "x"})) == canonical({"to": "x", "amount": 1})
    assert request_digest(request({"amount": 1, "to": "x"})) != legacy_request_digest(
        request({"amount": 1, "to": "x"})
    )


def test_insertion_order_tick_session_and_ids_are_not_part_of_it() -> None:
    body = {"to": "bob", "amount": 5, "meta": {"z": [1, {"b": 2, "a": 1}], "a": b"\x00"}}
    reordered = {"meta": {"a": b"\x00", "z": [1, {"a": 1, "b": 2}]}, "amount": 5, "to": "bob"}
    other = EffectRequest(
        interface_name="Storage",
        operation_name="write",
        tick=99,
        operation_id="another-op",
        session=3,
        effect_id=7,
        body=reordered,
    )
    assert request_digest(other) == request_digest(request(body)) == canonical(body)
    assert request_digest(request(body, operation="read")) != request_digest(request(body))
    assert request_digest(request([1])) != request_digest(request([1.0]))  # 01 is not f9 3c00


plain_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=30), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(plain_values)
def test_any_plain_body_digests_as_rfc_8949_deterministic(body: Any) -> None:
    expected = hashlib.sha256(rfc8949(["Storage", "write", body])).hexdigest()
    assert request_digest(request(body)) == expected == canonical(body)


@pytest.mark.parametrize(
    "body",
    [{1: "one", "two": 2}, {"a": {b"raw": 1}}, [{2: 1, "b": 0}], {"when": object()}, 2**64],
    ids=["int and text keys", "a bytes key", "nested mixed keys", "an object", "a huge integer"],
)
def test_a_body_that_is_not_plain_has_no_digest_and_runs_nothing(body: Any) -> None:
    with pytest.raises(EncodeError):
        request_digest(request(body))
    with pytest.raises(EncodeError):
        legacy_request_digest(request(body))
    ran: list[EffectRequest] = []

    class Inner:
        def handle_effect(self, req: EffectRequest) -> EffectOutcome:
            ran.append(req)
            return EffectOutcome.success(None)

    cache = InMemoryEvidenceOutcomeCache()
    outcome = EvidencePersistenceHandler(Inner(), cache, lambda _r: "ev").handle_effect(
        request(body)
    )
    assert outcome.failure is not None and outcome.failure.kind is EffectFailureKind.INVALID_INPUT
    assert "the request body has no digest" in outcome.failure.message
    assert ran == [] and cache.get_intent("ev") is None


# -- intents of the first release -------------------------------------------------------


def first_release_digest(req: EffectRequest) -> str:
    """The digest function as the first release shipped it (maps sorted by code point)."""

    def sort(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: sort(value[key]) for key in sorted(value)}
        if isinstance(value, list | tuple):
            return [sort(item) for item in value]
        return value

    return hashlib.sha256(
        cbor2.dumps([req.interface_name, req.operation_name, sort(req.body)])
    ).hexdigest()


def payment(evidence_id: str, amount: int) -> EffectRequest:
    """The requests the legacy log was written for (by the first release)."""
    return EffectRequest(
        interface_name="Payments",
        operation_name="transfer",
        tick=3,
        operation_id=f"op-{evidence_id}",
        body={
            "evidence_id": evidence_id,
            "to": "bob",
            "amount": amount,
            "rate": 1.5,
            "memo": {"zz": 1, "a": [0.5]},
        },
    )


class Pay:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def handle_effect(self, req: EffectRequest) -> EffectOutcome:
        self.calls.append(req.body["evidence_id"])
        return EffectOutcome.success({"paid": req.body["amount"]})


@pytest.fixture
def legacy_cache(tmp_path: Path) -> FileEvidenceOutcomeCache:
    path = tmp_path / "cache.log"
    path.write_bytes(bytes.fromhex(LEGACY_LOG.read_text()))
    return FileEvidenceOutcomeCache(path)


def test_the_legacy_log_holds_first_release_digests(legacy_cache: FileEvidenceOutcomeCache) -> None:
    for evidence_id, amount in (("pay-bound", 5), ("pay-doubt", 7)):
        intent = legacy_cache.get_intent(evidence_id)
        assert intent is not None
        req = payment(evidence_id, amount)
        assert intent.request_digest == first_release_digest(req) == legacy_request_digest(req)
        assert intent.request_digest != request_digest(req)
        assert same_request(intent.request_digest, request_digest(req), req)
    assert [intent.evidence_id for intent in legacy_cache.in_doubt()] == ["pay-doubt"]


def test_a_legacy_intent_is_the_same_request_not_a_determinism_failure(
    legacy_cache: FileEvidenceOutcomeCache,
) -> None:
    pay = Pay()

    def handler(semantics: EffectSemantics) -> EvidencePersistenceHandler:
        return EvidencePersistenceHandler(
            pay, legacy_cache, lambda r: r.body["evidence_id"], semantics=semantics
        )

    at_most_once = handler(EffectSemantics.AT_MOST_ONCE)
    assert at_most_once.handle_effect(payment("pay-bound", 5)) == EffectOutcome.success({"paid": 5})
    doubt = at_most_once.handle_effect(payment("pay-doubt", 7))
    assert doubt.failure is not None and doubt.failure.kind is EffectFailureKind.UNAVAILABLE
    assert "is in doubt (attempt 1" in doubt.failure.message
    assert pay.calls == []
    again = handler(EffectSemantics.AT_LEAST_ONCE).handle_effect(payment("pay-doubt", 7))
    assert again == EffectOutcome.success({"paid": 7}) and pay.calls == ["pay-doubt"]
    second = legacy_cache.get_intent("pay-doubt")
    assert second is not None and second.attempt == 2
    assert second.request_digest == request_digest(payment("pay-doubt", 7))  # new ones: canonical


def test_another_request_under_a_legacy_intent_is_still_refused(
    legacy_cache: FileEvidenceOutcomeCache,
) -> None:
    pay = Pay()
    handler = EvidencePersistenceHandler(
        pay, legacy_cache, lambda r: r.body["evidence_id"], semantics=EffectSemantics.AT_LEAST_ONCE
    )
    for evidence_id, amount in (("pay-bound", 6), ("pay-doubt", 8)):
        recorded = first_release_digest(payment(evidence_id, amount - 1))
        outcome = handler.handle_effect(payment(evidence_id, amount))
        assert outcome == EffectOutcome.failure(
            EffectFailure.determinism(
                f"evidence `{evidence_id}` was recorded for request digest {recorded}; "
                f"this request has digest {request_digest(payment(evidence_id, amount))}"
            )
        )
    assert pay.calls == []
