"""kombu's Redis transport, screening what it takes off a queue.

kombu decodes each entry BRPOP returns and hands it to the consumer as is: an
entry that is not JSON raises out of the worker's event loop (the worker exits:
``Unrecoverable error: JSONDecodeError``), one without ``properties.delivery_tag``
raises ``KeyError`` in the consumer. Anyone who can write to the broker could
stop every worker with one LPUSH. This transport looks at each entry first: a
malformed one is logged, pushed as it came to ``<queue>.dead`` (a Redis list,
to look at or replay by hand) and skipped; the worker keeps serving.

The hook is redis-py's public ``set_response_callback`` on kombu's BRPOP client
(``Channel.client``); the transport is chosen by Celery's ``broker_transport``
setting (see `CelerySettings.celery_config`). Checked against kombu 5.3-5.7 and
redis-py 5-6; ``tests/qm_dispatch_celery/test_bad_messages.py`` fails if the
screen stops being called.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from kombu.transport import redis
from kombu.utils.objects import cached_property

logger = logging.getLogger("qm_dispatch_celery")

#: The suffix of a queue's dead-letter list.
DEAD_SUFFIX = ".dead"

#: How much of a malformed entry the log quotes.
EXCERPT = 120


def malformed(raw: bytes) -> str | None:
    """Why ``raw`` is no message kombu can deliver, or None when it is one."""
    try:
        message = json.loads(raw)
    except ValueError:  # (UnicodeDecodeError is one)
        return "not JSON"
    if not isinstance(message, dict):
        return "not a JSON object"
    properties = message.get("properties")
    if not isinstance(properties, dict):
        return "no properties"
    if not isinstance(properties.get("delivery_tag"), str):
        return "no delivery tag"
    if not isinstance(properties.get("delivery_info", {}), dict):
        return "delivery_info is not an object"
    if not isinstance(message.get("body", ""), str):
        return "body is not a string"
    return None


class Channel(redis.Channel):
    """A Redis channel whose BRPOP answers are screened before kombu decodes them."""

    @cached_property
    def client(self) -> Any:
        """kombu's BRPOP client, with the screen as its BRPOP answer parser."""
        client = self._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        client.set_response_callback("BRPOP", self.screen)
        return client

    def screen(self, response: Any, **_: Any) -> tuple[bytes, bytes] | None:
        """BRPOP's answer (queue key, entry) if the entry is a message; else
        dead-letter it and answer None (kombu reads that as an empty queue)."""
        if not response:
            return None
        key, raw = response
        reason = malformed(raw)
        if reason is None:
            return key, raw
        name = key.decode() if isinstance(key, bytes) else str(key)
        queue = name.rsplit(self.sep, 1)[0]
        dead = queue + DEAD_SUFFIX
        with self.conn_or_acquire() as client:
            client.lpush(dead, raw)
        logger.error(
            "dropped a malformed message (%s) from queue %r, kept in %r: %r",
            reason,
            queue,
            dead,
            raw[:EXCERPT],
        )
        return None


class Transport(redis.Transport):
    """kombu's Redis transport with the screening `Channel`."""

    Channel = Channel
