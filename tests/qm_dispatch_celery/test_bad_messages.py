"""Malformed entries on the Redis queue: the real workers log and dead-letter them
(``<queue>.dead``) and keep serving, on the same processes."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

import pytest
from celery_support import Fleet
from qm_redis_support import RedisServer

from qm_dispatch_celery.redis_transport import malformed
from quartermaster_engine.testing import chain_graph

GARBAGE = b"\x1b]52;c;not json{"


def _tagless(queue: str) -> bytes:
    """A well-formed ``qm.activation`` message but for its missing delivery tag."""
    body = json.dumps([["00000000-0000-0000-0000-000000000000", "x", 0, 0], {}, {}])
    return json.dumps(
        {
            "body": base64.b64encode(body.encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"lang": "py", "task": "qm.activation", "id": "bad-1"},
            "properties": {
                "body_encoding": "base64",
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": 0,
            },
        }
    ).encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"body": "x"}', "no properties"),
        (b'{"properties": {"delivery_info": {}}}', "no delivery tag"),
        (
            b'{"properties": {"delivery_tag": "t", "delivery_info": 3}}',
            "delivery_info is not an object",
        ),
        (b'{"body": 5, "properties": {"delivery_tag": "t"}}', "body is not a string"),
        (b'{"body": "", "properties": {"delivery_tag": "t", "delivery_info": {}}}', None),
    ],
)
def test_what_is_malformed(raw: bytes, reason: str | None) -> None:
    assert malformed(raw) == reason


def test_malformed_messages_are_dead_lettered_and_the_workers_keep_serving(
    make_fleet: Callable[..., Fleet], redis_server: RedisServer
) -> None:
    fleet = make_fleet()
    workers = fleet.start_workers(2, concurrency=1)
    queue = f"{fleet.prefix}-q"
    broker = redis_server.client()
    tagless = _tagless(queue)
    broker.lpush(queue, GARBAGE)
    broker.lpush(queue, tagless)
    deadline = time.monotonic() + 20
    while broker.llen(f"{queue}.dead") < 2:
        assert time.monotonic() < deadline, "\n".join(log.read_text() for log in fleet.logs)
        time.sleep(0.05)
    assert sorted(broker.lrange(f"{queue}.dead", 0, -1)) == sorted(
        [GARBAGE.decode(), tagless.decode()]
    )  # (a decoding client)
    assert broker.llen(queue) == 0

    started = time.monotonic()
    with fleet.runner(chain_graph(5, "work")) as runner:
        result = runner.run("x")
    assert result.final_output == "n2(n1(n0(x)))"
    assert time.monotonic() - started < 20
    assert all(proc.poll() is None for proc in workers)
    assert {fleet.worker_of(pid) for pid in fleet.pids()} <= {0, 1}
    logs = "".join(log.read_text() for log in fleet.logs)
    assert (
        f"dropped a malformed message (not JSON) from queue {queue!r}, kept in "
        f"'{queue}.dead': {GARBAGE!r}" in logs
    )
    assert f"dropped a malformed message (no delivery tag) from queue {queue!r}" in logs
    assert "Unrecoverable error" not in logs
