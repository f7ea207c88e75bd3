"""`RedisStore`'s fenced commits (one Lua script each) and flow leases."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from redis.exceptions import NoScriptError

from qm_store_redis import scripts, slots
from qm_store_redis.base import REDIS_ERRORS, redis_errors
from qm_store_redis.codec import activation_field, delivery_line, dumps, event_json, slot_field
from qm_store_redis.keys import COMMIT_KEYS
from qm_store_redis.limits import RedisLimits
from qm_store_redis.wire import LoopClient, pack_command, pack_items
from quartermaster_engine.stores.changes import KEPT_CHANGES, change_to_dict
from quartermaster_engine.stores.records import Commit, Lease

_EVALSHA_COMMIT = pack_items(("EVALSHA", scripts.COMMIT.sha, COMMIT_KEYS))
_EVAL_COMMIT = pack_items(("EVAL", scripts.COMMIT.source, COMMIT_KEYS))


class RedisCommits(RedisLimits):
    """Commits (`DurableStore.commit`, with counts and slots given back) and leases."""

    async def commit(self, flow_id: UUID, commit: Commit) -> None:
        """Apply one activation's outcome: one Lua script, all or nothing, with its
        usage counts and the slots it gives up (COMMIT_COUNTED). On Redis Cluster,
        where the counts' keys live in other slots than the flow's, the counts follow
        the accepted commit (one script per count; a crash between loses them:
        docs/limits.md), and so do the slots' releases."""
        items = _commit_args(commit)
        client = self._clients.get()
        counted = bool(commit.key_usage or commit.key_tokens or commit.release_slots)
        after = counted and not await self._spans_tags(client)
        extra: Sequence[str] = ()
        script, sha_header, eval_header = scripts.COMMIT, _EVALSHA_COMMIT, _EVAL_COMMIT
        if counted and not after:
            prefix = self._keys.prefix
            extra, counts = slots.commit_counts(
                prefix, commit.key_usage, commit.key_tokens, commit.release_slots
            )
            items += counts
            script = scripts.COMMIT_COUNTED
            sha_header = pack_items(("EVALSHA", script.sha, COMMIT_KEYS + len(extra)))
            eval_header = pack_items(("EVAL", script.source, COMMIT_KEYS + len(extra)))
        try:
            if type(client) is LoopClient:
                args = pack_items(items)
                count = 3 + COMMIT_KEYS + len(extra) + len(items)
                keys = self._keys.commit_keys(flow_id)
                if extra:
                    keys += pack_items(extra)
                try:
                    applied = await client.send(pack_command(count, sha_header, keys, args))
                except NoScriptError:
                    applied = await client.send(pack_command(count, eval_header, keys, args))
            else:
                flow_keys = (*self._keys.commit_tuple(flow_id), *extra)
                applied = await self._eval(client, script, flow_keys, items)
        except REDIS_ERRORS as exc:
            raise self._error(exc) from exc
        if applied[0] != 1:
            raise self._refusal(flow_id, applied, commit)
        if after:
            for u in commit.key_usage:
                await self.add_key_usage(u.key, u.node_runs, u.tokens, u.cost)
            for t in commit.key_tokens:
                await self.add_tokens(t.key, t.tokens, t.at, t.per)
            for key, holder in commit.release_slots:
                await self.release_slot(key, holder)

    @redis_errors
    async def acquire_lease(
        self, flow_id: UUID, owner: str, ttl: float, *, take_over: int | None = None
    ) -> Lease:
        reply = await self._eval(
            self._clients.get(),
            scripts.ACQUIRE_LEASE,
            (self._keys.flow(flow_id)[0],),
            (owner, repr(time.time()), repr(ttl), "" if take_over is None else take_over),
        )
        if reply[0] != 1:
            raise self._refusal(flow_id, reply)
        return Lease(owner, int(reply[1]), float(reply[2]))

    @redis_errors
    async def renew_lease(self, flow_id: UUID, epoch: int, ttl: float) -> Lease:
        expires = time.time() + ttl
        reply = await self._eval(
            self._clients.get(),
            scripts.RENEW_LEASE,
            (self._keys.flow(flow_id)[0],),
            (epoch, repr(expires)),
        )
        if reply[0] != 1:
            raise self._refusal(flow_id, reply, epoch=epoch)
        return Lease("", epoch, expires)

    @redis_errors
    async def release_lease(self, flow_id: UUID, epoch: int) -> None:
        await self._eval(
            self._clients.get(), scripts.RELEASE_LEASE, (self._keys.flow(flow_id)[0],), (epoch,)
        )


def _commit_args(commit: Commit) -> list[Any]:
    """The COMMIT script's ARGV (see scripts.COMMIT)."""
    done = commit.done
    rec = commit.record
    args: list[Any] = [
        time.time(),
        "" if commit.epoch is None else commit.epoch,
        "" if done is None else activation_field(done),
        "" if done is None or rec is None else rec.attempt,
        "" if commit.answers is None else activation_field(commit.answers),
    ]
    if rec is None:
        args += ("", "")
    else:
        args += (dumps(rec.to_dict(), f"the record of node {rec.node_id}"), str(rec.node_id))
    memory = commit.memory
    if memory:
        args.append(len(memory))
        for key, value in memory.items():
            args += (key, dumps(value, f"memory value {key!r}"))
    else:
        args.append(0)
    args.append(len(commit.deliveries))
    for delivery in commit.deliveries:
        args += (
            slot_field(delivery.target, delivery.slot),
            str(delivery.edge),
            delivery_line(delivery),
        )
    args.append(len(commit.closed))
    for target, slot in commit.closed:
        args.append(slot_field(target, slot))
    args.append(len(commit.enqueue))
    if commit.enqueue:
        # Queue order survives a reload: values sort by commit time, then position.
        order = time.time_ns()
        for act in commit.enqueue:
            order += 1
            data = dumps(act.to_dict(), f"activation {act!r}")
            args += (activation_field(act.key), b"%d\t%b" % (order, data))
    args.append(len(commit.loop_resets))
    args.extend(str(header) for header in commit.loop_resets)
    args.append(len(commit.loop_exits))
    args.extend(f"{header} {edge}" for header, edge in commit.loop_exits)
    args.append(len(commit.events))
    for event in commit.events:
        args += (event.seq, event_json(event))
    if commit.keep_change:
        args += (dumps(change_to_dict(commit), "the commit's change"), KEPT_CHANGES)
    else:
        args.append("")
    return args
