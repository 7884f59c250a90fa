"""The schema-version registry: which versions of each artifact kind this
toolkit reads, and how an older one is brought up to the current layout.

Every artifact is an envelope ``{"schema_version": V, "payload": {"kind": K,
"payload": BODY}}`` (``specs/artifact_v1.md``). Each payload kind (``K``:
``"agreement_wal"``, ``"evidence_outcome_cache"``, ``"recovery_metadata"``)
has a *current* version, the one the rest of the toolkit understands, and a
chain of **upcasters**: ``version -> (next version, upcaster)``, where an
upcaster is a plain function from the plain-data ``BODY`` of one version (a
``dict``, as CBOR decodes it) to the ``BODY`` of the next. Reading an
artifact looks up its version in its kind's chain and applies the upcasters
in order until the body is current; nothing is upcast on disk, and the
writer keeps writing what it writes.

A version in no chain is refused with `SchemaVersionError` before the payload
is looked at, naming the version, what this reader supports and the file
when known. Today every kind is at v1 (``SCHEMA_VERSION``) with no
upcasters: `durability.persisted.SCHEMA_REGISTRY`. ``specs/artifact_v1.md``
("Adding a version") says how a v2 is added beside v1.

A registry is an ordinary object, so a test builds its own::

    >>> v1 = "telltale.machine.durability.v1"
    >>> v2 = "telltale.machine.durability.v2"
    >>> registry = SchemaRegistry(["recovery_metadata"], v1)
    >>> registry.add_version("recovery_metadata", v2,
    ...     lambda body: {**body, "checkpoint": {"tick": body["checkpoint_tick"]}})
    >>> envelope = {"schema_version": v1, "payload": {"kind": "recovery_metadata",
    ...     "payload": {"checkpoint_tick": 7}}}
    >>> registry.read_envelope(envelope).body
    {'checkpoint_tick': 7, 'checkpoint': {'tick': 7}}
    >>> registry.readable("recovery_metadata") == (v1, v2)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from .codec import decode_item
from .errors import ArtifactTooLargeError, DecodeError, SchemaVersionError
from .limits import MAX_ARTIFACT_BYTES

__all__ = ["EnvelopeUpgrade", "SchemaRegistry", "Upcast", "Upcaster"]

#: Turns the plain body of one version of a kind into the body of the next.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
#: Turns a whole plain envelope of a foreign layout into one of a version the
#: registry reads (`SchemaRegistry.add_envelope_upgrade`).
EnvelopeUpgrade = Callable[[dict[str, Any]], dict[str, Any]]


@attrs.frozen(kw_only=True)
class Upcast:
    """One artifact read through a registry: its payload `kind`, the `version`
    it was written in, and its `body` (plain data) in the kind's current
    version (`current`)."""

    kind: str
    version: str
    current: str
    body: Any


class SchemaRegistry:
    """The versions a reader accepts, per payload kind, and their upcasters.

    `kinds` are the payload kinds it knows, all starting at `version` (their
    current version, with nothing to upcast). `add_version` makes a newer
    version current for one kind; `read_envelope` and `read` bring what they
    are given up to it. Use `copy` to extend a registry without changing it.
    """

    def __init__(self, kinds: Iterable[str], version: str) -> None:
        #: kind -> the versions it reads, oldest first (the current one last)
        self._chains: dict[str, tuple[str, ...]] = {kind: (version,) for kind in kinds}
        if not self._chains:
            raise ValueError("a schema registry needs at least one payload kind")
        #: (kind, version) -> the upcaster to the next version of its chain
        self._upcasters: dict[tuple[str, str], Upcaster] = {}
        self._envelopes: dict[str, EnvelopeUpgrade] = {}
        self._supported: tuple[str, ...] = (version,)

    def copy(self) -> SchemaRegistry:
        """An independent registry with the same kinds, versions and upcasters."""
        other = SchemaRegistry(self._chains, self._supported[0])
        other._chains = dict(self._chains)
        other._upcasters = dict(self._upcasters)
        other._envelopes = dict(self._envelopes)
        other._supported = self._supported
        return other

    @property
    def kinds(self) -> tuple[str, ...]:
        """The payload kinds this registry knows."""
        return tuple(self._chains)

    def current(self, kind: str) -> str:
        """The version of `kind` every read is brought up to."""
        return self.readable(kind)[-1]

    def readable(self, kind: str) -> tuple[str, ...]:
        """Every version of `kind` this registry reads, oldest first (the
        current one last). Raises `KeyError` for a kind it does not know."""
        if kind not in self._chains:
            raise KeyError(f"unknown payload kind {kind!r} (this registry knows {self.kinds})")
        return self._chains[kind]

    def add_version(self, kind: str, version: str, upcaster: Upcaster) -> None:
        """Make `version` the current version of `kind`; `upcaster` turns a
        body of the version that was current into a body of `version`.

        Raises `ValueError` for a version `kind` already has and `KeyError`
        for a kind the registry does not know."""
        chain = self.readable(kind)
        if version in chain:
            raise ValueError(f"{kind} already reads schema version {version}")
        if not callable(upcaster):
            raise TypeError(f"an upcaster must be callable, got {upcaster!r}")
        self._upcasters[(kind, chain[-1])] = upcaster
        self._chains[kind] = (*chain, version)
        self._remember_supported()

    def add_envelope_upgrade(self, version: str, upgrade: EnvelopeUpgrade) -> None:
        """Read envelopes of `version` by first rewriting the whole plain
        envelope with `upgrade` into one of a version this registry reads
        (for a layout whose envelope itself differs; a change of one kind's
        body is `add_version`)."""
        if not callable(upgrade):
            raise TypeError(f"an envelope upgrade must be callable, got {upgrade!r}")
        self._envelopes[version] = upgrade
        self._remember_supported()

    def supported(self) -> tuple[str, ...]:
        """Every version some kind reads (or an envelope upgrade accepts), sorted."""
        return self._supported

    def _remember_supported(self) -> None:
        found = {version for chain in self._chains.values() for version in chain}
        self._supported = tuple(sorted(found | set(self._envelopes)))

    def read_envelope(
        self, obj: Any, *, path: str | None = None, offset: int | None = None
    ) -> Upcast:
        """Check a decoded envelope and bring its body to its kind's current
        version. The version is checked before the payload is looked at:
        one no kind reads raises `SchemaVersionError`; a damaged envelope
        raises `DecodeError`. Errors name `path` and `offset` when given."""

        def error(reason: str) -> DecodeError:
            return DecodeError(reason, path=path, offset=offset)

        if not isinstance(obj, dict):
            raise error(f"expected a map, got {type(obj).__name__}")
        found = obj.get("schema_version")
        if not isinstance(found, str):
            raise error("missing or non-text schema_version")
        version: Any = found
        if version not in self._supported:
            raise self._refuse(version, self._supported, None, path, offset)
        upgrade = self._envelopes.get(version)
        if upgrade is not None:
            obj = upgrade(obj)
            version = obj.get("schema_version") if isinstance(obj, dict) else None
            if not isinstance(version, str) or version in self._envelopes:
                raise error(f"the upgrade of schema version `{found}` gave no readable version")
        wrapped = obj.get("payload")
        if not isinstance(wrapped, dict):
            raise error("payload is not a map")
        kind = wrapped.get("kind")
        if not isinstance(kind, str) or kind not in self._chains:
            raise error(f"unknown payload kind {kind!r}")
        chain = self._chains[kind]
        if version not in chain:
            raise self._refuse(version, chain, kind, path, offset)
        body = wrapped.get("payload")
        for at in range(chain.index(version), len(chain) - 1):
            if not isinstance(body, dict):
                raise error(f"{kind} payload is not a map (cannot upcast it to `{chain[at + 1]}`)")
            body = self._upcasters[(kind, chain[at])](body)
        return Upcast(kind=kind, version=found, current=chain[-1], body=body)

    def read(self, data: bytes, *, path: str | None = None) -> Upcast:
        """Decode exactly one artifact from `data` (the bytes of file `path`,
        when it is one) and bring it to its kind's current version: strict
        CBOR, no trailing bytes, at most `MAX_ARTIFACT_BYTES` (checked first,
        `ArtifactTooLargeError`)."""
        if len(data) > MAX_ARTIFACT_BYTES:
            raise ArtifactTooLargeError(
                f"input is {len(data)} bytes, max is {MAX_ARTIFACT_BYTES}", path=path
            )
        try:
            obj, end = decode_item(data, 0)
        except DecodeError as exc:
            raise exc.located(path=path) from exc
        if end != len(data):
            raise DecodeError(f"{len(data) - end} trailing bytes", path=path, offset=end)
        return self.read_envelope(obj, path=path, offset=0 if path else None)

    @staticmethod
    def _refuse(
        version: str,
        supported: tuple[str, ...],
        kind: str | None,
        path: str | None,
        offset: int | None,
    ) -> SchemaVersionError:
        """The error for a version outside `supported` (of `kind`, when known)."""
        of = f" for {kind} payloads" if kind else ""
        return SchemaVersionError(
            f"unsupported schema version `{version}`{of} "
            f"(this toolkit reads {', '.join(supported)}; a newer durability may read it)",
            path=path,
            offset=offset,
            version=version,
            supported=supported,
        )
