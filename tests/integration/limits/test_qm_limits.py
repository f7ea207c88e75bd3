"""``qm limits`` (a real ``qm`` process) shows each limited key, its limit, and the
slots every process holds in the shared store; on the memory store it says none are
seen from another process."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from limit_support import qm

from qm_store_sqlite import SQLiteStore

LIMITS = (
    "[limits.'llm:openai:gpt-4o']\nmax_in_flight = 8\n"
    "[limits.'llm:openai:*']\nmax_in_flight = 3\n"
    "[limits.'tenant:*']\nmax_in_flight = 2\n"
    "[limits.'search:api']\nmax_requests = 10\nper = '1m'\n"
    "[limits.'llm:anthropic:opus']\nmax_tokens = 100\nper = '1m'\n"
)


def test_qm_limits_shows_each_keys_limit_and_the_slots_held(tmp_path: Path) -> None:
    (tmp_path / "qm.toml").write_text(
        '[store]\nname = "sqlite"\npath = "flows.db"\n[limits]\nmax_visits = 50\n' + LIMITS
    )

    async def hold() -> None:
        store = SQLiteStore(tmp_path / "flows.db")
        now = time.time()
        for key, holder in [
            ("llm:openai:gpt-4o-mini", "p1"),
            ("llm:openai:gpt-4o-mini", "p2"),
            ("llm:openai:gpt-4o", "p1"),
            ("search:api", "p3"),
            ("tenant:acme", "old"),
        ]:
            lapsed = key == "tenant:acme"  # a killed holder's slot, expired
            until = now - 1 if lapsed else now + 600
            assert await store.take_slot(key, holder, 8, now - 5 if lapsed else now, until) == 0
        for ago in (90.0, 30.0, 1.0):  # one start left the window of a minute
            assert await store.take_request("search:api", 10, 60.0, now - ago) == 0.0
        for ago, tokens in ((90.0, 30), (30.0, 20), (1.0, 5)):  # 30 left the window
            await store.add_tokens("llm:anthropic:opus", tokens, now - ago, 3600.0)
        await store.close()

    asyncio.run(hold())
    shown = qm(tmp_path, "limits", "--json")
    assert shown.returncode == 0, shown.stderr

    def row(key: str, limit: Any, table: Any, held: int) -> dict[str, Any]:
        return {
            "key": key,
            "limit": limit,
            "max_requests": None,
            "max_tokens": None,
            "per": None,
            "table": table,
            "in_flight": held,
            "waiting": 0,
            "started": None,
            "tokens": None,
        }

    rows = [
        row("llm:openai:gpt-4o", 8, "llm:openai:gpt-4o", 1),
        row("llm:openai:gpt-4o-mini", 3, "llm:openai:*", 2),
        {**row("search:api", None, "search:api", 1), "max_requests": 10, "per": 60.0},
        row("tenant:*", 2, "tenant:*", 0),
        {**row("llm:anthropic:opus", None, "llm:anthropic:opus", 0), "max_tokens": 100},
    ]
    rows[2]["started"] = 2  # of the three starts, one left the window
    rows[4].update(per=60.0, tokens=25)
    assert json.loads(shown.stdout) == {"store": "sqlite", "shared": True, "keys": rows}
    text = qm(tmp_path, "limits")
    assert text.returncode == 0, text.stderr
    lines = [" ".join(line.replace("│", " ").split()) for line in text.stdout.splitlines()]
    assert "search:api - 10 / 60 s - search:api 1 0 2 -" in lines
    assert "llm:openai:gpt-4o-mini 3 - - llm:openai:* 2 0 - -" in lines
    assert "llm:anthropic:opus - - 100 / 60 s llm:anthropic:opus 0 0 - 25" in lines


def test_qm_limits_on_the_memory_store_says_slots_are_per_process(tmp_path: Path) -> None:
    (tmp_path / "qm.toml").write_text(LIMITS)
    shown = qm(tmp_path, "limits")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == (
        "the memory store keeps no slots: each process holds its own, and none are seen from here"
    )
    data = json.loads(qm(tmp_path, "limits", "--json").stdout)
    assert data["shared"] is False
    assert [r["in_flight"] for r in data["keys"]] == [0] * 5
    assert [r["waiting"] for r in data["keys"]] == [0] * 5
    assert [r["started"] for r in data["keys"]] == [None] * 5
    assert [r["tokens"] for r in data["keys"]] == [None] * 5
