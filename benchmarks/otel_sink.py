"""The otel sink's cost: W1's chain and W2's fan-out with the sink off and on.

Variants, each on the same graph with no-op executors, SyncDispatcher and the
in-memory store:

- ``off``: no sink;
- ``memory``: `OtelSink` exporting to the SDK's ``InMemorySpanExporter`` (the cost of
  building spans, and of the batch processor's thread);
- ``otlp``: `OtelSink` exporting OTLP/HTTP protobuf to a receiver on loopback, run in a
  process of its own (as a collector would be) that reads each request and answers 200.

Each size: one untimed run, then the median of ``--runs`` timed runs of ``runner.run``
(wall and this process's CPU time, the export thread's included), then a flush, not
timed, before the next run, so that every run starts with an empty queue. The added
cost per node is the variant's time per node minus ``off``'s. Every run is checked:
the flow completed; the spans that did not arrive (of nodes + Start, End and the
flow's span per run, counted by the exporter or decoded by the receiver) are reported,
so a full export queue shows.

    .venv/bin/python benchmarks/otel_sink.py [--chain 1000] [--fanout 1000] [--runs 5]
        [--max-queue-size 2048]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from qmbench.qm_graphs import JOIN_TYPE, NOOP_TYPE, chain, fanout

from qm_sink_otel import OtelSettings, OtelSink
from quartermaster_engine import FlowRunner, FlowStatus, GraphSpec, NodeResult, SimpleNodeRegistry

RECEIVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

received = 0


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global received
        request = ExportTraceServiceRequest()
        request.ParseFromString(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        received += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        body = str(received).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def received(endpoint: str) -> int:
    """How many spans the receiver decoded so far."""
    with urllib.request.urlopen(endpoint) as answer:
        return int(answer.read())


@contextmanager
def receiver() -> Iterator[str]:
    """An OTLP/HTTP receiver in its own process; yields its base URL."""
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def noop(ctx: Any) -> NodeResult:
    return NodeResult(output_text="ok")


def registry() -> SimpleNodeRegistry:
    return SimpleNodeRegistry({NOOP_TYPE: noop, JOIN_TYPE: noop})


def measure(
    graph: GraphSpec, sink: OtelSink | None, runs: int, check: Callable[[], None]
) -> tuple[float, float]:
    """Median (wall, CPU) seconds of one run."""
    runner = FlowRunner(graph, registry(), sinks=[sink] if sink is not None else [])
    walls, cpus = [], []
    for i in range(runs + 1):
        cpu, wall = time.process_time(), time.perf_counter()
        result = runner.run("x")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert result.status is FlowStatus.COMPLETED, result.error
        if sink is not None:
            assert sink.flush()
        check()
        if i:  # the first run is the warm-up
            walls.append(wall)
            cpus.append(cpu)
    return statistics.median(walls), statistics.median(cpus)


def rows(
    name: str, graph: GraphSpec, nodes: int, runs: int, endpoint: str, settings: OtelSettings
) -> list[str]:
    spans_per_run = len(graph.nodes) + 1
    memory = InMemorySpanExporter()
    lost = {"memory": 0, "otlp": 0}

    def check_memory() -> None:
        lost["memory"] += spans_per_run - len(memory.get_finished_spans())
        memory.clear()

    seen = [received(endpoint)]

    def check_otlp() -> None:
        now = received(endpoint)
        lost["otlp"] += spans_per_run - (now - seen[0])
        seen[0] = now

    variants: dict[str, tuple[OtelSink | None, Callable[[], None]]] = {
        "off": (None, lambda: None),
        "memory": (OtelSink(settings, exporter=memory), check_memory),
        "otlp": (OtelSink(settings.model_copy(update={"endpoint": endpoint})), check_otlp),
    }
    out = []
    base = 0.0
    for variant, (sink, check) in variants.items():
        wall, cpu = measure(graph, sink, runs, check)
        if sink is not None:
            sink.close()
        per_node = wall / nodes * 1e6
        if variant == "off":
            base = per_node
        added = "" if variant == "off" else f"+{per_node - base:.1f} µs"
        out.append(
            f"| {name} | {variant} | {per_node:.1f} µs ({cpu / nodes * 1e6:.1f} CPU) | {added} "
            f"| {lost.get(variant, 0)} |"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chain", type=int, default=1000, help="W1 chain: no-op nodes")
    parser.add_argument("--fanout", type=int, default=1000, help="W2 fan-out: branches")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--max-queue-size", type=int, default=None, help="the sink's setting (default 2048)"
    )
    args = parser.parse_args()
    settings = OtelSettings()
    if args.max_queue_size is not None:
        settings = OtelSettings(max_queue_size=args.max_queue_size)
    with receiver() as endpoint:
        table = [
            "| workload | sink | time per node | added per node | spans lost |",
            "|---|---|---|---|---|",
            *rows(
                f"W1 chain, {args.chain:,} nodes",
                chain(args.chain),
                args.chain,
                args.runs,
                endpoint,
                settings,
            ),
            *rows(
                f"W2 fan-out, {args.fanout:,} branches",
                fanout(args.fanout),
                args.fanout + 1,
                args.runs,
                endpoint,
                settings,
            ),
        ]
    print("\n".join(table))


if __name__ == "__main__":
    main()
