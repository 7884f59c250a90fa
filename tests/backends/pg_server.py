"""A real PostgreSQL server for the tests, one per test session.

`server_url()` returns a libpq URL: ``DURABILITY_PG_URL`` when it is set,
else the URL of a private cluster started here on first use (Debian's
binaries under ``/usr/lib/postgresql/*/bin``, run as a non-root user when
the tests run as root; data and unix socket in a temporary directory; a free
port on 127.0.0.1), stopped when the process that started it exits.

`require_server()` is what tests call: under CI (``CI`` set) a server that
cannot be had fails the test, never skips it; elsewhere the test is skipped
with a loud warning saying how to point the tests at a server.
`fresh_schema_url(key)` gives each test (or state machine run) its own schema
on that server, selected through the URL (``options=-csearch_path=...``),
which is how an application picks its schema too.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pytest

ENV = "DURABILITY_PG_URL"
HOW = (
    "set DURABILITY_PG_URL to a libpq URL of a server where the tests may create schemas "
    "(e.g. postgresql://postgres@127.0.0.1:5432/postgres), or install Debian's "
    "postgresql package so the tests can start a private one"
)

_state: dict[str, object] = {}


class ServerUnavailable(Exception):
    """No server could be had; the message says why."""


def _binaries() -> Path:
    roots = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name)
    for root in reversed(roots):  # the newest major version installed
        if (root / "initdb").exists() and (root / "pg_ctl").exists():
            return root
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise ServerUnavailable("no PostgreSQL binaries (initdb, pg_ctl) found")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _as_server_user(argv: list[str]) -> tuple[list[str], str | None]:
    """`argv` run as a non-root user when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return argv, None
    for user in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            return ["runuser", "-u", user, "--", *argv], user
    raise ServerUnavailable("running as root and neither user postgres nor nobody exists")


def _run(argv: list[str], what: str, timeout: float = 120) -> None:
    command, _user = _as_server_user(argv)
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise ServerUnavailable(f"{what} failed: {result.stdout}{result.stderr}")


def _start() -> str:
    binaries = _binaries()
    # as root, under /tmp: the server's user must reach it, whatever TMPDIR says
    top = Path(tempfile.mkdtemp(prefix="durability-pg-", dir="/tmp" if os.geteuid() == 0 else None))
    data, sockets, log = top / "data", top / "sockets", top / "server.log"
    sockets.mkdir()
    _command, user = _as_server_user(["true"])
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (top, sockets):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    _state["top"] = top
    _run(
        [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"],
        "initdb",
    )
    port = _free_port()
    settings = (
        f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections=100 "
        "-c fsync=on -c synchronous_commit=off -c shared_buffers=32MB"
    )
    _run(
        [
            str(binaries / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-o",
            settings,
            "-w",
            "-t",
            "60",
            "start",
        ],
        "pg_ctl start",
    )
    _state.update(pg_ctl=str(binaries / "pg_ctl"), data=str(data), pid=os.getpid())
    atexit.register(_stop)
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def _stop() -> None:
    if _state.get("pid") != os.getpid():  # a forked child never stops its parent's server
        return
    with contextlib.suppress(Exception):
        _run([str(_state["pg_ctl"]), "-D", str(_state["data"]), "-m", "immediate", "stop"], "stop")
    shutil.rmtree(str(_state["top"]), ignore_errors=True)
    _state.clear()


def server_url() -> str:
    """The URL of the test server (raises `ServerUnavailable`)."""
    given = os.environ.get(ENV)
    if given:
        return given
    if "url" not in _state:
        if "error" in _state:
            raise ServerUnavailable(str(_state["error"]))
        try:
            import psycopg  # noqa: F401  (the tests need the driver too)
        except ImportError as exc:
            _state["error"] = (
                f"psycopg is not installed ({exc}): pip install 'durability[postgres]'"
            )
            raise ServerUnavailable(str(_state["error"])) from exc
        try:
            _state["url"] = _start()
        except (ServerUnavailable, OSError, subprocess.SubprocessError) as exc:
            _state["error"] = str(exc)
            with contextlib.suppress(Exception):
                _stop()
                shutil.rmtree(str(_state.get("top", "")), ignore_errors=True)
            raise ServerUnavailable(str(exc)) from exc
    return str(_state["url"])


def require_server() -> str:
    """The server's URL; fails under CI, else skips loudly, when there is none."""
    try:
        return server_url()
    except ServerUnavailable as exc:
        message = f"POSTGRESQL TESTS NOT RUN: {exc}; {HOW}"
        if os.environ.get("CI"):
            pytest.fail(message)
        warnings.warn(message, stacklevel=2)
        pytest.skip(message)


def admin_connect(url: str | None = None):  # type: ignore[no-untyped-def]
    """A plain autocommit psycopg connection to the server (or `url`)."""
    import psycopg

    return psycopg.connect(url or require_server(), autocommit=True)


def schema_name(key: str) -> str:
    return "t_" + hashlib.sha256(key.encode()).hexdigest()[:20]


def with_schema(url: str, schema: str) -> str:
    """`url` with libpq ``options`` selecting `schema` as the search path."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-csearch_path={schema}', safe='')}"


def fresh_schema_url(key: str) -> str:
    """A URL whose search path is a schema of its own, named after `key`
    (created if missing, so a reopen with the same key finds the same one)."""
    url = require_server()
    schema = schema_name(key)
    with admin_connect(url) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    return with_schema(url, schema)


def drop_schema(key: str) -> None:
    with admin_connect() as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema_name(key)} CASCADE")


def wait_until(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def is_private() -> bool:
    """Whether the tests run on the cluster started here (not DURABILITY_PG_URL)."""
    return not os.environ.get(ENV)


def password_of(url: str) -> str | None:
    """The password a URL carries, if any."""
    password = urlsplit(url).password
    return unquote(password) if password else None


def with_netloc(
    url: str, *, user: str | None = None, password: str | None = None, hosts: str | None = None
) -> str:
    """`url` with its user, password or ``host:port[,host:port]`` part replaced."""
    parts = urlsplit(url)
    userinfo, _, where = parts.netloc.rpartition("@")
    name, _, secret = userinfo.partition(":")
    name = user if user is not None else name
    secret = quote(password, safe="") if password is not None else secret
    who = f"{name}:{secret}@" if secret else f"{name}@" if name else ""
    return urlunsplit(parts._replace(netloc=f"{who}{hosts if hosts is not None else where}"))
