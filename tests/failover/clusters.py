"""A PostgreSQL primary and its streaming standby, private to one failover
trial: two clusters on free local ports in a temporary directory, run as a
non-root user when we are root (Debian's binaries under
``/usr/lib/postgresql/*/bin``, as in ``tests/backends/pg_server.py``).

Once per process `template` makes the pair: ``initdb``, start it, clone it
with ``pg_basebackup -R`` into a standby, let that stream, shut both down
cleanly (the primary first, so the standby has all its WAL). Each trial's
`start_pair(synchronous=...)` copies both, starts them on fresh ports (the
standby pointed at its primary's with ``primary_conninfo`` on its command
line) and waits until the standby streams, as a synchronous standby when
asked. Then `Pair.url` names both servers with
``target_session_attrs=read-write``, `Pair.hold_wal_sender` makes the
standby fall behind, `Pair.kill_primary` crashes the primary (``SIGKILL``
to its postmaster and its other processes, as if its host died) and
`Pair.promote_standby` runs ``pg_ctl promote``.

What bit before, and how it is avoided here:

* settings meant only for the primary (``synchronous_standby_names``) are
  passed on its command line, never written to its configuration, which
  ``pg_basebackup`` copies: a promoted standby holding them would wait
  forever for a standby of its own. Nothing is written before the standby
  streams, so no setup write waits for it either;
* each server runs under a small supervisor (our child, a child subreaper)
  that reaps the postmaster and, once it is killed, the server processes it
  leaves behind: nothing lingers as a zombie, even where PID 1 reaps nothing.
  If the tests die first, the supervisor shuts its server down.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.failover.netns import INNER, OUTER, HostNamespace

HOW = (
    "install Debian's postgresql package (initdb, pg_ctl, pg_basebackup under /usr/lib/postgresql)"
)

#: Runs one server: a child subreaper that forks the postmaster (argv[4:],
#: as user argv[2] and group argv[3] unless they are "-"), reaps every
#: process until none is left and exits with the postmaster's status. When
#: the tests (pid argv[1]) die first, it shuts the server down (immediate).
SUPERVISOR = """
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: the server's orphans come here
postmaster = 0
def orphaned(*_):
    if postmaster:
        os.kill(postmaster, signal.SIGQUIT)
signal.signal(signal.SIGTERM, orphaned)
libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG: the tests died
postmaster = os.fork()
if postmaster == 0:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.argv[2] != "-":
        os.setgroups([])
        os.setgid(int(sys.argv[3]))
        os.setuid(int(sys.argv[2]))
    os.execv(sys.argv[4], sys.argv[4:])
if os.getppid() != int(sys.argv[1]):
    orphaned()
code = 1
while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        break
    if pid == postmaster:
        code = os.waitstatus_to_exitcode(status)
sys.exit(0 if code == 0 else 1)
"""

_template: dict[str, Path] = {}


class ClustersUnavailable(Exception):
    """The clusters cannot be had here; the message says why."""


def binaries() -> Path:
    """The newest PostgreSQL ``bin`` directory with what a standby needs."""
    if not sys.platform.startswith("linux"):
        raise ClustersUnavailable("the failover harness needs Linux (/proc, prctl)")
    needed = ("initdb", "pg_ctl", "pg_basebackup", "postgres")
    roots = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name)
    for root in reversed(roots):
        if all((root / name).exists() for name in needed):
            return root
    found = shutil.which("pg_basebackup")
    if found and all((Path(found).parent / name).exists() for name in needed):
        return Path(found).parent
    raise ClustersUnavailable(f"no PostgreSQL binaries ({', '.join(needed)}) found")


def require_clusters() -> Path:
    """The binaries; under CI (``CI`` set) their absence fails the test,
    elsewhere it skips it with a loud warning."""
    try:
        import psycopg  # noqa: F401

        return binaries()
    except (ImportError, ClustersUnavailable) as exc:
        message = f"FAILOVER TESTS NOT RUN: {exc}; {HOW}"
        if os.environ.get("CI"):
            pytest.fail(message)
        warnings.warn(message, stacklevel=2)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _server_user() -> pwd.struct_passwd | None:
    """The user the servers run as: ``None`` (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ClustersUnavailable("running as root and neither user postgres nor nobody exists")


def _as_server(user: pwd.struct_passwd | None) -> dict[str, Any]:
    """`subprocess` arguments running a command as the servers' user."""
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _run(argv: list[str], what: str, timeout: float = 60) -> None:
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, **_as_server(_server_user())
    )
    if result.returncode != 0:
        raise ClustersUnavailable(f"{what} failed: {result.stdout}{result.stderr}")


def _own_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    user = _server_user()
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)
    return path


def _scratch(prefix: str) -> Path:
    # as root, under /tmp: the servers' user must reach it, whatever TMPDIR says
    top = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp" if os.geteuid() == 0 else None))
    return _own_dir(top)


def _initdb(data: Path) -> None:
    argv = [str(binaries() / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
    _run([*argv, "--no-sync", "--wal-segsize=1"], "initdb")  # 1 MB segments: less to copy


def template() -> Path:
    """A directory holding ``primary`` and ``standby``, both shut down
    cleanly, made once per process (see the module docs)."""
    if "top" not in _template:
        top = _scratch("durability-failover-template-")
        pid = os.getpid()
        atexit.register(lambda: os.getpid() == pid and shutil.rmtree(top, ignore_errors=True))
        _initdb(top / "primary")
        sockets = _own_dir(top / "sockets")
        primary = _start("primary", top / "primary", sockets)
        standby: Server | None = None
        try:
            _run(
                [
                    *(str(binaries() / "pg_basebackup"), "-D", str(top / "standby")),
                    *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"),
                    *("-R", "-X", "stream", "--checkpoint=fast", "--no-sync"),
                ],
                "pg_basebackup",
            )
            standby = _start("standby", top / "standby", sockets)
            _wait_streaming(primary, standby, "async")
        finally:
            for server in (primary, standby):
                if server is not None:  # fast shutdown: the standby gets the primary's last WAL
                    server.stop(signal.SIGINT)
        _template["top"] = top
    return _template["top"]


@dataclass
class Server:
    """One running cluster."""

    name: str
    data: Path
    port: int
    log: Path
    supervisor: subprocess.Popen[bytes]
    postmaster: int = 0
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres?connect_timeout=5"

    def alive(self) -> bool:
        return self.supervisor.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def processes(self) -> list[int]:
        """The postmaster's children, and whatever the supervisor inherited."""
        parents = {self.postmaster, self.supervisor.pid}
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rpartition(")")[2].split()
                if int(fields[1]) in parents and fields[0] != "Z":
                    found.append(int(stat.parent.name))
        return found

    def crash(self) -> None:
        """``SIGKILL`` to the postmaster and every process of the server, then reap."""
        children = self.processes()
        for pid in [self.postmaster, *children]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in self.processes():  # forked while we were at it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.stop(signal.SIGKILL)

    def stop(self, sig: signal.Signals = signal.SIGQUIT) -> None:
        """Signal the postmaster (``SIGQUIT``: immediate shutdown) and reap it
        and everything it leaves behind."""
        if self.alive() and self.postmaster:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.postmaster, sig)
        try:
            self.supervisor.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.supervisor.kill()
            self.supervisor.wait()


def _start(
    name: str,
    data: Path,
    sockets: Path,
    settings: Sequence[str] = (),
    host: HostNamespace | None = None,
) -> Server:
    """Start a server; on `host` (its namespace, at its address) when given."""
    port = free_port()
    address = INNER if host is not None else "127.0.0.1"
    argv = [str(binaries() / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets)]
    argv += ["-c", f"listen_addresses={address}", "-c", f"cluster_name={name}"]
    argv += ["-c", "fsync=on", "-c", "shared_buffers=16MB", "-c", "max_connections=40"]
    for setting in settings:
        argv += ["-c", setting]
    log = data.parent / f"{name}.log"
    user = _server_user()
    who = ["-", "-"] if user is None else [str(user.pw_uid), str(user.pw_gid)]
    with open(log, "ab") as out:
        supervisor = subprocess.Popen(
            [
                *(host.enter() if host is not None else []),  # nsenter execs: still our child
                *(sys.executable, "-c", SUPERVISOR, str(os.getpid()), *who, *argv),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C to the tests is not the server's
        )
    server = Server(name=name, data=data, port=port, log=log, supervisor=supervisor, host=address)
    _wait_ready(server)
    return server


def _wait_ready(server: Server, timeout: float = 60) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        if not server.alive():
            raise ClustersUnavailable(f"{server.name} exited:\n{server.log_tail()}")
        try:
            with psycopg.connect(server.url, autocommit=True):
                break
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                server.stop()
                raise ClustersUnavailable(
                    f"{server.name} never answered:\n{server.log_tail()}"
                ) from exc
            time.sleep(0.05)
    pidfile = server.data / "postmaster.pid"
    server.postmaster = int(pidfile.read_text().splitlines()[0])


@dataclass
class Pair:
    """A primary and its streaming standby (see the module docs)."""

    top: Path
    primary: Server
    standby: Server
    synchronous: bool
    host: HostNamespace | None = None  # the primary's, when it can vanish

    @property
    def url(self) -> str:
        """Both servers, the primary first; libpq picks the one that takes writes.
        When the primary's host can vanish, libpq's timeouts say when to give
        up on it: 2 s to connect, 3 s for sent data left unacknowledged,
        keepalives after 1 s idle (then every 1 s, 3 unanswered)."""
        hosts = f"{self.primary.host}:{self.primary.port},{self.standby.host}:{self.standby.port}"
        if self.host is None:
            return f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write&connect_timeout=5"
        return (
            f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write"
            "&connect_timeout=2&tcp_user_timeout=3000"
            "&keepalives_idle=1&keepalives_interval=1&keepalives_count=3"
        )

    def hold_wal_sender(self) -> None:
        """Stop the primary's WAL sender (``SIGSTOP``): the standby falls
        behind, as under load or on a slow link, until the primary dies."""
        for pid in self.primary.processes():
            with contextlib.suppress(OSError):
                if b"walsender" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGSTOP)
                    return
        raise AssertionError("the primary has no WAL sender")

    def kill_primary(self) -> None:
        """Crash the primary's host: ``SIGKILL`` to its postmaster and, in the
        same instant, to every server process it started (its walsender
        included, so nothing more leaves the host), all reaped."""
        self.primary.crash()

    def vanish_primary(self) -> None:
        """The primary's host is gone: its network link goes down, its
        processes keep running, and no packet to it is answered any more."""
        assert self.host is not None, "start_pair(vanishable=True)"
        self.host.vanish()

    def promote_standby(self) -> None:
        """``pg_ctl promote``, waiting until the standby takes writes."""
        _run(
            [str(binaries() / "pg_ctl"), "promote", "-D", str(self.standby.data), "-w", "-t", "60"],
            "pg_ctl promote",
        )

    def close(self) -> None:
        for server in (self.primary, self.standby):
            server.stop()
        if self.host is not None:
            self.host.close()
        shutil.rmtree(self.top, ignore_errors=True)

    def __enter__(self) -> Pair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wait_streaming(primary: Server, standby: Server, sync_state: str) -> None:
    import psycopg

    deadline = time.monotonic() + 60
    while True:
        with psycopg.connect(primary.url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = %s",
                (standby.name,),
            ).fetchone()
        if row is not None and tuple(row) == ("streaming", sync_state):
            return
        if time.monotonic() > deadline:
            raise ClustersUnavailable(f"the standby never streamed ({row}):\n{standby.log_tail()}")
        time.sleep(0.02)


def start_pair(*, synchronous: bool, vanishable: bool = False) -> Pair:
    """Start a primary and a standby streaming from it (synchronously when
    `synchronous`: the primary's ``synchronous_standby_names`` names it).
    With `vanishable`, the primary runs on a host of its own that
    `Pair.vanish_primary` can make vanish (`netns.HostNamespace`: only in a
    private network namespace, as root)."""
    made = template()
    top = _scratch("durability-failover-")
    sockets = _own_dir(top / "sockets")
    _run(["cp", "-a", str(made / "primary"), str(made / "standby"), str(top)], "copy the pair")
    only_primary = ["synchronous_commit=on"]
    if synchronous:
        only_primary.append("synchronous_standby_names=standby")
    host = HostNamespace() if vanishable else None
    if host is not None:  # the standby and the writers connect from the other end
        with open(top / "primary" / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {OUTER}/32 trust\nhost replication all {OUTER}/32 trust\n")
    try:
        primary = _start("primary", top / "primary", sockets, only_primary, host)
    except BaseException:
        if host is not None:
            host.close()
        raise
    standby: Server | None = None
    try:
        conninfo = f"host={primary.host} port={primary.port} user=postgres"
        standby = _start("standby", top / "standby", sockets, [f"primary_conninfo={conninfo}"])
        _wait_streaming(primary, standby, "sync" if synchronous else "async")
        return Pair(top=top, primary=primary, standby=standby, synchronous=synchronous, host=host)
    except BaseException:
        for server in (primary, standby):
            if server is not None:
                server.stop()
        if host is not None:
            host.close()
        shutil.rmtree(top, ignore_errors=True)
        raise
