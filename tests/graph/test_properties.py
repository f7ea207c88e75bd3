"""Property tests: random graphs survive JSON and YAML round trips exactly, and
validation reports only known codes without ever failing."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quartermaster_graph import (
    ErrorStrategy,
    GraphEdge,
    GraphNode,
    GraphSpec,
    MessageType,
    NodePosition,
    NodeType,
    ThoughtType,
    TraverseIn,
    TraverseOut,
    dump_graph_text,
    load_graph,
    parse_graph_text,
    save_graph,
    validate_graph,
)
from quartermaster_graph.validation import ISSUE_CODES

# Text a graph file can hold: any Unicode except lone surrogates, which no UTF-8 file can.
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
labels = st.sampled_from(["", "true", "false", "yes", "no", "null", "1", "a b", "ünï"]) | text
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
node_types = st.sampled_from(list(NodeType)) | st.sampled_from(
    ["acme.Classifier", "x", "Δ-node", "Start2"]
)
timezones = st.sampled_from(
    [None, UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=45))]
)


@st.composite
def graph_nodes(draw: st.DrawFn, node_id: UUID) -> GraphNode:
    return GraphNode(
        id=node_id,
        type=draw(node_types),
        name=draw(text),
        traverse_in=draw(st.sampled_from(list(TraverseIn))),
        traverse_out=draw(st.sampled_from(list(TraverseOut))),
        thought_type=draw(st.sampled_from(list(ThoughtType))),
        message_type=draw(st.sampled_from(list(MessageType))),
        error_handling=draw(st.sampled_from(list(ErrorStrategy))),
        metadata=draw(st.dictionaries(text, json_values, max_size=4)),
        position=draw(
            st.none()
            | st.builds(NodePosition, x=st.integers(), y=st.integers(), icon=st.none() | text)
        ),
        max_retries=draw(st.integers(min_value=0, max_value=100)),
        retry_delay=draw(st.floats(min_value=0, max_value=1e6)),
        timeout=draw(st.none() | st.floats(min_value=1e-6, max_value=1e6)),
    )


@st.composite
def graphs(draw: st.DrawFn) -> GraphSpec:
    ids = draw(st.lists(st.uuids(), min_size=1, max_size=8, unique=True))
    nodes = [draw(graph_nodes(node_id)) for node_id in ids]
    # Edges among the nodes, cycles and self-loops included, plus some to missing nodes.
    endpoints = st.sampled_from(ids) | st.uuids()
    edges = draw(
        st.lists(
            st.builds(
                GraphEdge,
                source_id=endpoints,
                target_id=endpoints,
                label=labels,
                is_main=st.booleans(),
                points=st.lists(
                    st.tuples(
                        st.floats(allow_nan=False, allow_infinity=False),
                        st.floats(allow_nan=False, allow_infinity=False),
                    ),
                    max_size=2,
                ),
            ),
            max_size=12,
        )
    )
    created = draw(st.datetimes(min_value=datetime(1900, 1, 1), timezones=timezones))
    return GraphSpec(
        name=draw(text),
        start_node_id=draw(st.sampled_from(ids) | st.uuids()),
        nodes=nodes,
        edges=edges,
        features=draw(text),
        created_at=created,
    )


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_json_round_trip_is_exact(spec: GraphSpec) -> None:
    assert parse_graph_text(dump_graph_text(spec, "json"), "json") == spec


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_yaml_round_trip_is_exact(spec: GraphSpec) -> None:
    assert parse_graph_text(dump_graph_text(spec, "yaml"), "yaml") == spec


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.sampled_from([".json", ".yaml", ".yml"]))
def test_file_round_trip_is_exact(spec: GraphSpec, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"graph{suffix}"
        save_graph(spec, path)
        assert load_graph(path) == spec


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_validation_reports_known_codes_naming_existing_things(spec: GraphSpec) -> None:
    node_ids = {node.id for node in spec.nodes}
    edge_ids = {edge.id for edge in spec.edges}
    issues = validate_graph(spec)
    for issue in issues:
        assert ISSUE_CODES[issue.code] == issue.severity
        assert issue.node_id is None or issue.node_id in node_ids
        assert issue.edge_id is None or issue.edge_id in edge_ids
    severities: list[Any] = [issue.severity for issue in issues]
    assert severities == sorted(severities)  # "error" < "warning": errors come first
    assert (spec.get_node(spec.start_node_id) is None) == (
        "invalid_start_id" in {issue.code for issue in issues}
    )
