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

import contextlib
import io
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs
import cattrs
import cbor2
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn
from cattrs.v import format_exception

from .artifact import (
    Escalation,
    EvidenceProduced,
    Finalization,
    VisibilityGateCrossing,
    WalEntry,
    check_plain,
)
from .effects import EffectFailure, EffectOutcome, EffectRequest, EffectStatus
from .errors import DecodeError, EncodeError
from .limits import MAX_DEPTH
from .structuring import outcome_plain, structurer, unstructure_fast

__all__ = [
    "MAX_DEPTH",
    "check_plain",
    "configure_converter",
    "make_converter",
    "decode_item",
    "dumps",
    "dumps_values",
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
    return _encode(plain)


def _encode(plain: Any) -> bytes:
    try:
        return cbor2.dumps(plain)
    except Exception as exc:
        raise EncodeError(f"encode persisted durability artifact: {exc}") from exc


def _read_plain(value: Any, what: str) -> Any:
    """Check decoded free-form data (a response or body): text keys, no
    simple values such as ``undefined``. (Decoding bounds its depth.)"""
    try:
        check_plain(value)
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


def _mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a map, got {type(value).__name__} {value!r:.40}")
    return value


def _is_variadic_tuple(type_: Any) -> bool:
    args = typing.get_args(type_)
    return typing.get_origin(type_) is tuple and len(args) == 2 and args[1] is Ellipsis


def _structure_sequence(c: cattrs.Converter) -> Callable[[Any, Any], tuple[Any, ...]]:
    """``tuple[X, ...]`` fields read a CBOR array (and nothing else)."""

    def hook(value: Any, type_: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise TypeError(f"expected an array, got {type(value).__name__}")
        element = typing.get_args(type_)[0]
        return tuple(c.structure(item, element) for item in value)

    return hook


def _structure_record(c: cattrs.Converter, cls: type) -> Callable[[Any, Any], Any]:
    """Map-checked structuring of an attrs class (any key order, missing
    optional keys defaulted, unknown keys ignored)."""
    fields: Callable[[Mapping[str, Any], Any], Any] = make_dict_structure_fn(cls, c)
    return lambda value, _type: fields(_mapping(value), cls)


def _unstructure_record(c: cattrs.Converter, cls: type) -> Callable[[Any], dict[str, Any]]:
    """Field-order unstructuring; a WAL entry's map starts with its ``"kind"``."""
    fields: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(cls, c)
    kind = ENTRY_KINDS.get(cls)
    if kind is None:
        return fields
    return lambda entry: {"kind": kind, **fields(entry)}


def _structure_entry(c: cattrs.Converter) -> Callable[[Any, Any], WalEntry]:
    """The `WalEntry` union, dispatched on the map's ``"kind"``."""

    def hook(value: Any, _type: Any) -> WalEntry:
        data = _mapping(value)
        kind = data.get("kind")
        cls = _ENTRY_BY_KIND.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise ValueError(f"unknown WAL entry kind {kind!r}")
        result: WalEntry = c.structure(data, cls)
        return result

    return hook


def _structure_outcome(c: cattrs.Converter) -> Callable[[Any, Any], EffectOutcome]:
    def hook(value: Any, _type: Any) -> EffectOutcome:
        data = _mapping(value)
        status_map = _mapping(data["status"])
        status = c.structure(status_map["status"], EffectStatus)
        failure = None
        if status is EffectStatus.FAILURE:
            failure = c.structure(status_map["failure"], EffectFailure)
        response = _read_plain(data.get("response"), "response")
        return EffectOutcome(status=status, response=response, failure=failure)

    return hook


def _structure_request(c: cattrs.Converter) -> Callable[[Any, Any], EffectRequest]:
    fields = make_dict_structure_fn(EffectRequest, c)

    def hook(value: Any, _type: Any) -> EffectRequest:
        request: EffectRequest = fields(_mapping(value), EffectRequest)
        _read_plain(request.body, "body")
        return request

    return hook


def configure_converter(c: cattrs.Converter) -> None:
    """Register every v1 hook on `c` (cattrs' ``preconf`` style).

    Hooks take the converter they are registered on. Records are generated
    by factories on first use; where two factories match a class, the one
    registered last wins (so `EffectRequest`'s comes after the attrs one).
    """
    for primitive in (str, int, bool, bytes):
        c.register_structure_hook(primitive, _strict(primitive))
    c.register_structure_hook_func(_is_variadic_tuple, _structure_sequence(c))
    c.register_structure_hook_func(lambda t: t == WalEntry, _structure_entry(c))
    c.register_structure_hook(EffectOutcome, _structure_outcome(c))
    c.register_unstructure_hook(EffectOutcome, outcome_plain)
    c.register_structure_hook_factory(attrs.has, lambda cls: _structure_record(c, cls))
    c.register_unstructure_hook_factory(attrs.has, lambda cls: _unstructure_record(c, cls))
    # After the generic attrs factory: of two factories that both match, cattrs
    # uses the one registered last, and a request's body must be checked.
    c.register_structure_hook_factory(
        lambda t: t is EffectRequest, lambda _t: _structure_request(c)
    )


def make_converter() -> cattrs.Converter:
    """A new converter for the v1 layout (`configure_converter` on a fresh
    ``cattrs.Converter`` with detailed validation)."""
    c = cattrs.Converter(detailed_validation=True)
    configure_converter(c)
    return c


#: The one converter this toolkit uses.
converter = make_converter()


def to_plain(value: Any) -> Any:
    """The v1 plain-data form of a model value (maps in field order)."""
    plain = unstructure_fast(value)  # the hot types, by hand (`durability.structuring`)
    return converter.unstructure(value) if plain is None else plain


def dumps_values(values: Sequence[Any]) -> bytes:
    """The CBOR array of `values`' plain forms: a log record's payload.

    Like ``dumps([to_plain(v) for v in values])``, but a batch of WAL entries
    is not walked by `check_plain`: an entry holds no free-form data and its
    validators admit only plain values (text, ints in 0..2**64-1, ``None``,
    bools, enum text, at a fixed depth), so its plain form is plain CBOR by
    construction. Anything else (a cache entry's response) is walked."""
    plain = []
    walk = False
    for value in values:
        plain.append(to_plain(value))
        walk = walk or type(value) not in _PLAIN_BY_CONSTRUCTION
    if walk:
        check_plain(plain)
    return _encode(plain)


#: Exact types whose plain form is plain CBOR whatever their values (see
#: `dumps_values`); a subclass is walked like anything else.
_PLAIN_BY_CONSTRUCTION = frozenset(ENTRY_KINDS)


def from_plain(data: Any, cls: type[T], *, where: str = "value") -> T:
    """Build a `cls` from v1 plain data; `DecodeError` (its reason naming
    `where` and the path of the first bad field, e.g. ``$.entries[2].tick``)
    when it does not fit."""
    fast = structurer(cls)  # the hot types, by hand (`durability.structuring`)
    if fast is not None:
        with contextlib.suppress(Exception):  # not taken there: the converter decides, says why
            value: T = fast(data)
            return value
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
