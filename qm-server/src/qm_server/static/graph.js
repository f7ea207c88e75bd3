// Draws a graph as SVG, top-down, fitted to its container's width: nodes in rows by their
// longest forward distance from the start (a layer); a layer wider than the container wraps
// onto more rows. Edges that skip layers pass through gaps reserved for them; edges closing
// a loop run up the side as dashed lines. Nodes in a layer are ordered to cut crossings.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const H = 40, GAP_X = 18, GAP_Y = 34, PAD = 14, LANE = 14, DUMMY = 10;
  const MAX_W = 168, MIN_W = 104;

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  // Back edges: edges closing a cycle in a depth-first walk from the start node (then
  // from any node the start does not reach).
  function backEdges(view, out) {
    const back = new Set(), state = new Map();
    const roots = [view.start_node_id, ...view.nodes.map((n) => n.id)];
    for (const root of roots) {
      if (state.has(root)) continue;
      const stack = [[root, 0]];
      state.set(root, 1);
      while (stack.length) {
        const top = stack[stack.length - 1];
        const edges = out.get(top[0]) || [];
        if (top[1] >= edges.length) { state.set(top[0], 2); stack.pop(); continue; }
        const edge = edges[top[1]++];
        const s = state.get(edge.target);
        if (s === 1) back.add(edge);
        else if (!s) { state.set(edge.target, 1); stack.push([edge.target, 0]); }
      }
    }
    return back;
  }

  // Longest-path layers over the forward edges.
  function layers(view, out, back) {
    const indeg = new Map(view.nodes.map((n) => [n.id, 0]));
    for (const e of view.edges) if (!back.has(e) && indeg.has(e.target)) indeg.set(e.target, indeg.get(e.target) + 1);
    const layer = new Map(view.nodes.map((n) => [n.id, 0]));
    const queue = view.nodes.filter((n) => indeg.get(n.id) === 0).map((n) => n.id);
    while (queue.length) {
      const id = queue.shift();
      for (const e of out.get(id) || []) {
        if (back.has(e) || !layer.has(e.target)) continue;
        layer.set(e.target, Math.max(layer.get(e.target), layer.get(id) + 1));
        indeg.set(e.target, indeg.get(e.target) - 1);
        if (indeg.get(e.target) === 0) queue.push(e.target);
      }
    }
    return layer;
  }

  // Items per layer (nodes, and a dummy per layer an edge skips), ordered by the mean
  // position of their neighbours, sweeping down and up a few times.
  function order(view, forward, layer) {
    const count = Math.max(0, ...layer.values()) + 1;
    const rows = Array.from({ length: count }, () => []);
    const items = new Map();
    for (const n of view.nodes) {
      const item = { id: n.id, dummy: false, up: [], down: [] };
      items.set(n.id, item);
      rows[layer.get(n.id)].push(item);
    }
    const chains = new Map();
    for (const e of forward) {
      let prev = items.get(e.source);
      const chain = [];
      for (let l = layer.get(e.source) + 1; l < layer.get(e.target); l++) {
        const dummy = { id: `${e.source}>${e.target}#${l}`, dummy: true, up: [prev], down: [] };
        prev.down.push(dummy);
        rows[l].push(dummy);
        chain.push(dummy);
        prev = dummy;
      }
      const target = items.get(e.target);
      prev.down.push(target);
      target.up.push(prev);
      chains.set(e, chain);
    }
    const index = () => rows.forEach((row) => row.forEach((item, i) => { item.pos = i; }));
    index();
    const mean = (list, fallback) => (list.length ? list.reduce((s, x) => s + x.pos, 0) / list.length : fallback);
    for (let sweep = 0; sweep < 4; sweep++) {
      const down = sweep % 2 === 0;
      for (let k = 1; k < count; k++) {
        const row = rows[down ? k : count - 1 - k];
        const key = new Map(row.map((item) => [item, mean(down ? item.up : item.down, item.pos)]));
        row.sort((a, b) => key.get(a) - key.get(b) || a.pos - b.pos);
        row.forEach((item, i) => { item.pos = i; });
      }
    }
    return { rows, items, chains };
  }

  function layout(view, width) {
    const out = new Map();
    for (const e of view.edges) {
      if (!out.has(e.source)) out.set(e.source, []);
      out.get(e.source).push(e);
    }
    const back = backEdges(view, out);
    const known = new Set(view.nodes.map((n) => n.id));
    const forward = view.edges.filter((e) => !back.has(e) && known.has(e.source) && known.has(e.target));
    const layer = layers(view, out, back);
    const { rows, items, chains } = order(view, forward, layer);
    const lanes = back.size ? back.size * LANE + LANE : 0;
    const usable = Math.max(MIN_W + 2 * PAD, width) - 2 * PAD - lanes;
    // The node width: as wide as fits the widest layer on one row, within bounds.
    const widest = Math.max(1, ...rows.map((r) => r.filter((i) => !i.dummy).length));
    const w = Math.max(MIN_W, Math.min(MAX_W, Math.floor((usable - (widest - 1) * GAP_X) / widest)));
    const span = (item) => (item.dummy ? DUMMY : w);
    let y = PAD;
    for (const row of rows) {
      // Wrap a layer wider than the usable width onto as many rows as it needs.
      const lines = [[]];
      let used = 0;
      for (const item of row) {
        const need = (lines[lines.length - 1].length ? GAP_X : 0) + span(item);
        if (used + need > usable && lines[lines.length - 1].length) { lines.push([]); used = 0; }
        used += (lines[lines.length - 1].length ? GAP_X : 0) + span(item);
        lines[lines.length - 1].push(item);
      }
      for (const line of lines) {
        const total = line.reduce((s, item, i) => s + span(item) + (i ? GAP_X : 0), 0);
        let x = PAD + Math.max(0, (usable - total) / 2);
        for (const item of line) {
          item.x = x; item.y = y; item.w = span(item);
          x += span(item) + GAP_X;
        }
        y += H + GAP_Y;
      }
    }
    const height = y - GAP_Y + PAD + 6;
    return { items, chains, back, w, width: usable + 2 * PAD + lanes, height, right: PAD + usable };
  }

  function edgePath(points) {
    let d = `M ${points[0].x} ${points[0].y}`;
    for (let i = 1; i < points.length; i++) {
      const p = points[i - 1], q = points[i];
      if (p.x === q.x) { d += ` L ${q.x} ${q.y}`; continue; }
      const my = (p.y + q.y) / 2;
      d += ` C ${p.x} ${my}, ${q.x} ${my}, ${q.x} ${q.y}`;
    }
    return d;
  }

  function draw(container, view, onClick) {
    const groups = new Map();
    let selected = null;
    const states = new Map();

    function render() {
      const width = Math.max(320, container.clientWidth - 2);
      const { items, chains, back, w, height, right } = layout(view, width);
      const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
        "aria-label": `graph ${view.title || view.name || ""}` });
      const defs = el("defs", {}, svg);
      const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
        markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
      el("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }, marker);
      const labels = [];
      for (const [e, chain] of chains) {
        const a = items.get(e.source), b = items.get(e.target);
        const points = [{ x: a.x + w / 2, y: a.y + H }];
        for (const d of chain) points.push({ x: d.x + DUMMY / 2, y: d.y }, { x: d.x + DUMMY / 2, y: d.y + H });
        points.push({ x: b.x + w / 2, y: b.y });
        el("path", { d: edgePath(points), class: "edge", "marker-end": "url(#arrow)" }, svg);
        if (e.label) {
          // Near the source, where the branches leave a decision.
          const p = points[0], q = points[1];
          labels.push({ x: p.x + (q.x - p.x) * 0.45, y: p.y + (q.y - p.y) * 0.45 + 3, text: e.label });
        }
      }
      let lane = 0;
      for (const e of back) {
        const a = items.get(e.source), b = items.get(e.target);
        if (!a || !b) continue;
        const x = right + LANE * (++lane), r = 8;
        const y1 = a.y + H / 2, y2 = b.y + H / 2;
        const d = `M ${a.x + w} ${y1} L ${x - r} ${y1} Q ${x} ${y1} ${x} ${y1 - r} L ${x} ${y2 + r} ` +
          `Q ${x} ${y2} ${x - r} ${y2} L ${b.x + w} ${y2}`;
        el("path", { d, class: "edge back", "marker-end": "url(#arrow)" }, svg);
        if (e.label) labels.push({ x: x - 4, y: (y1 + y2) / 2, text: e.label, anchor: "end" });
      }
      for (const l of labels) {
        const t = el("text", { x: l.x, y: l.y, class: "edge-label", "text-anchor": l.anchor || "middle" }, svg);
        t.textContent = l.text;
      }
      groups.clear();
      const chars = Math.max(8, Math.floor((w - 14) / 6.6));
      for (const n of view.nodes) {
        const p = items.get(n.id);
        const g = el("g", { class: "node", "data-node-id": n.id, "data-node-name": n.name,
          transform: `translate(${p.x} ${p.y})` }, svg);
        el("rect", { width: w, height: H }, g);
        const title = n.name.length > chars ? n.name.slice(0, chars - 1) + "…" : n.name;
        el("text", { x: 8, y: 16 }, g).textContent = title;
        el("text", { x: 8, y: 31, class: "type" }, g).textContent = n.type;
        el("title", {}, g).textContent = `${n.name} (${n.type})`;
        g.addEventListener("click", () => onClick(n.id));
        groups.set(n.id, g);
        paint(n.id);
      }
      container.replaceChildren(svg);
    }

    function paint(id) {
      const g = groups.get(id);
      if (!g) return;
      const state = states.get(id) || "pending";
      g.setAttribute("class", `node state-${state}${selected === id ? " selected" : ""}`);
      g.dataset.state = state;
    }

    render();
    let lastWidth = container.clientWidth;
    const observer = new ResizeObserver(() => {
      if (container.clientWidth !== lastWidth) { lastWidth = container.clientWidth; render(); }
    });
    observer.observe(container);
    return {
      setState(id, state) { states.set(id, state); paint(id); },
      select(id) { const old = selected; selected = id; paint(old); paint(id); },
      close() { observer.disconnect(); },
    };
  }

  window.QMGraph = { draw, layout };
})();
