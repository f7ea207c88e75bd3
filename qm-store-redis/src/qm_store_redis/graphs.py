"""Graphs of `RedisStore`'s flows: stored once per distinct graph, referenced by flows."""

from __future__ import annotations

import time
from uuid import UUID

from qm_store_redis import scripts
from qm_store_redis.base import RedisBase
from qm_store_redis.wire import Client
from quartermaster_engine.stores.base import StoreError
from quartermaster_graph.models import GraphSpec

#: Parsed graphs kept in memory, by content hash.
_GRAPH_CACHE_SIZE = 32


class RedisGraphs(RedisBase):
    """Stored graphs: references that expire with the last flow, and a parsed cache."""

    async def _ref_graph(
        self,
        client: Client,
        digest: str,
        graph_data: str,
        flow_id: str,
        score: str,
        *,
        remove: bool = False,
    ) -> None:
        """Add (or remove) a flow's reference to a stored graph; the graph expires
        with the last flow using it. The JSON is sent only when Redis lacks it."""
        keys = self._keys.graph(digest)
        mode = "remove" if remove else "add"
        now_ms = str(int(time.time() * 1000))
        args = ["", flow_id, score, now_ms, mode]
        if await self._eval(client, scripts.GRAPH_REF, keys, args) or remove or not graph_data:
            return
        args[0] = graph_data
        await self._eval(client, scripts.GRAPH_REF, keys, args)

    async def _graph(self, client: Client, digest: str, flow_id: UUID) -> GraphSpec:
        graph = self._graphs.get(digest)
        if graph is None:
            data = await client.command("GET", self._keys.graph(digest)[0])
            if data is None:
                raise StoreError(
                    f"the graph of flow {flow_id} ({digest}) is missing from {self.describe()}"
                )
            graph = GraphSpec.model_validate_json(data)
            with self._graphs_lock:  # loops of several threads share the cache
                if len(self._graphs) >= _GRAPH_CACHE_SIZE:
                    self._graphs.pop(next(iter(self._graphs)))
                self._graphs[digest] = graph
        return graph
