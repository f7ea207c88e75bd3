"""A process of the otel sink tests: ``python otel_worker.py <command> '<json args>'``.

Runs a graph on the SQLite store at ``db`` with an `OtelSink` on an in-memory exporter
and prints one JSON object: the flow's result and every span the process exported.

- ``pause``: start the ``graph`` ("approval", or "nested": a sub-graph that asks);
- ``resume``: answer the paused ``flow_id`` with ``answer``;
- ``hang``: start the "hang" graph (Start -> Before -> Hang -> After -> End) as
  ``flow_id``; Hang touches the file ``ready`` and blocks until the process is killed;
- ``recover``: recover ``flow_id`` of the "hang" graph (Hang now returns).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

sys.path.insert(0, str(Path(__file__).parent.parent / "core"))

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import build

from qm_nodes_std import register_graph, std_registry
from qm_sink_otel import OtelSink
from qm_store_sqlite import SQLiteStore
from quartermaster_engine import ExecutionContext, FlowRunner, NodeResult


def step(ctx: ExecutionContext) -> NodeResult:
    return NodeResult(output_text=f"{ctx.current_node.name}({ctx.input_text})")


def ask(ctx: ExecutionContext) -> NodeResult:
    if ctx.user_input is None:
        return NodeResult(wait_for_user=True, user_prompt="Approve?", user_options=["yes", "no"])
    return NodeResult(output_text=ctx.user_input)


def approval(name: str = "approval") -> Any:
    return build(
        {"Start": "Start1", "Approve": "ask", "Publish": "step", "End": "End1"},
        [("Start", "Approve"), ("Approve", "Publish"), ("Publish", "End")],
        name=name,
    )


def hang_graph() -> Any:
    return build(
        {"Start": "Start1", "Before": "step", "Hang": "hang", "After": "step", "End": "End1"},
        [("Start", "Before"), ("Before", "Hang"), ("Hang", "After"), ("After", "End")],
        name="hang",
    )


def hang(ready: Path | None) -> Any:
    def execute(ctx: ExecutionContext) -> NodeResult:
        if ready is not None:
            ready.touch()
            while True:
                time.sleep(1)
        return NodeResult(output_text="Hang")

    return execute


def nested() -> Any:
    register_graph("otel-review", approval("review"))
    return build(
        {
            "Start": "Start1",
            "Review": {"type": "SubAssistant1", "metadata": {"graph": "otel-review"}},
            "End": "End1",
        },
        [("Start", "Review"), ("Review", "End")],
        name="outer",
    )


def span_dict(span: ReadableSpan) -> dict[str, Any]:
    return {
        "name": span.name,
        "trace_id": span.context.trace_id,
        "span_id": span.context.span_id,
        "parent_id": span.parent.span_id if span.parent is not None else None,
        "start": span.start_time,
        "attributes": {k: str(v) for k, v in (span.attributes or {}).items()},
        "events": [e.name for e in span.events],
    }


def main(command: str, args: dict[str, Any]) -> dict[str, Any]:
    exporter = InMemorySpanExporter()
    sink = OtelSink(exporter=exporter)
    store = SQLiteStore(args["db"])
    reg = std_registry()
    reg.register("step", step)
    reg.register("ask", ask)
    reg.register("hang", hang(Path(args["ready"]) if command == "hang" else None))
    graphs = {"nested": nested, "hang": hang_graph, "approval": approval}
    graph = graphs[args.get("graph", "approval")]()
    runner = FlowRunner(graph, reg, store=store, sinks=[sink])
    try:
        if command == "pause":
            result = runner.run("draft")
        elif command == "resume":
            result = runner.resume(UUID(args["flow_id"]), args["answer"])
        elif command == "hang":
            result = runner.run("x", UUID(args["flow_id"]))
        elif command == "recover":
            result = runner.recover(UUID(args["flow_id"]))
        else:
            raise SystemExit(f"unknown command {command!r}")
    finally:
        asyncio.run(store.close())
        sink.close()
    return {
        "flow_id": str(result.flow_id),
        "status": result.status.value,
        "final_output": result.final_output,
        "spans": [span_dict(s) for s in exporter.get_finished_spans()],
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], json.loads(sys.argv[2]))), flush=True)
