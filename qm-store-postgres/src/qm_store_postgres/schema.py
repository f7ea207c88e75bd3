"""The database schema, its version record and its migrations.

Everything lives in one PostgreSQL schema (``schema_name``, default
``quartermaster``), so several stores can share a database and nothing of
another application's is touched. The version lives in ``qm_meta`` under
``schema_version``. ``MIGRATIONS[i]`` takes a schema from version ``i`` to
``i + 1``; version 0 is a schema without our tables. A schema whose version is
newer than `SCHEMA_VERSION` is refused before anything is written. Opening runs
under a transaction-scoped advisory lock, so processes starting together
migrate once.

Layout, for one flow:

- ``qm_flows``: one row per flow; its graph is a ``graph_hash`` into ``qm_graphs``
  (each distinct graph once, kept while a flow uses it: a foreign key).
  Indexed by ``updated_at`` and by ``(status, updated_at)`` for listing and pruning.
- ``qm_records``: every activation record as JSONB, numbered in commit order
  (``seq``); one row per node run, never a growing blob.
- ``qm_memory``: flow memory, a JSONB value per key; ``qm_messages``: histories
  saved explicitly (0.1.5's ``save_messages``), standing until a record of the
  node is committed after them (``after_seq``).
- ``qm_pending``, ``qm_deliveries``, ``qm_loop_exits``: the queue and the join and
  loop state a recovering process needs; dropped when the flow ends.
- ``qm_changes``: the frontier change of each of the flow's last 256 commits
  that keep theirs, by the flow's ``version`` (`ReadsChanges`: what a worker
  reads to catch up instead of the queue and joins); dropped when the flow ends.
- ``qm_agent_memory``: per-agent persistent memory (not tied to a flow).
- ``qm_events``: the flow's event log (every event but tokens), by sequence number.
- ``qm_slots``: concurrency slots per limit key until ``expires_at`` (not tied to a
  flow), taken by ``qm_take_slot`` in first-come order; ``qm_requests``: the starts of each limit
  key in its window, counted by ``qm_take_request``; ``qm_tokens``: the LLM
  tokens of each limit key in its window; ``qm_waiters``: the activations
  waiting for a limit key, until ``expires_at``; ``qm_key_usage``: the node
  runs, tokens and cost of each budget key across flows. A window's checks keep its
  line (``qm_take_request_in_line``, ``qm_take_tokens_in_line``; version 5).

``qm_flows`` also holds the flow's ``version`` (commits so far) and the lease of
the process driving it (``lease_owner``, ``lease_epoch``, ``lease_expires``).

Every per-flow table leads its primary key with ``flow_id``.

A node's commit is one call of the ``qm_commit`` function, a status change one
of ``qm_update_flow``: one statement, one transaction, one round trip each.
Their first statement reads and locks the flow's row; that is where the fencing
preconditions are checked (see `qm_store_postgres.refusals`), before anything
is written, so a refused call writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

SCHEMA_VERSION = 5

# The part of a node commit both versions of qm_commit apply the same way:
# record, memory, join deliveries and closed slots, the queue, loop marks.
_APPLY = """
    IF p_record IS NOT NULL THEN
        INSERT INTO {s}.qm_records (flow_id, seq, node_id, status, body)
        SELECT p_flow, coalesce(max(seq), 0) + 1, p_rec_node, p_rec_status, p_record
          FROM {s}.qm_records WHERE flow_id = p_flow;
    END IF;
    IF p_mem_keys IS NOT NULL THEN
        INSERT INTO {s}.qm_memory (flow_id, key, value)
        SELECT p_flow, k, v FROM unnest(p_mem_keys, p_mem_values) AS m(k, v)
        ON CONFLICT (flow_id, key) DO UPDATE SET value = excluded.value;
    END IF;
    IF p_del_target IS NOT NULL THEN
        -- A repeated delivery of an edge counts once (the last one stands).
        INSERT INTO {s}.qm_deliveries (flow_id, target, slot, edge, source, source_visit)
        SELECT DISTINCT ON (t, sl, e) p_flow, t, sl, e, src, v
          FROM unnest(p_del_target, p_del_slot, p_del_edge, p_del_source, p_del_visit)
               WITH ORDINALITY AS d(t, sl, e, src, v, n)
         ORDER BY t, sl, e, n DESC
        ON CONFLICT (flow_id, target, slot, edge)
        DO UPDATE SET source = excluded.source, source_visit = excluded.source_visit;
    END IF;
    IF p_closed_target IS NOT NULL THEN
        DELETE FROM {s}.qm_deliveries AS d
         USING unnest(p_closed_target, p_closed_slot) AS c(t, sl)
         WHERE d.flow_id = p_flow AND d.target = c.t AND d.slot = c.sl;
    END IF;
    IF cardinality(p_enq_node) = 1 THEN  -- the usual case, without unnest
        INSERT INTO {s}.qm_pending (flow_id, node_id, visit, seq, body)
        VALUES (p_flow, p_enq_node[1], p_enq_visit[1], p_enq_seq[1], p_enq_body[1])
        ON CONFLICT (flow_id, node_id, visit)
        DO UPDATE SET seq = excluded.seq, body = excluded.body;
    ELSIF p_enq_node IS NOT NULL THEN
        INSERT INTO {s}.qm_pending (flow_id, node_id, visit, seq, body)
        SELECT DISTINCT ON (nd, vi) p_flow, nd, vi, sq, b
          FROM unnest(p_enq_node, p_enq_visit, p_enq_seq, p_enq_body)
               WITH ORDINALITY AS q(nd, vi, sq, b, n)
         ORDER BY nd, vi, n DESC
        ON CONFLICT (flow_id, node_id, visit)
        DO UPDATE SET seq = excluded.seq, body = excluded.body;
    END IF;
    IF p_resets IS NOT NULL THEN
        DELETE FROM {s}.qm_loop_exits WHERE flow_id = p_flow AND header = ANY (p_resets);
    END IF;
    IF p_exit_header IS NOT NULL THEN
        INSERT INTO {s}.qm_loop_exits (flow_id, header, edge)
        SELECT p_flow, h, e FROM unnest(p_exit_header, p_exit_edge) AS x(h, e)
        ON CONFLICT DO NOTHING;
    END IF;
"""

# The parameters of version 2's qm_commit, which qm_commit_counted (version 3) takes too.
_COMMIT_PARAMS = """
    p_flow uuid, p_touch double precision, p_epoch bigint,
    p_done_node uuid, p_done_visit integer, p_done_attempt integer,
    p_answer_node uuid, p_answer_visit integer,
    p_rec_node uuid, p_rec_status text, p_record jsonb,
    p_mem_keys text[], p_mem_values jsonb[],
    p_del_target uuid[], p_del_slot integer[], p_del_edge uuid[],
    p_del_source uuid[], p_del_visit integer[],
    p_closed_target uuid[], p_closed_slot integer[],
    p_enq_node uuid[], p_enq_visit integer[], p_enq_seq bigint[], p_enq_body jsonb[],
    p_resets uuid[], p_exit_header uuid[], p_exit_edge uuid[],
    p_ev_seq bigint[], p_ev_body jsonb[]
""".strip("\n")

_V1 = """
CREATE TABLE {s}.qm_graphs (
    hash text PRIMARY KEY,
    spec text NOT NULL
);

CREATE TABLE {s}.qm_flows (
    flow_id        uuid PRIMARY KEY,
    graph_hash     text NOT NULL REFERENCES {s}.qm_graphs (hash),
    input          text NOT NULL,
    status         text NOT NULL,
    created_at     double precision NOT NULL,
    updated_at     double precision NOT NULL,
    error          text,
    final_output   text,
    event_seq      bigint NOT NULL,
    parent_flow_id uuid
);
CREATE INDEX qm_flows_by_updated ON {s}.qm_flows (updated_at);
CREATE INDEX qm_flows_by_status ON {s}.qm_flows (status, updated_at);
CREATE INDEX qm_flows_by_graph ON {s}.qm_flows (graph_hash);

CREATE TABLE {s}.qm_records (
    flow_id uuid NOT NULL,
    seq     integer NOT NULL,
    node_id uuid NOT NULL,
    status  text NOT NULL,
    body    jsonb NOT NULL,
    PRIMARY KEY (flow_id, seq)
);

CREATE TABLE {s}.qm_memory (
    flow_id uuid NOT NULL,
    key     text NOT NULL,
    value   jsonb NOT NULL,
    PRIMARY KEY (flow_id, key)
);

CREATE TABLE {s}.qm_messages (
    flow_id   uuid NOT NULL,
    node_id   uuid NOT NULL,
    after_seq integer NOT NULL,
    body      jsonb NOT NULL,
    PRIMARY KEY (flow_id, node_id)
);

CREATE TABLE {s}.qm_pending (
    flow_id uuid NOT NULL,
    node_id uuid NOT NULL,
    visit   integer NOT NULL,
    seq     bigint NOT NULL,
    body    jsonb NOT NULL,
    PRIMARY KEY (flow_id, node_id, visit)
);

CREATE TABLE {s}.qm_deliveries (
    flow_id      uuid NOT NULL,
    target       uuid NOT NULL,
    slot         integer NOT NULL,
    edge         uuid NOT NULL,
    source       uuid,
    source_visit integer NOT NULL,
    PRIMARY KEY (flow_id, target, slot, edge)
);

CREATE TABLE {s}.qm_loop_exits (
    flow_id uuid NOT NULL,
    header  uuid NOT NULL,
    edge    uuid NOT NULL,
    PRIMARY KEY (flow_id, header, edge)
);

CREATE TABLE {s}.qm_agent_memory (
    agent_id   uuid NOT NULL,
    key        text NOT NULL,
    value      text NOT NULL,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    metadata   jsonb,
    PRIMARY KEY (agent_id, key)
);

-- One activation's outcome, in the order `Commit` documents. Empty parts are NULL.
CREATE FUNCTION {s}.qm_commit(
    p_flow uuid, p_touch double precision,
    p_done_node uuid, p_done_visit integer,
    p_rec_node uuid, p_rec_status text, p_record jsonb,
    p_mem_keys text[], p_mem_values jsonb[],
    p_del_target uuid[], p_del_slot integer[], p_del_edge uuid[],
    p_del_source uuid[], p_del_visit integer[],
    p_closed_target uuid[], p_closed_slot integer[],
    p_enq_node uuid[], p_enq_visit integer[], p_enq_seq bigint[], p_enq_body jsonb[],
    p_resets uuid[], p_exit_header uuid[], p_exit_edge uuid[]
) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    -- The precondition check, in one place: the flow exists (a commit to a deleted
    -- flow changes nothing). KEY SHARE holds off a concurrent delete of the flow
    -- until this transaction ends, without writing a new row version; commits of
    -- one flow are ordered by the process driving it. A fencing check (the epoch
    -- of the caller's lease) belongs in this statement.
    IF p_touch IS NULL THEN
        PERFORM 1 FROM {s}.qm_flows WHERE flow_id = p_flow FOR KEY SHARE;
    ELSE
        UPDATE {s}.qm_flows SET updated_at = p_touch WHERE flow_id = p_flow;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no flow %', p_flow USING ERRCODE = 'QM404';
    END IF;
    IF p_done_node IS NOT NULL THEN
        DELETE FROM {s}.qm_pending
         WHERE flow_id = p_flow AND node_id = p_done_node AND visit = p_done_visit;
    END IF;
{apply}END
$fn$;

-- 0.1.5's save_node_execution: a record that, unlike a committed one, leaves a
-- history saved with save_messages standing.
CREATE FUNCTION {s}.qm_save_record(
    p_flow uuid, p_node uuid, p_status text, p_record jsonb
) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    v_seq integer;
BEGIN
    PERFORM 1 FROM {s}.qm_flows WHERE flow_id = p_flow FOR NO KEY UPDATE;
    SELECT coalesce(max(seq), 0) + 1 INTO v_seq FROM {s}.qm_records WHERE flow_id = p_flow;
    INSERT INTO {s}.qm_records (flow_id, seq, node_id, status, body)
    VALUES (p_flow, v_seq, p_node, p_status, p_record);
    UPDATE {s}.qm_messages SET after_seq = v_seq
     WHERE flow_id = p_flow AND node_id = p_node AND after_seq >= (
        SELECT coalesce(max(seq), 0) FROM {s}.qm_records
         WHERE flow_id = p_flow AND node_id = p_node AND seq < v_seq);
END
$fn$;
"""

# Version 2: fencing (a commit counter and the driver's lease on each flow), the
# durable event log, and commits and status updates that check both.
_V2 = """
ALTER TABLE {s}.qm_flows
    ADD COLUMN version       bigint NOT NULL DEFAULT 0,
    ADD COLUMN lease_owner   text,
    ADD COLUMN lease_epoch   bigint NOT NULL DEFAULT 0,
    ADD COLUMN lease_expires double precision NOT NULL DEFAULT 0;

CREATE TABLE {s}.qm_events (
    flow_id uuid NOT NULL,
    seq     bigint NOT NULL,
    body    jsonb NOT NULL,
    PRIMARY KEY (flow_id, seq)
);

DROP FUNCTION {s}.qm_commit(
    uuid, double precision, uuid, integer, uuid, text, jsonb, text[], jsonb[],
    uuid[], integer[], uuid[], uuid[], integer[], uuid[], integer[],
    uuid[], integer[], bigint[], jsonb[], uuid[], uuid[], uuid[]
);

-- The fence both functions check, on the flow's row (locked until the
-- transaction ends): NULL when the write may go on, else the refusal
-- {code, status, lease epoch, lease owner}: '0' no flow, '-1' the flow has
-- ended, '-2' the epoch is stale. Locking the row also orders the check
-- before any other writer's change to the lease.
CREATE FUNCTION {s}.qm_fence(p_flow uuid, p_epoch bigint, p_ending boolean)
RETURNS text[] LANGUAGE plpgsql AS $fn$
DECLARE
    v_status text;
    v_epoch bigint;
    v_owner text;
BEGIN
    SELECT status, lease_epoch, lease_owner INTO v_status, v_epoch, v_owner
      FROM {s}.qm_flows WHERE flow_id = p_flow FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN ARRAY['0'];
    END IF;
    IF p_ending AND v_status IN ('completed', 'failed', 'stopped') THEN
        RETURN ARRAY['-1', v_status, v_epoch::text, v_owner];
    END IF;
    IF p_epoch IS NOT NULL AND p_epoch <> v_epoch THEN
        RETURN ARRAY['-2', v_status, v_epoch::text, v_owner];
    END IF;
    RETURN NULL;
END
$fn$;

-- One activation's outcome, in the order `Commit` documents, after its checks.
-- Empty parts are NULL. Returns NULL when applied, else a refusal: a fence one
-- (see qm_fence), {'-3'} when done is not pending (with that attempt), {'-4'}
-- when the answered activation is not waiting. Every check comes before the
-- first write, so a refusal writes nothing.
CREATE FUNCTION {s}.qm_commit(
{commit_params}
) RETURNS text[] LANGUAGE plpgsql AS $fn$
DECLARE
    v_refused text[];
BEGIN
    v_refused := {s}.qm_fence(p_flow, p_epoch, true);
    IF v_refused IS NOT NULL THEN
        RETURN v_refused;
    END IF;
    IF p_answer_node IS NOT NULL THEN
        PERFORM 1 FROM {s}.qm_pending
         WHERE flow_id = p_flow AND node_id = p_answer_node AND visit = p_answer_visit
           AND (body->>'waiting')::boolean;
        IF NOT FOUND THEN
            RETURN ARRAY['-4'];
        END IF;
    END IF;
    -- The first write: removing done checks that it was pending.
    IF p_done_node IS NOT NULL THEN
        DELETE FROM {s}.qm_pending
         WHERE flow_id = p_flow AND node_id = p_done_node AND visit = p_done_visit
           AND (p_done_attempt IS NULL OR (body->>'attempt')::integer = p_done_attempt);
        IF NOT FOUND THEN
            RETURN ARRAY['-3'];
        END IF;
    END IF;
    UPDATE {s}.qm_flows
       SET version = version + 1,
           event_seq = coalesce(p_ev_seq[cardinality(p_ev_seq)], event_seq),
           updated_at = coalesce(p_touch, updated_at)
     WHERE flow_id = p_flow;
{apply}    IF p_ev_seq IS NOT NULL THEN
        INSERT INTO {s}.qm_events (flow_id, seq, body)
        SELECT p_flow, q, b FROM unnest(p_ev_seq, p_ev_body) AS ev(q, b);
    END IF;
    RETURN NULL;
END
$fn$;

-- A status change (under the lease of p_epoch, when given), the events it logs,
-- and for a terminal status the end of the queue, joins and loop marks. Returns
-- NULL when applied, else a fence refusal (see qm_fence).
CREATE FUNCTION {s}.qm_update_flow(
    p_flow uuid, p_status text, p_updated double precision, p_error text,
    p_output text, p_event_seq bigint, p_terminal boolean, p_epoch bigint,
    p_release boolean, p_ev_seq bigint[], p_ev_body jsonb[]
) RETURNS text[] LANGUAGE plpgsql AS $fn$
DECLARE
    v_refused text[];
BEGIN
    v_refused := {s}.qm_fence(p_flow, p_epoch, p_epoch IS NOT NULL);
    IF v_refused IS NOT NULL THEN
        RETURN v_refused;
    END IF;
    UPDATE {s}.qm_flows
       SET status = p_status, updated_at = p_updated, error = p_error,
           final_output = p_output, event_seq = p_event_seq,
           lease_owner = CASE WHEN p_release THEN NULL ELSE lease_owner END,
           lease_expires = CASE WHEN p_release THEN 0 ELSE lease_expires END
     WHERE flow_id = p_flow;
    IF p_ev_seq IS NOT NULL THEN
        INSERT INTO {s}.qm_events (flow_id, seq, body)
        SELECT p_flow, q, b FROM unnest(p_ev_seq, p_ev_body) AS ev(q, b);
    END IF;
    IF p_terminal THEN
        DELETE FROM {s}.qm_pending WHERE flow_id = p_flow;
        DELETE FROM {s}.qm_deliveries WHERE flow_id = p_flow;
        DELETE FROM {s}.qm_loop_exits WHERE flow_id = p_flow;
    END IF;
    RETURN NULL;
END
$fn$;
"""

#: Every table of the schema; the per-flow ones are listed in `FLOW_TABLES`.
TABLES = (
    "qm_meta",
    "qm_graphs",
    "qm_flows",
    "qm_records",
    "qm_memory",
    "qm_messages",
    "qm_pending",
    "qm_deliveries",
    "qm_loop_exits",
    "qm_agent_memory",
    "qm_events",
    "qm_slots",
    "qm_requests",
    "qm_waiters",
    "qm_tokens",
    "qm_key_usage",
    "qm_schedules",
    "qm_changes",
)
FLOW_TABLES = (
    "qm_records",
    "qm_memory",
    "qm_messages",
    "qm_pending",
    "qm_deliveries",
    "qm_loop_exits",
    "qm_events",
    "qm_changes",
)


def _v1(schema: str) -> str:
    return _V1.replace("{apply}", _APPLY.strip("\n") + "\n").replace("{s}", schema)


def _v2(schema: str) -> str:
    sql = _V2.replace("{apply}", _APPLY.strip("\n") + "\n")
    return sql.replace("{commit_params}", _COMMIT_PARAMS).replace("{s}", schema)


# Version 3: concurrency slots per limit key (`HoldsSlots`: a slot is taken by one
# call of qm_take_slot, which serialises the takers of one key with an advisory
# lock and gives them slots in the order of their tickets from qm_waiter_tickets),
# starts and tokens per window (`LimitsRate`, `LimitsTokens`), usage per budget key
# (`KeepsKeyUsage`), counted with each commit by qm_commit_counted, waiters
# (`CountsWaiters`), and
# schedules (`KeepsSchedules`: the schedule as JSON text, its next tick in a column
# of its own for the compare-and-set that claims a tick).
_V3 = """
CREATE TABLE {s}.qm_slots (
    key        text NOT NULL,
    holder     text NOT NULL,
    expires_at double precision NOT NULL,
    PRIMARY KEY (key, holder)
);

-- A slot of p_key for p_holder in first-come order (`HoldsSlots.take_slot`): 0 if
-- taken, else the holder's place in the key's line (its waiters with a ticket).
CREATE FUNCTION {s}.qm_take_slot(
    p_key text, p_holder text, p_limit integer, p_now double precision,
    p_expires double precision
) RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
    v_ticket bigint;
    v_ahead integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('{s}.qm_slots ' || p_key));
    DELETE FROM {s}.qm_slots WHERE key = p_key AND expires_at <= p_now;
    DELETE FROM {s}.qm_waiters WHERE key = p_key AND expires_at <= p_now;
    UPDATE {s}.qm_slots SET expires_at = p_expires WHERE key = p_key AND holder = p_holder;
    IF FOUND THEN
        RETURN 0;
    END IF;
    SELECT ticket INTO v_ticket FROM {s}.qm_waiters
     WHERE key = p_key AND waiter = p_holder AND ticket IS NOT NULL;
    SELECT count(*) INTO v_ahead FROM {s}.qm_waiters
     WHERE key = p_key AND ticket IS NOT NULL AND (v_ticket IS NULL OR ticket < v_ticket);
    IF (SELECT count(*) FROM {s}.qm_slots WHERE key = p_key) + v_ahead < p_limit THEN
        DELETE FROM {s}.qm_waiters WHERE key = p_key AND waiter = p_holder;
        INSERT INTO {s}.qm_slots (key, holder, expires_at) VALUES (p_key, p_holder, p_expires);
        RETURN 0;
    END IF;
    INSERT INTO {s}.qm_waiters (key, waiter, expires_at, ticket)
    VALUES (p_key, p_holder, p_expires, nextval('{s}.qm_waiter_tickets'))
    ON CONFLICT (key, waiter) DO UPDATE
       SET expires_at = p_expires,
           ticket = coalesce({s}.qm_waiters.ticket, excluded.ticket);
    RETURN v_ahead + 1;
END
$fn$;

CREATE TABLE {s}.qm_requests (
    key text NOT NULL,
    at  double precision NOT NULL
);
CREATE INDEX qm_requests_by_key ON {s}.qm_requests (key, at);

-- A start of p_key counted if its window has room (returns 0), else the time of
-- the oldest start in the window.
CREATE FUNCTION {s}.qm_take_request(
    p_key text, p_limit integer, p_per double precision, p_now double precision
) RETURNS double precision LANGUAGE plpgsql AS $fn$
DECLARE
    v_count bigint;
    v_oldest double precision;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('{s}.qm_requests ' || p_key));
    DELETE FROM {s}.qm_requests WHERE key = p_key AND at <= p_now - p_per;
    SELECT count(*), min(at) INTO v_count, v_oldest FROM {s}.qm_requests WHERE key = p_key;
    IF v_count < p_limit THEN
        INSERT INTO {s}.qm_requests (key, at) VALUES (p_key, p_now);
        RETURN 0;
    END IF;
    RETURN v_oldest;
END
$fn$;

CREATE TABLE {s}.qm_tokens (
    key    text NOT NULL,
    at     double precision NOT NULL,
    tokens bigint NOT NULL
);
CREATE INDEX qm_tokens_by_key ON {s}.qm_tokens (key, at);

CREATE TABLE {s}.qm_key_usage (
    key       text PRIMARY KEY,
    node_runs bigint NOT NULL,
    tokens    bigint NOT NULL,
    cost      double precision NOT NULL
);

-- A node commit (qm_commit) and, when it is applied, its usage counts in the same
-- transaction: each budget key's totals (`KeepsKeyUsage`) and each limit key's
-- tokens in its window (`LimitsTokens`), dropping the counts no window asks for.
-- Returns what qm_commit returns; a refused commit counts nothing.
CREATE FUNCTION {s}.qm_commit_counted(
{commit_params},
    p_use_keys text[], p_use_runs bigint[], p_use_tokens bigint[],
    p_use_cost double precision[],
    p_tok_keys text[], p_tok_counts bigint[], p_tok_at double precision[],
    p_tok_per double precision[]
) RETURNS text[] LANGUAGE plpgsql AS $fn$
DECLARE
    v_refused text[];
BEGIN
    v_refused := {s}.qm_commit(
        p_flow, p_touch, p_epoch, p_done_node, p_done_visit, p_done_attempt,
        p_answer_node, p_answer_visit, p_rec_node, p_rec_status, p_record,
        p_mem_keys, p_mem_values, p_del_target, p_del_slot, p_del_edge,
        p_del_source, p_del_visit, p_closed_target, p_closed_slot,
        p_enq_node, p_enq_visit, p_enq_seq, p_enq_body,
        p_resets, p_exit_header, p_exit_edge, p_ev_seq, p_ev_body
    );
    IF v_refused IS NOT NULL THEN
        RETURN v_refused;
    END IF;
    IF p_use_keys IS NOT NULL THEN
        INSERT INTO {s}.qm_key_usage AS u (key, node_runs, tokens, cost)
        SELECT k, sum(r), sum(t), sum(c)
          FROM unnest(p_use_keys, p_use_runs, p_use_tokens, p_use_cost) AS x(k, r, t, c)
         GROUP BY k
        ON CONFLICT (key) DO UPDATE SET
            node_runs = u.node_runs + excluded.node_runs,
            tokens = u.tokens + excluded.tokens,
            cost = u.cost + excluded.cost;
    END IF;
    IF p_tok_keys IS NOT NULL THEN
        DELETE FROM {s}.qm_tokens AS o
         USING unnest(p_tok_keys, p_tok_at, p_tok_per) AS x(k, a, pe)
         WHERE o.key = x.k AND o.at <= x.a - x.pe;
        INSERT INTO {s}.qm_tokens (key, at, tokens)
        SELECT k, a, n FROM unnest(p_tok_keys, p_tok_at, p_tok_counts) AS x(k, a, n);
    END IF;
    RETURN NULL;
END
$fn$;

CREATE TABLE {s}.qm_waiters (
    key        text NOT NULL,
    waiter     text NOT NULL,
    expires_at double precision NOT NULL,
    ticket     bigint,
    PRIMARY KEY (key, waiter)
);
CREATE SEQUENCE {s}.qm_waiter_tickets;

CREATE TABLE {s}.qm_schedules (
    name      text PRIMARY KEY,
    next_tick double precision NOT NULL,
    body      text NOT NULL
);
"""


def _v3(schema: str) -> str:
    return _V3.replace("{commit_params}", _COMMIT_PARAMS).replace("{s}", schema)


# Version 4: the frontier change of the latest commits that keep theirs
# (`ReadsChanges`; `quartermaster_engine.stores.changes`), by the flow's version,
# written by qm_commit (a new last parameter, p_change; NULL: none kept) and
# dropped with the queue when the flow ends; loop exits apply before loop resets,
# as `Commit` documents (a reset ends the run the exits belonged to); the commit's
# slots given up by qm_commit_counted (`_RELEASE_V4`).
_APPLY_V4 = (
    _APPLY.replace(
        """    IF p_resets IS NOT NULL THEN
        DELETE FROM {s}.qm_loop_exits WHERE flow_id = p_flow AND header = ANY (p_resets);
    END IF;
""",
        "",
    ).rstrip("\n")
    + """
    IF p_resets IS NOT NULL THEN
        DELETE FROM {s}.qm_loop_exits WHERE flow_id = p_flow AND header = ANY (p_resets);
    END IF;
    IF p_change IS NOT NULL THEN
        INSERT INTO {s}.qm_changes (flow_id, version, body)
        SELECT p_flow, version, p_change FROM {s}.qm_flows WHERE flow_id = p_flow;
        DELETE FROM {s}.qm_changes
         WHERE flow_id = p_flow
           AND version <= (SELECT version FROM {s}.qm_flows WHERE flow_id = p_flow) - 256;
    END IF;
"""
)
_COMMIT_V2 = _V2[_V2.index("CREATE FUNCTION {s}.qm_commit(") : _V2.index("-- A status change")]
_COUNTED_V3 = _V3[
    _V3.index("CREATE FUNCTION {s}.qm_commit_counted(") : _V3.index("CREATE TABLE {s}.qm_waiters")
]
_UPDATE_V2 = _V2[_V2.index("CREATE FUNCTION {s}.qm_update_flow(") :]
#: The types of version 2's qm_commit parameters (`_COMMIT_PARAMS`), which DROP
#: FUNCTION names.
_COMMIT_TYPES_V2 = """
    uuid, double precision, bigint, uuid, integer, integer, uuid, integer,
    uuid, text, jsonb, text[], jsonb[], uuid[], integer[], uuid[], uuid[], integer[],
    uuid[], integer[], uuid[], integer[], bigint[], jsonb[], uuid[], uuid[], uuid[],
    bigint[], jsonb[]
""".strip("\n")
#: Version 4's qm_commit_counted also gives up the commit's slots (`Commit.release_slots`,
#: `ReleasesSlotsInCommit`: keys and holders, two more parameters) when it applied.
_RELEASE_V4 = """    IF p_rel_keys IS NOT NULL THEN
        DELETE FROM {s}.qm_slots AS o
         USING unnest(p_rel_keys, p_rel_holders) AS x(k, h)
         WHERE o.key = x.k AND o.holder = x.h;
    END IF;
"""
#: Version 4's qm_commit parameters: version 2's, then the change to keep.
_COMMIT_PARAMS_V4 = _COMMIT_PARAMS + ",\n    p_change jsonb"
_V4 = (
    """
CREATE TABLE {s}.qm_changes (
    flow_id uuid NOT NULL,
    version bigint NOT NULL,
    body    jsonb NOT NULL,
    PRIMARY KEY (flow_id, version)
);

DROP FUNCTION {s}.qm_commit_counted(
{commit_types},
    text[], bigint[], bigint[], double precision[],
    text[], bigint[], double precision[], double precision[]
);
DROP FUNCTION {s}.qm_commit(
{commit_types}
);

"""
    + _COMMIT_V2
    + _COUNTED_V3.replace(
        "p_resets, p_exit_header, p_exit_edge, p_ev_seq, p_ev_body\n",
        "p_resets, p_exit_header, p_exit_edge, p_ev_seq, p_ev_body, p_change\n",
    )
    .replace(
        "    p_tok_per double precision[]\n)",
        "    p_tok_per double precision[],\n    p_rel_keys text[], p_rel_holders text[]\n)",
    )
    .replace("    RETURN NULL;\nEND\n$fn$;", _RELEASE_V4 + "    RETURN NULL;\nEND\n$fn$;")
    + _UPDATE_V2.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION").replace(
        "        DELETE FROM {s}.qm_loop_exits WHERE flow_id = p_flow;\n",
        "        DELETE FROM {s}.qm_loop_exits WHERE flow_id = p_flow;\n"
        "        DELETE FROM {s}.qm_changes WHERE flow_id = p_flow;\n",
    )
)


def _v4(schema: str) -> str:
    sql = _V4.replace("{apply}", _APPLY_V4.strip("\n") + "\n")
    sql = sql.replace("{commit_types}", _COMMIT_TYPES_V2)
    return sql.replace("{commit_params}", _COMMIT_PARAMS_V4).replace("{s}", schema)


# Version 5: a window's checks in its line's order (`KeepsWindowLines`): the line is
# qm_waiters rows of the line's name with a ticket, as qm_take_slot keeps them (under
# the line's advisory lock); the window is asked only when no waiter is ahead.
# Each returns {place, wait}: {0, 0} when the waiter may start, else its place and,
# first in line, the seconds until the window has room.
_V5 = """
-- Drops p_line's waiters expired at p_wall (under the line's lock) and counts those
-- queued before p_waiter (all of them when it is not queued).
CREATE FUNCTION {s}.qm_line_ahead(p_line text, p_waiter text, p_wall double precision)
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
    v_ticket bigint;
    v_ahead integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('{s}.qm_slots ' || p_line));
    DELETE FROM {s}.qm_waiters WHERE key = p_line AND expires_at <= p_wall;
    SELECT ticket INTO v_ticket FROM {s}.qm_waiters
     WHERE key = p_line AND waiter = p_waiter AND ticket IS NOT NULL;
    SELECT count(*) INTO v_ahead FROM {s}.qm_waiters
     WHERE key = p_line AND ticket IS NOT NULL AND (v_ticket IS NULL OR ticket < v_ticket);
    RETURN v_ahead;
END
$fn$;

-- The answer of a window's check in p_line's order: start (out of the line when
-- p_leave) if nobody is ahead and p_wait is 0, else queue p_waiter or keep its ticket.
CREATE FUNCTION {s}.qm_line_turn(
    p_line text, p_waiter text, p_ahead integer, p_wait double precision,
    p_expires double precision, p_leave boolean
) RETURNS double precision[] LANGUAGE plpgsql AS $fn$
BEGIN
    IF p_ahead = 0 AND p_wait <= 0 THEN
        IF p_leave THEN
            DELETE FROM {s}.qm_waiters WHERE key = p_line AND waiter = p_waiter;
        END IF;
        RETURN ARRAY[0, 0];
    END IF;
    INSERT INTO {s}.qm_waiters (key, waiter, expires_at, ticket)
    VALUES (p_line, p_waiter, p_expires, nextval('{s}.qm_waiter_tickets'))
    ON CONFLICT (key, waiter) DO UPDATE
       SET expires_at = p_expires,
           ticket = coalesce({s}.qm_waiters.ticket, excluded.ticket);
    RETURN ARRAY[p_ahead + 1, CASE WHEN p_ahead = 0 THEN p_wait ELSE 0 END];
END
$fn$;

CREATE FUNCTION {s}.qm_take_request_in_line(
    p_key text, p_line text, p_waiter text, p_limit integer, p_per double precision,
    p_now double precision, p_wall double precision, p_expires double precision
) RETURNS double precision[] LANGUAGE plpgsql AS $fn$
DECLARE
    v_ahead integer;
    v_oldest double precision := 0;
BEGIN
    v_ahead := {s}.qm_line_ahead(p_line, p_waiter, p_wall);
    IF v_ahead = 0 THEN
        v_oldest := {s}.qm_take_request(p_key, p_limit, p_per, p_now);
    END IF;
    RETURN {s}.qm_line_turn(
        p_line, p_waiter, v_ahead,
        CASE WHEN v_oldest = 0 THEN 0 ELSE greatest(v_oldest + p_per - p_now, 1e-9) END,
        p_expires, true
    );
END
$fn$;

CREATE FUNCTION {s}.qm_take_tokens_in_line(
    p_key text, p_line text, p_waiter text, p_limit bigint, p_per double precision,
    p_now double precision, p_wall double precision, p_expires double precision,
    p_leave boolean
) RETURNS double precision[] LANGUAGE plpgsql AS $fn$
DECLARE
    v_ahead integer;
    v_total bigint;
    v_at double precision;
    v_wait double precision := 0;
BEGIN
    v_ahead := {s}.qm_line_ahead(p_line, p_waiter, p_wall);
    IF v_ahead = 0 THEN
        SELECT coalesce(sum(tokens), 0) INTO v_total FROM {s}.qm_tokens
         WHERE key = p_key AND at > p_now - p_per;
        IF v_total >= p_limit THEN
            -- The oldest count whose leaving brings the newer ones under the limit.
            SELECT min(at) INTO v_at FROM (
                SELECT at, coalesce(sum(tokens) OVER (
                    ORDER BY at DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0
                ) AS newer
                  FROM {s}.qm_tokens WHERE key = p_key AND at > p_now - p_per
            ) AS w WHERE newer < p_limit;
            v_wait := greatest(v_at + p_per - p_now, 1e-9);
        END IF;
    END IF;
    RETURN {s}.qm_line_turn(p_line, p_waiter, v_ahead, v_wait, p_expires, p_leave);
END
$fn$;
"""


def _v5(schema: str) -> str:
    return _V5.replace("{s}", schema)


#: ``MIGRATIONS[i]`` is the SQL that brings a schema at version ``i`` to ``i + 1``.
MIGRATIONS: tuple[Callable[[str], str], ...] = (_v1, _v2, _v3, _v4, _v5)

assert len(MIGRATIONS) == SCHEMA_VERSION


def meta_sql(schema: str) -> str:
    """Creates the schema and its version table if missing."""
    return (
        f"CREATE SCHEMA IF NOT EXISTS {schema};"
        f"CREATE TABLE IF NOT EXISTS {schema}.qm_meta (key text PRIMARY KEY, value text NOT NULL)"
    )


def version_query(schema: str) -> str:
    """The schema's version; run only when ``qm_meta`` exists."""
    return f"SELECT value FROM {schema}.qm_meta WHERE key = 'schema_version'"


def set_version_sql(schema: str) -> str:
    return (
        f"INSERT INTO {schema}.qm_meta (key, value) VALUES ('schema_version', $1) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    )
