"""Generated requests from the server's own OpenAPI document (schemathesis): every
answer is a documented status with our JSON error shape, never a 5xx. Bounded
(a few hundred requests in all) so it runs in every CI run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from conftest import sqlite_config
from hypothesis import HealthCheck, given, settings
from qm_server_support import LiveServer, graphs_folder
from schemathesis.openapi import from_url

from qm_server import ServerSettings


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("fuzz")
    server = LiveServer(
        ServerSettings(
            graphs_dir=graphs_folder(tmp / "graphs"),
            config=sqlite_config(tmp),
            allow_inline_graphs=True,
        )
    ).start()
    yield server
    server.stop()


#: Generated requests per operation.
EXAMPLES = 25

#: Every operation of the document; a new endpoint is added here, so it is fuzzed too.
OPERATIONS = {
    "GET /api/health",
    "GET /api/server",
    "GET /api/graphs",
    "GET /api/graphs/{name}",
    "GET /api/flows",
    "POST /api/flows",
    "GET /api/flows/{flow_id}",
    "DELETE /api/flows/{flow_id}",
    "GET /api/flows/{flow_id}/history",
    "GET /api/flows/{flow_id}/events",
    "POST /api/flows/{flow_id}/resume",
    "POST /api/flows/{flow_id}/stop",
    "POST /api/flows/{flow_id}/edit",
    "POST /api/flows/{flow_id}/retry",
    "POST /api/flows/{flow_id}/fork",
}


def test_generated_requests_never_get_a_5xx(fuzzed: LiveServer) -> None:
    schema = from_url(f"{fuzzed.url}/openapi.json")
    sent: Counter[str] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            # A live flow's event stream stays open: each request is bounded.
            try:
                response = case.call(timeout=3)
            except requests.exceptions.ReadTimeout:
                return  # a stream that is still open: not an error
            sent[case.operation.label] += 1
            assert response.status_code < 500, (case.as_curl_command(), response.text)
            if response.status_code >= 400 and response.status_code != 405:
                error = response.json()["error"]
                assert isinstance(error["code"], str), response.text
                assert isinstance(error["message"], str), response.text

        check()
    assert set(sent) == OPERATIONS
    assert sum(sent.values()) > 200
