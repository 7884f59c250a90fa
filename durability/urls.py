"""Open any backend from one string: `open_wal(url, **options)` and
`open_cache(url, **options)` (API.md §10).

Accepted forms:

* a plain path (``str`` or ``os.PathLike``) or ``file:///abs/path``: the
  append-only file backends (one log per URL, so a WAL and a cache need two);
* ``sqlite:///relative/path.db`` (relative to the working directory) or
  ``sqlite:////absolute/path.db``, SQLAlchemy's form, percent-decoded; query
  parameters ``synchronous`` (``FULL`` default, ``EXTRA``, ``NORMAL``,
  ``OFF``) and ``busy_timeout`` (seconds, default 30); ``sqlite://`` and
  ``:memory:`` are refused (nothing would persist);
* ``postgresql://...`` or ``postgres://...``: handed to libpq as it is (every
  libpq parameter works, e.g. ``?options=-csearch_path%3Dmyschema``); needs
  ``pip install 'durability[postgres]'``.

A WAL and a cache may share one ``sqlite:`` or ``postgresql:`` URL. `options`
go to the backend's constructor. Anything else raises `DurabilityError`
naming the accepted forms; no message or ``repr`` contains a password.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

from .backends.file import FileAgreementWal, FileEvidenceOutcomeCache
from .backends.postgres import PostgresAgreementWal, PostgresEvidenceOutcomeCache
from .backends.sql import redact
from .backends.sqlite import SYNCHRONOUS_LEVELS, SqliteAgreementWal, SqliteEvidenceOutcomeCache
from .errors import DurabilityError

__all__ = ["ACCEPTED_FORMS", "StorageUrl", "open_cache", "open_wal", "parse_storage_url"]

#: What every refusal lists.
ACCEPTED_FORMS = (
    "a file path or file:///ABSOLUTE/PATH (file backends); "
    "sqlite:///RELATIVE/PATH or sqlite:////ABSOLUTE/PATH with optional "
    "?synchronous=FULL|EXTRA|NORMAL|OFF&busy_timeout=SECONDS; "
    "postgresql://... or postgres://... (a libpq URL; pip install 'durability[postgres]')"
)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):")
_SQLITE_PARAMS = ("synchronous", "busy_timeout")

AnyWal = FileAgreementWal | SqliteAgreementWal | PostgresAgreementWal
AnyCache = FileEvidenceOutcomeCache | SqliteEvidenceOutcomeCache | PostgresEvidenceOutcomeCache


@attrs.frozen(kw_only=True)
class StorageUrl:
    """A parsed storage URL: which backend (`kind`), the file path for
    ``file`` and ``sqlite``, and the options the URL sets. `shown` is the URL
    as messages name it (no password); the libpq string itself is never
    part of the ``repr``."""

    kind: Literal["file", "sqlite", "postgresql"]
    shown: str
    path: str | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)
    conninfo: str | None = attrs.field(default=None, repr=False)


def _refuse(url: str, why: str) -> DurabilityError:
    return DurabilityError(
        f"unsupported storage URL {redact(url)!r}: {why}; accepted forms: {ACCEPTED_FORMS}"
    )


def parse_storage_url(url: str | os.PathLike[str]) -> StorageUrl:
    """Parse `url` (see the module docs) without opening anything.

    >>> parse_storage_url("sqlite:///state%20dir/state.db?synchronous=normal").options
    {'synchronous': 'NORMAL'}
    """
    if isinstance(url, os.PathLike):
        path = os.fspath(url)
        if not isinstance(path, str):
            raise TypeError(f"a storage path must be text, got {path!r}")
        return StorageUrl(kind="file", shown=path, path=path)
    if not isinstance(url, str):
        raise TypeError(f"a storage URL must be a str or os.PathLike, got {type(url).__name__}")
    if not url:
        raise _refuse(url, "it is empty")
    match = _SCHEME.match(url)
    if match is None:
        return StorageUrl(kind="file", shown=url, path=url)
    scheme = match.group(1).lower()
    if scheme == "file":
        return _file_url(url)
    if scheme == "sqlite":
        return _sqlite_url(url)
    if scheme in ("postgresql", "postgres"):
        return StorageUrl(kind="postgresql", shown=redact(url), conninfo=url)
    raise _refuse(
        url, f"unknown scheme {scheme!r} (a file whose name has a colon can be given as ./NAME)"
    )


def _file_url(url: str) -> StorageUrl:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise _refuse(url, "a file URL names an absolute local path (file:///...)")
    if parts.query or parts.fragment:
        raise _refuse(url, "a file URL takes no query parameters")
    path = unquote(parts.path)
    return StorageUrl(kind="file", shown=url, path=path)


def _sqlite_url(url: str) -> StorageUrl:
    parts = urlsplit(url)
    if not url[len("sqlite:") :].startswith("///") or parts.netloc:
        raise _refuse(url, "a SQLite URL is sqlite:///RELATIVE or sqlite:////ABSOLUTE")
    path = unquote(parts.path[1:])
    if path in ("", ":memory:"):
        raise _refuse(url, "a SQLite URL must name a database file (nothing in memory persists)")
    if parts.fragment:
        raise _refuse(url, "a SQLite URL takes no fragment")
    options: dict[str, Any] = {}
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise _refuse(url, f"its query is malformed ({exc})") from None
    for key, value in pairs:
        if key not in _SQLITE_PARAMS:
            raise _refuse(url, f"unknown query parameter {key!r}")
        if key in options:
            raise _refuse(url, f"query parameter {key!r} is given twice")
        options[key] = _sqlite_option(url, key, value)
    return StorageUrl(kind="sqlite", shown=url, path=path, options=options)


def _sqlite_option(url: str, key: str, value: str) -> Any:
    if key == "synchronous":
        if value.upper() not in SYNCHRONOUS_LEVELS:
            raise _refuse(url, f"synchronous must be one of {', '.join(SYNCHRONOUS_LEVELS)}")
        return value.upper()
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise _refuse(url, f"busy_timeout must be a number of seconds >= 0, got {value!r}")
    return seconds


def _merged(parsed: StorageUrl, options: Mapping[str, Any]) -> dict[str, Any]:
    both = sorted(set(parsed.options) & set(options))
    if both:
        raise DurabilityError(
            f"{', '.join(both)} given both in the URL {parsed.shown!r} and as an option"
        )
    return {**parsed.options, **options}


def open_wal(url: str | os.PathLike[str], **options: Any) -> AnyWal:
    """The agreement WAL `url` names (see the module docs for the forms);
    `options` go to the backend's constructor.

    >>> import tempfile
    >>> wal = open_wal(f"sqlite:///{tempfile.mkdtemp()}/state.db")
    >>> type(wal).__name__, wal.last_sequence
    ('SqliteAgreementWal', 0)
    """
    parsed = parse_storage_url(url)
    if parsed.kind == "file":
        assert parsed.path is not None
        return FileAgreementWal(parsed.path, **options)
    if parsed.kind == "sqlite":
        assert parsed.path is not None
        return SqliteAgreementWal(parsed.path, **_merged(parsed, options))
    assert parsed.conninfo is not None
    return PostgresAgreementWal(parsed.conninfo, **options)


def open_cache(url: str | os.PathLike[str], **options: Any) -> AnyCache:
    """The evidence outcome cache `url` names (see the module docs for the
    forms); `options` go to the backend's constructor."""
    parsed = parse_storage_url(url)
    if parsed.kind == "file":
        assert parsed.path is not None
        return FileEvidenceOutcomeCache(parsed.path, **options)
    if parsed.kind == "sqlite":
        assert parsed.path is not None
        return SqliteEvidenceOutcomeCache(parsed.path, **_merged(parsed, options))
    assert parsed.conninfo is not None
    return PostgresEvidenceOutcomeCache(parsed.conninfo, **options)
