"""The request digest: the fingerprint an intent records of the request it
was made for (API.md §11, ``specs/effects.md``), so that another request
under the same evidence id is refused (``DETERMINISM``) instead of answered
with someone else's outcome. Pure: values in, a hex string out.

What is hashed is the deterministic CBOR (RFC 8949 §4.2.1) of the array
``[interface_name, operation_name, body]``. `body` is plain data (API.md §2:
``None``, bools, integers from -2**64 to 2**64 - 1, floats, text, bytes, arrays and
**text-keyed** maps), and for those kinds ``cbor2.dumps(value,
canonical=True)`` is exactly that encoding:

* definite lengths only; every integer and every length in its shortest
  form;
* map keys sorted by the bytes of their encoding. Text keys encode as a
  header carrying the byte length of their UTF-8, then those bytes, so the
  order is shorter key first, then bytewise (``{"to", "amount"}``: ``to``
  first). cbor2 sorts length-first then bytewise (RFC 7049 §3.9), which for
  keys of one major type, the only kind a plain body has, is the same order;
* floats in the shortest of half, single or double precision that keeps the
  value (``1.0`` is ``f9 3c00``), NaN as ``f9 7e00``;
* no tags; ``None``, ``False``, ``True`` as simple values 22, 20, 21.

A body that is not plain (a map with a non-text key, an object, an integer
past 64 bits, text that is not valid UTF-8) has no digest: `EncodeError`.

`legacy_request_digest` is the digest that intents recorded before this
encoding carry (the first release hashed maps sorted by code point and
floats as 64-bit): a call whose recorded digest is the legacy one of its
request is the same request, not a ``DETERMINISM`` failure.
"""

from __future__ import annotations

import hashlib
from typing import Any

import cbor2

from .codec import check_plain, dumps
from .effects import EffectRequest
from .errors import EncodeError

__all__ = ["legacy_request_digest", "request_digest", "same_request"]


def _identity(request: EffectRequest) -> list[Any]:
    plain = [request.interface_name, request.operation_name, request.body]
    check_plain(plain)
    return plain


def request_digest(request: EffectRequest) -> str:
    """The lowercase hex SHA-256 of the deterministic CBOR (RFC 8949 §4.2.1,
    ``cbor2.dumps(..., canonical=True)``) of ``[interface_name,
    operation_name, body]``: map keys shorter first, then bytewise; floats in
    their shortest exact form. `tick`, `session`, `effect_id` and
    `operation_id` are not part of it. Raises `EncodeError` when the body is
    not plain CBOR data (text-keyed maps only).

    >>> request_digest(EffectRequest(interface_name="Storage", operation_name="write",
    ...     tick=1, body={"to": "bob", "amount": 5}))[:16]
    '30b728273738ac13'
    """
    plain = _identity(request)
    try:
        encoded = cbor2.dumps(plain, canonical=True)
    except Exception as exc:  # text that is not UTF-8, say
        raise EncodeError(f"request digest: {exc}") from exc
    return hashlib.sha256(encoded).hexdigest()


def _code_point_sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _code_point_sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [_code_point_sorted(item) for item in value]
    return value


def legacy_request_digest(request: EffectRequest) -> str:
    """The digest the first release recorded (legacy, read only): SHA-256 of
    the CBOR of ``[interface_name, operation_name, body]`` with every map's
    keys sorted by code point and floats as 64-bit, as the toolkit's codec
    encodes. Never written any more; accepted by `same_request`. Raises
    `EncodeError` when the body is not plain CBOR data."""
    plain = _identity(request)  # text keys only, so sorting them cannot fail
    return hashlib.sha256(dumps(_code_point_sorted(plain))).hexdigest()


def same_request(recorded_digest: str, digest: str, request: EffectRequest) -> bool:
    """Whether an intent that recorded `recorded_digest` was made for
    `request`, whose digest is `digest`: equal digests, or the recorded one
    is `request`'s legacy digest."""
    if recorded_digest == digest:
        return True
    try:
        return recorded_digest == legacy_request_digest(request)
    except EncodeError:
        return False
