"""A fleet across hosts: store, broker, two workers and the client each on a host of
its own (network namespaces on a bridge, `netns_support`), talking over the network,
not a loopback. A worker cut off by a network partition in the middle of a node, and
a broker SIGKILLed and restarted, lose nothing and run nothing twice that committed.
Needs root for ``ip netns``, as CI runs; fails (never skips) when it cannot make them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery_support import Fleet
from netns_support import Host, Network

pytestmark = pytest.mark.slow

STORE_PORT, BROKER_PORT = 7001, 7002

# The client runs on its own host: it starts the flow, waits for its end and prints
# what the store holds; with a flow id, only what the store holds.
CLIENT = """
import json, sys, time, uuid
from collections import Counter
from quartermaster_engine import FlowRunner
from quartermaster_engine.testing import build_graph, call
graph = build_graph(
    {"Start": "Start1", "A": "work", "H": {"type": "hang", "metadata": {"seconds": 5}},
     "B": "work", "End": "End1"},
    [("Start", "A"), ("A", "H"), ("H", "B"), ("B", "End")], name="hosts")
with FlowRunner.from_config(graph, sys.argv[1]) as runner:
    if len(sys.argv) > 2:
        fid = uuid.UUID(sys.argv[2])
    else:
        fid = runner.submit("x")
        print(fid, flush=True)
    deadline = time.monotonic() + 90
    while call(runner.store, "get_flow", fid).status.value != "completed":
        assert time.monotonic() < deadline, "the flow did not complete"
        time.sleep(0.1)
    snap = call(runner.store, "load_flow", fid)
    names = {n.id: n.name for n in snap.flow.graph.nodes}
    finished = Counter(names[r.node_id] for r in snap.records if r.status.value == "finished")
    print(json.dumps({"output": snap.flow.final_output, "finished": finished}), flush=True)
"""


class Site:
    """Five hosts: ``store`` and ``broker`` (a redis-server each, append-only with
    fsync on every write, so a SIGKILL loses nothing acknowledged), ``w1`` and ``w2``
    (a ``qm worker`` each, one process) and ``client``."""

    def __init__(self, network: Network, directory: Path) -> None:
        self.network = network
        self.directory = directory
        self.hosts = {
            name: network.add_host(name) for name in ("store", "broker", "w1", "w2", "client")
        }
        self.servers: dict[str, subprocess.Popen[bytes]] = {}
        self.start_redis("store", STORE_PORT)
        self.start_redis("broker", BROKER_PORT)
        store, broker = self.hosts["store"].address, self.hosts["broker"].address
        self.fleet = Fleet(
            directory / "fleet",
            f"redis://{store}:{STORE_PORT}/0",
            f"redis://{broker}:{BROKER_PORT}/0",
            visibility_timeout=3,
            restore_interval=1,
        )

    def start_redis(self, name: str, port: int) -> None:
        host = self.hosts[name]
        folder = self.directory / name
        folder.mkdir(exist_ok=True)
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        self.servers[name] = host.popen(
            [binary, "--bind", host.address, "--port", str(port), "--protected-mode", "no",
             "--dir", str(folder), "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--logfile", str(folder / "redis.log")],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            ping = host.run(
                ["redis-cli", "-h", host.address, "-p", str(port), "ping"],
                capture_output=True,
                text=True,
            )
            if ping.stdout.strip() == "PONG":
                return
            assert self.servers[name].poll() is None, (folder / "redis.log").read_text()
            assert time.monotonic() < deadline, f"redis on {name} did not answer"
            time.sleep(0.05)

    def start_workers(self) -> None:
        procs = [
            self.fleet.start_worker(1, wait=False, prefix=self.hosts[name].command([]))
            for name in ("w1", "w2")
        ]
        for proc, log in zip(procs, self.fleet.logs, strict=True):
            self.fleet.wait_ready(log, proc)

    def client(self, *args: str) -> subprocess.Popen[str]:
        return self.fleet.script(
            CLIENT, str(self.fleet.config), *args, prefix=self.hosts["client"].command([])
        )

    def host_of(self, pid: int) -> Host:
        """The worker host whose worker ran the process ``pid``."""
        return self.hosts[("w1", "w2")[self.fleet.worker_of(pid)]]

    def close(self) -> None:
        self.fleet.stop_all()
        self.network.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    network = Network.create()
    try:
        made = Site(network, tmp_path)
    except BaseException:
        network.close()
        raise
    yield made
    made.close()


def finish(client: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = client.communicate(timeout=120)
    assert client.returncode == 0, err
    result: dict[str, Any] = json.loads(out.splitlines()[-1])
    return result


def test_a_worker_cut_off_mid_node_loses_the_node_to_the_other_and_commits_nothing(
    site: Site,
) -> None:
    site.start_workers()
    client = site.client()
    started = site.fleet.wait_for_line("started", "H")
    cut = site.host_of(int(started[1]))
    site.network.partition(cut)
    # The other worker takes H once the broker hands the unacknowledged message on.
    result = finish(client)
    flow_id = started[2]
    assert result["output"] == "B(hung)"
    assert result["finished"] == {"Start": 1, "A": 1, "H": 1, "B": 1, "End": 1}
    starts = [line for line in site.fleet.lines() if line[0] == "started"]
    assert len(starts) == 2
    assert {site.host_of(int(line[1])).name for line in starts} == {"w1", "w2"}

    # Healed, the cut-off worker finishes its H and tries to commit it: the fence
    # refuses it as a duplicate (on whichever worker the retried task lands) and
    # the flow's records do not change.
    def duplicates() -> int:
        return sum(log.read_text().count("'duplicate'") for log in site.fleet.logs)

    before = duplicates()
    site.network.heal(cut)
    deadline = time.monotonic() + 60
    while duplicates() == before:
        assert time.monotonic() < deadline, [log.read_text()[-3000:] for log in site.fleet.logs]
        time.sleep(0.1)
    again = finish(site.client(flow_id))
    assert again == result
    assert site.fleet.runs() == {"A": 1, "H": 2, "B": 1}


def test_the_broker_killed_and_restarted_mid_flow_loses_nothing(site: Site) -> None:
    site.start_workers()
    client = site.client()
    site.fleet.wait_for_line("started", "H")
    broker = site.servers["broker"]
    broker.kill()
    broker.wait(10)
    time.sleep(1)
    site.start_redis("broker", BROKER_PORT)  # same host, port and append-only file
    result = finish(client)
    assert result["output"] == "B(hung)"
    assert result["finished"] == {"Start": 1, "A": 1, "H": 1, "B": 1, "End": 1}
    assert site.fleet.runs() == {"A": 1, "H": 1, "B": 1}
