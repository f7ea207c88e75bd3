"""qm-server over HTTP, beside LangGraph's local API server (``langgraph dev``).

1. Start-and-await of a 5-node flow (Start, three no-op steps, End): requests per
   second and p50/p99 latency of ``POST /api/flows {"wait": true}`` with 1 and 32
   concurrent clients, on the SQLite store (and the memory store for reference).
   LangGraph: ``POST /runs/wait`` of a 5-node StateGraph chain on its in-memory
   runtime (the only runtime ``langgraph dev`` has).
2. Token to SSE event: a node emits a token every 5 ms holding ``time.time()``; the
   latency is the reader's clock at the event minus that stamp, read by an httpx
   client and by headless Chromium's ``EventSource`` (Debian's chromium). LangGraph:
   the same node writing to ``get_stream_writer()``, read from ``POST /runs/stream``
   with ``stream_mode: custom``.

Every server runs in its own process; the clients run in this one.

    .venv/bin/python benchmarks/server_http.py [--requests 400] [--no-langgraph] [--no-browser]

LangGraph's environment is ``.bench/langgraph-server`` (created on first use, pinned).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from qmbench.envs import PeerEnv, ensure_peer

REPO = Path(__file__).resolve().parents[1]
LANGGRAPH_SERVER = PeerEnv(
    "langgraph-server",
    (
        "langgraph-cli==0.4.40",
        "langgraph-api==0.16.7",
        "langgraph-runtime-inmem==0.36.7",
        "langgraph==1.2.24",
    ),
    ("langchain-core", "uvicorn", "starlette"),
)
TOKENS, TOKEN_PAUSE, FIRST_TOKEN_DELAY = 300, 0.005, 0.5

CHAIN_YAML = """\
name: Chain5
nodes:
  - {name: Start, type: Start1}
  - {name: A, type: bench.Step}
  - {name: B, type: bench.Step}
  - {name: C, type: bench.Step}
  - {name: End, type: End1}
edges:
  - {from: Start, to: A}
  - {from: A, to: B}
  - {from: B, to: C}
  - {from: C, to: End}
"""
TICKER_YAML = """\
name: Ticker
nodes:
  - {name: Start, type: Start1}
  - {name: Tick, type: bench.Ticker}
  - {name: End, type: End1}
edges:
  - {from: Start, to: Tick}
  - {from: Tick, to: End}
"""

LANGGRAPH_GRAPHS = f"""\
import asyncio, time
from typing import TypedDict
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    text: str


def _step(name):
    def step(state: State) -> State:
        return {{"text": f"{{name}}({{state['text']}})"}}
    return step


builder = StateGraph(State)
previous = START
for name in ("start", "a", "b", "c", "end"):
    builder.add_node(name, _step(name))
    builder.add_edge(previous, name)
    previous = name
builder.add_edge(previous, END)
chain = builder.compile()


async def tick(state: State) -> State:
    write = get_stream_writer()
    await asyncio.sleep({FIRST_TOKEN_DELAY})
    for _ in range({TOKENS}):
        write({{"ts": time.time()}})
        await asyncio.sleep({TOKEN_PAUSE})
    return {{"text": "done"}}


ticker_builder = StateGraph(State)
ticker_builder.add_node("tick", tick)
ticker_builder.add_edge(START, "tick")
ticker_builder.add_edge("tick", END)
ticker = ticker_builder.compile()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- our server (the --serve child) --------------------------------------------------


def serve(port: int, graphs: Path, store: str, db: Path) -> None:
    """Run qm-server with the benchmark's two executors (this process's only job)."""
    import uvicorn

    from qm_server import ServerSettings, create_app
    from quartermaster_engine.nodes import NodeResult, SimpleNodeRegistry

    class Step:
        def execute(self, context: Any) -> NodeResult:
            return NodeResult(output_text=f"{context.current_node.name}({context.input_text})")

    class Ticker:
        async def execute(self, context: Any) -> NodeResult:
            await asyncio.sleep(FIRST_TOKEN_DELAY)
            for _ in range(TOKENS):
                context.emit_token(f"{time.time():.6f}")
                await asyncio.sleep(TOKEN_PAUSE)
            return NodeResult(output_text="done")

    store_section: dict[str, Any] = {"name": store}
    if store == "sqlite":
        store_section["path"] = str(db)
    config = {"store": store_section, "dispatcher": {"name": "async"}}
    registry = SimpleNodeRegistry({"bench.Step": Step(), "bench.Ticker": Ticker()})
    app = create_app(ServerSettings(graphs_dir=graphs, config=config), node_registry=registry)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextmanager
def process(args: list[str], url: str, health: str, **kwargs: Any) -> Iterator[None]:
    """A server process, until its health route answers; stopped (by its id) after."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True, **kwargs)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(url + health, timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"server did not start: {log.read().decode()[-2000:]}")
                time.sleep(0.2)
            yield
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


# -- measurements -----------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def load(
    url: str, clients: int, requests: int, call: Callable[[httpx.AsyncClient], Awaitable[None]]
) -> dict[str, float]:
    """``requests`` calls spread over ``clients`` concurrent loops; rps and latencies."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        for _ in range(min(20, requests)):  # warm-up, not counted
            await call(client)
        remaining = requests

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                await call(client)
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - began
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "requests": len(latencies),
    }


def summary(latencies: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
        "tokens": len(latencies),
    }


Request = tuple[str, str, dict[str, Any] | None]


def sse_latencies(
    url: str,
    start: Callable[[httpx.Client], Request],
    stamp_of: Callable[[str, Any], float | None],
) -> list[float]:
    """Open the stream ``start`` names (method, path, body) and time each stamped event."""
    found: list[float] = []
    with httpx.Client(base_url=url, timeout=120) as client:
        method, path, body = start(client)
        with client.stream(method, path, json=body) as response:
            event = ""
            for line in response.iter_lines():
                now = time.time()
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    stamp = stamp_of(event, json.loads(line[5:]))
                    if stamp is not None:
                        found.append(now - stamp)
    return found


def browser_latencies(url: str, events_path_js: str) -> list[float]:
    """Token latencies as headless Chromium's EventSource sees them."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    service = Service(executable_path=shutil.which("chromedriver") or "chromedriver")
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.get(url + "/api/health")  # same origin as the stream
        driver.set_script_timeout(120)
        result: list[float] = driver.execute_async_script(events_path_js)
        return result
    finally:
        driver.quit()


OUR_BROWSER_JS = """
const done = arguments[arguments.length - 1];
fetch('/api/flows', {method: 'POST', headers: {'content-type': 'application/json'},
  body: JSON.stringify({graph: 'ticker', input: 'x'})}).then(r => r.json()).then(flow => {
  const out = [];
  const source = new EventSource('/api/flows/' + flow.flow_id + '/events');
  source.addEventListener('TokenGenerated', ev => {
    const now = (performance.timeOrigin + performance.now()) / 1000;
    out.push(now - parseFloat(JSON.parse(ev.data).token));
  });
  source.addEventListener('FlowFinished', () => { source.close(); done(out); });
});
"""


def ours(store: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    graphs = tmp / "graphs"
    graphs.mkdir(exist_ok=True)
    (graphs / "chain5.yaml").write_text(CHAIN_YAML)
    (graphs / "ticker.yaml").write_text(TICKER_YAML)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    db = tmp / f"flows-{port}.db"
    child = [sys.executable, __file__, "--serve", str(port), str(graphs), store, str(db)]
    results: dict[str, Any] = {}
    with process(child, url, "/api/health"):

        async def call(client: httpx.AsyncClient) -> None:
            response = await client.post(
                "/api/flows", json={"graph": "chain5", "input": "x", "wait": True}
            )
            assert response.json()["output"] == "C(B(A(x)))", response.text

        for clients in (1, 32):
            results[f"clients_{clients}"] = asyncio.run(load(url, clients, args.requests, call))
        if store == "sqlite":

            def start(client: httpx.Client) -> Request:
                flow = client.post("/api/flows", json={"graph": "ticker", "input": "x"}).json()
                return "GET", f"/api/flows/{flow['flow_id']}/events", None

            results["token_httpx"] = summary(
                sse_latencies(
                    url,
                    start,
                    lambda event, data: float(data["token"]) if event == "TokenGenerated" else None,
                )
            )
            if args.browser:
                results["token_browser"] = summary(browser_latencies(url, OUR_BROWSER_JS))
    return results


LANGGRAPH_BROWSER_JS = """
const done = arguments[arguments.length - 1];
const out = [];
fetch('/runs/stream', {method: 'POST', headers: {'content-type': 'application/json'},
  body: JSON.stringify({assistant_id: 'ticker', input: {text: 'x'}, stream_mode: ['custom']})})
.then(async response => {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const {value, done: end} = await reader.read();
    if (end) break;
    const now = (performance.timeOrigin + performance.now()) / 1000;
    buffer += decoder.decode(value, {stream: true});
    let cut;
    while ((cut = buffer.indexOf('\\n')) >= 0) {
      const line = buffer.slice(0, cut).trim();
      buffer = buffer.slice(cut + 1);
      if (line.startsWith('data:')) {
        const data = JSON.parse(line.slice(5));
        if (data && typeof data.ts === 'number') out.push(now - data.ts);
      }
    }
  }
  done(out);
});
"""


def langgraph(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    versions = ensure_peer(LANGGRAPH_SERVER)
    project = tmp / "langgraph-project"
    project.mkdir()
    (project / "graphs.py").write_text(LANGGRAPH_GRAPHS)
    (project / "langgraph.json").write_text(
        json.dumps(
            {
                "dependencies": ["."],
                "graphs": {"chain": "./graphs.py:chain", "ticker": "./graphs.py:ticker"},
            }
        )
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cli = LANGGRAPH_SERVER.path / "bin" / "langgraph"
    command = [
        str(cli),
        "dev",
        "--no-browser",
        "--no-reload",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    environ = {**os.environ, "LANGSMITH_TRACING": "false", "LANGGRAPH_CLI_NO_ANALYTICS": "1"}
    results: dict[str, Any] = {"versions": versions}
    with process(command, url, "/ok", cwd=project, env=environ):

        async def call(client: httpx.AsyncClient) -> None:
            response = await client.post(
                "/runs/wait", json={"assistant_id": "chain", "input": {"text": "x"}}
            )
            assert response.json()["text"] == "end(c(b(a(start(x)))))", response.text

        for clients in (1, 32):
            results[f"clients_{clients}"] = asyncio.run(load(url, clients, args.requests, call))

        def start(client: httpx.Client) -> Request:
            body = {"assistant_id": "ticker", "input": {"text": "x"}, "stream_mode": ["custom"]}
            return "POST", "/runs/stream", body

        results["token_httpx"] = summary(
            sse_latencies(
                url,
                start,
                lambda event, data: data["ts"] if isinstance(data, dict) and "ts" in data else None,
            )
        )
        if args.browser:
            results["token_browser"] = summary(browser_latencies(url, LANGGRAPH_BROWSER_JS))
    return results


def render(name: str, result: dict[str, Any]) -> None:
    for clients in (1, 32):
        row = result.get(f"clients_{clients}")
        if row:
            print(
                f"{name:<28} start+await {clients:>2} clients: {row['rps']:8.1f} req/s  "
                f"p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms"
            )
    for reader in ("httpx", "browser"):
        row = result.get(f"token_{reader}")
        if row:
            print(
                f"{name:<28} token -> SSE ({reader:<7}): p50 {row['p50_ms']:6.2f} ms  "
                f"p99 {row['p99_ms']:6.2f} ms  ({row['tokens']} tokens)"
            )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], Path(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="timed requests per cell")
    parser.add_argument("--no-langgraph", dest="langgraph", action="store_false")
    parser.add_argument("--no-browser", dest="browser", action="store_false")
    args = parser.parse_args()
    all_results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for store in ("sqlite", "memory"):
            all_results[f"qm-server ({store})"] = ours(store, args, tmp)
            render(f"qm-server ({store})", all_results[f"qm-server ({store})"])
        if args.langgraph:
            all_results["langgraph dev (inmem)"] = langgraph(args, tmp)
            render("langgraph dev (inmem)", all_results["langgraph dev (inmem)"])
    print(json.dumps(all_results))


if __name__ == "__main__":
    main()
