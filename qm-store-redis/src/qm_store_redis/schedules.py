"""`KeepsSchedules` on Redis: the hash ``<p>:schedules``, schedule name ->
``repr(next tick)<TAB>schedule JSON``.

A tick is claimed by a script that rewrites the field's next tick only if it is
still the one the caller read (compared as text: the caller sends the repr of
the float it parsed from that text, which is the same text). Redis runs one
script at a time, so of any number of clocks claiming one tick one wins."""

from __future__ import annotations

from typing import Any

from qm_store_redis.codec import as_dict, text
from qm_store_redis.scripts import Script
from qm_store_redis.wire import Client
from quartermaster_engine.schedules.model import Schedule
from quartermaster_engine.stores.base import ScheduleExistsError

#: KEYS: the schedules hash. ARGV: name, the tick read, the next tick. 1 if moved.
CLAIM_TICK = Script(
    "claim_schedule_tick",
    r"""
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local tab = string.find(v, '\t', 1, true)
if string.sub(v, 1, tab - 1) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. string.sub(v, tab))
return 1
""",
)


async def add(client: Client, key: str, schedule: Schedule) -> None:
    value = f"{schedule.next_tick!r}\t{schedule.to_json()}"
    if not await client.command("HSETNX", key, schedule.name, value):
        raise ScheduleExistsError(schedule.name)


async def list_all(client: Client, key: str) -> list[Schedule]:
    fields = {text(k): text(v) for k, v in as_dict(await client.command("HGETALL", key)).items()}
    found = []
    for name in sorted(fields):
        tick, _, body = fields[name].partition("\t")
        found.append(Schedule.from_json(body, float(tick)))
    return found


async def remove(client: Client, key: str, name: str) -> bool:
    return bool(await client.command("HDEL", key, name))


async def claim(
    client: Client, key: str, name: str, tick: float, next_tick: float, evaluate: Any
) -> bool:
    moved = await evaluate(client, CLAIM_TICK, (key,), (name, repr(tick), repr(next_tick)))
    return bool(moved)
