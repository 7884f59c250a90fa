"""A host that can vanish: a network namespace for the primary, joined to
ours by a veth pair, whose link can be cut.

Killing a server's processes closes its connections (the kernel sends
resets); a host that loses power or its network sends nothing at all, and
its clients' packets go unanswered. `HostNamespace` makes the second case on
one machine: the primary runs in a namespace of its own (``nsenter`` into
the one a holder process, ``unshare --net``, keeps alive), reached at
`INNER` from `OUTER` over a veth pair; `vanish` sets its end of the link
down, and from then on every packet to it is dropped, unanswered.

Both ends use loopback-range addresses (``route_localnet`` lets them travel
over the veth), and the caller must itself run in a private network
namespace (`in_private_namespace`; ``scripts/failover_demo.py --vanish``
starts one with ``unshare --net``), so nothing changes outside it. Needs
root, ``unshare``, ``nsenter`` and ``ip``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

OUTER, INNER = "127.1.0.1", "127.1.0.2"  # a /30 between the two ends
PRIVATE = "DURABILITY_FAILOVER_PRIVATE_NETNS"  # set in a namespace made for the trial


def missing_tools() -> list[str]:
    """What this machine lacks to make such a host (empty when nothing)."""
    lacking = [tool for tool in ("unshare", "nsenter", "ip") if shutil.which(tool) is None]
    if os.geteuid() != 0:
        lacking.append("root")
    return lacking


def in_private_namespace() -> bool:
    """Whether this process runs in a network namespace made for the trial."""
    return os.environ.get(PRIVATE) == os.readlink("/proc/self/ns/net")


def private_namespace_command(argv: list[str]) -> list[str]:
    """`argv` run in a new network namespace whose loopback is up."""
    script = f'ip link set lo up && export {PRIVATE}="$(readlink /proc/self/ns/net)" && exec "$@"'
    return ["unshare", "--net", "sh", "-c", script, "sh", *argv]


def _ip(*args: str, netns: list[str] | None = None) -> None:
    subprocess.run([*(netns or []), "ip", *args], check=True, capture_output=True, timeout=30)


def _route_localnet(interface: str, netns: list[str] | None = None) -> None:
    for name in ("all", interface):
        command = f"echo 1 > /proc/sys/net/ipv4/conf/{name}/route_localnet"
        subprocess.run([*(netns or []), "sh", "-c", command], check=True, timeout=30)


class HostNamespace:
    """The primary's host (see the module docs)."""

    def __init__(self) -> None:
        if not in_private_namespace():
            raise RuntimeError("a HostNamespace is made only inside a private network namespace")
        self.holder = subprocess.Popen(["unshare", "--net", "sleep", "3600"])
        try:
            self._link()
        except BaseException:
            self.close()
            raise

    def _link(self) -> None:
        ours = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{self.holder.pid}/ns/net") == ours:
            if time.monotonic() > deadline:
                raise RuntimeError("unshare --net did not make a namespace")
            time.sleep(0.01)
        self.path = Path(f"/proc/{self.holder.pid}/ns/net")
        inner = self.enter()
        _ip("link", "add", "v0", "type", "veth", "peer", "name", "v1")
        _ip("link", "set", "v1", "netns", str(self.path))
        _route_localnet("v0")
        _ip("addr", "add", f"{OUTER}/30", "dev", "v0")
        _ip("link", "set", "v0", "up")
        _ip("link", "set", "lo", "up", netns=inner)
        _route_localnet("v1", netns=inner)
        _ip("addr", "add", f"{INNER}/30", "dev", "v1", netns=inner)
        _ip("link", "set", "v1", "up", netns=inner)

    def enter(self) -> list[str]:
        """The command prefix that runs a program on this host."""
        return ["nsenter", f"--net={self.path}"]

    def vanish(self) -> None:
        """The host is gone: its end of the link goes down, every packet to it is dropped."""
        _ip("link", "set", "v1", "down", netns=self.enter())

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait()
