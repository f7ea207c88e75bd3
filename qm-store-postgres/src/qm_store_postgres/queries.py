"""The store's SQL, written once per schema name. asyncpg prepares each statement
once per connection and reuses it, so a commit costs one Bind/Execute round trip."""

from __future__ import annotations

from qm_store_postgres.schema import FLOW_TABLES
from quartermaster_engine.stores.records import FlowStatus

TERMINAL = [s.value for s in FlowStatus if s.is_terminal]
#: Flows deleted per transaction by `prune`, so other writers are not held up long.
PRUNE_BATCH = 200

FLOW_COLUMNS = (
    "flow_id, graph_hash, input, status, created_at, updated_at, error, final_output, "
    "event_seq, parent_flow_id, version, lease_owner, lease_epoch, lease_expires"
)
#: How many of a flow row's columns `FLOW_COLUMNS` names (the columns after them
#: in a `load_flow` row are the flow's state).
FLOW_WIDTH = len(FLOW_COLUMNS.split(","))


class Queries:
    """Every statement of the store, for one schema."""

    def __init__(self, s: str) -> None:
        self.commit = f"SELECT {s}.qm_commit({', '.join(f'${i}' for i in range(1, 31))})"
        # A commit with usage counts (`KeepsKeyUsage`, `LimitsTokens`) or slots to give
        # up (`ReleasesSlotsInCommit`): the same arguments, then `codec.count_args`.
        self.commit_counted = (
            f"SELECT {s}.qm_commit_counted({', '.join(f'${i}' for i in range(1, 41))})"
        )
        self.save_record = f"SELECT {s}.qm_save_record($1, $2, $3, $4)"
        self.add_graph = (
            f"INSERT INTO {s}.qm_graphs (hash, spec) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        )
        self.add_flow = (
            f"INSERT INTO {s}.qm_flows ({FLOW_COLUMNS}) "
            f"VALUES ({', '.join(f'${i}' for i in range(1, FLOW_WIDTH + 1))})"
        )
        self.graph = f"SELECT spec FROM {s}.qm_graphs WHERE hash = $1"
        self.get_flow = f"SELECT {FLOW_COLUMNS} FROM {s}.qm_flows WHERE flow_id = $1"
        # One statement: the fence, the status change, its events and, for a
        # terminal status, the end of the queue, joins and loop marks.
        self.update_flow = f"SELECT {s}.qm_update_flow({', '.join(f'${i}' for i in range(1, 12))})"
        self.list_flows = (
            f"SELECT {FLOW_COLUMNS} FROM {s}.qm_flows ORDER BY updated_at DESC LIMIT $1"
        )
        self.list_flows_by_status = (
            f"SELECT {FLOW_COLUMNS} FROM {s}.qm_flows WHERE status = $1 "
            "ORDER BY updated_at DESC LIMIT $2"
        )
        # Paused flows (status index) with a timer due: a queued activation whose
        # not_before (a sleep, a retry, a wait's deadline) is set and passed.
        self.due_timers = (
            "SELECT p.flow_id, min((p.body->>'not_before')::float8) AS due "
            f"FROM {s}.qm_flows f JOIN {s}.qm_pending p ON p.flow_id = f.flow_id "
            "WHERE f.status = 'paused' AND (p.body->>'not_before')::float8 > 0 "
            "AND (p.body->>'not_before')::float8 <= $1 "
            "GROUP BY p.flow_id ORDER BY due LIMIT $2"
        )
        # Each node once, in the status of its latest record.
        self.record_counts = (
            "SELECT flow_id, status, count(*) FROM (SELECT DISTINCT ON (flow_id, node_id) "
            f"flow_id, status FROM {s}.qm_records WHERE flow_id = ANY ($1::uuid[]) "
            "ORDER BY flow_id, node_id, seq DESC) latest GROUP BY flow_id, status"
        )
        # One statement, so one snapshot of the flow.
        self.load_flow = (
            f"SELECT {', '.join('f.' + c.strip() for c in FLOW_COLUMNS.split(','))}, "
            f"(SELECT json_agg(body ORDER BY seq)::text FROM {s}.qm_records "
            "WHERE flow_id = $1 AND seq > $2), "
            f"(SELECT coalesce(max(seq), 0) FROM {s}.qm_records WHERE flow_id = $1), "
            f"(SELECT json_object_agg(key, value)::text FROM {s}.qm_memory WHERE flow_id = $1), "
            f"(SELECT json_agg(body ORDER BY seq)::text FROM {s}.qm_pending WHERE flow_id = $1), "
            "(SELECT json_agg(json_build_array(target, slot, edge, source, source_visit))::text "
            f"FROM {s}.qm_deliveries WHERE flow_id = $1), "
            "(SELECT json_agg(json_build_array(header, edge) ORDER BY header::text, edge::text)"
            f"::text FROM {s}.qm_loop_exits WHERE flow_id = $1) "
            f"FROM {s}.qm_flows f WHERE f.flow_id = $1"
        )
        # One statement, so one snapshot: the flow, then (unless its version is still
        # $2) its records above $3 and its kept changes after version $2.
        self.read_changes = (
            f"SELECT {', '.join('f.' + c.strip() for c in FLOW_COLUMNS.split(','))}, "
            f"(SELECT coalesce(max(seq), 0) FROM {s}.qm_records WHERE flow_id = $1), "
            "CASE WHEN f.version = $2 THEN NULL ELSE "
            f"(SELECT json_agg(body ORDER BY seq)::text FROM {s}.qm_records "
            "WHERE flow_id = $1 AND seq > $3) END, "
            "CASE WHEN f.version = $2 THEN NULL ELSE "
            "(SELECT json_agg(json_build_array(version, body) ORDER BY version)::text "
            f"FROM {s}.qm_changes WHERE flow_id = $1 AND version > $2) END "
            f"FROM {s}.qm_flows f WHERE f.flow_id = $1"
        )
        # Leases: a change reads and locks the flow's row first (a row lock, held to
        # the end of the transaction), so two processes cannot both take it.
        self.lock_lease = (
            f"SELECT status, lease_owner, lease_epoch, lease_expires FROM {s}.qm_flows "
            "WHERE flow_id = $1 FOR NO KEY UPDATE"
        )
        self.set_lease = (
            f"UPDATE {s}.qm_flows SET lease_owner = $2, lease_epoch = $3, lease_expires = $4 "
            "WHERE flow_id = $1"
        )
        # A renewal is one statement; when it changes nothing, `lease_state` says why.
        self.renew_lease = (
            f"UPDATE {s}.qm_flows SET lease_expires = $3 WHERE flow_id = $1 AND lease_epoch = $2 "
            "RETURNING coalesce(lease_owner, '')"
        )
        self.lease_state = (
            f"SELECT status, lease_owner, lease_epoch FROM {s}.qm_flows WHERE flow_id = $1"
        )
        self.release_lease = (
            f"UPDATE {s}.qm_flows SET lease_owner = NULL, lease_expires = 0 "
            "WHERE flow_id = $1 AND lease_epoch = $2"
        )
        self.read_events = (
            "SELECT json_agg(body ORDER BY seq)::text FROM "
            f"(SELECT seq, body FROM {s}.qm_events WHERE flow_id = $1 AND seq > $2 "
            "ORDER BY seq LIMIT $3) AS e"
        )
        self.delete_flow = (
            f"DELETE FROM {s}.qm_flows WHERE flow_id = ANY ($1::uuid[]) RETURNING graph_hash"
        )
        self.delete_rows = [
            f"DELETE FROM {s}.{table} WHERE flow_id = ANY ($1::uuid[])" for table in FLOW_TABLES
        ]
        self.drop_graphs = (
            f"DELETE FROM {s}.qm_graphs g WHERE hash = ANY ($1::text[]) AND NOT EXISTS "
            f"(SELECT 1 FROM {s}.qm_flows f WHERE f.graph_hash = g.hash)"
        )
        # SKIP LOCKED: pruners in several processes share the work, never wait on
        # each other, and never take a flow whose row a commit holds.
        self.prune_batch = (
            f"SELECT flow_id FROM {s}.qm_flows WHERE status = ANY ($1::text[]) "
            f"AND updated_at < $2 LIMIT {PRUNE_BATCH} FOR UPDATE SKIP LOCKED"
        )
        # 0.1.5's per-node methods.
        self.latest_record = (
            f"SELECT body::text FROM {s}.qm_records WHERE flow_id = $1 AND node_id = $2 "
            "ORDER BY seq DESC LIMIT 1"
        )
        self.records = (
            f"SELECT json_agg(body ORDER BY seq)::text FROM {s}.qm_records WHERE flow_id = $1"
        )
        self.set_memory = (
            f"INSERT INTO {s}.qm_memory (flow_id, key, value) VALUES ($1, $2, $3::text::jsonb) "
            "ON CONFLICT (flow_id, key) DO UPDATE SET value = excluded.value"
        )
        self.get_memory = f"SELECT value::text FROM {s}.qm_memory WHERE flow_id = $1 AND key = $2"
        self.all_memory = (
            f"SELECT json_object_agg(key, value)::text FROM {s}.qm_memory WHERE flow_id = $1"
        )
        self.delete_memory = f"DELETE FROM {s}.qm_memory WHERE flow_id = $1 AND key = $2"
        self.set_messages = (
            f"INSERT INTO {s}.qm_messages (flow_id, node_id, after_seq, body) VALUES ($1, $2, "
            f"(SELECT coalesce(max(seq), 0) FROM {s}.qm_records WHERE flow_id = $1), "
            "$3::text::jsonb) ON CONFLICT (flow_id, node_id) "
            "DO UPDATE SET after_seq = excluded.after_seq, body = excluded.body"
        )
        # The saved history, and whether it still stands (no record of the node after it).
        self.saved_messages = (
            "SELECT body::text, after_seq >= (SELECT coalesce(max(seq), 0) FROM "
            f"{s}.qm_records r WHERE r.flow_id = $1 AND r.node_id = $2) "
            f"FROM {s}.qm_messages WHERE flow_id = $1 AND node_id = $2"
        )
        # Concurrency slots per limit key (`HoldsSlots`).
        self.slot_take = f"SELECT {s}.qm_take_slot($1, $2, $3, $4, $5)"
        self.slot_renew = (
            f"UPDATE {s}.qm_slots SET expires_at = $3 WHERE key = $1 AND holder = $2 RETURNING true"
        )
        self.take_request = f"SELECT {s}.qm_take_request($1, $2, $3, $4)"
        self.request_in_line = f"SELECT {s}.qm_take_request_in_line($1, $2, $3, $4, $5, $6, $7, $8)"
        self.tokens_in_line = (
            f"SELECT {s}.qm_take_tokens_in_line($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        )
        self.requests_in_window = f"SELECT count(*) FROM {s}.qm_requests WHERE key = $1 AND at > $2"
        self.slot_release = f"DELETE FROM {s}.qm_slots WHERE key = $1 AND holder = $2"
        self.slots_in_use = (
            f"SELECT key, count(*) FROM {s}.qm_slots WHERE expires_at > $1 "
            "GROUP BY key ORDER BY key"
        )
        # LLM tokens per limit key in its window (`LimitsTokens`).
        self.tokens_add = (
            f"WITH gone AS (DELETE FROM {s}.qm_tokens WHERE key = $1 AND at <= $4) "
            f"INSERT INTO {s}.qm_tokens (key, at, tokens) VALUES ($1, $2, $3)"
        )
        self.tokens_in_window = (
            f"SELECT at, tokens FROM {s}.qm_tokens WHERE key = $1 AND at > $2 ORDER BY at"
        )
        # Usage of budget keys across flows (`KeepsKeyUsage`).
        self.usage_add = (
            f"INSERT INTO {s}.qm_key_usage AS u (key, node_runs, tokens, cost) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO UPDATE SET "
            "node_runs = u.node_runs + excluded.node_runs, tokens = u.tokens + excluded.tokens, "
            "cost = u.cost + excluded.cost"
        )
        self.usage_of = (
            f"SELECT key, node_runs, tokens, cost FROM {s}.qm_key_usage WHERE key = ANY ($1)"
        )
        self.usages = f"SELECT key, node_runs, tokens, cost FROM {s}.qm_key_usage ORDER BY key"
        # Activations waiting for a limit key (`CountsWaiters`): one statement drops
        # the key's expired waiters and records this one.
        self.wait_mark = (
            f"WITH gone AS (DELETE FROM {s}.qm_waiters WHERE key = $1 AND expires_at <= $3 "
            f"AND waiter <> $2) INSERT INTO {s}.qm_waiters (key, waiter, expires_at) "
            "VALUES ($1, $2, $4) ON CONFLICT (key, waiter) DO UPDATE SET expires_at = $4"
        )
        self.wait_unmark = f"DELETE FROM {s}.qm_waiters WHERE key = $1 AND waiter = $2"
        self.waiting_counts = (
            f"SELECT key, count(*) FROM {s}.qm_waiters WHERE expires_at > $1 "
            "GROUP BY key ORDER BY key"
        )
        # Per-agent memory.
        self.agent_read = f"SELECT value FROM {s}.qm_agent_memory WHERE agent_id = $1 AND key = $2"
        self.agent_write = (
            f"INSERT INTO {s}.qm_agent_memory (agent_id, key, value, created_at, updated_at) "
            "VALUES ($1, $2, $3, $4, $4) ON CONFLICT (agent_id, key) DO UPDATE SET "
            "value = excluded.value, created_at = excluded.created_at, "
            "updated_at = excluded.updated_at, metadata = NULL"
        )
        self.agent_update = (
            f"INSERT INTO {s}.qm_agent_memory (agent_id, key, value, created_at, updated_at) "
            "VALUES ($1, $2, $3, $4, $4) ON CONFLICT (agent_id, key) DO UPDATE SET "
            "value = excluded.value, updated_at = excluded.updated_at"
        )
        self.agent_delete = f"DELETE FROM {s}.qm_agent_memory WHERE agent_id = $1 AND key = $2"
        self.agent_entries = (
            "SELECT key, value, created_at, updated_at, metadata::text "
            f"FROM {s}.qm_agent_memory WHERE agent_id = $1 ORDER BY created_at, key"
        )
