// The history pane of a flow: one row per checkpoint (seq, node, visit, attempt, outcome,
// time); a click on a row shows the memory and messages as they stood after it, its
// button forks a new flow there. Above it: the flow a fork began from, and the button
// that retries a failed flow.
"use strict";
(function () {
  const { utc } = window.QMDom;

  function add(parent, tag, props) {
    const node = Object.assign(document.createElement(tag), props || {});
    parent.appendChild(node);
    return node;
  }

  function showCheckpoint(box, c) {
    box.replaceChildren();
    add(box, "h4", { textContent: `Checkpoint ${c.seq}: ${c.node || "edit"} · ${c.outcome}` });
    add(box, "div", { className: "muted role", textContent: "memory" });
    add(box, "pre", { className: "checkpoint-memory", textContent: JSON.stringify(c.memory, null, 1) });
    add(box, "div", { className: "muted role", textContent: `messages (${c.messages.length})` });
    for (const m of c.messages) {
      add(box, "div", { className: "muted role", textContent: m.role });
      add(box, "pre", { className: `checkpoint-message role-${m.role}`, textContent: m.content });
    }
  }

  // history: the /history answer; onFork(seq) forks at a checkpoint.
  function render(pane, history, onFork) {
    const lineage = document.querySelector("#flow-lineage");
    lineage.replaceChildren();
    const parent = history.forked_from;
    if (parent) {
      lineage.append("forked from flow ");
      add(lineage, "a", { href: `#/flows/${parent.flow_id}`, className: "parent-flow", textContent: parent.flow_id });
      lineage.append(` at checkpoint ${parent.at}`);
    }
    const body = pane.querySelector("#history tbody");
    const detail = pane.querySelector("#checkpoint-detail");
    const chosen = body.querySelector("tr.selected");
    const keep = chosen ? Number(chosen.dataset.seq) : null;
    body.replaceChildren();
    for (const c of history.checkpoints) {
      const row = add(body, "tr", { className: "clickable" });
      row.dataset.seq = c.seq;
      for (const text of [c.seq, c.node, c.visit || "", c.attempt || "", c.reused ? `${c.outcome} (reused)` : c.outcome, utc(c.time)]) {
        add(row, "td", { textContent: String(text) });
      }
      row.lastChild.className = "time";
      const fork = add(add(row, "td"), "button", { type: "button", className: "fork", textContent: "Fork here" });
      fork.addEventListener("click", (ev) => { ev.stopPropagation(); onFork(c.seq); });
      row.addEventListener("click", () => {
        for (const r of body.querySelectorAll("tr.selected")) r.classList.remove("selected");
        row.classList.add("selected");
        showCheckpoint(detail, c);
      });
      if (c.seq === keep) row.click();
    }
    pane.querySelector("#history-count").textContent =
      `${history.checkpoints.length} checkpoint${history.checkpoints.length === 1 ? "" : "s"}`;
  }

  // The pane's actions. api(method, path, body): app.js's API call; flowId(): the flow
  // shown; reopen(id): show a flow again (a retried flow's events follow anew).
  function wire(api, flowId, reopen) {
    const $ = (sel) => document.querySelector(sel);
    const fail = (e) => { $("#flow-error").textContent = e.message; };
    async function forkAt(seq) {
      try {
        const data = await api("POST", `/api/flows/${flowId()}/fork`, { at: seq });
        location.hash = `#/flows/${data.flow_id}`;
      } catch (e) { fail(e); }
    }
    async function load() {
      const id = flowId();
      try {
        const history = await api("GET", `/api/flows/${id}/history`);
        if (flowId() === id) render($("#history-pane"), history, forkAt);
      } catch (e) { fail(e); }
    }
    $("#retry").addEventListener("click", async () => {
      $("#flow-error").textContent = "";
      try {
        await api("POST", `/api/flows/${flowId()}/retry`);
        reopen(flowId());
      } catch (e) { fail(e); }
    });
    return { load };
  }

  window.QMHistory = { wire };
})();
