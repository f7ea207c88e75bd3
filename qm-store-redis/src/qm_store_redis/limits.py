"""`RedisStore`'s limits of keys: slots and their line, windows of starts and tokens, usage,
waiters (the scripts and key names are in `qm_store_redis.slots`)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence

from qm_store_redis import slots
from qm_store_redis.base import RedisBase, redis_errors
from quartermaster_engine.runner.window_line import LineThenWindow
from quartermaster_engine.stores.records import WindowAsk


class RedisLimits(RedisBase):
    """Slots (`HoldsSlots`), start windows (`LimitsRate`), token windows (`LimitsTokens`),
    key usage (`KeepsKeyUsage`) and waiters (`CountsWaiters`)."""

    # -- concurrency slots (`HoldsSlots`; `qm_store_redis.slots`) -------------------------

    @redis_errors
    async def take_slot(
        self, key: str, holder: str, limit: int, now: float, expires_at: float
    ) -> int:
        """Take a slot of ``key`` in first-come order: 0, else the holder's place in
        the key's line (`HoldsSlots.take_slot`)."""
        client = self._clients.get()
        prefix = self._keys.prefix
        args = (holder, limit, repr(now), repr(expires_at))
        place = int(await self._eval(client, slots.TAKE_SLOT, slots.line_keys(prefix, key), args))
        # Listed once per process (one more round trip the first time only).
        if place == 0 and key not in self._indexed_slots:
            await client.command("SADD", slots.index_key(prefix), key)
            self._indexed_slots.add(key)
        if place and key not in self._indexed_waits:
            await client.command("SADD", slots.wait_index_key(prefix), key)
            self._indexed_waits.add(key)
        return place

    @redis_errors
    async def renew_slot(self, key: str, holder: str, expires_at: float) -> bool:
        """Move the holder's slot's expiry; False if it lapsed."""
        keys = (slots.slot_key(self._keys.prefix, key),)
        kept = await self._eval(self._clients.get(), slots.RENEW, keys, (holder, repr(expires_at)))
        return bool(kept == 1)

    @redis_errors
    async def release_slot(self, key: str, holder: str) -> None:
        """Give the holder's slot up."""
        await self._clients.get().command("ZREM", slots.slot_key(self._keys.prefix, key), holder)

    def releases_slots_in_commit(self) -> bool:
        """Its commit's script gives up `Commit.release_slots` (`ReleasesSlotsInCommit`),
        except on Redis Cluster (``cluster = true``, or a server found in cluster mode
        by a commit), whose scripts may not span the slots' keys."""
        return not self.cluster and self._any_tags is not False

    @redis_errors
    async def take_request(self, key: str, limit: int, per: float, now: float) -> float:
        """Count a start of ``key`` if its window has room (0.0), else the seconds to wait."""
        member = f"{now!r}:{uuid.uuid4().hex[:12]}"
        args = (limit, repr(now), member, repr(now - per), max(1, math.ceil(per * 1000)))
        keys = (slots.rate_key(self._keys.prefix, key),)
        reply = await self._eval(self._clients.get(), slots.TAKE_REQUEST, keys, args)
        oldest = float(reply.decode() if isinstance(reply, bytes) else reply)
        return 0.0 if oldest == 0 else max(0.0, oldest + per - now)

    async def take_request_in_line(self, ask: WindowAsk) -> tuple[int, float]:
        """`take_request` in its line's order (`KeepsWindowLines`): one script."""
        if not await self._spans_tags(self._clients.get()):
            return await LineThenWindow(self, self, self, self).take_request_in_line(ask)
        member = f"{ask.now!r}:{uuid.uuid4().hex[:12]}"
        rate = slots.rate_key(self._keys.prefix, ask.key)
        return await self._window_turn(rate, ask, "r", member, "1")

    async def take_tokens_in_line(self, ask: WindowAsk, leave: bool) -> tuple[int, float]:
        """Room for tokens in the line's order (`KeepsWindowLines`): one script."""
        if not await self._spans_tags(self._clients.get()):
            return await LineThenWindow(self, self, self, self).take_tokens_in_line(ask, leave)
        used = slots.tokens_key(self._keys.prefix, ask.key)
        return await self._window_turn(used, ask, "t", "", "1" if leave else "")

    @redis_errors
    async def _window_turn(
        self, window: str, ask: WindowAsk, mode: str, member: str, leave: str
    ) -> tuple[int, float]:
        """Run WINDOW_TURN (``mode``: "r" starts, "t" tokens) over ``window``."""
        client = self._clients.get()
        prefix = self._keys.prefix
        keys = (*slots.line_keys(prefix, ask.line), window)
        now, per = ask.now, ask.per
        window_args = (mode, ask.limit, repr(now), repr(now - per), max(1, math.ceil(per * 1000)))
        args = (ask.waiter, repr(ask.wall), repr(ask.expires_at), *window_args, member, leave)
        place, score = await self._eval(client, slots.WINDOW_TURN, keys, args)
        if not place:
            return 0, 0.0
        if ask.line not in self._indexed_waits:
            # Listed once per process (one more round trip the first time only).
            await client.command("SADD", slots.wait_index_key(prefix), ask.line)
            self._indexed_waits.add(ask.line)
        at = score.decode() if isinstance(score, bytes) else str(score)
        return int(place), (max(0.0, float(at) + per - now) if at else 0.0)

    @redis_errors
    async def requests_in_window(self, key: str, per: float, now: float) -> int:
        """Starts of ``key`` in the ``per`` seconds before ``now``, of every process."""
        rate = slots.rate_key(self._keys.prefix, key)
        return int(await self._clients.get().command("ZCOUNT", rate, f"({now - per!r}", "+inf"))

    @redis_errors
    async def slots_in_use(self, now: float) -> dict[str, int]:
        """Unexpired slots per key, of every process using this Redis and prefix."""
        return await self._count_unexpired(slots.index_key, slots.slot_key, now)

    async def _count_unexpired(
        self, index: Callable[[str], str], member_set: Callable[[str, str], str], now: float
    ) -> dict[str, int]:
        """Per key listed in the ``index`` set, the members of its sorted set scored
        after ``now`` (keys with none left out)."""
        client = self._clients.get()
        prefix = self._keys.prefix
        counts: dict[str, int] = {}
        for raw in sorted(await client.command("SMEMBERS", index(prefix))):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            members = member_set(prefix, key)
            count = int(await client.command("ZCOUNT", members, f"({now!r}", "+inf"))
            if count:
                counts[key] = count
        return counts

    # -- LLM tokens per limit key in its window (`LimitsTokens`; `qm_store_redis.slots`) ----

    @redis_errors
    async def add_tokens(self, key: str, tokens: int, now: float, per: float) -> None:
        """Count ``tokens`` used by ``key`` at ``now``."""
        keys = (slots.tokens_key(self._keys.prefix, key),)
        args = slots.token_args(tokens, now, per)
        await self._eval(self._clients.get(), slots.ADD_TOKENS, keys, args)

    @redis_errors
    async def tokens_in_window(self, key: str, per: float, now: float) -> list[tuple[float, int]]:
        """``key``'s token counts in the ``per`` seconds before ``now``, oldest first."""
        used = slots.tokens_key(self._keys.prefix, key)
        flat = await self._clients.get().command(
            "ZRANGE", used, f"({now - per!r}", "+inf", "BYSCORE", "WITHSCORES"
        )
        pairs = []
        for member, score in zip(flat[::2], flat[1::2], strict=True):
            text = member.decode() if isinstance(member, bytes) else str(member)
            at = float(score.decode() if isinstance(score, bytes) else score)
            pairs.append((at, int(text.split(":", 1)[0])))
        return pairs

    # -- usage of budget keys across flows (`KeepsKeyUsage`; `qm_store_redis.slots`) -------

    @redis_errors
    async def add_key_usage(self, key: str, node_runs: int, tokens: int, cost: float) -> None:
        """Add to ``key``'s usage across flows."""
        client = self._clients.get()
        prefix = self._keys.prefix
        args = (int(node_runs), int(tokens), repr(float(cost)))
        await self._eval(client, slots.ADD_USAGE, (slots.usage_key(prefix, key),), args)
        if key not in self._indexed_usage:
            # Listed once per process (one more round trip the first time only).
            await client.command("SADD", slots.usage_index_key(prefix), key)
            self._indexed_usage.add(key)

    @redis_errors
    async def keys_usage(self, keys: Sequence[str]) -> list[tuple[int, int, float]]:
        """``(node_runs, tokens, cost)`` of each of ``keys`` (zeros for a key not seen):
        one round trip (a pipeline of HMGETs; on Redis Cluster, one per node)."""
        hashes = [slots.usage_key(self._keys.prefix, key) for key in keys]
        client = self._clients.get()
        if len(hashes) == 1:
            raw = [await client.command("HMGET", hashes[0], "node_runs", "tokens", "cost")]
        else:
            raw = await client.batch([("HMGET", h, "node_runs", "tokens", "cost") for h in hashes])
        return [slots.usage_of(fields) for fields in raw]

    @redis_errors
    async def key_usages(self) -> dict[str, tuple[int, int, float]]:
        """The usage of every budget key with some."""
        index = slots.usage_index_key(self._keys.prefix)
        found: dict[str, tuple[int, int, float]] = {}
        for raw in sorted(await self._clients.get().command("SMEMBERS", index)):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            found[key] = (await self.keys_usage([key]))[0]
        return found

    # -- activations waiting for a limit key (`CountsWaiters`; `qm_store_redis.slots`) ------

    @redis_errors
    async def mark_waiting(self, key: str, waiter: str, now: float, expires_at: float) -> None:
        """Record ``waiter`` as waiting for ``key`` until ``expires_at``."""
        client = self._clients.get()
        prefix = self._keys.prefix
        args = (waiter, repr(now), repr(expires_at))
        await self._eval(client, slots.MARK_WAITING, slots.line_keys(prefix, key)[:3], args)
        if key not in self._indexed_waits:
            # Listed once per process (one more round trip the first time only).
            await client.command("SADD", slots.wait_index_key(prefix), key)
            self._indexed_waits.add(key)

    @redis_errors
    async def unmark_waiting(self, key: str, waiter: str) -> None:
        """The waiter waits no more."""
        keys = slots.line_keys(self._keys.prefix, key)[:3]
        await self._eval(self._clients.get(), slots.UNMARK_WAITING, keys, (waiter,))

    @redis_errors
    async def waiting_counts(self, now: float) -> dict[str, int]:
        """Unexpired waiters per key, of every process using this Redis and prefix."""
        return await self._count_unexpired(slots.wait_index_key, slots.wait_key, now)
