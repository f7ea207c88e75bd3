// The waterfall: one row per node run (and one under it per LLM call of that run), a bar
// from its start to its end on a shared time axis, so parallel branches overlap and slow
// nodes stand out. Bars of what still runs grow until it ends.
"use strict";
(function () {
  const ROW = 22, SUB = 18, AXIS = 22, LABEL = 190, RIGHT = 84, PAD = 8;

  const { svg: el, seconds } = window.QMDom;

  // A tick's label, with as many decimals as its step needs.
  function tickText(t, s) {
    if (t === 0) return "0";
    if (s >= 0.1) return `${t.toFixed(Math.max(0, -Math.floor(Math.log10(s) + 1e-9)))} s`;
    return `${(t * 1000).toFixed(Math.max(0, -Math.floor(Math.log10(s * 1000) + 1e-9)))} ms`;
  }

  // A tick step of 1, 2 or 5 times a power of ten giving at most ``n`` ticks over ``span``.
  function step(span, n) {
    const raw = span / n, power = Math.pow(10, Math.floor(Math.log10(raw)));
    return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  }

  // rows: [{ key, label, state, start, end, running, llm: [{ label, start, end, error, title }] }]
  // ``now``: the time running bars reach. onClick(row) on a click on a node row.
  function draw(container, rows, now, onClick) {
    const width = Math.max(480, container.clientWidth - 2);
    if (!rows.length) {
      const p = document.createElement("p");
      p.className = "muted";
      p.textContent = "No node has run yet.";
      container.replaceChildren(p);
      return;
    }
    const t0 = Math.min(...rows.map((r) => r.start));
    const ends = rows.flatMap((r) => [r.running ? now : r.end, ...r.llm.map((c) => (c.end == null ? now : c.end))]);
    const t1 = Math.max(t0 + 0.001, ...ends);
    const plot = width - LABEL - RIGHT - PAD;
    const xOf = (t) => LABEL + ((t - t0) / (t1 - t0)) * plot;
    const height = AXIS + rows.reduce((h, r) => h + ROW + r.llm.length * SUB, 0) + PAD;
    const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "waterfall-chart" });
    const s = step(t1 - t0, Math.max(2, Math.floor(plot / 90)));
    for (let t = 0; t <= t1 - t0 + 1e-9; t += s) {
      const x = xOf(t0 + t);
      el("line", { x1: x, x2: x, y1: AXIS - 4, y2: height - PAD, class: "tick" }, svg);
      el("text", { x, y: AXIS - 8, class: "tick-label", "text-anchor": "middle" }, svg).textContent = tickText(t, s);
    }
    let y = AXIS;
    for (const row of rows) {
      const end = row.running ? now : row.end;
      const g = el("g", { class: `wf-row state-${row.state}`, "data-node-name": row.name,
        "data-key": row.key, transform: `translate(0 ${y})` }, svg);
      el("rect", { x: 0, y: 0, width, height: ROW, class: "wf-hit" }, g);
      el("text", { x: 6, y: 15, class: "wf-label" }, g).textContent = row.label;
      const x = xOf(row.start), w = Math.max(2, xOf(end) - x);
      el("rect", { x, y: 4, width: w, height: ROW - 8, rx: 2, class: "wf-bar" }, g);
      el("text", { x: x + w + 4, y: 15, class: "wf-duration" }, g).textContent =
        row.running ? `${seconds(end - row.start)}…` : seconds(end - row.start);
      el("title", {}, g).textContent = `${row.label}: ${row.state}, ${seconds(end - row.start)}`;
      g.addEventListener("click", () => onClick(row));
      y += ROW;
      for (const call of row.llm) {
        const c = el("g", { class: `wf-llm${call.error ? " failed" : ""}`, "data-node-name": row.name, transform: `translate(0 ${y})` }, svg);
        el("text", { x: 18, y: 13, class: "wf-label llm" }, c).textContent = call.label;
        const cend = call.end == null ? now : call.end;
        const cx = xOf(call.start), cw = Math.max(2, xOf(cend) - cx);
        el("rect", { x: cx, y: 4, width: cw, height: SUB - 8, rx: 2, class: "wf-bar" }, c);
        el("text", { x: cx + cw + 4, y: 13, class: "wf-duration" }, c).textContent =
          call.end == null ? `${seconds(cend - call.start)}…` : seconds(cend - call.start);
        el("title", {}, c).textContent = call.title;
        c.addEventListener("click", () => onClick(row));
        y += SUB;
      }
    }
    container.replaceChildren(svg);
  }

  window.QMWaterfall = { draw };
})();
