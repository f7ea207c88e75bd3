"""The benchmark harness's own parts: graph shapes, checks, the plan, skips, the tables.

No timings are asserted here; the benchmarks print figures, tests do not judge them.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.append(str(BENCHMARKS))

import compare  # noqa: E402
from qmbench import checks, qm_graphs, report, spec  # noqa: E402
from qmbench.engines import ours  # noqa: E402
from qmbench.measure import measure  # noqa: E402

from quartermaster_graph import NodeType, TraverseIn  # noqa: E402

X = report.TIMES  # the multiplication sign the tables use


def _names(graph: Any) -> dict[Any, str]:
    return {n.id: n.name for n in graph.nodes}


def test_chain_shape() -> None:
    graph = qm_graphs.chain(3)
    names = _names(graph)
    assert [n.name for n in graph.nodes] == ["Start", "n0", "n1", "n2", "End"]
    assert [(names[e.source_id], names[e.target_id]) for e in graph.edges] == [
        ("Start", "n0"),
        ("n0", "n1"),
        ("n1", "n2"),
        ("n2", "End"),
    ]
    assert graph.start_node_id == graph.nodes[0].id
    assert [n.type for n in graph.nodes] == [
        NodeType.START,
        NodeType.INSTRUCTION,
        NodeType.INSTRUCTION,
        NodeType.INSTRUCTION,
        NodeType.END,
    ]


def test_fanout_shape() -> None:
    graph = qm_graphs.fanout(3)
    names = _names(graph)
    assert [n.name for n in graph.nodes] == ["Start", "b0", "b1", "b2", "join", "End"]
    assert sorted((names[e.source_id], names[e.target_id]) for e in graph.edges) == [
        ("Start", "b0"),
        ("Start", "b1"),
        ("Start", "b2"),
        ("b0", "join"),
        ("b1", "join"),
        ("b2", "join"),
        ("join", "End"),
    ]
    join = graph.nodes[4]
    assert join.type == NodeType.STATIC_MERGE
    assert join.traverse_in == TraverseIn.AWAIT_ALL


@pytest.mark.parametrize(
    ("workload", "size", "node_runs"),
    [("W1", 7, 7), ("W2", 6, 7), ("W4", 3, 15), ("W6c", 4, 4)],
)
def test_our_bench_runs_and_checks_each_run(
    tmp_path: Path, workload: str, size: int, node_runs: int
) -> None:
    bench = ours.make(workload, "ours", size, {}, tmp_path)
    bench.setup()
    outcome = bench.run()
    assert len(bench.calls) == node_runs
    bench.check(outcome)
    bench.reset()
    assert bench.calls == []
    assert bench.store.list_flows() == []
    bench.close()


def test_measure_reports_runs_and_a_wrong_result(tmp_path: Path) -> None:
    bench = ours.make("W2", "ours", 4, {}, tmp_path)
    result = measure(bench, runs=3, budget_s=60, min_total_s=0)
    assert (result["status"], result["runs"], len(result["times_s"])) == ("ok", 3, 3)
    assert len(result["cpu_times_s"]) == 3
    # Short runs repeat until enough time is measured, at most max_runs times.
    bench = ours.make("W2", "ours", 4, {}, tmp_path)
    result = measure(bench, runs=3, budget_s=60, min_total_s=1e9, max_runs=7)
    assert (result["status"], result["runs"]) == ("ok", 7)

    class JoinTwice(ours.OursBench):
        def run(self) -> Any:
            outcome = super().run()
            self.calls.append(checks.JOIN)
            return outcome

    wrong = measure(JoinTwice("W2", "ours", 4, {}, tmp_path), runs=3, budget_s=60, min_total_s=0)
    assert wrong["status"] == "wrong"
    assert wrong["runs"] == 0
    assert wrong["detail"] == (
        "the join ran 2 times; 6 node runs, expected 5; 1 node(s) ran too often (e.g. join x2)"
    )


def test_checks() -> None:
    checks.check_chain(["n0", "n1"], 2)
    with pytest.raises(checks.WrongResult, match=r"^every node ran once, but not in chain order$"):
        checks.check_chain(["n1", "n0"], 2)
    with pytest.raises(
        checks.WrongResult,
        match=r"^1 node runs, expected 2; 1 node\(s\) ran too rarely \(e\.g\. n1\)$",
    ):
        checks.check_chain(["n0"], 2)
    checks.check_fanout(["b1", "b0", "join"], 2)
    with pytest.raises(checks.WrongResult, match=r"^the join ran before 1 branch"):
        checks.check_fanout(["b1", "join", "b0"], 2)


def test_plan() -> None:
    full = spec.plan()
    assert len(full) == 90
    per_workload = Counter(c.workload for c in full)
    assert per_workload == {
        "W1": 20,
        "W2": 16,
        "W3": 24,
        "W4": 4,
        "W5": 4,
        "W3p": 12,
        "W6": 4,
        "W6c": 2,
        "W6f": 2,
        "W8": 2,
    }
    only = spec.plan(["W3"], ["ours"], quick=True)
    assert [c.id for c in only] == ["W3/100/ours-sqlite", "W3/100/ours-sqlite-full"]
    with pytest.raises(ValueError, match=r"^unknown workload"):
        spec.plan(["W9"])
    assert (spec.units("W1", 1000), spec.units("W2", 1000), spec.units("W6", 100)) == (
        1000,
        1001,
        1,
    )


def _record(workload: str, size: int, variant: str, **fields: Any) -> dict[str, Any]:
    base = {"workload": workload, "size": size, "variant": variant, "cell": ""}
    return report.derive({**base, **fields})


def test_skip_reason() -> None:
    cell = spec.Cell("W1", 100_000, "lg")
    assert compare.skip_reason(cell, None, 300) is None
    slow = _record("W1", 5_000, "lg", status="ok", median_s=20.0)
    assert compare.skip_reason(cell, slow, 300) == (
        "one run would take at least 400 s (linear from 20.0 s at 5,000), past the 300 s timeout"
    )
    fast = _record("W1", 5_000, "lg", status="ok", median_s=1.0)
    assert compare.skip_reason(cell, fast, 300) is None
    timed_out = _record("W1", 5_000, "lg", status="timeout")
    assert compare.skip_reason(cell, timed_out, 300) == (
        "timed out at 5,000, so a larger size would too"
    )
    wrong = _record("W1", 5_000, "lg", status="wrong", failed_run_s=4.0)
    assert compare.skip_reason(cell, wrong, 300, 60) == (
        "the result was already wrong at 5,000, and a run would take at least 80 s "
        "(linear from 4.0 s)"
    )
    quick_wrong = _record("W1", 5_000, "lg", status="wrong", failed_run_s=0.5)
    assert compare.skip_reason(cell, quick_wrong, 300, 60) is None
    crashed = _record("W1", 5_000, "lg", status="crash")
    assert compare.skip_reason(cell, crashed, 300) is None


def test_workload_table() -> None:
    records = [
        _record("W1", 100, "ours", status="ok", median_s=0.001, peak_rss_mb=48.2),
        _record("W1", 100, "lg", status="ok", median_s=0.02, peak_rss_mb=71.9),
        _record(
            "W1",
            100,
            "qm015",
            status="crash",
            detail="flow failed after 244 of 1000 node runs",
            failed_run_s=0.25,
        ),
    ]
    lines = report.render_workload("W1", records)
    assert lines[4:9] == [
        "| nodes | ours | LangGraph | 0.1.5 sync | LangGraph ÷ ours | 0.1.5 sync ÷ ours |",
        "|---|---|---|---|---|---|",
        f"| 100 | 10.0 µs · 48 MB | 200 µs · 72 MB | **crash**<sup>1</sup> | 20.0{X} | — |",
        "",
        "Variants: ours: FlowRunner, SyncDispatcher, InMemoryStore; LangGraph: StateGraph, "
        "no checkpointer; 0.1.5 sync: FlowRunner, SyncDispatcher, InMemoryStore.",
    ]
    assert lines[10] == (
        "1. W1/100 0.1.5 sync: flow failed after 244 of 1000 node runs (after 0.25 s)"
    )


def test_targets_table() -> None:
    records = [
        _record("W1", 1_000, "ours", status="ok", median_s=0.0123),
        _record("W6", 100, "ours-thread", status="ok", median_s=0.045),
        _record("W6", 100, "ours-sync", status="ok", median_s=1.05),
    ]
    rows = report.render_targets(records)
    assert rows[2] == "| #3 | W1 chain of 1,000: ≤ 10 µs per node | 12.3 µs | **no** |"
    speedup = [r for r in rows if r.startswith("| #8 | W6 ")]
    assert speedup == [
        f"| #8 | W6 100 branches of 10 ms, 32 workers: speed-up over sync ≥ 0.8 {X} 32 = 25.6 "
        f"| 23.3{X} (45 ms vs 1,050 ms) | **no** |"
    ]


def test_concurrent_flows_memory_per_flow_and_targets() -> None:
    # W8: the growth of the peak RSS over the set-up is the flows' in flight.
    ours = _record(
        "W8", 10_000, "ours-async", status="ok", median_s=8.0, peak_rss_mb=220.5, rss_setup_mb=46.5
    )
    assert ours["kb_per_flow"] == 17.82
    assert ours["per_unit_us"] == 8_000_000.0
    rows = [r for r in report.render_targets([ours]) if r.startswith("| #31 | W8 ")]
    assert rows == [
        "| #31 | W8 10,000 concurrent flows of one 100 ms await: ≤ 0.5 s wall "
        "| 8,000,000 µs per run | **no** |",
        "| #31 | W8 10,000 concurrent flows: ≤ 8 KB per flow in flight | 17.8 KB | **no** |",
    ]


def test_readme_has_the_command_and_the_results_markers() -> None:
    text = (BENCHMARKS / "README.md").read_text()
    assert ".venv/bin/python benchmarks/compare.py" in text
    assert text.index(report.START_MARK) < text.index(report.END_MARK)
