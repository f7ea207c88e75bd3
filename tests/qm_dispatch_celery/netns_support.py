"""Several hosts on one machine: Linux network namespaces joined by a bridge.

``Network.create()`` makes a hub namespace holding a bridge; ``add_host`` makes a
namespace with one veth link into that bridge and an address in a /24 of
198.18.0.0/15 (RFC 2544, benchmarking: never routed, so nothing leaves the machine;
no namespace has a default route). ``partition`` unplugs a host's cable at the
bridge (its packets are dropped, its TCP connections stall as on a real network
split, no reset is sent), ``heal`` plugs it back. Needs root (``ip netns``), as CI runs.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from typing import Any


def ip(*args: str, namespace: str | None = None) -> None:
    """Runs ``ip ARGS`` (inside ``namespace`` if given); raises with ip's message on failure."""
    command = ["ip", *args] if namespace is None else ["ip", "-n", namespace, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")


@dataclass
class Host:
    """One machine of the network: a namespace and its address on the bridge."""

    name: str
    namespace: str
    address: str
    bridge_port: str  # the veth end plugged into the hub's bridge

    def command(self, args: list[str]) -> list[str]:
        """``args`` run on this host."""
        return ["ip", "netns", "exec", self.namespace, *args]

    def popen(self, args: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        return subprocess.Popen(self.command(args), **kwargs)

    def run(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        return subprocess.run(self.command(args), **kwargs)


@dataclass
class Network:
    """A bridge in a hub namespace and the hosts plugged into it."""

    tag: str
    subnet: str  # the first three octets, e.g. "198.18.42"
    hub: str
    hosts: dict[str, Host] = field(default_factory=dict)

    @classmethod
    def create(cls) -> Network:
        tag = uuid.uuid4().hex[:6]
        # A random /24, so two test runs on one machine do not share addresses.
        subnet = f"198.{random.choice((18, 19))}.{random.randrange(256)}"
        network = cls(tag=tag, subnet=subnet, hub=f"qm-{tag}-hub")
        ip("netns", "add", network.hub)
        try:
            ip("link", "add", "br0", "type", "bridge", namespace=network.hub)
            ip("link", "set", "br0", "up", namespace=network.hub)
        except BaseException:
            network.close()
            raise
        return network

    def add_host(self, name: str) -> Host:
        """A new namespace ``name`` with address ``<subnet>.<n>/24`` on the bridge."""
        index = len(self.hosts) + 1
        namespace = f"qm-{self.tag}-{name}"
        # Interface names are at most 15 characters.
        inner, outer = f"h{self.tag}{index}", f"b{self.tag}{index}"
        ip("netns", "add", namespace)
        host = Host(name, namespace, f"{self.subnet}.{index}", outer)
        self.hosts[name] = host
        ip("link", "add", inner, "type", "veth", "peer", "name", outer)
        ip("link", "set", inner, "netns", namespace)
        ip("link", "set", outer, "netns", self.hub)
        ip("link", "set", "lo", "up", namespace=namespace)
        ip("link", "set", inner, "name", "eth0", namespace=namespace)
        ip("addr", "add", f"{host.address}/24", "dev", "eth0", namespace=namespace)
        ip("link", "set", "eth0", "up", namespace=namespace)
        ip("link", "set", outer, "master", "br0", "up", namespace=self.hub)
        return host

    def partition(self, host: Host) -> None:
        """Unplugs ``host`` from the bridge: nothing it sends arrives, nothing reaches it."""
        ip("link", "set", host.bridge_port, "nomaster", namespace=self.hub)

    def heal(self, host: Host) -> None:
        ip("link", "set", host.bridge_port, "master", "br0", namespace=self.hub)

    def close(self) -> None:
        """Kills every process left in the hosts' namespaces and deletes them all."""
        for namespace in [*(h.namespace for h in self.hosts.values()), self.hub]:
            pids = subprocess.run(
                ["ip", "netns", "pids", namespace], capture_output=True, text=True
            ).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
