// The node panel: what one run of a node did — its input messages, its output (streaming
// while it runs), the memory it changed, its LLM calls (model, tokens, duration) and its
// errors. Other runs of the node (loop visits, retries) are one click away.
"use strict";
(function () {
  const { seconds, when } = window.QMDom;

  function add(parent, tag, props) {
    const node = Object.assign(document.createElement(tag), props || {});
    parent.appendChild(node);
    return node;
  }

  function section(box, title, cls) {
    const s = add(box, "section", { className: `panel-section ${cls}` });
    add(s, "h4", { textContent: title });
    return s;
  }

  const json = (value) => (typeof value === "string" ? value : JSON.stringify(value, null, 1));

  // The messages a run received: all it added but its own output message.
  function inputMessages(run) {
    const messages = run.messages.slice();
    const last = messages[messages.length - 1];
    if (last && run.output != null && last.content === run.output && last.role !== "user") messages.pop();
    return messages;
  }

  function usage(call) {
    const u = call.usage || {};
    if (u.input_tokens == null && u.output_tokens == null) return "";
    return `${u.input_tokens ?? "?"} → ${u.output_tokens ?? "?"}`;
  }

  // info: { node, state, runs, run, allRuns, tokens, calls, retries, onPick(run) }
  function render(box, info) {
    box.replaceChildren();
    const head = add(box, "div", { className: "panel-head" });
    add(head, "h3", { textContent: info.node ? info.node.name : "?" });
    add(head, "span", { className: `badge state-${info.state}`, id: "node-state", textContent: info.state });
    if (info.node) add(head, "div", { className: "muted", textContent: info.node.type });
    if (info.runs.length > 1) {
      const picks = add(box, "div", { className: "run-picks" });
      for (const run of info.runs) {
        const b = add(picks, "button", { type: "button", textContent: `visit ${run.visit}${run.attempt > 1 ? ` · attempt ${run.attempt}` : ""}` });
        b.className = run === info.run ? "run-pick active" : "run-pick";
        b.addEventListener("click", () => info.onPick(run));
      }
    }
    const run = info.run;
    if (run) {
      add(box, "p", { className: "muted run-meta",
        textContent: `visit ${run.visit}, attempt ${run.attempt} · ${run.status} · started ${when(run.started)} · ${seconds(run.duration_seconds)}` });
      if (run.inputs.length) {
        const s = section(box, "Input", "node-from");
        for (const from of run.inputs) {
          const source = info.allRuns.find((r) => r.node_id === from.node_id && r.visit === from.visit);
          add(s, "div", { className: "muted role", textContent: `from ${from.node_name}${from.visit > 1 ? " #" + from.visit : ""}` });
          add(s, "pre", { className: "input-text", textContent: source && source.output != null ? source.output : "" });
        }
      }
      // An LLM node's input messages are the prompt its (latest) call sent.
      const prompt = info.calls.length ? info.calls[info.calls.length - 1].messages : null;
      const inputs = prompt || inputMessages(run);
      const s = inputs.length ? section(box, prompt ? "Input messages (prompt)" : "Input messages", "node-input") : null;
      for (const m of inputs) {
        add(s, "div", { className: "muted role", textContent: m.role });
        add(s, "pre", { className: `message role-${m.role}`, textContent: m.content });
      }
      if (run.user_input != null) {
        const a = section(box, "Answer", "node-answer");
        add(a, "pre", { textContent: run.user_input });
      }
    } else if (!info.tokens) {
      add(box, "p", { className: "muted", textContent: info.state === "running" ? "Running…" : "This node has not run." });
    }
    if (info.tokens && (!run || info.state === "running")) {
      const s = section(box, "Streaming", "node-stream");
      add(s, "div", { className: "tokens", id: "node-tokens", textContent: info.tokens });
    }
    if (run && run.output != null) {
      const s = section(box, "Output", "node-out");
      add(s, "pre", { className: "node-output", textContent: run.output });
    }
    const memory = run ? Object.entries(run.memory_updates || {}) : [];
    if (memory.length) {
      const s = section(box, "Memory changes", "node-memory");
      const table = add(s, "table", { className: "memory-changes" });
      for (const [key, value] of memory) {
        const tr = add(table, "tr");
        add(tr, "th", { textContent: key });
        add(add(tr, "td"), "code", { textContent: json(value) });
      }
    }
    if (info.calls.length) {
      const s = section(box, `LLM calls (${info.calls.length})`, "node-llm");
      const table = add(s, "table", { className: "llm-calls" });
      const hr = add(add(table, "thead"), "tr");
      for (const h of ["model", "tokens in → out", "duration", "result"]) add(hr, "th", { textContent: h });
      const body = add(table, "tbody");
      for (const call of info.calls) {
        const tr = add(body, "tr", { className: call.error ? "failed" : "" });
        add(tr, "td", { className: "llm-model", textContent: call.model || call.provider });
        add(tr, "td", { className: "llm-tokens", textContent: usage(call) });
        add(tr, "td", { className: "llm-duration", textContent: call.end == null ? "running…" : seconds(call.duration) });
        add(tr, "td", { className: call.error ? "error" : "muted", textContent: call.error || call.finish_reason || "" });
      }
    }
    const errors = info.retries.map((r) => `attempt ${r.attempt} failed: ${r.error} (retried after ${seconds(r.delay)})`);
    if (run && run.error) errors.push(run.error);
    if (errors.length) {
      const s = section(box, "Errors", "node-errors");
      for (const text of errors) add(s, "p", { className: "error", textContent: text });
    }
  }

  window.QMPanel = { render };
})();
