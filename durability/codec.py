"""The v1 codec: the one cattrs converter, and strict CBOR on top of cbor2. Pure.

Writing follows the Rust original's serde layout byte for byte (FORMAT.md §1):
maps in field-declaration order, ``null`` for absent options, snake_case enum
text, WAL entries tagged by a *first* key ``"kind"``, `EffectOutcome` as
``{"status": {"status": S, ["failure": F]}, "response": R}``.

Reading is lenient about shape (any key order, missing optional keys, unknown
keys ignored) and strict about content: plain CBOR data only (no tags, no
indefinite lengths, no duplicate map keys, no simple values), nesting bounded to
`MAX_DEPTH` containers from the root of the artifact the data is (or would be
exported) in, and every field of the right type (a ``"7"`` is not a
tick). Every failure is a `DecodeError` (or `EncodeError` when writing).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
import cbor2
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn
from cattrs.v import format_exception

from .artifact import (
    AgreementWalArtifact,
    DurableRecoveryMetadata,
    Escalation,
    EvidenceOutcomeCacheArtifact,
    EvidenceOutcomeCacheEntry,
    EvidenceProduced,
    Finalization,
    VisibilityGateCrossing,
    WalEntry,
    WalSyncRequest,
    check_plain,
)
from .effects import EffectFailure, EffectOutcome, EffectRequest, EffectStatus
from .errors import DecodeError, EncodeError
from .limits import MAX_DEPTH
from .model import AgreementEvidence, AgreementState

__all__ = [
    "MAX_DEPTH",
    "check_plain",
    "decode_item",
    "dumps",
    "from_plain",
    "to_plain",
]

T = TypeVar("T")


#: WAL entry classes and the ``"kind"`` text of each.
ENTRY_KINDS: dict[type, str] = {
    Escalation: "escalation",
    EvidenceProduced: "evidence_produced",
    Finalization: "finalization",
    VisibilityGateCrossing: "visibility_gate_crossing",
}
_ENTRY_BY_KIND = {kind: cls for cls, kind in ENTRY_KINDS.items()}

#: Tags cbor2 decodes by itself; each is refused through `semantic_decoders`,
#: every other tag through `tag_hook`.
_NATIVE_TAGS = (
    0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100,
    256, 258, 260, 261, 1004, 55799,
)  # fmt: skip


class _Refused(Exception):
    pass


def _refuse_native(decoder: Any) -> Any:
    raise _Refused("semantic tags are not plain CBOR data")


def _refuse_tag(decoder: Any, tag: Any) -> Any:
    raise _Refused(f"tag {tag.tag} is not plain CBOR data")


_SEMANTIC = dict.fromkeys(_NATIVE_TAGS, _refuse_native)


# ---------------------------------------------------------------------------
# bytes <-> plain data


def decode_item(
    data: bytes | memoryview, offset: int = 0, *, max_depth: int = MAX_DEPTH
) -> tuple[Any, int]:
    """Decode one strict CBOR item of `data` starting at `offset`.

    Returns ``(value, end_offset)``. Raises `DecodeError` naming the offset
    for anything that is not plain, definite-length CBOR within `max_depth`.
    """
    stream = io.BytesIO(data)
    stream.seek(offset)
    try:
        decoder = cbor2.CBORDecoder(
            stream,
            tag_hook=_refuse_tag,
            semantic_decoders=_SEMANTIC,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            max_depth=max_depth,
        )
        value = decoder.decode()
    except Exception as exc:  # cbor2 raises several types; all mean "not v1"
        detail = exc.__cause__ if isinstance(exc.__cause__, _Refused) else exc
        raise DecodeError(f"invalid CBOR: {detail}", offset=offset) from exc
    return value, stream.tell()


def dumps(plain: Any) -> bytes:
    """Encode plain data (as built by `to_plain`) as definite-length CBOR."""
    check_plain(plain)
    try:
        return cbor2.dumps(plain)
    except Exception as exc:
        raise EncodeError(f"encode persisted durability artifact: {exc}") from exc


def _read_plain(value: Any, what: str, depth: int = 0) -> Any:
    """Check decoded free-form data (a response or body) sitting `depth`
    containers below its artifact's root: text keys, no simple values such as
    ``undefined``, no deeper than `MAX_DEPTH` from that root."""
    try:
        check_plain(value, depth)
    except EncodeError as exc:
        raise ValueError(f"{what}: {exc}") from None
    return value


# ---------------------------------------------------------------------------
# the converter


def _strict(kind: type) -> Callable[[Any, Any], Any]:
    def hook(value: Any, _type: Any) -> Any:
        if type(value) is not kind:
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__} {value!r:.40}")
        return value

    return hook


def _sequence(element: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
    def hook(value: Any, _type: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise TypeError(f"expected an array, got {type(value).__name__}")
        return tuple(converter.structure(item, element) for item in value)

    return hook


def _mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a map, got {type(value).__name__} {value!r:.40}")
    return value


def _record(cls: type[T]) -> None:
    """Register field-order unstructuring and map-checked structuring for `cls`."""
    structure = make_dict_structure_fn(cls, converter)
    converter.register_structure_hook(cls, lambda value, _t: structure(_mapping(value), cls))
    converter.register_unstructure_hook(cls, make_dict_unstructure_fn(cls, converter))


def _structure_entry(value: Any, _type: Any) -> WalEntry:
    data = _mapping(value)
    kind = data.get("kind")
    cls = _ENTRY_BY_KIND.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown WAL entry kind {kind!r}")
    result: WalEntry = converter.structure(data, cls)
    return result


def _unstructure_entry_fn(cls: type) -> Callable[[Any], dict[str, Any]]:
    fields: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(cls, converter)
    kind = ENTRY_KINDS[cls]

    def hook(entry: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": kind}
        out.update(fields(entry))
        return out

    return hook


def _structure_outcome(value: Any, _type: Any, depth: int = 0) -> EffectOutcome:
    """An `EffectOutcome` whose map sits `depth` containers below its root."""
    data = _mapping(value)
    status_map = _mapping(data["status"])
    status = converter.structure(status_map["status"], EffectStatus)
    failure = None
    if status is EffectStatus.FAILURE:
        failure = converter.structure(status_map["failure"], EffectFailure)
    response = _read_plain(data.get("response"), "response", depth + 1)
    return EffectOutcome(status=status, response=response, failure=failure)


def _unstructure_outcome(outcome: EffectOutcome) -> dict[str, Any]:
    status: dict[str, Any] = {"status": outcome.status.value}
    if outcome.failure is not None:
        status["failure"] = {"kind": outcome.failure.kind.value, "message": outcome.failure.message}
    return {"status": status, "response": outcome.response}


def _structure_request(value: Any, _type: Any) -> EffectRequest:
    request: EffectRequest = _request_fields(_mapping(value), EffectRequest)
    _read_plain(request.body, "body")
    return request


converter = cattrs.Converter(detailed_validation=True)
# Leaf hooks first: generated record functions capture the hooks that exist
# when they are made.
for _primitive in (str, int, bool, bytes):
    converter.register_structure_hook(_primitive, _strict(_primitive))


def _is(expected: Any) -> Callable[[Any], bool]:
    return lambda candidate: bool(candidate == expected)


for _element in (str, AgreementEvidence, EvidenceOutcomeCacheEntry, WalEntry):
    _seq_type = tuple[_element, ...]  # type: ignore[valid-type]
    converter.register_structure_hook_func(_is(_seq_type), _sequence(_element))
converter.register_structure_hook_func(_is(WalEntry), _structure_entry)
converter.register_structure_hook(EffectOutcome, _structure_outcome)
converter.register_unstructure_hook(EffectOutcome, _unstructure_outcome)
for _leaf in (AgreementEvidence, AgreementState, EffectFailure):
    _record(_leaf)
for _entry_cls in ENTRY_KINDS:
    _record(_entry_cls)
    converter.register_unstructure_hook(_entry_cls, _unstructure_entry_fn(_entry_cls))
for _cls in (
    AgreementWalArtifact,
    EvidenceOutcomeCacheEntry,
    EvidenceOutcomeCacheArtifact,
    DurableRecoveryMetadata,
    WalSyncRequest,
):
    _record(_cls)
_request_fields = make_dict_structure_fn(EffectRequest, converter)
converter.register_structure_hook(EffectRequest, _structure_request)
converter.register_unstructure_hook(
    EffectRequest, make_dict_unstructure_fn(EffectRequest, converter)
)


def to_plain(value: Any) -> Any:
    """The v1 plain-data form of a model value (maps in field order)."""
    return converter.unstructure(value)


def from_plain(data: Any, cls: type[T], *, where: str = "value") -> T:
    """Build a `cls` from v1 plain data; `DecodeError` (its reason naming
    `where` and the path of the first bad field, e.g. ``$.entries[2].tick``)
    when it does not fit."""
    try:
        return converter.structure(data, cls)
    except Exception as exc:
        raise DecodeError(f"invalid {where}: {_describe(exc)}") from exc


def _format_error(exc: BaseException, type_: Any) -> str:
    """cattrs' message for one error, keeping what our hooks say about a bad value."""
    if type(exc) is ValueError and exc.args:
        return f"invalid value ({exc})"
    return format_exception(exc, type_)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        messages = cattrs.transform_error(exc, format_exception=_format_error)
        return "; ".join(messages[:3]) + (" ..." if len(messages) > 3 else "")
    return f"{type(exc).__name__}: {exc}"


def fields_of(cls: type) -> tuple[str, ...]:
    """Field names of `cls` in declaration (= wire) order."""
    return tuple(field.name for field in attrs.fields(cls))
