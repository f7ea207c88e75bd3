"""Which executors a runner uses: the installed ones without a registry, only the given
registry (plus Start1/End1) with one."""

from __future__ import annotations

from pathlib import Path

from quartermaster_engine import FlowRunner, FlowStatus, SimpleNodeRegistry
from quartermaster_graph import load_graph

ROUTER = Path(__file__).resolve().parents[2] / "examples" / "ticket-router.yaml"


def test_without_a_registry_the_installed_node_pack_runs_the_graph() -> None:
    result = FlowRunner(load_graph(ROUTER)).run("How do I change my email?")
    assert result.status is FlowStatus.COMPLETED
    assert result.final_output == (
        "Thanks! A support agent will answer your question soon: How do I change my email?"
    )


def test_with_a_registry_only_its_executors_and_start_end_run() -> None:
    result = FlowRunner(load_graph(ROUTER), SimpleNodeRegistry()).run("x")
    assert result.status is FlowStatus.FAILED
    assert result.error is not None
    assert result.error.startswith(
        "no executor for node type 'WriteMemory1' (node 'Remember ticket'"
    )
