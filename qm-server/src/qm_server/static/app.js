// The Quartermaster page: the flows list (status filter, search, refreshed every second)
// and one flow's inspector: the graph coloured by node state, the node panel, the live
// waterfall of node runs and LLM calls, the form that answers a waiting node, its timers
// and usage (timeline.js), its history with forks and retry (history.js), memory edits (edit.js).
"use strict";
(function () {
  const $ = (sel) => document.querySelector(sel);
  const { seconds, when } = window.QMDom;
  let current = null;
  let listTimer = null;

  async function api(method, path, body) {
    const init = { method, headers: { "X-QM-Request": "1" }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const err = (data && data.error) || { message: response.statusText };
      throw new Error(err.message + (err.problems ? ": " + err.problems.join("; ") : ""));
    }
    return data;
  }

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  // -- list ------------------------------------------------------------------------
  async function loadGraphs() {
    const data = await api("GET", "/api/graphs");
    const select = $("#graph");
    select.replaceChildren();
    for (const g of data.graphs) {
      const option = document.createElement("option");
      option.value = g.name;
      option.textContent = g.title ? `${g.name} (${g.title})` : g.name;
      select.appendChild(option);
    }
  }

  // The search looks in the id, graph, input, output and error of the listed flows.
  function matches(flow, words) {
    const text = [flow.flow_id, flow.graph, flow.input, flow.output, flow.error].join("\n").toLowerCase();
    return words.every((w) => text.includes(w));
  }

  const LIST_LIMIT = 500;

  let listRequest = 0; // answers to older requests (an earlier filter) are dropped

  async function refreshList() {
    const status = $("#status-filter").value;
    const asked = ++listRequest;
    try {
      const query = `limit=${LIST_LIMIT}` + (status ? `&status=${encodeURIComponent(status)}` : "");
      const data = await api("GET", `/api/flows?${query}`);
      if (asked !== listRequest || $("#list-view").hidden) return;
      const words = $("#search").value.toLowerCase().split(/\s+/).filter(Boolean);
      const shown = data.flows.filter((f) => matches(f, words));
      const body = $("#flows tbody");
      body.replaceChildren();
      for (const f of shown) {
        const row = document.createElement("tr");
        row.className = "clickable";
        row.dataset.flowId = f.flow_id;
        cell(row, f.flow_id.slice(0, 8), "flow-id").title = f.flow_id;
        cell(row, f.graph, "graph");
        cell(row, f.status, `status status-${f.status}`);
        cell(row, when(f.created_at));
        cell(row, when(f.updated_at));
        cell(row, f.input, "input");
        cell(row, f.error || f.output || "", f.error ? "output error" : "output");
        row.addEventListener("click", () => { location.hash = `#/flows/${f.flow_id}`; });
        body.appendChild(row);
      }
      const of = data.more ? `${LIST_LIMIT}+` : String(data.flows.length);
      const kind = status ? `${status} ` : "";
      $("#flow-count").textContent = words.length
        ? `${shown.length} of ${of} ${kind}flows match`
        : `${of} ${kind}flow${data.flows.length === 1 ? "" : "s"}`;
      $("#connection").textContent = "";
    } catch (e) {
      $("#connection").textContent = "offline: " + e.message;
    }
  }

  function showList() {
    closeFlow();
    $("#flow-view").hidden = true;
    $("#list-view").hidden = false;
    loadGraphs().catch((e) => { $("#start-error").textContent = e.message; });
    refreshList();
    listTimer = setInterval(refreshList, 1000);
  }

  $("#status-filter").addEventListener("change", refreshList);
  $("#search").addEventListener("input", refreshList);

  $("#start-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("#start-error").textContent = "";
    try {
      const data = await api("POST", "/api/flows", { graph: $("#graph").value, input: $("#input").value });
      location.hash = `#/flows/${data.flow_id}`;
    } catch (e) {
      $("#start-error").textContent = e.message;
    }
  });

  // -- one flow ----------------------------------------------------------------------
  function closeFlow() {
    if (listTimer) { clearInterval(listTimer); listTimer = null; }
    if (current) {
      if (current.events) current.events.close();
      if (current.ticker) clearInterval(current.ticker);
      if (current.graph) current.graph.close();
    }
    current = null;
  }

  const history = window.QMHistory.wire(api, () => current && current.id, (id) => showFlow(id));
  const editor = window.QMEdit.wire(api, () => current && current.id, () => refreshFlow());
  const ENDED = new Set(["finished", "failed", "skipped", "cancelled"]);
  const runKey = (nodeId, visit, attempt) => `${nodeId}:${visit}:${attempt}`;

  async function showFlow(id) {
    closeFlow();
    $("#list-view").hidden = true;
    $("#flow-view").hidden = false;
    $("#graph-area").replaceChildren();
    $("#waterfall").replaceChildren();
    $("#node-detail").replaceChildren(
      Object.assign(document.createElement("h3"), { textContent: "Node" }),
      Object.assign(document.createElement("p"), { className: "muted", textContent: "Click a node or a bar of the waterfall." }));
    $("#history tbody").replaceChildren();
    $("#checkpoint-detail").replaceChildren();
    $("#flow-maps").replaceChildren();
    for (const sel of ["#flow-lineage", "#history-count", "#flow-error"]) $(sel).textContent = "";
    editor.reset();
    current = {
      id, events: null, graph: null, view: null, ticker: null, pending: null, selected: null,
      tokens: new Map(), // node id -> text streamed by its running activation
      running: new Map(), // run key -> { node_id, node_name, visit, attempt, ts }
      visits: new Map(), // node id -> the visit its latest NodeStarted began
      calls: [], // LLM calls: { node_id, visit, call, model, provider, start, end, usage, ... }
      retries: [], // NodeRetrying events
      skew: 0, // server clock minus this browser's, from the latest event
      timeline: [], // logged timer and schedule events (timeline.js)
      maps: [], // MapProgress events (maps.js)
      historyAt: null, // the event_seq the history pane was read at
    };
    const view = await api("GET", `/api/flows/${id}`);
    if (!current || current.id !== id) return;
    current.graph = window.QMGraph.draw($("#graph-area"), view.graph_view, (nodeId) => selectNode(nodeId, null));
    render(view);
    follow(id);
  }

  const live = () => current.view && (current.view.status === "running" || current.running.size > 0);
  const now = () => Date.now() / 1000 + current.skew;

  function stateOf(nodeId) {
    for (const r of current.running.values()) if (r.node_id === nodeId) return "running";
    return current.view.node_states[nodeId] || "pending";
  }

  function render(view) {
    current.view = view;
    $("#flow-graph").textContent = view.graph;
    const badge = $("#flow-status");
    badge.textContent = view.status;
    badge.className = `badge status-${view.status}`;
    $("#flow-id").textContent = `flow ${view.flow_id} · input: ${view.input}`;
    // The store records a node's run when it ends; the events say what runs now.
    for (const r of view.runs) {
      if (ENDED.has(r.status)) current.running.delete(runKey(r.node_id, r.visit, r.attempt));
    }
    for (const node of view.graph_view.nodes) current.graph.setState(node.id, stateOf(node.id));
    $("#flow-output").textContent = view.output ? `Output: ${view.output}` : view.error ? `Error: ${view.error}` : "";
    const waiting = view.waiting[0];
    const form = $("#answer-form");
    form.hidden = !waiting || view.status !== "paused";
    if (waiting) {
      $("#answer-node").textContent = waiting.node_name;
      form.dataset.nodeId = waiting.node_id;
      $("#answer-prompt").textContent = waiting.prompt;
    }
    $("#retry").hidden = view.status !== "failed";
    editor.show(view.status);
    window.QMTimeline.render(view, current.timeline);
    if (current.historyAt !== view.event_seq && (current.historyAt === null || view.status !== "running")) {
      current.historyAt = view.event_seq;
      history.load();
    }
    drawWaterfall();
    if (current.selected) selectNode(current.selected.node, current.selected.run);
    if (live() && !current.ticker) current.ticker = setInterval(tick, 250);
    if (!live() && current.ticker) { clearInterval(current.ticker); current.ticker = null; }
  }

  function tick() {
    if (!current) return;
    drawWaterfall();
    if (!live()) { clearInterval(current.ticker); current.ticker = null; }
  }

  function callsOf(nodeId, visit) {
    return current.calls.filter((c) => c.node_id === nodeId && (visit == null || c.visit === visit));
  }

  function callRow(c) {
    const u = c.usage || {};
    const tokens = u.input_tokens != null ? `, ${u.input_tokens} → ${u.output_tokens} tokens` : "";
    return {
      label: `↳ ${c.model || c.provider || "LLM"}`,
      start: c.start,
      end: c.end,
      error: c.error,
      title: `${c.model || c.provider}${tokens}${c.end != null ? ", " + seconds(c.duration) : ", running"}${c.error ? ": " + c.error : ""}`,
    };
  }

  function drawWaterfall() {
    const view = current.view;
    const rows = [];
    const seen = new Set();
    view.runs.forEach((r) => {
      if (r.started == null) return;
      const key = runKey(r.node_id, r.visit, r.attempt);
      seen.add(key);
      const active = current.running.has(key);
      const multi = view.runs.filter((o) => o.node_id === r.node_id).length > 1;
      rows.push({
        key, name: r.node_name, node: r.node_id, run: r,
        label: multi ? `${r.node_name} #${r.visit}${r.attempt > 1 ? "." + r.attempt : ""}` : r.node_name,
        state: active ? "running" : r.status, start: r.started, end: r.finished ?? r.started,
        running: active, llm: callsOf(r.node_id, r.visit).map(callRow),
      });
    });
    for (const [key, r] of current.running) {
      if (seen.has(key)) continue;
      rows.push({ key, name: r.node_name, node: r.node_id, run: null,
        label: r.visit > 1 ? `${r.node_name} #${r.visit}` : r.node_name, state: "running",
        start: r.ts, end: null, running: true, llm: callsOf(r.node_id, r.visit).map(callRow) });
    }
    rows.sort((a, b) => a.start - b.start);
    window.QMWaterfall.draw($("#waterfall"), rows, now(), (row) => selectNode(row.node, row.run));
  }

  function selectNode(nodeId, run) {
    if (!current || !current.view) return;
    const view = current.view;
    const runs = view.runs.filter((r) => r.node_id === nodeId);
    // Keep the chosen run across refreshes: find it again by its key.
    const chosen = run ? runs.find((r) => r.visit === run.visit && r.attempt === run.attempt) : null;
    current.selected = { node: nodeId, run: chosen || null };
    current.graph.select(nodeId);
    const shown = chosen || runs[runs.length - 1] || null;
    const state = stateOf(nodeId);
    const visit = shown ? shown.visit : current.visits.get(nodeId);
    window.QMPanel.render($("#node-detail"), {
      node: view.graph_view.nodes.find((n) => n.id === nodeId),
      state: shown && shown !== runs[runs.length - 1] ? shown.status : state,
      runs,
      allRuns: view.runs,
      run: state === "running" && !chosen ? null : shown,
      tokens: current.tokens.get(nodeId) || "",
      calls: callsOf(nodeId, visit),
      // The failed attempts before the shown one (of its visit).
      retries: current.retries.filter((r) => r.node_id === nodeId && r.visit === visit
        && (!shown || r.attempt < shown.attempt || state === "running")),
      onPick: (r) => selectNode(nodeId, r),
    });
  }

  function refreshFlow() {
    if (!current || current.pending) return;
    const id = current.id;
    current.pending = setTimeout(async () => {
      if (!current || current.id !== id) return;
      current.pending = null;
      try { render(await api("GET", `/api/flows/${id}`)); } catch (e) { $("#connection").textContent = e.message; }
    }, 50);
  }

  function follow(id) {
    const source = new EventSource(`/api/flows/${id}/events`);
    current.events = source;
    const on = (type, fn) => source.addEventListener(type, (ev) => {
      const e = JSON.parse(ev.data);
      if (e.ts) current.skew = e.ts - Date.now() / 1000;
      fn(e);
    });
    const selectedIs = (nodeId) => current.selected && current.selected.node === nodeId;
    on("NodeStarted", (e) => {
      current.running.set(runKey(e.node_id, e.visit, e.attempt), e);
      current.visits.set(e.node_id, e.visit);
      current.graph.setState(e.node_id, "running");
      current.tokens.delete(e.node_id);
      refreshFlow();
    });
    on("TokenGenerated", (e) => {
      current.tokens.set(e.node_id, (current.tokens.get(e.node_id) || "") + e.token);
      if (selectedIs(e.node_id)) {
        const box = $("#node-tokens");
        if (box) box.textContent = current.tokens.get(e.node_id); else selectNode(e.node_id, current.selected.run);
      }
    });
    on("LLMCallStarted", (e) => {
      current.calls.push({ node_id: e.node_id, visit: current.visits.get(e.node_id) || 1, call: e.call,
        provider: e.provider, model: e.model, start: e.ts, end: null, usage: {}, error: null, duration: null,
        messages: e.messages.map((m) => ({ role: m.role, content: m.content || "" })) });
      if (selectedIs(e.node_id)) selectNode(e.node_id, current.selected.run);
    });
    on("LLMCallFinished", (e) => {
      let c = current.calls.find((x) => x.node_id === e.node_id && x.call === e.call && x.end == null);
      if (!c) { // its start was before what we replayed
        c = { node_id: e.node_id, visit: current.visits.get(e.node_id) || 1, call: e.call, start: e.ts - e.duration_seconds };
        current.calls.push(c);
      }
      Object.assign(c, { provider: e.provider, model: e.model || c.model, end: e.ts, usage: e.usage,
        error: e.error, duration: e.duration_seconds, finish_reason: e.finish_reason });
      if (selectedIs(e.node_id)) selectNode(e.node_id, current.selected.run);
      drawWaterfall();
    });
    on("NodeRetrying", (e) => {
      current.retries.push({ ...e, visit: current.visits.get(e.node_id) || 1 });
      refreshFlow();
    });
    const ended = (e) => {
      for (const [key, r] of current.running) if (r.node_id === e.node_id) current.running.delete(key);
      refreshFlow();
    };
    for (const type of ["NodeFinished", "NodeSkipped", "FlowError", "UserInputRequired"]) on(type, ended);
    for (const type of ["FlowPaused", "FlowResumed"]) on(type, refreshFlow);
    for (const type of window.QMTimeline.types) {
      on(type, (e) => { current.timeline.push(e); if (current.view) window.QMTimeline.render(current.view, current.timeline); });
    }
    on("MapProgress", (e) => { current.maps.push(e); window.QMMaps.render(current.maps); });
    for (const type of ["FlowFinished", "FlowStopped"]) {
      on(type, () => { source.close(); current.running.clear(); refreshFlow(); });
    }
    source.onerror = () => { $("#connection").textContent = "reconnecting…"; };
    source.onopen = () => { $("#connection").textContent = ""; };
  }

  $("#answer-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("#answer-error").textContent = "";
    try {
      await api("POST", `/api/flows/${current.id}/resume`, { answer: $("#answer").value, node: $("#answer-form").dataset.nodeId });
      $("#answer").value = "";
      $("#answer-form").hidden = true;
    } catch (e) {
      $("#answer-error").textContent = e.message;
    }
  });

  $("#stop").addEventListener("click", async () => {
    try { await api("POST", `/api/flows/${current.id}/stop`); } catch (e) { $("#answer-error").textContent = e.message; }
  });

  function route() {
    const match = location.hash.match(/^#\/flows\/([0-9a-f-]{36})$/);
    if (match) showFlow(match[1]); else showList();
  }
  window.addEventListener("resize", () => { if (current && current.view) drawWaterfall(); });
  window.addEventListener("hashchange", route);
  route();
})();
