// The Quartermaster page: the flows list (refreshed every second) and one flow's page
// (graph coloured by node state, timeline, node details, streamed tokens, answer form).
"use strict";
(function () {
  const $ = (sel) => document.querySelector(sel);
  let current = null; // { id, events, graph, view, tokens, selected }
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

  const when = (ts) => (ts ? new Date(ts * 1000).toLocaleTimeString() : "");
  const seconds = (s) => (s == null ? "" : s < 1 ? `${(s * 1000).toFixed(1)} ms` : `${s.toFixed(2)} s`);

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

  async function refreshList() {
    try {
      const data = await api("GET", "/api/flows?limit=100");
      const body = $("#flows tbody");
      body.replaceChildren();
      for (const f of data.flows) {
        const row = document.createElement("tr");
        row.className = "clickable";
        row.dataset.flowId = f.flow_id;
        cell(row, f.flow_id.slice(0, 8), "flow-id");
        cell(row, f.graph, "graph");
        cell(row, f.status, `status status-${f.status}`);
        cell(row, when(f.updated_at));
        cell(row, f.output || f.error || "", "output");
        row.addEventListener("click", () => { location.hash = `#/flows/${f.flow_id}`; });
        body.appendChild(row);
      }
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
    if (current && current.events) current.events.close();
    current = null;
  }

  async function showFlow(id) {
    closeFlow();
    $("#list-view").hidden = true;
    $("#flow-view").hidden = false;
    $("#node-detail").replaceChildren(Object.assign(document.createElement("h3"), { textContent: "Node" }));
    current = { id, events: null, graph: null, view: null, tokens: new Map(), running: new Set(), selected: null, pending: null };
    const view = await api("GET", `/api/flows/${id}`);
    if (!current || current.id !== id) return;
    current.graph = window.QMGraph.draw($("#graph-area"), view.graph_view, selectNode);
    render(view);
    follow(id);
  }

  function render(view) {
    current.view = view;
    $("#flow-graph").textContent = view.graph;
    const badge = $("#flow-status");
    badge.textContent = view.status;
    badge.className = `badge status-${view.status}`;
    $("#flow-id").textContent = `flow ${view.flow_id} · input: ${view.input}`;
    // The store records a node's run when it ends; the events say which run now.
    const stateOf = (id) => (current.running.has(id) ? "running" : view.node_states[id] || "pending");
    for (const node of view.graph_view.nodes) current.graph.setState(node.id, stateOf(node.id));
    $("#flow-output").textContent = view.output ? `Output: ${view.output}` : view.error ? `Error: ${view.error}` : "";
    const body = $("#timeline tbody");
    body.replaceChildren();
    view.runs.forEach((run, i) => {
      const row = document.createElement("tr");
      row.className = "clickable";
      row.dataset.nodeName = run.node_name;
      cell(row, run.node_name);
      cell(row, run.visit);
      cell(row, run.status, `run-status state-${run.status}`);
      cell(row, seconds(run.duration_seconds));
      row.addEventListener("click", () => selectNode(run.node_id, i));
      body.appendChild(row);
    });
    const waiting = view.waiting[0];
    const form = $("#answer-form");
    form.hidden = !waiting || view.status !== "paused";
    if (waiting) {
      $("#answer-node").textContent = waiting.node_name;
      form.dataset.nodeId = waiting.node_id;
      $("#answer-prompt").textContent = waiting.prompt;
    }
    if (current.selected) selectNode(current.selected.node, current.selected.run);
  }

  function selectNode(nodeId, runIndex) {
    if (!current || !current.view) return;
    current.selected = { node: nodeId, run: runIndex };
    current.graph.select(nodeId);
    const view = current.view;
    const node = view.graph_view.nodes.find((n) => n.id === nodeId);
    const runs = view.runs.filter((r) => r.node_id === nodeId);
    const run = runIndex != null ? view.runs[runIndex] : runs[runs.length - 1];
    const box = $("#node-detail");
    box.replaceChildren();
    const h = document.createElement("h3");
    const state = current.running.has(nodeId) ? "running" : view.node_states[nodeId] || "pending";
    h.textContent = `${node ? node.name : nodeId} · ${state}`;
    box.appendChild(h);
    const tokens = current.tokens.get(nodeId);
    if (tokens) {
      const t = document.createElement("div");
      t.className = "tokens";
      t.id = "node-tokens";
      t.textContent = tokens;
      box.appendChild(t);
    }
    if (!run) return;
    const meta = document.createElement("p");
    meta.className = "muted";
    meta.textContent = `visit ${run.visit}, attempt ${run.attempt}, ${seconds(run.duration_seconds)}`;
    box.appendChild(meta);
    for (const m of run.messages) {
      const label = document.createElement("div");
      label.className = "muted";
      label.textContent = m.role;
      const pre = document.createElement("pre");
      pre.className = `message role-${m.role}`;
      pre.textContent = m.content;
      box.append(label, pre);
    }
    if (run.output != null) {
      const pre = document.createElement("pre");
      pre.className = "node-output";
      pre.textContent = run.output;
      box.append(Object.assign(document.createElement("div"), { className: "muted", textContent: "output" }), pre);
    }
    if (run.error) box.append(Object.assign(document.createElement("p"), { className: "error", textContent: run.error }));
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
    const on = (type, fn) => source.addEventListener(type, (ev) => fn(JSON.parse(ev.data)));
    on("NodeStarted", (e) => {
      current.running.add(e.node_id);
      current.graph.setState(e.node_id, "running");
      current.tokens.delete(e.node_id);
      refreshFlow();
    });
    on("TokenGenerated", (e) => {
      current.tokens.set(e.node_id, (current.tokens.get(e.node_id) || "") + e.token);
      if (current.selected && current.selected.node === e.node_id) {
        const box = $("#node-tokens");
        if (box) box.textContent = current.tokens.get(e.node_id); else selectNode(e.node_id);
      }
    });
    const ended = (e) => { current.running.delete(e.node_id); refreshFlow(); };
    for (const type of ["NodeFinished", "NodeSkipped", "FlowError", "UserInputRequired"]) on(type, ended);
    for (const type of ["NodeRetrying", "FlowPaused", "FlowResumed"]) on(type, refreshFlow);
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
  window.addEventListener("hashchange", route);
  route();
})();
