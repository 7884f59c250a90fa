"""A private PostgreSQL server for one benchmark run: Debian's binaries
(``/usr/lib/postgresql/*/bin``), run as a non-root user when the harness runs
as root, data and unix socket in a temporary folder, a free port on
127.0.0.1; stopped (and its folder removed) by `PrivateServer.stop`.

The minimal start/stop logic of ``tests/backends/pg_server.py`` (which the
harness does not import: it needs pytest). Unlike the tests' server, this one
runs with the defaults that matter for durability (``fsync = on``,
``synchronous_commit = on``), so its commits are as durable as the file WAL's.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PrivateServer", "ServerUnavailable", "binaries"]


class ServerUnavailable(Exception):
    """No server could be started; the message says why."""


def binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding initdb and pg_ctl."""
    roots = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name)
    for root in reversed(roots):
        if (root / "initdb").exists() and (root / "pg_ctl").exists():
            return root
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for user in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            return user
    raise ServerUnavailable("running as root and neither user postgres nor nobody exists")


class PrivateServer:
    """Start with `start()` (returns the libpq URL), stop with `stop()`."""

    def __init__(self) -> None:
        self.top: Path | None = None
        self.data: Path | None = None
        self.bin: Path | None = None
        self.user: str | None = None
        self.version = ""

    def _run(self, argv: list[str], what: str) -> str:
        command = argv if self.user is None else ["runuser", "-u", self.user, "--", *argv]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise ServerUnavailable(f"{what} failed: {result.stdout}{result.stderr}")
        return result.stdout

    def start(self) -> str:
        found = binaries()
        if found is None:
            raise ServerUnavailable("no PostgreSQL binaries")
        self.bin = found
        self.user = _server_user()
        self.top = Path(
            tempfile.mkdtemp(prefix="durability-bench-pg-", dir="/tmp" if self.user else None)
        )
        self.data, sockets, log = self.top / "data", self.top / "sockets", self.top / "server.log"
        sockets.mkdir()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.top, sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            [str(found / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust"],
            "initdb",
        )
        port = _free_port()
        settings = (
            f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections=50 "
            "-c fsync=on -c synchronous_commit=on -c shared_buffers=64MB"
        )
        self._run(
            [
                str(found / "pg_ctl"),
                *("-D", str(self.data), "-l", str(log), "-o", settings),
                *("-w", "-t", "60", "start"),
            ],
            "pg_ctl start",
        )
        self.version = self._run([str(found / "postgres"), "--version"], "postgres --version")
        return f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        if self.bin is not None and self.data is not None:
            with contextlib.suppress(Exception):
                self._run(
                    [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"], "stop"
                )
        if self.top is not None:
            shutil.rmtree(self.top, ignore_errors=True)
        self.top = self.data = self.bin = None
